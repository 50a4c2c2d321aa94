#!/usr/bin/env bash
# The CPUID policy under both host kinds: forced KVM-PVM policy and forced
# ordinary-KVM policy (FORKD_PVM overrides detection).
set -euo pipefail
for mode in pvm native; do
	[[ $mode == pvm ]] && flag=1 || flag=0
	rc=0
	FORKD_PVM=$flag timeout "$(scaled 60)" "$FORKD" vm run --kernel "$GUEST" --no-rng \
		--cmdline "expect-$mode" --console "$WORK/console-$mode.log" \
		--timeout-secs "$(scaled 50)" 2>"$WORK/vmm-$mode.err" || rc=$?
	cat "$WORK/console-$mode.log"
	if ((rc != 0)) || ! grep -qx SUCCESS "$WORK/console-$mode.log"; then
		echo "cpuid_policy: $mode policy: exit $rc"
		cat "$WORK/vmm-$mode.err"
		exit 1
	fi
	echo "cpuid_policy: $mode policy ok"
done
