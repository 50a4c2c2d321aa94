#!/usr/bin/env bash
# Daemon suite: the REST API, restart/re-adoption, the CLI client verbs
# (tests/daemon/test_*.py), the Python SDK (sdk/python/tests), its MCP
# server through the official MCP client (tests/mcp) and the TypeScript SDK
# (sdk/typescript/test), all against a real `forkd serve` on loopback whose
# sandboxes are KVM children of the agent_stub test guest.
#
#   tests/daemon/run.sh BUILD_DIR
#
# Needs python3 with pytest (Debian: python3-pytest), node >= 20 and npm
# (a missing node is a failure, not a skip: scripts/setup.sh installs it;
# node_modules come from `npm ci` when missing), BUILD_DIR/forkd and
# BUILD_DIR/guests/agent_stub.elf. Ends with "N passed, N failed, N
# skipped"; exit 0 when nothing failed, 77 when nothing could run.
set -uo pipefail

if (($# != 1)); then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

py=""
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import pytest' 2>/dev/null; then
		py=$p
		break
	fi
done
if [[ -z $py ]]; then
	echo "SKIP: no python3 with pytest (install python3-pytest; scripts/setup.sh does)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
fi

xml=$(mktemp -d "${TMPDIR:-/tmp}/forkd-daemon-tests.XXXXXX")
trap 'rm -rf "$xml"' EXIT
rc=0
export FORKD_BUILD=$build
unset FORKD_URL FORKD_TOKEN FORKD_TAG
cd "$repo" || exit 1
timeout -k 10 240 "$py" -m pytest -p no:cacheprovider -q -rfEs --junitxml="$xml/daemon.xml" \
	tests/daemon || rc=1
timeout -k 10 120 "$py" -m pytest -p no:cacheprovider -q -rfEs --junitxml="$xml/sdk.xml" \
	sdk/python/tests || rc=1
# The MCP server (forkd mcp) through the official MCP client (tests/mcp):
# Node's test runner, its junit report summed below. node and npm are
# needed, not optional (scripts/setup.sh installs them); no report counts
# as a failure.
if command -v node >/dev/null && command -v npm >/dev/null; then
	if [[ ! -d tests/mcp/node_modules ]] &&
		! npm ci --prefix tests/mcp --no-audit --no-fund >"$xml/npm.log" 2>&1; then
		echo "FAIL: npm ci --prefix tests/mcp:"
		tail -n 20 "$xml/npm.log"
	fi
	timeout -k 10 240 node --test --test-reporter=spec --test-reporter-destination=stdout \
		--test-reporter=junit --test-reporter-destination="$xml/mcp.node.xml" \
		tests/mcp/mcp.test.mjs || rc=1
else
	echo "FAIL: tests/mcp needs node and npm (Debian: nodejs npm; scripts/setup.sh installs them)"
	rc=1
fi

# The TypeScript SDK: node --test over its compiled tests, JUnit XML beside
# pytest's (no file there counts as one failure below).
ts=sdk/typescript
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ! command -v npm >/dev/null || ((node_major < 20)); then
	echo "FAIL: the TypeScript SDK's tests need node >= 20 and npm (found node" \
		"$(node --version 2>/dev/null || echo none)); scripts/setup.sh installs them" >&2
	rc=1
elif [[ ! -d $ts/node_modules ]] && ! npm ci --prefix "$ts" --no-audit --no-fund; then
	echo "FAIL: npm ci in $ts failed (scripts/setup.sh runs it while the registry is reachable)" >&2
	rc=1
elif ! npm run --prefix "$ts" --silent build; then
	echo "FAIL: the TypeScript SDK does not build" >&2
	rc=1
else
	(cd "$ts" && timeout -k 10 180 node --test --test-reporter=spec --test-reporter-destination=stdout \
		--test-reporter=junit --test-reporter-destination="$xml/ts.node.xml" dist/test/*.test.js) || rc=1
fi

"$py" - "$xml"/daemon.xml "$xml"/sdk.xml "$xml"/mcp.node.xml "$xml"/ts.node.xml <<'PY'
import sys
import xml.etree.ElementTree as ET
p = f = s = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        f += 1
        continue
    if path.endswith(".node.xml"):
        # node --test: one <testcase> per test (<testsuite> only around
        # subtests), its outcome in a <failure> or <skipped> child.
        for tc in root.iter("testcase"):
            if tc.find("failure") is not None or tc.find("error") is not None:
                f += 1
            elif tc.find("skipped") is not None:
                s += 1
            else:
                p += 1
        continue
    for ts in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        tests, fails = int(ts.get("tests", 0)), int(ts.get("failures", 0)) + int(ts.get("errors", 0))
        skips = int(ts.get("skipped", 0))
        p += tests - fails - skips
        f += fails
        s += skips
print("%d passed, %d failed, %d skipped" % (p, f, s))
sys.exit(77 if p == 0 and f == 0 else 0)
PY
sum_rc=$?
((rc != 0)) && exit 1
exit $sum_rc
