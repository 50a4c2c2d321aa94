#include "vmm/mptable.h"

#include <errno.h>
#include <string.h>

#include "vmm/vm.h"

/* MP spec 1.4, chapter 4. */
struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length;	       /* in 16-byte units: 1 */
	uint8_t specification; /* 4 = version 1.4 */
	uint8_t checksum;
	uint8_t feature1, feature2, feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint32_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type; /* 0 */
	uint8_t apicid, apicver, cpuflag;
	uint32_t cpufeature, featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type; /* 1 */
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type; /* 2 */
	uint8_t apicid, apicver, flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type; /* 3 = I/O interrupt, 4 = local interrupt */
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

#define CPU_ENABLED   1
#define CPU_BSP	      2
#define APIC_VERSION  0x14
#define MP_IRQ_INT    0
#define MP_IRQ_NMI    1
#define MP_IRQ_EXTINT 3
#define ISA_IRQS      16

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

int mptable_write(struct guest_mem *mem, uint64_t gpa, uint64_t room, int nr_vcpus)
{
	size_t size = sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
		      (size_t)nr_vcpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
		      sizeof(struct mpc_ioapic) + (ISA_IRQS + 2) * sizeof(struct mpc_intsrc);
	uint8_t *base = guest_ptr(mem, gpa, room), *p;
	struct mpf_intel *mpf;
	struct mpc_table *mpc;
	uint8_t ioapic_id = (uint8_t)nr_vcpus;
	int i;

	if (!base || size > room)
		return -ENOSPC;
	memset(base, 0, size);
	mpf = (struct mpf_intel *)base;
	mpc = (struct mpc_table *)(mpf + 1);
	p = (uint8_t *)(mpc + 1);

	for (i = 0; i < nr_vcpus; i++) {
		struct mpc_cpu *c = (struct mpc_cpu *)p;

		c->type = 0;
		c->apicid = (uint8_t)i;
		c->apicver = APIC_VERSION;
		c->cpuflag = CPU_ENABLED | (i == 0 ? CPU_BSP : 0);
		c->cpufeature = 0x600;			/* family 6 */
		c->featureflag = (1u << 9) | (1u << 0); /* APIC, FPU */
		p += sizeof(*c);
	}
	{
		struct mpc_bus *b = (struct mpc_bus *)p;

		b->type = 1;
		b->busid = 0;
		memcpy(b->bustype, "ISA   ", 6);
		p += sizeof(*b);
	}
	{
		struct mpc_ioapic *io = (struct mpc_ioapic *)p;

		io->type = 2;
		io->apicid = ioapic_id;
		io->apicver = APIC_VERSION;
		io->flags = 1; /* enabled */
		io->apicaddr = (uint32_t)IOAPIC_ADDR;
		p += sizeof(*io);
	}
	/* ISA IRQ n arrives on IOAPIC pin n, as KVM's default GSI routing has it. */
	for (i = 0; i < ISA_IRQS; i++) {
		struct mpc_intsrc *s = (struct mpc_intsrc *)p;

		s->type = 3;
		s->irqtype = MP_IRQ_INT;
		s->irqflag = 0; /* bus default: edge, active high */
		s->srcbus = 0;
		s->srcbusirq = (uint8_t)i;
		s->dstapic = ioapic_id;
		s->dstirq = (uint8_t)i;
		p += sizeof(*s);
	}
	{
		struct mpc_intsrc *s = (struct mpc_intsrc *)p;

		s->type = 4; /* LINT0: ExtINT from the PIC, every LAPIC */
		s->irqtype = MP_IRQ_EXTINT;
		s->dstapic = 0xff;
		s->dstirq = 0;
		p += sizeof(*s);
		s = (struct mpc_intsrc *)p;
		s->type = 4; /* LINT1: NMI */
		s->irqtype = MP_IRQ_NMI;
		s->dstapic = 0xff;
		s->dstirq = 1;
		p += sizeof(*s);
	}

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	/* Entry count (MP spec 4.2): every entry written above. */
	mpc->oemcount = (uint16_t)(nr_vcpus + 2 + ISA_IRQS + 2);
	mpc->spec = 4;
	memcpy(mpc->oem, "FORKD   ", 8);
	memcpy(mpc->productid, "FORKD-VM    ", 12);
	mpc->lapic = (uint32_t)LAPIC_ADDR;
	mpc->checksum = checksum(mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(gpa + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
	return 0;
}
