#!/usr/bin/env bash
# A real Linux guest, snapshotted and forked.
#
# Debian's kernel boots in forkd's VMM; when its console shows that both
# vCPUs are up, forkd snapshots it (--warm-console). Three children are then
# forked from the snapshot and left running: each child's kernel must carry
# on where the parent stopped (its console must show boot messages printed
# after the restore, with kernel timestamps later than the snapshot's).
# The snapshot is taken mid-boot because on KVM-PVM hosts Linux user space
# cannot run (see linux_boot.sh); what is checked is that a running Linux
# kernel, SMP and timers included, survives snapshot and fork.
#
# Needs root and /dev/kvm (exit 77 otherwise). Prints each stage's time.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BUILD=${1:-$REPO/build}
FORKD_BIN=${FORKD_BIN:-$BUILD/forkd}
MARK="smp: Brought up 1 node, 2 CPUs"
SETTLE=${FORKD_E2E_FORK_SETTLE:-60}

log() { echo "linux_fork: [$(($(date +%s) - t_start))s] $*"; }
t_start=$(date +%s)
[[ $(id -u) == 0 ]] || { echo "linux_fork: SKIP: needs root"; exit 77; }
[[ -r /dev/kvm && -w /dev/kvm ]] || { echo "linux_fork: SKIP: /dev/kvm not usable"; exit 77; }
[[ -x $FORKD_BIN ]] || { echo "linux_fork: error: $FORKD_BIN missing (run make)"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/forkd-linux-fork.XXXXXX")
cleanup() {
    local rc=$?
    pkill -TERM -f "forkd fork --tag lf" 2>/dev/null || true
    rm -rf "$work"
    log "total wall time $(($(date +%s) - t_start)) s"
    exit "$rc"
}
trap cleanup EXIT
export FORKD_HOME=$work/home

kinfo=$("$REPO/guest/kernel/fetch-kernel.sh")
kernel=$(sed -n 's/^vmlinuz=//p' <<<"$kinfo")
# lpj: skip the delay-loop calibration, slow when the kernel is emulated.
mhz=$(awk -F: '/^cpu MHz/ { printf "%d", $2; exit }' /proc/cpuinfo)
hz=$(sed -n 's/^CONFIG_HZ=//p' "$(sed -n 's/^config=//p' <<<"$kinfo")")
cmdline="console=ttyS0 reboot=t panic=-1 nokaslr tsc=reliable init_on_alloc=0 lpj=$((mhz * 1000000 / ${hz:-250}))"
cmdline="$cmdline cryptomgr.notests mitigations=off nowatchdog rcupdate.rcu_cpu_stall_suppress=1"

log "booting $kernel until '$MARK'"
"$FORKD_BIN" snapshot --tag lf --kernel "$kernel" --cmdline "$cmdline" --mem-mib 256 \
    --vcpus 2 --no-rng --console "$work/parent.log" --warm-console "$MARK" \
    --timeout-secs 900
last=$(grep -o '^\[ *[0-9.]*\]' "$work/parent.log" | tail -1 | tr -d '[] ')
log "snapshot taken; parent's last kernel timestamp ${last}s"

log "forking 3 children, running them ${SETTLE}s"
"$FORKD_BIN" fork --tag lf -n 3 --settle-secs "$SETTLE" --workdir "$work/run" --keep-workdir

pass=0 fail=0
for i in 0 1 2; do
    f=$work/run/child-$i/console.log
    lines=$(grep -c '^\[' "$f" 2>/dev/null || true)
    newest=$(grep -o '^\[ *[0-9.]*\]' "$f" 2>/dev/null | tail -1 | tr -d '[] ')
    if [[ ${lines:-0} -gt 0 ]] && awk -v a="$newest" -v b="$last" 'BEGIN{exit !(a > b)}'; then
        echo "  ok    child-$i  $lines new console lines, kernel time ${last}s -> ${newest}s: $(tail -1 "$f" | cut -c1-70)"
        pass=$((pass + 1))
    else
        echo "  FAIL  child-$i  no kernel activity after the restore ($lines lines)"
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
((fail == 0))
