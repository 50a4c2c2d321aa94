/* nf_tables over nfnetlink: changes travel in a batch (NFNL_MSG_BATCH_BEGIN
 * ... NFNL_MSG_BATCH_END) that the kernel applies as one transaction; every
 * message in it asks for an ack, and the first error is the answer. */
#include "isolate/nl_nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>

#include "common/util.h"

#define NFT_MAX_MSGS 8

struct nft_batch {
	struct nl *nl;
	struct mnl_nlmsg_batch *b;
	uint32_t seq0;			/* the batch-begin message's sequence number */
	int n;				/* messages that ask for an ack */
	const char *what[NFT_MAX_MSGS]; /* message i (seq0 + 1 + i), for errors */
};

static void batch_start(struct nft_batch *bt, struct nl *nl)
{
	memset(bt, 0, sizeof(*bt));
	bt->nl = nl;
	bt->b = mnl_nlmsg_batch_start(nl->buf, NL_BUF_SIZE);
	bt->seq0 = ++nl->seq;
	nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq0);
	mnl_nlmsg_batch_next(bt->b);
}

static struct nlmsghdr *batch_msg(struct nft_batch *bt, uint16_t type, uint16_t family,
				  uint16_t flags, const char *what)
{
	struct nlmsghdr *nlh;

	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, family, flags | NLM_F_ACK,
				    bt->seq0 + 1 + (uint32_t)bt->n);
	bt->what[bt->n++] = what;
	return nlh;
}

/* Close the batch, send it and collect one ack per message. */
static int batch_commit(struct nft_batch *bt, const char *ctx)
{
	struct nl *nl = bt->nl;
	uint32_t last = bt->seq0 + (uint32_t)bt->n;
	int acked = 0;

	nl->seq = last + 1;
	nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), nl->seq);
	mnl_nlmsg_batch_next(bt->b);
	if (mnl_socket_sendto(nl->sk, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) <
	    0) {
		mnl_nlmsg_batch_stop(bt->b);
		return log_errno("nf_tables: send the %s transaction in %s", ctx, nl->where);
	}
	mnl_nlmsg_batch_stop(bt->b);
	while (acked < bt->n) {
		ssize_t r = mnl_socket_recvfrom(nl->sk, nl->buf, NL_BUF_SIZE);
		const struct nlmsghdr *m;
		int len;

		if (r < 0) {
			int err = errno == EAGAIN ? -ETIMEDOUT : -errno;

			log_err("nf_tables: %s in %s: no answer: %s", ctx, nl->where,
				strerror(-err));
			return err;
		}
		len = (int)r;
		for (m = (const struct nlmsghdr *)nl->buf; mnl_nlmsg_ok(m, len);
		     m = mnl_nlmsg_next(m, &len)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);

			if (m->nlmsg_type != NLMSG_ERROR || m->nlmsg_pid != nl->portid ||
			    m->nlmsg_seq < bt->seq0 || m->nlmsg_seq > last ||
			    mnl_nlmsg_get_payload_len(m) < sizeof(*e))
				continue;
			if (e->error) {
				uint32_t i = m->nlmsg_seq - bt->seq0;

				log_err("nf_tables: %s in %s: %s failed: %s", ctx, nl->where,
					i ? bt->what[i - 1] : "the batch", strerror(-e->error));
				return e->error;
			}
			acked++;
		}
	}
	return 0;
}

static void add_table(struct nft_batch *bt, uint16_t family, uint16_t type, uint16_t flags,
		      const char *what)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh = batch_msg(bt, type, family, flags, what);

	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NL_NFT_TABLE);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	mnl_nlmsg_batch_next(bt->b);
}

static void add_base_chain(struct nft_batch *bt, uint16_t family, const char *name,
			   const char *type, uint32_t hook, int32_t prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh = batch_msg(bt, NFT_MSG_NEWCHAIN, family, NLM_F_CREATE, "add chain");

	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NL_NFT_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	mnl_nlmsg_batch_next(bt->b);
}

static void expr_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
}

static void expr_cmp_eq(struct nftnl_rule *r, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set_data(e, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, e);
}

/* An interface name match: the whole name (NUL-padded to IFNAMSIZ, as
 * the kernel stores it) or, with prefix set, just its first bytes. */
static void match_ifname(struct nftnl_rule *r, uint32_t key, const char *name, bool prefix)
{
	char buf[IFNAMSIZ] = {0};
	size_t len = strlen(name);

	memcpy(buf, name, MIN(len, sizeof(buf) - 1));
	expr_meta(r, key);
	expr_cmp_eq(r, buf, prefix ? (uint32_t)len : sizeof(buf));
}

static void expr_simple(struct nftnl_rule *r, const char *name)
{
	nftnl_rule_add_expr(r, nftnl_expr_alloc(name));
}

