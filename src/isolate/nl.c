/* Netlink sockets per namespace and the rtnetlink requests forkd needs
 * (rtnetlink(7); the attribute layouts are those of linux/if_link.h,
 * linux/if_addr.h and linux/rtnetlink.h). */
#include "isolate/nl.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

_Static_assert(sizeof(((struct nl_link *)0)->name) == IFNAMSIZ, "nl_link.name is IFNAMSIZ");

int nl_in_netns(int nsfd, int (*fn)(void *arg), void *arg)
{
	int self, ret;

	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return log_errno("open /proc/thread-self/ns/net (is /proc mounted?)");
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		ret = log_errno("setns(CLONE_NEWNET) into a forkd namespace (needs CAP_SYS_ADMIN)");
		close(self);
		return ret;
	}
	ret = fn(arg);
	if (setns(self, CLONE_NEWNET) < 0)
		ret = log_errno("setns(CLONE_NEWNET) back to this thread's own namespace");
	close(self);
	return ret;
}

struct open_args {
	int bus;
	struct mnl_socket *sk;
};

static int open_socket(void *arg)
{
	struct open_args *a = arg;

	a->sk = mnl_socket_open2(a->bus, SOCK_CLOEXEC);
	return a->sk ? 0 : log_errno("socket(AF_NETLINK, %d)", a->bus);
}

int nl_open(struct nl *nl, int bus, int nsfd, const char *where)
{
	struct open_args a = {.bus = bus};
	struct timeval tv = {.tv_sec = 5};
	int one = 1, err;

	memset(nl, 0, sizeof(*nl));
	snprintf(nl->where, sizeof(nl->where), "%s", where);
	nl->buf = malloc(NL_BUF_SIZE);
	if (!nl->buf)
		return -ENOMEM;
	err = nsfd >= 0 ? nl_in_netns(nsfd, open_socket, &a) : open_socket(&a);
	if (err)
		goto fail;
	nl->sk = a.sk;
	if (mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = log_errno("bind(netlink %d) in %s", bus, where);
		goto fail;
	}
	if (setsockopt(mnl_socket_get_fd(nl->sk), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		err = log_errno("setsockopt(netlink, SO_RCVTIMEO)");
		goto fail;
	}
	/* Extended acks carry the kernel's reason in words; older kernels
	 * lack the option and just give the errno. */
	(void)mnl_socket_setsockopt(nl->sk, NETLINK_EXT_ACK, &one, sizeof(one));
	nl->portid = mnl_socket_get_portid(nl->sk);
	nl->seq = (uint32_t)time(NULL);
	return 0;

fail:
	nl_close(nl);
	return err;
}

void nl_close(struct nl *nl)
{
	if (nl->sk)
		mnl_socket_close(nl->sk);
	free(nl->buf);
	nl->sk = NULL;
	nl->buf = NULL;
}

/* The text of an NLMSGERR_ATTR_MSG, if the error carries one. */
static void nl_ext_msg(struct nl *nl, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	size_t off = sizeof(*e);

	nl->ext[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	/* Without NLM_F_CAPPED the failed request is echoed in full. */
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	if (mnl_nlmsg_get_payload_len(nlh) < off)
		return;
	mnl_attr_for_each(a, nlh, off)
	{
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) {
			snprintf(nl->ext, sizeof(nl->ext), "%s", mnl_attr_get_str(a));
			return;
		}
	}
}

/* Send nlh and read until its answer ends: the ack (NLMSG_ERROR) of a
 * request, or NLMSG_DONE of a dump. Every other message of this sequence
 * goes to cb; the first non-zero cb result is kept (and returned) while
 * the rest of the answer is still read, so the socket stays in step. */
static int nl_talk(struct nl *nl, struct nlmsghdr *nlh, bool dump,
		   int (*cb)(const struct nlmsghdr *m, void *arg), void *arg)
{
	uint32_t seq = ++nl->seq;
	int ret = 0;

	nlh->nlmsg_seq = seq;
	nlh->nlmsg_flags |= NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
	nl->ext[0] = '\0';
	if (mnl_socket_sendto(nl->sk, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sk, nl->buf, NL_BUF_SIZE);
		const struct nlmsghdr *m;
		int len;

		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		len = (int)n;
		for (m = (const struct nlmsghdr *)nl->buf; mnl_nlmsg_ok(m, len);
		     m = mnl_nlmsg_next(m, &len)) {
			if (m->nlmsg_seq != seq || m->nlmsg_pid != nl->portid)
				continue; /* an answer to an earlier, abandoned request */
			if (m->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);

				if (mnl_nlmsg_get_payload_len(m) < sizeof(*e))
					return -EBADMSG;
				if (e->error)
					nl_ext_msg(nl, m);
				return e->error ? e->error : ret;
			}
			if (m->nlmsg_type == NLMSG_DONE) {
				int e = 0;

				if (mnl_nlmsg_get_payload_len(m) >= sizeof(e))
					memcpy(&e, mnl_nlmsg_get_payload(m), sizeof(e));
				if (e < 0)
					return e;
				if (m->nlmsg_flags & NLM_F_DUMP_INTR)
					return -EAGAIN; /* changed during the dump */
				return ret;
			}
			if (m->nlmsg_type < NLMSG_MIN_TYPE)
				continue; /* NLMSG_NOOP */
			if (!ret && cb)
				ret = cb(m, arg);
		}
	}
}

