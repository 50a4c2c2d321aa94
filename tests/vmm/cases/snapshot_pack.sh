#!/usr/bin/env bash
# snapshot_pack: `forkd snapshot pack` and `unpack` carry a snapshot and the
# files it boots from to another store (another FORKD_HOME stands in for
# another host). With tests/guests/fork_basic.c, booted from a copy of its
# ELF and with a sparse disk image:
#   1. pack, then unpack into a fresh store as it is and with --tag: every
#      file has the same sha256, snapshot.json names the new tag and the
#      assets in TAG/assets/, memory.bin and the disk stay sparse, and
#      children forked from both unpacked snapshots exit 0;
#   2. an existing tag is refused, naming 'forkd snapshot rm' and --tag;
#   3. a hostile or damaged pack fails with one line saying what is wrong,
#      status 1, and leaves the store as it was (no dot directory): a
#      flipped byte in memory.bin, an altered manifest, a truncated pack,
#      members '../x', '/abs' and a symbolic link, a pack that is no pack;
#   4. --no-assets: the pack holds no kernel or disk; unpack uses the file
#      it was packed from, else an identical one in an image directory
#      (FORKD_CACHE/images/*/), and fails naming the file and its sha256
#      when there is none;
#   5. a diff branch is refused with the compact command to flatten it.
# Contract: tests/vmm/run.sh sets FORKD, GUEST (empty: host-side case) and
# WORK; 0 pass, 77 skip.
: "${FORKD:?}" "${WORK:?}"
guest_elf=$(dirname "$FORKD")/guests/fork_basic.elf
[[ -f $guest_elf ]] || { echo "FAIL: no $guest_elf (run 'make guests')"; exit 1; }
command -v python3 >/dev/null && command -v zstd >/dev/null ||
	{ echo "skip: python3 and zstd are needed to make test packs"; exit 77; }
# Boot from a copy, so the --no-assets case can take it away.
mkdir -p "$WORK/kern"
cp "$guest_elf" "$WORK/kern/fork_basic.elf"
GUEST=$WORK/kern/fork_basic.elf
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

home1=$FORKD_HOME
export FORKD_CACHE=$WORK/cache
mkdir -p "$FORKD_CACHE/images"

