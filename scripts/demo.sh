#!/usr/bin/env bash
# The main job: build the guest image (Debian kernel, python3 + numpy, forkd's
# init and agent), boot it until the agent's Python is warm, snapshot it,
# fork N children from the snapshot and run code in them.
#
#   scripts/demo.sh [N]          N children (default 5)
#   scripts/demo.sh --quick [N]  (N default 10) the same flow with a tiny test
#                                guest instead of Linux (seconds, no Python)
#
# On KVM-PVM hosts (guest kernel code emulated) booting the image to a warm
# agent takes many minutes; the snapshot is kept under
# $FORKD_HOME/snapshots/demo-py (`forkd where`) and reused by later runs.
# Without a usable /dev/kvm (or with FORKD_LAB=1) the demo builds here what
# needs a compiler or the network, then runs in forkd's KVM lab
# (scripts/kvm-lab), where the snapshot lasts one run.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [[ ${1:-} == --quick ]]; then
	quick=1
	shift
fi
n=${1:-$((quick ? 10 : 5))}
[[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 1000)) || { echo "demo: N must be 1-1000" >&2; exit 2; }
[[ -x build/forkd ]] || make -s all

if [[ -z ${FORKD_IN_LAB:-} && ${FORKD_LAB:-} != 0 ]] &&
	[[ ${FORKD_LAB:-} == 1 || ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "== no usable /dev/kvm here${FORKD_LAB:+ (FORKD_LAB=$FORKD_LAB)}: the demo runs in forkd's KVM lab"
	echo "   (scripts/kvm-lab: a QEMU VM with nested SVM; its CPU is emulated, so everything"
	echo "   takes 10-50x longer than on a host with KVM, and figures are not absolute)"
	if ((quick)); then
		make -s guests
	else
		echo "== image: kernel + ext4 root with python3, numpy, init and agent (cached; here, as it downloads)"
		build/forkd image build --tag py
	fi
	args=("$n")
	((quick)) && args=(--quick "$n")
	exec scripts/kvm-lab -- scripts/demo.sh "${args[@]}"
fi

if ((quick)); then
	[[ -f build/guests/fork_basic.elf ]] || make -s guests
	home=$(mktemp -d "${TMPDIR:-/tmp}/forkd-demo.XXXXXX")
	trap 'rm -rf "$home"' EXIT
	export FORKD_HOME=$home
	echo "== snapshot: boot the test guest until it rings the warm doorbell"
	build/forkd snapshot --tag demo --kernel build/guests/fork_basic.elf --no-rng \
		--console "$home/boot.log" --timeout-secs 60
	echo "== fork: $n children, each finishes the computation"
	build/forkd fork --tag demo -n "$n" --wait --timeout-secs 60 --workdir "$home/run" \
		--keep-workdir | grep -v 'child files kept'
	for ((i = 0; i < n && i < 5; i++)); do
		echo "child $i: $(grep checksum "$home/run/child-$i/console.log")"
	done
	exit 0
fi

t0=$(date +%s)
echo "== image: kernel + ext4 root with python3, numpy, init and agent (cached)"
build/forkd image build --tag py

snapdir=$(build/forkd where --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"]["path"])')/demo-py
if [[ -f $snapdir/snapshot.json ]]; then
	echo "== snapshot: reusing $snapdir"
else
	echo "== snapshot: boot the image until its agent is warm (minutes where the guest"
	echo "   kernel is emulated, e.g. KVM-PVM hosts), then write the snapshot"
	build/forkd snapshot --tag demo-py --image py --console /tmp/forkd-demo-boot.log
fi

run=${TMPDIR:-/tmp}/forkd-demo-run.$$
ids=()
# shellcheck disable=SC2317  # called through the EXIT trap
finish() {
	((${#ids[@]})) && build/forkd kill --no-daemon "${ids[@]}" >/dev/null 2>&1
	rm -rf "$run"
}
trap finish EXIT
echo "== fork: $n children (each its own process and KVM VM, memory copy-on-write),"
echo "   kept running after the command returns"
build/forkd fork --tag demo-py -n "$n" --keep --workdir "$run" | tee "$run.log"
mapfile -t ids < <(awk '$1 == "kept" { print $2 }' "$run.log")
rm -f "$run.log"
((${#ids[@]} == n)) || { echo "demo: expected $n kept children, got ${#ids[@]}" >&2; exit 1; }
build/forkd ls --no-daemon

echo "== run code in the children"
for ((i = 0; i < n && i < 3; i++)); do
	echo "-- child $i (${ids[i]})"
	build/forkd exec --sandbox "${ids[i]}" -- python3 -c \
		'import os, platform; print("hello from", platform.node(), "pid", os.getpid())'
	build/forkd eval --sandbox "${ids[i]}" 'float(np.random.random())'
done
echo "== done in $(($(date +%s) - t0)) s; stopping the children (forkd kill)"
