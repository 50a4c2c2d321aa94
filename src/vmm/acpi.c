#include "vmm/acpi.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
	char signature[8]; /* "RSD PTR " */
	uint8_t checksum;  /* first 20 bytes */
	char oem_id[6];
	uint8_t revision; /* 2: ACPI 2.0+ with XSDT */
	uint32_t rsdt_addr;
	uint32_t length;
	uint64_t xsdt_addr;
	uint8_t ext_checksum; /* all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_gas {
	uint8_t space_id; /* 1 = system I/O */
	uint8_t bit_width, bit_offset, access_size;
	uint64_t address;
} __attribute__((packed));

/* FADT, ACPI 6.5 §5.2.9 (276 bytes). Only the fields forkd sets are named. */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0[109 - 44];
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_blocks[8]; /* PM1a/b evt, PM1a/b cnt, PM2, PM timer, GPE0/1 */
	struct acpi_gas sleep_control;
	struct acpi_gas sleep_status;
	uint64_t hypervisor_id;
} __attribute__((packed));

#define FADT_F_HW_REDUCED     (1u << 20)
#define BOOT_ARCH_VGA_ABSENT  (1u << 2)
#define BOOT_ARCH_NO_MSI      (1u << 3)
#define BOOT_ARCH_NO_CMOS_RTC (1u << 5)

_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT layout");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP layout");

static uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

static void header_init(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, "FORKD ", 6);
	memcpy(h->oem_table_id, "FORKDVM ", 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "FRKD", 4);
	h->creator_revision = 1;
	h->checksum = 0;
	h->checksum = acpi_checksum(h, len);
}

/* ---- AML (ACPI 6.5 chapter 20), just the forms the DSDT needs ---- */

struct aml {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
};

static void aml_byte(struct aml *a, uint8_t b)
{
	if (a->len < a->cap)
		a->p[a->len] = b;
	else
		a->overflow = true;
	a->len++;
}

static void aml_bytes(struct aml *a, const void *src, size_t n)
{
	const uint8_t *s = src;

	while (n--)
		aml_byte(a, *s++);
}

static void aml_u32(struct aml *a, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

/* PkgLength (§20.2.4) for a body of n bytes, counting its own bytes. */
static void aml_pkglen(struct aml *a, size_t body)
{
	size_t total = body + 1;

	if (total <= 0x3f) {
		aml_byte(a, (uint8_t)total);
		return;
	}
	total = body + 2;
	if (total <= 0xfff) {
		aml_byte(a, (uint8_t)(0x40 | (total & 0xf)));
		aml_byte(a, (uint8_t)(total >> 4));
		return;
	}
	total = body + 3;
	aml_byte(a, (uint8_t)(0x80 | (total & 0xf)));
	aml_byte(a, (uint8_t)(total >> 4));
	aml_byte(a, (uint8_t)(total >> 12));
}

static size_t aml_pkglen_size(size_t body)
{
	return body + 1 <= 0x3f ? 1 : body + 2 <= 0xfff ? 2 : 3;
}

/* The body of Device(Vnnn): _HID, _UID, _CRS. */
static void aml_virtio_device_body(struct aml *a, unsigned index, uint64_t base, unsigned irq)
{
	static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N',
				      'R',  'O', '0', '0', '0', '5',  0x00};
	static const uint8_t uid[] = {0x08, '_', 'U', 'I', 'D', 0x0a};
	static const uint8_t crs[] = {0x08, '_', 'C', 'R', 'S', 0x11};
	const uint8_t res_len = 12 + 9 + 2; /* Memory32Fixed + Extended IRQ + End */

	aml_bytes(a, hid, sizeof(hid));
	aml_bytes(a, uid, sizeof(uid));
	aml_byte(a, (uint8_t)index);
	aml_bytes(a, crs, sizeof(crs));
	aml_pkglen(a, 2 + res_len);
	aml_byte(a, 0x0a); /* BufferSize: ByteConst */
	aml_byte(a, res_len);
	/* Memory32Fixed (§6.4.3.4): read/write, base, length */
	aml_bytes(a, (const uint8_t[]){0x86, 0x09, 0x00, 0x01}, 4);
	aml_u32(a, (uint32_t)base);
	aml_u32(a, (uint32_t)VIRTIO_MMIO_SIZE);
	/* Extended Interrupt (§6.4.3.6): consumer, edge, active high, exclusive */
	aml_bytes(a, (const uint8_t[]){0x89, 0x06, 0x00, 0x03, 0x01}, 5);
	aml_u32(a, irq);
	aml_bytes(a, (const uint8_t[]){0x79, 0x00}, 2); /* End tag */
}

