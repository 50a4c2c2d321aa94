#!/usr/bin/env bash
# The whole test suite, as CI runs it (`make check`):
#   1. format check, build (forkd, test guests, unit tests; plain and ASan/UBSan)
#   2. unit tests (cmocka, no KVM), the fuzz harnesses (fuzz/, fixed inputs),
#      the KVM lab itself (scripts/kvm-lab,
#      booted for real whether or not this host has KVM) and the agent
#      suite (host only)
#   3. VMM tests: freestanding test guests on real KVM
#   4. the same unit + VMM tests under ASan/UBSan
#   5. the daemon (plain and sanitized) and end to end: Debian's kernel and
#      the guest image, snapshotted, forked and driven
# Each suite prints its own "N passed, N failed"; this script adds them up
# and ends with the total on one line.
#
# The suites that need KVM (3-5) run here when /dev/kvm is usable (KVM-PVM
# included: its workarounds are tested there), else inside the lab
# (scripts/kvm-lab: a QEMU VM with nested SVM), after everything that needs
# the network or a compiler was done here. FORKD_LAB=1 forces the lab,
# FORKD_LAB=0 forbids it (the KVM suites then run here, and fail without
# KVM). A lab that fails (exit 125: its kernel panicked, hung past the
# suite's limit...) is booted afresh and the suite run again, at most
# FORKD_LAB_TRIES times in all (default 3). In the lab each e2e test has a
# lab of its own, so a lab that fails costs that test alone.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

total_pass=0 total_fail=0 total_skip=0 failed_suites=()

run_suite() {
	local name=$1 start out rc line
	shift
	start=$(date +%s)
	echo "=== suite: $name"
	out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1 || true)
	rm -f "$out"
	if [[ -n $line ]]; then
		read -r p _ f _ s _ <<<"${line//,/}"
		total_pass=$((total_pass + p))
		total_fail=$((total_fail + f))
		total_skip=$((total_skip + ${s:-0}))
	elif ((rc == 0)); then
		total_pass=$((total_pass + 1))
	else
		total_fail=$((total_fail + 1))
	fi
	if ((rc != 0)); then
		failed_suites+=("$name")
	fi
	echo "=== suite: $name: exit $rc, took $(($(date +%s) - start)) s"
}

# Why KVM here will not do (empty: it will).
native_kvm_problem() {
	if [[ ! -e /dev/kvm ]]; then
		echo "no /dev/kvm"
	elif [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
		echo "/dev/kvm is not usable by $(id -un)"
	fi
}

lab=0
problem=$(native_kvm_problem)
case ${FORKD_LAB:-} in
	1) lab=1 ;;
	0) [[ -z $problem ]] || echo "=== $problem; FORKD_LAB=0: the KVM suites run here anyway" ;;
	"") [[ -z $problem ]] || lab=1 ;;
	*)
		echo "FORKD_LAB must be 0 or 1, not '$FORKD_LAB'" >&2
		exit 2
		;;
esac
[[ -n ${FORKD_IN_LAB:-} ]] && lab=0
if ((lab)); then
	echo "=== ${problem:-FORKD_LAB=1}: the KVM suites run in the lab (scripts/kvm-lab: QEMU with nested SVM, hardware-assisted KVM inside; figures there are emulated)"
fi

# A suite that needs KVM: here, or in a fresh lab (a second one when the
# first failed as a lab). FORKD_LAB_SUITE_TIMEOUT bounds each lab boot.
kvm_suite() {
	((lab)) || {
		"$@"
		return
	}
	local rc try tries=${FORKD_LAB_TRIES:-3}
	for ((try = 1; ; try++)); do
		scripts/kvm-lab --timeout "${FORKD_LAB_SUITE_TIMEOUT:-2400}" -- "$@"
		rc=$?
		((rc == 125 && try < tries)) || return $rc
		echo "=== the lab failed (exit 125, above), not the suite: booting a fresh lab and running the suite again (try $((try + 1)) of $tries)"
	done
}

run_suite format make -s format-check
run_suite build make -s all guests unit-bins
run_suite unit make -s test-unit
# The parsers of untrusted files under libFuzzer (fuzz/): the same fixed
# inputs every run, so a change that makes one crash fails here.
run_suite fuzz make -s fuzz-check
run_suite lab make -s test-lab
run_suite agent make -s test-agent
run_suite install make -s test-install
if ((lab)); then
	# Everything that needs a compiler or the network, before the lab.
	run_suite lab-prepare make -s lab-prepare
fi
if ((lab)); then
	# In the lab the VMM suite is split over FORKD_LAB_SHARDS labs (4), so a
	# lab that wedges costs a quarter of it; the unit tests need no KVM.
	shards=${FORKD_LAB_SHARDS:-4}
	for ((k = 0; k < shards; k++)); do
		run_suite "vmm $((k + 1))/$shards" kvm_suite env FORKD_TEST_SHARD="$k/$shards" make -s test-vmm
	done
	run_suite sanitizers-unit make -s SANITIZE=1 test-unit
	for ((k = 0; k < shards; k++)); do
		run_suite "sanitizers $((k + 1))/$shards" kvm_suite env FORKD_TEST_SHARD="$k/$shards" make -s SANITIZE=1 test-vmm
	done
else
	run_suite vmm kvm_suite make -s test-vmm
	run_suite sanitizers kvm_suite make -s SANITIZE=1 test-unit test-vmm
fi
run_suite daemon kvm_suite make -s test-daemon
run_suite daemon-sanitizers kvm_suite make -s SANITIZE=1 test-daemon
# On KVM-PVM hosts the Linux guests of the e2e suite boot 20-40x slower
# than in the lab (measured: linux_boot 1023 s here, 56 s in the lab), and
# their crash workarounds are what the lab must not need: the e2e suite
# runs in the lab there unless FORKD_LAB=0.
e2e_lab=0
if ((!lab)) && [[ -d /sys/module/kvm_pvm && ${FORKD_LAB:-} != 0 && -z ${FORKD_IN_LAB:-} ]]; then
	e2e_lab=1
fi
if [[ ${FORKD_SKIP_E2E:-0} == 1 ]]; then
	echo "=== suite: e2e skipped (FORKD_SKIP_E2E=1)"
else
	if ((e2e_lab)); then
		echo "=== KVM-PVM host: the e2e suite runs in the lab (FORKD_LAB=0 runs it here)"
		run_suite lab-prepare make -s lab-prepare
		lab=1
	fi
	if ((lab)); then
		for t in ${FORKD_E2E_TESTS:-linux_boot linux_fork image_fork image_sdk image_clients}; do
			run_suite "e2e $t" kvm_suite env FORKD_E2E_TESTS="$t" make -s test-e2e
		done
	else
		run_suite e2e kvm_suite make -s test-e2e
	fi
fi

if ((${#failed_suites[@]})); then
	echo "failed suites: ${failed_suites[*]}"
fi
echo "${total_pass} passed, ${total_fail} failed, ${total_skip} skipped"
((total_fail == 0 && ${#failed_suites[@]} == 0))
