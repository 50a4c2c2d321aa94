#!/usr/bin/env bash
# emulation_fail: `lock cmpxchg16b` at CPL0 (tests/guests/emulation_fail.c).
# On a KVM-PVM host (/sys/module/kvm_pvm) the CPL0 emulator rejects it:
# forkd must exit with status 3 and name the RIP (the guest's symbol
# emul_fail_insn) and the instruction bytes (f0 48 0f c7 ...). On ordinary
# KVM the instruction runs natively and the guest must print SUCCESS.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
set -euo pipefail

[[ -c /dev/kvm ]] || { echo "skip: no /dev/kvm"; exit 77; }
command -v nm >/dev/null || { echo "skip: nm (binutils) is needed to find the RIP"; exit 77; }
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

sym=$(nm "$GUEST" | awk '$3 == "emul_fail_insn" { print $1 }')
[[ -n $sym ]] || { echo "FAIL: no symbol emul_fail_insn in $GUEST"; exit 1; }
rip=$(printf '0x%x' "$((16#$sym))")

rc=0
timeout "$(scaled 90)" "$FORKD" vm run --kernel "$GUEST" --console "$WORK/console.log" \
	--timeout-secs "$(scaled 60)" 2>"$WORK/stderr.log" || rc=$?
cat "$WORK/console.log"
cat "$WORK/stderr.log"

if [[ -e /sys/module/kvm_pvm ]]; then
	if ((rc == 0)) && grep -qx SUCCESS "$WORK/console.log"; then
		echo "FAIL: lock cmpxchg16b ran at CPL0 on KVM-PVM: the emulator learned it;"
		echo "      revisit the CX16 mask in src/vmm/cpuid.c and pick another instruction here"
		exit 1
	fi
	((rc == 3)) || { echo "FAIL: forkd exited with status $rc, expected 3"; exit 1; }
	grep -q "RIP $rip " "$WORK/stderr.log" ||
		{ echo "FAIL: forkd did not report RIP $rip (emul_fail_insn)"; exit 1; }
	grep -q "instruction bytes: f0 48 0f c7" "$WORK/stderr.log" ||
		{ echo "FAIL: forkd did not print the instruction bytes f0 48 0f c7"; exit 1; }
	echo "ok: KVM-PVM: exit status 3, RIP $rip and the instruction bytes reported"
else
	((rc == 0)) || { echo "FAIL: forkd exited with status $rc, expected 0"; exit 1; }
	grep -qx SUCCESS "$WORK/console.log" || { echo "FAIL: no SUCCESS on the console"; exit 1; }
	echo "ok: not KVM-PVM: the instruction ran natively, SUCCESS"
fi
