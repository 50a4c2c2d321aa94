/* forkd netns: make, list and remove the per-child network namespaces
 * ahead of time (src/isolate/netns.h draws what one holds). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "isolate/netns.h"

static void netns_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: forkd netns setup [--first I] N\n"
	    "       forkd netns teardown [--force] (--all | I...)\n"
	    "       forkd netns ls [--json]\n"
	    "\n"
	    "Per-child network namespaces, made ahead of time (a fork with\n"
	    "--per-child-netns also makes missing ones itself). Child i runs in\n"
	    "namespace forkd-child-<i> holding tap " NETNS_TAP_NAME " (" NETNS_TAP_ADDR "/24; the\n"
	    "guest is " NETNS_GUEST_ADDR "), a veth pair to the host (host end fkd<i>h\n"
	    "10.201.0.0+4i+1/30, namespace end fkd<i>n +2) with the default route, and\n"
	    "NAT of the guest to the namespace end's address. Every child keeps the\n"
	    "same guest address; children cannot reach each other. From the host:\n"
	    "  echo '{\"op\":\"ping\"}' | ip netns exec forkd-child-3 socat - TCP:" NETNS_GUEST_ADDR
	    ":8888\n"
	    "\n"
	    "commands:\n"
	    "  setup N          make namespaces forkd-child-0 .. forkd-child-(N-1), or\n"
	    "                   with --first I: forkd-child-I .. forkd-child-(I+N-1).\n"
	    "                   Complete ones are left alone, half-made ones repaired.\n"
	    "  teardown I...    remove these namespaces, their veths and NAT tables\n"
	    "  teardown --all   remove every forkd-child-* namespace, stray fkd<i>h host\n"
	    "                   veths, and the host table 'inet forkd'\n"
	    "                   A namespace with a process inside is kept unless --force.\n"
	    "  ls               list the namespaces: addresses, state, processes inside\n"
	    "                   (--json: an array of {kind: namespace, name, index,\n"
	    "                   host_veth, host_addr, ns_addr, processes, state} and\n"
	    "                   {kind: stray_host_veth, name, index})\n"
	    "\n"
	    "Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). Indices go up to %u.\n",
	    NETNS_MAX_CHILDREN - 1);
}

static bool want_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

static uint32_t parse_index_arg(const char *what, const char *s, uint64_t max)
{
	uint64_t v;

	if (parse_u64(s, &v) || v > max)
		cli_usage_error("netns", "%s wants a number from 0 to %llu, got '%s'", what,
				(unsigned long long)max, s);
	return (uint32_t)v;
}

static void need_root(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "forkd netns: error: making and removing network namespaces needs "
				"root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run it with sudo\n");
		exit(1);
	}
}

static int netns_setup(int argc, char **argv)
{
	static const struct option opts[] = {{"first", required_argument, NULL, 'f'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	uint32_t first = 0, n, made = 0, repaired = 0, failed = 0;
	int c;

	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "netns setup")) != -1) {
		if (c == 'f')
			first = parse_index_arg("--first", optarg, NETNS_MAX_CHILDREN - 1);
		else if (c == 'h')
			return netns_usage(stdout), 0;
		else
			cli_usage_error("netns", "unknown option for 'setup'");
	}
	if (optind != argc - 1)
		cli_usage_error("netns", "setup wants one count N");
	n = parse_index_arg("setup N", argv[optind], NETNS_MAX_CHILDREN);
	if (n == 0 || (uint64_t)first + n > NETNS_MAX_CHILDREN)
		cli_usage_error("netns", "setup: indices %u..%llu are outside 0..%u", first,
				(unsigned long long)first + n - 1, NETNS_MAX_CHILDREN - 1);
	need_root();
	for (uint32_t i = first; i < first + n; i++) {
		struct netns_status st;
		char missing[256] = "";
		int r;

		if (netns_check(i, &st) == 0 && st.bound && !netns_status_ok(&st))
			netns_status_missing(&st, missing, sizeof(missing));
		r = netns_prepare(i);
		if (r < 0) {
			printf("netns: " NETNS_PREFIX "%u: FAILED (%s)\n", i, strerror(-r));
			failed++;
		} else if (r == NETNS_CREATED) {
			printf("netns: " NETNS_PREFIX "%u: created\n", i);
			made++;
		} else if (missing[0]) {
			printf("netns: " NETNS_PREFIX "%u: repaired (was missing: %s)\n", i,
			       missing);
			repaired++;
		}
	}
	printf("netns: %u namespaces " NETNS_PREFIX "%u.." NETNS_PREFIX "%u: %u created, %u "
	       "repaired, %u already complete, %u failed\n",
	       n, first, first + n - 1, made, repaired, n - made - repaired - failed, failed);
	return failed ? 1 : 0;
}

static bool listed(const uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* Remove one index; 0 removed or absent, 1 kept or failed. */
static int teardown_one(uint32_t i, bool force)
{
	pid_t pid;
	int users = netns_users(i, &pid), err;

	if (users > 0 && !force) {
		printf("netns: " NETNS_PREFIX "%u: kept: in use by pid %d%s (stop it, or use "
		       "--force)\n",
		       i, (int)pid, users > 1 ? " and others" : "");
		return 1;
	}
	err = netns_remove(i);
	if (err == -ENOENT) {
		printf("netns: " NETNS_PREFIX "%u: not present\n", i);
		return 0;
	}
	if (err) {
		printf("netns: " NETNS_PREFIX "%u: FAILED (%s)\n", i, strerror(-err));
		return 1;
	}
	printf("netns: " NETNS_PREFIX "%u: removed%s\n", i,
	       users > 0 ? " (a process inside keeps an empty namespace until it exits)" : "");
	return 0;
}