int nl_request(struct nl *nl, struct nlmsghdr *nlh)
{
	return nl_talk(nl, nlh, false, NULL, NULL);
}

/* A dump, repeated when the kernel says it was interrupted by a change. */
static int nl_dump(struct nl *nl, uint16_t type, const void *hdr, size_t hdr_len,
		   int (*cb)(const struct nlmsghdr *m, void *arg), void *arg)
{
	int err = -EAGAIN;

	for (int tries = 0; tries < 5 && err == -EAGAIN; tries++) {
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);

		nlh->nlmsg_type = type;
		memcpy(mnl_nlmsg_put_extra_header(nlh, hdr_len), hdr, hdr_len);
		err = nl_talk(nl, nlh, true, cb, arg);
	}
	return err;
}

static int nl_fail(struct nl *nl, int err, const char *fmt, ...) __printf(3, 4);

static int nl_fail(struct nl *nl, int err, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_err("%s in %s: %s%s%s%s", what, nl->where, strerror(-err), nl->ext[0] ? " (" : "",
		nl->ext, nl->ext[0] ? ")" : "");
	return err;
}

static struct nlmsghdr *put_link_msg(struct nl *nl, uint16_t type, uint16_t flags, int index,
				     struct ifinfomsg **ifi_out)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	if (ifi_out)
		*ifi_out = ifi;
	return nlh;
}

/* IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF: an array of u32, entry i
 * holding devconf i + 1. */
static int parse_inet_conf(const struct nlattr *spec)
{
	const struct nlattr *fam, *a;

	mnl_attr_for_each_nested(fam, spec)
	{
		if (mnl_attr_get_type(fam) != AF_INET)
			continue;
		mnl_attr_for_each_nested(a, fam)
		{
			uint32_t v;

			if (mnl_attr_get_type(a) != IFLA_INET_CONF ||
			    mnl_attr_get_payload_len(a) < IPV4_DEVCONF_FORWARDING * sizeof(v))
				continue;
			memcpy(&v,
			       (const char *)mnl_attr_get_payload(a) +
				   (IPV4_DEVCONF_FORWARDING - 1) * sizeof(v),
			       sizeof(v));
			return v != 0;
		}
	}
	return -1;
}

static int parse_link(const struct nlmsghdr *m, struct nl_link *l)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(m);
	const struct nlattr *a, *b;

	if (m->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(m) < sizeof(*ifi))
		return -EBADMSG;
	memset(l, 0, sizeof(*l));
	l->index = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	l->ipv4_forwarding = -1;
	mnl_attr_for_each(a, m, sizeof(*ifi))
	{
		switch (mnl_attr_get_type(a)) {
		case IFLA_IFNAME:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
				snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a));
			break;
		case IFLA_LINK:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				l->peer_index = (int)mnl_attr_get_u32(a);
			break;
		case IFLA_LINKINFO:
			if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
				break;
			mnl_attr_for_each_nested(b, a)
			{
				if (mnl_attr_get_type(b) == IFLA_INFO_KIND &&
				    mnl_attr_validate(b, MNL_TYPE_STRING) == 0)
					snprintf(l->kind, sizeof(l->kind), "%.*s",
						 (int)mnl_attr_get_payload_len(b),
						 mnl_attr_get_str(b));
			}
			break;
		case IFLA_AF_SPEC:
			if (mnl_attr_validate(a, MNL_TYPE_NESTED) == 0)
				l->ipv4_forwarding = parse_inet_conf(a);
			break;
		}
	}
	return 0;
}