sha() { sha256sum "$1" | cut -d' ' -f1; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

# A 16 MiB disk with a few bytes in it: sparse.
truncate -s 16M "$WORK/disk.img"
echo "forkd pack test" | dd of="$WORK/disk.img" bs=1 seek=$((4 << 20)) conv=notrunc status=none

snap_take src --mem-mib 64 --disk "$WORK/disk.img"
rc=0
bounded 60 "$FORKD" fork --tag src -n 2 --wait --timeout-secs "$(scaled 30)" >"$WORK/control.log" 2>&1 || rc=$?
((rc == 0)) || { cat "$WORK/control.log"; fail "control: fork of the source snapshot exited $rc"; }
check_children_exit 2 "$WORK/control.log"

# 1. pack, unpack as is and with --tag, fork.
"$FORKD" snapshot pack src -o "$WORK/src.pack" --json >"$WORK/pack.json" 2>"$WORK/pack.err" ||
	{ cat "$WORK/pack.err"; fail "snapshot pack exited non-zero"; }
[[ ! -s $WORK/pack.err ]] || { cat "$WORK/pack.err"; fail "snapshot pack wrote to stderr"; }
python3 - "$WORK/pack.json" <<'PY' || fail "pack --json misses a field"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["tag"] == "src" and o["format_version"] == 1 and o["bytes"] > 0, o
roles = [f["role"] for f in o["files"]]
assert roles == ["snapshot.json", "vmstate", "memory.bin", "kernel", "disk0"], roles
assert all(f["included"] and len(f["sha256"]) == 64 for f in o["files"]), o["files"]
PY
pack_kib=$(du -k "$WORK/src.pack" | cut -f1)
ok "pack: $pack_kib KiB for 64 MiB of RAM and a 16 MiB disk"

home2=$WORK/home2
mkdir -p "$home2"
FORKD_HOME=$home2 "$FORKD" snapshot unpack "$WORK/src.pack" >"$WORK/unpack1.log" 2>&1 ||
	{ cat "$WORK/unpack1.log"; fail "unpack exited non-zero"; }
FORKD_HOME=$home2 "$FORKD" snapshot unpack "$WORK/src.pack" --tag moved --json >"$WORK/unpack2.json" 2>"$WORK/unpack2.err" ||
	{ cat "$WORK/unpack2.err"; fail "unpack --tag moved exited non-zero"; }
[[ $(json_field "$WORK/unpack2.json" tag) == moved ]] || fail "unpack --json does not name tag moved"
s1=$home1/snapshots/src
for t in src moved; do
	d=$home2/snapshots/$t
	for f in memory.bin vmstate; do
		[[ $(sha "$d/$f") == $(sha "$s1/$f") ]] || fail "$t/$f differs from the packed one"
	done
	[[ $(sha "$d/assets/kernel") == $(sha "$GUEST") ]] || fail "$t/assets/kernel differs from the guest"
	[[ $(sha "$d/assets/disk0") == $(sha "$WORK/disk.img") ]] || fail "$t/assets/disk0 differs from the disk"
	python3 - "$d/snapshot.json" "$t" "$d" <<'PY' || fail "$t/snapshot.json was not rewritten"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["tag"] == sys.argv[2], m["tag"]
assert m["kernel"] == sys.argv[3] + "/assets/kernel", m["kernel"]
assert m["devices"]["disks"][0]["path"] == sys.argv[3] + "/assets/disk0", m["devices"]
PY
	mem_kib=$(du -k "$d/memory.bin" | cut -f1)
	disk_kib=$(du -k "$d/assets/disk0" | cut -f1)
	((mem_kib < 16384)) || fail "$t/memory.bin takes $mem_kib KiB for 64 MiB: not sparse"
	((disk_kib < 1024)) || fail "$t/assets/disk0 takes $disk_kib KiB for 16 MiB: not sparse"
	rc=0
	FORKD_HOME=$home2 bounded 60 "$FORKD" fork --tag "$t" -n 3 --wait --timeout-secs "$(scaled 30)" \
		>"$WORK/fork-$t.log" 2>&1 || rc=$?
	((rc == 0)) || { cat "$WORK/fork-$t.log"; fail "fork of unpacked $t exited $rc"; }
	check_children_exit 3 "$WORK/fork-$t.log"
	ok "unpacked $t: same sha256 everywhere, snapshot.json rewritten, memory.bin $mem_kib KiB and disk $disk_kib KiB on disk, 3 children exit 0"
done

# store_state HOME: every path under HOME/snapshots (dot directories too).
store_state() { (cd "$1/snapshots" && find . | sort); }

# refused NAME PACK REGEX [unpack options]: unpack into home2 fails with
# status 1 and one stderr line matching REGEX; the store is unchanged.
refused() {
	local name=$1 pack=$2 re=$3 rc=0 before
	shift 3
	before=$(store_state "$home2")
	FORKD_HOME=$home2 "$FORKD" snapshot unpack "$pack" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
	((rc == 1)) || { cat "$WORK/$name.err"; fail "$name: status $rc, not 1"; }
	[[ ! -s $WORK/$name.out ]] || fail "$name: wrote to stdout"
	(($(wc -l <"$WORK/$name.err") == 1)) || { cat "$WORK/$name.err"; fail "$name: not one line on stderr"; }
	grep -Eq -- "$re" "$WORK/$name.err" || { cat "$WORK/$name.err"; fail "$name: no /$re/ in the error"; }
	[[ $(store_state "$home2") == "$before" ]] || fail "$name: the store changed"
	ok "$name: $(cat "$WORK/$name.err")"
}

# 2. An existing tag.
refused existing "$WORK/src.pack" "snapshot 'moved' exists.*forkd snapshot rm moved.*--tag" --tag moved

# 3. Hostile and damaged packs, made from the good one's tar.
zstd -q -dc "$WORK/src.pack" >"$WORK/src.tar"
python3 - "$WORK/src.tar" "$WORK" <<'PY' || fail "could not make the test packs"
import io, json, sys, tarfile
src, work = sys.argv[1], sys.argv[2]
members = []
with tarfile.open(src) as t:
    for m in t.getmembers():
        members.append((m, t.extractfile(m).read()))

def write(name, items):
    with tarfile.open(f"{work}/{name}.tar", "w", format=tarfile.PAX_FORMAT) as t:
        for info, data in items:
            if data is None:
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))

def extra(name, info):
    return [members[0], (info, None if info.type != tarfile.REGTYPE else b"x\n")] + members[1:]

# memory.bin with one byte flipped in its first non-zero page.
items = []
for info, data in members:
    if info.name == "snapshot/memory.bin":
        i = next(k for k, b in enumerate(data) if b)
        data = data[:i] + bytes([data[i] ^ 0xff]) + data[i + 1:]
    items.append((info, data))
write("flipped", items)
# The manifest claims another vmstate.
man = json.loads(members[0][1])
man["files"][1]["sha256"] = "0" * 64
write("altered", [(members[0][0], json.dumps(man).encode())] + members[1:])
for name, path in (("dotdot", "../x"), ("absolute", work + "/abs")):
    info = tarfile.TarInfo(path)
    write(name, extra(name, info))
