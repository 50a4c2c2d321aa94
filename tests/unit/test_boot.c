/* ELF loading (boot_load_elf() in src/vmm/boot.c) from synthetic images in
 * memory: segments land at p_paddr, bss is zeroed, a virtual entry point is
 * translated through its segment, and every malformed header or segment
 * that would reach outside the image or guest RAM is refused. The VM has
 * only guest memory; no KVM needed. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "vmm/boot.h"

#define RAM	   (32 * MIB)
#define LOAD_PADDR 0x200000ULL
#define LOAD_VADDR 0xffffffff80200000ULL
#define TEXT_SIZE  0x300ULL
#define MEM_SIZE   0x2000ULL /* text + bss */

/* Ehdr, two program headers (a note and a PT_LOAD), then the text. */
struct image {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	uint8_t text[TEXT_SIZE];
};

static int setup(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	const struct mem_opts anon = {.backing = MEM_ANON};

	assert_non_null(vm);
	assert_int_equal(guest_mem_map(&vm->mem, RAM, &anon), 0);
	/* Garbage where bss goes: the loader must clear it. */
	memset(vm->mem.base + LOAD_PADDR, 0xaa, 0x10000);
	*state = vm;
	return 0;
}

static int teardown(void **state)
{
	struct vm *vm = *state;

	guest_mem_unmap(&vm->mem);
	free(vm);
	return 0;
}

static struct image *make_image(void)
{
	struct image *img = calloc(1, sizeof(*img));
	unsigned i;

	assert_non_null(img);
	memcpy(img->eh.e_ident, ELFMAG, SELFMAG);
	img->eh.e_ident[EI_CLASS] = ELFCLASS64;
	img->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	img->eh.e_ident[EI_VERSION] = EV_CURRENT;
	img->eh.e_type = ET_EXEC;
	img->eh.e_machine = EM_X86_64;
	img->eh.e_version = EV_CURRENT;
	img->eh.e_entry = LOAD_VADDR + 0x10; /* linked virtual, like vmlinux's symbols */
	img->eh.e_phoff = offsetof(struct image, ph);
	img->eh.e_ehsize = sizeof(Elf64_Ehdr);
	img->eh.e_phentsize = sizeof(Elf64_Phdr);
	img->eh.e_phnum = 2;
	img->ph[0] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = 0, .p_filesz = 16, .p_memsz = 16};
	img->ph[1] = (Elf64_Phdr){
	    .p_type = PT_LOAD,
	    .p_flags = PF_R | PF_X,
	    .p_offset = offsetof(struct image, text),
	    .p_vaddr = LOAD_VADDR,
	    .p_paddr = LOAD_PADDR,
	    .p_filesz = TEXT_SIZE,
	    .p_memsz = MEM_SIZE,
	    .p_align = 0x1000,
	};
	for (i = 0; i < TEXT_SIZE; i++)
		img->text[i] = (uint8_t)(i * 7 + 1);
	return img;
}

static int load(struct vm *vm, struct image *img, struct boot_info *bi)
{
	memset(bi, 0, sizeof(*bi));
	return boot_load_elf(vm, (const uint8_t *)img, sizeof(*img), bi);
}

static void test_load(void **state)
{
	struct vm *vm = *state;
	struct image *img = make_image();
	struct boot_info bi;
	uint64_t i;

	assert_int_equal(load(vm, img, &bi), 0);
	assert_memory_equal(vm->mem.base + LOAD_PADDR, img->text, TEXT_SIZE);
	for (i = TEXT_SIZE; i < MEM_SIZE; i++)
		assert_int_equal(vm->mem.base[LOAD_PADDR + i], 0);
	/* Past p_memsz nothing was touched. */
	assert_int_equal(vm->mem.base[LOAD_PADDR + MEM_SIZE], 0xaa);
	assert_int_equal(bi.entry, LOAD_PADDR + 0x10);
	assert_int_equal(bi.kernel_end, LOAD_PADDR + MEM_SIZE);
	assert_true(bi.elf);
	free(img);
}

static void test_physical_entry(void **state)
{
	struct vm *vm = *state;
	struct image *img = make_image();
	struct boot_info bi;

	img->eh.e_entry = LOAD_PADDR + 0x20;
	assert_int_equal(load(vm, img, &bi), 0);
	assert_int_equal(bi.entry, LOAD_PADDR + 0x20);
	free(img);
}

