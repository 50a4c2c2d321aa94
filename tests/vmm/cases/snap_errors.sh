#!/usr/bin/env bash
# snap_errors: `forkd fork` refuses a broken snapshot with one clear line
# and leaves nothing behind. One good snapshot of tests/guests/snap_errors.c
# is taken and forked once as a control; then each case spoils a copy of it
# (or names a tag that cannot be used) and runs `forkd fork -n 3 --wait`:
#   memory.bin missing, truncated, too long; vmstate missing, with a flipped
#   byte (checksum), another format version, truncated; snapshot.json
#   missing, not JSON, a field of the wrong type, out of range, another
#   format version, disagreeing with vmstate; an unknown tag; `../x`.
# Each must exit non-zero, print nothing on stdout and exactly one line on
# stderr that names the file (or tag) and matches the expected cause, and
# leave no work directory (the default /tmp/forkd-fork-TAG-XXXXXX), no process and
# no new file under FORKD_HOME.
#
# Known issue: for a field of the wrong type forkd prints jansson's
# "Expected integer, got string" without the field's name; this is reported
# and accepted unless SNAP_ERRORS_STRICT=1.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

strict=${SNAP_ERRORS_STRICT:-0}
good=errgood$$
snaps=$FORKD_HOME/snapshots
cases=0

snap_take "$good" --no-rng
rc=0
bounded 120 "$FORKD" fork --tag "$good" -n 2 --wait --timeout-secs "$(scaled 60)" >"$WORK/control.log" 2>&1 || rc=$?
((rc == 0)) || { cat "$WORK/control.log"; fail "control: forking the unspoilt snapshot exited $rc"; }
ok "control: the unspoilt snapshot forks (2 children, exit 0)"

# spoil NAME: copy the good snapshot to tag NAME (its snapshot.json names it).
spoil() {
	local t=$1
	cp -a --sparse=always "$snaps/$good" "$snaps/$t"
	sed -i "s/\"tag\": \"$good\"/\"tag\": \"$t\"/" "$snaps/$t/snapshot.json"
}

