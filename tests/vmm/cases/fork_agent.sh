#!/usr/bin/env bash
# fork_agent: `forkd fork` runs after_fork on every child of a snapshot
# whose guest runs the agent (snapshot.json "agent_port"), with
# tests/guests/agent_stub.c as the agent:
#   1. agent_port 8888, 3 children: forkd reports after_fork for all 3 with
#      p50/p99; then, over each child's vsock socket, ping says
#      after_fork true, index = that child's own index (= its vmctl index),
#      and the hashes of the entropy the children got differ;
#   2. no agent_port: no after_fork (ping says after_fork false), so 1.
#      is after_fork's doing;
#   3. agent_port 9999 (nothing listens there) with --agent-timeout-secs 2:
#      every child is reported with the reason and stopped, exit status 1;
#   4. 20 children: all answer after_fork (timings printed).
# The agent_port is recorded by `forkd snapshot --agent-port` when this
# forkd has it, else written into snapshot.json after the snapshot.
# Contract: tests/vmm/run.sh sets FORKD and WORK (no guest of this name).
GUEST=${GUEST:-}
[[ -n $GUEST ]] || GUEST=$(dirname "${FORKD:?}")/guests/agent_stub.elf
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

command -v python3 >/dev/null || { echo "skip: python3 is needed for the host side"; exit 77; }
[[ -f $GUEST ]] || fail "$GUEST is missing (make guests)"

# set_agent_port TAG PORT: snapshot.json gets "agent_port": PORT (0: none).
set_agent_port() {
	python3 - "$FORKD_HOME/snapshots/$1/snapshot.json" "$2" <<'PY'
import json, os, sys
path, port = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    m = json.load(f)
if port:
    m["agent_port"] = port
else:
    m.pop("agent_port", None)
with open(path + ".tmp", "w") as f:
    json.dump(m, f, indent=2)
os.rename(path + ".tmp", path)
PY
}

tag=agent$$
# The snapshot's jailed VMM (the jail's uid, not ours) polls its agent
# through $WORK/parent*.sock: it must be able to pass through $WORK.
chmod o+x "$WORK"
if "$FORKD" snapshot --help 2>&1 | grep -- '--agent-port' >/dev/null; then
	snap_take "$tag" --mem-mib 16 --vsock "$WORK/parent.sock" --agent-port 8888
	grep -q '"agent_port": *8888' "$FORKD_HOME/snapshots/$tag/snapshot.json" ||
		fail "forkd snapshot --agent-port 8888 did not record it"
else
	snap_take "$tag" --mem-mib 16 --vsock "$WORK/parent.sock"
	set_agent_port "$tag" 8888
fi

# ping.py WORKDIR N: ping every child over its vsock socket; one JSON
# object per child on stdout.
cat >"$WORK/ping.py" <<'PY'
import json, socket, sys
wd, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect("%s/child-%d/vsock.sock" % (wd, i))
    f = s.makefile("rwb")
    f.write(b"CONNECT 8888\n")
    f.flush()
    hello = f.readline()
    assert hello.startswith(b"OK "), hello
    f.write(b'{"op":"ping","id":"p%d"}\n' % i)
    f.flush()
    r = json.loads(f.readline())
    r["child"] = i
    print(json.dumps(r), flush=True)
    s.close()
PY

# run_fork NAME N READY [options]: forkd fork -n N with a settle time;
# once its log has a line matching READY (every child started), ping each
# child; log in $WORK/NAME.log, pings in $WORK/NAME.ping.
run_fork() {
	local name=$1 n=$2 ready=$3 rc=0
	shift 3
	bounded_start 200 "$FORKD" fork --tag "$tag" -n "$n" --settle-secs "$(scaled 3)" --keep-workdir \
		--workdir "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1
	local pid=$_snap_bg
	: >"$WORK/$name.ping"
	for ((t = 0; t < 1500; t++)); do
		grep -qE "$ready|failed to start" "$WORK/$name.log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if grep -qE "$ready" "$WORK/$name.log"; then
		python3 "$WORK/ping.py" "$WORK/$name" "$n" >"$WORK/$name.ping" 2>&1 || true
	fi
	wait "$pid" || rc=$?
	_snap_bg=""
	sed 's/^/    | /' "$WORK/$name.log"
	return "$rc"
}

