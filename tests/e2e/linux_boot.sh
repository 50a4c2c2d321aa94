#!/usr/bin/env bash
# forkd end-to-end test: boot Debian 12's kernel with a test initramfs
# under build/forkd and check console, virtio-blk (with copy-on-write),
# virtio-net (tap), virtio-vsock (both directions), virtio-rng and a clean
# power-off.  See tests/e2e/README.md.
#
# Needs root and /dev/kvm (exit 77 = skipped otherwise).  Slow on KVM-PVM hosts:
# the guest kernel's code is emulated there.
#
# Environment:
#   FORKD_BIN               VMM binary (default: build/forkd)
#   FORKD_E2E_KERNEL        vmlinuz (default) or vmlinux (skips the decompressor)
#   FORKD_E2E_CMDLINE_EXTRA appended to the kernel command line
#   FORKD_E2E_TIMEOUT       VMM --timeout-secs (default 2400)
#   FORKD_E2E_TAP           tap name (default forkdt0)
#   FORKD_E2E_KEEP=1        keep the temporary directory
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
FORKD_BIN=${FORKD_BIN:-$REPO/build/forkd}
TAP=${FORKD_E2E_TAP:-forkdt0}
TIMEOUT=${FORKD_E2E_TIMEOUT:-2400}
KERNEL_KIND=${FORKD_E2E_KERNEL:-vmlinuz}
HOST_IP=10.42.0.1
MAGIC=FORKD-DISK-MAGIC

t_start=$(date +%s)
log() { echo "linux_boot: $*"; }
die() { echo "linux_boot: error: $*" >&2; exit 1; }
skip() { echo "linux_boot: SKIP: $*"; exit 77; }

# --- preconditions -----------------------------------------------------------
[[ $(id -u) == 0 ]] || skip "needs root (tap device, /dev/kvm)"
[[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] || skip "/dev/kvm is missing or not accessible"
[[ -c /dev/net/tun ]] || skip "/dev/net/tun is missing (needed for the tap device)"
missing=()
for t in ip python3 sha256sum truncate dd; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/setup.sh)"
[[ -x $FORKD_BIN ]] || die "$FORKD_BIN not found or not executable (build it first: make)"
case $KERNEL_KIND in vmlinuz|vmlinux) ;; *) die "FORKD_E2E_KERNEL must be vmlinuz or vmlinux" ;; esac

# --- temp dir, tap, cleanup ----------------------------------------------------
work=$(mktemp -d /tmp/forkd-e2e.XXXXXX)
tap_made=0
failed=1
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    local rc=$?
    if ((tap_made)); then
        ip link del "$TAP" 2>/dev/null || true
    fi
    if ((failed)) && [[ -s $work/console.log ]]; then
        echo "----- last 40 console lines ($work/console.log) -----"
        tail -n 40 "$work/console.log" | tr -d '\r' || true
        echo "-----"
    fi
    if [[ ${FORKD_E2E_KEEP:-0} == 1 ]]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
    log "total wall time $(($(date +%s) - t_start)) s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- kernel and initramfs ------------------------------------------------------
t=$(date +%s)
kinfo=$("$REPO/guest/kernel/fetch-kernel.sh") || die "guest/kernel/fetch-kernel.sh failed"
log "fetch-kernel.sh took $(($(date +%s) - t)) s"
kernel=$(sed -n "s/^$KERNEL_KIND=//p" <<<"$kinfo")
[[ -n $kernel && -f $kernel ]] || die "fetch-kernel.sh gave no $KERNEL_KIND"
kconfig=$(sed -n 's/^config=//p' <<<"$kinfo")

t=$(date +%s)
"$SCRIPT_DIR/build-initramfs.sh" "$work/initramfs.cpio" >/dev/null ||
    die "tests/e2e/build-initramfs.sh failed"
log "build-initramfs.sh took $(($(date +%s) - t)) s"

# --- disk image --------------------------------------------------------------------
disk=$work/disk.img
truncate -s 64M "$disk"
printf '%s' "$MAGIC" | dd of="$disk" conv=notrunc status=none
disk_sha=$(sha256sum "$disk" | cut -d' ' -f1)
log "disk image $disk (64 MiB) sha256 $disk_sha"

# --- tap -------------------------------------------------------------------------------
if ip link show "$TAP" >/dev/null 2>&1; then
    log "removing stale $TAP"
    ip link del "$TAP"
