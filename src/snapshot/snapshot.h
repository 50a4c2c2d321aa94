/* Snapshot directories: $FORKD_HOME/snapshots/<tag>/ holding memory.bin,
 * vmstate and snapshot.json (docs/FORMAT.md).
 *
 * Every path is built from a validated tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}
 * and never "..", so a tag cannot name anything outside the snapshots
 * directory. */
#ifndef FORKD_SNAPSHOT_SNAPSHOT_H
#define FORKD_SNAPSHOT_SNAPSHOT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "vmm/memory.h"

#define SNAPSHOT_TAG_MAX	64
#define SNAPSHOT_FORMAT_VERSION 1
#define SNAPSHOT_MAX_DISKS	4

bool snapshot_tag_valid(const char *tag);

/* $FORKD_HOME, else for root SNAPSHOT_ROOT_HOME (where the daemon keeps its
 * state too: one store for the CLI and the daemon), else
 * $XDG_DATA_HOME/forkd, else $HOME/.local/share/forkd. */
#define SNAPSHOT_ROOT_HOME UTIL_ROOT_STATE_DIR
int snapshot_home(char *buf, size_t size) __must_check;

/* <home>/snapshots/<tag> (the tag must be valid). */
int snapshot_dir(const char *tag, char *buf, size_t size) __must_check;

/* The devices a VM has beyond the fixed ones, in creation order (disks,
 * net, vsock, rng): the one description of a device set, which a snapshot
 * records and a machine is built from (fork/machine.c, the one place
 * devices are created). Where net and vsock attach (a tap, a socket) is
 * not part of it: that belongs to each VM. */
struct snapshot_devices {
	uint32_t nr_disks;
	struct {
		char path[PATH_MAX];
		bool read_only;
	} disks[SNAPSHOT_MAX_DISKS];
	bool net;
	bool vsock;
	uint64_t vsock_cid;
	bool rng;
	/* The VM generation ID (devices/vmgenid.h); stateless, not counted. */
	bool vmgenid;
};

/* Devices every machine has before the set: serial, i8042, vmctl (the
 * ACPI sleep register has no state and is not counted). */
#define SNAPSHOT_FIXED_DEVICES 3

/* How many devices (with state) a machine with this set has. */
uint32_t snapshot_devices_count(const struct snapshot_devices *d);

struct snapshot_meta {
	char tag[SNAPSHOT_TAG_MAX + 1];
	char created[32];      /* ISO 8601, UTC */
	char kernel[PATH_MAX]; /* as given when booted */
	char initrd[PATH_MAX];
	char cmdline[4096];
	uint64_t mem_mib;
	uint32_t vcpus;
	/* The snapshot this one was branched from ("" for none: booted). */
	char parent[SNAPSHOT_TAG_MAX + 1];
	/* memory.diff + memory.map over the parent's memory (snapshot/memdiff.h)
	 * instead of a memory.bin of its own: the parent is then needed, and
	 * must still be the one of that creation time (parent_created). */
	bool mem_diff;
	char parent_created[32];
	uint32_t format_version;
	/* The device set, which children rebuild in the same order. */
	struct snapshot_devices dev;
	/* The guest runs forkd's agent (docs/AGENT.md) on this vsock port;
	 * 0: no agent. Children get after_fork before they count as ready. */
	uint32_t agent_port;
};

/* Set created (now, UTC) and format_version, as every new snapshot has. */
void snapshot_meta_stamp(struct snapshot_meta *m, time_t now);
int snapshot_meta_write(const char *dir, const struct snapshot_meta *m) __must_check;
/* snapshot.json's text for m (malloc'd), or NULL when out of memory. */
char *snapshot_meta_text(const struct snapshot_meta *m);
/* Reads and validates snapshot.json (types, ranges, tag, version); at most
 * SNAPSHOT_META_MAX bytes, a regular file. */
#define SNAPSHOT_META_MAX (64 * 1024)
int snapshot_meta_read(const char *dir, struct snapshot_meta *m) __must_check;
/* The same checks on text already read (path names it in messages). */
int snapshot_meta_parse(const char *path, const char *text, size_t len,
			struct snapshot_meta *m) __must_check;

/* Write guest RAM to <dir>/memory.bin densely, leaving all-zero pages as
 * holes; fsync'ed, written through a temporary name. */
int snapshot_write_memory(const char *dir, const struct guest_mem *mem) __must_check;

/* The same into fd (a file the caller created and sized to mem->size):
 * pwrite only, so a VMM can do it in its jail. */
int snapshot_write_memory_fd(int fd, const struct guest_mem *mem) __must_check;

/* vm's vmstate (vm_persist_save()) into fd, which the caller created empty
 * and then syncs; vm paused, event loop still. For branches, in the jail. */
struct vm;
int snapshot_save_state_fd(struct vm *vm, int fd) __must_check;

/* Check <dir>/memory.bin exists, is a regular file and holds exactly
 * `bytes` (a shorter file would SIGBUS a child later). */
int snapshot_check_memory(const char *dir, uint64_t bytes) __must_check;

/* Write a snapshot of vm into dir (which exists and is empty): vmstate
 * (vm_persist_save()), memory.bin, then snapshot.json from meta, whose
 * created and format_version are set here; the caller fills the rest.
 * vm must be paused with its event loop stopped. 0 or -errno, logged. */
int snapshot_create(struct vm *vm, const char *dir, struct snapshot_meta *meta) __must_check;

/* The same into files opened beforehand, for a VMM in its jail (forkd
 * snapshot): snapshot_fds_create() makes memory.bin (sized), vmstate and
 * snapshot.json in dir (O_EXCL, never through a link) before the jail;
 * snapshot_create_fds() writes them with write/pwrite only; the caller,
 * outside the jail, syncs (snapshot_fds_sync()) and renames dir. */
struct snapshot_fds {
	int mem, state, meta;
};
int snapshot_fds_create(const char *dir, uint64_t mem_bytes, struct snapshot_fds *f) __must_check;
int snapshot_create_fds(struct vm *vm, const struct snapshot_fds *f,
			struct snapshot_meta *meta) __must_check;
int snapshot_fds_sync(const struct snapshot_fds *f) __must_check;
void snapshot_fds_close(struct snapshot_fds *f);

#endif
