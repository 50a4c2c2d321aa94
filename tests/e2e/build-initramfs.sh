#!/usr/bin/env bash
# Build the initramfs of forkd's real-Linux end-to-end test.
#
# Usage: tests/e2e/build-initramfs.sh OUT.cpio
#
# Contents (newc cpio, uncompressed: the guest kernel unpacks it at CPL0,
# which is emulated on KVM-PVM hosts, and gzip there costs minutes):
#   /init                 tests/e2e/init.sh
#   /bin/busybox + links  Debian's busybox-static
#   /bin/vsock-test       tests/e2e/vsock-test.c, gcc -static
#   /lib/modules/*.ko     virtio_mmio, virtio_blk, virtio_net, vsock virtio
#                         transport, virtio_rng and their dependencies
#                         (uncompressed)
#   /lib/modules/load-order   module names in dependency order
#   /dev/console          when run as root
#
# The kernel comes from guest/kernel/fetch-kernel.sh (run here if needed).
# Results are cached under ${FORKD_CACHE:-$HOME/.cache/forkd}/e2e/, keyed on
# a hash of every input, so an unchanged rebuild only copies the file.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE=${FORKD_CACHE:-$HOME/.cache/forkd}
E2E_CACHE=$CACHE/e2e
BUSYBOX=${FORKD_BUSYBOX:-/bin/busybox}

# Modules the test needs; their dependencies are added automatically.
WANTED_MODULES=(virtio_mmio virtio_blk virtio_net vmw_vsock_virtio_transport virtio_rng)

log() { echo "build-initramfs: $*" >&2; }
die() { echo "build-initramfs: error: $*" >&2; exit 1; }

