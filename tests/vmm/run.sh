#!/usr/bin/env bash
# VMM test runner: boots every test guest in BUILD_DIR/guests/*.elf under
# BUILD_DIR/forkd and reports one line per guest.
#
#   tests/vmm/run.sh BUILD_DIR
#
# A guest NAME passes by default when `forkd vm run` exits 0 and its
# console has a line "SUCCESS". Extra `vm run` options for it can sit in
# tests/vmm/cases/NAME.args (one line, e.g. "--vcpus 2"). A guest with a
# script tests/vmm/cases/NAME.sh is run by that script instead, with
#   FORKD  the forkd binary     GUEST  the guest's ELF
#   WORK   a fresh directory (console, logs; removed after a pass)
# in its environment; it exits 0 (pass), 77 (skip) or anything else (fail).
# A script with no guest of its name (a host-side test: netns_*, doctor_*,
# cleanup_*) runs the same way with GUEST empty; NAME_lib.sh files are
# helpers that case scripts source, never run on their own.
#
# Environment:
#   FORKD_TEST_FILTER    extended regex: run only guests whose name matches
#   FORKD_TEST_SHARD     K/N: only every N-th of the cases left, from the
#                        K-th (0-based); `make check` splits the suite into
#                        labs this way, so a lab that fails costs one shard
#   FORKD_TEST_TIMEOUT   guest time limit in seconds (default 60 x the scale)
#   FORKD_TEST_TIME_SCALE  multiplies every time limit and settle time of the
#                        cases (default 1; 4 inside the KVM lab, whose CPU is
#                        emulated): case scripts call `scaled N`. Only waits
#                        grow; no check changes.
#   SNAP_FIDELITY_ITERS, SNAP_FIDELITY_CHILDREN  snap_fidelity's workload
#                        (default 200000000 and 50; the lab lowers them)
#   FORKD_TEST_ARGS      extra `vm run` options for every default run
#
# Prints "PASS|FAIL|SKIP name (1.23 s)" per guest, the console tail and the
# VMM's stderr for failures, and ends with "N passed, N failed, N skipped".
# Exit status: 0 when nothing failed, 1 when something did, 77 when KVM is
# unavailable and nothing could run.
set -u

