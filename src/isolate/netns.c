/* Per-child network namespaces: naming, building, checking, removing
 * (the layout is drawn in netns.h). */
#include "isolate/netns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/magic.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>

#include "common/util.h"
#include "isolate/nl.h"
#include "isolate/nl_nft.h"

#define TRANSFER_BASE 0x0ac90000u /* 10.201.0.0 */
#define TAP_ADDR      0x0a2a0001u /* 10.42.0.1 */
#define GUEST_ADDR    0x0a2a0002u /* 10.42.0.2 */

int netns_addrs(uint32_t index, struct netns_addrs *a)
{
	if (index >= NETNS_MAX_CHILDREN)
		return -ERANGE;
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), NETNS_PREFIX "%u", index);
	snprintf(a->path, sizeof(a->path), NETNS_RUN_DIR "/" NETNS_PREFIX "%u", index);
	snprintf(a->host_veth, sizeof(a->host_veth), NETNS_IFNAME_PREFIX "%uh", index);
	snprintf(a->ns_veth, sizeof(a->ns_veth), NETNS_IFNAME_PREFIX "%un", index);
	a->host = htonl(TRANSFER_BASE + 4 * index + 1);
	a->ns = htonl(TRANSFER_BASE + 4 * index + 2);
	a->tap = htonl(TAP_ADDR);
	a->guest = htonl(GUEST_ADDR);
	a->transfer_plen = 30;
	a->tap_plen = 24;
	return 0;
}

/* A canonical decimal below NETNS_MAX_CHILDREN, followed by `suffix`. */
static int parse_index(const char *s, const char *suffix, uint32_t *index)
{
	uint32_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p) || (p[0] == '0' && isdigit((unsigned char)p[1])))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (uint32_t)(*p - '0');
		if (v >= NETNS_MAX_CHILDREN)
			return -EINVAL;
	}
	if (strcmp(p, suffix))
		return -EINVAL;
	*index = v;
	return 0;
}

int netns_parse_name(const char *name, uint32_t *index)
{
	size_t n = strlen(NETNS_PREFIX);

	if (strncmp(name, NETNS_PREFIX, n))
		return -EINVAL;
	return parse_index(name + n, "", index);
}

/* 1: path is a bound network namespace; 0: nothing there; 2: something
 * else is there (a file left by an interrupted creation). */
static int ns_bound(const char *path)
{
	struct statfs sfs;
	int fd, ret = 2;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : 2;
	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == NSFS_MAGIC &&
	    ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET)
		ret = 1;
	close(fd);
	return ret;
}

/* /run/netns as `ip netns` keeps it: a shared mount, so names bound in it
 * show in every mount namespace that shares it. */
static int run_dir_ready(void)
{
	bool bound_self = false;

	if (mkdir(NETNS_RUN_DIR, 0755) < 0 && errno != EEXIST)
		return log_errno("mkdir " NETNS_RUN_DIR);
	while (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0) {
		if (errno != EINVAL || bound_self)
			return log_errno("mount --make-rshared " NETNS_RUN_DIR);
		/* Not a mount point yet: make it one. */
		if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) < 0)
			return log_errno("mount --rbind " NETNS_RUN_DIR " " NETNS_RUN_DIR);
		bound_self = true;
	}
	return 0;
}

/* Create a network namespace and bind it at path (which must exist as an
 * empty file): the calling thread unshares, binds its own namespace, and
 * goes back to the one it was in. */
static int ns_create_bound(const char *path)
{
	int self, err = 0;

	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return log_errno("open /proc/thread-self/ns/net (is /proc mounted?)");
	if (unshare(CLONE_NEWNET) < 0) {
		err = log_errno("unshare(CLONE_NEWNET) (needs CAP_SYS_ADMIN)");
		goto out;
	}
	if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0)
		err = log_errno("mount --bind /proc/thread-self/ns/net %s", path);
	if (setns(self, CLONE_NEWNET) < 0)
		err = log_errno("setns(CLONE_NEWNET) back to this thread's own namespace");
