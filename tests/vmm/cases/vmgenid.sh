#!/usr/bin/env bash
# vmgenid: every restored child gets a new VM generation ID and one
# notification through the Generic Event Device (tests/guests/vmgenid.c).
#   1. default snapshot: snapshot.json says "vmgenid": true; the parent's ID
#      is not zero; 4 children each print an ID unlike the parent's and the
#      other children's, and "notified 1";
#   2. --no-vmgenid: "vmgenid": false, the ID page stays zero in the parent
#      and the children, and no child is notified.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

zero=0x00000000000000000x0000000000000000

# children TAG N: fork N children of TAG and print "INDEX ID NOTIFIED" lines.
children() {
	local tag=$1 n=$2 rc=0 dir=$WORK/fork-$1
	bounded 120 "$FORKD" fork --tag "$tag" -n "$n" --wait --timeout-secs "$(scaled 60)" \
		--keep-workdir --workdir "$dir" >"$WORK/fork-$tag.log" 2>&1 || rc=$?
	((rc == 0)) || { cat "$WORK/fork-$tag.log"; fail "forkd fork --tag $tag exited with status $rc"; }
	check_children_exit "$n" "$WORK/fork-$tag.log"
	for ((i = 0; i < n; i++)); do
		sed -n 's/^vmgenid: child \([0-9]*\) id \(0x[0-9a-fx]*\) notified \([0-9]*\)$/\1 \2 \3/p' \
			"$dir/child-$i/console.log"
	done
}

boot_id() {
	sed -n 's/^vmgenid: boot id \(0x[0-9a-fx]*\)$/\1/p' "$WORK/$1.parent.log"
}

# --- 1. the default: a new ID and a notification in every child ---
snap_take gen
grep -q '"vmgenid": true' "$FORKD_HOME/snapshots/gen/snapshot.json" ||
	fail "snapshot.json does not say \"vmgenid\": true"
parent=$(boot_id gen)
[[ -n $parent && $parent != "$zero" ]] || fail "the parent's generation ID is '${parent:-missing}'"
children gen 4 >"$WORK/gen.ids"
cat "$WORK/gen.ids"
(($(wc -l <"$WORK/gen.ids") == 4)) || fail "not every child printed its ID"
while read -r idx id n; do
	[[ $id != "$parent" ]] || fail "child $idx kept the parent's generation ID"
	[[ $id != "$zero" ]] || fail "child $idx has an all-zero generation ID"
	((n == 1)) || fail "child $idx was notified $n times, not once"
done <"$WORK/gen.ids"
(($(cut -d' ' -f2 "$WORK/gen.ids" | sort -u | wc -l) == 4)) || fail "two children share a generation ID"
ok "4 children: 4 distinct generation IDs, none the parent's ($parent), each notified once"

# --- 2. --no-vmgenid: no ID, no notification ---
snap_take nogen --no-vmgenid
grep -q '"vmgenid": false' "$FORKD_HOME/snapshots/nogen/snapshot.json" ||
	fail "snapshot.json does not say \"vmgenid\": false"
[[ $(boot_id nogen) == "$zero" ]] || fail "--no-vmgenid: the parent's ID page is not zero"
children nogen 2 >"$WORK/nogen.ids"
cat "$WORK/nogen.ids"
(($(wc -l <"$WORK/nogen.ids") == 2)) || fail "--no-vmgenid: not every child printed its ID"
while read -r idx id n; do
	[[ $id == "$zero" && $n == 0 ]] || fail "--no-vmgenid: child $idx has ID $id, notified $n"
done <"$WORK/nogen.ids"
ok "--no-vmgenid: the ID page stays zero and no child is notified"
