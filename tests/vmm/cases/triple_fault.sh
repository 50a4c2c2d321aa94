#!/usr/bin/env bash
# triple_fault: the guest loads an empty IDT and raises #UD
# (tests/guests/triple_fault.c). forkd must stop with status 2 and say the
# guest shut down; the guest must not get past the fault.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
set -euo pipefail

[[ -c /dev/kvm ]] || { echo "skip: no /dev/kvm"; exit 77; }
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

rc=0
timeout "$(scaled 90)" "$FORKD" vm run --kernel "$GUEST" --console "$WORK/console.log" \
	--timeout-secs "$(scaled 60)" 2>"$WORK/stderr.log" || rc=$?
cat "$WORK/console.log"
cat "$WORK/stderr.log"
((rc == 2)) || { echo "FAIL: forkd exited with status $rc, expected 2 (guest crashed)"; exit 1; }
grep -q "triple fault" "$WORK/stderr.log" || { echo "FAIL: forkd did not report a triple fault"; exit 1; }
grep -q "loading an empty IDT" "$WORK/console.log" || { echo "FAIL: the guest never ran"; exit 1; }
if grep -q "still running" "$WORK/console.log"; then
	echo "FAIL: the guest survived the fault"
	exit 1
fi
echo "ok: exit status 2, triple fault reported"
