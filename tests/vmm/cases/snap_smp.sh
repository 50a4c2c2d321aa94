#!/usr/bin/env bash
# snap_smp: a 2-vCPU guest snapshotted with both vCPUs running restores in
# every child with both still running (tests/guests/snap_smp.c): the AP's
# loop and LAPIC-timer counters keep advancing as the BSP watches, the
# BSP's own timer fires, and an IPI ping carrying the child's index comes
# back from the AP.
#   1. `forkd snapshot --vcpus 2`; snapshot.json must say 2 vCPUs;
#   2. `forkd fork -n 10 --wait`: every child exits 0 and reports its own
#      index, generation 1, counters that moved and the ping's return.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

n=${SNAP_SMP_CHILDREN:-10}
tag=smp$$
workdir=$WORK/fork

snap_take "$tag" --vcpus 2
grep -q '"vcpus": 2' "$FORKD_HOME/snapshots/$tag/snapshot.json" || fail "snapshot.json does not say 2 vCPUs"
grep -q '^snap_smp: warm: ' "$WORK/$tag.parent.log" || fail "the parent never got warm"
ok "snapshot of a 2-vCPU guest with the AP running and both LAPIC timers ticking"

rc=0
bounded 300 "$FORKD" fork --tag "$tag" -n "$n" --wait --timeout-secs "$(scaled 200)" --keep-workdir \
	--workdir "$workdir" >"$WORK/fork.log" 2>&1 || rc=$?
grep -v '^fork: child [0-9]* exit status 0$' "$WORK/fork.log" | sed 's/^/    | /'
((rc == 0)) || fail "forkd fork exited with status $rc"
grep -q "^fork: snapshot $tag (.*, 2 vCPUs), $n children" "$WORK/fork.log" || fail "fork did not see 2 vCPUs"
check_children_exit "$n" "$WORK/fork.log"
for ((i = 0; i < n; i++)); do
	log=$workdir/child-$i/console.log
	grep -q "^snap_smp: child $i generation 1: AP loop counter" "$log" ||
		{ cat "$log"; fail "child $i: no counter report"; }
	grep -q "^snap_smp: child $i: ping 0x00000000c0de$(printf %04x "$i") came back from the AP$" "$log" ||
		{ cat "$log"; fail "child $i: no ping back from the AP"; }
	grep -qx SUCCESS "$log" || { cat "$log"; fail "child $i: no SUCCESS"; }
done
echo "    child 0: $(grep '^snap_smp: child 0 generation' "$workdir/child-0/console.log")"
ok "$n children: both vCPUs kept running after the restore (AP counters advanced, timers fired, IPIs both ways)"