static struct nftnl_rule *rule_new(uint16_t family, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, family);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NL_NFT_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static void add_rule(struct nft_batch *bt, uint16_t family, struct nftnl_rule *r)
{
	struct nlmsghdr *nlh =
	    batch_msg(bt, NFT_MSG_NEWRULE, family, NLM_F_CREATE | NLM_F_APPEND, "add rule");

	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	mnl_nlmsg_batch_next(bt->b);
}

/* Add (if missing), delete, add: afterwards the table holds exactly what
 * follows in the same batch. */
static void replace_table(struct nft_batch *bt, uint16_t family)
{
	add_table(bt, family, NFT_MSG_NEWTABLE, NLM_F_CREATE, "add table");
	add_table(bt, family, NFT_MSG_DELTABLE, 0, "delete table");
	add_table(bt, family, NFT_MSG_NEWTABLE, NLM_F_CREATE, "add table");
}

int nl_nft_nat_replace(struct nl *nl, const char *oifname, uint32_t net, unsigned plen)
{
	uint32_t mask = plen ? htonl(~0u << (32 - plen)) : 0, zero = 0;
	struct nftnl_rule *r = rule_new(NFPROTO_IPV4, "postrouting");
	struct nftnl_expr *e;
	struct nft_batch bt;

	if (plen > 32 || strlen(oifname) >= IFNAMSIZ) {
		nftnl_rule_free(r);
		return -EINVAL;
	}
	net &= mask;
	match_ifname(r, NFT_META_OIFNAME, oifname, false);
	e = nftnl_expr_alloc("payload"); /* ip saddr */
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 12);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 4);
	nftnl_rule_add_expr(r, e);
	e = nftnl_expr_alloc("bitwise"); /* & mask */
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 4);
	nftnl_expr_set_data(e, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
	nftnl_expr_set_data(e, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
	nftnl_rule_add_expr(r, e);
	expr_cmp_eq(r, &net, 4);
	expr_simple(r, "counter");
	expr_simple(r, "masq");

	batch_start(&bt, nl);
	replace_table(&bt, NFPROTO_IPV4);
	add_base_chain(&bt, NFPROTO_IPV4, "postrouting", "nat", NF_INET_POST_ROUTING,
		       NF_IP_PRI_NAT_SRC);
	add_rule(&bt, NFPROTO_IPV4, r);
	return batch_commit(&bt, "replace table ip " NL_NFT_TABLE " (NAT)");
}

int nl_nft_isolate_replace(struct nl *nl, const char *prefix)
{
	struct nftnl_rule *r = rule_new(NFPROTO_INET, "forward");
	struct nftnl_expr *e;
	struct nft_batch bt;

	if (!*prefix || strlen(prefix) >= IFNAMSIZ) {
		nftnl_rule_free(r);
		return -EINVAL;
	}
	match_ifname(r, NFT_META_IIFNAME, prefix, true);
	match_ifname(r, NFT_META_OIFNAME, prefix, true);
	expr_simple(r, "counter");
	e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
	nftnl_rule_add_expr(r, e);

	batch_start(&bt, nl);
	replace_table(&bt, NFPROTO_INET);
	add_base_chain(&bt, NFPROTO_INET, "forward", "filter", NF_INET_FORWARD, 0);
	add_rule(&bt, NFPROTO_INET, r);
	return batch_commit(&bt, "replace table inet " NL_NFT_TABLE " (isolation)");
}

static const char *family_name(uint16_t family)
{
	return family == NFPROTO_INET ? "inet" : family == NFPROTO_IPV4 ? "ip" : "?";
}

int nl_nft_table_present(struct nl *nl, uint16_t family)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	int err;

	nlh = nftnl_nlmsg_build_hdr(nl->buf, NFT_MSG_GETTABLE, family, 0, 0);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NL_NFT_TABLE);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	err = nl_request(nl, nlh);
	if (err == -ENOENT)
		return 0;
	if (err) {
		log_err("nf_tables: get table %s %s in %s: %s", family_name(family), NL_NFT_TABLE,
			nl->where, strerror(-err));
		return err;
	}
	return 1;
}

int nl_nft_table_del(struct nl *nl, uint16_t family)
{
	struct nft_batch bt;
	int err;

	/* batch_commit reports every error; a missing table is no error
	 * for the caller, so probe first to stay quiet about it. */
	err = nl_nft_table_present(nl, family);
	if (err <= 0)
		return err ? err : -ENOENT;
	batch_start(&bt, nl);
	add_table(&bt, family, NFT_MSG_DELTABLE, 0, "delete table");
	return batch_commit(&bt, "delete table " NL_NFT_TABLE);
}
