#!/usr/bin/env bash
# Unit test runner: runs each cmocka test binary given on the command line,
# shows its output, and totals the tests of all binaries.
#
#   tests/run-unit.sh build/tests/unit/test_memory build/tests/unit/test_bus ...
#
# Test counts come from cmocka's summary lines ("[  PASSED  ] N test(s).",
# "[  FAILED  ] N test(s), listed below:", "[  SKIPPED ] ..."). A binary that
# dies, times out or exits non-zero without reporting a failed test counts
# as one failed test; one that exits 77 counts as one skipped.
# Ends with "N passed, N failed, N skipped"; exits 1 when anything failed.
set -u

limit=${FORKD_UNIT_TIMEOUT:-300}
passed=0 failed=0 skipped=0

# The count cmocka printed on the summary line starting with $1, or 0.
count() {
	local tag=$1 file=$2
	sed -n "s/^\[  $tag  *\] \([0-9][0-9]*\) test(s).*/\1/p" "$file" | tail -n 1 | grep . || echo 0
}

out=$(mktemp "${TMPDIR:-/tmp}/forkd-unit.XXXXXX")
trap 'rm -f "$out"' EXIT

for bin in "$@"; do
	name=$(basename "$bin")
	echo "=== $name"
	if [[ ! -x $bin ]]; then
		echo "FAIL $name: not an executable file"
		failed=$((failed + 1))
		continue
	fi
	timeout -k 5 "$limit" "$bin" >"$out" 2>&1
	rc=$?
	cat "$out"
	p=$(count PASSED "$out")
	f=$(count FAILED "$out")
	s=$(count SKIPPED "$out")
	if ((rc == 77 && p + f + s == 0)); then
		s=1
	elif ((rc != 0 && f == 0)); then
		case $rc in
		124 | 137) echo "FAIL $name: timed out after $limit s" ;;
		*) echo "FAIL $name: exited with status $rc" ;;
		esac
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
done

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
