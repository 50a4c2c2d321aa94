#!/bin/sh
# virtio-blk: boot tests/guests/virtio_blk.c with three disks and check that
# the guest passes and that no image changed (writes go to a private
# copy-on-write overlay). Runs the guest twice: the second VM must see the
# base image again, not the first VM's writes. Contract: tests/vmm/run.sh
# sets FORKD, GUEST and WORK; exit 0 pass, 77 skip, else fail.
set -eu

[ -c /dev/kvm ] || { echo "skip: no /dev/kvm"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 is needed to build the images"; exit 77; }
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

cd "$WORK"
python3 - <<'PY'
import struct
salt = 0x5eed5eed00000000
with open("vda.img", "wb") as f:
    for s in range(2048):
        sec = struct.pack("<Q", s ^ salt) + bytes(504)
        if s == 0:
            sec = b"FORKD-BLK-MAGIC\0" + bytes(496)
        f.write(sec)
with open("ro.img", "wb") as f:
    f.write(b"FORKD-RO-DISK" + bytes(64 * 1024 - 13))
with open("odd.img", "wb") as f:
    f.write(bytes(range(256)) * 16 + b"\x55" * 100)
PY
sha256sum vda.img ro.img odd.img >images.sha256
mkdir overlays

for run in 1 2; do
	rc=0
	TMPDIR="$WORK/overlays" "$FORKD" vm run --kernel "$GUEST" --console "console$run.txt" \
		--timeout-secs "$(scaled 60)" --disk vda.img --disk ro.img,ro --disk odd.img \
		>"forkd$run.log" 2>&1 || rc=$?
	cat "console$run.txt" 2>/dev/null || true
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: run $run: forkd exited with status $rc"
		cat "forkd$run.log"
		exit 1
	fi
	grep -q '^SUCCESS' "console$run.txt" || { echo "FAIL: run $run: no SUCCESS on the console"; exit 1; }
	if grep -Eq 'AddressSanitizer|runtime error|LeakSanitizer' "forkd$run.log"; then
		echo "FAIL: run $run: sanitizer report"
		cat "forkd$run.log"
		exit 1
	fi
	grep -q 'odd.img.*not a multiple of 512' "forkd$run.log" ||
		{ echo "FAIL: no warning about odd.img's size"; cat "forkd$run.log"; exit 1; }
	echo "ok: run $run: exit status 0, SUCCESS, odd-size warning printed"
	sha256sum -c --quiet images.sha256 || { echo "FAIL: an image was modified"; exit 1; }
	echo "ok: run $run: images unchanged (sha256)"
	[ -z "$(ls -A overlays)" ] || { echo "FAIL: overlay files left behind:"; ls -la overlays; exit 1; }
	echo "ok: run $run: no overlay file left in \$TMPDIR"
done
echo "ok: second VM saw the base image again, not the first VM's writes"
