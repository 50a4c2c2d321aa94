#!/usr/bin/env bash
# The real thing, end to end: the guest image (Debian kernel, ext4 root with
# python3 + numpy, forkd's init and agent) is built, booted until the agent
# says it is warm, snapshotted, and forked into 3 children. In each child the
# agent must answer ping, exec, eval (numpy) and a file write/read; children
# must not share files, random state or a stale clock; memory.bin must be
# unchanged by them. The guest has a network (snapshot --net) and every child
# runs in its own namespace (fork --per-child-netns): each child's agent
# answers on 10.42.0.2:8888 from inside its namespace, and child 0 reaches its
# own namespace but not child 1's. Then a daemon (forkd serve) spawns
# sandboxes of the same snapshot and the Python SDK's test suite runs against
# them: the real agent behind the REST API.
#
# Three parts, each run in a lab of its own by make check so that a wedged
# or crashed lab (docs/ARCHITECTURE.md, "the lab wedges") costs one part's
# retry, not the whole: image_fork.sh runs the fork part (the CLI's
# children and the checks above); image_sdk.sh (a link to this script)
# starts forkd serve and runs the Python SDK's suite; image_clients.sh
# (another link) starts it and runs the TypeScript SDK's suite, forkd mcp
# through the official MCP client, the examples of docs/SDK.md and forkd
# bench. Each builds (or reuses the cached) image and takes its own
# snapshot. FORKD_E2E_PART=fork|daemon|clients|all overrides.
#
# Slow on KVM-PVM hosts (the guest kernel is emulated there): the image is
# cached under ~/.cache/forkd, the boot to a warm agent takes many minutes.
# Prints each stage's duration. Needs root and /dev/kvm (exit 77 otherwise).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BUILD=${1:-$REPO/build}
FORKD_BIN=${FORKD_BIN:-$BUILD/forkd}
IMAGE=${FORKD_E2E_IMAGE:-py}
N=3

t_start=$(date +%s)
name=$(basename "$0" .sh)
case ${FORKD_E2E_PART:-$name} in
image_sdk | daemon) part=daemon ;;
image_clients | clients) part=clients ;;
all) part=all ;;
*) part=fork ;;
esac
log() { echo "$name: [$(($(date +%s) - t_start))s] $*"; }
[[ $(id -u) == 0 ]] || { echo "$name: SKIP: needs root"; exit 77; }
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "$name: SKIP: /dev/kvm not usable"; exit 77; }
[[ -x $FORKD_BIN ]] || { echo "$name: error: $FORKD_BIN missing (run make)"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/forkd-image-fork.XXXXXX")
fork_pid="" daemon_pid="" listeners=()
cleanup() {
    local rc=$? p
    for p in $fork_pid $daemon_pid "${listeners[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    "$FORKD_BIN" netns teardown --force 0 1 2 >/dev/null 2>&1 || true
    if ((rc != 0)); then
        for f in "$work"/parent.log "$work"/run/child-*/console.log "$work"/daemon.log; do
            [[ -s $f ]] || continue
            echo "----- last 15 lines of $f -----"
            tail -n 15 "$f" | tr -d '\r'
        done
    fi
    rm -rf "$work"
    log "total wall time $(($(date +%s) - t_start)) s"
    exit "$rc"
}
trap cleanup EXIT
export FORKD_HOME=$work/home
snaptag=e2e-py
# FORKD_E2E_SNAPSHOT=<FORKD_HOME>/snapshots/<tag>: fork a snapshot made earlier
# instead of building and booting one (for working on the checks; CI never
# sets it).
reuse=${FORKD_E2E_SNAPSHOT:-}
if [[ -n $reuse ]]; then
    [[ -f $reuse/snapshot.json ]] || { echo "$name: error: $reuse/snapshot.json missing"; exit 1; }
    FORKD_HOME=$(cd "$reuse/../.." && pwd)
    snaptag=${reuse%/}
    snaptag=${snaptag##*/}
fi

pass=0 fail=0 skip=0
report() { # name ok|FAIL|SKIP detail
    case $2 in
    ok) pass=$((pass + 1)) ;;
    SKIP) skip=$((skip + 1)) ;;
    *) fail=$((fail + 1)) ;;
    esac
    printf '  %-5s %-22s %s\n' "$2" "$1" "${3:0:150}"
}

