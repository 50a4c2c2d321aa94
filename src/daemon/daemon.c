/* forkd serve: start-up, the signal wait, and the graceful stop. */
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"
#include "daemon/api.h"
#include "daemon/auth.h"
#include "daemon/http.h"

/* HOST:PORT, IPv4 or [IPv6]. */
static int parse_bind(const char *s, struct sockaddr_storage *ss, bool *loopback)
{
	char host[64];
	const char *colon;
	uint64_t port;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		n = (size_t)(rb - s - 1);
		colon = rb + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
	}
	if (!n || n >= sizeof(host) || parse_u64(colon + 1, &port) || port > 65535)
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = 0;
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		return 0;
	}
	return -EINVAL;
}

/* A PEM file for TLS: a regular file holding `what` ("-----BEGIN ...what");
 * a private key must not be readable by group or others. */
static int load_pem(const char *path, const char *opt, const char *what, bool secret, char **out)
{
	struct stat st;
	size_t len;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return log_errno("%s %s", opt, path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		log_err("%s %s: not a regular file", opt, path);
		return -EINVAL;
	}
	if (secret && (st.st_mode & 077)) {
		close(fd);
		log_err("%s %s: readable by others (mode %04o): chmod 600 it", opt, path,
			(unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	err = file_read_fd(fd, 1 << 20, out, &len);
	close(fd);
	if (err) {
		log_err("%s %s: %s", opt, path,
			err == -EFBIG ? "over 1 MiB: not a PEM file" : strerror(-err));
		return err;
	}
	if (!strstr(*out, "-----BEGIN ") || !strstr(*out, what)) {
		log_err("%s %s: no PEM %s in it", opt, path, what);
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

static int setup(struct daemon *d, const struct daemon_config *cfg, struct sockaddr_storage *ss)
{
	bool loopback = false;
	ssize_t n;

	memset(d, 0, sizeof(*d));
	d->cfg = *cfg;
	d->started_ns = now_ns();
	d->audit.fd = -1;
	d->spawner.fd = -1;
	pthread_mutex_init(&d->lock, NULL);
	if (parse_bind(cfg->bind, ss, &loopback)) {
		log_err("--bind '%s' is not HOST:PORT with an IPv4 address or [IPv6] address",
			cfg->bind);
		return -EINVAL;
	}
	if (!loopback && cfg->no_auth) {
		log_err("refusing to listen on %s without authentication: drop --no-auth, or "
			"bind a loopback address (127.0.0.1)",
			cfg->bind);
		return -EPERM;
	}
	if (util_state_dir(d->state_dir, sizeof(d->state_dir), cfg->state_dir, "--state-dir") ||
	    util_run_root(d->run_root, sizeof(d->run_root), cfg->run_root, "--run-root"))
		return -EINVAL;
	if (make_dirs(d->state_dir, 0700))
		return -EIO;
	if (cfg->token_file) {
		snprintf(d->token_path, sizeof(d->token_path), "%s", cfg->token_file);
	} else if (!cfg->no_auth) {
		/* Authentication by default: a token of our own, made once. */
		snprintf(d->token_path, sizeof(d->token_path), "%.*s/" DAEMON_TOKEN_NAME,
			 PATH_MAX - 16, d->state_dir);
		if (auth_make_token(d->token_path))
			return -EIO;
	}
	if (d->token_path[0] &&
	    auth_load_token(d->token_path, d->token, sizeof(d->token), &d->token_len))
		return -EINVAL;
	if (!!cfg->tls_cert != !!cfg->tls_key) {
		log_err("--tls-cert and --tls-key go together (a certificate and its key)");
		return -EINVAL;
	}
	if (cfg->tls_cert &&
	    (load_pem(cfg->tls_cert, "--tls-cert", "CERTIFICATE", false, &d->tls_cert_pem) ||
	     load_pem(cfg->tls_key, "--tls-key", "PRIVATE KEY", true, &d->tls_key_pem)))
		return -EINVAL;
	if (cfg->guest_dir && !realpath(cfg->guest_dir, d->guest_dir)) {
		log_errno("--guest-dir %s", cfg->guest_dir);
		return -EINVAL;
	}
	snprintf(d->jobs_dir, sizeof(d->jobs_dir), "%.*s/jobs", PATH_MAX - 8, d->state_dir);
	if (make_dirs(d->state_dir, 0700) || make_dirs(d->jobs_dir, 0700) ||
	    make_dirs(d->run_root, 0711))
		return -EIO;
	n = readlink("/proc/self/exe", d->exe, sizeof(d->exe) - 1);
	if (n <= 0)
		return log_errno("readlink /proc/self/exe");
	d->exe[n] = 0;
	return 0;
}

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	int saved = errno;

	(void)!write(sig_pipe[1], &b, 1);
	errno = saved;
}

int daemon_run(const struct daemon_config *cfg)
{
	static struct daemon dm; /* large; lives as long as the process */
	struct daemon *d = &dm;
	struct sockaddr_storage ss;
	char db[PATH_MAX + 16], audit_path[PATH_MAX + 16];
	struct MHD_Daemon *http = NULL;
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	unsigned port = 0;
	int sig = 0, ret = 1;

	if (setup(d, cfg, &ss))
		return 1;
	/* No thread exists yet: this is the one fork the daemon makes. */
	if (spawnsvc_start(&d->spawner))
		return 1;
	snprintf(db, sizeof(db), "%.*s/forkd.db", PATH_MAX - 1, d->state_dir);
	snprintf(audit_path, sizeof(audit_path), "%.*s/audit.log", PATH_MAX - 1, d->state_dir);
	metrics_init(&d->metrics);
	if (store_open(&d->store, db))
		goto out_spawner;
	if (audit_open(&d->audit, cfg->audit_log ? cfg->audit_log : audit_path))
		goto out_store;
	api_sandboxes_readopt(d);

	/* A handler, not a blocked mask and sigwait(): the signal may land in
	 * any thread (libmicrohttpd's, or a sanitizer's own), and the handler
	 * only tells the main thread through a pipe. */
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(sig_pipe, O_CLOEXEC) < 0) {
		log_errno("pipe for signals");
		goto out_audit;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (http_start(d, (struct sockaddr *)&ss, &http, &port))
		goto out_audit;
	{
		char host[64] = "?";

		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
				  sizeof(host));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host,
				  sizeof(host));
		printf("forkd serve: listening on %s://%s%s%s:%u (auth %s%s, state %s, runs in "
		       "%s)\n",
		       d->tls_key_pem ? "https" : "http", ss.ss_family == AF_INET6 ? "[" : "", host,
		       ss.ss_family == AF_INET6 ? "]" : "", port,
		       d->token_len ? "bearer token in "
				    : "OFF (--no-auth: any local process and "
				      "web page's fetch may call it)",
		       d->token_len ? d->token_path : "", d->state_dir, d->run_root);
		fflush(stdout);
	}
	for (;;) {
		unsigned char b;
		ssize_t n = read(sig_pipe[0], &b, 1);

		if (n < 0 && errno == EINTR)
			continue;
		sig = n == 1 ? b : SIGTERM;
		if (sig != SIGHUP)
			break;
		log_info("SIGHUP ignored (nothing to reload)");
	}
	log_info("%s: no new connections; finishing requests in flight",
		 sig == SIGINT ? "SIGINT" : "SIGTERM");
	http_stop(d, http, 30);
	ret = 0;
	{
		uint64_t running = 0, exited = 0;

		if (!api_count_sandboxes(d, &running, &exited))
			log_info("stopped; %llu sandbox%s keep running and will be "
				 "re-adopted at the next start",
				 (unsigned long long)running, running == 1 ? "" : "es");
	}
out_audit:
	audit_close(&d->audit);
out_store:
	store_close(&d->store);
out_spawner:
	spawnsvc_stop(&d->spawner);
	if (d->tls_key_pem)
		explicit_bzero(d->tls_key_pem, strlen(d->tls_key_pem));
	free(d->tls_key_pem);
	free(d->tls_cert_pem);
	return ret;
}
