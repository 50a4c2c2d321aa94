#!/usr/bin/env bash
# forkd netns setup / ls / teardown: two namespaces made by forkd hold
# exactly the documented layout (checked with ip and nft, not with forkd),
# setup is idempotent and repairs a half-made namespace, and teardown
# leaves no namespace, veth or table behind.
# Contract: tests/vmm/run.sh sets FORKD and WORK; 0 pass, 77 skip.
# shellcheck source=tests/vmm/cases/netns_lib.sh
source "$(dirname "$0")/netns_lib.sh"

A=$NS_A B=$NS_B

grep -q "forkd netns setup" <<<"$("$FORKD" netns --help)" || fail "netns --help"
out=$("$FORKD" netns setup --first "$A" 2)
echo "$out"
grep -q "2 created" <<<"$out" || fail "setup did not create two namespaces"
ok "setup --first $A 2 created forkd-child-$A and forkd-child-$B"

check_layout() {
	local i=$1 h n
	h=$(host_addr "$i") n=$(ns_addr "$i")
	grep -qw "forkd-child-$i" <<<"$(ip netns list)" || fail "ip netns list lacks forkd-child-$i"
	# The tap: persistent, 10.42.0.1/24, administratively up.
	grep -q "tun type tap" <<<"$(in_ns "$i" ip -d link show forkd-tap0)" ||
		fail "forkd-child-$i: forkd-tap0 is not a tap"
	grep -q "<.*UP.*>" <<<"$(in_ns "$i" ip link show forkd-tap0)" || fail "forkd-child-$i: tap not up"
	grep -q "inet 10.42.0.1/24" <<<"$(in_ns "$i" ip -4 addr show forkd-tap0)" ||
		fail "forkd-child-$i: tap lacks 10.42.0.1/24"
	grep -q "<.*UP.*>" <<<"$(in_ns "$i" ip link show lo)" || fail "forkd-child-$i: lo not up"
	# The veth: namespace end with its /30 and the default route via the host end.
	grep -q "inet $n/30" <<<"$(in_ns "$i" ip -4 addr show "fkd${i}n")" ||
		fail "forkd-child-$i: fkd${i}n lacks $n/30"
	grep -q "inet $h/30" <<<"$(ip -4 addr show "fkd${i}h")" || fail "host: fkd${i}h lacks $h/30"
	grep -q "veth" <<<"$(ip -d link show "fkd${i}h")" || fail "host: fkd${i}h is not a veth"
	grep -q "via $h dev fkd${i}n" <<<"$(in_ns "$i" ip -4 route show default)" ||
		fail "forkd-child-$i: no default route via $h"
	[[ $(in_ns "$i" cat /proc/sys/net/ipv4/conf/forkd-tap0/forwarding) == 1 ]] ||
		fail "forkd-child-$i: forwarding off on forkd-tap0"
	# NAT: masquerade of the guest net leaving through the veth.
	grep -q "oifname \"fkd${i}n\" ip saddr 10.42.0.0/24 .*masquerade" <<<"$(in_ns "$i" nft list table ip forkd)" ||
		fail "forkd-child-$i: no masquerade rule"
	ok "forkd-child-$i: tap 10.42.0.1/24 up, veth $n/30 <-> $h/30, default route, NAT rule"
}
check_layout "$A"
check_layout "$B"
grep -q 'iifname "fkd\*" oifname "fkd\*" .*drop' <<<"$(nft list table inet forkd)" ||
	fail "host: no rule refusing forwarding between fkd* interfaces"
ok "host table inet forkd refuses fkd* -> fkd* forwarding"

"$FORKD" netns ls | tee "$WORK/ls.txt"
grep -Eq "^forkd-child-$A +fkd${A}h +$(host_addr "$A") +$(ns_addr "$A") +0 +ok" "$WORK/ls.txt" ||
	fail "ls does not show forkd-child-$A as ok"

# Idempotent: a second setup (through the script) changes nothing.
tap_index=$(in_ns "$A" cat /sys/class/net/forkd-tap0/ifindex)
scripts=$(cd "$(dirname "$0")/../../../scripts" && pwd)
out=$(FORKD=$FORKD "$scripts/netns-setup.sh" --first "$A" 2)
grep -q "0 created, 0 repaired, 2 already complete" <<<"$out" || fail "second setup: $out"
[[ $(in_ns "$A" cat /sys/class/net/forkd-tap0/ifindex) == "$tap_index" ]] ||
	fail "second setup remade the tap"
ok "scripts/netns-setup.sh again: 2 already complete, nothing remade"

# Half-made: veth gone in A, tap and NAT table gone in B.
in_ns "$A" ip link del "fkd${A}n"
in_ns "$B" ip link del forkd-tap0
in_ns "$B" nft delete table ip forkd
grep "forkd-child-$A" <<<"$("$FORKD" netns ls)" | grep -q incomplete || fail "ls missed the damage"
out=$("$FORKD" netns setup --first "$A" 2)
echo "$out"
grep -q "2 repaired" <<<"$out" || fail "setup did not repair both"
check_layout "$A"
check_layout "$B"
ok "setup repaired a missing veth, tap and NAT table"

# A name left by an interrupted creation (a plain file) is remade.
"$FORKD" netns teardown "$B" >/dev/null
touch "/run/netns/forkd-child-$B"
grep -q "1 created" <<<"$("$FORKD" netns setup --first "$B" 1)" || fail "setup over a stale file"
check_layout "$B"
ok "a stale /run/netns file is replaced by a real namespace"

# Teardown refuses a namespace in use, unless --force.
in_ns "$A" sleep 30 &
_netns_bg+=($!)
sleep 0.3
out=$("$FORKD" netns teardown "$A" || true)
grep -q "kept: in use by pid" <<<"$out" || fail "teardown removed a namespace in use: $out"
# ip netns exec waits for its command: stop what runs inside.
# shellcheck disable=SC2046 # one pid per word
kill $(ip netns pids "forkd-child-$A") 2>/dev/null || true
wait "${_netns_bg[-1]}" 2>/dev/null || true
ok "teardown keeps a namespace with a process inside"

FORKD=$FORKD "$scripts/netns-teardown.sh" "$A" "$B"
for i in "$A" "$B"; do
	! grep -qw "forkd-child-$i" <<<"$(ip netns list)" || fail "forkd-child-$i left behind"
	[[ ! -e /run/netns/forkd-child-$i ]] || fail "/run/netns/forkd-child-$i left behind"
	! ip link show "fkd${i}h" >/dev/null 2>&1 || fail "host veth fkd${i}h left behind"
done
if grep -q "^forkd-child-" <<<"$(ip netns list)"; then
	echo "note: other forkd namespaces exist; the host table stays for them"
else
	! nft list table inet forkd >/dev/null 2>&1 || fail "host table inet forkd left behind"
fi
grep -q "not present" <<<"$("$FORKD" netns teardown "$A")" || fail "teardown twice"
ok "teardown leaves no namespace, veth or table; a second teardown is harmless"

# Usage errors.
"$FORKD" netns setup 0 2>/dev/null && fail "setup 0 accepted"
"$FORKD" netns setup --first 16383 2 2>/dev/null && fail "setup past the last index accepted"
"$FORKD" netns teardown 2>/dev/null && fail "teardown without indices accepted"
"$FORKD" netns frob 2>/dev/null && fail "unknown netns command accepted"
ok "usage errors are refused"
echo SUCCESS