static int link_get_cb(const struct nlmsghdr *m, void *arg)
{
	return parse_link(m, arg);
}

int nl_link_get(struct nl *nl, const char *name, struct nl_link *out)
{
	struct nlmsghdr *nlh = put_link_msg(nl, RTM_GETLINK, 0, 0, NULL);
	struct nl_link l = {.index = 0};
	int err;

	if (strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	err = nl_talk(nl, nlh, false, link_get_cb, &l);
	if (err == -ENODEV)
		return err;
	if (err)
		return nl_fail(nl, err, "rtnetlink RTM_GETLINK(%s)", name);
	if (l.index <= 0)
		return nl_fail(nl, -EBADMSG, "rtnetlink RTM_GETLINK(%s) answered no link", name);
	*out = l;
	return 0;
}

int nl_link_set_up(struct nl *nl, int index, bool up)
{
	struct ifinfomsg *ifi;
	struct nlmsghdr *nlh = put_link_msg(nl, RTM_NEWLINK, 0, index, &ifi);
	int err;

	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	err = nl_request(nl, nlh);
	return err ? nl_fail(nl, err, "rtnetlink RTM_NEWLINK(link %d %s)", index,
			     up ? "up" : "down")
		   : 0;
}

int nl_link_del(struct nl *nl, int index)
{
	struct nlmsghdr *nlh = put_link_msg(nl, RTM_DELLINK, 0, index, NULL);
	int err = nl_request(nl, nlh);

	if (err && err != -ENODEV)
		return nl_fail(nl, err, "rtnetlink RTM_DELLINK(link %d)", index);
	return err;
}

int nl_veth_add(struct nl *nl, const char *name, const char *peer_name, int peer_nsfd)
{
	struct nlmsghdr *nlh = put_link_msg(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, NULL);
	struct nlattr *info, *data, *peer;
	struct ifinfomsg *pifi;
	int err;

	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	/* VETH_INFO_PEER holds a struct ifinfomsg, then the peer's own
	 * link attributes. */
	peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	pifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifi));
	pifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name);
	if (peer_nsfd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	err = nl_request(nl, nlh);
	return err ? nl_fail(nl, err, "rtnetlink RTM_NEWLINK(veth %s, peer %s)", name, peer_name)
		   : 0;
}

int nl_link_set_forwarding(struct nl *nl, int index, bool on)
{
	struct nlmsghdr *nlh = put_link_msg(nl, RTM_NEWLINK, 0, index, NULL);
	struct nlattr *spec, *fam, *conf;
	int err;

	spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
	fam = mnl_attr_nest_start(nlh, AF_INET);
	conf = mnl_attr_nest_start(nlh, IFLA_INET_CONF);
	mnl_attr_put_u32(nlh, IPV4_DEVCONF_FORWARDING, on);
	mnl_attr_nest_end(nlh, conf);
	mnl_attr_nest_end(nlh, fam);
	mnl_attr_nest_end(nlh, spec);
	err = nl_request(nl, nlh);
	return err ? nl_fail(nl, err, "rtnetlink RTM_NEWLINK(link %d ipv4 forwarding %d)", index,
			     on)
		   : 0;
}

int nl_link_no_ipv6(struct nl *nl, int index)
{
	struct nlmsghdr *nlh = put_link_msg(nl, RTM_NEWLINK, 0, index, NULL);
	struct nlattr *spec, *fam;
	int err;

	spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
	fam = mnl_attr_nest_start(nlh, AF_INET6);
	mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
	mnl_attr_nest_end(nlh, fam);
	mnl_attr_nest_end(nlh, spec);
	err = nl_request(nl, nlh);
	if (err == -EAFNOSUPPORT) {
		log_debug("%s: no IPv6 in this kernel; link %d keeps no IPv6 address anyway",
			  nl->where, index);
		return err;
	}
	return err ? nl_fail(nl, err, "rtnetlink RTM_NEWLINK(link %d addrgenmode none)", index) : 0;
}

int nl_addr_replace(struct nl *nl, int index, uint32_t addr, unsigned plen)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
	struct ifaddrmsg *ifa;
	char text[16];
	int err;

	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (uint8_t)plen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (uint32_t)index;
	mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
	mnl_attr_put(nlh, IFA_ADDRESS, sizeof(addr), &addr);
	err = nl_request(nl, nlh);
	if (!err)
		return 0;
	snprintf(text, sizeof(text), "%u.%u.%u.%u", ((uint8_t *)&addr)[0], ((uint8_t *)&addr)[1],
		 ((uint8_t *)&addr)[2], ((uint8_t *)&addr)[3]);
	return nl_fail(nl, err, "rtnetlink RTM_NEWADDR(%s/%u on link %d)", text, plen, index);
}

