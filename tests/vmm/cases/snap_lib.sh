# shellcheck shell=bash
# Helpers for the snapshot/fork case scripts (tests/vmm/cases/snap_*.sh);
# sourced, never run on its own (there is no snap_lib guest).
#
# After sourcing: FORKD, GUEST, WORK are checked (tests/vmm/run.sh sets
# them), FORKD_HOME is a private temporary directory, and an EXIT trap
# stops whatever `bounded` started and removes FORKD_HOME. WORK itself is
# left to run.sh (removed after a pass, kept after a failure).

set -euo pipefail

if [[ ! -c /dev/kvm || ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "skip: /dev/kvm is not available"
	exit 77
fi
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

FORKD_HOME=$(mktemp -d "${TMPDIR:-/tmp}/forkd-snap-home.XXXXXX")
export FORKD_HOME
_snap_bg=""

_snap_cleanup() {
	local rc=$?
	if [[ -n $_snap_bg ]] && kill -0 "$_snap_bg" 2>/dev/null; then
		# timeout(1) forwards the signal to its whole process group.
		kill -TERM "$_snap_bg" 2>/dev/null || true
		wait "$_snap_bg" 2>/dev/null || true
	fi
	rm -rf "$FORKD_HOME"
	exit "$rc"
}
trap _snap_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

fail() {
	echo "FAIL: $*"
	exit 1
}

ok() {
	echo "ok: $*"
}

# bounded SECS CMD...: run CMD under timeout(1) in the background and wait
# for it, so a TERM to this script reaches the trap at once. Returns CMD's
# status (124 when it ran out of time).
bounded() {
	local secs=$(($1 * ${FORKD_TEST_TIME_SCALE:-1})) rc=0
	shift
	timeout -k 5 "$secs" "$@" &
	_snap_bg=$!
	wait "$_snap_bg" || rc=$?
	_snap_bg=""
	return "$rc"
}

# bounded_start SECS CMD...: as bounded, but return at once; the pid is in
# $_snap_bg (stopped by the EXIT trap if still running).
bounded_start() {
	local secs=$(($1 * ${FORKD_TEST_TIME_SCALE:-1}))
	shift
	timeout -k 5 "$secs" "$@" &
	_snap_bg=$!
}

# snap_take TAG [snapshot options]: take snapshot TAG of $GUEST, console in
# $WORK/TAG.parent.log; fails the test if it does not work.
snap_take() {
	local tag=$1 rc=0
	shift
	bounded 150 "$FORKD" snapshot --tag "$tag" --kernel "$GUEST" \
		--console "$WORK/$tag.parent.log" --timeout-secs "$(scaled 120)" "$@" \
		>"$WORK/$tag.snapshot.log" 2>&1 || rc=$?
	if ((rc != 0)); then
		cat "$WORK/$tag.snapshot.log" "$WORK/$tag.parent.log" 2>/dev/null || true
		fail "forkd snapshot --tag $tag exited with status $rc"
	fi
	[[ -s $FORKD_HOME/snapshots/$tag/memory.bin ]] || fail "snapshot $tag has no memory.bin"
	echo "snapshot $tag: $(grep '^snapshot ' "$WORK/$tag.snapshot.log")"
}

# check_children_exit N FORKLOG: every child 0..N-1 reported exit status 0.
check_children_exit() {
	local n=$1 log=$2 good
	good=$(grep -c '^fork: child [0-9]* exit status 0$' "$log" || true)
	if ((good != n)); then
		grep '^fork: child' "$log" | grep -v 'exit status 0$' | head -n 5 || true
		fail "$good of $n children exited with status 0"
	fi
}

# no_leftovers TAG WORKDIR: no process still runs `forkd fork --tag TAG`
# and WORKDIR is gone.
no_leftovers() {
	local tag=$1 dir=$2 left
	left=$(pgrep -f -- "fork --tag $tag( |$)" || true)
	[[ -z $left ]] || fail "processes left behind for tag $tag: $left"
	[[ ! -e $dir ]] || fail "work directory $dir left behind"
}
