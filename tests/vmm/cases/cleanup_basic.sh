#!/usr/bin/env bash
# forkd cleanup, work and run directories (in private directories given
# with --tmpdir/--rundir, so nothing of other runs on this host is touched):
# an orphan /tmp/forkd-fork-x is removed, while directories a live process
# uses (its working directory, an open file, a live spawner.pid, a run
# directory whose pid file names a live process with the same start time)
# are kept; without --yes nothing at all is removed; symbolic links are
# never followed.
# Contract: tests/vmm/run.sh sets FORKD and WORK; 0 pass, 77 skip.
set -euo pipefail
: "${FORKD:?}" "${WORK:?}"

fail() {
	echo "FAIL: $*"
	exit 1
}
ok() {
	echo "ok: $*"
}

bg=()
stop_bg() {
	local p
	for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop_bg EXIT

T=$WORK/tmp R=$WORK/run
mkdir -p "$T" "$R" "$WORK/outside"
echo canary >"$WORK/outside/canary"

true &
dead=$!
wait "$dead"

# Stale: an orphan fork workdir (its spawner is gone), with a link out.
mkdir -p "$T/forkd-fork-x/child-0"
echo log >"$T/forkd-fork-x/child-0/console.log"
echo "$dead" >"$T/forkd-fork-x/spawner.pid"
ln -s "$WORK/outside/canary" "$T/forkd-fork-x/child-0/link"
# In use: a process has its working directory there.
mkdir -p "$T/forkd-fork-cwd"
(cd "$T/forkd-fork-cwd" && exec sleep 60) &
bg+=($!)
# In use: a process holds a file in it open.
mkdir -p "$T/forkd-fork-open/child-1"
sleep 60 3>"$T/forkd-fork-open/child-1/console.log" &
bg+=($!)
# In use: its spawner.pid names a live process.
mkdir -p "$T/forkd-fork-spawner"
sleep 60 &
live=$!
bg+=("$live")
echo "$live" >"$T/forkd-fork-spawner/spawner.pid"
# Never followed, never removed: a link named forkd-* and a non-forkd dir.
ln -s "$WORK/outside" "$T/forkd-fork-link"
mkdir -p "$T/other"

# Run directories: pid files "<pid> <starttime>".
start_of() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $20}'; }
mkdir -p "$R/live" "$R/dead" "$R/reused" "$R/nopid"
echo "$live $(start_of "$live")" >"$R/live/pid"
echo "$dead 12345" >"$R/dead/pid"
echo "$live $(($(start_of "$live") + 1))" >"$R/reused/pid"
: >"$R/live/api.sock"
: >"$R/dead/api.sock"
sleep 0.3

snapshot() { (cd "$WORK" && find tmp run outside | sort); }
before=$(snapshot)
args=(--tmpdir "$T" --rundir "$R" --only "workdir,rundir")

# Fresh entries are kept by default (--min-age 30): they may be being set up.
out=$("$FORKD" cleanup "${args[@]}")
echo "$out"
grep -q "keep    workdir  $T/forkd-fork-x (changed less than 30 s ago)" <<<"$out" ||
	fail "a fresh directory was not protected by --min-age"
out=$("$FORKD" cleanup --yes "${args[@]}")
[[ $(snapshot) == "$before" ]] || fail "--yes removed a directory younger than --min-age"
ok "directories changed less than --min-age ago are kept"

args+=(--min-age 0)
out=$("$FORKD" cleanup "${args[@]}")
echo "$out"
[[ $(snapshot) == "$before" ]] || fail "cleanup without --yes removed something"
expect() {
	grep -q "^$1 *$2 *$3\( (.*\)\?$" <<<"$out" || fail "expected '$1 $2 $3' in the listing"
}
expect stale workdir "$T/forkd-fork-x"
expect keep workdir "$T/forkd-fork-cwd"
expect keep workdir "$T/forkd-fork-open"
expect keep workdir "$T/forkd-fork-spawner"
expect stale rundir "$R/dead"
expect stale rundir "$R/reused"
expect stale rundir "$R/nopid"
expect keep rundir "$R/live"
grep -q "forkd-fork-link\|$T/other" <<<"$out" && fail "a link or a non-forkd directory was listed"
grep -q "forkd-fork-cwd (pid [0-9]* has its working directory there)" <<<"$out" || fail "cwd reason"
grep -q "forkd-fork-open (pid [0-9]* has a file open there)" <<<"$out" || fail "open-file reason"
grep -q "forkd-fork-spawner (its spawner, pid $live, is alive)" <<<"$out" || fail "spawner reason"
grep -q "^cleanup: 4 stale, 4 kept; run 'forkd cleanup --yes'" <<<"$out" || fail "summary"
ok "without --yes: listed (4 stale, 4 kept with reasons), nothing removed"

out=$("$FORKD" cleanup --yes "${args[@]}")
echo "$out"
[[ ! -e $T/forkd-fork-x ]] || fail "the orphan workdir is still there"
for d in "$R/dead" "$R/reused" "$R/nopid"; do [[ ! -e $d ]] || fail "$d is still there"; done
for d in "$T/forkd-fork-cwd" "$T/forkd-fork-open/child-1/console.log" \
	"$T/forkd-fork-spawner/spawner.pid" "$R/live/pid" "$R/live/api.sock" "$T/other"; do
	[[ -e $d ]] || fail "$d (in use) was removed"
done
[[ -L $T/forkd-fork-link && $(cat "$WORK/outside/canary") == canary ]] || fail "followed a link"
grep -q "^cleanup: 4 removed, 0 failed, 4 kept$" <<<"$out" || fail "summary after --yes"
ok "--yes removed the orphan workdir and stale run dirs, kept everything in use"

# Once its user is gone, the workdir becomes stale.
kill "${bg[0]}"
wait "${bg[0]}" 2>/dev/null || true
out=$("$FORKD" cleanup --yes "${args[@]}")
[[ ! -e $T/forkd-fork-cwd ]] || fail "forkd-fork-cwd kept after its process ended"
ok "a workdir is removed once the process using it has ended"

rc=0
"$FORKD" cleanup --only bogus >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "--only bogus gave exit status $rc"
rc=0
"$FORKD" cleanup --tmpdir relative >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "a relative --tmpdir gave exit status $rc"
grep -q "usage: forkd cleanup" <<<"$("$FORKD" cleanup --help)" || fail "cleanup --help"
echo SUCCESS
