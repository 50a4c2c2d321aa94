/* Netlink plumbing for the per-child network namespaces (netns.h):
 * a libmnl socket bound to one network namespace, rtnetlink requests for
 * links, addresses and routes (rtnetlink(7)), and a way to run a few
 * system calls with the calling thread inside another namespace.
 *
 * A netlink socket works on the namespace it was created in, whatever
 * namespace its user is in later; so one process can configure many
 * namespaces without moving into them, except for what has no netlink
 * form (opening /dev/net/tun).
 *
 * Every request that fails is reported once here, naming the request, the
 * object and the namespace (struct nl.where), and returned as -errno.
 * Probes that may legitimately find nothing (nl_link_get) stay quiet about
 * -ENODEV. Nothing here keeps global state; a struct nl belongs to one
 * thread at a time. */
#ifndef FORKD_ISOLATE_NL_H
#define FORKD_ISOLATE_NL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"

struct mnl_socket;
struct nlmsghdr;

struct nl {
	struct mnl_socket *sk;
	uint32_t portid;
	uint32_t seq;
	char where[32]; /* namespace name, for messages ("host", "forkd-child-3") */
	char *buf;	/* NL_BUF_SIZE bytes: requests and replies */
	char ext[128];	/* the kernel's extended-ack text for the last failure, or "" */
};

#define NL_BUF_SIZE (32 * 1024) /* the largest dump message the kernel sends */

/* Run fn(arg) with the calling thread in network namespace nsfd, then
 * move it back; other threads are not affected. Returns fn's result, or
 * -errno when entering or leaving fails. Needs CAP_SYS_ADMIN. */
int nl_in_netns(int nsfd, int (*fn)(void *arg), void *arg) __must_check;

/* Open a socket on netlink `bus` (NETLINK_ROUTE, NETLINK_NETFILTER) in
 * namespace nsfd (-1: the caller's). `where` names it in messages.
 * Replies time out after 5 s, so a stuck kernel never hangs forkd. */
int nl_open(struct nl *nl, int bus, int nsfd, const char *where) __must_check;
void nl_close(struct nl *nl);

/* Send the request in nl->buf (built by the caller, nlmsg_seq filled in
 * here) with NLM_F_ACK and wait for its answer: 0 or the kernel's -errno,
 * with the kernel's explanation, if it gave one, in nl->ext. Reports
 * nothing: callers know what the request meant. */
int nl_request(struct nl *nl, struct nlmsghdr *nlh) __must_check;

/* One link as rtnetlink describes it. */
struct nl_link {
	int index;
	unsigned flags;	     /* IFF_* */
	int peer_index;	     /* IFLA_LINK: a veth's peer, in the peer's namespace; 0: none */
	char kind[16];	     /* IFLA_INFO_KIND ("veth", "tun"), "" when absent */
	int ipv4_forwarding; /* per-device IPv4 forwarding: 1, 0, or -1 when unknown */
	char name[16];	     /* IFNAMSIZ */
};

/* Look a link up by name: 0 and *out, -ENODEV (not reported) when there
 * is none, other -errno (reported). */
int nl_link_get(struct nl *nl, const char *name, struct nl_link *out) __must_check;

/* Set or clear IFF_UP. */
int nl_link_set_up(struct nl *nl, int index, bool up) __must_check;

/* Delete a link (a veth takes its peer with it). -ENODEV is not reported. */
int nl_link_del(struct nl *nl, int index) __must_check;

/* Create veth `name` here with its peer `peer_name` placed directly in the
 * namespace peer_nsfd. Both ends start down. */
int nl_veth_add(struct nl *nl, const char *name, const char *peer_name, int peer_nsfd) __must_check;

/* Per-device IPv4 forwarding (the devconf behind
 * net.ipv4.conf.<dev>.forwarding), set through IFLA_AF_SPEC. */
int nl_link_set_forwarding(struct nl *nl, int index, bool on) __must_check;

/* No IPv6 link-local address on this link (IN6_ADDR_GEN_MODE_NONE): the
 * link then sends no router or neighbour solicitations. Call while the
 * link is down. -EAFNOSUPPORT when the kernel has no IPv6 (reported at
 * debug level only: the link works without it). */
int nl_link_no_ipv6(struct nl *nl, int index) __must_check;

/* Add or replace IPv4 address addr/plen on a link (addr in network order). */
int nl_addr_replace(struct nl *nl, int index, uint32_t addr, unsigned plen) __must_check;

/* 1 when the link has IPv4 address addr/plen, 0 when not, or -errno. */
int nl_addr_present(struct nl *nl, int index, uint32_t addr, unsigned plen) __must_check;

/* Add or replace the main table's IPv4 default route: via gw out of index. */
int nl_route_default_replace(struct nl *nl, int index, uint32_t gw) __must_check;

/* 1 when the main table's IPv4 default route goes via gw out of index,
 * 0 when not (or no default route), or -errno. */
int nl_route_default_present(struct nl *nl, int index, uint32_t gw) __must_check;

/* Call fn for every link in the socket's namespace (a dump); stops early
 * when fn returns non-zero and returns that. */
int nl_link_foreach(struct nl *nl, int (*fn)(const struct nl_link *l, void *arg),
		    void *arg) __must_check;

#endif
