#!/usr/bin/env bash
# A real Linux guest, snapshotted and forked.
#
# Debian's kernel boots in forkd's VMM with the e2e initramfs in fork mode
# (forkd.e2e=fork): once user space is up, /init prints "ready-for-fork" and
# then a heartbeat every 2 s, each from a process it starts then. forkd
# snapshots the guest at that line (--warm-console). Three children are
# forked from the snapshot and left running: each child's console must show
# heartbeats printed after the restore (kernel timestamps later than the
# snapshot's), i.e. user space, the scheduler, fork/exec and timers all
# carry on in every child.
#
# Needs root and /dev/kvm (exit 77 otherwise). Prints each stage's time.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BUILD=${1:-$REPO/build}
FORKD_BIN=${FORKD_BIN:-$BUILD/forkd}
MARK="FORKD-E2E: ready-for-fork"
SETTLE=${FORKD_E2E_FORK_SETTLE:-150}

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
"$SCRIPT_DIR/build-initramfs.sh" "$work/initramfs.cpio" >/dev/null ||
    { echo "linux_fork: error: tests/e2e/build-initramfs.sh failed"; exit 1; }
# lpj: skip the delay-loop calibration, slow when the kernel is emulated.
mhz=$(awk -F: '/^cpu MHz/ { printf "%d", $2; exit }' /proc/cpuinfo)
hz=$(sed -n 's/^CONFIG_HZ=//p' "$(sed -n 's/^config=//p' <<<"$kinfo")")
cmdline="console=ttyS0 forkd.e2e=fork reboot=t panic=-1 nokaslr tsc=reliable lpj=$((mhz * 1000000 / ${hz:-250}))"
cmdline="$cmdline $(cat "$REPO/guest/kernel/fast-boot.cmdline")" # see guest/kernel/fast-boot.md
# init.sh re-runs a command killed by SIGSEGV only on KVM-PVM hosts (linux_boot.sh says why).
[[ -d /sys/module/kvm_pvm ]] && cmdline+=" forkd_e2e_pvm=1"

log "booting $kernel until '$MARK'"
"$FORKD_BIN" snapshot --tag lf --kernel "$kernel" --initrd "$work/initramfs.cpio" \
    --cmdline "$cmdline" --mem-mib 256 \
    --vcpus 2 --no-rng --console "$work/parent.log" --warm-console "$MARK" \
    --timeout-secs 2400
last=$(grep -o '^\[ *[0-9.]*\]' "$work/parent.log" | tail -1 | tr -d '[] ')
log "snapshot taken; parent's last kernel timestamp ${last}s"

log "forking 3 children, running them ${SETTLE}s"
"$FORKD_BIN" fork --tag lf -n 3 --settle-secs "$SETTLE" --workdir "$work/run" --keep-workdir

pass=0 fail=0
for i in 0 1 2; do
    f=$work/run/child-$i/console.log
    # Each heartbeat reaches the console twice (tty and kernel log): count
    # the kernel-log copies, which carry the kernel timestamp. The tty echo
    # can interleave with them, so a copy may start mid-line.
    copies=$(grep -o '\[ *[0-9.]*\] FORKD-E2E: heartbeat [0-9]*' "$f" 2>/dev/null || true)
    beats=$(grep -c . <<<"$copies" || true)
    newest=$(grep -o '^\[ *[0-9.]*\]' <<<"$copies" | tail -1 | tr -d '[] ')
    if [[ ${beats:-0} -ge 2 && -n $newest ]] && awk -v a="$newest" -v b="$last" 'BEGIN{exit !(a > b)}'; then
        echo "  ok    child-$i  $beats heartbeats after the restore, kernel time ${last}s -> ${newest}s: $(tail -1 <<<"$copies")"
        pass=$((pass + 1))
    else
        echo "  FAIL  child-$i  $beats heartbeats after the restore (want 2 or more, later than ${last}s)"
        tail -5 "$f" 2>/dev/null | sed 's/^/        /'
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
((fail == 0))
