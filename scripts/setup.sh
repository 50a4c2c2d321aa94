#!/usr/bin/env bash
# Install everything forkd needs to build, test and run, from Debian 12's
# packages, plus the TypeScript SDK's build tools from the npm registry
# (sdk/typescript: `npm ci`, pinned by its package-lock.json). Idempotent:
# re-running installs nothing new.
#   scripts/setup.sh            build + test dependencies
set -euo pipefail

PACKAGES=(
	# build; clang for the fuzz harnesses (libFuzzer, fuzz/)
	build-essential pkg-config clang-format clang
	# make install: the man page from --help
	help2man
	# libraries
	libzstd-dev zlib1g-dev liblz4-dev libcmocka-dev
	libjansson-dev libmicrohttpd-dev libsqlite3-dev libseccomp-dev libmnl-dev libnftnl-dev
	libcurl4-openssl-dev
	# snapshot packs: tar + zstd (libarchive), sha256 (libcrypto); zstd and python3 make test packs
	libarchive-dev libssl-dev zstd
	# guest images and end-to-end tests
	busybox-static cpio e2fsprogs iproute2 iputils-ping nftables python3 socat
	# guest image build and the agent tests; the SDK's pip install test and type check
	python3-numpy python3-pytest python3-pip python3-setuptools python3-mypy
	# the KVM lab (scripts/kvm-lab) for hosts without a usable /dev/kvm
	qemu-system-x86 kmod
	ca-certificates
)

if [[ $(id -u) -ne 0 ]]; then
	SUDO=sudo
	command -v sudo >/dev/null || {
		echo "setup: run as root, or install sudo" >&2
		exit 1
	}
else
	SUDO=
fi

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null ||
		missing+=("$p")
done

if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "setup: all ${#PACKAGES[@]} packages already installed"
fi

# The TypeScript SDK (sdk/typescript) and its tests need node >= 20 and npm;
# the MCP server's tests (tests/mcp) run the official MCP client on it.
# Debian 12's nodejs is 18: a newer node already on PATH (NodeSource,
# nvm...) is kept; without any, Debian's is installed and a warning says
# that its tests will fail until node is 20 or newer.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "setup: installing nodejs npm"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
	echo "setup: warning: node $(node --version) is older than 20: the TypeScript SDK" \
		"(sdk/typescript) needs node >= 20 (e.g. from NodeSource); its tests in" \
		"tests/daemon/run.sh will fail" >&2
fi
# Their npm packages (the SDK's typescript and @types/node; the MCP
# client), exactly as each lock file says; the lab has no network, so this
# happens here. In sdk/typescript `npm ci` also builds dist/ (its prepare
# script).
repo=$(cd "$(dirname "$0")/.." && pwd)
for dir in sdk/typescript tests/mcp; do
	if [[ $repo/$dir/node_modules/.package-lock.json -nt $repo/$dir/package-lock.json ]]; then
		echo "setup: $dir/node_modules is up to date"
	else
		echo "setup: npm ci in $dir"
		npm ci --prefix "$repo/$dir" --no-audit --no-fund
	fi
done

if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "setup: /dev/kvm is not usable by $(id -un): forkd itself needs KVM (load" \
		"kvm_intel/kvm_amd, or add yourself to the kvm group); the tests and the demo run" \
		"in forkd's KVM lab instead (scripts/kvm-lab)"
	if [[ $(id -u) -eq 0 ]]; then
		"$(dirname "$0")/kvm-lab" --prepare
	else
		echo "setup: the lab needs root: run scripts/kvm-lab --prepare as root" >&2
	fi
fi
