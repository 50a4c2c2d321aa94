#include "vmm/boot.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#include "common/file.h"
#include "common/util.h"
#include "vmm/acpi.h"
#include "vmm/mptable.h"

#define HDR_MAGIC	 0x53726448u /* "HdrS" */
#define E820_RAM	 1
#define E820_RESERVED	 2
#define MAX_KERNEL_BYTES (512ULL * MIB)

/* x86 page-table and segment bits used for the boot mappings. */
#define PTE_P	 (1ULL << 0)
#define PTE_W	 (1ULL << 1)
#define PTE_PS	 (1ULL << 7)
#define CR0_PE	 (1ULL << 0)
#define CR0_MP	 (1ULL << 1)
#define CR0_ET	 (1ULL << 4)
#define CR0_NE	 (1ULL << 5)
#define CR0_PG	 (1ULL << 31)
#define CR4_PAE	 (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

static int read_file(const char *path, uint8_t **out, uint64_t *len)
{
	size_t n = 0;
	char *buf;
	int err = file_read(path, MAX_KERNEL_BYTES, &buf, &n);

	if (err == -EINVAL || err == -EFBIG || (!err && !n)) {
		log_err("%s: not a regular file of 1 byte to %llu MiB", path,
			(unsigned long long)(MAX_KERNEL_BYTES / MIB));
		if (!err)
			free(buf);
		return -EINVAL;
	}
	if (err) {
		log_err("read %s: %s", path, strerror(-err));
		return err;
	}
	*out = (uint8_t *)buf;
	*len = n;
	return 0;
}

int boot_load_elf(struct vm *vm, const uint8_t *img, uint64_t len, struct boot_info *info)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	uint64_t phend, entry = 0, end = 0;
	bool entry_found = false;
	unsigned i;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64) {
		log_err("kernel: not an x86-64 ELF64 image");
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    __builtin_mul_overflow((uint64_t)eh->e_phnum, sizeof(Elf64_Phdr), &phend) ||
	    __builtin_add_overflow(phend, eh->e_phoff, &phend) || phend > len) {
		log_err("kernel: ELF program headers out of bounds");
		return -ENOEXEC;
	}
	for (i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr phdr, *ph = &phdr;
		uint64_t fend, mend;
		uint8_t *dst;

		/* e_phoff need not be aligned: copy, do not cast. */
		memcpy(&phdr, img + eh->e_phoff + (uint64_t)i * sizeof(phdr), sizeof(phdr));

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if (ph->p_filesz > ph->p_memsz ||
		    __builtin_add_overflow(ph->p_offset, ph->p_filesz, &fend) || fend > len ||
		    __builtin_add_overflow(ph->p_paddr, ph->p_memsz, &mend)) {
			log_err("kernel: ELF segment %u out of bounds", i);
			return -ENOEXEC;
		}
		dst = guest_ptr(&vm->mem, ph->p_paddr, ph->p_memsz);
		if (!dst || ph->p_paddr < BOOT_HIMEM_ADDR) {
			log_err("kernel: ELF segment %u at 0x%llx+0x%llx is outside guest RAM "
				"above 1 MiB (more --mem-mib?)",
				i, (unsigned long long)ph->p_paddr,
				(unsigned long long)ph->p_memsz);
			return -ENOSPC;
		}
		memcpy(dst, img + ph->p_offset, ph->p_filesz);
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		end = MAX(end, mend);
		/* vmlinux's e_entry is physical; a linked-virtual one is
		 * translated through the segment holding it. */
		if (eh->e_entry >= ph->p_paddr && eh->e_entry - ph->p_paddr < ph->p_memsz) {
			entry = eh->e_entry;
			entry_found = true;
		} else if (eh->e_entry >= ph->p_vaddr && eh->e_entry - ph->p_vaddr < ph->p_memsz) {
			entry = eh->e_entry - ph->p_vaddr + ph->p_paddr;
			entry_found = true;
		}
	}
	if (!entry_found) {
		log_err("kernel: ELF entry point 0x%llx is in no loadable segment",
			(unsigned long long)eh->e_entry);
		return -ENOEXEC;
	}
	info->entry = entry;
	info->kernel_end = end;
	info->elf = true;
	return 0;
}

/* LZ4 legacy frame ("lz4 -l"): magic, then blocks of u32 compressed size
 * + data, each inflating to at most 8 MiB. The magic may repeat where
 * streams were concatenated. */
