#!/usr/bin/env bash
# The whole test suite, as CI runs it (`make check`):
#   1. format check
#   2. unit tests (cmocka, no KVM)
#   3. VMM tests: freestanding test guests on real KVM
#   4. the same unit + VMM tests under ASan/UBSan
#   5. end-to-end: Debian's kernel boots to userspace (slow on KVM-PVM)
# Each suite prints its own "N passed, N failed"; this script adds them up
# and ends with the total on one line.
set -uo pipefail
cd "$(dirname "$0")/.."

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

run_suite format make -s format-check
run_suite build make -s all guests
run_suite unit make -s test-unit
run_suite vmm make -s test-vmm
run_suite sanitizers make -s SANITIZE=1 test-unit test-vmm
run_suite agent make -s test-agent
run_suite daemon make -s test-daemon
run_suite daemon-sanitizers make -s SANITIZE=1 test-daemon
if [[ ${FORKD_SKIP_E2E:-0} == 1 ]]; then
	echo "=== suite: e2e skipped (FORKD_SKIP_E2E=1)"
else
	run_suite e2e make -s test-e2e
fi

if ((${#failed_suites[@]})); then
	echo "failed suites: ${failed_suites[*]}"
fi
echo "${total_pass} passed, ${total_fail} failed, ${total_skip} skipped"
((total_fail == 0 && ${#failed_suites[@]} == 0))
