#!/usr/bin/env bash
# isolate_cgroup2: `forkd fork --memory-limit-mib` on the cgroup v2 code
# path, against a cgroup2 tree this test mounts itself in a private mount
# namespace (unshare -m; mount -t cgroup2), passed with --cgroup-root.
# The guest is tests/guests/isolate_mem_hog.c (child 1 writes 200 MiB),
# snapshotted with --agent-port 8888 as in isolate_mem_hog.sh.
#   memory controller available in that tree: as isolate_mem_hog.sh, child 1
#     is OOM-killed and reported oom_killed (memory.events), child 0 stays
#     alive, the v2 leaves had memory.max 64 MiB and are gone afterwards;
#   not available (memory bound to a v1 hierarchy, as on the CI hosts): the
#     test prints exactly why, then checks that forkd detects v2 at the
#     mount and refuses with that reason before starting any child, leaving
#     no forkd/ behind, and exits 77 (SKIP) with the reason as its last
#     line, so the summary shows the v2 OOM kill was not exercised. (Leaf
#     creation, joining and removal on a real cgroup2 tree are checked by
#     tests/unit/test_cgroup.c either way.)
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

if (($(id -u) != 0)); then
	echo "skip: mounting cgroup2 needs root (this runs as $(id -un))"
	exit 77
fi
command -v unshare >/dev/null || { echo "skip: unshare(1) is needed"; exit 77; }
if ! grep -qw cgroup2 /proc/filesystems; then
	echo "skip: this kernel has no cgroup2 file system"
	exit 77
fi

tag=cg2$$
snap_take "$tag" --mem-mib 256 --agent-port 8888

# Everything below runs in a private mount namespace: the mount is gone
# with it, whatever happens.
cat >"$WORK/inner.sh" <<'IN'
set -euo pipefail
mnt=$WORK/cg2
mkdir -p "$mnt"
mount --make-rprivate /
mount -t cgroup2 none "$mnt"
[[ $(stat -f -c %T "$mnt") == cgroup2fs ]] || { echo "FAIL: $mnt is not cgroup2"; exit 1; }
ctl=$(cat "$mnt/cgroup.controllers")
echo "cgroup2 mounted at $mnt; cgroup.controllers: '$ctl'"
rc=0
settle=$(scaled 8)
timeout -k 5 "$(scaled 90)" "$FORKD" fork --tag "$TAG" -n 2 --settle-secs "$settle" --keep-workdir \
	--workdir "$WORK/fork" --memory-limit-mib 64 --cgroup-root "$mnt" >"$WORK/fork.log" 2>&1 &
fpid=$!
if [[ " $ctl " == *" memory "* ]]; then
	for ((t = 0; t < 100; t++)); do
		ls -d "$mnt"/forkd/fork-*-child-1 >/dev/null 2>&1 && break
		sleep 0.1
	done
	for leaf in "$mnt"/forkd/fork-*-child-*; do
		[[ $(cat "$leaf/memory.max") == 67108864 ]] || { echo "FAIL: $leaf/memory.max is not 64 MiB"; exit 1; }
	done
	echo "ok: v2 leaves with memory.max 67108864: $(cd "$mnt/forkd" && echo fork-*)"
	wait "$fpid" || rc=$?
	cat "$WORK/fork.log"
	((rc == 1)) || { echo "FAIL: forkd fork exited $rc, not 1"; exit 1; }
	grep -q '^fork: memory limit 64 MiB per child: cgroup v2 leaves under' "$WORK/fork.log" ||
		{ echo "FAIL: forkd did not use cgroup v2"; exit 1; }
	grep -q '^fork: child 1 oom_killed' "$WORK/fork.log" || { echo "FAIL: child 1 not oom_killed"; exit 1; }
	grep -qx "fork: 1/2 children alive after $settle s settle" "$WORK/fork.log" ||
		{ echo "FAIL: child 0 did not stay alive"; exit 1; }
	[[ -z $(ls -d "$mnt"/forkd/fork-* 2>/dev/null) ]] || { echo "FAIL: leaves left behind"; exit 1; }
	echo "ok: v2: child 1 OOM-killed and reported, child 0 alive, leaves removed"
else
	hier=$(awk '$1 == "memory" { print $2 }' /proc/cgroups)
	if [[ -n $hier && $hier != 0 ]]; then
		echo "note: the memory controller cannot be enabled in this cgroup2 tree: /proc/cgroups binds 'memory' to cgroup v1 hierarchy $hier (mounted at $(awk '$9 == "cgroup" && $NF ~ /(^|,)memory(,|$)/ { print $5; exit }' /proc/self/mountinfo)), and a controller serves one hierarchy at a time; so no OOM kill under v2 here: checking forkd's v2 detection and refusal instead"
	else
		echo "note: the memory controller is not in this cgroup2 tree's cgroup.controllers although /proc/cgroups does not bind it to v1 (not delegated here); checking forkd's v2 detection and refusal instead"
	fi
	wait "$fpid" || rc=$?
	cat "$WORK/fork.log"
	((rc == 1)) || { echo "FAIL: forkd fork exited $rc, not 1"; exit 1; }
	grep -q "memory controller is not available in the cgroup v2 hierarchy at $mnt (its cgroup.controllers lists '$ctl')" "$WORK/fork.log" ||
		{ echo "FAIL: forkd did not refuse with the reason"; exit 1; }
	grep -q 'no child was started' "$WORK/fork.log" || { echo "FAIL: no 'no child was started'"; exit 1; }
	grep -q 'children running' "$WORK/fork.log" && { echo "FAIL: children were started"; exit 1; }
	[[ ! -e $mnt/forkd ]] || { echo "FAIL: forkd/ left in the cgroup2 tree"; exit 1; }
	echo "ok: forkd saw cgroup v2 at $mnt, refused the limit naming the cause, started no child, left no forkd/"
	umount "$mnt"
	# Reported as a skip, with the reason, so the suite's summary shows
	# that the v2 OOM kill itself was not exercised on this host.
	echo "v2 OOM kill not testable here: memory is bound to cgroup v1 hierarchy ${hier:-?} (cgroup2 offers '$ctl'); checked instead: v2 detection, refusal with the reason, no child started, no forkd/ left"
	exit 77
fi
umount "$mnt"
IN
rc=0
export WORK FORKD TAG=$tag
bounded 150 unshare -m bash "$WORK/inner.sh" || rc=$?
((rc == 77)) && exit 77
((rc == 0)) || fail "the cgroup v2 checks failed (status $rc)"
