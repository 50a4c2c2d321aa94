/* Per-child network namespaces (src/isolate/netns.h): names and addresses
 * (pure), the status report, and, as root, the whole life of one real
 * namespace through the library API the spawner uses: prepare, check,
 * repair, enter in a child process and attach to the tap the way
 * virtio-net does, count its users, remove. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolate/netns.h"
#include "isolate/nl.h"

#define TEST_INDEX 16375u

static const char *ip(uint32_t a, char *buf)
{
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static void test_addrs(void **state)
{
	struct netns_addrs a;
	char b[INET_ADDRSTRLEN];

	assert_int_equal(netns_addrs(0, &a), 0);
	assert_string_equal(a.name, "forkd-child-0");
	assert_string_equal(a.path, "/run/netns/forkd-child-0");
	assert_string_equal(a.host_veth, "fkd0h");
	assert_string_equal(a.ns_veth, "fkd0n");
	assert_string_equal(ip(a.host, b), "10.201.0.1");
	assert_string_equal(ip(a.ns, b), "10.201.0.2");
	assert_string_equal(ip(a.tap, b), NETNS_TAP_ADDR);
	assert_string_equal(ip(a.guest, b), NETNS_GUEST_ADDR);
	assert_int_equal(a.transfer_plen, 30);
	assert_int_equal(a.tap_plen, 24);

	assert_int_equal(netns_addrs(3, &a), 0);
	assert_string_equal(ip(a.host, b), "10.201.0.13");
	assert_string_equal(ip(a.ns, b), "10.201.0.14");
	assert_int_equal(netns_addrs(64, &a), 0);
	assert_string_equal(ip(a.host, b), "10.201.1.1");

	/* The last index owns the last /30 of 10.201.0.0/16, and its
	 * interface names still fit IFNAMSIZ. */
	assert_int_equal(netns_addrs(NETNS_MAX_CHILDREN - 1, &a), 0);
	assert_string_equal(ip(a.host, b), "10.201.255.253");
	assert_string_equal(ip(a.ns, b), "10.201.255.254");
	assert_true(strlen(a.host_veth) < IFNAMSIZ);
	assert_int_equal(netns_addrs(NETNS_MAX_CHILDREN, &a), -ERANGE);
	assert_int_equal(netns_addrs(UINT32_MAX, &a), -ERANGE);
}

static void test_parse_name(void **state)
{
	uint32_t i = 99;

	assert_int_equal(netns_parse_name("forkd-child-0", &i), 0);
	assert_int_equal(i, 0);
	assert_int_equal(netns_parse_name("forkd-child-16383", &i), 0);
	assert_int_equal(i, 16383);
	i = 7;
	assert_int_equal(netns_parse_name("forkd-child-16384", &i), -EINVAL);
	assert_int_equal(netns_parse_name("forkd-child-007", &i), -EINVAL);
	assert_int_equal(netns_parse_name("forkd-child-", &i), -EINVAL);
	assert_int_equal(netns_parse_name("forkd-child-1x", &i), -EINVAL);
	assert_int_equal(netns_parse_name("forkd-child--1", &i), -EINVAL);
	assert_int_equal(netns_parse_name("forkd-child-99999999999999999999", &i), -EINVAL);
	assert_int_equal(netns_parse_name("forkd-kid-1", &i), -EINVAL);
	assert_int_equal(netns_parse_name("", &i), -EINVAL);
	assert_int_equal(i, 7); /* untouched on failure */
}

static void test_status_text(void **state)
{
	struct netns_status st;
	char buf[256];

	memset(&st, 0, sizeof(st));
	assert_false(netns_status_ok(&st));
	netns_status_missing(&st, buf, sizeof(buf));
	assert_string_equal(buf, "namespace");

	memset(&st, 1, sizeof(st));
	assert_true(netns_status_ok(&st));
	netns_status_missing(&st, buf, sizeof(buf));
	assert_string_equal(buf, "");

	st.route = false;
	st.nat = false;
	assert_false(netns_status_ok(&st));
	netns_status_missing(&st, buf, sizeof(buf));
	assert_string_equal(buf, "default route, NAT table");

	/* A missing tap is reported once, not also as "not up", "no address". */
	memset(&st, 1, sizeof(st));
	st.tap = st.tap_up = st.tap_addr = false;
	netns_status_missing(&st, buf, sizeof(buf));
	assert_string_equal(buf, NETNS_TAP_NAME);

	/* A short buffer is cut, never overrun. */
	memset(&st, 0, sizeof(st));
	st.bound = true;
	netns_status_missing(&st, buf, 12);
	assert_true(strlen(buf) < 12);
}

