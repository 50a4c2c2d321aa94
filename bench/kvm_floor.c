/* kvm_floor: what the host's KVM charges for a child VM, without forkd.
 *
 * Forks N processes as `forkd fork` does; each one creates a VM the way
 * forkd's vm_create() does (KVM_CREATE_VM, TSS and identity-map addresses,
 * in-kernel irqchip, PIT, one memory slot mapping a file MAP_PRIVATE or
 * anonymous memory, one vCPU with its kvm_run mapping) and times every
 * step. All children stay alive until the last is ready (as forkd's do),
 * then exit; the teardown is timed too. Prints, per step, the median and
 * 99th percentile over the children, and the wall time until all were
 * ready: the floor under `forkd fork`'s own figures (bench/spawn).
 *
 *   kvm_floor [-n N] [--mem-mib M] [--file PATH] [--no-pit] [--no-irqchip]
 *             [--no-tss] [--memslot-first] [--msr-filter first|after-pit]
 *
 * --memslot-first creates the memory slot before the irqchip and PIT
 * (forkd creates it after them); --no-tss skips KVM_SET_TSS_ADDR and
 * KVM_SET_IDENTITY_MAP_ADDR; --msr-filter adds the MSR filter forkd sets
 * on KVM-PVM hosts (src/vmm/syscall_assist.c), right after KVM_CREATE_VM or
 * after the PIT (where forkd sets it);
 * --file maps PATH (e.g. a snapshot's memory.bin, at least M MiB) as forkd
 * does; without it the RAM is anonymous. Build: make -C bench. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum step {
	S_FORK,	   /* fork() in the parent until the child runs */
	S_OPEN,	   /* open /dev/kvm */
	S_VM,	   /* KVM_CREATE_VM */
	S_IRQCHIP, /* TSS/identity-map addresses + KVM_CREATE_IRQCHIP */
	S_PIT,	   /* KVM_CREATE_PIT2 */
	S_MSRF,	   /* KVM_ENABLE_CAP(USER_SPACE_MSR) + KVM_X86_SET_MSR_FILTER */
	S_MMAP,	   /* mmap guest RAM */
	S_MEMSLOT, /* KVM_SET_USER_MEMORY_REGION */
	S_VCPU,	   /* KVM_CREATE_VCPU + mmap kvm_run */
	S_TOTAL,   /* fork() to ready */
	NR_STEPS,
};

static const char *const step_names[NR_STEPS] = {
    "fork->child",    "open /dev/kvm", "KVM_CREATE_VM",		 "irqchip",	"KVM_CREATE_PIT2",
    "SET_MSR_FILTER", "mmap RAM",      "SET_USER_MEMORY_REGION", "CREATE_VCPU", "total",
};

struct report {
	int32_t status; /* 0 or -errno */
	int32_t failed_step;
	uint64_t ns[NR_STEPS];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct opts {
	unsigned n;
	uint64_t mem_bytes;
	const char *file;
	int pit, irqchip, memslot_first, tss;
	int msr_filter; /* 0: none, 1: after the PIT (as forkd), 2: first */
};

/* KVM_X86_SET_MSR_FILTER denying guest writes to one MSR, as forkd does
 * on KVM-PVM hosts (src/vmm/syscall_assist.c). */
static int msr_filter(int vm)
{
	static uint8_t deny;
	struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR,
				     .args = {KVM_MSR_EXIT_REASON_FILTER}};
	struct kvm_msr_filter filter = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};

	filter.ranges[0] = (struct kvm_msr_filter_range){
	    .flags = KVM_MSR_FILTER_WRITE, .nmsrs = 1, .base = 0xc0000082, .bitmap = &deny};
	if (ioctl(vm, KVM_ENABLE_CAP, &cap) < 0 || ioctl(vm, KVM_X86_SET_MSR_FILTER, &filter) < 0)
		return -1;
	return 0;
}

