#!/usr/bin/env bash
# user_mode: CPL3 entry and exit and a 500M-iteration loop at CPL3
# (tests/guests/user_mode.c). The guest is told whether the host is
# KVM-PVM (forkd.pvm=1) or not (forkd.pvm=0): on ordinary KVM `int $0x80`
# and SYSCALL from CPL3 must behave architecturally; on KVM-PVM their
# measured deviations are accepted and reported.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
set -euo pipefail

[[ -c /dev/kvm ]] || { echo "skip: no /dev/kvm"; exit 77; }
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

pvm=0
[[ -e /sys/module/kvm_pvm ]] && pvm=1
rc=0
timeout "$(scaled 90)" "$FORKD" vm run --kernel "$GUEST" --cmdline "forkd.pvm=$pvm" \
	--console "$WORK/console.log" --timeout-secs "$(scaled 60)" 2>"$WORK/stderr.log" || rc=$?
cat "$WORK/console.log"
cat "$WORK/stderr.log"
((rc == 0)) || { echo "FAIL: forkd exited with status $rc"; exit 1; }
grep -qx SUCCESS "$WORK/console.log" || { echo "FAIL: no SUCCESS on the console"; exit 1; }
echo "ok: forkd.pvm=$pvm, exit status 0, SUCCESS"