link = tarfile.TarInfo("snapshot/snapshot.json")
link.type = tarfile.SYMTYPE
link.linkname = "/etc/passwd"
write("symlink", [members[0], (link, None)] + members[2:])
PY
for p in flipped altered dotdot absolute symlink; do
	zstd -q -f "$WORK/$p.tar" -o "$WORK/$p.pack"
done
head -c $(($(stat -c %s "$WORK/src.pack") / 2)) "$WORK/src.pack" >"$WORK/truncated.pack"
head -c 4096 /dev/urandom >"$WORK/noise.pack"
refused flipped "$WORK/flipped.pack" "memory.bin: sha256 mismatch" --tag t1
refused altered "$WORK/altered.pack" "vmstate: sha256 mismatch" --tag t2
refused truncated "$WORK/truncated.pack" "truncated" --tag t3
refused dotdot "$WORK/dotdot.pack" "unsafe member name '\.\./x'" --tag t4
refused absolute "$WORK/absolute.pack" "unsafe member name '/" --tag t5
refused symlink "$WORK/symlink.pack" "not a regular file" --tag t6
refused noise "$WORK/noise.pack" "not a forkd pack|damaged" --tag t7
[[ ! -e $WORK/x && ! -e $WORK/abs && ! -e $home2/x ]] || fail "a hostile member was written outside"

# 4. --no-assets.
"$FORKD" snapshot pack src -o "$WORK/na.pack" --no-assets >"$WORK/na.log" 2>&1 ||
	{ cat "$WORK/na.log"; fail "pack --no-assets exited non-zero"; }
zstd -q -dc "$WORK/na.pack" | tar tf - >"$WORK/na.list"
! grep -q '^assets/' "$WORK/na.list" || fail "a --no-assets pack holds assets: $(cat "$WORK/na.list")"
home3=$WORK/home3
mkdir -p "$home3"
FORKD_HOME=$home3 "$FORKD" snapshot unpack "$WORK/na.pack" >"$WORK/na1.log" 2>&1 ||
	{ cat "$WORK/na1.log"; fail "unpack --no-assets pack with the assets in place exited non-zero"; }
grep -q "\"kernel\": \"$GUEST\"" "$home3/snapshots/src/snapshot.json" ||
	fail "unpack did not point the kernel at $GUEST"
# The kernel moves into an image directory; the disk stays where it was.
mkdir -p "$FORKD_CACHE/images/img1"
mv "$GUEST" "$FORKD_CACHE/images/img1/vmlinuz"
FORKD_HOME=$home3 "$FORKD" snapshot unpack "$WORK/na.pack" --tag found >"$WORK/na2.log" 2>&1 ||
	{ cat "$WORK/na2.log"; fail "unpack --no-assets pack with the kernel in an image directory exited non-zero"; }
grep -q "\"kernel\": \"$FORKD_CACHE/images/img1/vmlinuz\"" "$home3/snapshots/found/snapshot.json" ||
	fail "unpack did not find the kernel in the image directory"
rc=0
FORKD_HOME=$home3 bounded 60 "$FORKD" fork --tag found -n 2 --wait --timeout-secs "$(scaled 30)" \
	>"$WORK/fork-found.log" 2>&1 || rc=$?
((rc == 0)) || { cat "$WORK/fork-found.log"; fail "fork of found exited $rc"; }
check_children_exit 2 "$WORK/fork-found.log"
ok "--no-assets: no assets in the pack; unpack uses the file at its source path, else an identical one in an image directory; children exit 0"
rm -rf "$FORKD_CACHE/images/img1"
kernel_sha=$(python3 -c 'import json,sys; print([f for f in json.load(open(sys.argv[1]))["files"] if f["role"] == "kernel"][0]["sha256"])' \
	<(zstd -q -dc "$WORK/na.pack" | tar xOf - manifest.json))
refused no_asset "$WORK/na.pack" "kernel was left out of the pack.*$kernel_sha" --tag t8

# 5. A diff branch is refused (snapshot.json says so; the pack is never made).
cp -a --sparse=always "$s1" "$home1/snapshots/fakediff"
python3 - "$home1/snapshots/fakediff/snapshot.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m.update(tag="fakediff", parent="src", memory="diff", parent_created=m["created"])
json.dump(m, open(sys.argv[1], "w"))
PY
rc=0
"$FORKD" snapshot pack fakediff -o "$WORK/diff.pack" >"$WORK/diff.log" 2>&1 || rc=$?
((rc == 1)) && grep -q "forkd snapshot compact --from fakediff" "$WORK/diff.log" ||
	{ cat "$WORK/diff.log"; fail "pack of a diff branch: status $rc, no compact hint"; }
[[ ! -e $WORK/diff.pack ]] && ! compgen -G "$WORK/diff.pack.*" >/dev/null || fail "a refused pack left a file"
ok "diff branch refused: $(cat "$WORK/diff.log")"