# flip_byte FILE OFFSET: invert one byte in place.
flip_byte() {
	local b
	b=$(od -A n -t u1 -j "$2" -N 1 "$1" | tr -d ' ')
	printf '%b' "\\x$(printf %02x $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# put_u32 FILE OFFSET VALUE: write a little-endian 32-bit value in place.
put_u32() {
	printf '%b' "\\x$(printf %02x $(($3 & 255)))\\x$(printf %02x $((($3 >> 8) & 255)))\\x$(printf %02x $((($3 >> 16) & 255)))\\x$(printf %02x $((($3 >> 24) & 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# payload_at FILE SECTION FRACTION%: offset of a byte FRACTION% into the
# payload of section number SECTION (0-based), walking the section headers
# (src/snapshot/vmstate.h: 32-byte file header; 24-byte section headers with
# the payload length at +8; payloads padded to 8 bytes).
payload_at() {
	local file=$1 want=$2 pct=$3 off=32 i len
	for ((i = 0; ; i++)); do
		len=$(od -A n -t u8 -j $((off + 8)) -N 8 "$file" | tr -d ' ')
		[[ -n $len ]] || fail "$file has no section $want"
		if ((i == want)); then
			echo $((off + 24 + len * pct / 100))
			return
		fi
		off=$((off + 24 + (len + 7) / 8 * 8))
	done
}

json_set() { # TAG FIELD NEWVALUE: replace one field of snapshot.json
	sed -i -E "s/(\"$2\": )[^,]*(,?)\$/\1$3\2/" "$snaps/$1/snapshot.json"
	grep -Eq "\"$2\": $3,?\$" "$snaps/$1/snapshot.json" || fail "could not set $2 in $1/snapshot.json"
}

# expect_refusal CASE TAG NAMES CAUSE_REGEX: fork TAG must fail with one
# line on stderr naming NAMES (a fixed string: the file or the tag) and
# matching CAUSE_REGEX.
expect_refusal() {
	local what=$1 tag=$2 names=$3 cause=$4 rc=0 before after lines line left
	before=$(find "$FORKD_HOME" | sort)
	bounded 60 "$FORKD" fork --tag "$tag" -n 3 --wait --timeout-secs "$(scaled 20)" \
		>"$WORK/case.out" 2>"$WORK/case.err" || rc=$?
	cases=$((cases + 1))
	lines=$(wc -l <"$WORK/case.err")
	line=$(head -n 1 "$WORK/case.err")
	echo "  $what:"
	sed 's/^/    | /' "$WORK/case.err" "$WORK/case.out"
	((rc != 0 && rc != 124)) || fail "$what: exit status $rc"
	[[ ! -s $WORK/case.out ]] || fail "$what: printed on stdout"
	((lines == 1)) || fail "$what: $lines lines on stderr, expected one"
	[[ $line == *"$names"* ]] || fail "$what: the message does not name '$names'"
	[[ $line =~ $cause ]] || fail "$what: the message does not match /$cause/"
	left=$(compgen -G "/tmp/forkd-fork-$tag-*" || true)
	[[ -z $left ]] || fail "$what: left $left behind"
	no_leftovers "$tag" "/tmp/forkd-fork-$tag"
	after=$(find "$FORKD_HOME" | sort)
	[[ $before == "$after" ]] || fail "$what: files under FORKD_HOME changed: $(diff <(echo "$before") <(echo "$after") | tail -n +2)"
	echo "    ok: exit $rc, one line naming it, nothing left behind"
}

t=nomem$$
spoil "$t"
rm "$snaps/$t/memory.bin"
expect_refusal "memory.bin missing" "$t" "$t/memory.bin" "No such file"

t=shortmem$$
spoil "$t"
truncate -s 100M "$snaps/$t/memory.bin"
expect_refusal "memory.bin truncated to 100 MiB" "$t" "$t/memory.bin" "truncated"

t=longmem$$
spoil "$t"
truncate -s 300M "$snaps/$t/memory.bin"
expect_refusal "memory.bin too long (300 MiB)" "$t" "$t/memory.bin" "268435456 bytes of RAM"

t=novmstate$$
spoil "$t"
rm "$snaps/$t/vmstate"
expect_refusal "vmstate missing" "$t" "$t/vmstate" "No such file"

size=$(stat -c %s "$snaps/$good/vmstate")
for sec in 0 1 2; do
	t=flip$sec-$$
	spoil "$t"
	at=$(payload_at "$snaps/$t/vmstate" $sec 50)
	flip_byte "$snaps/$t/vmstate" "$at"
	expect_refusal "vmstate with a flipped byte in section $sec (offset $at of $size)" "$t" \
		"$t/vmstate" "section $sec .*checksum mismatch"
done

t=version$$
spoil "$t"
put_u32 "$snaps/$t/vmstate" 8 2
expect_refusal "vmstate format version 2" "$t" "$t/vmstate" "version 2.*reads version 1"

t=shortvms$$
spoil "$t"
truncate -s $((size / 2)) "$snaps/$t/vmstate"
expect_refusal "vmstate truncated" "$t" "$t/vmstate" "truncated"

t=nojson$$
spoil "$t"
rm "$snaps/$t/snapshot.json"
expect_refusal "snapshot.json missing" "$t" "$t/snapshot.json" "No such file"

t=notjson$$
spoil "$t"
echo '{ "tag": ' >"$snaps/$t/snapshot.json"
expect_refusal "snapshot.json not JSON" "$t" "$t/snapshot.json" "line [0-9]+"

t=jsontype$$
spoil "$t"
json_set "$t" mem_mib '"lots"'
expect_refusal "snapshot.json: mem_mib is a string" "$t" "$t/snapshot.json" "[Ee]xpected integer"
if [[ $(cat "$WORK/case.err") != *mem_mib* ]]; then
	((strict)) && fail "the message does not name the field mem_mib"
	echo "    KNOWN ISSUE: the message does not name the field (mem_mib)"
fi

t=jsonrange$$
spoil "$t"
json_set "$t" vcpus 0
expect_refusal "snapshot.json: vcpus 0" "$t" "$t/snapshot.json" "vcpus 0 out of range"

t=jsonver$$
spoil "$t"
json_set "$t" format_version 7
expect_refusal "snapshot.json: format_version 7" "$t" "$t/snapshot.json" "version 7"

t=jsonmem$$
spoil "$t"
json_set "$t" mem_mib 128
expect_refusal "snapshot.json: mem_mib 128, vmstate says 256 MiB" "$t" "$t" \
	"vmstate and snapshot.json disagree"

t=unknown$$
expect_refusal "unknown tag" "$t" "'$t'" "no snapshot"

t=../x$$
expect_refusal "invalid tag ../x$$" "$t" "'$t'" "invalid tag"

ok "$cases broken snapshots or tags refused with one line each, nothing left behind"
