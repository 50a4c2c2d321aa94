// SPDX-License-Identifier: GPL-2.0
/*
 * forkd_mmio: announce forkd's virtio-mmio devices to a kernel built without
 * CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES (Debian's cloud kernel is one).
 *
 * The VMM describes each device on the kernel command line as
 *     virtio_mmio.device=<size>@<base>:<irq>[:<id>]
 * but such a kernel ignores that parameter.  The initramfs reads the entries
 * from /proc/cmdline and loads this module with the same strings:
 *     insmod forkd_mmio.ko device=4K@0xd0000000:5,4K@0xd0001000:6
 * and the module registers one "virtio-mmio" platform device per entry, to
 * which the virtio_mmio driver then binds.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/platform_device.h>
#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/string.h>

#define FORKD_MMIO_MAX 32

static char *device[FORKD_MMIO_MAX];
static int ndevice;
module_param_array(device, charp, &ndevice, 0444);
MODULE_PARM_DESC(device, "virtio-mmio devices as <size>@<base>:<irq>[:<id>]");

static struct platform_device *pdevs[FORKD_MMIO_MAX];

/* Parse "<size>@<base>:<irq>[:<id>]"; size takes K/M/G suffixes. */
static int parse_one(const char *s, u64 *base, u64 *size, unsigned int *irq,
		     int *id)
{
	char *end;
	unsigned long long v;

	*size = memparse(s, &end);
	if (end == s || *end != '@' || *size == 0)
		return -EINVAL;
	s = end + 1;
	v = simple_strtoull(s, &end, 0);
	if (end == s || *end != ':')
		return -EINVAL;
	*base = v;
	s = end + 1;
	v = simple_strtoull(s, &end, 0);
	if (end == s || v == 0 || v > 0xffff)
		return -EINVAL;
	*irq = (unsigned int)v;
	*id = PLATFORM_DEVID_AUTO;
	if (*end == ':') {
		s = end + 1;
		v = simple_strtoull(s, &end, 0);
		if (end == s || v > INT_MAX)
			return -EINVAL;
		*id = (int)v;
	}
	if (*end != '\0')
		return -EINVAL;
	return 0;
}

static void forkd_mmio_remove_all(void)
{
	int i;

	for (i = 0; i < FORKD_MMIO_MAX; i++) {
		if (pdevs[i]) {
			platform_device_unregister(pdevs[i]);
			pdevs[i] = NULL;
		}
	}
}

static int __init forkd_mmio_init(void)
{
	int i, registered = 0;

	for (i = 0; i < ndevice; i++) {
		struct resource res[2];
		struct platform_device *pdev;
		u64 base, size;
		unsigned int irq;
		int id;

		if (parse_one(device[i], &base, &size, &irq, &id)) {
			pr_err("forkd_mmio: cannot parse device '%s'\n", device[i]);
			continue;
		}
		memset(res, 0, sizeof(res));
		res[0].start = base;
		res[0].end = base + size - 1;
		res[0].flags = IORESOURCE_MEM;
		res[1].start = irq;
		res[1].end = irq;
		res[1].flags = IORESOURCE_IRQ;

		pdev = platform_device_register_resndata(NULL, "virtio-mmio", id,
							 res, ARRAY_SIZE(res),
							 NULL, 0);
		if (IS_ERR(pdev)) {
			pr_err("forkd_mmio: registering %s failed: %ld\n",
			       device[i], PTR_ERR(pdev));
			continue;
		}
		pdevs[i] = pdev;
		registered++;
		pr_info("forkd_mmio: virtio-mmio at 0x%llx size 0x%llx irq %u\n",
			(unsigned long long)base, (unsigned long long)size, irq);
	}
	if (ndevice > 0 && registered == 0)
		return -ENODEV;
	return 0;
}

static void __exit forkd_mmio_exit(void)
{
	forkd_mmio_remove_all();
}

module_init(forkd_mmio_init);
module_exit(forkd_mmio_exit);
MODULE_DESCRIPTION("forkd: register virtio-mmio platform devices from a module parameter");
MODULE_LICENSE("GPL");