out:
	close(self);
	return err;
}

bool netns_exists(uint32_t index)
{
	struct netns_addrs a;

	return netns_addrs(index, &a) == 0 && ns_bound(a.path) == 1;
}

/* Make path a bound namespace: 0 when it already was, NETNS_CREATED, or
 * -errno. */
static int ns_bind(const char *path)
{
	int fd, err, state = ns_bound(path);

	if (state == 1)
		return 0;
	err = run_dir_ready();
	if (err)
		return err;
	if (state == 2) {
		/* Left by an interrupted creation: whatever it is, it is not
		 * a namespace anyone can use. */
		log_info("%s is not a network namespace (an interrupted creation?); remaking it",
			 path);
		(void)umount2(path, MNT_DETACH);
		if (unlink(path) < 0 && errno != ENOENT)
			return log_errno("unlink %s", path);
	}
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0) {
		if (errno != EEXIST)
			return log_errno("create %s", path);
		/* Another process is creating it this moment: wait for it. */
		for (int i = 0; i < 100; i++) {
			if (ns_bound(path) == 1)
				return 0;
			usleep(10000);
		}
		log_err("%s exists but never became a network namespace; remove it with "
			"'forkd netns teardown' and retry",
			path);
		return -EEXIST;
	}
	close(fd);
	err = ns_create_bound(path);
	if (err) {
		unlink(path);
		return err;
	}
	return NETNS_CREATED;
}

/* Everything one operation on namespace index works with. */
struct ctx {
	struct netns_addrs a;
	int nsfd;
	struct nl rt_ns, rt_host, nf_ns, nf_host;
	struct nl_link tap, ns_veth, host_veth, lo;
};

static void ctx_close(struct ctx *c)
{
	nl_close(&c->rt_ns);
	nl_close(&c->rt_host);
	nl_close(&c->nf_ns);
	nl_close(&c->nf_host);
	if (c->nsfd >= 0)
		close(c->nsfd);
	c->nsfd = -1;
}

/* Open the namespace and the four netlink sockets (route and netfilter,
 * namespace and host). */
static int ctx_open(struct ctx *c, uint32_t index)
{
	int err;

	memset(c, 0, sizeof(*c));
	c->nsfd = -1;
	err = netns_addrs(index, &c->a);
	if (err) {
		log_err("child index %u is too large for per-child namespaces (at most %u)", index,
			NETNS_MAX_CHILDREN - 1);
		return err;
	}
	c->nsfd = open(c->a.path, O_RDONLY | O_CLOEXEC);
	if (c->nsfd < 0)
		return errno == ENOENT ? -ENOENT : log_errno("open %s", c->a.path);
	if ((err = nl_open(&c->rt_ns, NETLINK_ROUTE, c->nsfd, c->a.name)) ||
	    (err = nl_open(&c->rt_host, NETLINK_ROUTE, -1, "host")) ||
	    (err = nl_open(&c->nf_ns, NETLINK_NETFILTER, c->nsfd, c->a.name)) ||
	    (err = nl_open(&c->nf_host, NETLINK_NETFILTER, -1, "host")))
		ctx_close(c);
	return err;
}

/* nl_link_get, with "absent" as index 0 instead of an error. */
static int link_probe(struct nl *nl, const char *name, struct nl_link *l)
{
	int err = nl_link_get(nl, name, l);

	if (err == -ENODEV) {
		memset(l, 0, sizeof(*l));
		return 0;
	}
	return err;
}

