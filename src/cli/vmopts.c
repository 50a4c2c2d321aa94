#include "cli/vmopts.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"

enum {
	O_KERNEL = 1000,
	O_INITRD,
	O_CMDLINE,
	O_MEM,
	O_VCPUS,
	O_CONSOLE,
	O_CONSOLE_MAX,
	O_TIMEOUT,
	O_GUEST_DECOMP,
	O_DISK,
	O_TAP,
	O_MAC,
	O_VSOCK,
	O_VSOCK_CID,
	O_NO_RNG,
	O_NO_VMGENID,
};

const struct option vmopts_long[] = {
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
    {"no-vmgenid", no_argument, NULL, O_NO_VMGENID},
    {0},
};

void vmopts_help(FILE *f)
{
	fprintf(f, "  --kernel PATH          bzImage or ELF kernel (vmlinux or a test guest)\n"
		   "  --initrd PATH          initramfs\n"
		   "  --cmdline STR          kernel command line (forkd appends what it needs)\n"
		   "  --mem-mib N            guest RAM in MiB, a multiple of 2 (default 256)\n"
		   "  --vcpus N              vCPUs (default 1)\n"
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
		   "  --no-vmgenid           no VM generation ID (ACPI; children of a snapshot\n"
		   "                         made without it do not get a new one either)\n"
		   "  --console PATH|-       serial console output (default -, stdout)\n"
		   "  --console-max-mib N    stop writing the console after N MiB (default 16)\n"
		   "  --timeout-secs N       give up after N seconds (default: none)\n"
		   "  --guest-decompress     let a bzImage decompress itself (slow on KVM-PVM)\n");
}

void vmopts_table(struct option *out, size_t cap, const struct option *extra)
{
	size_t n = 0;

	for (const struct option *o = vmopts_long; o->name && n + 2 < cap; o++)
		out[n++] = *o;
	for (const struct option *o = extra; o && o->name && n + 2 < cap; o++)
		out[n++] = *o;
	out[n++] = (struct option){"help", no_argument, NULL, 'h'};
	out[n] = (struct option){0};
}

void vmopts_init(struct vmopts *o)
{
	memset(o, 0, sizeof(*o));
	machine_spec_init(&o->spec);
	o->console = "-";
}

bool vmopts_parse(struct vmopts *o, const char *verb, int c, char *arg)
{
	struct machine_spec *s = &o->spec;

	switch (c) {
	case O_KERNEL:
		o->boot.kernel = arg;
		break;
	case O_INITRD:
		o->boot.initrd = arg;
		break;
	case O_CMDLINE:
		o->boot.cmdline = arg;
		break;
	case O_MEM:
		s->mem_mib = cli_num(verb, "--mem-mib", arg, 16, 1024 * 1024);
		if (s->mem_mib % 2)
			cli_usage_error(verb, "--mem-mib must be a multiple of 2");
		o->mem_set = true;
		break;
	case O_VCPUS:
		s->vcpus = (int)cli_num(verb, "--vcpus", arg, 1, VM_MAX_VCPUS);
		o->vcpus_set = true;
		break;
	case O_CONSOLE:
		o->console = arg;
		break;
	case O_CONSOLE_MAX:
		s->console_max_bytes = cli_num(verb, "--console-max-mib", arg, 0, 1 << 20) * MIB;
		break;
	case O_TIMEOUT:
		o->timeout_secs = cli_num(verb, "--timeout-secs", arg, 1, 1ULL << 32);
		break;
	case O_GUEST_DECOMP:
		o->boot.guest_decompress = true;
		break;
	case O_DISK: {
		char *comma = strrchr(arg, ',');
		uint32_t i = s->dev.nr_disks;

		if (i == MACHINE_MAX_DISKS)
			cli_usage_error(verb, "at most %d --disk options", MACHINE_MAX_DISKS);
		/* arg is a writable argv string: cut ",ro" off in place. */
		if (comma && !strcmp(comma, ",ro")) {
			*comma = 0;
			s->dev.disks[i].read_only = true;
		}
		if (snprintf(s->dev.disks[i].path, sizeof(s->dev.disks[i].path), "%s", arg) >=
		    (int)sizeof(s->dev.disks[i].path))
			cli_usage_error(verb, "--disk: path too long");
		s->dev.nr_disks++;
		break;
	}
	case O_TAP:
		s->tap = arg;
		s->dev.net = true;
		break;
	case O_MAC:
		if (sscanf(arg, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &s->mac[0], &s->mac[1], &s->mac[2],
			   &s->mac[3], &s->mac[4], &s->mac[5]) != 6 ||
		    (s->mac[0] & 1))
			cli_usage_error(
			    verb, "--mac wants a unicast MAC like 52:54:00:12:34:56, got '%s'",
			    arg);
		break;
	case O_VSOCK:
		s->vsock = arg;
		s->dev.vsock = true;
		break;
	case O_VSOCK_CID:
		s->dev.vsock_cid = cli_num(verb, "--vsock-cid", arg, 3, 0xfffffffeULL);
		break;
	case O_NO_RNG:
		s->dev.rng = false;
		break;
	case O_NO_VMGENID:
		s->dev.vmgenid = false;
		break;
	default:
		return false;
	}
	return true;
}

int vmopts_finish(struct vmopts *o, const char *verb, int *console_fd)
{
	if (!o->boot.kernel)
		cli_usage_error(verb, "--kernel is required");
	/* The files named first, before /dev/kvm and the devices are tried:
	 * a mistyped path is the mistake to report. */
	if (access(o->boot.kernel, R_OK))
		return log_errno("--kernel %s", o->boot.kernel);
	if (o->boot.initrd && access(o->boot.initrd, R_OK))
		return log_errno("--initrd %s", o->boot.initrd);
	for (uint32_t i = 0; i < o->spec.dev.nr_disks; i++)
		if (access(o->spec.dev.disks[i].path, R_OK))
			return log_errno("--disk %s", o->spec.dev.disks[i].path);
	*console_fd = STDOUT_FILENO;
	if (strcmp(o->console, "-")) {
		*console_fd = open(o->console, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (*console_fd < 0)
			return log_errno("open console file %s", o->console);
	}
	o->spec.console_fd = *console_fd;
	return 0;
}
