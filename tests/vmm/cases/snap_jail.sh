#!/usr/bin/env bash
# snap_jail: `forkd snapshot` boots its VM in a child process jailed like a
# fork's children (tests/guests/snap_jail.c never gets warm, so the boot
# runs until --timeout-secs while the case looks at that process):
#   1. jailed by default: /proc/<VMM>/status shows Seccomp 2 (filter),
#      NoNewPrivs 1, no capability in the effective and bounding sets, the
#      jail's uid (FORKD_JAIL_UID, set here); its mount and network
#      namespaces are not ours; the timeout is reported and nothing is left
#      in the store;
#   2. --no-seccomp: Seccomp 0, uid 0, our mount namespace (and a warning).
# A jailed snapshot that succeeds is every other snapshot of the suite.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"
snap_vmm_status() { # LOG FIELD: the field of the snapshot VMM's /proc status
	local sp vmm t
	"$FORKD" snapshot --tag "jailsnap$1" --kernel "$GUEST" --mem-mib 16 \
		--timeout-secs "$(scaled 5)" --console "$WORK/jailsnap$1.console" "${@:2}" \
		>"$WORK/jailsnap$1.log" 2>&1 &
	sp=$!
	for ((t = 0; t < 100; t++)); do
		vmm=$(pgrep -P "$sp" | head -n 1 || true)
		[[ -n $vmm ]] && grep -q '^Seccomp:' "/proc/$vmm/status" 2>/dev/null && break
		sleep 0.05
	done
	sleep 0.5 # past its setup: the jail comes before the VM starts
	[[ -n $vmm ]] && sed -n 's/^\(Seccomp\|NoNewPrivs\|CapEff\|CapBnd\|Uid\):[[:space:]]*/\1 /p' \
		"/proc/$vmm/status" >"$WORK/jailsnap$1.status"
	for ns in mnt net; do
		[[ -n $vmm ]] && [[ $(readlink "/proc/$vmm/ns/$ns") == "$(readlink "/proc/self/ns/$ns")" ]] &&
			echo "$ns ours" >>"$WORK/jailsnap$1.status"
	done
	wait "$sp" && fail "snapshot $1 got warm without its marker"
	[[ -n $vmm ]] || fail "snapshot $1: no VMM child seen"
}
export FORKD_JAIL_UID=$((4100000 + $$))
snap_vmm_status 0
grep -qx 'Seccomp 2' "$WORK/jailsnap0.status" && grep -qx 'NoNewPrivs 1' "$WORK/jailsnap0.status" &&
	grep -qx 'CapEff 0000000000000000' "$WORK/jailsnap0.status" &&
	grep -qx 'CapBnd 0000000000000000' "$WORK/jailsnap0.status" &&
	grep -qP "^Uid ($FORKD_JAIL_UID\s+){3}$FORKD_JAIL_UID\$" "$WORK/jailsnap0.status" &&
	! grep -q ours "$WORK/jailsnap0.status" ||
	fail "snapshot's VMM not jailed: $(cat "$WORK/jailsnap0.status")"
grep -q "no warm signal from the guest within" "$WORK/jailsnap0.log" ||
	fail "snapshot: no timeout message: $(tail -n 3 "$WORK/jailsnap0.log")"
[[ -z $(ls -A "$FORKD_HOME/snapshots" 2>/dev/null) ]] ||
	fail "a failed snapshot left $(ls -A "$FORKD_HOME/snapshots")"
snap_vmm_status 1 --no-seccomp
grep -qx 'Seccomp 0' "$WORK/jailsnap1.status" && grep -qP '^Uid (0\s+){3}0$' "$WORK/jailsnap1.status" &&
	grep -qx 'mnt ours' "$WORK/jailsnap1.status" || fail "snapshot --no-seccomp: $(cat "$WORK/jailsnap1.status")"
grep -q 'warning: --no-seccomp' "$WORK/jailsnap1.log" || fail "snapshot --no-seccomp: no warning"
ok "snapshot: the booting VMM is jailed (Seccomp 2, no capabilities, uid $FORKD_JAIL_UID, own mount and network namespaces), not with --no-seccomp; a timeout leaves nothing"
echo SUCCESS
