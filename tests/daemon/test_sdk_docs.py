"""docs/SDK.md's programs (tests/e2e/sdk_examples.py): every block compiles
and type-checks against the SDKs as they are, and those that need no more of
the agent than ping (errors, the MCP host configuration) run against the
session's daemon. tests/e2e/image_fork.sh runs them all with the real agent."""

import os
import subprocess
import sys

import harness

SCRIPT = os.path.join(harness.ROOT, "tests", "e2e", "sdk_examples.py")


def run(*args, env=None):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True,
                          env=env, timeout=600, cwd=harness.ROOT)


def test_examples_compile():
    r = run("--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout.splitlines()[-1], r.stdout


def test_stub_ok_examples_run(daemon):
    env = dict(os.environ, FORKD_URL=daemon.url, FORKD_TOKEN=daemon.token, FORKD_TAG="stub",
               FORKD_BUILD=harness.build_dir())
    r = run("--stub-ok", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.splitlines()[-1]
    assert last.endswith(" 0 failed") and not last.startswith("0 passed"), r.stdout