static size_t aml_measure_device(unsigned index, uint64_t base, unsigned irq)
{
	struct aml m = {0};

	aml_virtio_device_body(&m, index, base, irq);
	return m.len;
}

/* Device(COM1): the 16550 at 0x3F8 on ISA IRQ 4 (the machine always has
 * it). The FADT is hardware-reduced, so Linux installs no legacy PIC and
 * maps no ISA IRQ by itself: its 8250 driver only gets a working
 * interrupt for COM1 when ACPI describes the port (PNP0501), as here.
 * Without it, output written to the tty stalls (printk polls the UART and
 * still gets through). */
static const uint8_t aml_com1[] = {
    'C',  'O',	'M',  '1',  0x08, '_',	'H',  'I',  'D',
    0x0c, 0x41, 0xd0, 0x05, 0x01,			  /* EisaId("PNP0501") */
    0x08, '_',	'U',  'I',  'D',  0x00,			  /* Zero */
    0x08, '_',	'C',  'R',  'S',  0x11, 0x10, 0x0a, 0x0d, /* Buffer(13) */
    0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,	  /* IO(Decode16, 0x3F8, 8) */
    0x22, 0x10, 0x00,					  /* IRQNoFlags() {4} */
    0x79, 0x00,						  /* End tag */
};

/* Device(VGEN): the VM generation ID (devices/vmgenid.h). ADDR is a
 * Package {low 32 bits, high 32 bits} of the ID's guest-physical address,
 * which Linux's vmgenid driver reads when it binds. */
static const char aml_vgen[] = "VGEN" /* Device(VGEN) */
			       "\x08_HID\x0d"
			       "VMGENCTR\0" /* Name(_HID, "VMGENCTR") */
			       "\x08"
			       "ADDR\x12\x08\x02"     /* Name(ADDR, Package(2) { */
			       "\x0c\x00\xf0\x0f\x00" /* DWordConst 0xFF000, */
			       "\x00";		      /* Zero }) */
_Static_assert(ACPI_VMGENID_ADDR == 0xFF000, "aml_vgen spells the address out");
_Static_assert(sizeof(aml_vgen) - 1 == 33, "aml_vgen's Package length");

/* Device(GED0): a Generic Event Device (ACPI0013) whose one edge-triggered
 * interrupt runs _EVT, which tells VGEN's driver the ID changed (Notify
 * 0x80). */
static const char aml_ged[] = "GED0" /* Device(GED0) */
			      "\x08_HID\x0d"
			      "ACPI0013\0"		    /* Name(_HID, "ACPI0013") */
			      "\x08_UID\x00"		    /* Name(_UID, Zero) */
			      "\x08_CRS\x11\x0e\x0a\x0b"    /* Name(_CRS, Buffer(11) { */
			      "\x89\x06\x00\x03\x01"	    /* Interrupt(consumer, edge, high) */
			      "\x10\x00\x00\x00"	    /* { 16 } */
			      "\x79\x00"		    /* End tag }) */
			      "\x14\x13_EVT\x01"	    /* Method(_EVT, 1) { */
			      "\x86\\\x2e_SB_VGEN\x0a\x80"; /* Notify(\_SB.VGEN, 0x80) } */
_Static_assert(ACPI_VMGENID_GSI == 16, "aml_ged spells the GSI out");
_Static_assert(sizeof(aml_ged) - 1 == 65, "aml_ged's Buffer and Method lengths");

static size_t aml_fixed_device_size(size_t len)
{
	return 2 + aml_pkglen_size(len) + len; /* ExtOpPrefix DeviceOp PkgLength */
}

