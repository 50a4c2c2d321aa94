#!/usr/bin/env bash
# The real VMM inside two forkd namespaces at once: forkd vm run, started
# in forkd-child-A and forkd-child-B with --tap forkd-tap0, attaches to
# that namespace's tap (virtio-net, src/devices/virtio/net.c); both test
# guests (tests/guests/virtio_net.c) use the same address 10.42.0.2 and
# get their ARP and ICMP echo to 10.42.0.1 answered by their own
# namespace. Checks each guest's SUCCESS, each tap's receive counter.
# Contract: tests/vmm/run.sh sets FORKD and WORK; 0 pass, 77 skip.
# shellcheck source=tests/vmm/cases/netns_lib.sh
source "$(dirname "$0")/netns_lib.sh"

[[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] || { echo "skip: /dev/kvm is not available"; exit 77; }
guest=$(dirname "$FORKD")/guests/virtio_net.elf
[[ -f $guest ]] || fail "$guest is missing (make guests)"

A=$NS_A B=$NS_B
"$FORKD" netns setup --first "$A" 2 >/dev/null

declare -A pid rx0
for i in "$A" "$B"; do
	rx0[$i]=$(in_ns "$i" cat /sys/class/net/forkd-tap0/statistics/rx_packets)
	in_ns "$i" timeout "$(scaled 90)" "$FORKD" vm run --kernel "$guest" --no-rng --tap forkd-tap0 \
		--mac 52:54:00:ab:cd:ef --console "$WORK/console-$i.log" --timeout-secs "$(scaled 60)" \
		>"$WORK/forkd-$i.log" 2>&1 &
	pid[$i]=$!
	_netns_bg+=("${pid[$i]}")
done
for i in "$A" "$B"; do
	rc=0
	wait "${pid[$i]}" || rc=$?
	cat "$WORK/console-$i.log"
	((rc == 0)) || { cat "$WORK/forkd-$i.log"; fail "forkd-child-$i: forkd exited with $rc"; }
	grep -qx SUCCESS "$WORK/console-$i.log" || fail "forkd-child-$i: no SUCCESS"
	if grep -Eq 'AddressSanitizer|runtime error|LeakSanitizer' "$WORK/forkd-$i.log"; then
		cat "$WORK/forkd-$i.log"
		fail "forkd-child-$i: sanitizer report"
	fi
	rx=$(($(in_ns "$i" cat /sys/class/net/forkd-tap0/statistics/rx_packets) - rx0[$i]))
	((rx >= 2)) || fail "forkd-child-$i: forkd-tap0 received $rx frames from the guest"
	ok "forkd-child-$i: guest 10.42.0.2 on forkd-tap0 answered by 10.42.0.1 ($rx frames)"
done
echo SUCCESS
