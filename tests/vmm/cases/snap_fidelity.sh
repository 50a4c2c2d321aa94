#!/usr/bin/env bash
# snap_fidelity: a computation snapshotted in flight continues in every
# child exactly as in a VM that was never snapshotted
# (tests/guests/snap_fidelity.c): general and x87/SSE registers, MXCSR and
# FCW in force, PIT and LAPIC timer interrupts after the restore.
#
#   1. reference: `forkd vm run` of the guest, never snapshotted;
#   2. `forkd snapshot`: the parent must be paused mid-computation (its
#      console stops at the "warm" line; `progress` in memory.bin lies
#      between the iterations done before the doorbell and the total);
#   3. `forkd fork -n 50 --wait`: every child exits 0 and its console is
#      byte for byte the reference's output after the "warm" line.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
# SNAP_FIDELITY_CHILDREN overrides the number of children (default 50),
# SNAP_FIDELITY_ITERS the iterations (default 200000000, on the guest's
# command line; tests/vmm/run.sh lowers both in the KVM lab).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

n=${SNAP_FIDELITY_CHILDREN:-50}
iters=${SNAP_FIDELITY_ITERS:-200000000}
tag=fidelity$$
workdir=$WORK/fork

# 1. The unsnapshotted reference.
rc=0
bounded 150 "$FORKD" vm run --kernel "$GUEST" --cmdline "iters=$iters" --console "$WORK/reference.log" \
	--timeout-secs "$(scaled 120)" >"$WORK/reference.stderr" 2>&1 || rc=$?
((rc == 0)) || { cat "$WORK/reference.log" "$WORK/reference.stderr"; fail "reference run exited $rc"; }
grep -qx SUCCESS "$WORK/reference.log" || fail "reference run: no SUCCESS"
warm=$(grep -n '^snap_fidelity: warm: ' "$WORK/reference.log" | cut -d: -f1)
[[ -n $warm ]] || fail "reference run: no warm line"
tail -n +"$((warm + 1))" "$WORK/reference.log" >"$WORK/expected.log"
ok "reference run (never snapshotted) passed; $(wc -l <"$WORK/expected.log") lines follow the warm line"
sed 's/^/    | /' "$WORK/expected.log"

# 2. The snapshot, taken in the middle of the computation.
snap_take "$tag" --cmdline "iters=$iters"
last=$(tail -n 1 "$WORK/$tag.parent.log")
[[ $last == "snap_fidelity: warm: "* ]] ||
	fail "the parent printed past the warm line before it was paused: '$last'"
read -r done_iters total_iters < <(sed -n 's/^snap_fidelity: warm: \([0-9]*\) of \([0-9]*\) .*/\1 \2/p' \
	"$WORK/$tag.parent.log")
ok "parent paused mid-computation: its console ends at the warm line ($done_iters of $total_iters iterations done before the doorbell)"
head -n "$warm" "$WORK/reference.log" | cmp -s - "$WORK/$tag.parent.log" ||
	fail "the parent's console up to the warm line differs from the reference run's"
ok "the parent's console up to the warm line equals the reference run's"
if command -v nm >/dev/null; then
	addr=$(nm "$GUEST" | awk '$3 == "progress" { print $1 }')
	# The guest is loaded at its link address, so a symbol's address is its
	# offset in memory.bin.
	progress=$(od -A n -t u8 -j "$((16#$addr))" -N 8 "$FORKD_HOME/snapshots/$tag/memory.bin" | tr -d ' ')
	((progress >= done_iters && progress < total_iters)) ||
		fail "snapshot's progress counter is $progress, not in [$done_iters, $total_iters)"
	if ((progress > done_iters)); then
		ok "the snapshot caught the CPL3 loop at iteration $progress of $total_iters"
	else
		ok "the snapshot was taken between the doorbell and the loop's next iteration ($progress)"
	fi
else
	echo "note: nm not found; not reading the progress counter from memory.bin"
fi

# 3. N children, each must print exactly the reference's remainder.
rc=0
t0=$(date +%s.%N)
bounded 600 "$FORKD" fork --tag "$tag" -n "$n" --wait --timeout-secs "$(scaled 400)" --keep-workdir \
	--workdir "$workdir" >"$WORK/fork.log" 2>&1 || rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
grep -v '^fork: child [0-9]* exit status 0$' "$WORK/fork.log" | sed 's/^/    | /'
((rc == 0)) || fail "forkd fork exited with status $rc"
check_children_exit "$n" "$WORK/fork.log"
ok "$n children exited 0 (all done in $secs s)"
for ((i = 0; i < n; i++)); do
	log=$workdir/child-$i/console.log
	if ! cmp -s "$WORK/expected.log" "$log"; then
		diff -u "$WORK/expected.log" "$log" | head -n 20 || true
		fail "child $i's console differs from the unsnapshotted run's"
	fi
done
ok "all $n child consoles equal the unsnapshotted run's output after the warm line"
ok "registers incl. x87/SSE, MXCSR/FCW in force, PIT and LAPIC timer ticks after restore"
