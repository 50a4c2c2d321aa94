#!/usr/bin/env bash
# Build a forkd guest image from Debian packages (run by `forkd image build`).
#
# Usage: guest/image/build.sh [--tag TAG] [--extra PKG]... [--force] [--free-mib N]
#
# Writes ${XDG_CACHE_HOME:-~/.cache}/forkd/images/<TAG>/ (TAG default "py"):
#   vmlinuz      Debian's linux-image-amd64 bzImage (guest/kernel/fetch-kernel.sh; it has
#                the VM generation ID driver)
#   vmlinux      its uncompressed ELF (when fetch-kernel.sh could cut it out)
#   initrd.img   uncompressed newc cpio: forkd-init as /init, the virtio and ext4 modules
#   rootfs.ext4  ext4 (mkfs.ext4 -d) with python3, python3-numpy, busybox, the
#                agent, forkd-init as /sbin/init, and the --extra packages
#   cmdline      the kernel command line this image expects
#   image.json   tag, created, kernel, packages, sizes, sha256 of rootfs.ext4
#
# The root file system is the apt dependency closure of the packages, each
# unpacked with dpkg-deb -x (no maintainer scripts run), then trimmed.
# Cached: the .debs in ~/.cache/forkd/debs/; the image is rebuilt only when
# an input changed (sources here, the apt lists, the kernel, --extra); a
# rebuild with the same inputs returns at once.  --force rebuilds anyway.
# Needs root: the image's files must be owned by root, and the build checks
# the result by running the image's python3 in a chroot.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE=${FORKD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forkd}
FORMAT=1

BASE_PACKAGES=(python3 python3-numpy busybox-static)
# In the dependency closure but only needed to install packages, which the
# image never does (dpkg-deb -x runs no maintainer scripts); busybox has tar.
DROP_PACKAGES=(dpkg tar)
# The initramfs loads these (and their dependencies) before mounting /.
# ext4 (and the crc32c its metadata checksums ask the crypto API for) is a
# module in the generic kernel, built in in the cloud one (then skipped).
WANTED_MODULES=(virtio_mmio virtio_blk virtio_net vmw_vsock_virtio_transport virtio_rng
    crc32c_generic ext4)
CMDLINE="console=ttyS0 root=/dev/vda rw rootfstype=ext4 quiet reboot=t panic=-1 nokaslr"
CMDLINE+=" tsc=reliable i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"
# Boot-time work a forkd guest does not need (guest/kernel/fast-boot.md).
CMDLINE+=" $(cat "$(dirname "${BASH_SOURCE[0]}")/../kernel/fast-boot.cmdline")"

tag=py
extras=()
force=0
free_mib=256

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "image build: error: $*" >&2; exit 1; }
log() { echo "image build: $*" >&2; }

