#!/usr/bin/env bash
# Make the per-child network namespaces forkd-child-0 .. forkd-child-(N-1)
# ahead of time, so children started with --per-child-netns find them
# ready (forkd makes missing ones itself, too). Safe to run again: complete
# namespaces are left alone, half-made ones repaired. Needs root.
#   scripts/netns-setup.sh N              forkd-child-0 .. forkd-child-(N-1)
#   scripts/netns-setup.sh --first I N    forkd-child-I .. forkd-child-(I+N-1)
# Uses $FORKD, else build/forkd of this checkout, else forkd on $PATH.
set -euo pipefail

if (($# == 0)); then
	sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
elif [[ $1 == -h || $1 == --help ]]; then
	sed -n '2,8s/^# \{0,1\}//p' "$0"
	exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
forkd=${FORKD:-}
if [[ -z $forkd ]]; then
	if [[ -x $root/build/forkd ]]; then
		forkd=$root/build/forkd
	else
		forkd=$(command -v forkd) || {
			echo "netns-setup: no forkd binary (run 'make', or set FORKD)" >&2
			exit 1
		}
	fi
fi
exec "$forkd" netns setup "$@"