# On KVM-PVM hosts a process started in a guest now and then dies of SIGSEGV
# on memory it has just written (guest user memory is not always coherent
# there, docs/ARCHITECTURE.md "KVM-PVM hosts"; ~1 in 40 exec'd processes with
# 1 vCPU). fx runs `forkd exec` like the user would; when the command was
# killed by SIGSEGV (exit 139) on such a host it says so and runs it once
# more, and the summary counts it as an XFAIL. A second crash, or any crash on
# an ordinary KVM host, is returned as is and fails the check that ran it.
stage() { # name start-time
    log "stage $1 took $(($(date +%s) - $2)) s"
}

pvm=0
[[ -d /sys/module/kvm_pvm ]] && pvm=1
# fx runs in command substitutions (subshells), so re-runs are counted in a file.
fx_to() { # stdout-file stderr-file run-dir forkd-exec-args... -- argv...
    local o=$1 e=$2 rc=0 try
    shift 2
    for try in 1 2; do
        rc=0
        if [[ $o == "$e" ]]; then
            "$FORKD_BIN" exec --run-dir "$@" >"$o" 2>&1 || rc=$?
        else
            "$FORKD_BIN" exec --run-dir "$@" >"$o" 2>"$e" || rc=$?
        fi
        ((rc == 139 && pvm && try == 1)) || break
        echo "${1##*/}: ${*:2}" >>"$work/crashes"
        echo "$name: ${1##*/}: '${*:2}' was killed by SIGSEGV (KVM-PVM, known); running it once more" >&2
    done
    return "$rc"
}
fx() { # run-dir forkd-exec-args... -- argv...: prints stdout and stderr
    local f rc=0
    f=$(mktemp "$work/fx.XXXXXX")
    fx_to "$f" "$f" "$@" || rc=$?
    cat "$f"
    rm -f "$f"
    return "$rc"
}

snapdir=$FORKD_HOME/snapshots/$snaptag
if [[ -z $reuse ]]; then
    # --- image ------------------------------------------------------------------
    t=$(date +%s)
    "$FORKD_BIN" image build --tag "$IMAGE"
    stage "image build" "$t"

    # --- snapshot: boot until the agent answers ping with warm=true ---------------
    t=$(date +%s)
    log "booting image '$IMAGE' until its agent is warm (minutes on KVM-PVM hosts)"
    "$FORKD_BIN" snapshot --tag "$snaptag" --image "$IMAGE" --net --console "$work/parent.log" \
        --timeout-secs 3000
    stage snapshot "$t"
else
    log "forking the earlier snapshot $snapdir (FORKD_E2E_SNAPSHOT)"
fi
mem_sha=$(sha256sum "$snapdir/memory.bin" | cut -d' ' -f1)
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["agent_port"] == 8888, d' \
    "$snapdir/snapshot.json" && report agent-port ok "snapshot.json agent_port 8888" ||
    report agent-port FAIL "snapshot.json has no agent_port 8888"

if [[ $part == fork || $part == all ]]; then
# --- fork: 3 children, kept running while the checks talk to them ---------------
t=$(date +%s)
# Every child gets namespace forkd-child-<i>: leftovers of an earlier run are
# removed, one in use by something else stops the test.
for i in $(seq 0 $((N - 1))); do
    [[ -e /run/netns/forkd-child-$i ]] || continue
    if [[ -n $(ip netns pids "forkd-child-$i" 2>/dev/null) ]]; then
        echo "$name: error: forkd-child-$i is in use on this host (pids $(ip netns pids "forkd-child-$i" | tr '\n' ' '))"
        exit 1
    fi
    "$FORKD_BIN" netns teardown "$i" >/dev/null
done
"$FORKD_BIN" fork --tag "$snaptag" -n "$N" --per-child-netns --settle-secs 3000 --workdir "$work/run" \
    --keep-workdir --agent-timeout-secs 600 >"$work/fork.log" 2>&1 &
