/* vmstate: a VM's CPU, interrupt-controller, clock and device state.
 *
 * Binary, little-endian (the only byte order forkd runs on), versioned,
 * made of self-describing sections so a reader can check every length and
 * checksum before it trusts a byte:
 *
 *   offset  size  file header
 *   0       8     magic "FORKDVMS"
 *   8       4     format version (VMSTATE_VERSION)
 *   12      4     header size (32)
 *   16      4     number of sections
 *   20      4     flags (0)
 *   24      8     total file size
 *
 *   section, repeated:
 *   0       4     type (enum vmstate_type)
 *   4       4     instance (vCPU index, device slot; 0 otherwise)
 *   8       8     payload length
 *   16      4     CRC-32 (zlib polynomial) of the payload
 *   20      4     reserved (0)
 *   24      len   payload, then zero padding to a multiple of 8
 *
 * docs/FORMAT.md draws the payload of each section type. */
#ifndef FORKD_SNAPSHOT_VMSTATE_H
#define FORKD_SNAPSHOT_VMSTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "vmm/vm_persist.h"

#define VMSTATE_MAGIC	 "FORKDVMS"
#define VMSTATE_VERSION	 1
#define VMSTATE_MAX_SIZE (64ULL << 20) /* refuse larger files */

/* Section types are the VM's (vmm/vm_persist.h, enum vm_section_type);
 * their numbers are part of the format. */

struct vmstate_writer {
	int fd;
	char *tmp_path, *path;
	uint32_t nr_sections;
	uint64_t size;
	int err;       /* first error; later puts are no-ops */
	bool borrowed; /* fd is the caller's: no rename, fsync or close */
};

/* Start writing `path` (through a temporary file renamed on commit, so a
 * crash never leaves a half-written vmstate under the real name). */
int vmstate_writer_open(struct vmstate_writer *w, const char *path) __must_check;
/* Write into fd, which the caller created empty and keeps: commit writes
 * the header and nothing else (the caller syncs and names the file; a
 * VMM in its jail can do no more). name is for messages. */
int vmstate_writer_open_fd(struct vmstate_writer *w, int fd, const char *name) __must_check;
/* Append one section. Errors are remembered and reported by commit. */
void vmstate_put(struct vmstate_writer *w, uint32_t type, uint32_t instance, const void *data,
		 uint64_t len);
/* Finish: header, fsync, rename. Returns the first error of the session. */
int vmstate_writer_commit(struct vmstate_writer *w) __must_check;
/* Abandon: remove the temporary file. Safe after commit (no-op). */
void vmstate_writer_abort(struct vmstate_writer *w);

struct vmstate {
	uint8_t *buf;
	uint64_t size;
	uint32_t nr;
	struct vm_section *sections; /* data points into buf */
};

/* Read and validate `path` completely (magic, version, sizes, every
 * section's bounds and checksum). On error one line names the file and the
 * cause, and nothing is allocated. */
int vmstate_load(const char *path, struct vmstate *vs) __must_check;
/* Validate an in-memory image (vmstate_load() uses it; so do tests).
 * Takes ownership of buf on success. */
int vmstate_parse(const char *name, uint8_t *buf, uint64_t size, struct vmstate *vs) __must_check;
void vmstate_free(struct vmstate *vs);

/* The section of this type and instance, or NULL. */
const struct vm_section *vmstate_find(const struct vmstate *vs, uint32_t type, uint32_t instance);

/* The writer as the VM's sink (vm_persist_save()), a loaded file as its
 * source (vm_persist_machine(), vm_persist_restore()). */
struct vm_section_sink vmstate_sink(struct vmstate_writer *w);
struct vm_section_source vmstate_source(const struct vmstate *vs);

#endif
