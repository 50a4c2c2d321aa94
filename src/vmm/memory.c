#include "vmm/memory.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

int guest_mem_map(struct guest_mem *mem, uint64_t size, const struct mem_opts *opts)
{
	int prot = PROT_READ | PROT_WRITE;
	int fd = -1, flags, err;
	struct stat st;
	void *p;

	memset(mem, 0, sizeof(*mem));
	mem->fd = -1;
	if (size == 0 || size % (2 * MIB)) {
		log_err("guest memory size %llu is not a positive multiple of 2 MiB",
			(unsigned long long)size);
		return -EINVAL;
	}

	switch (opts->backing) {
	case MEM_ANON:
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
		break;
	case MEM_FILE_PRIVATE:
		if (opts->fd > 0) {
			fd = fcntl(opts->fd, F_DUPFD_CLOEXEC, 3);
			if (fd < 0)
				return log_errno("dup guest memory file");
		} else {
			fd = open(opts->path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return log_errno("open %s", opts->path);
		}
		if (fstat(fd, &st) < 0) {
			err = log_errno("stat %s", opts->path);
			goto err_close;
		}
		/* A mapping past end of file faults with SIGBUS later: refuse now. */
		if ((uint64_t)st.st_size != size) {
			log_err("%s: size %lld, expected %llu bytes of guest RAM",
				opts->path ? opts->path : "guest memory file",
				(long long)st.st_size, (unsigned long long)size);
			err = -EINVAL;
			goto err_close;
		}
		flags = MAP_PRIVATE | MAP_NORESERVE;
		break;
	case MEM_MEMFD:
		fd = memfd_create("forkd-ram", MFD_CLOEXEC | (opts->hugetlb ? MFD_HUGETLB : 0));
		if (fd < 0)
			return log_errno("memfd_create(guest RAM%s)",
					 opts->hugetlb ? ", hugetlb" : "");
		if (ftruncate(fd, (off_t)size) < 0) {
			err =
			    log_errno("ftruncate(guest RAM memfd, %llu)", (unsigned long long)size);
			goto err_close;
		}
		flags = MAP_SHARED;
		break;
	default:
		return -EINVAL;
	}

	p = mmap(NULL, size, prot, flags, fd, 0);
	if (p == MAP_FAILED) {
		err = log_errno("mmap guest RAM (%llu MiB)", (unsigned long long)(size / MIB));
		goto err_close;
	}
	/* Guest RAM should never be dumped into a VMM core file, and must not be
	 * inherited by processes this VMM might start. */
	madvise(p, size, MADV_DONTDUMP);
	madvise(p, size, MADV_DONTFORK);

	mem->base = p;
	mem->size = size;
	mem->low_size = MIN(size, MEM_HOLE_START);
	mem->backing = opts->backing;
	mem->fd = fd;
	return 0;

err_close:
	if (fd >= 0)
		close(fd);
	return err;
}

void guest_mem_unmap(struct guest_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	mem->base = NULL;
	mem->fd = -1;
}

int guest_mem_overlay(struct guest_mem *mem, uint64_t off, uint64_t len, int fd)
{
	void *p;

	if (off % 4096 || len % 4096 || !len || off > mem->size || len > mem->size - off)
		return -EINVAL;
	if (mem->backing != MEM_FILE_PRIVATE)
		return pread_full(fd, mem->base + off, (size_t)len, off);
	p = mmap(mem->base + off, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_NORESERVE | MAP_FIXED, fd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	madvise(p, len, MADV_DONTDUMP);
	madvise(p, len, MADV_DONTFORK);
	return 0;
}

uint64_t guest_mem_high_size(const struct guest_mem *mem)
{
	return mem->size - mem->low_size;
}

void *guest_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t end, off;

	if (__builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (end <= mem->low_size)
		return mem->base + gpa;
	if (gpa < MEM_HOLE_END)
		return NULL; /* touches or crosses the hole */
	off = gpa - MEM_HOLE_END + mem->low_size;
	if (__builtin_add_overflow(off, len, &end) || end > mem->size)
		return NULL;
	return mem->base + off;
}

int guest_read(const struct guest_mem *mem, uint64_t gpa, void *buf, uint64_t len)
{
	void *p = guest_ptr(mem, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

int guest_write(const struct guest_mem *mem, uint64_t gpa, const void *buf, uint64_t len)
{
	void *p = guest_ptr(mem, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, buf, len);
	return 0;
}
