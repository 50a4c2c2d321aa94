/* Guest physical memory.
 *
 * Layout (x86-64): RAM starts at guest-physical 0. Up to 3 GiB it is one
 * block below the 32-bit MMIO hole [3 GiB, 4 GiB); any rest continues at
 * 4 GiB. The host mapping is dense: host offset = the RAM's index, so a
 * snapshot's memory.bin is the host mapping byte for byte.
 *
 *   gpa 0 ........ low_end | hole (MMIO, LAPIC, IOAPIC) | 4 GiB ... 4 GiB + high
 *   hva base ..... base+low_end ........................ base+low_end+high
 *
 * Every access to guest memory from the VMM goes through guest_ptr(), which
 * refuses ranges that wrap, cross the hole or leave RAM. */
#ifndef FORKD_VMM_MEMORY_H
#define FORKD_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define MEM_HOLE_START 0xC0000000ULL
#define MEM_HOLE_END   0x100000000ULL

enum mem_backing {
	MEM_ANON,	  /* private anonymous pages (fresh boot) */
	MEM_FILE_PRIVATE, /* MAP_PRIVATE of a file: copy-on-write children */
	MEM_MEMFD,	  /* MAP_SHARED memfd (live fork; optional hugetlb) */
};

struct guest_mem {
	uint8_t *base;	   /* host mapping of all RAM, dense */
	uint64_t size;	   /* bytes of RAM in total */
	uint64_t low_size; /* bytes mapped at gpa 0 (<= MEM_HOLE_START) */
	enum mem_backing backing;
	int fd; /* memfd or file, -1 for anonymous */
};

struct mem_opts {
	enum mem_backing backing;
	const char *path; /* MEM_FILE_PRIVATE: file whose size must equal size */
	int fd;		  /* MEM_FILE_PRIVATE: an open fd instead of path (> 0;
			     dup'ed, so the caller keeps its own) */
	bool hugetlb;	  /* MEM_MEMFD: MFD_HUGETLB (2 MiB pages) */
};

/* Map `size` bytes (a multiple of 2 MiB) of guest RAM. On success the caller
 * owns *mem and releases it with guest_mem_unmap(). */
int guest_mem_map(struct guest_mem *mem, uint64_t size, const struct mem_opts *opts) __must_check;
void guest_mem_unmap(struct guest_mem *mem);

/* Lay bytes [off, off+len) of file fd over the same bytes of RAM (page
 * aligned), as a snapshot layer: privately mapped where RAM is a private
 * file mapping (no copy until the guest writes), read into RAM otherwise.
 * Call before any vCPU runs. 0 or -errno (not logged). */
int guest_mem_overlay(struct guest_mem *mem, uint64_t off, uint64_t len, int fd) __must_check;

/* Host pointer for [gpa, gpa+len) or NULL when any byte of it is not RAM.
 * Safe to call with guest-controlled gpa and len. */
void *guest_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Copy to/from guest memory; -EFAULT when the range is not RAM. */
int guest_read(const struct guest_mem *mem, uint64_t gpa, void *buf, uint64_t len) __must_check;
int guest_write(const struct guest_mem *mem, uint64_t gpa, const void *buf,
		uint64_t len) __must_check;

/* Guest-physical end of RAM (exclusive), for e820 and ACPI-less guests. */
uint64_t guest_mem_high_size(const struct guest_mem *mem);

#endif