static int check(struct ctx *c, struct netns_status *st)
{
	int err, r;

	memset(st, 0, sizeof(*st));
	st->bound = true;
	if ((err = link_probe(&c->rt_ns, "lo", &c->lo)) ||
	    (err = link_probe(&c->rt_ns, NETNS_TAP_NAME, &c->tap)) ||
	    (err = link_probe(&c->rt_ns, c->a.ns_veth, &c->ns_veth)) ||
	    (err = link_probe(&c->rt_host, c->a.host_veth, &c->host_veth)))
		return err;
	st->lo_up = c->lo.index && (c->lo.flags & IFF_UP);
	st->tap = c->tap.index && !strcmp(c->tap.kind, "tun");
	st->tap_up = st->tap && (c->tap.flags & IFF_UP);
	st->ns_veth = c->ns_veth.index && !strcmp(c->ns_veth.kind, "veth");
	st->host_veth = c->host_veth.index && !strcmp(c->host_veth.kind, "veth");
	st->veth_paired = st->ns_veth && st->host_veth &&
			  c->ns_veth.peer_index == c->host_veth.index &&
			  c->host_veth.peer_index == c->ns_veth.index;
	st->ns_veth_up = st->ns_veth && (c->ns_veth.flags & IFF_UP);
	st->host_veth_up = st->host_veth && (c->host_veth.flags & IFF_UP);
	st->forwarding = st->tap && st->ns_veth && c->tap.ipv4_forwarding == 1 &&
			 c->ns_veth.ipv4_forwarding == 1;
	if (st->tap) {
		r = nl_addr_present(&c->rt_ns, c->tap.index, c->a.tap, c->a.tap_plen);
		if (r < 0)
			return r;
		st->tap_addr = r;
	}
	if (st->ns_veth) {
		r = nl_addr_present(&c->rt_ns, c->ns_veth.index, c->a.ns, c->a.transfer_plen);
		if (r < 0)
			return r;
		st->ns_addr = r;
		r = nl_route_default_present(&c->rt_ns, c->ns_veth.index, c->a.host);
		if (r < 0)
			return r;
		st->route = r;
	}
	if (st->host_veth) {
		r = nl_addr_present(&c->rt_host, c->host_veth.index, c->a.host, c->a.transfer_plen);
		if (r < 0)
			return r;
		st->host_addr = r;
	}
	if ((r = nl_nft_table_present(&c->nf_ns, NFPROTO_IPV4)) < 0)
		return r;
	st->nat = r;
	if ((r = nl_nft_table_present(&c->nf_host, NFPROTO_INET)) < 0)
		return r;
	st->host_table = r;
	return 0;
}

bool netns_status_ok(const struct netns_status *st)
{
	return st->bound && st->lo_up && st->tap && st->tap_up && st->tap_addr && st->ns_veth &&
	       st->host_veth && st->veth_paired && st->ns_veth_up && st->host_veth_up &&
	       st->ns_addr && st->host_addr && st->route && st->forwarding && st->nat &&
	       st->host_table;
}

void netns_status_missing(const struct netns_status *st, char *buf, size_t size)
{
	const struct {
		bool ok;
		const char *what;
	} parts[] = {
	    {st->bound, "namespace"},
	    {st->lo_up, "lo up"},
	    {st->tap, NETNS_TAP_NAME},
	    {st->tap_up || !st->tap, NETNS_TAP_NAME " up"},
	    {st->tap_addr || !st->tap, NETNS_TAP_NAME " address"},
	    {st->ns_veth, "namespace veth"},
	    {st->host_veth, "host veth"},
	    {st->veth_paired || !st->ns_veth || !st->host_veth, "veth pairing"},
	    {st->ns_veth_up || !st->ns_veth, "namespace veth up"},
	    {st->host_veth_up || !st->host_veth, "host veth up"},
	    {st->ns_addr || !st->ns_veth, "namespace veth address"},
	    {st->host_addr || !st->host_veth, "host veth address"},
	    {st->route, "default route"},
	    {st->forwarding, "forwarding"},
	    {st->nat, "NAT table"},
	    {st->host_table, "host isolation table"},
	};
	size_t used = 0;

	buf[0] = '\0';
	if (!st->bound) {
		snprintf(buf, size, "namespace");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		int n;

		if (parts[i].ok)
			continue;
		n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", parts[i].what);
		if (n < 0 || (size_t)n >= size - used)
			return;
		used += (size_t)n;
	}
}

