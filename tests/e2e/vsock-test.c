/*
 * vsock-test: the guest half of forkd's end-to-end vsock checks.
 * Built with `gcc -static -O2` and put into the test initramfs.
 *
 *   vsock-test listen PORT
 *       print "listening on port PORT" once bound, accept one AF_VSOCK stream
 *       connection on PORT, read one line, write back "echo:<line>\n", exit 0.
 *   vsock-test connect CID PORT MSG
 *       connect to CID:PORT, write "MSG\n", read one reply line, print it on
 *       stdout, exit 0 only if a reply line arrived.
 *
 * VSOCK_TEST_TIMEOUT (seconds, default 300; 0 = none) bounds the whole run so
 * a missing peer fails the check instead of hanging the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

#define LINE_MAX_LEN 4096

static void usage(void)
{
	fprintf(stderr, "usage: vsock-test listen PORT\n"
			"       vsock-test connect CID PORT MSG\n");
	exit(2);
}

static unsigned int parse_u32(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || v > 0xffffffffUL) {
		fprintf(stderr, "vsock-test: bad %s '%s'\n", what, s);
		exit(2);
	}
	return (unsigned int)v;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read up to '\n' (not stored) or EOF; returns length, or -1 if nothing came. */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len + 1 < cap) {
		char c;
		ssize_t n = read(fd, &c, 1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			if (len == 0)
				return -1;
			break;
		}
		if (c == '\n')
			break;
		buf[len++] = c;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static int do_listen(unsigned int port)
{
	struct sockaddr_vm addr;
	char line[LINE_MAX_LEN], reply[LINE_MAX_LEN + 8];
	int fd, conn, one = 1;

	fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("vsock-test: socket(AF_VSOCK)");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.svm_family = AF_VSOCK;
	addr.svm_cid = VMADDR_CID_ANY;
	addr.svm_port = port;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("vsock-test: bind");
		return 1;
	}
	if (listen(fd, 1) < 0) {
		perror("vsock-test: listen");
		return 1;
	}
	/* Tell whoever started us in the background that connects now work. */
	printf("listening on port %u\n", port);
	fflush(stdout);
	do {
		conn = accept(fd, NULL, NULL);
	} while (conn < 0 && errno == EINTR);
	if (conn < 0) {
		perror("vsock-test: accept");
		return 1;
	}
	if (read_line(conn, line, sizeof(line)) < 0) {
		fprintf(stderr, "vsock-test: no line from peer\n");
		return 1;
	}
	snprintf(reply, sizeof(reply), "echo:%s\n", line);
	if (write_all(conn, reply, strlen(reply)) < 0) {
		perror("vsock-test: write");
		return 1;
	}
	shutdown(conn, SHUT_WR);
	close(conn);
	close(fd);
	return 0;
}

static int do_connect(unsigned int cid, unsigned int port, const char *msg)
{
	struct sockaddr_vm addr;
	char line[LINE_MAX_LEN];
	int fd = -1, attempt;

	memset(&addr, 0, sizeof(addr));
	addr.svm_family = AF_VSOCK;
	addr.svm_cid = cid;
	addr.svm_port = port;
	/* The host end may still be coming up: retry refused/reset connects. */
	for (attempt = 0; attempt < 10; attempt++) {
		fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (fd < 0) {
			perror("vsock-test: socket(AF_VSOCK)");
			return 1;
		}
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			break;
		fprintf(stderr, "vsock-test: connect %u:%u: %s\n", cid, port, strerror(errno));
		close(fd);
		fd = -1;
		if (errno != ECONNREFUSED && errno != ECONNRESET && errno != EINTR &&
		    errno != ETIMEDOUT)
			return 1;
		sleep(2);
	}
	if (fd < 0)
		return 1;
	if (write_all(fd, msg, strlen(msg)) < 0 || write_all(fd, "\n", 1) < 0) {
		perror("vsock-test: write");
		return 1;
	}
	if (read_line(fd, line, sizeof(line)) < 0) {
		fprintf(stderr, "vsock-test: no reply from %u:%u\n", cid, port);
		return 1;
	}
	printf("%s\n", line);
	fflush(stdout);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *t = getenv("VSOCK_TEST_TIMEOUT");
	unsigned int timeout = t ? parse_u32(t, "VSOCK_TEST_TIMEOUT") : 300;

	if (argc < 2)
		usage();
	if (timeout)
		alarm(timeout); /* default SIGALRM action ends the process */
	if (!strcmp(argv[1], "listen") && argc == 3)
		return do_listen(parse_u32(argv[2], "port"));
	if (!strcmp(argv[1], "connect") && argc == 5)
		return do_connect(parse_u32(argv[2], "cid"), parse_u32(argv[3], "port"), argv[4]);
	usage();
	return 2;
}
