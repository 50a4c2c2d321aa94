/* libFuzzer harness: every device's restore hook (struct device_ops
 * .restore: serial, i8042, vmctl, and the virtio-mmio transport with rng,
 * blk, net and vsock behind it) given hostile bytes, as a snapshot file
 * hands them over (snapshot/vmstate.h keeps each device's blob as one
 * section; fuzz_vmstate.c covers the file around them).
 *
 * Input: which device, the blob's length, the blob, then guest RAM (a
 * restored live queue is checked against it, and vsock uses it at once).
 * Checked: a refused blob leaves the device saving exactly what it saved
 * before; an accepted one leaves a device whose own state restores again
 * into a new device. */
#include <stdint.h>

#include "fake_vm.h"

#define RAM_SIZE (64 * 1024)

static uint8_t ram[RAM_SIZE], ram2[RAM_SIZE];
static bool ready;

/* The tap a net device just opened is not used here. */
static void drop_tap(void)
{
	if (fake_tap_peer >= 0)
		close(fake_tap_peer);
	fake_tap_peer = -1;
}

static struct vm *build(enum fake_dev kind, uint8_t *mem, unsigned n)
{
	struct vm *vm = fake_vm_new(mem, RAM_SIZE);

	if (fake_dev_create(vm, kind, n))
		abort();
	drop_tap();
	return vm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum fake_dev kind;
	struct sbuf before, after;
	struct vm *vm;
	uint32_t len;
	int err;

	if (!ready) {
		log_set_level(LOG_ERR);
		fake_init();
		ready = true;
	}
	if (size < 5)
		return 0;
	kind = (enum fake_dev)(data[0] % FAKE_NR_DEVS);
	memcpy(&len, data + 1, 4);
	data += 5;
	size -= 5;
	len = (uint32_t)MIN((size_t)len, size);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + len, MIN(size - len, (size_t)RAM_SIZE));

	vm = build(kind, ram, 0);
	before = fake_save(vm);
	fake_log_capture();
	err = fake_restore(vm, data, len);
	fake_log_release();
	after = fake_save(vm);
	if (err) {
		if (err != -EINVAL || after.len != before.len ||
		    memcmp(after.data, before.data, before.len))
			__builtin_trap();
	} else {
		/* What the restored device saves is a snapshot of it. */
		struct vm *again = build(kind, ram2, 1);

		memcpy(ram2, ram, RAM_SIZE);
		fake_log_capture();
		err = fake_restore(again, after.data, after.len);
		fake_log_release();
		/* vmctl counts restores and refuses to wrap: its last
		 * generation is the one exception. */
		if (err && !(kind == FAKE_VMCTL && after.len == 4 &&
			     !memcmp(after.data, "\xff\xff\xff\xff", 4)))
			__builtin_trap();
		fake_vm_free(again);
	}
	sbuf_free(&before);
	sbuf_free(&after);
	fake_vm_free(vm);
	return 0;
}