static void test_entry_outside_segments(void **state)
{
	struct vm *vm = *state;
	struct image *img = make_image();
	struct boot_info bi;

	img->eh.e_entry = LOAD_VADDR + MEM_SIZE;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	img->eh.e_entry = 0x1000;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);
}

static void test_segment_outside_ram(void **state)
{
	struct vm *vm = *state;
	struct image *img = make_image();
	struct boot_info bi;

	img->eh.e_entry = LOAD_PADDR;
	/* Ends past the end of RAM. */
	img->ph[1].p_paddr = RAM - 0x1000;
	img->eh.e_entry = img->ph[1].p_paddr;
	assert_int_equal(load(vm, img, &bi), -ENOSPC);
	/* Below 1 MiB: the boot structures live there. */
	img->ph[1].p_paddr = 0x8000;
	img->eh.e_entry = img->ph[1].p_paddr;
	assert_int_equal(load(vm, img, &bi), -ENOSPC);
	/* In the 32-bit hole. */
	img->ph[1].p_paddr = MEM_HOLE_START;
	img->eh.e_entry = img->ph[1].p_paddr;
	assert_int_equal(load(vm, img, &bi), -ENOSPC);
	/* p_paddr + p_memsz wraps. */
	img->ph[1].p_paddr = UINT64_MAX - 0x100;
	img->eh.e_entry = img->ph[1].p_paddr;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);
}

static void test_bad_headers(void **state)
{
	struct vm *vm = *state;
	struct image *img;
	struct boot_info bi;

	img = make_image();
	img->eh.e_ident[EI_MAG1] = 'X';
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);

	img = make_image();
	img->eh.e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);

	img = make_image();
	img->eh.e_machine = EM_AARCH64;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);

	img = make_image();
	img->eh.e_phentsize = sizeof(Elf64_Phdr) - 8;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);

	/* Program headers past the end of the image, or wrapping. */
	img = make_image();
	img->eh.e_phnum = 200;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	img->eh.e_phnum = 2;
	img->eh.e_phoff = UINT64_MAX - 8;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);

	/* Shorter than an ELF header. */
	img = make_image();
	assert_int_equal(boot_load_elf(vm, (const uint8_t *)img, sizeof(Elf64_Ehdr) - 1, &bi),
			 -ENOEXEC);
	free(img);
}

static void test_bad_segments(void **state)
{
	struct vm *vm = *state;
	struct image *img = make_image();
	struct boot_info bi;

	/* File bytes beyond the image. */
	img->ph[1].p_filesz = TEXT_SIZE + 1;
	img->ph[1].p_memsz = MEM_SIZE;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	/* More file bytes than memory bytes. */
	img->ph[1].p_filesz = 0x100;
	img->ph[1].p_memsz = 0x80;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	/* p_offset + p_filesz wraps. */
	img->ph[1].p_memsz = MEM_SIZE;
	img->ph[1].p_offset = UINT64_MAX - 0x10;
	assert_int_equal(load(vm, img, &bi), -ENOEXEC);
	free(img);
}

/* Program headers at an offset that is not a multiple of 8: legal ELF
 * for a loader that reads through memcpy, and a crafted file could do it
 * anyway. Loads the same as the aligned image. */
static void test_unaligned_headers(void **state)
{
	struct vm *vm = *state;
	struct image *img = make_image();
	size_t shift = 3, len = sizeof(*img) + shift;
	uint8_t *buf = calloc(1, len);
	struct boot_info bi;

	assert_non_null(buf);
	img->eh.e_phoff += shift;
	img->ph[1].p_offset += shift;
	memcpy(buf, &img->eh, sizeof(img->eh));
	memcpy(buf + sizeof(img->eh) + shift, img->ph, sizeof(*img) - sizeof(img->eh));
	assert_int_equal(boot_load_elf(vm, buf, len, &bi), 0);
	assert_memory_equal(vm->mem.base + LOAD_PADDR, img->text, TEXT_SIZE);
	assert_int_equal(bi.entry, LOAD_PADDR + 0x10);
	free(buf);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_physical_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_entry_outside_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_segment_outside_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unaligned_headers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
