#!/bin/sh
# hostile_virtio: a guest posts malformed virtqueue chains and queue set-ups
# to virtio-blk and virtio-rng and checks each is refused and recoverable.
# The VMM must stay up and exit 0. When the ASan/UBSan build exists next to
# FORKD (build-san/forkd beside build/forkd), the guest runs under it too.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
set -eu

[ -c /dev/kvm ] || { echo "skip: no /dev/kvm"; exit 77; }
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

cd "$WORK"
{ printf 'FORKD-BLK-MAGIC\0'; head -c $((64 * 1024 - 16)) /dev/zero; } >disk.img
sha256sum disk.img >disk.sha256

run() {
	name=$1
	bin=$2
	rc=0
	TMPDIR="$WORK" "$bin" vm run --kernel "$GUEST" --console "console-$name.txt" \
		--timeout-secs "$(scaled 120)" --mem-mib 256 --disk disk.img >"forkd-$name.log" 2>&1 || rc=$?
	cat "console-$name.txt" 2>/dev/null || true
	if [ "$rc" -ne 0 ]; then
		echo "FAIL ($name): forkd exited with status $rc"
		cat "forkd-$name.log"
		exit 1
	fi
	grep -q '^SUCCESS' "console-$name.txt" || { echo "FAIL ($name): no SUCCESS"; exit 1; }
	if grep -Eq 'AddressSanitizer|runtime error|LeakSanitizer' "forkd-$name.log"; then
		echo "FAIL ($name): sanitizer report"
		cat "forkd-$name.log"
		exit 1
	fi
	n=$(grep -c 'device needs reset' "forkd-$name.log" || true)
	echo "ok ($name): exit status 0, SUCCESS, no sanitizer report, $n device errors logged"
}

run plain "$FORKD"
san="$(dirname "$(dirname "$FORKD")")/build-san/forkd"
if [ -x "$san" ]; then
	run sanitized "$san"
else
	echo "note: $san not built (make SANITIZE=1); sanitized run skipped"
fi
sha256sum -c --quiet disk.sha256 || { echo "FAIL: disk image modified"; exit 1; }
echo "ok: disk image unchanged"
