#!/usr/bin/env bash
# isolate_mem_hog: per-child memory cgroups (`forkd fork --memory-limit-mib`)
# with tests/guests/isolate_mem_hog.c, whose child 1 writes 200 MiB of RAM
# while child 0 prints a heartbeat twice a second and serves the agent
# protocol on vsock port 8888 (the snapshot has --agent-port 8888, so both
# children get after_fork).
#   1. control, no limit: child 1 writes all 200 MiB and powers off;
#   2. --memory-limit-mib 64: while both run, each has its own leaf under
#      forkd/ with the 64 MiB limit and is in it; child 1 is OOM-killed and
#      reported `oom_killed`; child 0 keeps printing after that, answers
#      `forkd ping --run-dir` (pong, index 0, after_fork) over vsock and is
#      still alive at the end of the settle time; `forkd fork` exits 1;
#      every leaf (and forkd/) is gone afterwards.
# Uses the hierarchy that holds the memory controller here (cgroup v1 on
# the CI hosts; v2 where that is what the host has). The v2 code path on a
# self-mounted tree is isolate_cgroup2.sh.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

if (($(id -u) != 0)); then
	echo "skip: creating cgroups needs root (this runs as $(id -un))"
	exit 77
fi
command -v python3 >/dev/null || { echo "skip: python3 is needed to read forkd ping --json"; exit 77; }

tag=memhog$$
snap_take "$tag" --mem-mib 256 --agent-port 8888

# 1. Control: without a limit the hog really writes 200 MiB.
rc=0
bounded 60 "$FORKD" fork --tag "$tag" -n 2 --settle-secs "$(scaled 6)" --keep-workdir \
	--workdir "$WORK/control" >"$WORK/control.log" 2>&1 || rc=$?
sed 's/^/    | /' "$WORK/control.log"
((rc == 0)) || fail "control: forkd fork exited with status $rc"
grep -qx 'isolate_mem_hog: child 1 touched 200 MiB' "$WORK/control/child-1/console.log" ||
	fail "control: child 1 did not write its 200 MiB without a limit (console: $(tail -n 2 "$WORK/control/child-1/console.log" | tr '\n' ' '))"
ok "control: without a limit child 1 wrote 200 MiB and powered off"

# 2. The same two children, 64 MiB each.
log=$WORK/limit.log
workdir=$WORK/limit
settle=$(scaled 12)
bounded_start 90 "$FORKD" fork --tag "$tag" -n 2 --settle-secs "$settle" --keep-workdir \
	--workdir "$workdir" --memory-limit-mib 64 >"$log" 2>&1
pid=$_snap_bg
parent=""
for ((t = 0; t < 100; t++)); do
	parent=$(sed -n 's/^fork: memory limit 64 MiB per child: cgroup v[12] leaves under \(.*\)$/\1/p' "$log")
	[[ -n $parent ]] && grep -q 'children running' "$log" && break
	if grep -q 'no memory cgroups' "$log"; then
		cat "$log"
		echo "skip: this host has no usable memory cgroup controller (forkd's reason above)"
		exit 77
	fi
	sleep 0.1
