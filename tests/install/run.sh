#!/usr/bin/env bash
# make install, checked: `make install DESTDIR=TMP PREFIX=/usr` lays out the
# binary, the guest assets `forkd image build` runs, the docs, the man page,
# bash completion, the systemd unit and LICENSE; the installed binary prints
# the version of the VERSION file, finds its image builder and the Python
# SDK (forkd mcp) under PREFIX/share/forkd, and the completion completes verbs and options.
# `make uninstall` removes it all again. No KVM needed.
#   tests/install/run.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: tests/install/run.sh BUILD_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { # name command...
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "${out:0:400}"; fi
}

dest=$(mktemp -d /tmp/forkd-install.XXXXXX)
chmod 0755 "$dest"
trap 'rm -rf "$dest"' EXIT
if ! out=$(make -s -C "$repo" BUILD="$build" DESTDIR="$dest" PREFIX=/usr install 2>&1); then
	bad "make install" "$out"
	echo "$pass passed, $fail failed"
	exit 1
fi
ok "make install DESTDIR=... PREFIX=/usr"
u=$dest/usr
version=$(cat "$repo/VERSION")
for f in bin/forkd share/forkd/guest/image/build.sh share/forkd/guest/init/init.c \
	share/forkd/guest/init/Makefile share/forkd/guest/agent/agent.py \
	share/forkd/guest/kernel/fetch-kernel.sh share/forkd/guest/kernel/fast-boot.cmdline \
	share/doc/forkd/README.md share/doc/forkd/API.md share/doc/forkd/openapi.yaml \
	share/doc/forkd/LICENSE share/man/man1/forkd.1.gz share/bash-completion/completions/forkd \
	lib/systemd/system/forkd.service; do
	[[ -s $u/$f ]] || bad "installed $f" "missing or empty"
done
[[ -x $u/bin/forkd && -x $u/share/forkd/guest/image/build.sh ]] &&
	ok "binary and image builder installed executable" || bad "executables" "not executable"
check "forkd --version is VERSION ($version)" test "$("$u/bin/forkd" --version)" == "forkd $version"
check "man page from --help, every verb's options in it" sh -c "zcat '$u/share/man/man1/forkd.1.gz' | grep -q '^.TH FORKD' &&
	zcat '$u/share/man/man1/forkd.1.gz' | grep -q '^.SS forkd fork' &&
	zcat '$u/share/man/man1/forkd.1.gz' | grep -q 'keep\\-workdir'"
check "unit runs the installed binary" grep -q '^ExecStart=/usr/bin/forkd serve' \
	"$u/lib/systemd/system/forkd.service"
check "unit points at the installed docs" grep -q 'file:///usr/share/doc/forkd/API.md' \
	"$u/lib/systemd/system/forkd.service"
check "LICENSE is Apache-2.0" grep -q 'Apache License' "$u/share/doc/forkd/LICENSE"
# The installed binary runs the installed builder: as nobody it stops at the
# builder's own root check, which only build.sh says.
out=$(setpriv --reuid 65534 --regid 65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=/nonexistent \
	"$u/bin/forkd" image build --tag t 2>&1)
[[ $out == *"image build: error: needs root"* ]] && ok "installed binary finds PREFIX/share/forkd/guest/image/build.sh" ||
	bad "builder lookup" "$out"
# forkd mcp runs the installed SDK: it answers an MCP ping with the files
# under PREFIX/share/forkd/sdk/python, the source tree out of reach.
out=$(printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"ping"}' |
	env -i PATH=/usr/bin:/bin HOME=/nonexistent "$u/bin/forkd" mcp --daemon-url http://127.0.0.1:1 2>&1)
[[ -s $u/share/forkd/sdk/python/forkd/mcp.py && -f $u/share/forkd/sdk/python/forkd/py.typed &&
	$out == '{"jsonrpc":"2.0","id":1,"result":{}}' ]] &&
	ok "installed forkd mcp runs PREFIX/share/forkd/sdk/python" || bad "forkd mcp installed" "$out"
# Completion: verbs from `forkd --help`, options from `forkd VERB --help`.
comp() { # words...: what _forkd completes for the last word
	PATH=$u/bin:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _forkd; echo "${COMPREPLY[*]}"' \
		_ "$u/share/bash-completion/completions/forkd" "$@"
}
[[ $(comp forkd sn) == snapshot ]] && ok "completion: forkd sn -> snapshot" || bad "completion verb" "$(comp forkd sn)"
got=$(comp forkd fork --kee)
[[ $got == *--keep* && $got == *--keep-workdir* ]] && ok "completion: forkd fork --kee -> $got" ||
	bad "completion option" "$got"
# The SDK's version is the project's.
grep -q "^version = \"$version\"" "$repo/sdk/python/pyproject.toml" && ok "SDK version is VERSION" ||
	bad "SDK version" "sdk/python/pyproject.toml differs from VERSION ($version)"
grep -q "^  \"version\": \"$version\",\$" "$repo/sdk/typescript/package.json" &&
	grep -q "^export const VERSION = \"$version\";\$" "$repo/sdk/typescript/src/index.ts" &&
	ok "TypeScript SDK version is VERSION" ||
	bad "TypeScript SDK version" "sdk/typescript/package.json or src/index.ts differs from VERSION ($version)"
if out=$(make -s -C "$repo" BUILD="$build" DESTDIR="$dest" PREFIX=/usr uninstall 2>&1) &&
	[[ -z $(find "$dest" -type f) ]]; then
	ok "make uninstall removes every file"
else
	bad "make uninstall" "$out $(find "$dest" -type f | head -5)"
fi
echo "$pass passed, $fail failed"
((fail == 0))