int netns_check(uint32_t index, struct netns_status *st)
{
	struct ctx c;
	int err;

	memset(st, 0, sizeof(*st));
	if (index >= NETNS_MAX_CHILDREN)
		return -ERANGE;
	if (!netns_exists(index))
		return 0;
	err = ctx_open(&c, index);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = check(&c, st);
	ctx_close(&c);
	return err;
}

static int open_tun(void *arg)
{
	int *fd = arg;

	*fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	return *fd < 0 ? log_errno("open /dev/net/tun (is the tun module loaded?)") : 0;
}

/* Make fd (open on /dev/net/tun) a persistent tap named NETNS_TAP_NAME, with
 * the flags virtio-net attaches with (src/devices/virtio/net.c); where names
 * the namespace in messages. Closes fd. */
static int tap_persist(int fd, const char *where)
{
	struct ifreq ifr;
	int err = 0;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NETNS_TAP_NAME);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		err = log_errno("TUNSETIFF(%s in %s)", NETNS_TAP_NAME, where);
	else if (ioctl(fd, TUNSETPERSIST, 1UL) < 0)
		err = log_errno("TUNSETPERSIST(%s in %s)", NETNS_TAP_NAME, where);
	close(fd);
	return err;
}

/* The tap inside the namespace (the tun file is opened there: a tap
 * belongs to the namespace of whoever opened /dev/net/tun). */
static int tap_create(struct ctx *c)
{
	int fd = -1, err;

	err = nl_in_netns(c->nsfd, open_tun, &fd);
	return err ? err : tap_persist(fd, c->a.name);
}

static int ensure_up(struct nl *nl, const struct nl_link *l)
{
	return (l->flags & IFF_UP) ? 0 : nl_link_set_up(nl, l->index, true);
}

/* A fresh link: no IPv6 (before it goes up), then up. */
static int fresh_link(struct nl *nl, struct nl_link *l, const char *name)
{
	int err = nl_link_get(nl, name, l);

	if (err)
		return err == -ENODEV ? -ENODEV : err;
	err = nl_link_no_ipv6(nl, l->index);
	return err == -EAFNOSUPPORT ? 0 : err;
}

static int build_tap(struct ctx *c, const struct netns_status *st)
{
	int err;

	if (c->tap.index && !st->tap) {
		log_info("%s: %s is a %s link, not a tap; replacing it", c->a.name, NETNS_TAP_NAME,
			 c->tap.kind[0] ? c->tap.kind : "plain");
		if ((err = nl_link_del(&c->rt_ns, c->tap.index)) && err != -ENODEV)
			return err;
		c->tap.index = 0;
	}
	if (!c->tap.index) {
		if ((err = tap_create(c)) || (err = fresh_link(&c->rt_ns, &c->tap, NETNS_TAP_NAME)))
			return err;
	}
	if (!st->tap_addr &&
	    (err = nl_addr_replace(&c->rt_ns, c->tap.index, c->a.tap, c->a.tap_plen)))
		return err;
	if (c->tap.ipv4_forwarding != 1 &&
	    (err = nl_link_set_forwarding(&c->rt_ns, c->tap.index, true)))
		return err;
	return ensure_up(&c->rt_ns, &c->tap);
}

