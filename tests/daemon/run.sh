#!/usr/bin/env bash
# Daemon suite: the REST API, restart/re-adoption, the CLI client verbs
# (tests/daemon/test_*.py), the Python SDK (sdk/python/tests) and its MCP
# server through the official MCP client (tests/mcp, node), all
# against a real `forkd serve` on loopback whose sandboxes are KVM
# children of the agent_stub test guest.
#
#   tests/daemon/run.sh BUILD_DIR
#
# Needs python3 with pytest (Debian: python3-pytest), node and npm, BUILD_DIR/forkd and
# BUILD_DIR/guests/agent_stub.elf. Ends with "N passed, N failed, N skipped";
# exit 0 when nothing failed, 77 when nothing could run.
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
		--test-reporter=junit --test-reporter-destination="$xml/mcp.xml" \
		tests/mcp/mcp.test.mjs || rc=1
else
	echo "FAIL: tests/mcp needs node and npm (Debian: nodejs npm; scripts/setup.sh installs them)"
	rc=1
fi

"$py" - "$xml"/daemon.xml "$xml"/sdk.xml "$xml"/mcp.xml <<'PY'
import sys
import xml.etree.ElementTree as ET
p = f = s = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        f += 1
        continue
    for ts in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        tests, fails = int(ts.get("tests", 0)), int(ts.get("failures", 0)) + int(ts.get("errors", 0))
        skips = int(ts.get("skipped", 0))
        p += tests - fails - skips
        f += fails
        s += skips
    # Node's junit report: a test outside any suite is a testcase of the root.
    for tc in (root.findall("testcase") if root.tag == "testsuites" else []):
        if tc.find("failure") is not None or tc.find("error") is not None:
            f += 1
        elif tc.find("skipped") is not None:
            s += 1
        else:
            p += 1
print("%d passed, %d failed, %d skipped" % (p, f, s))
sys.exit(77 if p == 0 and f == 0 else 0)
PY
sum_rc=$?
((rc != 0)) && exit 1
exit $sum_rc