fork_pid=$!
# Ready means every child answered after_fork; wait for forkd to say so.
for _ in $(seq 1 1200); do
    grep -q 'after_fork (agent\|after_fork failed' "$work/fork.log" 2>/dev/null && break
    kill -0 "$fork_pid" 2>/dev/null || break
    sleep 1
done
cat "$work/fork.log"
kill -0 "$fork_pid" 2>/dev/null || { report fork FAIL "forkd fork exited early"; exit 1; }
stage "fork + after_fork" "$t"

t=$(date +%s)
child() { echo "$work/run/child-$1"; }
host_now=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
    d=$(child "$i")
    out=$("$FORKD_BIN" ping --run-dir "$d" --json 2>&1) &&
        out=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["warm"] and r["index"] == int(sys.argv[2]), r; print(json.dumps(r))' \
            "$out" "$i" 2>&1) && report "child-$i ping" ok "$out" || report "child-$i ping" FAIL "${out//$'\n'/ }"
    out=$(fx "$d" -- python3 -c 'print(6 * 7)') &&
        [[ $out == 42 ]] && report "child-$i exec python3" ok "$out" ||
        report "child-$i exec python3" FAIL "$out"
    out=$("$FORKD_BIN" eval --run-dir "$d" 'int(np.arange(10).sum())' 2>&1) &&
        [[ $out == 45 ]] && report "child-$i eval numpy" ok "$out" ||
        report "child-$i eval numpy" FAIL "$out"
    fx "$d" -- sh -c "echo child-$i >/tmp/who" >/dev/null || true
    out=$(fx "$d" -- cat /tmp/who) &&
        [[ $out == "child-$i" ]] && report "child-$i write+read" ok "$out" ||
        report "child-$i write+read" FAIL "$out"
done
# A file written only in child 1 is absent in child 2 (copy-on-write disk).
fx "$(child 1)" -- sh -c 'echo only-1 >/root/only-in-1' >/dev/null || true
out=$(fx "$(child 2)" -- sh -c 'test -e /root/only-in-1 && echo present || echo absent') ||
    out="(exit $?) $out"
[[ $out == absent ]] && report "cow isolation" ok "child 1's file absent in child 2" ||
    report "cow isolation" FAIL "$out"