int netns_private_tap(void)
{
	static const char where[] = "the snapshot's private namespace";
	struct netns_addrs a;
	struct nl rt;
	struct nl_link tap;
	int fd = -1, err;

	if (netns_addrs(0, &a))
		return -ERANGE;
	if (unshare(CLONE_NEWNET))
		return log_errno("unshare(CLONE_NEWNET) (needs CAP_SYS_ADMIN: run as root)");
	if ((err = open_tun(&fd)) || (err = tap_persist(fd, where)))
		return err;
	if ((err = nl_open(&rt, NETLINK_ROUTE, -1, where)))
		return err;
	if (!(err = fresh_link(&rt, &tap, NETNS_TAP_NAME)) &&
	    !(err = nl_addr_replace(&rt, tap.index, a.tap, a.tap_plen)))
		err = ensure_up(&rt, &tap);
	nl_close(&rt);
	return err;
}

static int build_veth(struct ctx *c, const struct netns_status *st)
{
	bool fresh = false;
	int err;

	if (!st->veth_paired) {
		/* Whatever half exists is removed with its peer and the pair
		 * made again, its namespace end placed directly inside. */
		if (c->host_veth.index && (err = nl_link_del(&c->rt_host, c->host_veth.index)) &&
		    err != -ENODEV)
			return err;
		if ((err = link_probe(&c->rt_ns, c->a.ns_veth, &c->ns_veth)))
			return err;
		if (c->ns_veth.index && (err = nl_link_del(&c->rt_ns, c->ns_veth.index)) &&
		    err != -ENODEV)
			return err;
		err = nl_veth_add(&c->rt_host, c->a.host_veth, c->a.ns_veth, c->nsfd);
		if (err)
			return err;
		if ((err = fresh_link(&c->rt_host, &c->host_veth, c->a.host_veth)) ||
		    (err = fresh_link(&c->rt_ns, &c->ns_veth, c->a.ns_veth)))
			return err;
		fresh = true;
	}
	if ((fresh || !st->host_addr) &&
	    (err = nl_addr_replace(&c->rt_host, c->host_veth.index, c->a.host, c->a.transfer_plen)))
		return err;
	if ((fresh || !st->ns_addr) &&
	    (err = nl_addr_replace(&c->rt_ns, c->ns_veth.index, c->a.ns, c->a.transfer_plen)))
		return err;
	if (c->ns_veth.ipv4_forwarding != 1 &&
	    (err = nl_link_set_forwarding(&c->rt_ns, c->ns_veth.index, true)))
		return err;
	if ((err = ensure_up(&c->rt_host, &c->host_veth)) ||
	    (err = ensure_up(&c->rt_ns, &c->ns_veth)))
		return err;
	/* The gateway is on-link only once the address is up. */
	if (fresh || !st->route)
		return nl_route_default_replace(&c->rt_ns, c->ns_veth.index, c->a.host);
	return 0;
}

/* Order: links before addresses, addresses before routes (the gateway
 * must be on-link); the tables last, naming links that now exist. */
static int build(struct ctx *c, const struct netns_status *st)
{
	int err;

	if ((err = ensure_up(&c->rt_ns, &c->lo)) || (err = build_tap(c, st)) ||
	    (err = build_veth(c, st)))
		return err;
	if (!st->nat &&
	    (err = nl_nft_nat_replace(&c->nf_ns, c->a.ns_veth, c->a.tap, c->a.tap_plen)))
		return err;
	if (!st->host_table && (err = nl_nft_isolate_replace(&c->nf_host, NETNS_IFNAME_PREFIX)))
		return err;
	return 0;
}

int netns_prepare(uint32_t index)
{
	struct netns_status st;
	struct netns_addrs a;
	struct ctx c;
	int made, err;

	if (netns_addrs(index, &a)) {
		log_err("child index %u is too large for per-child namespaces (at most %u)", index,
			NETNS_MAX_CHILDREN - 1);
		return -ERANGE;
	}
	made = ns_bind(a.path);
	if (made < 0)
		return made;
	err = ctx_open(&c, index);
	if (err == -ENOENT)
		log_err("%s vanished while it was being prepared (a teardown at the same time?)",
			a.path);
	if (err)
		return err;
	err = check(&c, &st);
	if (!err && !netns_status_ok(&st)) {
		if (!made) {
			char missing[256];

			netns_status_missing(&st, missing, sizeof(missing));
			log_debug("%s: repairing (missing: %s)", a.name, missing);
		}
		err = build(&c, &st);
		if (!err && (err = check(&c, &st)) == 0 && !netns_status_ok(&st)) {
			char missing[256];

			netns_status_missing(&st, missing, sizeof(missing));
			log_err("%s: still incomplete after building it (missing: %s)", a.name,
				missing);
			err = -EIO;
		}
	}
	ctx_close(&c);
	return err ? err : made;
}