static int decompress_lz4_legacy(const uint8_t *p, uint64_t len, uint8_t *out, uint32_t size)
{
	const uint32_t magic = 0x184c2102, block_max = 8 << 20;
	uint64_t off = 0, done = 0;

	while (off + 4 <= len) {
		uint32_t blk;
		int n;

		memcpy(&blk, p + off, 4);
		off += 4;
		if (blk == magic)
			continue;
		if (blk > len - off || blk > (uint32_t)LZ4_compressBound((int)block_max))
			return -ENOEXEC;
		n = LZ4_decompress_safe((const char *)p + off, (char *)out + done, (int)blk,
					(int)MIN((uint64_t)block_max, size - done));
		if (n < 0)
			return -ENOEXEC;
		done += (uint64_t)n;
		off += blk;
		if (done == size)
			return 0;
	}
	return done == size ? 0 : -ENOEXEC;
}

/* The kernel build appends the uncompressed size (little-endian u32) to
 * the compressed payload; both gzip (ISIZE) and zstd images end with it. */
static int decompress_payload(const uint8_t *p, uint64_t len, uint8_t **out, uint64_t *out_len)
{
	uint32_t size;
	uint8_t *buf;

	if (len < 8)
		return -ENOEXEC;
	memcpy(&size, p + len - 4, 4);
	if (size < sizeof(Elf64_Ehdr) || size > MAX_KERNEL_BYTES)
		return -ENOEXEC;
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	if (p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) {
		size_t frame = ZSTD_findFrameCompressedSize(p, len);
		size_t n;

		if (ZSTD_isError(frame))
			goto bad;
		n = ZSTD_decompress(buf, size, p, frame);
		if (ZSTD_isError(n) || n != size) {
			log_err("kernel: zstd payload: %s",
				ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short output");
			goto bad;
		}
	} else if (p[0] == 0x1f && p[1] == 0x8b) {
		z_stream zs = {0};
		int zr;

		if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
			goto bad;
		zs.next_in = (Bytef *)p;
		zs.avail_in = (uInt)len;
		zs.next_out = buf;
		zs.avail_out = size;
		zr = inflate(&zs, Z_FINISH);
		inflateEnd(&zs);
		if (zr != Z_STREAM_END || zs.total_out != size) {
			log_err("kernel: gzip payload: %s", zs.msg ? zs.msg : "bad stream");
			goto bad;
		}
	} else if (p[0] == 0x02 && p[1] == 0x21 && p[2] == 0x4c && p[3] == 0x18) {
		if (decompress_lz4_legacy(p, len - 4, buf, size))
			goto bad;
	} else {
		free(buf);
		return -ENOTSUP;
	}
	*out = buf;
	*out_len = size;
	return 0;
bad:
	free(buf);
	return -ENOEXEC;
}

static int load_bzimage(struct vm *vm, const uint8_t *img, uint64_t len,
			const struct boot_opts *opts, struct setup_header *hdr,
			struct boot_info *info)
{
	uint64_t setup_size, hdr_end, payload, pm_len;
	uint8_t *elf = NULL, *dst;
	uint64_t elf_len;
	int err;

	hdr_end = 0x202ULL + img[0x201];
	memcpy(hdr, img + 0x1f1, MIN(hdr_end, 0x1f1 + sizeof(*hdr)) - 0x1f1);
	if (hdr->version < 0x020c || !(hdr->xloadflags & XLF_KERNEL_64)) {
		log_err("kernel: bzImage protocol %u.%02u has no 64-bit entry point (need 2.12+)",
			hdr->version >> 8, hdr->version & 0xff);
		return -ENOEXEC;
	}
	setup_size = ((uint64_t)(hdr->setup_sects ? hdr->setup_sects : 4) + 1) * 512;
	if (setup_size >= len) {
		log_err("kernel: bzImage setup size exceeds the file");
		return -ENOEXEC;
	}
	pm_len = len - setup_size;

	if (!opts->guest_decompress && hdr->payload_length &&
	    __builtin_add_overflow(setup_size, (uint64_t)hdr->payload_offset, &payload) == 0 &&
	    payload + hdr->payload_length <= len) {
		err = decompress_payload(img + payload, hdr->payload_length, &elf, &elf_len);
		if (err == 0) {
			err = boot_load_elf(vm, elf, elf_len, info);
			free(elf);
			if (err == 0)
				log_debug(
				    "kernel: bzImage payload decompressed by forkd, entry 0x%llx",
				    (unsigned long long)info->entry);
			return err;
		}
		if (err != -ENOTSUP)
			log_warn("kernel: could not decompress the bzImage payload; "
				 "the guest decompressor will run (slow on KVM-PVM)");
	}

	/* The guest decompresses: protected-mode code at 1 MiB, 64-bit entry
	 * 0x200 bytes in (boot protocol, "64-bit boot protocol"). It needs
	 * init_size bytes from its load address. */
	dst = guest_ptr(&vm->mem, BOOT_HIMEM_ADDR, MAX(pm_len, (uint64_t)hdr->init_size));
	if (!dst) {
		log_err("kernel: bzImage needs %u bytes above 1 MiB; give the guest more memory",
			hdr->init_size);
		return -ENOSPC;
	}
	memcpy(dst, img + setup_size, pm_len);
	info->entry = BOOT_HIMEM_ADDR + 0x200;
	info->kernel_end = BOOT_HIMEM_ADDR + MAX(pm_len, (uint64_t)hdr->init_size);
	info->elf = false;
	return 0;
}

static int load_initrd(struct vm *vm, const char *path, const struct setup_header *hdr,
		       struct boot_info *info)
{
	uint64_t max = vm->mem.low_size, addr;
	uint8_t *buf, *dst;
	uint64_t len;
	int err;

	err = read_file(path, &buf, &len);
	if (err)
		return err;
	if (hdr->initrd_addr_max)
		max = MIN(max, (uint64_t)hdr->initrd_addr_max + 1);
	addr = len <= max ? ALIGN_DOWN(max - len, 4096ULL) : 0;
	if (len > max || addr < ALIGN_UP(info->kernel_end, 4096ULL)) {
		log_err("initrd %s (%llu bytes) does not fit between the kernel and the end of "
			"low RAM; give the guest more memory",
			path, (unsigned long long)len);
		free(buf);
		return -ENOSPC;
	}
	dst = guest_ptr(&vm->mem, addr, len);
	memcpy(dst, buf, len);
	free(buf);
	info->initrd_addr = addr;
	info->initrd_size = len;
	return 0;
}

static void add_e820(struct boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	struct boot_e820_entry *e;

	if (bp->e820_entries >= ARRAY_SIZE(bp->e820_table) || size == 0)
		return;
	e = &bp->e820_table[bp->e820_entries++];
	e->addr = addr;
	e->size = size;
	e->type = type;
}

/* Identity-map the first 4 GiB with 2 MiB pages: enough for the kernel,
 * initrd and boot_params wherever they are, and for the MMIO hole. */
static int write_page_tables(struct vm *vm)
{
	uint64_t *pml4 = guest_ptr(&vm->mem, BOOT_PML4_ADDR, 6 * 4096);
	uint64_t *pdpt, *pd;
	int i;

	if (!pml4)
		return -ENOSPC;
	memset(pml4, 0, 6 * 4096);
	pdpt = pml4 + 512;
	pd = pdpt + 512;
	pml4[0] = (BOOT_PML4_ADDR + 0x1000) | PTE_P | PTE_W;
	for (i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PML4_ADDR + 0x2000 + (uint64_t)i * 0x1000) | PTE_P | PTE_W;
	for (i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | PTE_P | PTE_W | PTE_PS;
	return 0;
}

static int write_gdt(struct vm *vm)
{
	/* Boot protocol: __BOOT_CS = 0x10, __BOOT_DS = 0x18, flat. */
	static const uint64_t gdt[] = {
	    0, 0, 0x00af9b000000ffffULL, /* code: 64-bit, present, DPL 0 */
	    0x00cf93000000ffffULL,	 /* data: 4 GiB, writable */
	};

	return guest_write(&vm->mem, BOOT_GDT_ADDR, gdt, sizeof(gdt));
}

int boot_load(struct vm *vm, const struct boot_opts *opts, struct boot_info *info)
{
	struct boot_params *bp;
	struct setup_header hdr = {0};
	uint64_t cmdline_max = 2048, len;
	uint8_t *img;
	char *cmd;
	int err;

	memset(info, 0, sizeof(*info));
	if (vm->mem.low_size < 16 * MIB) {
		log_err("guest needs at least 16 MiB of memory");
		return -EINVAL;
	}
	err = read_file(opts->kernel, &img, &len);
	if (err)
		return err;
	if (len >= 0x250 && img[0x1fe] == 0x55 && img[0x1ff] == 0xaa &&
	    !memcmp(img + 0x202, "HdrS", 4)) {
		err = load_bzimage(vm, img, len, opts, &hdr, info);
	} else if (len >= 4 && !memcmp(img, ELFMAG, SELFMAG)) {
		err = boot_load_elf(vm, img, len, info);
	} else {
		log_err("%s: not a bzImage or an ELF kernel", opts->kernel);
		err = -ENOEXEC;
	}
	free(img);
	if (err)
		return err;
	if (!hdr.header) {
		/* A bare ELF kernel: describe ourselves as a protocol 2.15 loader. */
		hdr.boot_flag = 0xaa55;
		hdr.header = HDR_MAGIC;
		hdr.version = 0x020f;
		hdr.initrd_addr_max = 0x7fffffff;
		hdr.kernel_alignment = 0x200000;
	}
	if (hdr.version >= 0x0206 && hdr.cmdline_size)
		cmdline_max = MIN((uint64_t)hdr.cmdline_size + 1, BOOT_CMDLINE_MAX);

	if (opts->initrd) {
		err = load_initrd(vm, opts->initrd, &hdr, info);
		if (err)
			return err;
	}

	cmd = guest_ptr(&vm->mem, BOOT_CMDLINE_ADDR, cmdline_max);
	if (!cmd)
		return -ENOSPC;
	len = (uint64_t)snprintf(cmd, cmdline_max, "%s%s%s", opts->cmdline ? opts->cmdline : "",
				 opts->cmdline && *opts->cmdline && vm->cmdline_extra[0] ? " " : "",
				 vm->cmdline_extra);
	if (len >= cmdline_max) {
		log_err("kernel command line is %llu bytes; this kernel accepts at most %llu",
			(unsigned long long)len, (unsigned long long)cmdline_max - 1);
		return -E2BIG;
	}

	bp = guest_ptr(&vm->mem, BOOT_PARAMS_ADDR, sizeof(*bp));
	memset(bp, 0, sizeof(*bp));
	bp->hdr = hdr;
	bp->hdr.type_of_loader = 0xff; /* undefined loader */
	bp->hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.cmd_line_ptr = (uint32_t)BOOT_CMDLINE_ADDR;
	bp->hdr.cmdline_size = (uint32_t)cmdline_max - 1;
	bp->hdr.ramdisk_image = (uint32_t)info->initrd_addr;
	bp->hdr.ramdisk_size = (uint32_t)info->initrd_size;

	add_e820(bp, 0, BOOT_EBDA_ADDR, E820_RAM);
	add_e820(bp, BOOT_EBDA_ADDR, BOOT_HIMEM_ADDR - BOOT_EBDA_ADDR, E820_RESERVED);
	add_e820(bp, BOOT_HIMEM_ADDR, vm->mem.low_size - BOOT_HIMEM_ADDR, E820_RAM);
	add_e820(bp, MEM_HOLE_END, guest_mem_high_size(&vm->mem), E820_RAM);

	err = mptable_write(&vm->mem, BOOT_EBDA_ADDR, 0x400, vm->nr_vcpus);
	if (err) {
		log_err("MP table for %d vCPUs does not fit in the EBDA", vm->nr_vcpus);
		return err;
	}
	err = acpi_write_tables(vm);
	if (err)
		return err;
	bp->acpi_rsdp_addr = ACPI_RSDP_ADDR;
	err = write_gdt(vm);
	if (err)
		return err;
	return write_page_tables(vm);
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64;
	s->db = !code64;
}

int boot_setup_bsp(struct vm *vm, const struct boot_info *info)
{
	struct vcpu *bsp = &vm->vcpus[0];
	struct kvm_sregs sregs;
	struct kvm_regs regs = {0};

	if (ioctl(bsp->fd, KVM_GET_SREGS, &sregs) < 0)
		return log_errno("KVM_GET_SREGS(vcpu 0)");
	set_seg(&sregs.cs, 0x10, 0xb, true);
	set_seg(&sregs.ds, 0x18, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	/* A busy 64-bit TSS: VM entry checks TR even though nothing uses it. */
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.limit = 0xffff;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 4 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
	sregs.cr3 = BOOT_PML4_ADDR;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(bsp->fd, KVM_SET_SREGS, &sregs) < 0)
		return log_errno("KVM_SET_SREGS(vcpu 0)");

	regs.rflags = 0x2;
	regs.rip = info->entry;
	regs.rsi = BOOT_PARAMS_ADDR;
	regs.rsp = BOOT_STACK_TOP;
	regs.rbp = BOOT_STACK_TOP;
	if (ioctl(bsp->fd, KVM_SET_REGS, &regs) < 0)
		return log_errno("KVM_SET_REGS(vcpu 0)");
	return 0;
}