fi
ip tuntap add dev "$TAP" mode tap || die "cannot create tap $TAP"
tap_made=1
ip addr add "$HOST_IP/24" dev "$TAP"
ip link set "$TAP" up
# The host's replies to the guest (10.42.0.2) must leave through this tap.
# Another interface holding 10.42.0.0/24 takes them instead: the guest's
# ping then reaches the host and is answered into that other interface.
via=$(ip route get 10.42.0.2 | sed -n 's/.* dev \([^ ]*\).*/\1/p')
[[ $via == "$TAP" ]] ||
    die "10.42.0.2 is routed through $via, not $TAP: another interface holds 10.42.0.0/24 ($(ip -br addr show to 10.42.0.0/24 | tr -s ' ' | tr '\n' ';')); remove it (ip link del $via) and run again"

# --- kernel command line -------------------------------------------------------------
# lpj: loops per jiffy for a TSC delay loop = TSC Hz / CONFIG_HZ; presetting it
# skips the delay-loop calibration, which is very slow when emulated.
hz=$(sed -n 's/^CONFIG_HZ=//p' "$kconfig")
mhz=$(awk -F: '/^cpu MHz/ { printf "%d", $2; exit }' /proc/cpuinfo)
lpj=""
if [[ -n $hz && -n $mhz && $mhz -gt 0 ]]; then
    lpj="lpj=$((mhz * 1000000 / hz))"
fi
# The init powers off with "poweroff -f" (ACPI S5: forkd exits 0); reboot=t
# panic=-1 turn a kernel panic into a triple fault (forkd exits 2), so the
# two can never be confused.
# Boot speed: the guest kernel runs emulated on KVM-PVM, so work it would do
# in microseconds takes seconds. These switch off guest-internal hardening
# and boot-time self-checks (zeroing every allocated page, crypto self-tests,
# PTI/retpolines, the W+X page-table walk, page shuffling, the soft-lockup
# watchdog, RCU stall dumps) and IPv6, which the test does not use. What the
# test checks is unchanged.
fast=$(cat "$REPO/guest/kernel/fast-boot.cmdline") # see guest/kernel/fast-boot.md
cmdline="console=ttyS0 reboot=t panic=-1 nokaslr i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd $lpj tsc=reliable $fast"
# The KVM-PVM crash workarounds below (and init.sh's re-run) apply only on
# KVM-PVM hosts; anywhere else (the KVM lab included) a crash is a failure.
# init.sh gets the flag as an environment variable (an unknown key=value
# on the kernel command line).
pvm=0
[[ -d /sys/module/kvm_pvm ]] && pvm=1
cmdline+=" forkd_e2e_pvm=$pvm"
cmdline+=${FORKD_E2E_CMDLINE_EXTRA:+ $FORKD_E2E_CMDLINE_EXTRA}

# --- run ---------------------------------------------------------------------------------
log "booting $kernel (this takes minutes on KVM-PVM hosts)"
log "cmdline: $cmdline"
results=$work/results
# With tcpdump installed, what crossed the tap is kept for the net diagnosis.
tcpdump_pid=""
if command -v tcpdump >/dev/null; then
    tcpdump -i "$TAP" -nn -e -l -c 200 >"$work/tap.txt" 2>/dev/null &
    tcpdump_pid=$!
fi
init_retried=0
for attempt in 1 2; do
    python3 "$SCRIPT_DIR/e2e_host.py" --console "$work/console.log" --vsock "$work/vsock.sock" \
        --results "$results" --deadline $((TIMEOUT + 120)) -- \
        "$FORKD_BIN" vm run --kernel "$kernel" --initrd "$work/initramfs.cpio" \
        --cmdline "$cmdline" --mem-mib 256 --vcpus 2 --disk "$disk" --tap "$TAP" \
        --vsock "$work/vsock.sock" --console "$work/console.log" --timeout-secs "$TIMEOUT" ||
        die "e2e_host.py failed"
    [[ -f $results ]] || die "no results from e2e_host.py"
    # The known KVM-PVM crash (a fresh process's first TLS access reads 0;
    # docs/ARCHITECTURE.md) can hit PID 1 itself, which panics the guest
    # before any check runs. Boot once more, and say so in the summary; a
    # second such death fails as usual.
    if ((attempt == 1 && pvm)) && grep -q 'Attempted to kill init! exitcode=0x0000000b' "$work/console.log"; then
        log "PID 1 died of SIGSEGV (the known KVM-PVM crash): booting once more"
        mv "$work/console.log" "$work/console.attempt1.log"
        rm -f "$results" "$work"/vsock.sock*
        init_retried=1
        continue
    fi
    break
