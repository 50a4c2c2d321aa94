#!/usr/bin/env bash
# virtio-net: real frames through a real tap, both ways. A tap with the
# host end at 10.42.N.1/24 (N picked so that no route to the subnet exists
# yet) lets the host kernel answer the guest's ARP request and ICMP echo
# (tests/guests/virtio_net.c, guest at 10.42.N.2). Checks the guest's
# SUCCESS, forkd's exit status 0, and the tap's packet counters.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
set -euo pipefail

[[ -c /dev/kvm ]] || { echo "skip: no /dev/kvm"; exit 77; }
((EUID == 0)) || { echo "skip: creating a tap needs root"; exit 77; }
[[ -c /dev/net/tun ]] || { echo "skip: /dev/net/tun is missing"; exit 77; }
command -v ip >/dev/null || { echo "skip: iproute2 (ip) is missing"; exit 77; }
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

tap="fkt-net-$$"
tap=${tap:0:15}
net=""
for i in $(seq 0 99); do
	n=$((100 + ($$ + i) % 150))
	if [[ -z "$(ip -4 route show "10.42.$n.0/24" 2>/dev/null)" ]] &&
		! ip -4 addr show 2>/dev/null | grep "inet 10\.42\.$n\." >/dev/null; then
		net=10.42.$n
		break
	fi
done
[[ -n $net ]] || { echo "FAIL: no free 10.42.N.0/24 subnet for the test tap"; exit 1; }

cleanup() { ip link del "$tap" 2>/dev/null || true; }
trap cleanup EXIT
ip tuntap add dev "$tap" mode tap
ip addr add "$net.1/24" dev "$tap"
# No IPv6 chatter (router/neighbour solicitations) on the test link.
sysctl -qw "net.ipv6.conf.$tap.disable_ipv6=1" 2>/dev/null || true
ip link set "$tap" up
echo "virtio_net: tap $tap, host $net.1, guest $net.2"

run() {
	local name=$1 bin=$2 rc=0
	timeout "$(scaled 90)" "$bin" vm run --kernel "$GUEST" --no-rng --tap "$tap" \
		--mac 52:54:00:ab:cd:ef --cmdline "fkt.ip=$net.2 fkt.host=$net.1" \
		--console "$WORK/console-$name.log" --timeout-secs "$(scaled 60)" \
		>"$WORK/forkd-$name.log" 2>&1 || rc=$?
	cat "$WORK/console-$name.log"
	if ((rc != 0)); then
		echo "FAIL ($name): forkd exited with status $rc"
		cat "$WORK/forkd-$name.log"
		exit 1
	fi
	grep -qx SUCCESS "$WORK/console-$name.log" || { echo "FAIL ($name): no SUCCESS"; exit 1; }
	grep -q "MAC 52:54:00:ab:cd:ef" "$WORK/console-$name.log" ||
		{ echo "FAIL ($name): guest did not read the MAC given with --mac"; exit 1; }
	if grep -Eq 'AddressSanitizer|runtime error|LeakSanitizer' "$WORK/forkd-$name.log"; then
		echo "FAIL ($name): sanitizer report"
		cat "$WORK/forkd-$name.log"
		exit 1
	fi
	echo "ok ($name): ARP and ICMP echo answered by the host, exit status 0, SUCCESS"
}

rx0=$(cat "/sys/class/net/$tap/statistics/rx_packets")
run plain "$FORKD"
san="$(dirname "$(dirname "$FORKD")")/build-san/forkd"
if [[ -x $san && $san != "$FORKD" ]]; then
	run sanitized "$san"
fi
# rx on the tap = frames the guest transmitted (ARP request + echo request
# per run, at least).
rx=$(($(cat "/sys/class/net/$tap/statistics/rx_packets") - rx0))
((rx >= 2)) || { echo "FAIL: the tap received $rx frames from the guest"; exit 1; }
echo "ok: the tap received $rx frames from the guest(s)"
