#!/usr/bin/env bash
# fork_keep: `forkd fork --keep` leaves its children running under a
# detached supervisor, and `forkd ls`, `kill`, `ping --sandbox ID` and
# `cleanup` find them through the registry in $FORKD_HOME/kept. With
# tests/guests/agent_stub.c (answers ping over vsock):
#   1. fork --keep -n 3 (with --memory-limit-mib 64 where the host has
#      memory cgroups) returns 0 and prints "kept ID PID RUN_DIR" three
#      times; the children stay alive, children of the supervisor, each in
#      its leaf cgroup;
#   2. ls --json shows the three running with those pids and run dirs; with
#      no daemon at the default URL, plain `ls` lists them and says so on
#      stderr;
#   3. ping --sandbox ID answers with that child's index;
#   4. kill ID ends exactly that child: pid gone, entry gone, leaf gone,
#      the others alive;
#   5. bad ids ("../x", "k-zz", an unknown k-...) are refused, non-zero;
#      --keep with --wait or --settle-secs is refused;
#   6. cleanup keeps the live entries and the workdir, lists a stale entry
#      (also shown "exited" by ls) and removes it with --yes;
#   7. kill --tag ends the rest; the supervisor exits after the last child,
#      the leaf cgroups are gone; another --keep fork is ended by kill --all.
# Contract: tests/vmm/run.sh sets FORKD and WORK (no guest of this name).
GUEST=${GUEST:-}
[[ -n $GUEST ]] || GUEST=$(dirname "${FORKD:?}")/guests/agent_stub.elf
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

command -v python3 >/dev/null || { echo "skip: python3 is needed for the checks"; exit 77; }
[[ -f $GUEST ]] || fail "$GUEST is missing (make guests)"

# Whatever happens, no kept child of this test outlives it (only this
# test's private $FORKD_HOME is looked at).
_keep_cleanup() {
	local rc=$?
	"$FORKD" kill --all --no-daemon >/dev/null 2>&1 || true
	(exit "$rc")
	_snap_cleanup
}
trap _keep_cleanup EXIT

