/* forkd snapshot: boot a VM, wait until the guest says it is warm, pause it
 * and write $FORKD_HOME/snapshots/<tag>/. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/vmopts.h"
#include "common/util.h"
#include "snapshot/snapshot.h"
#include "vmm/vm_state.h"

static void snapshot_usage(FILE *f)
{
	fprintf(f, "usage: forkd snapshot --tag TAG --kernel PATH [options]\n"
		   "\n"
		   "Boot a VM, wait until the guest signals it is warm (it writes 1 to\n"
		   "forkd's doorbell port 0x610), pause it at a clean instruction\n"
		   "boundary and write the snapshot to\n"
		   "$FORKD_HOME/snapshots/TAG/ (default ~/.local/share/forkd):\n"
		   "memory.bin, vmstate, snapshot.json. Then the VM is stopped.\n"
		   "\n"
		   "options:\n"
		   "  --tag TAG              [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}, required\n"
		   "  --force                replace an existing snapshot with this tag\n"
		   "  --warm-console TEXT    also take the guest as warm when a console line\n"
		   "                         contains TEXT (for guests that cannot reach the\n"
		   "                         doorbell port, e.g. Linux without /dev/port)\n");
	vmopts_help(f);
	fprintf(f, "  -h, --help             this text\n"
		   "\n"
		   "--timeout-secs bounds the wait for the warm signal.\n");
}

static int remove_tree(const char *dir)
{
	static const char *const files[] = {"memory.bin", ".memory.bin.tmp", "vmstate",
					    "snapshot.json", ".snapshot.json.tmp"};
	char path[PATH_MAX + 64];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	return rmdir(dir) < 0 && errno != ENOENT ? -errno : 0;
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX + 64];

	if (strlen(path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	strcpy(tmp, path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return log_errno("mkdir %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return log_errno("mkdir %s", tmp);
	return 0;
}

static int write_snapshot(struct vm *vm, const struct vmopts *o, const char *tag, const char *dir)
{
	struct vmstate_writer w;
	struct snapshot_meta meta = {0};
	char path[PATH_MAX + 64];
	time_t now = time(NULL);
	uint64_t t0 = now_ns(), t_state, t_mem;
	int err;

	snprintf(path, sizeof(path), "%s/vmstate", dir);
	err = vmstate_writer_open(&w, path);
	if (err)
		return err;
	err = vm_state_save(vm, &w);
	if (err) {
		vmstate_writer_abort(&w);
		return err;
	}
	err = vmstate_writer_commit(&w);
	if (err)
		return err;
	t_state = now_ns();
	err = snapshot_write_memory(dir, &vm->mem);
	if (err)
		return err;
	t_mem = now_ns();

	snprintf(meta.tag, sizeof(meta.tag), "%s", tag);
	strftime(meta.created, sizeof(meta.created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	snprintf(meta.kernel, sizeof(meta.kernel), "%s", o->boot.kernel);
	snprintf(meta.initrd, sizeof(meta.initrd), "%s", o->boot.initrd ? o->boot.initrd : "");
	snprintf(meta.cmdline, sizeof(meta.cmdline), "%s", o->boot.cmdline ? o->boot.cmdline : "");
	meta.mem_mib = o->spec.mem_mib;
	meta.vcpus = (uint32_t)o->spec.vcpus;
	meta.format_version = SNAPSHOT_FORMAT_VERSION;
	meta.rng = o->spec.rng;
	meta.nr_disks = o->spec.nr_disks;
	for (unsigned i = 0; i < o->spec.nr_disks; i++) {
		/* Children open the image by this path: make it absolute. */
		if (!realpath(o->spec.disks[i].path, meta.disks[i].path)) {
			log_errno("resolve disk path %s", o->spec.disks[i].path);
			return -EINVAL;
		}
		meta.disks[i].read_only = o->spec.disks[i].read_only;
	}
	meta.net = o->spec.tap != NULL;
	meta.vsock = o->spec.vsock != NULL;
	meta.vsock_cid = o->spec.vsock_cid;
	err = snapshot_meta_write(dir, &meta);
	if (err)
		return err;
	log_info("snapshot: vmstate %.1f ms, memory.bin %.1f ms (%llu MiB)", (t_state - t0) / 1e6,
		 (t_mem - t_state) / 1e6, (unsigned long long)(vm->mem.size / MIB));
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	enum { O_TAG = 2000, O_FORCE, O_WARM_CONSOLE };
	struct option opts[40];
	struct vmopts o;
	struct boot_info bi;
	struct vm *vm = NULL;
	char dir[PATH_MAX], tmpdir[PATH_MAX + 32];
	const char *tag = NULL;
	bool force = false;
	int console_fd = -1, warm_fd = -1, c, status, ret = 1;
	uint64_t t0 = now_ns(), t_warm;
	struct stat st;

	vmopts_table(opts, 40,
		     (const struct option[]){
			 {"tag", required_argument, NULL, O_TAG},
			 {"force", no_argument, NULL, O_FORCE},
			 {"warm-console", required_argument, NULL, O_WARM_CONSOLE},
			 {0},
		     });
	vmopts_init(&o);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			snapshot_usage(stdout);
			return 0;
		} else if (c == O_TAG) {
			tag = optarg;
		} else if (c == O_FORCE) {
			force = true;
		} else if (c == O_WARM_CONSOLE) {
			if (!*optarg || strlen(optarg) > 200)
				cli_usage_error("snapshot",
						"--warm-console wants 1-200 characters");
			o.spec.warm_console = optarg;
		} else if (!vmopts_parse(&o, "snapshot", c, optarg)) {
			cli_usage_error("snapshot", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("snapshot", "unexpected argument '%s'", argv[optind]);
	if (!tag)
		cli_usage_error("snapshot", "--tag is required");
	if (!snapshot_tag_valid(tag))
		cli_usage_error("snapshot",
				"invalid tag '%s': use 1-64 of A-Z a-z 0-9 _ . - , "
				"starting with a letter, digit or _, and no '..'",
				tag);
	if (snapshot_dir(tag, dir, sizeof(dir)))
		return 1;
	if (stat(dir, &st) == 0 && !force) {
		log_err("snapshot '%s' already exists at %s (use --force to replace it)", tag, dir);
		return 1;
	}
	if (vmopts_finish(&o, "snapshot", &console_fd))
		return 1;

	/* Everything is written into a private directory first and renamed at
	 * the end: a failure leaves nothing behind under the tag's name. */
	snprintf(tmpdir, sizeof(tmpdir), "%s.tmp.%d", dir, (int)getpid());
	if (mkdir_p(tmpdir))
		goto out;
	warm_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (warm_fd < 0) {
		log_errno("eventfd");
		goto out;
	}
	o.spec.warm_fd = warm_fd;
	vm = calloc(1, sizeof(*vm));
	if (!vm || machine_build(vm, &o.spec, NULL)) {
		free(vm);
		vm = NULL;
		goto out;
	}
	if (boot_load(vm, &o.boot, &bi) || boot_setup_bsp(vm, &bi))
		goto out;
	cli_stop_on_signals(vm);
	log_info("snapshot '%s': booting, waiting for the guest's warm signal", tag);
	if (vm_start(vm) ||
	    !vm_wait(vm, warm_fd, o.timeout_secs ? t0 + o.timeout_secs * 1000000000ULL : 0)) {
		status = vm_finish(vm, VM_EXIT_ERROR);
		log_err("snapshot '%s': the guest stopped before it signalled warm: %s "
			"(exit status %d); nothing was written",
			tag, vm->exit_reason, status);
		goto out;
	}
	t_warm = now_ns();
	log_info("snapshot '%s': guest warm after %.2f s; pausing", tag, (t_warm - t0) / 1e9);
	vm_pause(vm);
	/* No more back-end input may touch guest memory or queues. */
	evloop_destroy(&vm->loop);
	if (write_snapshot(vm, &o, tag, tmpdir)) {
		vm_finish(vm, VM_EXIT_ERROR);
		goto out;
	}
	vm_finish(vm, VM_EXIT_POWEROFF);
	if (force && stat(dir, &st) == 0 && remove_tree(dir)) {
		log_errno("remove old snapshot %s", dir);
		goto out;
	}
	if (rename(tmpdir, dir) < 0) {
		log_errno("rename %s to %s", tmpdir, dir);
		goto out;
	}
	printf("snapshot %s written to %s in %.2f s (guest warm after %.2f s)\n", tag, dir,
	       (now_ns() - t0) / 1e9, (t_warm - t0) / 1e9);
	ret = 0;
out:
	if (ret)
		remove_tree(tmpdir);
	if (vm) {
		vm_destroy(vm);
		free(vm);
	}
	if (warm_fd >= 0)
		close(warm_fd);
	if (console_fd > STDOUT_FILENO)
		close(console_fd);
	return ret;
}