# Clone correctness: no two children share random state; clocks are current.
declare -A seen=()
dup_check() { # name value...
    local name=$1 v
    shift
    seen=()
    for v in "$@"; do
        if [[ -z $v || $v == ERROR* || -n ${seen[$v]:-} ]]; then
            report "$name" FAIL "values: $*"
            return
        fi
        seen[$v]=1
    done
    report "$name" ok "$*"
}
# get CMD...: CMD's last output line, or "ERROR(<its output>)"; never fails,
# so one failed call is reported with its cause instead of ending the script.
get() {
    local out
    out=$("$@" 2>&1) || { echo "ERROR(${out//$'\n'/ })"; return 0; }
    printf '%s\n' "$out" | tail -n 1
}
urnd=() prnd=() nrnd=() clock_ok=1 clock_detail=""
for i in $(seq 0 $((N - 1))); do
    d=$(child "$i")
    urnd+=("$(get fx "$d" -- sh -c 'set -o pipefail; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"')")
    prnd+=("$(get "$FORKD_BIN" eval --run-dir "$d" 'import random; random.random()')")
    nrnd+=("$(get "$FORKD_BIN" eval --run-dir "$d" 'float(np.random.random())')")
    # The guest's clock, read during the call, must lie within 2 s of the
    # host's clock over that call: [before - 2, after + 2].
    h0=$(date +%s.%N)
    g=$(get "$FORKD_BIN" eval --run-dir "$d" 'import time; time.time()')
    h1=$(date +%s.%N)
    if ! awk -v g="$g" -v a="$h0" -v b="$h1" 'BEGIN { exit !(g ~ /^[0-9.]+$/ && g >= a - 2 && g <= b + 2) }'; then
        clock_ok=0
    fi
    clock_detail+="child-$i $g, host $h0..$h1; "
done
dup_check "urandom distinct" "${urnd[@]}"
dup_check "random.random distinct" "${prnd[@]}"
dup_check "numpy random distinct" "${nrnd[@]}"
((clock_ok)) && report "guest clock" ok "within 2 s: $clock_detail" ||
    report "guest clock" FAIL "$clock_detail"
# The VM generation ID (devices/vmgenid.h): the kernel's vmgenid driver is
# bound, each child's ID (16 bytes at 0xFF000, read through /dev/mem: the
# page is reserved and below 1 MiB) is its own, and the Generic Event
# Device's interrupt came and the kernel says it reseeded for it.
gens=() gen_ok=1 gen_detail=""
for i in $(seq 0 $((N - 1))); do
    out=$(get fx "$(child "$i")" -- python3 -c '
import os, subprocess
bound = os.path.exists("/sys/bus/acpi/drivers/vmgenid/VMGENCTR:00")
with open("/dev/mem", "rb") as f:
    f.seek(0xFF000)
    gid = f.read(16).hex()
ged = sum(int(w) for l in open("/proc/interrupts") if "ACPI:Ged" in l
          for w in l.split()[1:] if w.isdigit())
log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
print(int(bound), gid, ged, log.count("crng reseeded due to virtual machine fork"))')
    read -r bound gid ged reseeded <<<"$out"
    gens+=("$gid")
    [[ $bound == 1 && $gid =~ ^[0-9a-f]{32}$ && $gid != 00000000000000000000000000000000 && $ged =~ ^[0-9]+$ ]] &&
        ((ged >= 1)) && [[ $reseeded =~ ^[1-9] ]] || gen_ok=0
    gen_detail+="child-$i: bound $bound id $gid ged irqs $ged reseeds $reseeded; "
done
((gen_ok)) && report "vmgenid" ok "$gen_detail" || report "vmgenid" FAIL "$gen_detail"
dup_check "vmgenid distinct" "${gens[@]}"
stage checks "$t"

# Networks: each child's agent answers TCP on 10.42.0.2:8888 inside its own
# namespace (and it is that child: the index it reports); child 0 reaches a
# listener in its own namespace but not one in child 1's, which the host
# reaches (the host drops forwarding between children's namespaces).
t=$(date +%s)
for i in $(seq 0 $((N - 1))); do
    out=$(ip netns exec "forkd-child-$i" python3 - "$i" <<'PY' 2>&1
import json, socket, sys
s = socket.create_connection(("10.42.0.2", 8888), timeout=120)
s.sendall(b'{"op": "ping", "id": 1}\n')
r = json.loads(s.makefile("rb").readline())
assert r["ok"] and r["pong"] and r["index"] == int(sys.argv[1]), r
print("index %d, pid %d over TCP" % (r["index"], r["pid"]))
PY
) && report "child-$i tcp 8888" ok "$out" || report "child-$i tcp 8888" FAIL "${out//$'\n'/ }"
done
listen() { # namespace address port text: serve text to every connection
    ip netns exec "$1" python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[3].encode() + b"\n")
    c.close()' "$2" "$3" "$4" &
    listeners+=($!)
}
listen forkd-child-0 10.42.0.1 9101 own-namespace
listen forkd-child-1 0.0.0.0 9100 child-1-namespace
sleep 1
probe='import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    print("reached", s.makefile().readline().strip())
except OSError as e:
    print("blocked", e)'
# 10.201.0.6: child 1's namespace end of its veth (10.201.0.0 + 4*1 + 2).
out=$(python3 -c "$probe" 10.201.0.6 9100 2>&1) || out="(exit $?) $out"
[[ $out == "reached child-1-namespace" ]] && report "host -> child-1 ns" ok "$out" ||
    report "host -> child-1 ns" FAIL "$out"
out=$(fx "$(child 0)" --timeout-secs 120 -- python3 -c "$probe" 10.42.0.1 9101) ||
    out="(exit $?) $out"
[[ $out == "reached own-namespace" ]] && report "child-0 -> own ns" ok "$out" ||
    report "child-0 -> own ns" FAIL "$out"
out=$(fx "$(child 0)" --timeout-secs 120 -- python3 -c "$probe" 10.201.0.6 9100) ||
    out="(exit $?) $out"
[[ $out == blocked* ]] && report "child-0 -/-> child-1" ok "$out" ||
    report "child-0 -/-> child-1" FAIL "$out"
stage network "$t"

# Agent robustness in a real child: malformed lines and an unknown op get an
# error reply on the same connection (the agent carries on), an exec that
# outlives its timeout is killed and says so, and a command printing 10 MiB
# comes back whole. (Oversized requests: tests/agent, with a small
# --max-line; 64 MiB through the emulated guest kernel would take an hour.)
t=$(date +%s)
d=$(child 0)
out=$(python3 - "$d/vsock.sock" <<'PY' 2>&1
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(120)
f = s.makefile("rb")
s.sendall(b"CONNECT 8888\n")
assert f.readline().startswith(b"OK "), "no vsock handshake"
replies = []
for line in (b"this is not json\n", b"[1, 2]\n", b'{"op": "no-such-op", "id": 7}\n',
             b'{"op": "ping", "id": 8}\n'):
    s.sendall(line)
    replies.append(json.loads(f.readline()))
bad, arr, unknown, ping = replies
assert bad["ok"] is False and arr["ok"] is False, replies
assert unknown["ok"] is False and unknown["id"] == 7 and "no-such-op" in unknown["error"], unknown
assert ping["ok"] is True and ping["id"] == 8 and ping["pong"], ping
print("3 bad lines answered with errors, then ping ok: " + unknown["error"])
PY
) && report "agent bad requests" ok "$out" || report "agent bad requests" FAIL "$out"
rc=0
out=$(fx "$d" --timeout-secs 3 -- sleep 60) || rc=$?
((rc == 124)) && [[ $out == *"timed out"* ]] && report "exec timeout" ok "exit 124: $out" ||
    report "exec timeout" FAIL "exit $rc: $out"
rc=0
fx_to "$work/10mib.out" "$work/10mib.err" "$d" --timeout-secs 600 -- \
    python3 -c 'import sys; sys.stdout.write("0123456789abcdef" * (10 << 16))' || rc=$?
size=$(stat -c %s "$work/10mib.out")
want=$(python3 -c 'import sys; sys.stdout.write("0123456789abcdef" * (10 << 16))' | sha256sum)
got=$(sha256sum <"$work/10mib.out")
((rc == 0)) && [[ $got == "$want" ]] && report "exec 10 MiB output" ok "$size bytes, sha256 matches" ||
    report "exec 10 MiB output" FAIL "exit $rc, $size bytes, sha256 ${got%% *}: $(head -c 200 "$work/10mib.err")"
stage robustness "$t"
: "$host_now"

kill -TERM "$fork_pid" 2>/dev/null || true
wait "$fork_pid" 2>/dev/null || true
fork_pid=""
for p in "${listeners[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
done
listeners=()
left=$(ls /run/netns 2>/dev/null | grep -E '^forkd-child-[0-2]$' | tr '\n' ' ' || true)
[[ -z $left ]] && report "netns removed" ok "the fork's namespaces are gone" ||
    report "netns removed" FAIL "left behind: $left"
fi # the fork part

if [[ $part != fork ]]; then

# The daemon: sandboxes of the same snapshot through the REST API, driven by
# the Python SDK's test suite (sdk/python/tests, here with the real agent).
t=$(date +%s)
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
chmod 600 "$work/token"
"$FORKD_BIN" serve --bind 127.0.0.1:0 --token-file "$work/token" --state-dir "$work/state" \
    --run-root "$work/sandboxes" --agent-timeout-secs 600 \
    </dev/null >"$work/daemon.out" 2>"$work/daemon.log" &
daemon_pid=$!
port=""
for _ in $(seq 1 300); do
    port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$work/daemon.out" | head -n 1)
    [[ -n $port ]] || ! kill -0 "$daemon_pid" 2>/dev/null && break
    sleep 0.1
done
if [[ -z $port ]]; then
    report "forkd serve" FAIL "did not start: $(tail -n 5 "$work/daemon.log")"
else
    report "forkd serve" ok "listening on 127.0.0.1:$port"
fi
if [[ -n $port && $part != clients ]]; then
    pytest_py=""
    for py in python3 /usr/bin/python3; do
        "$py" -c 'import pytest' 2>/dev/null && { pytest_py=$py; break; }
    done
    rc=0
    [[ -n $pytest_py ]] || pytest_py=python3 # fails, saying pytest is missing
    out=$(cd "$REPO" && FORKD_URL=http://127.0.0.1:$port FORKD_TOKEN=$(cat "$work/token") \
        FORKD_TAG=$snaptag FORKD_SPAWN_ARGS='{"per_child_netns": true}' \
        "$pytest_py" -m pytest -q -rs -p no:cacheprovider sdk/python/tests 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/    sdk: /' | tail -n 40
    summary=$(printf '%s\n' "$out" | grep -E '[0-9]+ (passed|failed)' | tail -n 1)
    ((rc == 0)) && report "sdk suite, real agent" ok "$summary" ||
        report "sdk suite, real agent" FAIL "exit $rc: $summary"
    grep -h 'XFAIL known KVM-PVM' <<<"$out" | sed 's/^/sdk: /' >>"$work/crashes" || true
fi
if [[ -n $port && $part != daemon ]]; then
    # The TypeScript SDK's suite (sdk/typescript/test) against the same
    # daemon and snapshot, with the same environment. Its node_modules
    # come from scripts/setup.sh's `npm ci`: the lab has no network.
    rc=0
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        out="node and npm are missing (scripts/setup.sh installs them)"
        rc=127
    else
        out=$(cd "$REPO/sdk/typescript" &&
            { [[ -d node_modules ]] || npm ci --no-audit --no-fund; } &&
            npm run --silent build &&
            FORKD_URL=http://127.0.0.1:$port FORKD_TOKEN=$(cat "$work/token") \
                FORKD_TAG=$snaptag FORKD_SPAWN_ARGS='{"per_child_netns": true}' \
                node --test --test-reporter=spec dist/test/*.test.js 2>&1) || rc=$?
    fi
    printf '%s\n' "$out" | sed 's/^/    ts sdk: /' | tail -n 40
    # node's summary lines: "ℹ pass N", "ℹ fail N", "ℹ skipped N".
    summary=$(printf '%s\n' "$out" | awk 'NF == 3 && $3 ~ /^[0-9]+$/ {
        if ($2 == "pass") p = $3; else if ($2 == "fail") f = $3; else if ($2 == "skipped") s = $3 }
        END { if (p != "") printf "%d passed, %d failed, %d skipped", p, f, s }')
    ((rc == 0)) && report "ts sdk suite, real agent" ok "$summary" ||
        report "ts sdk suite, real agent" FAIL "exit $rc: ${summary:-$(printf '%s\n' "$out" | tail -n 1)}"
    grep -h 'XFAIL known KVM-PVM' <<<"$out" | sed 's/^/ts sdk: /' >>"$work/crashes" || true
    # The MCP server (forkd mcp) through the official MCP client (tests/mcp,
    # Node), against the same daemon and snapshot: real agent, branch included.
    rc=0
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        out="node and npm are missing (scripts/setup.sh installs nodejs and npm)"
        rc=127
    else
        out=$(cd "$REPO" && { [[ -d tests/mcp/node_modules ]] ||
            npm ci --prefix tests/mcp --no-audit --no-fund; } &&
            FORKD_URL=http://127.0.0.1:$port FORKD_TOKEN=$(cat "$work/token") \
            FORKD_TAG=$snaptag FORKD_SPAWN_ARGS='{"per_child_netns": true}' \
            FORKD_BUILD=$(dirname "$FORKD_BIN") FORKD_PYTHON_SDK=$REPO/sdk/python \
            timeout -k 10 1800 node --test --test-reporter=spec tests/mcp/mcp.test.mjs 2>&1) || rc=$?
    fi
    printf '%s\n' "$out" | sed 's/^/    mcp: /' | tail -n 40
    summary=$(printf '%s\n' "$out" | awk '/^ℹ pass /{p=$3} /^ℹ fail /{f=$3}
        /^ℹ skipped /{s=$3} END{printf "%d passed, %d failed, %d skipped", p, f, s}')
    ((rc == 0)) && report "mcp, real agent" ok "$summary" ||
        report "mcp, real agent" FAIL "exit $rc: $summary"
    # docs/SDK.md's programs (Python, TypeScript, the MCP host configuration)
    # against the same daemon and snapshot: tests/e2e/sdk_examples.py runs
    # each and checks what it prints. They spawn with per_child_netns, which
    # this snapshot (--net) needs.
    rc=0
    out=$(cd "$REPO" && FORKD_URL=http://127.0.0.1:$port FORKD_TOKEN=$(cat "$work/token") \
        FORKD_TAG=$snaptag FORKD_BUILD=$(dirname "$FORKD_BIN") \
        timeout -k 10 2400 python3 tests/e2e/sdk_examples.py 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/    sdk docs: /' | tail -n 40
    summary=$(printf '%s\n' "$out" | tail -n 1)
    ((rc == 0)) && report "sdk docs examples" ok "$summary" ||
        report "sdk docs examples" FAIL "exit $rc: $summary"
    # forkd bench: the whole cycle (spawn, ping, exec, eval, branch, spawn 2
    # from the branch, cleanup) twice, every step timed, nothing left: as
    # many sandboxes after it as before.
    count_sandboxes() {
        python3 - "http://127.0.0.1:$port/v1/sandboxes" "$(cat "$work/token")" <<'PY' || echo "?"
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
print(len(json.load(urllib.request.urlopen(req, timeout=30))))
PY
    }
    before=$(count_sandboxes)
    rc=0
    FORKD_URL=http://127.0.0.1:$port FORKD_TOKEN=$(cat "$work/token") "$FORKD_BIN" bench \
        --tag "$snaptag" -n 2 --reps 2 --per-child-netns --json >"$work/bench.json" \
        2>"$work/bench.err" || rc=$?
    out=$(python3 - "$work/bench.json" <<'PY' 2>&1
import json, os, sys
o = json.load(open(sys.argv[1]))
want = ["spawn 1", "ping", "exec", "eval", "branch", "spawn N from branch", "cleanup"]
assert [s["step"] for s in o["steps"]] == want, o
assert all(s["samples"] == 2 and 0 < s["p50_ms"] <= s["p99_ms"] for s in o["steps"]), o
assert o["host"] == ("lab" if os.environ.get("FORKD_IN_LAB") else o["host"]), o
print("host %s: " % o["host"] + ", ".join("%s p50 %.0f ms" % (s["step"], s["p50_ms"])
                                           for s in o["steps"]))
PY
) || rc=$((rc ? rc : 1))
    left=$(count_sandboxes)
    ((rc == 0)) && [[ $left == "$before" ]] && report "forkd bench" ok "$out" ||
        report "forkd bench" FAIL "exit $rc, $left sandboxes after it, $before before: $out $(tail -n 3 "$work/bench.err")"
fi
kill -TERM "$daemon_pid" 2>/dev/null || true
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=""
((rc == 0)) && report "forkd serve stops" ok "exit 0 on SIGTERM" ||
    report "forkd serve stops" FAIL "exit $rc: $(tail -n 3 "$work/daemon.log")"
stage daemon "$t"
fi # the daemon part

now_sha=$(sha256sum "$snapdir/memory.bin" | cut -d' ' -f1)
[[ $now_sha == "$mem_sha" ]] && report "memory.bin unchanged" ok "$now_sha" ||
    report "memory.bin unchanged" FAIL "$mem_sha -> $now_sha"

if [[ -s $work/crashes ]]; then
    report platform-crash SKIP "XFAIL known KVM-PVM problem: $(wc -l <"$work/crashes") command(s) killed by SIGSEGV and re-run: $(tr '\n' ';' <"$work/crashes")"
fi
echo "$pass passed, $fail failed, $skip skipped"
((fail == 0))
