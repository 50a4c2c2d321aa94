#!/usr/bin/env bash
# Remove per-child network namespaces made by forkd (their veths, NAT
# tables and, once none is left, the host table). Namespaces with a process
# inside are kept (add --force to remove them anyway). Needs root.
#   scripts/netns-teardown.sh             every forkd-child-* namespace
#   scripts/netns-teardown.sh I...        just these indices
# Uses $FORKD, else build/forkd of this checkout, else forkd on $PATH.
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,7s/^# \{0,1\}//p' "$0"
	exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
forkd=${FORKD:-}
if [[ -z $forkd ]]; then
	if [[ -x $root/build/forkd ]]; then
		forkd=$root/build/forkd
	else
		forkd=$(command -v forkd) || {
			echo "netns-teardown: no forkd binary (run 'make', or set FORKD)" >&2
			exit 1
		}
	fi
fi
args=("$@")
only_flags=1
for a in "$@"; do [[ $a == --* ]] || only_flags=0; done
if ((only_flags)) && [[ " $* " != *" --all "* ]]; then
	args+=(--all)
fi
exec "$forkd" netns teardown "${args[@]}"
