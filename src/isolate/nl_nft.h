/* The two nf_tables tables forkd owns, built over nfnetlink with libnftnl
 * on a NETLINK_NETFILTER socket from nl_open(). Each is replaced in one
 * transaction (add the table, delete it, add it back with its chain and
 * rule), so it never exists half-made and replacing it twice is harmless.
 *
 * In a child's namespace (NL_NFT_NAT_TABLE, family ip):
 *   table ip forkd {
 *     chain postrouting { type nat hook postrouting priority srcnat;
 *       oifname "<veth>" ip saddr <net>/<plen> counter masquerade } }
 *
 * In the host namespace (NL_NFT_HOST_TABLE, family inet):
 *   table inet forkd {
 *     chain forward { type filter hook forward priority filter; policy accept;
 *       iifname "<prefix>*" oifname "<prefix>*" counter drop } }
 */
#ifndef FORKD_ISOLATE_NL_NFT_H
#define FORKD_ISOLATE_NL_NFT_H

#include <stdint.h>

#include "isolate/nl.h"

#define NL_NFT_TABLE "forkd"

/* Replace the child namespace's NAT table: traffic from net/plen (network
 * order) leaving through oifname takes oifname's address. */
int nl_nft_nat_replace(struct nl *nl, const char *oifname, uint32_t net,
		       unsigned plen) __must_check;

/* Replace the host table that refuses forwarding between any two
 * interfaces whose names begin with prefix. */
int nl_nft_isolate_replace(struct nl *nl, const char *prefix) __must_check;

/* 1 when table NL_NFT_TABLE of family (NFPROTO_IPV4, NFPROTO_INET)
 * exists, 0 when not, or -errno (reported). */
int nl_nft_table_present(struct nl *nl, uint16_t family) __must_check;

/* Delete table NL_NFT_TABLE of family; -ENOENT (not reported) when absent. */
int nl_nft_table_del(struct nl *nl, uint16_t family) __must_check;

#endif
