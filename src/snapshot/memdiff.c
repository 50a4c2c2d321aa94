#include "snapshot/memdiff.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/file.h"
#include "common/util.h"

#define PAGE	   4096ULL
#define HDR_BYTES  32
#define RUN_BYTES  16
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_FILE	   (1ULL << 61)
#define PM_CHUNK   512 /* pagemap entries read at once */

/* Whether guest page i was written by this process (see memdiff.h). */
static bool changed(uint64_t e)
{
	return (e & PM_SWAPPED) || ((e & PM_PRESENT) && !(e & PM_FILE));
}

/* One pass: runs of changed pages, merged across gaps of up to `gap`
 * unchanged pages. Counts them into *n; stores at most `cap`. */
static int scan_pass(const struct guest_mem *mem, int pm, uint64_t gap, struct memdiff_run *out,
		     uint32_t cap, uint64_t *n, uint64_t *pages)
{
	uint64_t entries[PM_CHUNK], nr_pages = mem->size / PAGE,
				    vpage = (uintptr_t)mem->base / PAGE;
	uint64_t cur_first = 0, cur_end = 0; /* cur_end == 0: no open run */
	bool open_run = false;

	*n = 0;
	*pages = 0;
	for (uint64_t i = 0; i < nr_pages; i += PM_CHUNK) {
		size_t k = (size_t)MIN((uint64_t)PM_CHUNK, nr_pages - i);
		int err = pread_full(pm, entries, k * 8, (vpage + i) * 8);

		if (err)
			return err;
		for (size_t j = 0; j < k; j++) {
			uint64_t p = i + j;

			if (!changed(entries[j]))
				continue;
			if (open_run && p - cur_end <= gap) {
				cur_end = p + 1;
				continue;
			}
			if (open_run) {
				if (*n < cap)
					out[*n] =
					    (struct memdiff_run){cur_first, cur_end - cur_first};
				++*n;
				*pages += cur_end - cur_first;
			}
			open_run = true;
			cur_first = p;
			cur_end = p + 1;
		}
	}
	if (open_run) {
		if (*n < cap)
			out[*n] = (struct memdiff_run){cur_first, cur_end - cur_first};
		++*n;
		*pages += cur_end - cur_first;
	}
	return 0;
}

int memdiff_scan(const struct guest_mem *mem, int pagemap_fd, struct memdiff_run **runs,
		 uint32_t *nr_runs, uint64_t *pages)
{
	struct memdiff_run *out;
	uint64_t n = 0;
	int err;

	if (mem->backing != MEM_FILE_PRIVATE)
		return -EOPNOTSUPP;
	out = malloc(MEMDIFF_MAX_RUNS * sizeof(*out));
	if (!out)
		return -ENOMEM;
	/* Widen the gap until the runs fit: each pass reads 8 bytes per page. */
	for (uint64_t gap = 0;; gap = gap ? gap * 2 : 1) {
		err = scan_pass(mem, pagemap_fd, gap, out, MEMDIFF_MAX_RUNS, &n, pages);
		if (err || n <= MEMDIFF_MAX_RUNS)
			break;
	}
	if (err) {
		free(out);
		return err;
	}
	*runs = out;
	*nr_runs = (uint32_t)n;
	return 0;
}

int memdiff_write(const struct guest_mem *mem, const struct memdiff_run *runs, uint32_t nr_runs,
		  uint64_t pages, int data_fd, int map_fd)
{
	uint8_t hdr[HDR_BYTES];
	uint32_t version = MEMDIFF_VERSION, crc;
	uint64_t off = HDR_BYTES;
	uLong c;
	int err;

	for (uint32_t i = 0; i < nr_runs; i++) {
		err = pwrite_full(data_fd, mem->base + runs[i].first * PAGE,
				  (size_t)(runs[i].count * PAGE), runs[i].first * PAGE);
		if (err)
			return err;
	}
	memcpy(hdr, MEMDIFF_MAGIC, 8);
	memcpy(hdr + 8, &version, 4);
	memcpy(hdr + 12, &nr_runs, 4);
	memcpy(hdr + 16, &mem->size, 8);
	memcpy(hdr + 24, &pages, 8);
	c = crc32(crc32(0L, Z_NULL, 0), hdr, HDR_BYTES);
	err = pwrite_full(map_fd, hdr, HDR_BYTES, 0);
	for (uint32_t i = 0; !err && i < nr_runs; i++, off += RUN_BYTES) {
		uint8_t r[RUN_BYTES];

		memcpy(r, &runs[i].first, 8);
		memcpy(r + 8, &runs[i].count, 8);
		c = crc32(c, r, RUN_BYTES);
		err = pwrite_full(map_fd, r, RUN_BYTES, off);
	}
	crc = (uint32_t)c;
	return err ?: pwrite_full(map_fd, &crc, 4, off);
}