static void aml_fixed_device(struct aml *a, const uint8_t *dev, size_t len)
{
	aml_byte(a, 0x5b); /* ExtOpPrefix */
	aml_byte(a, 0x82); /* DeviceOp */
	aml_pkglen(a, len);
	aml_bytes(a, dev, len);
}

static void aml_dsdt_body(struct aml *a, struct vm *vm)
{
	/* Name(\_S5, Package(2) {5, 0}) */
	static const uint8_t s5_name[] = {0x08, '\\', '_', 'S', '5', '_'};
	static const uint8_t s5_elems[] = {0x02, 0x0a, ACPI_S5_SLP_TYP, 0x00};
	size_t scope_body = 5; /* '\' "_SB_" */
	unsigned i;

	aml_bytes(a, s5_name, sizeof(s5_name));
	aml_byte(a, 0x12); /* PackageOp */
	aml_pkglen(a, sizeof(s5_elems));
	aml_bytes(a, s5_elems, sizeof(s5_elems));
	scope_body += aml_fixed_device_size(sizeof(aml_com1));
	if (vm->vmgenid)
		scope_body += aml_fixed_device_size(sizeof(aml_vgen) - 1) +
			      aml_fixed_device_size(sizeof(aml_ged) - 1);
	for (i = 0; i < vm->nr_virtio; i++) {
		uint64_t base;
		unsigned irq;
		size_t body;

		vm_virtio_slot(vm, i, &base, &irq);
		body = 4 + aml_measure_device(i, base, irq); /* NameSeg + body */
		/* ExtOpPrefix DeviceOp + PkgLength + body */
		scope_body += 2 + aml_pkglen_size(body) + body;
	}
	aml_byte(a, 0x10); /* ScopeOp */
	aml_pkglen(a, scope_body);
	aml_bytes(a, "\\_SB_", 5);
	aml_fixed_device(a, aml_com1, sizeof(aml_com1));
	if (vm->vmgenid) {
		aml_fixed_device(a, (const uint8_t *)aml_vgen, sizeof(aml_vgen) - 1);
		aml_fixed_device(a, (const uint8_t *)aml_ged, sizeof(aml_ged) - 1);
	}
	for (i = 0; i < vm->nr_virtio; i++) {
		char name[5];
		uint64_t base;
		unsigned irq;

		vm_virtio_slot(vm, i, &base, &irq);
		name[0] = 'V';
		name[1] = (char)('0' + i / 100 % 10);
		name[2] = (char)('0' + i / 10 % 10);
		name[3] = (char)('0' + i % 10);
		aml_byte(a, 0x5b); /* ExtOpPrefix */
		aml_byte(a, 0x82); /* DeviceOp */
		aml_pkglen(a, 4 + aml_measure_device(i, base, irq));
		aml_bytes(a, name, 4);
		aml_virtio_device_body(a, i, base, irq);
	}
}

/* ---- MADT, ACPI 6.5 §5.2.12 ---- */

static size_t madt_write(uint8_t *p, size_t room, struct vm *vm)
{
	size_t len = sizeof(struct acpi_header) + 8 + (size_t)vm->nr_vcpus * 8 + 12 + 6;
	uint8_t *e;
	uint32_t v;
	int i;

	if (len > room)
		return 0;
	memset(p, 0, len);
	v = (uint32_t)LAPIC_ADDR;
	memcpy(p + 36, &v, 4);
	v = 1; /* PCAT_COMPAT: a dual 8259 is present */
	memcpy(p + 40, &v, 4);
	e = p + 44;
	for (i = 0; i < vm->nr_vcpus; i++, e += 8) {
		e[0] = 0; /* Processor Local APIC */
		e[1] = 8;
		e[2] = (uint8_t)i; /* ACPI processor UID */
		e[3] = (uint8_t)i; /* APIC id */
		v = 1;		   /* enabled */
		memcpy(e + 4, &v, 4);
	}
	e[0] = 1; /* I/O APIC */
	e[1] = 12;
	e[2] = (uint8_t)vm->nr_vcpus; /* id after the CPUs' */
	v = (uint32_t)IOAPIC_ADDR;
	memcpy(e + 4, &v, 4);
	v = 0; /* GSI base */
	memcpy(e + 8, &v, 4);
	e += 12;
	e[0] = 4; /* Local APIC NMI: all processors, LINT1 */
	e[1] = 6;
	e[2] = 0xff;
	e[5] = 1;
	header_init((struct acpi_header *)p, "APIC", (uint32_t)len, 5);
	return len;
}