done
[[ -n $parent ]] || { cat "$log"; fail "forkd fork did not say where its cgroups are"; }
ok "forkd/ parent: $parent"
fpid=$(pgrep -P "$pid" -x forkd | head -n 1)
for i in 0 1; do
	leaves=("$parent"/fork-*-child-"$i")
	leaf=${leaves[0]}
	if [[ ! -d $leaf ]]; then
		grep -q "^fork: child $i " "$log" && fail "child $i ended before its leaf was looked at (the guest waits 1-2 s before it hogs): $(grep "^fork: child $i " "$log")"
		fail "no leaf cgroup for child $i in $parent ($(ls "$parent" | tr '\n' ' '))"
	fi
	[[ $leaf == "$parent/fork-$fpid-child-$i" ]] || fail "leaf $leaf is not named after spawner $fpid"
	if [[ -f $leaf/memory.max ]]; then
		lim=$(cat "$leaf/memory.max")
	else
		lim=$(cat "$leaf/memory.limit_in_bytes")
	fi
	((lim == 64 * 1024 * 1024)) || fail "child $i's leaf has limit $lim, not 64 MiB"
	# The leaf holds the child's VMM (a child of the spawner) and, on
	# hosts whose KVM runs one, the VM's kernel worker thread (KVM attaches
	# its NX huge page recovery thread to the VM creator's cgroups); no
	# other process.
	procs="" vmm=()
	while read -r p; do
		[[ -n $p ]] || continue
		procs+="${procs:+ }$p"
		ppid=$(awk '$1 == "PPid:" { print $2 }' "/proc/$p/status" 2>/dev/null)
		if [[ $ppid == "$fpid" ]]; then
			vmm+=("$p")
		elif [[ $ppid == 2 && ! -s /proc/$p/cmdline ]]; then
			ok "child $i's leaf also holds kernel thread $p ($(cat "/proc/$p/comm"))"
		else
			fail "child $i's leaf holds pid $p (parent $ppid), which is not the child's VMM"
		fi
	done < <(cat "$leaf/cgroup.procs" 2>/dev/null || true)
	if [[ $i == 0 ]]; then
		((${#vmm[@]} == 1)) || fail "child 0's leaf holds ${#vmm[@]} VMM processes ($procs), not 1"
		c0=${vmm[0]}
		grep -q ":$leaf\$\|:${leaf#*/memory}\$\|forkd/fork-$fpid-child-0\$" "/proc/$c0/cgroup" ||
			fail "child 0 (pid $c0) is not in its leaf: $(cat "/proc/$c0/cgroup")"
	fi
	ok "child $i: leaf $(basename "$leaf") with a 64 MiB limit${vmm[0]:+, holding VMM pid ${vmm[0]}}"
done
# On KVM-PVM every vCPU thread is pinned to one host CPU (src/vmm/vm.c,
# vm_pin_plan): guest user memory is not coherent otherwise.
if [[ -e /sys/module/kvm_pvm && $(nproc) -gt 1 ]]; then
	for st in /proc/"$c0"/task/*/status; do
		grep -q '^Name:[[:space:]]*vcpu' "$st" || continue
		cpus=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$st")
		[[ $cpus =~ ^[0-9]+$ ]] || fail "KVM-PVM: child 0's vCPU thread ${st%/status} may run on CPUs '$cpus', not one"
		ok "KVM-PVM: child 0's vCPU thread ${st%/status} is pinned to host CPU $cpus"
	done
fi
for ((t = 0; t < 300; t++)); do
	grep -q '^fork: child 1 oom_killed' "$log" && break
	sleep 0.1
done
grep -q '^fork: child 1 oom_killed' "$log" || { cat "$log"; fail "child 1 was not reported oom_killed within 30 s"; }
ok "$(grep '^fork: child 1 oom_killed' "$log")"
beats=$(grep -c 'child 0 alive' "$workdir/child-0/console.log" || true)
sleep 2
beats2=$(grep -c 'child 0 alive' "$workdir/child-0/console.log" || true)
((beats2 > beats)) || fail "child 0 stopped printing when child 1 was killed ($beats, then $beats2 heartbeats)"
kill -0 "$c0" 2>/dev/null || fail "child 0 (pid $c0) is gone"
ok "child 0 kept running after its sibling's OOM kill ($beats, 2 s later $beats2 heartbeats)"
pong=$("$FORKD" ping --run-dir "$workdir/child-0" --timeout-secs "$(scaled 10)" --json) ||
	fail "child 0 did not answer forkd ping after its sibling's OOM kill (forkd ping exited non-zero)"
[[ $(python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(j["pong"], j["index"], j["after_fork"])' "$pong") == "True 0 True" ]] ||
	fail "child 0 answered ping with $pong, not pong true, index 0, after_fork true"
ok "child 0 answers ping over vsock after its sibling's OOM kill: ${pong//[$'\n ']/}"
rc=0
wait "$pid" || rc=$?
_snap_bg=""
sed 's/^/    | /' "$log"
((rc == 1)) || fail "forkd fork exited with status $rc, not 1 (a child was killed)"
grep -qx "fork: 1/2 children alive after $settle s settle" "$log" || fail "child 0 was not alive at the end of the settle time"
grep -q '^fork: after_fork (agent on vsock port 8888) answered by 2 children' "$log" ||
	fail "forkd fork did not report after_fork answered by both children"
grep -q 'touched' "$workdir/child-1/console.log" && fail "child 1 wrote 200 MiB despite its 64 MiB limit"
if [[ -d $parent ]]; then
	left=$(find "$parent" -mindepth 1 -maxdepth 1 -type d -name "fork-$fpid-*")
	[[ -z $left ]] || fail "leaf cgroups left behind: $left"
fi
ok "forkd fork exited 1; the killed child did not finish its 200 MiB; no leaf cgroup left (${parent##*/} $([[ -d $parent ]] && echo "still holds other spawners' leaves" || echo removed))"
