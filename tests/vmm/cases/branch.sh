#!/usr/bin/env bash
# branch: running children snapshotted with `forkd snapshot --from-sandbox`
# (modes full, diff, live) and forked again, over a chain of diffs. With
# tests/guests/branch.c (generation g stamps its own 64 pages, then
# rewrites two checksummed churn buffers until it runs in a new child):
#   1. a kept child A of the boot snapshot is branched in each mode while
#      it churns; each branch is a snapshot with a parent; the diff holds
#      about the pages A wrote (64 stamped + 64 churn + a few), on disk too;
#      A runs on throughout;
#   2. two children of each branch find generation 1's stamps, the base
#      pattern and a churn buffer that matches its commit (a branch of one
#      instant), 0 bad words;
#   3. a chain of diffs of depth 3 (a branch of a child of a branch of a
#      child of a branch) forks children that see every generation's
#      stamps; `snapshot compact` flattens it into a snapshot that forks
#      with the chain's snapshots deleted, while the chain's tip now fails
#      with a clear error;
#   4. snapshot ls / info / rm see the parents and depths; rm refuses a
#      snapshot kept children run from or a diff branch needs, and
#      --cascade removes the branch too;
#   5. errors leave no snapshot and no temporary directory: a tag that
#      exists, an unknown id, a child that has exited, a full disk (root:
#      a 1 MiB tmpfs), and the source child still runs after each.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

_branch_cleanup() {
	local rc=$?
	"$FORKD" kill --all --no-daemon >/dev/null 2>&1 || true
	if [[ -n ${small:-} ]] && mountpoint -q "$small"; then umount "$small" || true; fi
	(exit "$rc")
	_snap_cleanup
}
trap _branch_cleanup EXIT

snaps=$FORKD_HOME/snapshots

# wait_line FILE REGEX SECS: wait until a line of FILE matches REGEX.
wait_line() {
	local f=$1 re=$2 t
	for ((t = 0; t < $3 * FORKD_TEST_TIME_SCALE * 10; t++)); do
		grep -Eq -- "$re" "$f" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "--- $f:"
	cat "$f" 2>/dev/null || true
	fail "no line /$re/ in $f within $(scaled "$3") s"
}

