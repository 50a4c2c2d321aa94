/* Per-child network namespaces (--per-child-netns).
 *
 * Child i runs in network namespace "forkd-child-<i>", named the way
 * `ip netns add` names one (a bind mount of the namespace at
 * /run/netns/forkd-child-<i>), so `ip netns exec forkd-child-<i> CMD` runs
 * CMD beside child i. Every child sees the same network, so one snapshot
 * serves all of them:
 *
 *   namespace forkd-child-<i>                        host
 *   +-------------------------------------------+
 *   | guest 10.42.0.2 --- forkd-tap0 10.42.0.1/24 |
 *   |                     (persistent tap, up)  |
 *   | lo (up)                                   |
 *   | fkd<i>n  10.201.a.b+2/30 ================== fkd<i>h 10.201.a.b+1/30
 *   | default via 10.201.a.b+1                  |
 *   | table ip forkd: 10.42.0.0/24 leaving      |
 *   |   fkd<i>n is masqueraded to its address   |
 *   +-------------------------------------------+
 *
 * Transfer nets: child i owns the /30 at 10.201.0.0 + 4*i (so at most
 * NETNS_MAX_CHILDREN children): the host end is .+1, the namespace end .+2.
 * Child 3: 10.201.0.12/30, host fkd3h 10.201.0.13, namespace fkd3n
 * 10.201.0.14. IPv4 forwarding is on for forkd-tap0 and fkd<i>n inside
 * the namespace only.
 *
 * Children cannot reach each other: each has its own namespace (the guest
 * address 10.42.0.2 exists once per namespace, so naming another child's
 * guest is impossible), there is no bridge between the veths, and the host
 * table "inet forkd" drops every packet the host would forward from one
 * fkd* interface to another, whatever the host's forwarding settings.
 * Interface names beginning with "fkd" are forkd's.
 *
 * Everything is built over netlink (rtnetlink for links, addresses and
 * routes; nf_tables for NAT and the host rule); the tap is created with
 * the TUN ioctls, which have no netlink form. All functions need root
 * (CAP_NET_ADMIN and CAP_SYS_ADMIN). They keep no global state and are
 * safe to call from several processes or threads at once for different
 * indices (one index is one spawner's: preparing the same index from two
 * places at once can fail with -EEXIST, and then succeeds when retried).
 *
 * How the spawner uses this (order: cgroup -> netns -> VM -> jail):
 *   spawner, before forking child i:   netns_prepare(i)
 *   child i, first thing after fork, before it creates any thread or
 *   opens /dev/net/tun:                netns_enter(i)
 *   then the child's VM gets its network from virtio_net_create() with
 *   .tap = NETNS_TAP_NAME ("forkd-tap0"): net.c opens /dev/net/tun and
 *   attaches to that name with TUNSETIFF. A tun file belongs to the
 *   namespace its opener was in at open(2), so the open must come after
 *   netns_enter(); the tap already exists and is up, so no privilege
 *   beyond opening /dev/net/tun is needed for the attach.
 *   spawner, after child i ended, only if netns_prepare(i) returned
 *   NETNS_CREATED and the namespace is not meant to outlive the run:
 *   netns_remove(i).
 */
#ifndef FORKD_ISOLATE_NETNS_H
#define FORKD_ISOLATE_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"

#define NETNS_RUN_DIR	    "/run/netns"
#define NETNS_PREFIX	    "forkd-child-"
#define NETNS_TAP_NAME	    "forkd-tap0"
#define NETNS_IFNAME_PREFIX "fkd" /* host and namespace veth names */
#define NETNS_MAX_CHILDREN  16384 /* /30s in 10.201.0.0/16 */
#define NETNS_GUEST_ADDR    "10.42.0.2"
#define NETNS_TAP_ADDR	    "10.42.0.1"
#define NETNS_CREATED	    1 /* netns_prepare(): the namespace was made just now */

/* Names and addresses of child index's namespace (addresses in network
 * byte order). */
struct netns_addrs {
	char name[32];		/* forkd-child-<i> */
	char path[64];		/* /run/netns/forkd-child-<i> */
	char host_veth[16];	/* fkd<i>h */
	char ns_veth[16];	/* fkd<i>n */
	uint32_t host;		/* 10.201.0.0 + 4i + 1, on host_veth */
	uint32_t ns;		/* 10.201.0.0 + 4i + 2, on ns_veth */
	uint32_t tap;		/* 10.42.0.1, on forkd-tap0 */
	uint32_t guest;		/* 10.42.0.2 */
	unsigned transfer_plen; /* 30 */
	unsigned tap_plen;	/* 24 */
};

/* 0, or -ERANGE when index >= NETNS_MAX_CHILDREN. Pure: no system calls. */
int netns_addrs(uint32_t index, struct netns_addrs *a) __must_check;

