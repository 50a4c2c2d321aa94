#!/usr/bin/env bash
# snap_isolation: children never see each other's writes, and never write
# the snapshot (tests/guests/snap_isolation.c). The guest fills 2048 pages
# with identical contents before the snapshot; each child writes its own
# index over 1024 of them, lingers ~1 s while its siblings do the same,
# then checks every word of all 2048 pages.
#   1. `forkd fork -n 50 --wait` (memory.bin mapped MAP_PRIVATE);
#   2. `forkd fork -n 10 --wait --live-fork` (each child's RAM a memfd);
# each time every child must exit 0 having read back only its own value,
# and memory.bin's sha256 must be unchanged.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

tag=isolation$$
snap_take "$tag"
mem=$FORKD_HOME/snapshots/$tag/memory.bin
sum=$(sha256sum "$mem" | cut -d' ' -f1)
data_kib=$(du -k "$mem" | cut -f1)
((data_kib >= 8192)) || fail "memory.bin holds only $data_kib KiB of data; the 8 MiB of identical pages should be there"
ok "memory.bin: sha256 ${sum:0:16}..., $data_kib KiB allocated (2048 identical non-zero pages)"

run_children() {
	local mode=$1 n=$2 rc=0 workdir=$WORK/fork-$1
	shift 2
	bounded 300 "$FORKD" fork --tag "$tag" -n "$n" --wait --timeout-secs "$(scaled 200)" --keep-workdir \
		--workdir "$workdir" "$@" >"$WORK/fork-$mode.log" 2>&1 || rc=$?
	grep -v '^fork: child [0-9]* exit status 0$' "$WORK/fork-$mode.log" | sed 's/^/    | /'
	((rc == 0)) || fail "$mode: forkd fork exited with status $rc"
	check_children_exit "$n" "$WORK/fork-$mode.log"
	for ((i = 0; i < n; i++)); do
		local log=$workdir/child-$i/console.log want
		want=$(printf 'snap_isolation: child %d: 0 wrong words; 1024 written pages hold 0xc41d%012x, 1024 untouched pages the snapshot.s pattern' "$i" "$i")
		grep -qx "$want" "$log" || { cat "$log"; fail "$mode: child $i did not read back only its own value"; }
	done
	ok "$mode: $n children each read back only their own index in 1024 shared pages; 1024 untouched pages intact"
	local ms
	ms=$(sed -n 's/^fork: [0-9]* children running in \([0-9]*\)\..*/\1/p' "$WORK/fork-$mode.log")
	if [[ -n $ms ]] && ((ms < 1000)); then
		ok "$mode: all $n were running within $ms ms and each lingered ~1 s after writing: their writes overlapped"
	else
		echo "note: $mode: spawning took ${ms:-?} ms, so not every child's linger overlapped every other's"
	fi
	[[ $(sha256sum "$mem" | cut -d' ' -f1) == "$sum" ]] || fail "$mode: memory.bin changed"
	ok "$mode: memory.bin unchanged (sha256)"
}

run_children private "${SNAP_ISOLATION_CHILDREN:-50}"
run_children live-fork 10 --live-fork
