#!/usr/bin/env bash
# The main job as far as forkd does it today: boot a guest until it is warm,
# snapshot it, fork children from the snapshot, and let each child finish
# the guest's computation and report who it is.
#   scripts/demo.sh [N]        N children (default 10)
# The guest is a small freestanding test guest; the Linux guest image with a
# warm Python agent comes with `forkd image build` (see the issues).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-10}
[[ -x build/forkd && -f build/guests/fork_basic.elf ]] || make -s all guests
home=$(mktemp -d "${TMPDIR:-/tmp}/forkd-demo.XXXXXX")
trap 'rm -rf "$home"' EXIT
export FORKD_HOME=$home

echo "== snapshot: boot the guest until it rings the warm doorbell"
build/forkd snapshot --tag demo --kernel build/guests/fork_basic.elf --no-rng \
	--console "$home/boot.log" --timeout-secs 60
ls -ls "$home/snapshots/demo"

echo
echo "== fork: $n children, each finishes the computation"
build/forkd fork --tag demo -n "$n" --wait --timeout-secs 60 --workdir "$home/run" \
	--keep-workdir | grep -v 'child files kept'
echo
for ((i = 0; i < n && i < 5; i++)); do
	echo "child $i: $(grep checksum "$home/run/child-$i/console.log")"
done
((n > 5)) && echo "... ($((n - 5)) more)"