if (($# != 1)); then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$1
forkd=$build/forkd
here=$(cd "$(dirname "$0")" && pwd)
cases=$here/cases
# Workloads and waits sized for the lab (scripts/kvm-lab), where everything
# runs 10-50x slower than on a host with KVM: fewer iterations and children,
# longer limits; every check stays as it is.
if [[ -n ${FORKD_IN_LAB:-} ]]; then
	export FORKD_TEST_TIME_SCALE=${FORKD_TEST_TIME_SCALE:-4}
	export SNAP_FIDELITY_ITERS=${SNAP_FIDELITY_ITERS:-20000000}
	export SNAP_FIDELITY_CHILDREN=${SNAP_FIDELITY_CHILDREN:-10}
	echo "in the KVM lab: time limits x$FORKD_TEST_TIME_SCALE, snap_fidelity $SNAP_FIDELITY_ITERS iterations in $SNAP_FIDELITY_CHILDREN children"
fi
export FORKD_TEST_TIME_SCALE=${FORKD_TEST_TIME_SCALE:-1}
[[ $FORKD_TEST_TIME_SCALE =~ ^[1-9][0-9]*$ ]] || {
	echo "error: FORKD_TEST_TIME_SCALE must be a whole number >= 1" >&2
	exit 2
}
# scaled N: N seconds times the scale, for case scripts.
scaled() { echo $(($1 * FORKD_TEST_TIME_SCALE)); }
export -f scaled
limit=${FORKD_TEST_TIMEOUT:-$(scaled 60)}
# A case script's own bound (it may run guests several times): 300 s, plus
# a minute for each step of the scale.
case_limit=$((300 + 60 * (FORKD_TEST_TIME_SCALE - 1)))
filter=${FORKD_TEST_FILTER:-}
shard_k=0 shard_n=1
if [[ -n ${FORKD_TEST_SHARD:-} ]]; then
	if ! [[ $FORKD_TEST_SHARD =~ ^([0-9]+)/([1-9][0-9]*)$ ]] ||
		((BASH_REMATCH[1] >= BASH_REMATCH[2])); then
		echo "FORKD_TEST_SHARD must be K/N with 0 <= K < N, not '$FORKD_TEST_SHARD'" >&2
		exit 2
	fi
	shard_k=${BASH_REMATCH[1]} shard_n=${BASH_REMATCH[2]}
fi
case_no=0
passed=0 failed=0 skipped=0

summary() {
	echo "$passed passed, $failed failed, $skipped skipped"
}

shopt -s nullglob
guests=("$build"/guests/*.elf)
if ((${#guests[@]} == 0)); then
	echo "error: no test guests in $build/guests (run 'make guests')" >&2
	exit 1
fi
if [[ ! -x $forkd ]]; then
	echo "error: $forkd is missing (run 'make')" >&2
	exit 1
fi

kvm_reason=""
if [[ ! -e /dev/kvm ]]; then
	kvm_reason="/dev/kvm does not exist (no KVM module, or not exposed to this container)"
elif [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	kvm_reason="/dev/kvm ($(stat -c '%A %U:%G' /dev/kvm)) is not readable and writable by $(id -un)"
fi
if [[ -n $kvm_reason ]]; then
	echo "************************************************************"
	echo "SKIP: /dev/kvm not available ($kvm_reason)"
	echo "SKIP: none of the ${#guests[@]} VMM tests ran"
	echo "************************************************************"
	skipped=${#guests[@]}
	summary
	exit 77
fi

now() {
	date +%s.%N
}

# Print the last lines of a file, indented, under a heading.
show_tail() {
	local title=$1 file=$2
	[[ -s $file ]] || return 0
	echo "    --- $title (last 20 lines) ---"
	tail -n 20 "$file" | sed 's/^/    | /'
}

run_default() {
	local name=$1 guest=$2 work=$3 args=()

	if [[ -f $cases/$name.args ]]; then
		read -r -a args <"$cases/$name.args"
	fi
	# shellcheck disable=SC2206 # word splitting of FORKD_TEST_ARGS is intended
	args+=(${FORKD_TEST_ARGS:-})
	timeout -k 5 $((limit + 30)) "$forkd" vm run --kernel "$guest" \
		--console "$work/console.log" --timeout-secs "$limit" "${args[@]}" \
		>"$work/stdout.log" 2>"$work/stderr.log"
	local rc=$?
	if ((rc != 0)); then
		echo "forkd exited with status $rc" >"$work/why"
		return 1
	fi
	if ! grep -qx SUCCESS "$work/console.log"; then
		echo "no SUCCESS line on the console" >"$work/why"
		return 1
	fi
	return 0
}

run_case() {
	local name=$1 guest=$2 work=$3
	# A case script may run the guest several times; give it room.
	FORKD=$forkd GUEST=$guest WORK=$work timeout -k 5 "$case_limit" \
		bash "$cases/$name.sh" >"$work/case.log" 2>&1
	local rc=$?
	((rc == 0 || rc == 77)) || echo "case script exited with status $rc" >"$work/why"
	return $rc
}

hostcases=()
for script in "$cases"/*.sh; do
	name=$(basename "$script" .sh)
	[[ $name == *_lib || -f $build/guests/$name.elf ]] || hostcases+=("host:$name")
done

for guest in "${guests[@]}" "${hostcases[@]}"; do
	name=$(basename "$guest" .elf)
	if [[ $guest == host:* ]]; then
		name=${guest#host:}
		guest=""
	fi
	if [[ -n $filter ]] && ! [[ $name =~ $filter ]]; then
		continue
	fi
	case_no=$((case_no + 1))
	(((case_no - 1) % shard_n == shard_k)) || continue
	work=$(mktemp -d "${TMPDIR:-/tmp}/forkd-vmm-$name.XXXXXX")
	t0=$(now)
	if [[ -f $cases/$name.sh ]]; then
		run_case "$name" "$guest" "$work"
	else
		run_default "$name" "$guest" "$work"
	fi
	rc=$?
	secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
	if ((rc == 0)); then
		echo "PASS $name ($secs s)"
		passed=$((passed + 1))
		rm -rf "$work"
	elif ((rc == 77)) && [[ -f $cases/$name.sh ]]; then
		echo "SKIP $name ($secs s): $(tail -n 1 "$work/case.log")"
		skipped=$((skipped + 1))
		rm -rf "$work"
	else
		echo "FAIL $name ($secs s): $(cat "$work/why" 2>/dev/null)"
		failed=$((failed + 1))
		show_tail "case script output" "$work/case.log"
		show_tail "console" "$work/console.log"
		show_tail "forkd stderr" "$work/stderr.log"
		echo "    (files kept in $work)"
	fi
done

summary
((failed == 0))
