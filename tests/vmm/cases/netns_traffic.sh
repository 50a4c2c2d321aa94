#!/usr/bin/env bash
# Traffic through two namespaces made by forkd:
#  - the host reaches each namespace's end of its veth;
#  - namespace A cannot reach B's transfer address, even with forwarding
#    switched on for both host veths (the host table drops it; without the
#    table the same packets do get through, so the test would notice);
#  - inside each namespace, 10.42.0.2 is reached through forkd-tap0: a
#    stand-in guest on the tap answers ping, and a datagram it sends to the
#    host arrives from the namespace's veth address (NAT) and is answered.
# Contract: tests/vmm/run.sh sets FORKD and WORK; 0 pass, 77 skip.
# shellcheck source=tests/vmm/cases/netns_lib.sh
source "$(dirname "$0")/netns_lib.sh"

A=$NS_A B=$NS_B
"$FORKD" netns setup --first "$A" 2 >/dev/null
NA=$(ns_addr "$A") NB=$(ns_addr "$B")

for i in "$A" "$B"; do
	n=$(ns_addr "$i")
	ping -c 2 -i 0.2 -W 2 "$n" >"$WORK/ping-$i.txt" || fail "host cannot ping $n (forkd-child-$i)"
done
ok "the host pings $NA (forkd-child-$A) and $NB (forkd-child-$B)"

# Isolation. Forwarding on for exactly these two host veths, so only the
# host table stands between A and B.
sysctl -qw "net.ipv4.conf.fkd${A}h.forwarding=1" "net.ipv4.conf.fkd${B}h.forwarding=1"
drops() { nft list table inet forkd | sed -n 's/.*counter packets \([0-9]*\).*drop.*/\1/p'; }
d0=$(drops)
if in_ns "$A" ping -c 2 -i 0.2 -W 1 "$NB" >"$WORK/iso.txt" 2>&1; then
	fail "forkd-child-$A reached forkd-child-$B's $NB"
fi
in_ns "$B" ping -c 1 -W 1 "$NA" >/dev/null 2>&1 && fail "forkd-child-$B reached $NA"
(($(drops) > d0)) || fail "the host table's drop counter did not move"
ok "A cannot reach B's $NB (nor B A's), the host table dropped $(($(drops) - d0)) packets"
if grep -q "^forkd-child-" <<<"$(ip netns list | grep -v -e "forkd-child-$A" -e "forkd-child-$B")"; then
	echo "note: other forkd namespaces exist; the control without the host table is skipped"
else
	nft delete table inet forkd
	if in_ns "$A" ping -c 2 -i 0.2 -W 1 "$NB" >/dev/null 2>&1; then
		ok "control: without the host table A does reach B, so the table is what stops it"
	else
		echo "note: A cannot reach B even without forkd's table (other host rules?)"
	fi
	"$FORKD" netns setup --first "$A" 2 >/dev/null
	nft list table inet forkd >/dev/null || fail "setup did not restore the host table"
	in_ns "$A" ping -c 1 -W 1 "$NB" >/dev/null 2>&1 && fail "A reaches B after the repair"
	ok "setup restored the host table; A cannot reach B again"
fi

# The tap and NAT, once per namespace: the same guest address in both.
port=$((20000 + $$ % 20000))
for i in "$A" "$B"; do
	h=$(host_addr "$i") n=$(ns_addr "$i")
	python3 - "$h" "$port" >"$WORK/udp-$i.txt" 2>&1 <<-'EOF' &
		import socket, sys
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.bind((sys.argv[1], int(sys.argv[2])))
		s.settimeout(15)
		print("listening", flush=True)
		data, peer = s.recvfrom(2048)
		print("from", peer[0], data.decode(), flush=True)
		s.sendto(b"pong:" + data, peer)
	EOF
	_netns_bg+=($!)
	wait_for "$WORK/udp-$i.txt" listening 5 || fail "host UDP listener: $(cat "$WORK/udp-$i.txt")"
	in_ns "$i" python3 "$WORK/fakeguest.py" --echoes 3 --udp "$h:$port" --secs 15 >"$WORK/guest-$i.txt" 2>&1 &
	guest=$!
	_netns_bg+=("$guest")
	wait_for "$WORK/guest-$i.txt" ready 5 || fail "stand-in guest did not attach: $(cat "$WORK/guest-$i.txt")"
	tx0=$(in_ns "$i" cat /sys/class/net/forkd-tap0/statistics/tx_packets)
	in_ns "$i" ping -c 3 -i 0.2 -W 2 10.42.0.2 >"$WORK/ping-guest-$i.txt" ||
		fail "forkd-child-$i: ping 10.42.0.2 unanswered: $(cat "$WORK/guest-$i.txt")"
	tx=$(($(in_ns "$i" cat /sys/class/net/forkd-tap0/statistics/tx_packets) - tx0))
	wait_for "$WORK/guest-$i.txt" "echo-reply 3" 2 || fail "forkd-child-$i: the guest saw no echo"
	((tx >= 3)) || fail "forkd-child-$i: forkd-tap0 sent $tx frames"
	ok "forkd-child-$i: ping 10.42.0.2 went out forkd-tap0 ($tx frames) and the guest answered"
	wait "$guest" || fail "forkd-child-$i: no answer to the guest's datagram: $(cat "$WORK/guest-$i.txt")"
	grep -q "^from $n forkd-nat-test" "$WORK/udp-$i.txt" ||
		fail "forkd-child-$i: host saw $(cat "$WORK/udp-$i.txt"), not a datagram from $n"
	grep -q "udp-reply $h pong:forkd-nat-test" "$WORK/guest-$i.txt" ||
		fail "forkd-child-$i: the answer did not reach the guest"
	grep -q "counter packets [1-9]" <<<"$(in_ns "$i" nft list table ip forkd)" ||
		fail "forkd-child-$i: NAT counter did not move"
	ok "forkd-child-$i: the guest's 10.42.0.2 left as $n (masquerade) and got its answer"
done
echo SUCCESS
