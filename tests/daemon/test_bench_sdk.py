"""bench/sdk against the session's daemon: ping (all agent_stub answers)
through every path that has one, figures in its JSON, the sandbox gone
afterwards; and its refusals of bad arguments."""

import json
import os
import subprocess
import sys

import harness

BENCH = os.path.join(harness.ROOT, "bench", "sdk")


def bench(daemon, *args):
    env = dict(os.environ, FORKD_URL=daemon.url, FORKD_TOKEN=daemon.token,
               FORKD_BUILD=harness.build_dir())
    return subprocess.run([sys.executable, BENCH] + list(args), capture_output=True, text=True,
                          env=env, timeout=300)


def test_ping_through_every_path(daemon):
    before = {x["id"] for x in daemon.json("GET", "/v1/sandboxes")[1]}
    r = bench(daemon, "--tag", "stub", "--ops", "ping", "--reps", "5", "--json", "-")
    assert r.returncode == 0, r.stdout + r.stderr
    o = json.loads(r.stdout)
    assert [x["path"] for x in o["results"]] == ["agent", "rest", "python-sync", "python-async",
                                                 "ts"], o
    assert all(x["reps"] == 5 and 0 < x["p50_ms"] <= x["p99_ms"] for x in o["results"]), o
    assert [x["path"] for x in o["not_measured"]] == ["mcp"], o
    assert "sandboxes run on" in r.stderr, r.stderr
    after = {x["id"] for x in daemon.json("GET", "/v1/sandboxes")[1]}
    assert after <= before, after - before


def test_bad_arguments(daemon):
    for args, why in ((["--reps", "0"], "--reps"), (["--ops", "nope"], "unknown op"),
                      (["--paths", "nope"], "unknown path"), (["--spawn-args", "[]"], "JSON object")):
        r = bench(daemon, *args)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    r = bench(daemon, "--tag", "no-such-snapshot", "--ops", "ping")
    assert r.returncode == 1 and "no snapshot" in r.stderr, r.stderr
