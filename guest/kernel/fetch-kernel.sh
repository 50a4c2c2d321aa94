#!/usr/bin/env bash
# Fetch Debian 12's kernel into the forkd cache: by default the generic one
# (linux-image-amd64 → the versioned linux-image-6.1.0-*-amd64 package),
# which has the VM generation ID driver (CONFIG_VMGENID) that children need
# to reseed their random number generator at once; --flavour cloud takes
# linux-image-cloud-amd64 instead (no VMGENID, EXT4 built in).
#
# Layout under ${FORKD_CACHE:-$HOME/.cache/forkd}/kernel/:
#   <release>_<debian-version>/
#       vmlinuz       bzImage (symlink into boot/)
#       vmlinux       uncompressed ELF kernel (PVH note + 64-bit entry), cut
#                     out of the bzImage so a VMM can skip the decompressor
#       config        kernel .config (symlink into boot/)
#       modules       /lib/modules/<release> of the package (symlink)
#       release       the kernel release (uname -r)
#       package       package name and version
#   current -> <release>_<debian-version>   (of the flavour asked for)
#
# Idempotent: when "current" is complete, nothing is downloaded.  Pass
# --refresh to ask apt for the newest candidate (and switch "current" to it).
#
# Usage: guest/kernel/fetch-kernel.sh [--flavour generic|cloud] [--refresh] [--quiet]
#   FORKD_KERNEL_FLAVOUR sets the flavour's default (generic).
#   stdout: vmlinuz=… vmlinux=… config=… modules=… dir=… lines
#   stderr: progress
set -euo pipefail

flavour=${FORKD_KERNEL_FLAVOUR:-generic}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${FORKD_CACHE:-$HOME/.cache/forkd}
KROOT=$CACHE/kernel

refresh=0
quiet=0
while (($#)); do
    case $1 in
        --refresh) refresh=1 ;;
        --quiet) quiet=1 ;;
        --flavour)
            (($# >= 2)) || { echo "fetch-kernel: --flavour needs generic or cloud" >&2; exit 2; }
            flavour=$2
            shift
            ;;
        -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fetch-kernel: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case $flavour in
    generic) META_PKG=linux-image-amd64 ;;
    cloud) META_PKG=linux-image-cloud-amd64 ;;
    *) echo "fetch-kernel: unknown flavour '$flavour': use generic or cloud" >&2; exit 2 ;;
esac

log() { [[ $quiet == 1 ]] || echo "fetch-kernel: $*" >&2; }
die() { echo "fetch-kernel: error: $*" >&2; exit 1; }

need_tools() {
    local missing=() t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if ((${#missing[@]})); then
        die "missing tools: ${missing[*]} (run scripts/setup.sh as root to install them)"
    fi
}

need_tools apt-get apt-cache dpkg-deb sha256sum flock od dd
mkdir -p "$KROOT"

# One fetch at a time per cache.
exec 9>"$KROOT/.lock"
flock 9

tmp=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() { [[ -z $tmp ]] || rm -rf "$tmp"; }
trap cleanup EXIT

# A scratch directory that apt's unprivileged download user can write to.
make_tmp() {
    if [[ -z $tmp ]]; then
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/forkd-kernel.XXXXXX")
        if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then
            chown _apt "$tmp"
        fi
    fi
}

# Value of field $2 (e.g. Depends) of the candidate version of package $1.
apt_field() {
    apt-cache show --no-all-versions "$1" 2>/dev/null |
        sed -n "s/^$2: //p" | head -n1
}

ensure_lists() {
    if ! apt-cache show --no-all-versions "$META_PKG" >/dev/null 2>&1; then
        [[ $(id -u) == 0 ]] || die "apt does not know $META_PKG; run 'apt-get update' as root (or run this script as root)"
        log "apt lists lack $META_PKG; running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        apt-cache show --no-all-versions "$META_PKG" >/dev/null 2>&1 ||
            die "$META_PKG is not available from the configured Debian mirrors (is this Debian 12 with 'main'?)"
    fi
}

# apt-get download PKG=VER… into $tmp.
apt_download() {
    make_tmp
    log "downloading $*"
    (cd "$tmp" && apt-get download -q "$@" >&2) || die "apt-get download $* failed"
}

dir_complete() { [[ -f $1/.complete ]]; }

# Is the kernel in $1 of the flavour asked for? (Releases: 6.1.0-N-amd64,
# 6.1.0-N-cloud-amd64.)
flavour_matches() {
    local rel
    rel=$(cat "$1/release" 2>/dev/null) || return 1
    case $flavour in
        cloud) [[ $rel == *-cloud-amd64 ]] ;;
        generic) [[ $rel == *-amd64 && $rel != *-cloud-amd64 ]] ;;
    esac
}

# Cut the compressed payload out of a bzImage and decompress it to an ELF.
extract_vmlinux() {
    local bz=$1 out=$2 setup_sects off len start magic
    setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
    off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
    len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
    ((setup_sects == 0)) && setup_sects=4
    start=$(((setup_sects + 1) * 512 + off))
    magic=$(od -An -tx1 -j "$start" -N4 "$bz" | tr -d ' \n')
    local dec
    case $magic in
        02214c18) dec="lz4 -dc" ;;
        28b52ffd) dec="zstd -dcq" ;;
        1f8b*) dec="gzip -dc" ;;
        fd377a58) dec="xz -dc" ;;
        *) log "bzImage payload has unknown magic $magic; not extracting vmlinux"; return 0 ;;
    esac
    if ! command -v "${dec%% *}" >/dev/null 2>&1; then
        log "${dec%% *} not installed; not extracting vmlinux (run scripts/setup.sh)"
        return 0
    fi
    log "extracting vmlinux (payload ${dec%% *}, $len bytes)"
    # shellcheck disable=SC2086  # $dec is a command plus its options
    tail -c +"$((start + 1))" "$bz" | head -c "$len" | $dec >"$out.tmp" 2>/dev/null || true
    if [[ $(od -An -tx1 -N4 "$out.tmp" | tr -d ' \n') == 7f454c46 ]]; then
        mv "$out.tmp" "$out"
    else
        rm -f "$out.tmp"
        log "decompressed payload is not an ELF file; not extracting vmlinux"
    fi
}