struct addr_match {
	int index;
	uint32_t addr;
	unsigned plen;
};

static int addr_cb(const struct nlmsghdr *m, void *arg)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(m);
	const struct addr_match *want = arg;
	const struct nlattr *a;
	uint32_t local = 0, address = 0;
	bool has_local = false;

	if (m->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(m) < sizeof(*ifa))
		return 0;
	if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != want->index ||
	    ifa->ifa_prefixlen != want->plen)
		return 0;
	mnl_attr_for_each(a, m, sizeof(*ifa))
	{
		if (mnl_attr_get_payload_len(a) != sizeof(uint32_t))
			continue;
		if (mnl_attr_get_type(a) == IFA_LOCAL) {
			memcpy(&local, mnl_attr_get_payload(a), sizeof(local));
			has_local = true;
		} else if (mnl_attr_get_type(a) == IFA_ADDRESS) {
			memcpy(&address, mnl_attr_get_payload(a), sizeof(address));
		}
	}
	return (has_local ? local : address) == want->addr;
}

int nl_addr_present(struct nl *nl, int index, uint32_t addr, unsigned plen)
{
	struct ifaddrmsg ifa = {.ifa_family = AF_INET};
	struct addr_match want = {index, addr, plen};
	int ret = nl_dump(nl, RTM_GETADDR, &ifa, sizeof(ifa), addr_cb, &want);

	return ret < 0 ? nl_fail(nl, ret, "rtnetlink RTM_GETADDR dump") : ret;
}

int nl_route_default_replace(struct nl *nl, int index, uint32_t gw)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
	struct rtmsg *rtm;
	int err;

	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_GATEWAY, sizeof(gw), &gw);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)index);
	err = nl_request(nl, nlh);
	return err ? nl_fail(nl, err, "rtnetlink RTM_NEWROUTE(default via link %d)", index) : 0;
}

struct route_match {
	int index;
	uint32_t gw;
};

static int route_cb(const struct nlmsghdr *m, void *arg)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(m);
	const struct route_match *want = arg;
	const struct nlattr *a;
	uint32_t table, gw = 0, oif = 0;

	if (m->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(m) < sizeof(*rtm))
		return 0;
	if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len != 0 || rtm->rtm_type != RTN_UNICAST)
		return 0;
	table = rtm->rtm_table;
	mnl_attr_for_each(a, m, sizeof(*rtm))
	{
		if (mnl_attr_get_payload_len(a) != sizeof(uint32_t))
			continue;
		switch (mnl_attr_get_type(a)) {
		case RTA_TABLE:
			table = mnl_attr_get_u32(a);
			break;
		case RTA_GATEWAY:
			memcpy(&gw, mnl_attr_get_payload(a), sizeof(gw));
			break;
		case RTA_OIF:
			oif = mnl_attr_get_u32(a);
			break;
		}
	}
	return table == RT_TABLE_MAIN && gw == want->gw && (int)oif == want->index;
}

int nl_route_default_present(struct nl *nl, int index, uint32_t gw)
{
	struct rtmsg rtm = {.rtm_family = AF_INET};
	struct route_match want = {index, gw};
	int ret = nl_dump(nl, RTM_GETROUTE, &rtm, sizeof(rtm), route_cb, &want);

	return ret < 0 ? nl_fail(nl, ret, "rtnetlink RTM_GETROUTE dump") : ret;
}

struct foreach_args {
	int (*fn)(const struct nl_link *l, void *arg);
	void *arg;
};

static int foreach_cb(const struct nlmsghdr *m, void *arg)
{
	struct foreach_args *f = arg;
	struct nl_link l;

	if (parse_link(m, &l))
		return 0;
	return f->fn(&l, f->arg);
}

int nl_link_foreach(struct nl *nl, int (*fn)(const struct nl_link *l, void *arg), void *arg)
{
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
	struct foreach_args f = {fn, arg};
	int ret = nl_dump(nl, RTM_GETLINK, &ifi, sizeof(ifi), foreach_cb, &f);

	return ret < 0 ? nl_fail(nl, ret, "rtnetlink RTM_GETLINK dump") : ret;
}
