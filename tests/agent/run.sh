#!/usr/bin/env bash
# The agent suite: guest/agent/agent.py over TCP on the host, forkd-init's
# host-testable pieces (module list, netns network set-up, PID-namespace
# supervisor), and `forkd image build` with the image's init + agent run as
# PID 1 of a container. Needs root for namespaces, RNDADDENTROPY and loop
# mounts (those tests say why they skip otherwise) and network access to the
# Debian mirror the first time (the .debs are cached).
#
# Usage: tests/agent/run.sh [BUILD_DIR] [pytest args...]
# Ends with "N passed, N failed, N skipped" for tests/check.sh.
set -uo pipefail
cd "$(dirname "$0")" || exit 1
build=${1:-../../build}
shift || true
export FORKD_BIN=${FORKD_BIN:-$(cd "$build" && pwd)/forkd}

# Debian's python3 with python3-pytest and python3-numpy (scripts/setup.sh),
# not whatever python3 comes first in PATH: it is the Python the image has.
PY=/usr/bin/python3
if ! $PY -c 'import pytest, numpy' 2>/dev/null; then
	echo "agent tests: $PY lacks pytest or numpy; run scripts/setup.sh (python3-pytest, python3-numpy)" >&2
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
exec $PY -m pytest -q -p no:cacheprovider "$@" test_agent.py test_init.py test_image.py test_bench_ready.py
