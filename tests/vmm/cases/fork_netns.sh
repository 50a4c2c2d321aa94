#!/usr/bin/env bash
# fork_netns: `forkd fork --per-child-netns` with a snapshot that has a
# network device (tests/guests/fork_netns.c, snapshotted with --net: a tap
# in a private namespace that ends with the snapshot). Every child is 10.42.0.2 with the same MAC, so only its namespace
# tells the children apart:
#   1. without --per-child-netns the fork is refused, naming the option,
#      and no child or namespace is made;
#   2. while a process is inside forkd-child-0, the fork is refused,
#      naming that process, and nothing is made;
#   3. forkd-child-1 is made beforehand (`forkd netns setup --first 1 1`),
#      forkd-child-0 is not: 2 children with --per-child-netns --wait. A UDP
#      listener on 10.42.0.1:5555 inside each namespace answers "ack ...";
#      child i sends "forkd child i" and must get "ack forkd child i" back;
#      the listener in forkd-child-i must see child i's datagram and never
#      the other child's; both children exit 0 and ran jailed;
#   4. afterwards forkd-child-0 (made by the fork) is gone, forkd-child-1
#      (made before) is still there and complete.
# Needs root, /dev/net/tun, ip and python3; skips when forkd-child-0 or -1
# is in use by something else on this host.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

((EUID == 0)) || { echo "skip: network namespaces need root"; exit 77; }
[[ -c /dev/net/tun ]] || { echo "skip: /dev/net/tun is missing"; exit 77; }
for tool in ip python3; do
	command -v "$tool" >/dev/null ||
		{ echo "skip: $tool is missing (scripts/setup.sh installs it)"; exit 77; }
done
for i in 0 1; do
	if [[ -e /run/netns/forkd-child-$i ]]; then
		if [[ -n $(ip netns pids "forkd-child-$i" 2>/dev/null) ]]; then
			echo "skip: forkd-child-$i is in use on this host (pids $(ip netns pids "forkd-child-$i" | tr '\n' ' '))"
			exit 77
		fi
		"$FORKD" netns teardown "$i" >/dev/null
	fi
done

listeners=()
_fork_netns_cleanup() {
	local rc=$?
	for p in "${listeners[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	"$FORKD" netns teardown --force 0 1 >/dev/null 2>&1 || true
	(exit "$rc")
	_snap_cleanup
}
trap _fork_netns_cleanup EXIT

tag=netns$$
snap_take "$tag" --mem-mib 16 --no-rng --net --mac 52:54:00:0a:0b:0c
grep -q '"net": true' "$FORKD_HOME/snapshots/$tag/snapshot.json" ||
	fail "snapshot --net recorded no network device: $(cat "$FORKD_HOME/snapshots/$tag/snapshot.json")"
ip link show forkd-tap0 >/dev/null 2>&1 && fail "snapshot --net left a tap forkd-tap0 on the host"

# 1. A snapshot with a network device needs --per-child-netns.
rc=0
bounded 30 "$FORKD" fork --tag "$tag" -n 2 >"$WORK/refused.log" 2>&1 || rc=$?
cat "$WORK/refused.log"
((rc == 1)) || fail "forkd fork without --per-child-netns exited with $rc, not 1"
grep -q "has a network device.*--per-child-netns" "$WORK/refused.log" ||
	fail "the refusal does not name --per-child-netns"
grep -q "children running" "$WORK/refused.log" && fail "children started anyway"
[[ ! -e /run/netns/forkd-child-0 ]] || fail "the refused fork made forkd-child-0"
ok "without --per-child-netns: refused, naming the option; nothing made"

# 2. A namespace somebody is in is not shared: refused, naming the pid.
"$FORKD" netns setup --first 0 1 >/dev/null
ip netns exec forkd-child-0 sleep 60 &
squatter=$!
listeners+=("$squatter")
for ((t = 0; t < 50; t++)); do
	[[ -n $(ip netns pids forkd-child-0) ]] && break
	sleep 0.1
done
rc=0
bounded 30 "$FORKD" fork --tag "$tag" -n 2 --per-child-netns >"$WORK/busy.log" 2>&1 || rc=$?
cat "$WORK/busy.log"
((rc == 1)) || fail "forkd fork into a namespace in use exited with $rc, not 1"
grep -q "child 0 would run in forkd-child-0, but process [0-9]* is in it" "$WORK/busy.log" ||
	fail "the refusal does not say who is in forkd-child-0"
grep -q "children running" "$WORK/busy.log" && fail "children started anyway"
[[ ! -e /run/netns/forkd-child-1 ]] || fail "the refused fork made forkd-child-1"
kill "$squatter"
wait "$squatter" 2>/dev/null || true
"$FORKD" netns teardown 0 >/dev/null
ok "forkd-child-0 in use by another process: refused, naming it; nothing made"