# keep TAG N NAME: fork N kept children of TAG (workdir $WORK/NAME); sets
# ids[] and pids[].
keep() {
	local rc=0
	bounded 120 "$FORKD" fork --tag "$1" -n "$2" --keep --workdir "$WORK/$3" \
		>"$WORK/$3.log" 2>&1 || rc=$?
	((rc == 0)) || { cat "$WORK/$3.log"; fail "fork --keep of $1 exited with $rc"; }
	mapfile -t ids < <(awk '$1 == "kept" { print $2 }' "$WORK/$3.log")
	mapfile -t pids < <(awk '$1 == "kept" { print $3 }' "$WORK/$3.log")
	((${#ids[@]} == $2)) || fail "fork --keep of $1 printed ${#ids[@]} kept lines, not $2"
}

# expect_gen NAME N GEN: the N children in $WORK/NAME verified 0 bad words
# in generation GEN and are churning.
expect_gen() {
	local i
	for ((i = 0; i < $2; i++)); do
		wait_line "$WORK/$1/child-$i/console.log" "^branch: gen $3 index $i: stamped" 60
		grep -Eq "^branch: gen $3 index $i: 0 bad words" "$WORK/$1/child-$i/console.log" ||
			{ cat "$WORK/$1/child-$i/console.log"; fail "$1: child $i of generation $3 found bad words"; }
	done
	ok "$1: $2 children of generation $3: 0 bad words (every earlier generation's stamps, base pattern, churn buffer = its commit)"
}

# branch ID MODE TAG: branch kept child ID; the JSON result in $WORK/TAG.json.
branch() {
	local rc=0
	bounded 120 "$FORKD" snapshot --from-sandbox "$1" --mode "$2" --tag "$3" --json \
		>"$WORK/$3.json" 2>"$WORK/$3.err" || rc=$?
	((rc == 0)) || { cat "$WORK/$3.err"; fail "branch $2 of $1 into $3 exited with $rc"; }
	[[ -f $snaps/$3/snapshot.json && -f $snaps/$3/vmstate ]] || fail "branch $3: no snapshot.json or vmstate"
}

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

no_tmp() {
	local left
	left=$(find "$snaps" -maxdepth 1 -name '.*' -print)
	[[ -z $left ]] || fail "temporary directories left in $snaps: $left"
}

command -v python3 >/dev/null || { echo "skip: python3 is needed for the checks"; exit 77; }

# 1. Branch a churning child in every mode.
snap_take base --mem-mib 64
keep base 1 a
a_id=${ids[0]} a_pid=${pids[0]}
wait_line "$WORK/a/child-0/console.log" '^branch: gen 1 index 0: stamped 64 pages, churning' 60
expect_gen a 1 1
for mode in full diff live; do
	branch "$a_id" "$mode" "b_$mode"
	[[ $(json_field "$WORK/b_$mode.json" parent) == base ]] || fail "b_$mode: parent is not base"
	kill -0 "$a_pid" || fail "the source child died during the $mode branch"
	ok "$mode: branch b_$mode of $a_id, paused $(json_field "$WORK/b_$mode.json" pause_us) us; the source runs on"
done
grep -q '"memory": "diff"' "$snaps/b_diff/snapshot.json" || fail "b_diff is not marked as a memory diff"
[[ ! -e $snaps/b_diff/memory.bin ]] || fail "b_diff has a memory.bin of its own"
pages=$(json_field "$WORK/b_diff.json" pages)
((pages >= 128 && pages <= 128 + 48)) || fail "b_diff holds $pages pages; A wrote 64 stamped + 64 churn pages (+ at most 48 of stack and page tables)"
kib=$(du -k "$snaps/b_diff/memory.diff" | cut -f1)
((kib >= pages * 4 && kib <= pages * 4 + 64)) || fail "memory.diff takes $kib KiB on disk for $pages pages"
full_kib=$(du -k "$snaps/b_full/memory.bin" | cut -f1)
ok "diff: $pages pages, $kib KiB on disk (the full branch: $full_kib KiB)"

# 2. Children of each branch.
for mode in full diff live; do
	keep "b_$mode" 2 "c_$mode"
	expect_gen "c_$mode" 2 2
done
kill -0 "$a_pid" || fail "the source child died"

# 3. A chain of diffs of depth 3, then compact.
c_id=$(awk '$1 == "kept" { print $2; exit }' "$WORK/c_diff.log")
branch "$c_id" diff chain2
keep chain2 1 d
expect_gen d 1 3
branch "${ids[0]}" diff chain3
[[ $(json_field "$WORK/chain3.json" parent) == chain2 ]] || fail "chain3: parent is not chain2"
keep chain3 2 e
expect_gen e 2 4
ok "chain: base <- b_diff <- chain2 <- chain3 (3 diffs) forks children that see generations 1-3"
bounded 120 "$FORKD" snapshot compact --from chain3 --to flat >"$WORK/compact.log" 2>&1 ||
	{ cat "$WORK/compact.log"; fail "compact exited non-zero"; }
[[ -f $snaps/flat/memory.bin && ! -e $snaps/flat/memory.diff ]] || fail "flat has no memory.bin of its own"
rm -rf "${snaps:?}/b_diff" "$snaps/chain2"
rc=0
"$FORKD" fork --tag chain3 -n 1 >"$WORK/gone.log" 2>&1 || rc=$?
((rc != 0)) && grep -q "which is gone" "$WORK/gone.log" ||
	{ cat "$WORK/gone.log"; fail "fork of chain3 without its parents: status $rc, no 'which is gone'"; }
keep flat 1 f
expect_gen f 1 4
ok "compact: flat forks with the chain's snapshots deleted; chain3 then says its parent is gone"

# 4. The store from the CLI: snapshot ls, info, rm (refused while kept
# children run from it or diff branches need it; --cascade).
"$FORKD" snapshot ls --json >"$WORK/ls.json" || fail "snapshot ls --json exited non-zero"
python3 - "$WORK/ls.json" <<'PY' || fail "snapshot ls --json misses a snapshot or a field"
import json, sys
o = {s["tag"]: s for s in json.load(open(sys.argv[1]))}
assert {"base", "b_full", "b_live", "flat", "chain3"} <= set(o), sorted(o)
assert o["b_live"]["parent"] == "base" and o["b_live"]["memory"] == "full", o["b_live"]
assert o["chain3"]["memory"] == "diff" and o["chain3"]["chain_depth"] == -1, o["chain3"]
assert o["flat"]["parent"] is None and o["flat"]["chain_depth"] == 0, o["flat"]
PY
# Through a variable: grep -q stops reading at its match, and forkd's next
# line would then die of SIGPIPE (pipefail).
info=$("$FORKD" snapshot info b_live)
grep -q '^parent *base$' <<<"$info" || fail "snapshot info b_live does not name its parent: $info"
c_live_id=$(awk '$1 == "kept" { print $2; exit }' "$WORK/c_live.log")
branch "$c_live_id" diff dl1
rc=0
"$FORKD" snapshot rm b_live >"$WORK/rm1.log" 2>&1 || rc=$?
((rc == 1)) && grep -q "kept child" "$WORK/rm1.log" || { cat "$WORK/rm1.log"; fail "rm of a snapshot kept children run from: status $rc"; }
"$FORKD" kill --tag b_live --no-daemon >/dev/null || fail "kill --tag b_live"
for ((t = 0; t < 50; t++)); do
	grep -q '"kept_running": 0' <<<"$("$FORKD" snapshot info b_live --json)" && break
	sleep 0.1
done
rc=0
"$FORKD" snapshot rm b_live >"$WORK/rm2.log" 2>&1 || rc=$?
((rc == 1)) && grep -q "needed by 1 diff branch" "$WORK/rm2.log" || { cat "$WORK/rm2.log"; fail "rm of a snapshot a diff needs: status $rc"; }
[[ -d $snaps/b_live && -d $snaps/dl1 ]] || fail "a refused rm removed something"
"$FORKD" snapshot rm b_live --cascade --json >"$WORK/rm3.json" || fail "rm --cascade exited non-zero"
[[ $(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1]))))' "$WORK/rm3.json") == "['b_live', 'dl1']" ]] ||
	fail "rm --cascade deleted $(cat "$WORK/rm3.json"), not b_live and dl1"
[[ ! -e $snaps/b_live && ! -e $snaps/dl1 ]] || fail "rm --cascade left a directory"
no_tmp
ok "snapshot ls/info/rm: parents and depths listed; rm refused while kept children run or a diff needs it; --cascade removes both"

# 5. Errors.
rc=0
"$FORKD" snapshot --from-sandbox "$a_id" --mode full --tag b_full >"$WORK/exists.log" 2>&1 || rc=$?
((rc == 1)) && grep -q "exists" "$WORK/exists.log" || { cat "$WORK/exists.log"; fail "branch to an existing tag: status $rc"; }
rc=0
"$FORKD" snapshot --from-sandbox k-00000000 --tag nope >"$WORK/unknown.log" 2>&1 || rc=$?
((rc == 1)) && grep -q "no such kept child" "$WORK/unknown.log" || { cat "$WORK/unknown.log"; fail "branch of an unknown id: status $rc"; }
victim=$(awk '$1 == "kept" { print $3; exit }' "$WORK/c_full.log")
victim_id=$(awk '$1 == "kept" { print $2; exit }' "$WORK/c_full.log")
kill -9 "$victim"
gone_wait=0
while kill -0 "$victim" 2>/dev/null && ((gone_wait++ < 50)); do sleep 0.1; done
rc=0
"$FORKD" snapshot --from-sandbox "$victim_id" --tag nope >"$WORK/exited.log" 2>&1 || rc=$?
((rc == 1)) && grep -Eq "exited|no such kept child" "$WORK/exited.log" || { cat "$WORK/exited.log"; fail "branch of an exited child: status $rc"; }
[[ ! -e $snaps/nope ]] || fail "a failed branch left snapshot 'nope'"
no_tmp
ok "errors: existing tag, unknown id, exited child: status 1, nothing left"
if (($(id -u) == 0)); then
	small=$WORK/small
	mkdir -p "$small"
	if mount -t tmpfs -o size=1m forkd-branch-test "$small" 2>/dev/null; then
		mkdir -p "$small/snapshots/base" "$small/kept"
		cp "$snaps/base/snapshot.json" "$small/snapshots/base/"
		cp "$FORKD_HOME/kept/$a_id.json" "$small/kept/"
		rc=0
		FORKD_HOME=$small "$FORKD" snapshot --from-sandbox "$a_id" --mode full --tag full_disk \
			>"$WORK/enospc.log" 2>&1 || rc=$?
		((rc == 1)) && grep -q "No space left" "$WORK/enospc.log" ||
			{ cat "$WORK/enospc.log"; fail "branch onto a full disk: status $rc, no 'No space left'"; }
		left=$(find "$small/snapshots" -mindepth 1 -maxdepth 1 ! -name base)
		[[ -z $left ]] || fail "a branch onto a full disk left $left"
		kill -0 "$a_pid" || fail "the source child died when its branch hit a full disk"
		umount "$small"
		ok "full disk: status 1 with 'No space left on device', nothing left, the source runs on"
	else
		echo "note: could not mount a tmpfs; the full-disk case is not run"
	fi
fi
# The source child still answers its control socket after all of it.
branch "$a_id" live last
ok "the source child branched once more after all that"
