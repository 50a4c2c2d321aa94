#!/usr/bin/env bash
# The end-to-end suite: Debian's kernel in forkd's VMM with every device
# (linux_boot.sh), then snapshotted after user space is up and forked
# (linux_fork.sh), and the guest image with its agent: built, booted warm,
# snapshotted, forked into 3 children in their own network namespaces, then
# driven through the daemon and the Python SDK (image_fork.sh). Slow on
# KVM-PVM hosts, where the guest kernel is emulated. FORKD_E2E_TESTS picks
# some ("linux_boot image_fork"). Ends with the summed "N passed, N failed"
# line.
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
build=${1:-$dir/../../build}
p=0 f=0 s=0 rc=0
for t in ${FORKD_E2E_TESTS:-linux_boot linux_fork image_fork image_sdk image_clients}; do
    start=$(date +%s)
    out=$(mktemp)
    "$dir/$t.sh" "$build" 2>&1 | tee "$out"
    trc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    rm -f "$out"
    if [[ -n $line ]]; then
        read -r a _ b _ c _ <<<"${line//,/}"
        p=$((p + a)) f=$((f + b)) s=$((s + ${c:-0}))
    elif ((trc != 0)); then
        f=$((f + 1))
    fi
    ((trc != 0)) && rc=1
    echo "e2e: $t took $(($(date +%s) - start)) s (exit $trc)"
done
echo "$p passed, $f failed, $s skipped"
exit $rc