[[ $# == 1 ]] || { echo "usage: $0 OUT.cpio" >&2; exit 2; }
out=$1

missing=()
for t in gcc cpio objcopy readelf sha256sum find sort; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
((${#missing[@]} == 0)) ||
    die "missing tools: ${missing[*]} (run scripts/setup.sh as root to install them)"
[[ -x $BUSYBOX ]] ||
    die "$BUSYBOX not found: install Debian's busybox-static (run scripts/setup.sh)"
if readelf -lW "$BUSYBOX" | grep 'INTERP' >/dev/null; then
    die "$BUSYBOX is dynamically linked; the initramfs needs busybox-static (run scripts/setup.sh)"
fi

kinfo=$("$REPO/guest/kernel/fetch-kernel.sh" --quiet) || die "fetch-kernel.sh failed"
kval() { sed -n "s/^$1=//p" <<<"$kinfo"; }
kdir=$(kval dir)
release=$(kval release)
moddir=$(kval modules)
[[ -d $moddir ]] || die "kernel modules dir $moddir missing"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/forkd-initramfs.XXXXXX")
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

# --- module dependency resolution ------------------------------------------------
# Index: module name (dashes as underscores) -> path of its .ko[.xz|.zst|.gz].
declare -A mod_path=()
while IFS= read -r -d '' f; do
    b=${f##*/}
    b=${b%%.ko*}
    mod_path[${b//-/_}]=$f
done < <(find "$moddir/" \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0)

is_builtin() {
    local name=$1
    [[ -f $moddir/modules.builtin ]] &&
        sed 's#.*/##; s#\.ko$##; s#-#_#g' "$moddir/modules.builtin" | grep -x "$name" >/dev/null
}

# Copy (decompressing) module $1 to $tmp/mods/$1.ko.
stage_module() {
    local name=$1 src=${mod_path[$1]} dst=$tmp/mods/$1.ko
    mkdir -p "$tmp/mods"
    case $src in
        *.ko) cp "$src" "$dst" ;;
        *.ko.xz) xz -dc "$src" >"$dst" || die "cannot decompress $src (need xz-utils)" ;;
        *.ko.zst) zstd -dcq "$src" >"$dst" || die "cannot decompress $src (need zstd)" ;;
        *.ko.gz) gzip -dc "$src" >"$dst" || die "cannot decompress $src" ;;
    esac
    # Boot speed where the guest kernel is emulated: a module's BTF makes the
    # kernel parse all of vmlinux's BTF at the first load (minutes emulated),
    # and checking its signature costs an RSA verification. Both go; the
    # kernel does not enforce signatures (it notes the module as unsigned).
    objcopy --remove-section=.BTF "$dst" || die "cannot strip the BTF of module $1"
}

mod_depends() {
    objcopy -O binary -j .modinfo "$tmp/mods/$1.ko" "$tmp/modinfo" 2>/dev/null ||
        die "cannot read .modinfo of module $1"
    tr '\0' '\n' <"$tmp/modinfo" | sed -n 's/^depends=//p' | tr ',' ' '
}

declare -A mod_state=()   # "" = unseen, 1 = visiting, 2 = done
load_order=()
visit() {
    local name=${1//-/_} dep deps
    case ${mod_state[$name]:-} in
        2) return 0 ;;
        1) die "module dependency cycle at $name" ;;
    esac
    if [[ -z ${mod_path[$name]:-} ]]; then
        if is_builtin "$name"; then
            mod_state[$name]=2
            return 0
        fi
        die "module $name not found under $moddir"
    fi
    mod_state[$name]=1
    stage_module "$name"
    deps=$(mod_depends "$name") || exit 1
    for dep in $deps; do
        visit "$dep"
    done
    mod_state[$name]=2
    load_order+=("$name")
}
for m in "${WANTED_MODULES[@]}"; do
    visit "$m"
done

# --- cache key ----------------------------------------------------------------------
key=$({
    echo "format 2 (uncompressed)"
    echo "kernel $release $(readlink -f "$kdir")"
    sha256sum "$SCRIPT_DIR/build-initramfs.sh" "$SCRIPT_DIR/init.sh" "$SCRIPT_DIR/vsock-test.c" "$BUSYBOX" | cut -d' ' -f1
    gcc --version | head -n1
    for m in "${load_order[@]}"; do
        echo "$m $(sha256sum "$tmp/mods/$m.ko" | cut -d' ' -f1)"
    done
} | sha256sum | cut -c1-16)
cached=$E2E_CACHE/initramfs-$key.cpio

if [[ -f $cached ]]; then
    log "cache hit: $cached"
else
    log "building initramfs for $release (modules: ${load_order[*]})"
    root=$tmp/root
    mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,lib/modules,run,root}
    chmod 1777 "$root/tmp"

    install -m 0755 "$BUSYBOX" "$root/bin/busybox"
    while IFS= read -r applet; do
        [[ -n $applet && $applet != busybox ]] || continue
        [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
    done < <("$BUSYBOX" --list)

    log "compiling vsock-test (gcc -static)"
    gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/vsock-test" "$SCRIPT_DIR/vsock-test.c" ||
        die "compiling vsock-test.c failed (needs gcc and libc6-dev)"
    strip "$root/bin/vsock-test" 2>/dev/null || true

    install -m 0755 "$SCRIPT_DIR/init.sh" "$root/init"

    for m in "${load_order[@]}"; do
        install -m 0644 "$tmp/mods/$m.ko" "$root/lib/modules/$m.ko"
    done
    printf '%s\n' "${load_order[@]}" >"$root/lib/modules/load-order"
    echo "$release" >"$root/etc/kernel-release"

    if [[ $(id -u) == 0 ]]; then
        mknod -m 0600 "$root/dev/console" c 5 1
        mknod -m 0666 "$root/dev/null" c 1 3
    else
        log "not root: no /dev/console node in the archive (init reopens it from devtmpfs)"
    fi

    find "$root" -exec touch -h -d @0 {} +
    mkdir -p "$E2E_CACHE"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc -R 0:0 --reproducible --quiet) >"$tmp/initramfs.cpio" ||
        die "cpio failed"
    mv "$tmp/initramfs.cpio" "$cached"
    log "built $cached ($(stat -c %s "$cached") bytes)"
fi

if [[ $(readlink -f "$out" 2>/dev/null || echo "$out") != "$cached" ]]; then
    cp "$cached" "$out.tmp.$$"
    mv "$out.tmp.$$" "$out"
fi
echo "$out"
