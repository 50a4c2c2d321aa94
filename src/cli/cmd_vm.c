/* forkd vm run: boot one VM from a kernel and run it until the guest stops. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "devices/acpi_sleep.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"
#include "vmm/boot.h"
#include "vmm/vcpu.h"

#define MAX_DISKS 4

struct vm_run_args {
	const char *kernel, *initrd, *cmdline;
	uint64_t mem_mib, vcpus, timeout_secs, console_max_mib;
	const char *console;
	bool guest_decompress;
	struct virtio_blk_opts disks[MAX_DISKS];
	unsigned nr_disks;
	const char *tap, *vsock;
	uint8_t mac[6];
	uint64_t vsock_cid;
	bool no_rng;
};

static struct vm *signal_vm;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_vm)
		vm_request_stop_signal(signal_vm, VM_EXIT_SIGNAL);
}

static void vm_run_usage(FILE *f)
{
	fprintf(f,
		"usage: forkd vm run --kernel PATH [options]\n"
		"\n"
		"Boot one VM and run it until the guest powers off.\n"
		"\n"
		"options:\n"
		"  --kernel PATH          bzImage or ELF kernel (vmlinux or a test guest)\n"
		"  --initrd PATH          initramfs\n"
		"  --cmdline STR          kernel command line (forkd appends its\n"
		"                         virtio_mmio.device= entries)\n"
		"  --mem-mib N            guest RAM in MiB, a multiple of 2 (default 256)\n"
		"  --vcpus N              vCPUs (default 1)\n"
		"  --console PATH|-       serial console output (default -, stdout)\n"
		"  --console-max-mib N    stop writing the console after N MiB (default 16)\n"
		"  --disk PATH[,ro]       raw disk image (repeatable, up to 4: vda, vdb...);\n"
		"                         the image is never written: guest writes go to a\n"
		"                         private copy-on-write overlay; ',ro' makes the\n"
		"                         disk read-only to the guest\n"
		"  --tap NAME             virtio-net on this tap interface\n"
		"  --mac MAC              guest MAC (default 52:54:00:12:34:56)\n"
		"  --vsock PATH           virtio-vsock; host end is this Unix socket\n"
		"                         (clients write 'CONNECT <port>\\n'; guest\n"
		"                         connections to port P reach PATH_P)\n"
		"  --vsock-cid N          guest CID (default 3)\n"
		"  --no-rng               no virtio-rng device\n"
		"  --timeout-secs N       stop the guest after N seconds (default: none)\n"
		"  --guest-decompress     let a bzImage decompress itself (slow on KVM-PVM)\n"
		"  -h, --help             this text\n"
		"\n"
		"exit status: 0 the guest powered off (ACPI S5: Linux 'poweroff'),\n"
		"1 forkd failed, 2 the guest crashed (triple fault; Linux panics end\n"
		"here with 'panic=-1 reboot=t'), 3 KVM could not emulate a guest\n"
		"instruction, 4 the guest reset the machine (i8042: 'reboot'),\n"
		"124 timeout, 130 interrupted.\n");
}

static uint64_t parse_num(const char *opt, const char *arg, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (parse_u64(arg, &v) || v < min || v > max)
		cli_usage_error("vm run", "%s wants a number from %llu to %llu, got '%s'", opt,
				(unsigned long long)min, (unsigned long long)max, arg);
	return v;
}

static void parse_args(int argc, char **argv, struct vm_run_args *a)
{
	enum { O_KERNEL = 256, O_INITRD, O_CMDLINE, O_MEM, O_VCPUS, O_CONSOLE, O_CONSOLE_MAX,
	       O_TIMEOUT, O_GUEST_DECOMP, O_DISK, O_TAP, O_MAC, O_VSOCK, O_VSOCK_CID, O_NO_RNG };
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, O_KERNEL},
		{"initrd", required_argument, NULL, O_INITRD},
		{"cmdline", required_argument, NULL, O_CMDLINE},
		{"mem-mib", required_argument, NULL, O_MEM},
		{"vcpus", required_argument, NULL, O_VCPUS},
		{"console", required_argument, NULL, O_CONSOLE},
		{"console-max-mib", required_argument, NULL, O_CONSOLE_MAX},
		{"timeout-secs", required_argument, NULL, O_TIMEOUT},
		{"guest-decompress", no_argument, NULL, O_GUEST_DECOMP},
		{"disk", required_argument, NULL, O_DISK},
		{"tap", required_argument, NULL, O_TAP},
		{"mac", required_argument, NULL, O_MAC},
		{"vsock", required_argument, NULL, O_VSOCK},
		{"vsock-cid", required_argument, NULL, O_VSOCK_CID},
		{"no-rng", no_argument, NULL, O_NO_RNG},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	*a = (struct vm_run_args){.mem_mib = 256, .vcpus = 1, .console = "-",
				  .console_max_mib = 16, .vsock_cid = 3,
				  .mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_KERNEL:
			a->kernel = optarg;
			break;
		case O_INITRD:
			a->initrd = optarg;
			break;
		case O_CMDLINE:
			a->cmdline = optarg;
			break;
		case O_MEM:
			a->mem_mib = parse_num("--mem-mib", optarg, 16, 1024 * 1024);
			if (a->mem_mib % 2)
				cli_usage_error("vm run", "--mem-mib must be a multiple of 2");
			break;
		case O_VCPUS:
			a->vcpus = parse_num("--vcpus", optarg, 1, VM_MAX_VCPUS);
			break;
		case O_CONSOLE:
			a->console = optarg;
			break;
		case O_CONSOLE_MAX:
			a->console_max_mib = parse_num("--console-max-mib", optarg, 0, 1 << 20);
			break;
		case O_TIMEOUT:
			a->timeout_secs = parse_num("--timeout-secs", optarg, 1, 1ULL << 32);
			break;
		case O_GUEST_DECOMP:
			a->guest_decompress = true;
			break;
		case O_DISK: {
			struct virtio_blk_opts *d;
			char *comma;

			if (a->nr_disks == MAX_DISKS)
				cli_usage_error("vm run", "at most %d --disk options", MAX_DISKS);
			d = &a->disks[a->nr_disks++];
			d->path = optarg;
			comma = strrchr(optarg, ',');
			if (comma && !strcmp(comma, ",ro")) {
				*comma = 0;
				d->read_only = true;
			}
			break;
		}
		case O_TAP:
			a->tap = optarg;
			break;
		case O_MAC:
			if (sscanf(optarg, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &a->mac[0], &a->mac[1],
				   &a->mac[2], &a->mac[3], &a->mac[4], &a->mac[5]) != 6 ||
			    (a->mac[0] & 1))
				cli_usage_error("vm run", "--mac wants a unicast MAC like "
							  "52:54:00:12:34:56, got '%s'",
						optarg);
			break;
		case O_VSOCK:
			a->vsock = optarg;
			break;
		case O_VSOCK_CID:
			a->vsock_cid = parse_num("--vsock-cid", optarg, 3, 0xfffffffeULL);
			break;
		case O_NO_RNG:
			a->no_rng = true;
			break;
		case 'h':
			vm_run_usage(stdout);
			exit(0);
		default:
			cli_usage_error("vm run", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("vm run", "unexpected argument '%s'", argv[optind]);
	if (!a->kernel)
		cli_usage_error("vm run", "--kernel is required");
}

static int vm_run_main(int argc, char **argv)
{
	struct vm_run_args a;
	struct vm_config cfg = {0};
	struct boot_opts bo = {0};
	struct boot_info bi;
	struct sigaction sa = {.sa_handler = on_signal};
	struct vm *vm;
	int console_fd = STDOUT_FILENO, status, i;
	uint64_t t0 = now_ns(), exits = 0, assists = 0;

	parse_args(argc, argv, &a);
	if (strcmp(a.console, "-")) {
		console_fd = open(a.console, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (console_fd < 0) {
			log_errno("open console file %s", a.console);
			return VM_EXIT_ERROR;
		}
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return VM_EXIT_ERROR;
	cfg.mem_bytes = a.mem_mib * MIB;
	cfg.nr_vcpus = (int)a.vcpus;
	cfg.mem.backing = MEM_ANON;
	if (vm_create(vm, &cfg)) {
		free(vm);
		return VM_EXIT_ERROR;
	}
	if (vm->pvm)
		log_info("KVM-PVM host: guest kernel code is emulated; CX16 and XSAVE hidden, "
			 "int3 assisted");

	status = VM_EXIT_ERROR;
	if (serial_create(vm, &(struct serial_opts){.out_fd = console_fd,
						    .in_fd = -1,
						    .max_bytes = a.console_max_mib * MIB}))
		goto out;
	if (i8042_create(vm) || acpi_sleep_create(vm))
		goto out;
	/* Creation order fixes each device's MMIO slot and IRQ (and so the
	 * guest's names for them: the first disk is vda). */
	for (unsigned d = 0; d < a.nr_disks; d++)
		if (virtio_blk_create(vm, &a.disks[d]))
			goto out;
	if (a.tap) {
		struct virtio_net_opts no = {.tap = a.tap};

		memcpy(no.mac, a.mac, 6);
		if (virtio_net_create(vm, &no))
			goto out;
	}
	if (a.vsock &&
	    virtio_vsock_create(vm, &(struct virtio_vsock_opts){a.vsock_cid, a.vsock}))
		goto out;
	if (!a.no_rng && virtio_rng_create(vm))
		goto out;

	bo.kernel = a.kernel;
	bo.initrd = a.initrd;
	bo.cmdline = a.cmdline;
	bo.guest_decompress = a.guest_decompress;
	if (boot_load(vm, &bo, &bi) || boot_setup_bsp(vm, &bi))
		goto out;
	log_debug("boot: entry 0x%llx, %s, setup took %.1f ms", (unsigned long long)bi.entry,
		  bi.elf ? "ELF" : "bzImage (guest decompresses)", (now_ns() - t0) / 1e6);

	signal_vm = vm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	status = vm_run(vm, a.timeout_secs * 1000);
	signal_vm = NULL;
	for (i = 0; i < vm->nr_vcpus; i++) {
		exits += vm->vcpus[i].nr_exits;
		assists += vm->vcpus[i].nr_assists;
	}
	log_info("guest stopped after %.2f s: %s (exit status %d; %llu exits, %llu assists)",
		 (now_ns() - t0) / 1e9, vm->exit_reason, status, (unsigned long long)exits,
		 (unsigned long long)assists);
out:
	vm_destroy(vm);
	free(vm);
	if (console_fd != STDOUT_FILENO)
		close(console_fd);
	return status;
}

int cmd_vm(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("usage: forkd vm run [options]\n\n"
		       "subcommands:\n"
		       "  run    boot one VM and run it until the guest stops\n");
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "run"))
		return vm_run_main(argc - 1, argv + 1);
	cli_usage_error("vm", "unknown subcommand '%s'", argv[1]);
}
