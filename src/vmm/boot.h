/* Loading a kernel per the Linux x86 boot protocol (Documentation/arch/x86/
 * boot.rst), entered at its 64-bit entry point.
 *
 * Guest-physical layout written here:
 *   0x00500  GDT (null, null, __BOOT_CS=0x10 code64, __BOOT_DS=0x18 data)
 *   0x07000  boot_params ("zero page"), e820 table inside
 *   0x08000  boot stack (grows down from 0x8ff0)
 *   0x09000  PML4, 0x0a000 PDPT, 0x0b000-0x0efff four PDs: identity map of
 *            the first 4 GiB with 2 MiB pages
 *   0x20000  kernel command line
 *   0x9fc00  MP floating pointer + table (reserved in e820)
 *   0x100000 bzImage protected-mode code (when the guest decompresses)
 *   p_paddr  ELF segments (vmlinux: 16 MiB)
 *   top      initrd, at the highest page-aligned address below the lower of
 *            initrd_addr_max and the end of low RAM
 *
 * Kernel formats: ELF64 (vmlinux, or a test guest), and bzImage. A bzImage
 * whose payload is gzip or zstd is decompressed by forkd and its ELF loaded
 * directly: on KVM-PVM the guest's own decompressor runs emulated and costs
 * over a minute. Other payloads run the guest's decompressor. */
#ifndef FORKD_VMM_BOOT_H
#define FORKD_VMM_BOOT_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/vm.h"

#define BOOT_GDT_ADDR	  0x500ULL
#define BOOT_PARAMS_ADDR  0x7000ULL
#define BOOT_STACK_TOP	  0x8ff0ULL
#define BOOT_PML4_ADDR	  0x9000ULL
#define BOOT_CMDLINE_ADDR 0x20000ULL
#define BOOT_CMDLINE_MAX  0x10000ULL
#define BOOT_EBDA_ADDR	  0x9fc00ULL
#define BOOT_HIMEM_ADDR	  0x100000ULL

struct boot_opts {
	const char *kernel;    /* path: ELF64 or bzImage */
	const char *initrd;    /* path or NULL */
	const char *cmdline;   /* may be NULL; vm->cmdline_extra is appended */
	bool guest_decompress; /* bzImage: run the kernel's own decompressor */
};

struct boot_info {
	uint64_t entry;	     /* guest-physical 64-bit entry point */
	uint64_t kernel_end; /* first byte above the loaded kernel */
	uint64_t initrd_addr, initrd_size;
	bool elf; /* loaded as ELF (vmlinux or decompressed payload) */
};

/* Load kernel, initrd and command line into guest RAM, write boot_params,
 * e820, MP table, GDT and page tables. Call after every device has been
 * added (devices extend the command line). */
int boot_load(struct vm *vm, const struct boot_opts *opts, struct boot_info *info) __must_check;

/* Put vCPU 0 in 64-bit mode at info->entry with RSI = boot_params. */
int boot_setup_bsp(struct vm *vm, const struct boot_info *info) __must_check;

/* Exposed for unit tests: load an ELF64 image from memory. */
int boot_load_elf(struct vm *vm, const uint8_t *img, uint64_t len,
		  struct boot_info *info) __must_check;

#endif
