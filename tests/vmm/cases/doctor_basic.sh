#!/usr/bin/env bash
# forkd doctor: one PASS/WARN/FAIL line per check, a fix under each WARN and
# FAIL, exit status 1 exactly when something FAILs, --json that parses and
# says the same. Each check is driven both ways where a test can do that:
# snapshot dir (writable temp dir / unwritable /proc path), guest image
# (planted files / none), daemon (real HTTP server on loopback answering
# 200, answering 503, nothing listening), KVM-PVM (FORKD_PVM=0/1).
# Contract: tests/vmm/run.sh sets FORKD and WORK; 0 pass, 77 skip.
set -euo pipefail
: "${FORKD:?}" "${WORK:?}"
command -v python3 >/dev/null || { echo "skip: python3 is missing"; exit 77; }

fail() {
	echo "FAIL: $*"
	exit 1
}
ok() {
	echo "ok: $*"
}

srv=""
trap '[[ -z $srv ]] || kill "$srv" 2>/dev/null || true' EXIT

# A loopback HTTP server answering GET /healthz with status $1; sets $url.
serve() {
	[[ -z $srv ]] || { kill "$srv"; wait "$srv" 2>/dev/null || true; }
	rm -f "$WORK/http.txt"
	python3 - "$1" >"$WORK/http.txt" 2>&1 <<-'EOF' &
		import http.server, sys
		code = int(sys.argv[1])
		class H(http.server.BaseHTTPRequestHandler):
		    def do_GET(self):
		        self.send_response(code if self.path == "/healthz" else 404)
		        self.send_header("Content-Length", "0")
		        self.end_headers()
		    def log_message(self, *a):
		        pass
		s = http.server.HTTPServer(("127.0.0.1", 0), H)
		print("port", s.server_address[1], flush=True)
		s.serve_forever()
	EOF
	srv=$!
	for _ in $(seq 50); do
		grep -q "^port" "$WORK/http.txt" && break
		sleep 0.1
	done
	url="http://127.0.0.1:$(awk '/^port/ {print $2}' "$WORK/http.txt")"
}

# doctor ENV... -- ARGS: runs forkd doctor, output in $out, status in $rc.
doctor() {
	local envs=()
	while [[ $1 != -- ]]; do
		envs+=("$1")
		shift
	done
	shift
	rc=0
	out=$(env "${envs[@]}" "$FORKD" doctor "$@" 2>"$WORK/stderr.txt") || rc=$?
}

# status NAME: the level of check NAME in $out.
status() {
	awk -v n="$1" '$2 == n { print $1 }' <<<"$out"
}

grep -q "usage: forkd doctor" <<<"$("$FORKD" doctor --help)" || fail "doctor --help"

mkdir -p "$WORK/home" "$WORK/cache/forkd/images/t1"
for f in vmlinuz initrd.img rootfs.ext4 cmdline; do
	echo x >"$WORK/cache/forkd/images/t1/$f"
done
echo '{"tag": "t1", "kernel_version": "6.1.0-test"}' >"$WORK/cache/forkd/images/t1/image.json"
serve 200
good=(FORKD_HOME="$WORK/home" XDG_CACHE_HOME="$WORK/cache" FORKD_URL="$url")

doctor "${good[@]}" -- --tag t1
echo "$out"
names="kvm kvm-pvm cgroup tun netns tap veth nftables hugepages memfd vmm-jail vmm-seccomp userfaultfd ksm snapshot-dir image daemon"
for n in $names; do
	[[ $(status "$n") =~ ^(PASS|WARN|FAIL)$ ]] || fail "no PASS/WARN/FAIL line for check '$n'"
done
# Every line is a check or the fix under a WARN/FAIL, except the summary.
bad=$(grep -Ev '^(PASS|WARN|FAIL) [a-z-]+ +[^ ]|^ +fix: |^doctor: [0-9]+ passed, [0-9]+ warnings, [0-9]+ failed$' <<<"$out" || true)
[[ -z $bad ]] || fail "unexpected lines: $bad"
nwarnfail=$(grep -Ec '^(WARN|FAIL) ' <<<"$out" || true)
nfix=$(grep -c '^ *fix: ' <<<"$out" || true)
((nwarnfail == nfix)) || fail "$nwarnfail WARN/FAIL lines but $nfix fixes"
[[ $(status snapshot-dir) == PASS ]] || fail "snapshot-dir in a fresh temp dir is not PASS"
if [[ $(status image) != PASS ]] || ! grep -q "kernel 6.1.0-test" <<<"$out"; then
	fail "planted image not found"
fi
[[ $(status daemon) == PASS ]] || fail "daemon answering 200 is not PASS"
# What the VMM jail enforces, tried for real (a throwaway jailed process).
if (($(id -u) == 0)); then
	grep -Eq '^PASS vmm-jail +uid [0-9]+ gid [0-9]+, own mount namespace \(root: the run directory only\), own network namespace' <<<"$out" ||
		fail "vmm-jail does not say what it enforces: $(grep vmm-jail <<<"$out")"