/* 0 and *index when name is exactly "forkd-child-<i>" (canonical decimal,
 * i < NETNS_MAX_CHILDREN), else -EINVAL. */
int netns_parse_name(const char *name, uint32_t *index) __must_check;

/* True when /run/netns/forkd-child-<index> is a network namespace. */
bool netns_exists(uint32_t index);

/* Make namespace index complete: create it if missing, repair whatever
 * part is missing or wrong (a half-made namespace from an interrupted
 * run, a deleted veth, a flushed table), leave a complete one untouched
 * (the fast path: a few netlink queries). Safe to repeat. Returns 0 when
 * the namespace existed, NETNS_CREATED when it was made now, or -errno
 * (reported). Call in the spawner, never in a child. */
int netns_prepare(uint32_t index) __must_check;

/* Move the calling thread into namespace index (setns). Call in the
 * child before it starts threads and before the tap is opened; threads
 * created afterwards inherit the namespace. 0 or -errno (reported, with
 * the fix when the namespace does not exist). */
int netns_enter(uint32_t index) __must_check;

/* Move the calling process into a new, unnamed network namespace holding
 * only a tap NETNS_TAP_NAME with 10.42.0.1/24, up: the network a guest
 * sees in every child namespace, for booting the guest that is then
 * snapshotted. The namespace disappears with the process; nothing is
 * left on the host. Call before any thread starts. 0 or -errno
 * (reported). */
int netns_private_tap(void) __must_check;

/* Remove namespace index: the tap, both veth ends, the NAT table, the
 * name under /run/netns; and the host table when no forkd namespace is
 * left. A process still inside keeps an empty namespace alive until it
 * exits. 0, -ENOENT when nothing of it existed (not reported), or -errno. */
int netns_remove(uint32_t index) __must_check;

/* What exists of namespace index. */
struct netns_status {
	bool bound; /* /run/netns/<name> is a network namespace */
	bool lo_up;
	bool tap; /* forkd-tap0 exists and is a tun/tap device */
	bool tap_up;
	bool tap_addr;	  /* 10.42.0.1/24 */
	bool ns_veth;	  /* fkd<i>n exists, is a veth */
	bool host_veth;	  /* fkd<i>h exists, is a veth */
	bool veth_paired; /* and they are each other's peer */
	bool ns_veth_up, host_veth_up;
	bool ns_addr, host_addr;
	bool route;	 /* default via the host end */
	bool forwarding; /* on forkd-tap0 and fkd<i>n */
	bool nat;	 /* table ip forkd in the namespace */
	bool host_table; /* table inet forkd on the host */
};

/* Inspect namespace index without changing anything. 0 (st filled in;
 * st->bound false when there is no such namespace) or -errno. */
int netns_check(uint32_t index, struct netns_status *st) __must_check;

/* True when nothing is missing. */
bool netns_status_ok(const struct netns_status *st);

/* "tap, route" (what is missing) or "" when complete. */
void netns_status_missing(const struct netns_status *st, char *buf, size_t size);

/* The indices of every forkd-child-<i> under /run/netns, ascending, in a
 * malloc'ed array (*out, may be NULL when *n is 0). 0 or -errno. */
int netns_list(uint32_t **out, size_t *n) __must_check;

/* The indices of host links named fkd<i>h, ascending (malloc'ed). */
int netns_host_veths(uint32_t **out, size_t *n) __must_check;

/* Delete host veth fkd<i>h (taking its peer with it). 0 or -ENOENT. */
int netns_remove_host_veth(uint32_t index) __must_check;

/* Delete the host table when no forkd namespace is left (0), or leave it
 * (0); -errno on failure. */
int netns_prune_host_table(void) __must_check;

/* How many processes use namespace index: a thread inside it, or an open
 * file descriptor of it. *first gets one such pid (or 0). -ENOENT when
 * the namespace does not exist. */
int netns_users(uint32_t index, pid_t *first) __must_check;

/* Leftovers for `forkd cleanup`: every forkd-child-<i> namespace (what:
 * its path under /run/netns) with why it is in use (a process inside or
 * holding it) or NULL, then every host veth whose namespace is gone
 * (host_veth, what: "host veth ..."). Needs root. 0 or -errno. */
typedef void (*netns_scan_fn)(const char *what, uint32_t index, bool host_veth, const char *busy,
			      void *arg);
int netns_scan_leftovers(netns_scan_fn fn, void *arg) __must_check;

/* The same for n namespaces in one pass over /proc: first[i] (0: none)
 * and, when count is not NULL, count[i]. A namespace that does not exist
 * has no users. 0, -ERANGE (an index out of range) or -errno. */
int netns_users_many(const uint32_t *index, size_t n, pid_t *first, int *count) __must_check;

#endif