/* The in-kernel irqchip and PIT, as forkd's vm_create() makes them. */
static int chips(const struct opts *o, int vm, struct report *r, uint64_t *t)
{
	uint64_t n;

	if (o->irqchip) {
		uint64_t idmap = 0xfffbc000;

		if ((o->tss && (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000) < 0 ||
				ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)) ||
		    ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
			r->status = -errno;
			r->failed_step = S_IRQCHIP;
			return -1;
		}
	}
	n = now_ns();
	r->ns[S_IRQCHIP] = n - *t;
	*t = n;
	if (o->pit) {
		struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

		if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0) {
			r->status = -errno;
			r->failed_step = S_PIT;
			return -1;
		}
	}
	n = now_ns();
	r->ns[S_PIT] = n - *t;
	*t = n;
	if (o->msr_filter == 1) {
		if (msr_filter(vm) < 0) {
			r->status = -errno;
			r->failed_step = S_MSRF;
			return -1;
		}
		n = now_ns();
		r->ns[S_MSRF] = n - *t;
		*t = n;
	}
	return 0;
}

/* In the child: build the VM, report, wait for the parent to let go. */
static void child(const struct opts *o, uint64_t t_fork, int report_fd, int hold_fd)
{
	struct report r = {0};
	uint64_t t = now_ns(), t0 = t_fork;
	int kvm, vm, vcpu, fd = -1, run_size;
	void *mem;
	char c;

#define STEP(s)                                                                                    \
	do {                                                                                       \
		uint64_t _n = now_ns();                                                            \
		r.ns[s] = _n - t;                                                                  \
		t = _n;                                                                            \
	} while (0)
#define FAIL(s)                                                                                    \
	do {                                                                                       \
		r.status = -errno;                                                                 \
		r.failed_step = s;                                                                 \
		goto out;                                                                          \
	} while (0)

	r.ns[S_FORK] = t - t0;
	if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		FAIL(S_OPEN);
	STEP(S_OPEN);
	if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0)
		FAIL(S_VM);
	STEP(S_VM);
	if (o->msr_filter == 2) {
		if (msr_filter(vm) < 0)
			FAIL(S_MSRF);
		STEP(S_MSRF);
	}
	if (!o->memslot_first && chips(o, vm, &r, &t))
		goto out;
	if (o->file) {
		if ((fd = open(o->file, O_RDONLY | O_CLOEXEC)) < 0)
			FAIL(S_MMAP);
		mem = mmap(NULL, o->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
			   fd, 0);
	} else {
		mem = mmap(NULL, o->mem_bytes, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	}
	if (mem == MAP_FAILED)
		FAIL(S_MMAP);
	STEP(S_MMAP);
	{
		struct kvm_userspace_memory_region region = {.slot = 0,
							     .guest_phys_addr = 0,
							     .memory_size = o->mem_bytes,
							     .userspace_addr =
								 (uint64_t)(uintptr_t)mem};

		if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			FAIL(S_MEMSLOT);
	}
	STEP(S_MEMSLOT);
	if (o->memslot_first && chips(o, vm, &r, &t))
		goto out;
	if ((vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0)
		FAIL(S_VCPU);
	if ((run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) < 0 ||
	    mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0) == MAP_FAILED)
		FAIL(S_VCPU);
	STEP(S_VCPU);
	r.ns[S_TOTAL] = t - t0;
out:
	if (write(report_fd, &r, sizeof(r)) != sizeof(r))
		_exit(3);
	/* Hold the VM until the parent closes the pipe. */
	while (read(hold_fd, &c, 1) < 0 && errno == EINTR)
		;
	_exit(r.status ? 1 : 0);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvm_floor [-n N] [--mem-mib M] [--file PATH] [--no-pit] [--no-irqchip]\n"
		"                 [--no-tss] [--memslot-first] [--msr-filter first|after-pit]\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"mem-mib", required_argument, NULL, 'm'},
	    {"file", required_argument, NULL, 'f'},
	    {"no-pit", no_argument, NULL, 'p'},
	    {"no-irqchip", no_argument, NULL, 'i'},
	    {"memslot-first", no_argument, NULL, 's'},
	    {"no-tss", no_argument, NULL, 't'},
	    {"msr-filter", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct opts o = {.n = 1, .mem_bytes = 256ULL << 20, .pit = 1, .irqchip = 1, .tss = 1};
	int rep[2], hold[2], c;
	uint64_t t0, t_ready, t_down, *col;
	struct report *r;
	pid_t *pids;
	unsigned got = 0, failed = 0;

	while ((c = getopt_long(argc, argv, "n:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			o.mem_bytes = strtoull(optarg, NULL, 10) << 20;
			break;
		case 'f':
			o.file = optarg;
			break;
		case 'p':
			o.pit = 0;
			break;
		case 'i':
			o.irqchip = 0;
			o.pit = 0;
			break;
		case 's':
			o.memslot_first = 1;
			break;
		case 't':
			o.tss = 0;
			break;
		case 'F':
			o.msr_filter = !strcmp(optarg, "first")	      ? 2
				       : !strcmp(optarg, "after-pit") ? 1
								      : -1;
			if (o.msr_filter < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o.n < 1 || o.n > 10000 || !o.mem_bytes) {
		usage(stderr);
		return 2;
	}
	r = calloc(o.n, sizeof(*r));
	pids = calloc(o.n, sizeof(*pids));
	col = calloc(o.n, sizeof(*col));
	if (!r || !pids || !col || pipe(rep) < 0 || pipe(hold) < 0) {
		perror("setup");
		return 1;
	}
	t0 = now_ns();
	for (unsigned i = 0; i < o.n; i++) {
		uint64_t t_fork = now_ns();

		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			break;
		}
		if (pids[i] == 0) {
			close(rep[0]);
			close(hold[1]);
			child(&o, t_fork, rep[1], hold[0]);
		}
	}
	close(rep[1]);
	close(hold[0]);
	while (got + failed < o.n) {
		struct report x;
		ssize_t k = read(rep[0], &x, sizeof(x));

		if (k == 0)
			break;
		if (k != sizeof(x)) {
			if (k < 0 && errno == EINTR)
				continue;
			break;
		}
		if (x.status) {
			if (!failed)
				fprintf(stderr, "kvm_floor: a child failed at %s: %s\n",
					step_names[x.failed_step], strerror(-x.status));
			failed++;
		} else {
			r[got++] = x;
		}
	}
	t_ready = now_ns();
	close(hold[1]); /* let them go */
	for (unsigned i = 0; i < o.n; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
	t_down = now_ns();

	printf("kvm_floor: %u children, %llu MiB RAM (%s), %s: all ready in %.1f ms, "
	       "torn down in %.1f ms%s\n",
	       got, (unsigned long long)(o.mem_bytes >> 20),
	       o.file ? "file, MAP_PRIVATE" : "anonymous",
	       !o.irqchip ? "no irqchip, no PIT"
	       : o.pit	  ? "irqchip + PIT"
			  : "irqchip, no PIT",
	       (t_ready - t0) / 1e6, (t_down - t_ready) / 1e6, failed ? " (some failed)" : "");
	if (!got)
		return 1;
	for (int s = 0; s < NR_STEPS; s++) {
		uint64_t sum = 0;

		for (unsigned i = 0; i < got; i++) {
			col[i] = r[i].ns[s];
			sum += col[i];
		}
		qsort(col, got, sizeof(col[0]), cmp_u64);
		printf("  %-24s p50 %8.3f ms  p99 %8.3f ms  mean %8.3f ms\n", step_names[s],
		       col[got / 2] / 1e6,
		       col[(got * 99) / 100 < got ? (got * 99) / 100 : got - 1] / 1e6,
		       sum / (double)got / 1e6);
	}
	free(r);
	free(pids);
	free(col);
	return failed ? 1 : 0;
}