int acpi_write_tables(struct vm *vm)
{
	/* The tables end where the generation ID's page begins. */
	const uint64_t area = ACPI_VMGENID_ADDR - ACPI_RSDP_ADDR;
	uint8_t *base = guest_ptr(&vm->mem, ACPI_RSDP_ADDR, area);
	uint64_t off, xsdt_off, fadt_off, madt_off, dsdt_off;
	struct acpi_rsdp *rsdp;
	struct acpi_fadt *fadt;
	struct aml aml;
	uint64_t xsdt_entries[2];
	size_t madt_len;

	if (!base)
		return -ENOSPC;
	memset(base, 0, area);
	off = ALIGN_UP(sizeof(*rsdp), 16ULL);

	xsdt_off = off;
	off = ALIGN_UP(off + sizeof(struct acpi_header) + 2 * 8, 16ULL);
	fadt_off = off;
	off = ALIGN_UP(off + sizeof(struct acpi_fadt), 16ULL);
	madt_off = off;
	madt_len = madt_write(base + madt_off, area - madt_off, vm);
	if (!madt_len)
		return -ENOSPC;
	off = ALIGN_UP(off + madt_len, 16ULL);
	dsdt_off = off;

	aml = (struct aml){base + dsdt_off + sizeof(struct acpi_header), 0,
			   area - dsdt_off - sizeof(struct acpi_header), false};
	aml_dsdt_body(&aml, vm);
	if (aml.overflow) {
		log_err("ACPI: DSDT does not fit below 1 MiB");
		return -ENOSPC;
	}
	header_init((struct acpi_header *)(base + dsdt_off), "DSDT",
		    (uint32_t)(sizeof(struct acpi_header) + aml.len), 2);

	fadt = (struct acpi_fadt *)(base + fadt_off);
	fadt->dsdt = (uint32_t)(ACPI_RSDP_ADDR + dsdt_off);
	fadt->x_dsdt = ACPI_RSDP_ADDR + dsdt_off;
	fadt->flags = FADT_F_HW_REDUCED;
	fadt->iapc_boot_arch = BOOT_ARCH_VGA_ABSENT | BOOT_ARCH_NO_MSI | BOOT_ARCH_NO_CMOS_RTC;
	fadt->minor_version = 5;
	fadt->sleep_control = (struct acpi_gas){1, 8, 0, 1, ACPI_SLEEP_CONTROL_PORT};
	fadt->sleep_status = (struct acpi_gas){1, 8, 0, 1, ACPI_SLEEP_STATUS_PORT};
	memcpy(&fadt->hypervisor_id, "FORKD\0\0\0", 8);
	header_init(&fadt->h, "FACP", sizeof(*fadt), 6);

	/* Entries sit at header + 36: not 8-byte aligned, so copy them in. */
	xsdt_entries[0] = ACPI_RSDP_ADDR + fadt_off;
	xsdt_entries[1] = ACPI_RSDP_ADDR + madt_off;
	memcpy(base + xsdt_off + sizeof(struct acpi_header), xsdt_entries, sizeof(xsdt_entries));
	header_init((struct acpi_header *)(base + xsdt_off), "XSDT",
		    sizeof(struct acpi_header) + 2 * 8, 1);

	rsdp = (struct acpi_rsdp *)base;
	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, "FORKD ", 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_addr = ACPI_RSDP_ADDR + xsdt_off;
	rsdp->checksum = acpi_checksum(rsdp, 20);
	rsdp->ext_checksum = acpi_checksum(rsdp, sizeof(*rsdp));
	return 0;
}
