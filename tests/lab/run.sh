#!/usr/bin/env bash
# The KVM lab itself (scripts/kvm-lab), booted for real: the command's exit
# status comes back (0 and 7), /dev/kvm inside is hardware-assisted KVM
# that forkd can use, a file written under the repository inside is there
# outside afterwards, output streams in order, and the time limit ends a
# hung command with 125 and says so, and so does a lab that stops
# responding. Needs root and QEMU (scripts/setup.sh);
# runs whether or not this host has /dev/kvm. Ends with
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
lab=scripts/kvm-lab
build=${1:-build}
passed=0 failed=0
ok() {
	echo "PASS $*"
	passed=$((passed + 1))
}
bad() {
	echo "FAIL $*"
	failed=$((failed + 1))
}
if [[ -n ${FORKD_IN_LAB:-} ]]; then
	echo "lab tests: already inside a lab, nothing to do" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/forkd-labtest.XXXXXX")
probe=$(mktemp -d "$PWD/.labtest.XXXXXX")
trap 'rm -rf "$out" "$probe"' EXIT

# The lab as the checks below use it, booted once more when it failed as a
# lab (125: its kernel locked up, it stopped answering), as make check does
# with a suite: the lab wedges now and then (docs/ARCHITECTURE.md). Its
# stderr goes to the file named first.
lab_run() {
	local err=$1 rc try
	shift
	for try in 1 2; do
		"$lab" "$@" 2>"$err"
		rc=$?
		((rc == 125 && try == 1)) || return $rc
		echo "note: the lab failed as a lab ($(grep -m1 'lab failure' "$err")); booting it once more"
	done
}

t=$(date +%s)
lab_run "$out/true.err" -- true >"$out/true.out"
rc=$?
if ((rc == 0)) && grep -q '^kvm-lab: lab booted in [0-9.]* s' "$out/true.err"; then
	ok "kvm-lab -- true exits 0 and says how long the lab took to boot ($(grep -o 'booted in [0-9.]* s' "$out/true.err"); $(($(date +%s) - t)) s in all)"
else
	bad "kvm-lab -- true exited $rc"
	tail -n 30 "$out/true.err"
fi

lab_run "$out/seven.err" -q -- sh -c 'exit 7' >/dev/null
rc=$?
((rc == 7)) && ok "kvm-lab -- sh -c 'exit 7' exits 7" || { bad "kvm-lab -- sh -c 'exit 7' exited $rc"; tail -n 30 "$out/seven.err"; }

# One boot for what is checked inside: /dev/kvm, forkd's verdict on it, a
# file written into the repository, stdout and stderr apart and in order.
cat >"$probe/inside.sh" <<'IN'
set -e
[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]
python3 -c 'import fcntl, os; fd = os.open("/dev/kvm", os.O_RDWR); assert fcntl.ioctl(fd, 0xAE00) == 12; vm = fcntl.ioctl(fd, 0xAE01, 0); assert vm >= 0; print("kvm api 12, KVM_CREATE_VM fd", vm)'
"$1/forkd" doctor --json >"$2/doctor.json" || true
for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; done
echo "written inside the lab" >"$2/written"
IN
lab_run "$out/inside.err" -q -- bash "$probe/inside.sh" "$build" "$probe" >"$out/inside.out"
rc=$?
if ((rc == 0)) && grep -q '^kvm api 12, KVM_CREATE_VM fd' "$out/inside.out"; then
	ok "/dev/kvm inside: API 12, KVM_CREATE_VM works"
else
	bad "/dev/kvm inside (exit $rc)"
	cat "$out/inside.out"
	tail -n 30 "$out/inside.err"
fi
if [[ -f $probe/doctor.json ]] && python3 - "$probe/doctor.json" <<'PY'; then
import json, sys
checks = {c["name"]: c for c in json.load(open(sys.argv[1]))["checks"]}
assert checks["kvm"]["status"] == "PASS", checks["kvm"]
assert checks["kvm-pvm"]["status"] == "PASS", checks["kvm-pvm"]
assert "hardware-assisted" in checks["kvm-pvm"]["detail"], checks["kvm-pvm"]
PY
	ok "forkd doctor inside the lab: kvm pass, hardware-assisted (no KVM-PVM)"
else
	bad "forkd doctor inside the lab did not report hardware-assisted KVM: $(cat "$probe/doctor.json" 2>/dev/null)"
fi
if [[ $(cat "$probe/written" 2>/dev/null) == "written inside the lab" ]]; then
	ok "a file written under the repository inside the lab is there outside"
else
	bad "the file written inside the lab is not here ($probe/written)"
fi
if [[ $(cat "$out/inside.out" | grep '^out') == $'out 1\nout 2\nout 3' &&
	$(grep '^err' "$out/inside.err") == $'err 1\nerr 2\nerr 3' ]]; then
	ok "stdout and stderr come back apart and in order"
else
	bad "stdout/stderr: $(tr '\n' '|' <"$out/inside.out") / $(tr '\n' '|' <"$out/inside.err")"
fi

t=$(date +%s)
"$lab" --timeout 45 -- sleep 1000 >/dev/null 2>"$out/limit.err"
rc=$?
secs=$(($(date +%s) - t))
if ((rc == 125)) && grep -q 'lab failure: the time limit of 45 s was reached' "$out/limit.err" &&
	grep -q -- '--- the lab.s console' "$out/limit.err" && ((secs < 100)); then
	ok "a hung command ends at the time limit with 125, the reason and the console tail ($secs s)"
else
	bad "time limit: exit $rc after $secs s"
	tail -n 20 "$out/limit.err"
fi

# A wedged lab (its heartbeat stops; here: stopped by hand) ends as a lab
# failure, with what ran, long before the time limit.
t=$(date +%s)
"$lab" --stall 30 --timeout 300 -- bash -c 'sleep 25; for p in $(pgrep -P 1 -f stage2); do kill -STOP $p; done; sleep 600' \
	>/dev/null 2>"$out/stall.err"
rc=$?
secs=$(($(date +%s) - t))
if ((rc == 125)) && grep -q 'lab failure: the lab stopped responding: no heartbeat for 30 s' "$out/stall.err" &&
	grep -q 'sleep 600' "$out/stall.err" && ((secs < 150)); then
	ok "a lab whose heartbeat stops ends with 125, the reason and its process list ($secs s)"
else
	bad "heartbeat: exit $rc after $secs s"
	tail -n 20 "$out/stall.err"
fi

"$lab" -- >/dev/null 2>"$out/usage.err"
rc=$?
((rc == 2)) && grep -q 'no command' "$out/usage.err" && ok "no command: usage error 2" ||
	bad "no command: exit $rc: $(cat "$out/usage.err")"

echo "$passed passed, $failed failed"
((failed == 0))