# Download and unpack the image package that META_PKG's candidate depends on.
fetch_image() {
    ensure_lists
    local dep pkg
    dep=$(apt_field "$META_PKG" Depends)
    pkg=$(tr ',' '\n' <<<"$dep" | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)
    [[ -n $pkg ]] || die "cannot find the versioned image package in '$META_PKG' Depends: $dep"
    local ver
    ver=$(apt_field "$pkg" Version)
    [[ -n $ver ]] || die "apt has no candidate version of $pkg"
    local release=${pkg#linux-image-}
    local name=${release}_${ver}
    local dir=$KROOT/$name
    if dir_complete "$dir"; then
        log "cache hit: $name"
    else
        apt_download "$pkg=$ver"
        local deb
        deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
        [[ -n $deb ]] || die "apt-get download produced no .deb for $pkg"
        rm -rf "$dir.partial"
        mkdir -p "$dir.partial"
        log "unpacking $(basename "$deb")"
        dpkg-deb -x "$deb" "$dir.partial" || die "dpkg-deb -x $deb failed"
        [[ -f $dir.partial/boot/vmlinuz-$release ]] || die "package has no boot/vmlinuz-$release"
        [[ -d $dir.partial/lib/modules/$release ]] || die "package has no lib/modules/$release"
        ln -s "boot/vmlinuz-$release" "$dir.partial/vmlinuz"
        ln -s "boot/config-$release" "$dir.partial/config"
        ln -s "lib/modules/$release" "$dir.partial/modules"
        echo "$release" >"$dir.partial/release"
        printf 'package=%s\nversion=%s\n' "$pkg" "$ver" >"$dir.partial/package"
        extract_vmlinux "$dir.partial/boot/vmlinuz-$release" "$dir.partial/vmlinux"
        touch "$dir.partial/.complete"
        rm -rf "$dir"
        mv "$dir.partial" "$dir"
    fi
    ln -sfn "$name" "$KROOT/current.new"
    mv -T "$KROOT/current.new" "$KROOT/current"
}

if [[ $refresh == 1 ]] || ! dir_complete "$KROOT/current" || ! flavour_matches "$KROOT/current"; then
    fetch_image
else
    log "cache hit: $(readlink "$KROOT/current")"
fi
dir=$(cd "$KROOT/current" && pwd -P)

release=$(cat "$dir/release")
echo "dir=$dir"
echo "release=$release"
echo "vmlinuz=$dir/vmlinuz"
[[ -f $dir/vmlinux ]] && echo "vmlinux=$dir/vmlinux"
echo "config=$dir/config"
echo "modules=$dir/modules"
exit 0