while (($#)); do
    case $1 in
        --tag) (($# >= 2)) || die "--tag needs a value"; tag=$2; shift 2 ;;
        --extra) (($# >= 2)) || die "--extra needs a package name"; extras+=("$2"); shift 2 ;;
        --force) force=1; shift ;;
        --free-mib) (($# >= 2)) || die "--free-mib needs a number"; free_mib=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$ && $tag != *..* ]] ||
    die "bad tag '$tag': use 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-', no '..'"
for p in "${extras[@]}"; do
    [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] ||
        die "bad package name '$p' (Debian names are lower case [a-z0-9+.-])"
done
if ! [[ $free_mib =~ ^[0-9]{1,5}$ ]] || ((10#$free_mib > 65536)); then
    die "--free-mib wants a number of MiB from 0 to 65536, got '$free_mib'"
fi
[[ $(id -u) == 0 ]] ||
    die "needs root (files in the image must be owned by root; the build checks python3 in a chroot): run with sudo"

missing=()
for t in apt-get apt-cache dpkg-deb gcc make cpio mkfs.ext4 ldconfig objcopy sha256sum flock \
    /usr/bin/python3 busybox; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/setup.sh as root)"

IMAGES=$CACHE/images
DEBS=$CACHE/debs
out=$IMAGES/$tag
mkdir -p "$IMAGES" "$DEBS"
exec 9>"$IMAGES/.lock-$tag"
flock 9

t_all=$EPOCHREALTIME
declare -a timings=()
stage_n=0
STAGES=7
t_stage=
stage() {
    stage_end
    stage_n=$((stage_n + 1))
    stage_name=$1
    t_stage=$EPOCHREALTIME
    echo "[$stage_n/$STAGES] $1" >&2
}
stage_end() {
    [[ -n $t_stage ]] || return 0
    local dt
    dt=$(awk -v a="$t_stage" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    echo "      $stage_name: ${dt} s" >&2
    timings+=("\"$stage_name\": $dt")
    t_stage=
}

tmp=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() { [[ -z $tmp ]] || rm -rf "$tmp"; }
trap cleanup EXIT
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/forkd-image.XXXXXX")
chmod 0755 "$tmp" # apt-get download runs as _apt and writes below it

# --- 1. kernel -------------------------------------------------------------------------
stage kernel
kinfo=$("$REPO/guest/kernel/fetch-kernel.sh" --quiet) || die "guest/kernel/fetch-kernel.sh failed"
kval() { sed -n "s/^$1=//p" <<<"$kinfo"; }
kdir=$(kval dir)
release=$(kval release)
moddir=$(kval modules)
kpkg=$(sed -n 's/^package=//p' "$kdir/package")
kver=$(sed -n 's/^version=//p' "$kdir/package")

# Fast cache check: everything the image is made of, except what apt would
# resolve (that is checked after resolving, below).
sources_hash() {
    {
        echo "format $FORMAT"
        echo "kernel $kdir"
        echo "extras ${extras[*]}"
        echo "free $free_mib"
        gcc --version | head -n1
        (cd "$REPO" && find guest/image guest/init guest/agent guest/kernel/fast-boot.cmdline -type f \
            ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum)
    } | sha256sum | cut -c1-32
}
lists_id() {
    # The apt lists: any change may change what the packages resolve to.
    stat -c '%n %s %Y' /var/lib/apt/lists/*Packages* 2>/dev/null | sha256sum | cut -c1-32
}
src_key=$(sources_hash)
fast_key="$src_key $(lists_id)"
image_complete() {
    local f
    for f in vmlinuz initrd.img rootfs.ext4 cmdline image.json .key; do
        [[ -s $out/$f ]] || return 1
    done
}
if ((force == 0)) && image_complete && [[ $(sed -n 1p "$out/.key") == "$fast_key" ]]; then
    t_stage=
    echo "image build: cache hit: $out (same inputs; --force rebuilds)" >&2
    echo "$out"
    exit 0
fi

# --- 2. resolve packages -------------------------------------------------------------
stage resolve
mkdir -p "$tmp/apt"
: >"$tmp/apt/status"
# The closure of the packages on an empty system, exactly as apt would install it.
apt_sim() {
    apt-get -s -q -o Dir::State::status="$tmp/apt/status" -o Debug::NoLocking=1 \
        -o APT::Install-Recommends=0 -o APT::Install-Suggests=0 \
        install "${BASE_PACKAGES[@]}" "${extras[@]}" 2>&1
}
if ! sim=$(apt_sim); then
    if grep -q "Unable to locate package" <<<"$sim"; then
        die "apt does not know a package: $(grep 'Unable to locate' <<<"$sim" | head -n3 | tr '\n' ' ')(check --extra; 'apt-get update' refreshes the lists)"
    fi
    die "apt could not resolve the packages: $(tail -n5 <<<"$sim" | tr '\n' ' ')"
fi
mapfile -t resolved < <(sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*/\1=\2/p' <<<"$sim" | LC_ALL=C sort)
((${#resolved[@]} > 0)) || die "apt resolved no packages: $(tail -n3 <<<"$sim" | tr '\n' ' ')"
pkgs=()
for pv in "${resolved[@]}"; do
    drop=0
    for d in "${DROP_PACKAGES[@]}"; do
        [[ ${pv%%=*} == "$d" ]] && drop=1
    done
    ((drop)) || pkgs+=("$pv")
done
log "${#pkgs[@]} packages (${#resolved[@]} in the closure, dropped: ${DROP_PACKAGES[*]})"
full_key=$({
    echo "$src_key"
    printf '%s\n' "${pkgs[@]}"
} | sha256sum | cut -c1-32)
if ((force == 0)) && image_complete && [[ $(sed -n 2p "$out/.key") == "$full_key" ]]; then
    stage_end
    printf '%s\n%s\n' "$fast_key" "$full_key" >"$out/.key"
    echo "image build: cache hit: $out (apt lists changed, the packages did not)" >&2
    echo "$out"
    exit 0
fi

# --- 3. download ---------------------------------------------------------------------
stage download
deb_file() { # name=version -> cached .deb path (":" in versions is "%3a" in file names)
    local n=${1%%=*} v=${1#*=}
    compgen -G "$DEBS/${n}_${v//:/%3a}_*.deb" | head -n1 || true
}
need=()
for pv in "${pkgs[@]}"; do
    [[ -n $(deb_file "$pv") ]] || need+=("$pv")
done
if ((${#need[@]})); then
    log "downloading ${#need[@]} of ${#pkgs[@]} packages into $DEBS"
    mkdir -p "$tmp/dl"
    id _apt >/dev/null 2>&1 && chown _apt "$tmp/dl"
    (cd "$tmp/dl" && apt-get download -q "${need[@]}" >&2) ||
        die "apt-get download failed (network? 'apt-get update' as root refreshes stale lists)"
    mv "$tmp"/dl/*.deb "$DEBS/"
else
    log "all ${#pkgs[@]} packages cached in $DEBS"
fi

# --- 4. root file system tree ------------------------------------------------------------
stage rootfs-tree
root=$tmp/root
mkdir -p "$root"
for pv in "${pkgs[@]}"; do
    deb=$(deb_file "$pv")
    [[ -n $deb ]] || die "no cached .deb for $pv after download"
    dpkg-deb -x "$deb" "$root" || die "dpkg-deb -x $deb failed"
done
before=$(du -sm "$root" | cut -f1)
# Trim what a sandbox never reads: docs, man pages, translations, numpy's tests.
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug,gdb,bash-completion}
# glibc iconv modules: Python has its own codecs.
rm -rf "$root"/usr/lib/x86_64-linux-gnu/gconv
find "$root/usr/lib/python3/dist-packages/numpy" -type d -name tests -prune -exec rm -rf {} +
# Directories and the files the maintainer scripts would have made.
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,root,mnt,home,opt/forkd,etc/forkd,var/tmp,lib/modules/forkd}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$root/etc/group"
echo forkd >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n10.42.0.2\tforkd\n' >"$root/etc/hosts"
echo "# forkd guest: no resolver configured (the host decides; see docs/IMAGE.md)" \
    >"$root/etc/resolv.conf"
printf 'PRETTY_NAME="forkd guest (Debian 12 packages)"\nNAME=forkd\nID=forkd\nID_LIKE=debian\n' \
    >"$root/etc/os-release"
# update-alternatives would point these at the reference BLAS/LAPACK.
for l in blas/libblas.so.3 lapack/liblapack.so.3; do
    d=$root/usr/lib/x86_64-linux-gnu
    [[ -e $d/$l ]] && ln -sfn "$l" "$d/${l#*/}"
done
printf '%s\n' /usr/local/lib /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/blas /usr/lib/x86_64-linux-gnu/lapack >"$root/etc/ld.so.conf"
ldconfig -r "$root" || die "ldconfig -r failed"
# forkd's init and agent
make -s -C "$REPO/guest/init" OUT="$tmp/init" >&2 || die "building guest/init failed (gcc, libc6-dev)"
install -m 0755 "$tmp/init/forkd-init" "$root/sbin/init"
install -m 0644 "$REPO/guest/agent/agent.py" "$root/opt/forkd/agent.py"
# busybox for a shell and the usual tools, where no package provides one
[[ -x $root/bin/busybox ]] || die "busybox-static did not provide /bin/busybox"
while IFS= read -r applet; do
    case $applet in */init | linuxrc | */linuxrc | "") continue ;; esac
    [[ -e $root/$applet || -L $root/$applet ]] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -s /bin/busybox "$root/$applet"
done < <("$root/bin/busybox" --list-full)
# Byte-compile once here (dpkg would have, in postinst); unchecked-hash .pyc
# files are used without comparing them to their sources (fewer syscalls).
pyver=$(sed -n 's/^python3\.\([0-9]*\)=.*/3.\1/p' <<<"$(printf '%s\n' "${pkgs[@]}")" | head -n1)
[[ -n $pyver ]] || die "no python3.X package in the closure"
compile_dirs=("/usr/lib/python$pyver" /usr/lib/python3/dist-packages /opt/forkd)
if /usr/bin/python3 -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$pyver' else 1)"; then
    /usr/bin/python3 -m compileall -q -j0 -s "$root" -p / --invalidation-mode unchecked-hash \
        "${compile_dirs[@]/#/$root}" >/dev/null || die "compileall failed"
else
    chroot "$root" "/usr/bin/python$pyver" -m compileall -q --invalidation-mode unchecked-hash \
        "${compile_dirs[@]}" >/dev/null || die "compileall in the chroot failed"
fi
# The build checks itself: the image's python3 imports numpy.
chroot "$root" /usr/bin/python3 -I -c 'import numpy' ||
    die "the image's python3 cannot import numpy (a missing library? see the error above)"
after=$(du -sm "$root" | cut -f1)
log "tree: ${after} MiB (${before} MiB unpacked, before trimming and byte-compiling)"

# --- 5. modules + initramfs ------------------------------------------------------------------
stage initramfs
declare -A mod_path=()
while IFS= read -r -d '' f; do
    b=${f##*/}
    b=${b%%.ko*}
    mod_path[${b//-/_}]=$f
done < <(find "$moddir/" -name '*.ko*' -print0)
builtin_mods=$(sed 's#.*/##; s#\.ko$##; s#-#_#g' "$moddir/modules.builtin" 2>/dev/null || true)
declare -A mod_state=()
load_order=()
mkdir -p "$tmp/mods"
visit() {
    local name=${1//-/_} dep src dst
    case ${mod_state[$name]:-} in
        2) return 0 ;;
        1) die "module dependency cycle at $name" ;;
    esac
    if [[ -z ${mod_path[$name]:-} ]]; then
        grep -qx "$name" <<<"$builtin_mods" && { mod_state[$name]=2; return 0; }
        die "module $name not found under $moddir (nor built in)"
    fi
    mod_state[$name]=1
    src=${mod_path[$name]} dst=$tmp/mods/$name.ko
    case $src in
        *.ko) cp "$src" "$dst" ;;
        *.ko.xz) xz -dc "$src" >"$dst" ;;
        *.ko.zst) zstd -dcq "$src" >"$dst" ;;
        *.ko.gz) gzip -dc "$src" >"$dst" ;;
    esac
    # Boot speed where the guest kernel is emulated: a module's BTF makes the
    # kernel parse all of vmlinux's BTF at the first load (minutes emulated),
    # and its signature costs an RSA verification. objcopy drops both (the
    # appended signature is not part of the ELF); the kernel does not
    # enforce signatures.
    objcopy --remove-section=.BTF "$dst" || die "cannot strip the BTF of module $name"
    objcopy -O binary -j .modinfo "$dst" "$tmp/modinfo" || die "cannot read .modinfo of $name"
    for dep in $(tr '\0' '\n' <"$tmp/modinfo" | sed -n 's/^depends=//p' | tr ',' ' '); do
        visit "$dep"
    done
    mod_state[$name]=2
    load_order+=("$name")
}
for m in "${WANTED_MODULES[@]}"; do
    visit "$m"
done
log "modules: ${load_order[*]}"
{
    echo "# Kernel modules for $release, in load order (forkd-init loads them)."
    for m in "${load_order[@]}"; do
        echo "/lib/modules/forkd/$m.ko"
    done
} >"$tmp/modules.list"
for m in "${load_order[@]}"; do
    install -m 0644 "$tmp/mods/$m.ko" "$root/lib/modules/forkd/$m.ko"
done
install -m 0644 "$tmp/modules.list" "$root/etc/forkd/modules"
echo "$release" >"$root/etc/forkd/kernel-release"

ird=$tmp/initrd
mkdir -p "$ird"/{dev,proc,newroot,etc/forkd,lib/modules/forkd}
install -m 0755 "$tmp/init/forkd-init" "$ird/init"
install -m 0644 "$tmp/modules.list" "$ird/etc/forkd/modules"
for m in "${load_order[@]}"; do
    install -m 0644 "$tmp/mods/$m.ko" "$ird/lib/modules/forkd/$m.ko"
done
mknod -m 0600 "$ird/dev/console" c 5 1
find "$ird" -exec touch -h -d @0 {} +
(cd "$ird" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) >"$tmp/initrd.img" || die "cpio failed"

# --- 6. ext4 -----------------------------------------------------------------------------------
stage ext4
{
    echo "tag=$tag"
    echo "key=$full_key"
    echo "kernel=$release"
} >"$root/etc/forkd/image"
printf '%s\n' "${pkgs[@]}" >"$root/etc/forkd/packages"
used_mib=$(du -sm "$root" | cut -f1)
size_mib=$(((used_mib * 11 / 10 + free_mib + 63) / 64 * 64))
# No journal (each child's disk is a throwaway copy-on-write layer) and no
# metadata checksums (crc32c runs in the emulated guest kernel on KVM-PVM);
# inode tables written now, so no ext4lazyinit thread works in the guest.
truncate -s "${size_mib}M" "$tmp/rootfs.ext4"
mkfs.ext4 -q -F -L forkd-root -d "$root" -m 0 -O ^has_journal,^metadata_csum \
    -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 "$tmp/rootfs.ext4" ||
    die "mkfs.ext4 -d failed"

# --- 7. write the image ---------------------------------------------------------------------
stage write
new=$IMAGES/.$tag.new
rm -rf "$new"
mkdir -p "$new"
cp -L "$kdir/vmlinuz" "$new/vmlinuz"
[[ -f $kdir/vmlinux ]] && cp -L "$kdir/vmlinux" "$new/vmlinux"
mv "$tmp/initrd.img" "$new/initrd.img"
mv "$tmp/rootfs.ext4" "$new/rootfs.ext4"
echo "$CMDLINE" >"$new/cmdline"
rootfs_sha=$(sha256sum "$new/rootfs.ext4" | cut -d' ' -f1)
stage_end
total=$(awk -v a="$t_all" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
sz() { stat -c %s "$new/$1"; }
json_list() { # "a" "b" -> "a", "b"
    local first=1 x
    for x in "$@"; do
        ((first)) || printf ', '
        printf '"%s"' "$x"
        first=0
    done
}
{
    echo "{"
    echo "  \"format\": $FORMAT,"
    echo "  \"tag\": \"$tag\","
    echo "  \"created\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"key\": \"$full_key\","
    echo "  \"kernel\": {\"release\": \"$release\", \"package\": \"$kpkg\", \"version\": \"$kver\"},"
    echo "  \"cmdline\": \"$CMDLINE\","
    echo "  \"modules\": [$(json_list "${load_order[@]}")],"
    echo "  \"extras\": [$(json_list "${extras[@]}")],"
    echo "  \"packages\": [$(json_list "${pkgs[@]}")],"
    echo "  \"sizes\": {\"vmlinuz\": $(sz vmlinuz), \"initrd\": $(sz initrd.img),"
    echo "            \"rootfs\": $(sz rootfs.ext4), \"rootfs_used_mib\": $used_mib},"
    echo "  \"rootfs_sha256\": \"$rootfs_sha\","
    echo "  \"agent\": \"/opt/forkd/agent.py\", \"init\": \"/sbin/init\","
    echo "  \"build_seconds\": {$(IFS=,; echo "${timings[*]}"), \"total\": $total}"
    echo "}"
} >"$new/image.json"
printf '%s\n%s\n' "$fast_key" "$full_key" >"$new/.key"
if [[ -e $out ]]; then
    mv "$out" "$IMAGES/.$tag.old"
fi
mv "$new" "$out"
rm -rf "$IMAGES/.$tag.old"

log "built $out in $total s: rootfs ${used_mib} MiB used of ${size_mib} MiB, initrd $(($(stat -c %s "$out/initrd.img") / 1024)) KiB"
echo "$out"
