# shellcheck shell=bash
# Helpers for the per-child namespace case scripts (tests/vmm/cases/netns_*.sh);
# sourced, never run on its own.
#
# After sourcing: root, ip, nft, ping and python3 are checked (skip, 77,
# when missing), FORKD and WORK are set, NS_A and NS_B are two namespace
# indices near the top of the range (real children use the low ones),
# torn down before the test and again by the EXIT trap. $WORK/fakeguest.py
# is a stand-in guest for the tap (see below).

set -euo pipefail

: "${FORKD:?}" "${WORK:?}"
((EUID == 0)) || { echo "skip: network namespaces need root"; exit 77; }
[[ -c /dev/net/tun ]] || { echo "skip: /dev/net/tun is missing"; exit 77; }
for tool in ip nft ping python3; do
	command -v "$tool" >/dev/null ||
		{ echo "skip: $tool is missing (scripts/setup.sh installs it)"; exit 77; }
done

NS_A=${NS_A:-16370}
NS_B=${NS_B:-16371}

fail() {
	echo "FAIL: $*"
	exit 1
}

ok() {
	echo "ok: $*"
}

# Addresses of index I: host end, namespace end (10.201.0.0 + 4I + 1/2).
host_addr() {
	local v=$((0x0ac90000 + 4 * $1 + 1))
	echo "$((v >> 24 & 255)).$((v >> 16 & 255)).$((v >> 8 & 255)).$((v & 255))"
}
ns_addr() {
	local v=$((0x0ac90000 + 4 * $1 + 2))
	echo "$((v >> 24 & 255)).$((v >> 16 & 255)).$((v >> 8 & 255)).$((v & 255))"
}

in_ns() {
	local i=$1
	shift
	ip netns exec "forkd-child-$i" "$@"
}

_netns_bg=()
_netns_cleanup() {
	local rc=$?
	for i in "$NS_A" "$NS_B"; do
		# shellcheck disable=SC2046 # one pid per word
		kill $(ip netns pids "forkd-child-$i" 2>/dev/null) 2>/dev/null || true
	done
	for p in "${_netns_bg[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	"$FORKD" netns teardown --force "$NS_A" "$NS_B" >/dev/null 2>&1 || true
	exit "$rc"
}
trap _netns_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

"$FORKD" netns teardown --force "$NS_A" "$NS_B" >/dev/null

# A stand-in guest: attaches to forkd-tap0 of the namespace it runs in as
# 10.42.0.2 (MAC 52:54:00:00:00:02), answers ARP and ICMP echo for that
# address, and with --udp IP:PORT (after --echoes N echo requests were
# answered) sends one datagram there through the gateway 10.42.0.1 and
# exits once answered. Prints "ready" once attached, then one line per
# event ("arp-request", "echo-reply N", "gateway MAC", "udp-sent",
# "udp-reply FROM PAYLOAD").
cat >"$WORK/fakeguest.py" <<'EOF'
import argparse, fcntl, os, select, socket, struct, sys, time

p = argparse.ArgumentParser()
p.add_argument("--secs", type=float, default=10)
p.add_argument("--udp")
p.add_argument("--echoes", type=int, default=0)
a = p.parse_args()

MAC = bytes.fromhex("525400000002")
ME, GW = socket.inet_aton("10.42.0.2"), socket.inet_aton("10.42.0.1")
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"forkd-tap0", 0x0002 | 0x1000))
print("ready", flush=True)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def arp(op, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, MAC, ME, tha, tpa)


gw_mac, sent, echoes = None, False, 0
deadline, last_ask = time.time() + a.secs, 0
while time.time() < deadline:
    ready = echoes >= a.echoes
    if a.udp and ready and not gw_mac and time.time() - last_ask > 0.5:
        os.write(fd, b"\xff" * 6 + MAC + b"\x08\x06" + arp(1, b"\0" * 6, GW))
        last_ask = time.time()
    if a.udp and ready and gw_mac and not sent:
        host, port = a.udp.split(":")
        data = b"forkd-nat-test"
        udp = struct.pack("!HHHH", 40000, int(port), 8 + len(data), 0) + data
        os.write(fd, gw_mac + MAC + b"\x08\x00" + ip4(ME, socket.inet_aton(host), 17, udp))
        sent = True
        print("udp-sent", flush=True)
    if not select.select([fd], [], [], 0.1)[0]:
        continue
    f = os.read(fd, 4096)
    src, et = f[6:12], struct.unpack("!H", f[12:14])[0]
    if et == 0x0806 and len(f) >= 42:
        op, sha, spa, tpa = struct.unpack("!H", f[20:22])[0], f[22:28], f[28:32], f[38:42]
        if op == 1 and tpa == ME:
            print("arp-request", flush=True)
            os.write(fd, src + MAC + b"\x08\x06" + arp(2, sha, spa))
        elif op == 2 and spa == GW:
            gw_mac = sha
            print("gateway", sha.hex(":"), flush=True)
    elif et == 0x0800 and len(f) >= 34:
        ip = f[14:]
        ihl, total, proto = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0], ip[9]
        s, d = ip[12:16], ip[16:20]
        if d != ME:
            continue
        body = ip[ihl:total]
        if proto == 1 and body[0] == 8:
            rep = b"\0\0\0\0" + body[4:]
            rep = rep[:2] + struct.pack("!H", csum(rep)) + rep[4:]
            os.write(fd, src + MAC + b"\x08\x00" + ip4(ME, s, 1, rep))
            echoes += 1
            print("echo-reply", echoes, flush=True)
        elif proto == 17:
            print("udp-reply", socket.inet_ntoa(s), body[8:].decode(errors="replace"), flush=True)
            sys.exit(0)
sys.exit(0 if not a.udp else 1)
EOF

# wait_for FILE PATTERN SECS: until a line of FILE matches.
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