static int root_only(void)
{
	return geteuid() == 0 && access("/dev/net/tun", F_OK) == 0;
}

/* In a child process: enter the namespace, then attach to the tap with
 * the flags src/devices/virtio/net.c uses, and tell the parent. */
static void child_attach(int ready_fd, int go_fd)
{
	struct ifreq ifr;
	char c = 0;
	int fd;

	if (netns_enter(TEST_INDEX))
		_exit(10);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		_exit(11);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	strcpy(ifr.ifr_name, NETNS_TAP_NAME);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		_exit(12);
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &c, 1) != 1)
		_exit(13);
	_exit(0);
}

static void test_lifecycle(void **state)
{
	struct netns_status st;
	int ready[2], go[2], status;
	char c;
	pid_t pid, first;
	struct nl nl;
	struct nl_link l;
	struct netns_addrs a;

	if (!root_only())
		skip(); /* namespaces, veths and nf_tables need root */
	assert_int_equal(netns_addrs(TEST_INDEX, &a), 0);
	if (netns_remove(TEST_INDEX) != -ENOENT)
		print_message("removed a namespace left by an earlier run\n");

	assert_int_equal(netns_check(TEST_INDEX, &st), 0);
	assert_false(st.bound);
	assert_int_equal(netns_users(TEST_INDEX, &first), -ENOENT);

	assert_int_equal(netns_prepare(TEST_INDEX), NETNS_CREATED);
	assert_int_equal(netns_check(TEST_INDEX, &st), 0);
	assert_true(netns_status_ok(&st));
	assert_int_equal(netns_prepare(TEST_INDEX), 0); /* complete: left alone */
	assert_int_equal(netns_users(TEST_INDEX, &first), 0);

	/* Break it from outside (the host end of the veth goes, taking the
	 * namespace end with it), see it reported, repaired. */
	assert_int_equal(nl_open(&nl, NETLINK_ROUTE, -1, "host"), 0);
	assert_int_equal(nl_link_get(&nl, a.host_veth, &l), 0);
	assert_int_equal(nl_link_del(&nl, l.index), 0);
	assert_int_equal(nl_link_get(&nl, a.host_veth, &l), -ENODEV);
	nl_close(&nl);
	assert_int_equal(netns_check(TEST_INDEX, &st), 0);
	assert_true(st.bound && st.tap && st.nat);
	assert_false(st.host_veth || st.ns_veth || st.route);
	assert_int_equal(netns_prepare(TEST_INDEX), 0);
	assert_int_equal(netns_check(TEST_INDEX, &st), 0);
	assert_true(netns_status_ok(&st));

	/* A child enters and attaches to the tap: one user. */
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_attach(ready[1], go[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(netns_users(TEST_INDEX, &first), 1);
	assert_int_equal(first, pid);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	assert_int_equal(netns_users(TEST_INDEX, &first), 0);

	assert_int_equal(netns_remove(TEST_INDEX), 0);
	assert_int_equal(netns_check(TEST_INDEX, &st), 0);
	assert_false(st.bound);
	assert_int_equal(access(a.path, F_OK), -1);
	assert_int_equal(netns_remove(TEST_INDEX), -ENOENT);
	assert_int_equal(netns_remove_host_veth(TEST_INDEX), -ENOENT);
	/* Entering a namespace that is gone fails with the fix named. */
	assert_int_equal(netns_enter(TEST_INDEX), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addrs),
	    cmocka_unit_test(test_parse_name),
	    cmocka_unit_test(test_status_text),
	    cmocka_unit_test(test_lifecycle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