alive() { kill -0 "$1" 2>/dev/null; }
# gone PID: wait up to 5 s for PID to end.
gone() {
	local t
	for ((t = 0; t < 50; t++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

tag=keep$$
# The snapshot's jailed VMM (the jail's uid, not ours) polls its agent
# through $WORK/parent*.sock: it must be able to pass through $WORK.
chmod o+x "$WORK"
snap_take "$tag" --mem-mib 16 --vsock "$WORK/parent.sock" --agent-port 8888

# 1. Three kept children.
wd=$WORK/forkd-keep-a
memopt=(--memory-limit-mib 64)
if (($(id -u) != 0)); then
	memopt=()
fi
rc=0
bounded 120 "$FORKD" fork --tag "$tag" -n 3 --keep --workdir "$wd" "${memopt[@]}" \
	>"$WORK/fork.log" 2>&1 || rc=$?
if ((rc != 0)) && grep -q 'no memory cgroups' "$WORK/fork.log"; then
	echo "note: no memory cgroups here; forking without --memory-limit-mib"
	memopt=()
	rc=0
	bounded 120 "$FORKD" fork --tag "$tag" -n 3 --keep --workdir "$wd" \
		>"$WORK/fork.log" 2>&1 || rc=$?
fi
sed 's/^/    | /' "$WORK/fork.log"
((rc == 0)) || fail "forkd fork --keep exited with $rc"
mapfile -t ids < <(awk '$1 == "kept" { print $2 }' "$WORK/fork.log")
mapfile -t pids < <(awk '$1 == "kept" { print $3 }' "$WORK/fork.log")
((${#ids[@]} == 3)) || fail "forkd fork --keep printed ${#ids[@]} 'kept' lines, not 3"
for i in 0 1 2; do
	[[ ${ids[i]} =~ ^k-[0-9a-f]{8}$ ]] || fail "child $i: id '${ids[i]}' is not k-XXXXXXXX"
	grep -qx "kept ${ids[i]} ${pids[i]} $wd/child-$i" "$WORK/fork.log" ||
		fail "child $i: no 'kept ID PID $wd/child-$i' line"
done
sup=$(sed -n 's/^fork: 3 children kept; supervisor pid \([0-9]*\) .*/\1/p' "$WORK/fork.log")
[[ -n $sup ]] || fail "no supervisor pid reported"
sleep 1
for i in 0 1 2; do
	alive "${pids[i]}" || fail "child $i (pid ${pids[i]}) is not alive after fork --keep returned"
	ppid=$(ps -o ppid= -p "${pids[i]}" | tr -d ' ')
	[[ $ppid == "$sup" ]] || fail "child $i's parent is $ppid, not the supervisor $sup"
done
alive "$sup" || fail "the supervisor $sup is not alive"
leaves=""
if ((${#memopt[@]})); then
	leaves=$(sed -n 's/^fork: memory limit 64 MiB per child: cgroup v[12] leaves under \(.*\)$/\1/p' "$WORK/fork.log")
	[[ -n $leaves ]] || fail "no cgroup parent reported"
	for i in 0 1 2; do
		grep -qx "${pids[i]}" "$leaves/fork-$sup-child-$i/cgroup.procs" ||
			fail "child $i is not in its leaf $leaves/fork-$sup-child-$i"
	done
	ok "3 kept children alive after fork returned, parent = supervisor $sup, each in its leaf cgroup"
else
	ok "3 kept children alive after fork returned, parent = supervisor $sup"
fi

# 2. ls --json (and plain ls without a daemon at the default URL).
"$FORKD" ls --json --no-daemon >"$WORK/ls.json" || fail "forkd ls --json --no-daemon failed"
python3 - "$WORK/ls.json" "$wd" "${ids[@]}" "${pids[@]}" <<'PY' || fail "forkd ls --json does not show the 3 running"
import json, sys
ls = json.load(open(sys.argv[1]))
wd, ids, pids = sys.argv[2], sys.argv[3:6], [int(p) for p in sys.argv[6:9]]
kept = {o["id"]: o for o in ls if o.get("kind") == "kept"}
assert sorted(kept) == sorted(ids), (kept, ids)
for i, (k, p) in enumerate(zip(ids, pids)):
    o = kept[k]
    assert o["state"] == "running" and o["pid"] == p and o["index"] == i, o
    assert o["run_dir"] == "%s/child-%d" % (wd, i), o
PY
ok "ls --json: the 3 kept children running, with their pids and run dirs"
if ! (exec 3<>/dev/tcp/127.0.0.1/8889) 2>/dev/null; then
	rc=0
	env -u FORKD_URL "$FORKD" ls >"$WORK/ls.txt" 2>"$WORK/ls.err" || rc=$?
	((rc == 0)) || fail "forkd ls with no daemon at the default URL exited $rc"
	grep -q 'connection refused' "$WORK/ls.err" || fail "forkd ls did not say there is no daemon"
	[[ $(grep -c "^k-[0-9a-f]\{8\} .* running " "$WORK/ls.txt") == 3 ]] ||
		fail "forkd ls (no daemon) does not list the 3 running: $(cat "$WORK/ls.txt")"
	ok "ls with no daemon at the default URL: the kept children, and a note on stderr"
fi

# 3. ping one by id.
"$FORKD" ping --sandbox "${ids[1]}" >"$WORK/ping.txt" 2>&1 || fail "ping --sandbox ${ids[1]}: $(cat "$WORK/ping.txt")"
grep -q "index 1 " "$WORK/ping.txt" || fail "ping --sandbox ${ids[1]} did not reach child 1: $(cat "$WORK/ping.txt")"
ok "ping --sandbox ${ids[1]}: $(cat "$WORK/ping.txt")"

# 4. kill one.
"$FORKD" kill "${ids[0]}" >"$WORK/kill0.txt" 2>&1 || fail "forkd kill ${ids[0]}: $(cat "$WORK/kill0.txt")"
grep -qx "killed ${ids[0]} (was running)" "$WORK/kill0.txt" || fail "kill said: $(cat "$WORK/kill0.txt")"
gone "${pids[0]}" || fail "child 0 (pid ${pids[0]}) still runs after kill"
[[ ! -e $FORKD_HOME/kept/${ids[0]}.json ]] || fail "${ids[0]}'s registry entry is left"
alive "${pids[1]}" && alive "${pids[2]}" || fail "kill ${ids[0]} ended another child too"
if [[ -n $leaves ]]; then
	for ((t = 0; t < 30; t++)); do
		[[ -d $leaves/fork-$sup-child-0 ]] || break
		sleep 0.1
	done
	[[ ! -d $leaves/fork-$sup-child-0 ]] || fail "child 0's leaf cgroup is left after it ended"
	[[ -d $leaves/fork-$sup-child-1 ]] || fail "child 1's leaf cgroup went with child 0"
fi
ok "kill ${ids[0]}: that child, its entry (and leaf) gone; the other two alive"

# 5. Bad ids and refused combinations.
for bad in ../x k-zz "k-../../x" K-0000000G; do
	rc=0
	"$FORKD" kill "$bad" >"$WORK/bad.txt" 2>&1 || rc=$?
	((rc != 0)) || fail "forkd kill '$bad' exited 0"
	grep -q "is not a sandbox id" "$WORK/bad.txt" || fail "forkd kill '$bad': $(cat "$WORK/bad.txt")"
	rc=0
	"$FORKD" ping --sandbox "$bad" >"$WORK/bad.txt" 2>&1 || rc=$?
	((rc != 0)) || fail "forkd ping --sandbox '$bad' exited 0"
done
rc=0
"$FORKD" kill k-00000000 --no-daemon >"$WORK/bad.txt" 2>&1 || rc=$?
((rc != 0)) && grep -q "no kept child k-00000000" "$WORK/bad.txt" ||
	fail "forkd kill of an unknown kept id: status $rc, $(cat "$WORK/bad.txt")"
for combo in "--wait" "--settle-secs "$(scaled 1)"" "--timeout-secs 5"; do
	rc=0
	# shellcheck disable=SC2086 # the option and its value are two words
	"$FORKD" fork --tag "$tag" --keep $combo >"$WORK/bad.txt" 2>&1 || rc=$?
	((rc != 0)) && grep -q -- "--keep leaves the children running" "$WORK/bad.txt" ||
		fail "forkd fork --keep $combo: status $rc, $(cat "$WORK/bad.txt")"
done
alive "${pids[1]}" && alive "${pids[2]}" || fail "a refused command ended a child"
ok "bad ids refused (../x, k-zz, ...); --keep with --wait, --settle-secs, --timeout-secs refused"

# 6. cleanup: live entries and workdir kept; a stale entry listed, removed.
true &
dead=$!
wait "$dead"
cat >"$FORKD_HOME/kept/k-deadbeef.json" <<EOF
{"id": "k-deadbeef", "tag": "$tag", "index": 7, "pid": $dead, "start_time": 1,
 "run_dir": "$WORK/nowhere", "supervisor_pid": $dead, "created_at": "2000-01-01T00:00:00Z"}
EOF
"$FORKD" ls --json --no-daemon | python3 -c '
import json, sys
o = [x for x in json.load(sys.stdin) if x["id"] == "k-deadbeef"]
assert len(o) == 1 and o[0]["state"] == "exited", o' || fail "ls does not show the stale entry as exited"
"$FORKD" cleanup --only kept,workdir --tmpdir "$WORK" >"$WORK/cleanup.txt" 2>&1 ||
	fail "forkd cleanup: $(cat "$WORK/cleanup.txt")"
sed 's/^/    | /' "$WORK/cleanup.txt"
grep -q "^stale   kept     $FORKD_HOME/kept/k-deadbeef.json$" "$WORK/cleanup.txt" ||
	fail "cleanup does not list the stale entry"
for i in 1 2; do
	grep -q "^keep    kept     $FORKD_HOME/kept/${ids[i]}.json (kept child ${ids[i]}, pid ${pids[i]}, is running)$" \
		"$WORK/cleanup.txt" || fail "cleanup does not keep ${ids[i]}"
done
grep -q "^keep    workdir  $wd (its spawner, pid $sup, is alive)$" "$WORK/cleanup.txt" ||
	fail "cleanup does not keep the live workdir $wd"
[[ -e $FORKD_HOME/kept/k-deadbeef.json ]] || fail "cleanup without --yes removed something"
"$FORKD" cleanup --only kept --yes >"$WORK/cleanup.txt" 2>&1 || fail "forkd cleanup --yes: $(cat "$WORK/cleanup.txt")"
[[ ! -e $FORKD_HOME/kept/k-deadbeef.json ]] || fail "cleanup --yes left the stale entry"
[[ -e $FORKD_HOME/kept/${ids[1]}.json && -e $FORKD_HOME/kept/${ids[2]}.json ]] ||
	fail "cleanup --yes removed a live entry"
alive "${pids[1]}" && alive "${pids[2]}" || fail "cleanup ended a child"
ok "cleanup: live entries and workdir kept, a stale entry listed, then removed with --yes"

# 7. kill --tag ends the rest; the supervisor follows.
"$FORKD" kill --tag "$tag" --no-daemon --json >"$WORK/killtag.json" 2>"$WORK/killtag.err" ||
	fail "forkd kill --tag: $(cat "$WORK/killtag.json" "$WORK/killtag.err")"
python3 - "$WORK/killtag.json" "${ids[1]}" "${ids[2]}" <<'PY' || fail "kill --tag --json: $(cat "$WORK/killtag.json")"
import json, sys
objs = json.load(open(sys.argv[1]))  # one array, whatever the count
assert isinstance(objs, list), objs
assert sorted(o["id"] for o in objs) == sorted(sys.argv[2:]), objs
assert all(o["state_before"] == "running" and o["kind"] == "kept" for o in objs), objs
PY
for i in 1 2; do
	gone "${pids[i]}" || fail "child $i (pid ${pids[i]}) still runs after kill --tag"
done
gone "$sup" || fail "the supervisor $sup still runs after its last child ended"
[[ -z $(ls -A "$FORKD_HOME/kept") ]] || fail "registry entries left: $(ls "$FORKD_HOME/kept")"
if [[ -n $leaves ]]; then
	left=$(ls -d "$leaves"/fork-"$sup"-child-* 2>/dev/null || true)
	[[ -z $left ]] || fail "leaf cgroups left: $left"
fi
grep -q "kept child 2 (${ids[2]}) ended" "$wd/supervisor.log" || fail "the supervisor's log does not say child 2 ended"
ok "kill --tag: the other two ended, supervisor exited, no entry or leaf cgroup left"

rc=0
bounded 120 "$FORKD" fork --tag "$tag" -n 1 --keep --workdir "$WORK/forkd-keep-b" \
	>"$WORK/fork2.log" 2>&1 || rc=$?
((rc == 0)) || { cat "$WORK/fork2.log"; fail "second forkd fork --keep exited $rc"; }
pid=$(awk '$1 == "kept" { print $3 }' "$WORK/fork2.log")
sup=$(sed -n 's/^fork: 1 children kept; supervisor pid \([0-9]*\) .*/\1/p' "$WORK/fork2.log")
alive "$pid" || fail "the second fork's child is not alive"
"$FORKD" kill --all --no-daemon >"$WORK/killall.txt" 2>&1 || fail "kill --all: $(cat "$WORK/killall.txt")"
gone "$pid" || fail "kill --all left pid $pid running"
gone "$sup" || fail "the second supervisor $sup still runs"
[[ -z $(ls -A "$FORKD_HOME/kept") ]] || fail "registry entries left after kill --all"
ok "kill --all: the kept child of a second fork ended, its supervisor too"

# 9. --json: stdout holds one JSON object (progress goes to stderr), for a
#    batch that is stopped at the end and for kept children.
bounded 120 "$FORKD" fork --tag "$tag" -n 2 --settle-secs 0 --json >"$WORK/fork.json" \
	2>"$WORK/fork-json.err" || fail "fork --json: $(cat "$WORK/fork-json.err")"
grep -q '^fork: ' "$WORK/fork-json.err" || fail "fork --json: no progress on stderr"
python3 - "$WORK/fork.json" "$tag" <<'PY' || fail "fork --json: $(cat "$WORK/fork.json")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["tag"] == sys.argv[2] and o["n"] == 2 and o["running"] == 2, o
assert [c["index"] for c in o["children"]] == [0, 1], o
assert all(c["state"] == "running" and c["restore_ms"] > 0 for c in o["children"]), o
assert all(c["after_fork_ms"] > 0 for c in o["children"]), o  # the stub agent answered
assert o["all_running_ms"] >= max(c["restore_ms"] for c in o["children"]) * 0.99, o
assert o["after_fork_wall_ms"] >= max(c["after_fork_ms"] for c in o["children"]) * 0.99, o
PY
bounded 120 "$FORKD" fork --tag "$tag" -n 2 --keep --workdir "$WORK/forkd-keep-c" --json \
	>"$WORK/keep.json" 2>"$WORK/keep-json.err" || fail "fork --keep --json: $(cat "$WORK/keep-json.err")"
python3 - "$WORK/keep.json" <<'PY' || fail "fork --keep --json: $(cat "$WORK/keep.json")"
import json, sys
o = json.load(open(sys.argv[1]))
assert len(o["kept"]) == 2 and all(k["id"].startswith("k-") and k["state"] == "running"
                                   for k in o["kept"]), o
assert sorted(k["index"] for k in o["kept"]) == [0, 1], o
PY
"$FORKD" kill --all --no-daemon --json >"$WORK/killall.json" 2>&1 || fail "kill --all --json"
python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))) == 2' "$WORK/killall.json" ||
	fail "kill --all --json: $(cat "$WORK/killall.json")"
# snapshot --json: its console (stdout by default) goes to stderr with it.
bounded 150 "$FORKD" snapshot --tag "${tag}j" --kernel "$GUEST" --mem-mib 16 \
	--vsock "$WORK/parent-j.sock" --agent-port 8888 --timeout-secs "$(scaled 120)" --json \
	>"$WORK/snap.json" 2>"$WORK/snap-json.err" || fail "snapshot --json: $(cat "$WORK/snap-json.err")"
python3 - "$WORK/snap.json" "${tag}j" "$FORKD_HOME" <<'PY' || fail "snapshot --json: $(cat "$WORK/snap.json")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["tag"] == sys.argv[2] and o["dir"] == sys.argv[3] + "/snapshots/" + sys.argv[2], o
assert o["mem_mib"] == 16 and o["seconds"] >= o["warm_after_seconds"] > 0, o
PY
ok "fork --json, fork --keep --json and snapshot --json print one JSON object; kill --json one array"
no_leftovers "$tag" /nonexistent
echo SUCCESS