done
[[ -n $tcpdump_pid ]] && { kill "$tcpdump_pid" 2>/dev/null; wait "$tcpdump_pid" 2>/dev/null || true; }

# --- verdict -------------------------------------------------------------------------------
pass=0
fail=0
skip=0
report() { # name ok|FAIL|SKIP detail
    case $2 in
        ok) pass=$((pass + 1)) ;;
        SKIP) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)) ;;
    esac
    printf '  %-5s %-16s %s\n' "$2" "$1" "$3"
}
# Report the first results line "<kind> <name> ok|FAIL [detail]" for a check.
check_from_results() { # kind name
    local line verdict detail=""
    line=$(grep -m1 "^$1 $2 " "$results" || true)
    if [[ -z $line ]]; then
        report "$2" FAIL "no result (no FORKD-E2E marker on the console)"
        return
    fi
    line=${line#"$1 $2 "}
    verdict=${line%% *}
    [[ $line == *' '* ]] && detail=${line#* }
    report "$2" "$verdict" "$detail"
}
# Kernel boot stages, read from the console.
check_console() { # name pattern
    local line
    line=$(grep -m1 -F "$2" "$work/console.log" || true)
    if [[ -n $line ]]; then
        report "$1" ok "${line:0:100}"
    else
        report "$1" FAIL "console never showed '$2'"
    fi
}

echo "results:"
check_console kernel-start "Linux version"
check_console acpi "ACPI: 1 ACPI AML tables successfully acquired and loaded"
check_console smp "smp: Brought up 1 node, 2 CPUs"
check_console console "ttyS0 at I/O 0x3f8"
check_console run-init "Run /init as init process"

status=$(sed -n 's/^exit_status //p' "$results")
userspace_checks=(modules blk blk-write net vsock vsock-listen rng "done")
# On KVM-PVM hosts user space depends on forkd completing SYSCALL for the
# guest (src/vmm/pvm_syscall.c); every check below runs there too.
if [[ $status == 0 ]]; then
    report vmm-exit ok "status 0 (clean power-off)"
else
    report vmm-exit FAIL "status $status"
fi
for c in "${userspace_checks[@]}"; do
    # A net failure shows the guest's counters and what crossed the tap.
    if [[ $c == net ]] && grep -q '^guest net FAIL' "$results"; then
        grep 'net diagnosis' "$work/console.log" | sed 's/^/        /'
        [[ -s $work/tap.txt ]] && sed 's/^/        tap: /' "$work/tap.txt" | grep -v -i ipv6 | head -n 30
    fi
    check_from_results guest "$c"
done
# The known KVM-PVM user-space crash (init.sh re-runs a command it killed):
# visible in the summary, never silent.
if ((init_retried)); then
    report init-crash SKIP "XFAIL known problem: the first boot's PID 1 died of SIGSEGV (issue 2); booted again"
fi
crashes=$(grep -c ': segfault at ' "$work/console.log" || true)
if ((crashes > 0 && !pvm)); then
    report user-crash FAIL "$crashes process(es) segfaulted; on a host with hardware-assisted KVM that is a bug: $(grep -m1 ': segfault at ' "$work/console.log")"
elif ((crashes > 0)); then
    report user-crash SKIP "XFAIL known problem: $crashes exec'd process(es) segfaulted on their first TLS access (issue 2); init.sh re-ran the command"
fi
stats=/sys/class/net/$TAP/statistics
echo "        (host tap $TAP: $(cat "$stats/rx_packets") frames from the guest," \
    "$(cat "$stats/tx_packets") to it)"
check_from_results check vsock-g2h-host
check_from_results check vsock-h2g-host
now_sha=$(sha256sum "$disk" | cut -d' ' -f1)
if [[ $now_sha == "$disk_sha" ]]; then
    report disk-unchanged ok "base image sha256 unchanged"
else
    report disk-unchanged FAIL "base image changed: $now_sha"
fi

echo "$pass passed, $fail failed, $skip skipped"
if ((fail == 0)); then
    failed=0
    exit 0
fi
exit 1