static int netns_teardown(int argc, char **argv)
{
	static const struct option opts[] = {{"all", no_argument, NULL, 'a'},
					     {"force", no_argument, NULL, 'F'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool all = false, force = false;
	uint32_t *ns = NULL, *veths = NULL;
	size_t nns = 0, nveths = 0;
	int c, bad = 0, err;

	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "netns teardown")) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'F')
			force = true;
		else if (c == 'h')
			return netns_usage(stdout), 0;
		else
			cli_usage_error("netns", "unknown option for 'teardown'");
	}
	if (all == (optind < argc))
		cli_usage_error("netns", "teardown wants --all or indices, not both or neither");
	for (int i = optind; i < argc; i++)
		(void)parse_index_arg("teardown I", argv[i], NETNS_MAX_CHILDREN - 1);
	need_root();
	if (!all) {
		for (int i = optind; i < argc; i++)
			bad |=
			    teardown_one(parse_index_arg("teardown I", argv[i], UINT32_MAX), force);
		return bad;
	}
	if ((err = netns_list(&ns, &nns)) || (err = netns_host_veths(&veths, &nveths))) {
		free(ns);
		return 1;
	}
	for (size_t i = 0; i < nns; i++)
		bad |= teardown_one(ns[i], force);
	/* Host ends whose namespace is gone (its name was removed by hand). */
	for (size_t i = 0; i < nveths; i++) {
		if (listed(ns, nns, veths[i]))
			continue;
		err = netns_remove_host_veth(veths[i]);
		if (err && err != -ENOENT) {
			bad = 1;
			continue;
		}
		printf("netns: stray host veth " NETNS_IFNAME_PREFIX "%uh: removed\n", veths[i]);
	}
	free(ns);
	free(veths);
	if (netns_prune_host_table())
		bad = 1;
	printf("netns: teardown %s\n", bad ? "left something behind (see above)" : "done");
	return bad;
}

static const char *ip4(uint32_t a, char *buf)
{
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static int netns_ls(int argc, char **argv)
{
	uint32_t *ns = NULL, *veths = NULL;
	size_t nns = 0, nveths = 0;
	json_t *list;
	bool json = false;
	int err;

	if (argc == 2 && !strcmp(argv[1], "--json"))
		json = true;
	else if (argc > 1)
		cli_usage_error("netns ls", "unexpected argument '%s' (ls takes only --json)",
				argv[1]);
	if ((err = netns_list(&ns, &nns)))
		return 1;
	if (geteuid() == 0 && netns_host_veths(&veths, &nveths)) {
		free(ns);
		return 1;
	}
	list = json_array();
	if (!json)
		printf("%-20s %-10s %-15s %-15s %-6s %s\n", "NAME", "HOST-VETH", "HOST-ADDR",
		       "NS-ADDR", "PROCS", "STATE");
	for (size_t k = 0; k < nns; k++) {
		char h[INET_ADDRSTRLEN], n[INET_ADDRSTRLEN], state[256];
		struct netns_status st;
		struct netns_addrs a;
		pid_t pid;
		int users;

		if (netns_addrs(ns[k], &a))
			continue;
		users = netns_users(ns[k], &pid);
		if (geteuid() != 0) {
			snprintf(state, sizeof(state), "unknown (root needed to look inside)");
		} else if ((err = netns_check(ns[k], &st))) {
			snprintf(state, sizeof(state), "unknown (%s)", strerror(-err));
		} else if (netns_status_ok(&st)) {
			snprintf(state, sizeof(state), "ok");
		} else {
			char missing[200];

			netns_status_missing(&st, missing, sizeof(missing));
			snprintf(state, sizeof(state), "incomplete: %s", missing);
		}
		if (json)
			json_array_append_new(
			    list, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:i, s:s}", "kind",
					    "namespace", "name", a.name, "index", (json_int_t)ns[k],
					    "host_veth", a.host_veth, "host_addr", ip4(a.host, h),
					    "ns_addr", ip4(a.ns, n), "processes",
					    users < 0 ? 0 : users, "state", state));
		else
			printf("%-20s %-10s %-15s %-15s %-6d %s\n", a.name, a.host_veth,
			       ip4(a.host, h), ip4(a.ns, n), users < 0 ? 0 : users, state);
	}
	for (size_t k = 0; k < nveths; k++) {
		if (listed(ns, nns, veths[k]))
			continue;
		if (json)
			json_array_append_new(
			    list, json_pack("{s:s, s:o, s:I}", "kind", "stray_host_veth", "name",
					    json_sprintf(NETNS_IFNAME_PREFIX "%uh", veths[k]),
					    "index", (json_int_t)veths[k]));
		else
			printf("stray host veth " NETNS_IFNAME_PREFIX "%uh without its namespace "
			       "(remove: forkd netns teardown --all)\n",
			       veths[k]);
	}
	if (json)
		cli_print_json(list);
	json_decref(list);
	if (!json) {
		if (!nns)
			printf("(no forkd network namespaces; make some with 'forkd netns setup "
			       "N')\n");
	}
	free(ns);
	free(veths);
	return 0;
}

int cmd_netns(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		netns_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (want_help(argc - 1, argv + 1)) {
		netns_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "setup"))
		return netns_setup(argc - 1, argv + 1);
	if (!strcmp(argv[1], "teardown"))
		return netns_teardown(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ls"))
		return netns_ls(argc - 1, argv + 1);
	cli_usage_error("netns", "unknown command '%s' (setup, teardown or ls)", argv[1]);
}
