#!/usr/bin/env bash
# `forkd snapshot --warm-console TEXT` snapshots a guest when its console
# shows TEXT (for guests that cannot reach the doorbell port), and the
# children carry on from that point.
set -euo pipefail
export FORKD_HOME=$WORK/home
timeout "$(scaled 60)" "$FORKD" snapshot --tag wc --kernel "$GUEST" --no-rng \
	--warm-console "READY-FOR-SNAPSHOT" --console "$WORK/parent.log" --timeout-secs "$(scaled 30)"
grep -q "READY-FOR-SNAPSHOT" "$WORK/parent.log"
if grep -q "after the marker" "$WORK/parent.log"; then
	echo "warm_console: the parent ran past the marker: not paused there"
	exit 1
fi
timeout "$(scaled 60)" "$FORKD" fork --tag wc -n 2 --wait --timeout-secs "$(scaled 30)" --workdir "$WORK/run" \
	--keep-workdir
for i in 0 1; do
	grep -q "after the marker, generation 1" "$WORK/run/child-$i/console.log" || {
		echo "warm_console: child $i did not continue from the snapshot"
		cat "$WORK/run/child-$i/console.log"
		exit 1
	}
done
echo "warm_console: snapshot taken at the console marker; 2 children continued"
