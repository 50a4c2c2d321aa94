/* forkd vm run: boot one VM from a kernel and run it until the guest stops. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/vmopts.h"
#include "common/util.h"

static struct vm *signal_vm;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_vm)
		vm_request_stop_signal(signal_vm, VM_EXIT_SIGNAL);
}

void cli_stop_on_signals(struct vm *vm)
{
	struct sigaction sa = {.sa_handler = on_signal};

	signal_vm = vm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void vm_run_usage(FILE *f)
{
	fprintf(f, "usage: forkd vm run --kernel PATH [options]\n"
		   "\n"
		   "Boot one VM and run it until the guest powers off.\n"
		   "\n"
		   "options:\n");
	vmopts_help(f);
	fprintf(f, "  -h, --help             this text\n"
		   "\n"
		   "exit status: 0 the guest powered off (ACPI S5: Linux 'poweroff'),\n"
		   "1 forkd failed, 2 the guest crashed (triple fault; Linux panics end\n"
		   "here with 'panic=-1 reboot=t'), 3 KVM could not emulate a guest\n"
		   "instruction, 4 the guest reset the machine (i8042: 'reboot'),\n"
		   "124 timeout, 130 interrupted.\n");
}

void cli_report_stop(struct vm *vm, int status, uint64_t t0)
{
	uint64_t exits = 0, assists = 0;

	for (int i = 0; i < vm->nr_vcpus; i++) {
		exits += vm->vcpus[i].nr_exits;
		assists += vm->vcpus[i].nr_assists;
	}
	log_info("guest stopped after %.2f s: %s (exit status %d; %llu exits, %llu assists)",
		 (now_ns() - t0) / 1e9, vm->exit_reason, status, (unsigned long long)exits,
		 (unsigned long long)assists);
}

static int vm_run_main(int argc, char **argv)
{
	struct option opts[32];
	struct vmopts o;
	struct boot_info bi;
	struct vm *vm;
	int console_fd, status = VM_EXIT_ERROR, c;
	uint64_t t0 = now_ns();

	vmopts_table(opts, 32, NULL);
	vmopts_init(&o);
	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "vm run")) != -1) {
		if (c == 'h') {
			vm_run_usage(stdout);
			exit(0);
		}
		if (!vmopts_parse(&o, "vm run", c, optarg))
			cli_usage_error("vm run", "unknown option");
	}
	if (optind != argc)
		cli_usage_error("vm run", "unexpected argument '%s'", argv[optind]);
	if (vmopts_finish(&o, "vm run", &console_fd))
		return VM_EXIT_ERROR;

	vm = calloc(1, sizeof(*vm));
	if (!vm || machine_build(vm, &o.spec, NULL)) {
		free(vm);
		return VM_EXIT_ERROR;
	}
	if (vm->pvm)
		log_info("KVM-PVM host: guest kernel code is emulated; forkd adapts the guest "
			 "(CPUID, kernel switches \"%s\") and completes instructions the "
			 "emulator rejects",
			 PVM_KERNEL_ARGS);
	if (boot_load(vm, &o.boot, &bi) || boot_setup_bsp(vm, &bi))
		goto out;
	log_debug("boot: entry 0x%llx, %s, setup took %.1f ms", (unsigned long long)bi.entry,
		  bi.elf ? "ELF" : "bzImage (guest decompresses)", (now_ns() - t0) / 1e6);
	cli_stop_on_signals(vm);
	status = vm_run(vm, o.timeout_secs * 1000);
	signal_vm = NULL;
	cli_report_stop(vm, status, t0);
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