# 1. after_fork on 3 children.
rc=0
run_fork af 3 '^fork: after_fork' || rc=$?
((rc == 0)) || fail "forkd fork (agent_port 8888) exited with $rc"
grep -Eq '^fork: after_fork \(agent on vsock port 8888\) answered by 3 children in [0-9.]+ ms, p50 [0-9.]+ ms p99 [0-9.]+ ms$' \
	"$WORK/af.log" || fail "no after_fork report for 3 children"
sed 's/^/    | ping: /' "$WORK/af.ping"
python3 - "$WORK/af.ping" 3 <<'PY' || fail "the children's pings do not show their own after_fork"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
assert len(rs) == n, rs
for r in rs:
    i = r["child"]
    assert r["ok"] and r["id"] == "p%d" % i, r
    assert r["after_fork"] is True, ("child %d: no after_fork" % i, r)
    assert r["index"] == i and r["vmctl_index"] == i, ("child %d: index" % i, r)
fnv = [r["entropy_fnv"] for r in rs]
assert all(isinstance(h, str) and len(h) == 8 for h in fnv), fnv
assert len(set(fnv)) == n, ("children got the same entropy", fnv)
print("    each child: after_fork true, its own index; entropy hashes", " ".join(fnv))
PY
ok "3 children: after_fork answered, each ping reports its own index and its own entropy"

# 2. Without agent_port: no after_fork.
set_agent_port "$tag" 0
rc=0
run_fork none 2 'children running' || rc=$?
((rc == 0)) || fail "forkd fork (no agent_port) exited with $rc"
grep -q after_fork "$WORK/none.log" && fail "after_fork ran for a snapshot without agent_port"
python3 - "$WORK/none.ping" <<'PY' || fail "children of a snapshot without agent_port"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert len(rs) == 2 and all(r["after_fork"] is False and r["entropy_fnv"] is None for r in rs), rs
assert [r["index"] for r in rs] == [0, 1], rs
PY
ok "no agent_port: no after_fork (ping: after_fork false)"

# 3. An agent_port nobody listens on: each child fails, is reported, stopped.
set_agent_port "$tag" 9999
rc=0
run_fork bad 2 '^fork: after_fork' --agent-timeout-secs 2 || rc=$?
((rc == 1)) || fail "forkd fork (agent_port 9999) exited with $rc, not 1"
for i in 0 1; do
	grep -q "^fork: child $i after_fork failed: the guest refused vsock port 9999 for 2000 ms.*; stopping it$" \
		"$WORK/bad.log" || fail "child $i's after_fork failure is not reported"
done
grep -q '^fork: 2 of 2 children failed to start$' "$WORK/bad.log" || fail "the failures are not counted"
grep -q '^fork: 0/2 children alive' "$WORK/bad.log" || fail "children whose after_fork failed were not stopped"
ok "agent_port 9999: both children reported with the reason and stopped"

# 4. 20 children at once.
set_agent_port "$tag" 8888
rc=0
run_fork many 20 '^fork: after_fork' || rc=$?
((rc == 0)) || fail "forkd fork -n 20 exited with $rc"
grep -q '^fork: after_fork (agent on vsock port 8888) answered by 20 children' "$WORK/many.log" ||
	fail "not every one of 20 children answered after_fork"
python3 - "$WORK/many.ping" 20 <<'PY' || fail "20 children"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["index"] for r in rs] == list(range(20)) and all(r["after_fork"] for r in rs), rs
assert len({r["entropy_fnv"] for r in rs}) == 20
PY
ok "20 children: every one after_fork'ed, own index, own entropy"
no_leftovers "$tag" /nonexistent
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK"/*.log; then
	grep -E 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK"/*.log
	fail "sanitizer report"
fi
echo SUCCESS