fi
grep -Eq '^PASS vmm-seccomp .*allow-list of [0-9]+ system calls.*only on the VM.s own KVM descriptors' <<<"$out" ||
	fail "vmm-seccomp does not say what it enforces: $(grep vmm-seccomp <<<"$out")"
doctor "${good[@]}" FORKD_JAIL_UID=0 -- --tag t1
[[ $(status vmm-jail) == FAIL ]] || fail "FORKD_JAIL_UID=0 is not a FAIL: $(grep vmm-jail <<<"$out")"
ok "vmm-jail and vmm-seccomp say what the jail enforces; a bad FORKD_JAIL_UID fails"
doctor "${good[@]}" -- --tag t1
nfail=$(grep -c '^FAIL ' <<<"$out" || true)
if ((nfail)); then ((rc == 1)) || fail "FAIL lines but exit status $rc"; else ((rc == 0)) || fail "no FAIL but exit $rc"; fi
ok "all checks reported, each WARN/FAIL with a fix, exit status $rc matches $nfail FAIL(s)"

# The same run as JSON: parses, same checks and levels, ok == (status 0).
text=$out text_rc=$rc
doctor "${good[@]}" -- --tag t1 --json
cat >"$WORK/check.py" <<'EOF'
import json, sys
d = json.load(sys.stdin)
assert isinstance(d["checks"], list) and d["checks"], "no checks"
for c in d["checks"]:
    assert c["status"] in ("PASS", "WARN", "FAIL"), c
    assert isinstance(c["detail"], str) and c["detail"], c
    assert (c["status"] == "PASS") == (c.get("fix") is None), c
    print(c["status"], c["name"])
n = {s: sum(c["status"] == s for c in d["checks"]) for s in ("PASS", "WARN", "FAIL")}
assert (d["pass"], d["warn"], d["fail"]) == (n["PASS"], n["WARN"], n["FAIL"]), d
assert d["ok"] == (d["fail"] == 0) == (int(sys.argv[1]) == 0), (d["ok"], sys.argv[1])
EOF
python3 "$WORK/check.py" "$rc" <<<"$out" >"$WORK/json.txt" 2>&1 ||
	fail "--json: $(cat "$WORK/json.txt")"$'\n'"$out"
diff <(awk '/^(PASS|WARN|FAIL) / {print $1, $2}' <<<"$text") "$WORK/json.txt" ||
	fail "--json and text disagree"
((rc == text_rc)) || fail "--json exit status $rc, text $text_rc"
ok "--json parses and matches the text report"

# Unwritable snapshot dir: FAIL, exit status 1, JSON ok false.
doctor "${good[@]}" FORKD_HOME=/proc/forkd-doctor-test -- --tag t1
[[ $(status snapshot-dir) == FAIL ]] || fail "FORKD_HOME under /proc is not FAIL: $out"
((rc == 1)) || fail "exit status $rc with a FAIL"
grep -A1 '^FAIL snapshot-dir' <<<"$out" | grep -q "fix: set FORKD_HOME" || fail "no fix for it"
doctor "${good[@]}" FORKD_HOME=/proc/forkd-doctor-test -- --json
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"] is False and d["fail"] >= 1' <<<"$out" ||
	fail "--json does not report the FAIL"
ok "an unwritable FORKD_HOME FAILs with its fix and exit status 1"

doctor "${good[@]}" FORKD_HOME=/dev/null/x -- --tag t1
[[ $(status snapshot-dir) == FAIL && $rc == 1 ]] || fail "FORKD_HOME below a file is not FAIL"
ok "a FORKD_HOME below a file FAILs"

doctor "${good[@]}" -- --tag no-such-image
if [[ $(status image) != WARN ]] || ! grep -q "forkd image build --tag no-such-image" <<<"$out"; then
	fail "missing image is not WARN with the build command"
fi
ok "a missing guest image is a WARN naming 'forkd image build'"

serve 503
doctor "${good[@]}" FORKD_URL="$url" -- --tag t1
if [[ $(status daemon) != FAIL ]] || ! grep -q "HTTP 503" <<<"$out"; then
	fail "daemon answering 503 is not FAIL"
fi
kill "$srv"
wait "$srv" 2>/dev/null || true
srv=""
doctor "${good[@]}" FORKD_URL="$url" -- --tag t1
[[ $(status daemon) == WARN ]] || fail "no daemon is not WARN"
doctor "${good[@]}" FORKD_URL="ftp://example" -- --tag t1
[[ $(status daemon) == FAIL ]] || fail "a malformed FORKD_URL is not FAIL"
ok "daemon: 200 PASS, 503 FAIL, none listening WARN, malformed URL FAIL"

doctor "${good[@]}" FORKD_PVM=1 -- --tag t1
if [[ $(status kvm-pvm) != WARN ]] || ! grep -q "emulated" <<<"$out"; then
	fail "FORKD_PVM=1 is not WARN"
fi
doctor "${good[@]}" FORKD_PVM=0 -- --tag t1
[[ $(status kvm-pvm) == PASS ]] || fail "FORKD_PVM=0 is not PASS"
ok "KVM-PVM: WARN saying guest kernel code is emulated; PASS without it"

rc=0
"$FORKD" doctor --tag ../x >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "a bad --tag gave exit status $rc, not 2"
echo SUCCESS