# 3. Two children, one namespace each.
"$FORKD" netns setup --first 1 1 >/dev/null
cat >"$WORK/listen.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.42.0.1", 5555))
print("listening", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    s.settimeout(max(0.1, end - time.time()))
    try:
        data, addr = s.recvfrom(256)
    except socket.timeout:
        break
    print("got %s:%d %s" % (addr[0], addr[1], data.decode(errors="replace")), flush=True)
    s.sendto(b"ack " + data, addr)
PY
log=$WORK/fork.log
bounded_start 90 "$FORKD" fork --tag "$tag" -n 2 --per-child-netns --wait --timeout-secs "$(scaled 60)" \
	--keep-workdir --workdir "$WORK/wd" >"$log" 2>&1
fork_pid=$_snap_bg
for i in 0 1; do
	for ((t = 0; t < 200; t++)); do
		[[ -e /run/netns/forkd-child-$i ]] && break
		sleep 0.05
	done
	[[ -e /run/netns/forkd-child-$i ]] || { cat "$log"; fail "forkd-child-$i did not appear"; }
done
# The children retry until a listener answers, so they are still running
# now: each VMM is in its own namespace, and jailed.
for ((t = 0; t < 300; t++)); do
	grep -q "children running" "$log" && break
	sleep 0.1
done
for i in 0 1; do
	vmm=""
	for p in $(ip netns pids "forkd-child-$i"); do
		if [[ $(cat "/proc/$p/comm" 2>/dev/null) == forkd ]]; then
			vmm=$p
			break
		fi
	done
	[[ -n $vmm ]] || { cat "$log"; fail "no VMM process in forkd-child-$i"; }
	[[ $(readlink "/proc/$vmm/ns/net") == "net:[$(stat -L -c %i "/run/netns/forkd-child-$i")]" ]] ||
		fail "child $i's VMM $vmm is not in forkd-child-$i"
	grep -q '^Seccomp:[[:space:]]*2' "/proc/$vmm/status" || fail "child $i's VMM $vmm is not jailed"
	ok "child $i: VMM $vmm runs jailed in forkd-child-$i"
done
for i in 0 1; do
	ip netns exec "forkd-child-$i" timeout "$(scaled 80)" python3 "$WORK/listen.py" 70 \
		>"$WORK/listen-$i.log" 2>&1 &
	listeners+=($!)
done
rc=0
wait "$fork_pid" || rc=$?
_snap_bg=""
sed 's/^/    | /' "$log"
for i in 0 1; do
	sed "s/^/    | ns $i: /" "$WORK/listen-$i.log"
	sed "s/^/    | child $i: /" "$WORK/wd/child-$i/console.log"
done
((rc == 0)) || fail "forkd fork --per-child-netns exited with $rc"
check_children_exit 2 "$log"
for i in 0 1; do
	j=$((1 - i))
	grep -qx "fork_netns: reply 'ack forkd child $i'" "$WORK/wd/child-$i/console.log" ||
		fail "child $i got no answer from the listener in its namespace"
	grep -q "^got 10.42.0.2:40000 forkd child $i\$" "$WORK/listen-$i.log" ||
		fail "the listener in forkd-child-$i never saw child $i"
	grep -q "forkd child $j\$" "$WORK/listen-$i.log" &&
		fail "the listener in forkd-child-$i saw child $j's datagram"
	ok "child $i <-> forkd-child-$i only ($(grep -c '^got' "$WORK/listen-$i.log") datagrams)"
done

for p in "${listeners[@]}"; do
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
done
listeners=()

# 4. Made by the fork: removed; made before it: kept, complete.
[[ ! -e /run/netns/forkd-child-0 ]] || fail "forkd-child-0 (made by the fork) is left behind"
ip link show fkd0h >/dev/null 2>&1 && fail "forkd-child-0's host veth fkd0h is left behind"
[[ -e /run/netns/forkd-child-1 ]] || fail "forkd-child-1 (made before the fork) was removed"
"$FORKD" netns ls 2>&1 | grep -Eq "^forkd-child-1 .* ok$" ||
	fail "forkd-child-1 is no longer complete: $("$FORKD" netns ls 2>&1)"
ok "forkd-child-0 removed (the fork made it), forkd-child-1 kept (made before)"
"$FORKD" netns teardown 1 >/dev/null
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK"/*.log; then
	grep -E 'AddressSanitizer|LeakSanitizer|runtime error' "$WORK"/*.log
	fail "sanitizer report"
fi
echo SUCCESS
