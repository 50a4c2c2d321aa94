/* forkd serve: the controller daemon (src/daemon/daemon.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/http.h"

static void serve_usage(FILE *f)
{
	fprintf(f,
		"usage: forkd serve [options]\n"
		"\n"
		"Run the forkd controller: a REST API (docs/API.md, docs/openapi.yaml) that\n"
		"spawns sandboxes from snapshots and forwards ping/exec/eval/files to their\n"
		"agents. Sandboxes outlive the daemon: a restarted daemon re-adopts the ones\n"
		"still running and forgets those that exited. SIGTERM stops it gracefully\n"
		"(requests in flight finish; sandboxes keep running).\n"
		"\n"
		"options:\n"
		"  --bind HOST:PORT      listen address (default %s; port 0: any free\n"
		"                        port, printed at start)\n"
		"  --token-file PATH     bearer token (16-4096 printable bytes, mode 600);\n"
		"                        default STATE_DIR/token, made on the first start\n"
		"                        (the CLI and the SDK on this host read it there\n"
		"                        for a daemon on loopback)\n"
		"  --no-auth             no authentication: any local process may call the\n"
		"                        API (loopback only; UNSAFE on a shared host)\n"
		"  --state-dir DIR       SQLite state and snapshot job logs (default\n"
		"                        /var/lib/forkd as root, else $XDG_STATE_HOME/forkd\n"
		"                        or ~/.local/state/forkd)\n"
		"  --run-root DIR        sandbox run directories DIR/<id>/ (default\n"
		"                        /run/forkd as root, else $XDG_RUNTIME_DIR/forkd)\n"
		"  --audit-log PATH|-    one JSON line per request (default\n"
		"                        STATE_DIR/audit.log; '-' for stderr)\n"
		"  --guest-dir DIR       test guests (NAME.elf) that POST /v1/snapshots may\n"
		"                        boot with kind \"test-guest\" (e.g. build/guests)\n"
		"  --spawn-timeout-secs S  wait at most S for children to report (default 60)\n"
		"  --agent-timeout-secs S  wait at most S for a spawn's agents to answer\n"
		"                        and run its after_fork steps (1 to 3600; default\n"
		"                        %u: the guest kernel may be emulated)\n"
		"  --allow-host NAME     also serve requests whose Host is NAME (a reverse\n"
		"                        proxy's public name) on a loopback bind; others\n"
		"                        are refused (421) against DNS rebinding\n"
		"  --idle-timeout-secs S close a connection idle for S seconds, also one that\n"
		"                        has not finished its request headers (1 to 3600;\n"
		"                        default %u; a request being handled is not idle)\n"
		"  --max-client-conns N  connections one client address may hold (1 to %u;\n"
		"                        default %u; beyond it new ones are refused)\n"
		"  --tls-cert PEM        serve https with this certificate (chain) ...\n"
		"  --tls-key PEM         ... and its private key (mode 600; both or neither)\n"
		"  --no-seccomp          do not jail the sandboxes' VMMs (no seccomp filter,\n"
		"                        capabilities kept): UNSAFE, for debugging only\n"
		"  -h, --help            this text\n"
		"\n"
		"Each sandbox's VMM is jailed before its vCPUs run: its own mount namespace\n"
		"(only its run directory), an unprivileged uid ($FORKD_JAIL_UID), no new\n"
		"privileges, no capabilities, a seccomp allow-list (see docs/SECURITY.md).\n"
		"Snapshots are read from $FORKD_HOME/snapshots (see 'forkd snapshot').\n",
		DAEMON_DEFAULT_BIND, DAEMON_AGENT_TIMEOUT_SECS, HTTP_IDLE_SECS,
		HTTP_MAX_CONNECTIONS, HTTP_MAX_PER_CLIENT);
}

int cmd_serve(int argc, char **argv)
{
	enum {
		O_BIND = 3000,
		O_TOKEN,
		O_STATE,
		O_RUN,
		O_AUDIT,
		O_GUESTS,
		O_ALLOW_HOST,
		O_NO_AUTH,
		O_SPAWN_TO,
		O_AGENT_TO,
		O_NOSECCOMP,
		O_IDLE,
		O_CLIENT_CONNS,
		O_TLS_CERT,
		O_TLS_KEY
	};
	static const struct option opts[] = {
	    {"bind", required_argument, NULL, O_BIND},
	    {"token-file", required_argument, NULL, O_TOKEN},
	    {"allow-host", required_argument, NULL, O_ALLOW_HOST},
	    {"no-auth", no_argument, NULL, O_NO_AUTH},
	    {"state-dir", required_argument, NULL, O_STATE},
	    {"run-root", required_argument, NULL, O_RUN},
	    {"audit-log", required_argument, NULL, O_AUDIT},
	    {"guest-dir", required_argument, NULL, O_GUESTS},
	    {"spawn-timeout-secs", required_argument, NULL, O_SPAWN_TO},
	    {"agent-timeout-secs", required_argument, NULL, O_AGENT_TO},
	    {"no-seccomp", no_argument, NULL, O_NOSECCOMP},
	    {"idle-timeout-secs", required_argument, NULL, O_IDLE},
	    {"max-client-conns", required_argument, NULL, O_CLIENT_CONNS},
	    {"tls-cert", required_argument, NULL, O_TLS_CERT},
	    {"tls-key", required_argument, NULL, O_TLS_KEY},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct daemon_config cfg = {.bind = DAEMON_DEFAULT_BIND, .spawn_timeout_secs = 60};
	int c;

	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "serve")) != -1) {
		switch (c) {
		case O_BIND:
			cfg.bind = optarg;
			break;
		case O_TOKEN:
			cfg.token_file = optarg;
			break;
		case O_STATE:
			cfg.state_dir = optarg;
			break;
		case O_RUN:
			cfg.run_root = optarg;
			break;
		case O_AUDIT:
			cfg.audit_log = optarg;
			break;
		case O_GUESTS:
			cfg.guest_dir = optarg;
			break;
		case O_NO_AUTH:
			cfg.no_auth = true;
			break;
		case O_ALLOW_HOST:
			if (!*optarg || strlen(optarg) > 253 || strpbrk(optarg, " /\\@"))
				cli_usage_error("serve", "--allow-host wants a host name, got '%s'",
						optarg);
			cfg.allow_host = optarg;
			break;
		case O_SPAWN_TO:
			cfg.spawn_timeout_secs =
			    (unsigned)cli_num("serve", "--spawn-timeout-secs", optarg, 1, 3600);
			break;
		case O_AGENT_TO:
			cfg.agent_timeout_secs =
			    (unsigned)cli_num("serve", "--agent-timeout-secs", optarg, 1, 3600);
			break;
		case O_NOSECCOMP:
			cfg.no_jail = true;
			break;
		case O_TLS_CERT:
			cfg.tls_cert = optarg;
			break;
		case O_TLS_KEY:
			cfg.tls_key = optarg;
			break;
		case O_IDLE:
			cfg.idle_secs =
			    (unsigned)cli_num("serve", "--idle-timeout-secs", optarg, 1, 3600);
			break;
		case O_CLIENT_CONNS:
			cfg.max_client_conns = (unsigned)cli_num("serve", "--max-client-conns",
								 optarg, 1, HTTP_MAX_CONNECTIONS);
			break;
		case 'h':
			serve_usage(stdout);
			return 0;
		default:
			cli_usage_error("serve", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
	if (cfg.no_auth && cfg.token_file)
		cli_usage_error("serve", "--no-auth and --token-file contradict each other");
	if (cfg.no_auth)
		log_warn(
		    "--no-auth: requests are NOT authenticated; any process on this host may "
		    "start, drive and delete sandboxes (as root). Leave it out to use a token");
	if (cfg.no_jail)
		log_warn("--no-seccomp: sandboxes run WITHOUT the VMM jail (no seccomp filter, "
			 "forkd's uid, capabilities and mounts kept); a guest that breaks out of "
			 "its VMM gets the "
			 "daemon's privileges on the host. UNSAFE: use it for debugging only");
	return daemon_run(&cfg);
}