int netns_enter(uint32_t index)
{
	struct netns_addrs a;
	int fd, err = 0;

	if (netns_addrs(index, &a)) {
		log_err("child index %u is too large for per-child namespaces (at most %u)", index,
			NETNS_MAX_CHILDREN - 1);
		return -ERANGE;
	}
	fd = open(a.path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = log_errno("open %s", a.path);
		if (err == -ENOENT)
			log_err(
			    "no namespace %s: create it with 'forkd netns setup --first %u 1' (or "
			    "let the spawner prepare it)",
			    a.name, index);
		return err;
	}
	if (setns(fd, CLONE_NEWNET) < 0)
		err = log_errno("setns(%s, CLONE_NEWNET)", a.name);
	close(fd);
	return err;
}

int netns_remove_host_veth(uint32_t index)
{
	struct netns_addrs a;
	struct nl_link l;
	struct nl nl;
	int err;

	if (netns_addrs(index, &a))
		return -ERANGE;
	err = nl_open(&nl, NETLINK_ROUTE, -1, "host");
	if (err)
		return err;
	err = nl_link_get(&nl, a.host_veth, &l);
	if (!err)
		err = nl_link_del(&nl, l.index);
	nl_close(&nl);
	return err == -ENODEV ? -ENOENT : err;
}

int netns_remove(uint32_t index)
{
	struct netns_addrs a;
	bool found = false;
	struct ctx c;
	int err;

	if (netns_addrs(index, &a))
		return -ERANGE;
	if (ns_bound(a.path) == 1) {
		/* Emptied explicitly: a process still inside keeps the
		 * namespace itself alive, but nothing of forkd's in it. */
		err = ctx_open(&c, index);
		if (err && err != -ENOENT)
			return err;
		if (!err) {
			struct nl_link l;

			if (nl_link_get(&c.rt_ns, NETNS_TAP_NAME, &l) == 0 &&
			    (err = nl_link_del(&c.rt_ns, l.index)) && err != -ENODEV)
				goto fail;
			if (nl_link_get(&c.rt_ns, a.ns_veth, &l) == 0 &&
			    (err = nl_link_del(&c.rt_ns, l.index)) && err != -ENODEV)
				goto fail;
			err = nl_nft_table_del(&c.nf_ns, NFPROTO_IPV4);
			if (err && err != -ENOENT)
				goto fail;
			ctx_close(&c);
		}
		found = true;
	}
	err = netns_remove_host_veth(index);
	if (err && err != -ENOENT)
		return err;
	found |= err == 0;
	if (umount2(a.path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return log_errno("umount %s", a.path);
	if (unlink(a.path) == 0)
		found = true;
	else if (errno != ENOENT)
		return log_errno("unlink %s", a.path);
	err = netns_prune_host_table();
	if (err)
		return err;
	return found ? 0 : -ENOENT;

fail:
	ctx_close(&c);
	return err;
}

int netns_prune_host_table(void)
{
	uint32_t *idx;
	size_t n;
	struct nl nl;
	int err = netns_list(&idx, &n);

	if (err)
		return err;
	free(idx);
	if (n)
		return 0;
	err = nl_open(&nl, NETLINK_NETFILTER, -1, "host");
	if (err)
		return err;
	err = nl_nft_table_del(&nl, NFPROTO_INET);
	nl_close(&nl);
	return err == -ENOENT ? 0 : err;
}