/* The map's runs: sorted, apart, non-empty, inside RAM, adding up. */
static int check_runs(const char *path, const struct memdiff *d)
{
	uint64_t nr_pages = d->mem_bytes / PAGE, end = 0, total = 0;

	for (uint32_t i = 0; i < d->nr_runs; i++) {
		const struct memdiff_run *r = &d->runs[i];

		if (!r->count || r->first >= nr_pages || r->count > nr_pages - r->first ||
		    (i && r->first < end)) {
			log_err("%s: run %u (pages %llu+%llu) is out of order or outside RAM", path,
				i, (unsigned long long)r->first, (unsigned long long)r->count);
			return -EINVAL;
		}
		end = r->first + r->count;
		total += r->count;
	}
	if (total != d->pages) {
		log_err("%s: runs add up to %llu pages, the header says %llu", path,
			(unsigned long long)total, (unsigned long long)d->pages);
		return -EINVAL;
	}
	return 0;
}

int memdiff_parse_map(const char *path, const uint8_t *buf, size_t len, uint64_t mem_bytes,
		      struct memdiff *d)
{
	uint32_t version, crc;
	int err;

	memset(d, 0, sizeof(*d));
	d->data_fd = -1;
	if (len < HDR_BYTES + 4 || memcmp(buf, MEMDIFF_MAGIC, 8)) {
		log_err("%s: not a forkd memory map", path);
		return -EINVAL;
	}
	memcpy(&version, buf + 8, 4);
	memcpy(&d->nr_runs, buf + 12, 4);
	memcpy(&d->mem_bytes, buf + 16, 8);
	memcpy(&d->pages, buf + 24, 8);
	memcpy(&crc, buf + len - 4, 4);
	if (version != MEMDIFF_VERSION) {
		log_err("%s: version %u; this forkd reads version %d", path, version,
			MEMDIFF_VERSION);
		return -EPROTO;
	}
	if (d->nr_runs > MEMDIFF_MAX_RUNS ||
	    len != HDR_BYTES + (size_t)d->nr_runs * RUN_BYTES + 4 ||
	    crc != (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(len - 4))) {
		log_err("%s: damaged (length or checksum wrong)", path);
		return -EINVAL;
	}
	if (d->mem_bytes != mem_bytes) {
		log_err("%s: a diff of %llu bytes of RAM; the snapshot's guest has %llu", path,
			(unsigned long long)d->mem_bytes, (unsigned long long)mem_bytes);
		return -EINVAL;
	}
	d->runs = calloc(d->nr_runs ? d->nr_runs : 1, sizeof(*d->runs));
	if (!d->runs)
		return -ENOMEM;
	for (uint32_t i = 0; i < d->nr_runs; i++) {
		memcpy(&d->runs[i].first, buf + HDR_BYTES + (size_t)i * RUN_BYTES, 8);
		memcpy(&d->runs[i].count, buf + HDR_BYTES + (size_t)i * RUN_BYTES + 8, 8);
	}
	err = check_runs(path, d);
	if (err)
		memdiff_free(d);
	return err;
}

int memdiff_load(const char *dir, uint64_t mem_bytes, struct memdiff *d)
{
	char path[PATH_MAX + 16];
	char *buf = NULL;
	size_t len;
	struct stat st;
	int err;

	memset(d, 0, sizeof(*d));
	d->data_fd = -1;
	snprintf(path, sizeof(path), "%s/memory.map", dir);
	err = file_read(path, (size_t)HDR_BYTES + (size_t)MEMDIFF_MAX_RUNS * RUN_BYTES + 4, &buf,
			&len);
	if (err) {
		log_err("%s: %s", path, strerror(-err));
		return err;
	}
	err = memdiff_parse_map(path, (const uint8_t *)buf, len, mem_bytes, d);
	free(buf);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/memory.diff", dir);
	d->data_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (d->data_fd < 0) {
		err = log_errno("open %s", path);
		goto out;
	}
	if (fstat(d->data_fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != mem_bytes) {
		log_err("%s: not a regular file of %llu bytes", path,
			(unsigned long long)mem_bytes);
		err = -EINVAL;
	}
out:
	if (err)
		memdiff_free(d);
	return err;
}

void memdiff_free(struct memdiff *d)
{
	if (d->data_fd >= 0)
		close(d->data_fd);
	free(d->runs);
	d->runs = NULL;
	d->data_fd = -1;
	d->nr_runs = 0;
}

int memdiff_apply(const struct memdiff *d, struct guest_mem *mem)
{
	for (uint32_t i = 0; i < d->nr_runs; i++) {
		int err = guest_mem_overlay(mem, d->runs[i].first * PAGE, d->runs[i].count * PAGE,
					    d->data_fd);

		if (err) {
			errno = -err;
			return log_errno("lay memory diff pages %llu+%llu over RAM",
					 (unsigned long long)d->runs[i].first,
					 (unsigned long long)d->runs[i].count);
		}
	}
	return 0;
}
