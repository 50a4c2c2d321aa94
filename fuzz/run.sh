#!/usr/bin/env bash
# Run the fuzz harnesses (fuzz/fuzz_*.c, built by `make fuzz-bins`).
#
#   fuzz/run.sh check BIN...       each on its seed corpus, then FUZZ_RUNS
#                                  inputs from seed 1 (default 300000; 40000
#                                  for mmio, 100000 for restore): the same
#                                  run every time (make check)
#   fuzz/run.sh time SECS BIN...   each for SECS seconds; new inputs are kept
#                                  in build-fuzz/corpus/NAME (make fuzz)
#
# Prints each harness's executions and ends with "N passed, N failed";
# a crash leaves its input in build-fuzz/crashes/ and fails.
set -u
mode=$1
shift
secs=0
if [[ $mode == time ]]; then
	secs=$1
	shift
fi
here=$(cd "$(dirname "$0")" && pwd)
out=$here/../build-fuzz
mkdir -p "$out/crashes"
passed=0 failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	name=${name#fuzz_}
	seeds=$here/corpus/$name
	work=$out/corpus/$name
	mkdir -p "$work"
	if [[ $mode == check ]]; then
		# The harnesses that drive whole devices run ~100x slower per
		# input than the parsers: fewer inputs keep make check's time.
		case $name in
		mmio) runs=${FUZZ_RUNS:-40000} ;;
		restore) runs=${FUZZ_RUNS:-100000} ;;
		*) runs=${FUZZ_RUNS:-300000} ;;
		esac
		args=(-seed=1 -runs="$runs" "$work" "$seeds")
		rm -rf "${work:?}"/*
	else
		args=(-max_total_time="$secs" "$work" "$seeds")
	fi
	t0=$(date +%s)
	if "$bin" -artifact_prefix="$out/crashes/$name-" -print_final_stats=1 "${args[@]}" \
		>"$out/$name.log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log")
		echo "PASS fuzz $name: ${execs:-?} inputs in $(($(date +%s) - t0)) s"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz $name (log: $out/$name.log):"
		grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$out/$name.log" | head -n 8 | sed 's/^/    | /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed, 0 skipped"
((failed == 0))
