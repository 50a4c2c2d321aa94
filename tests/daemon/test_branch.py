"""POST /v1/sandboxes/{id}/branch against a real daemon: a running sandbox
(jailed agent_stub child) branched in each mode into a snapshot that spawns
sandboxes which answer ping, chains of diffs shown in GET /v1/snapshots/{tag},
DELETE refused while dependents exist unless cascade=true, wait:false, and
the errors (unknown or exited sandbox, a tag that exists, a bad body)."""

import json
import os
import time

import harness


def error_of(data):
    o = json.loads(data)
    assert isinstance(o.get("error"), str) and o["error"], o
    return o["error"]


def branch(daemon, sid, **body):
    return daemon.json("POST", "/v1/sandboxes/%s/branch" % sid, body)


def ping_ok(daemon, sid):
    st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % sid)
    assert st == 200 and o["pong"] is True, (st, o)
    return o


def test_branch_each_mode_spawns(daemon, spawn):
    src = spawn(1)[0]
    ping_ok(daemon, src["id"])
    for mode in ("full", "diff", "live"):
        tag = "br_%s_%d" % (mode, os.getpid())
        st, o = branch(daemon, src["id"], tag=tag, mode=mode)
        assert st == 201, (st, o)
        assert o["tag"] == tag and o["state"] == "ready" and o["parent"] == "stub"
        assert o["mode"] == mode and o["sandbox"] == src["id"]
        assert o["memory"] == ("diff" if mode == "diff" else "full")
        assert o["chain_depth"] == (1 if mode == "diff" else 0)
        assert o["logical_bytes"] == 16 << 20 and 0 < o["physical_bytes"]
        assert isinstance(o["pause_us"], int) and o["pause_us"] >= 0
        # The source runs on and still answers.
        ping_ok(daemon, src["id"])
        kids = spawn(2, tag=tag)
        for i, k in enumerate(kids):
            assert ping_ok(daemon, k["id"])["index"] == i
        st, got = daemon.json("GET", "/v1/snapshots/" + tag)
        assert st == 200 and got["parent"] == "stub" and got["memory"] == o["memory"]
        for k in kids:
            assert daemon.json("DELETE", "/v1/sandboxes/" + k["id"])[0] == 200
        assert daemon.json("DELETE", "/v1/snapshots/" + tag)[0] == 200


def test_diff_chain_dependents_and_cascade(daemon, spawn):
    p = os.getpid()
    src = spawn(1)[0]
    st, d1 = branch(daemon, src["id"], tag="ch1_%d" % p, mode="diff")
    assert st == 201, d1
    mid = spawn(1, tag=d1["tag"])[0]
    st, d2 = branch(daemon, mid["id"], tag="ch2_%d" % p, mode="diff")
    assert st == 201, d2
    assert d2["parent"] == d1["tag"] and d2["chain_depth"] == 2
    tip = spawn(1, tag=d2["tag"])[0]
    ping_ok(daemon, tip["id"])
    st, got = daemon.json("GET", "/v1/snapshots/" + d1["tag"])
    assert got["dependents"] == [d2["tag"]] and got["dependents_count"] == 1
    for s in (mid, tip):
        assert daemon.json("DELETE", "/v1/sandboxes/" + s["id"])[0] == 200
    # A diff's parent cannot go while the diff needs it...
    st, _, data = daemon.request("DELETE", "/v1/snapshots/" + d1["tag"])
    assert st == 409 and "dependent" in error_of(data) and "cascade=true" in error_of(data)
    st, _, data = daemon.request("DELETE", "/v1/snapshots/%s?cascade=maybe" % d1["tag"])
    assert st == 400
    # ...unless asked to take its dependents with it.
    st, o = daemon.json("DELETE", "/v1/snapshots/%s?cascade=true" % d1["tag"])
    assert st == 200 and sorted(o["snapshots"]) == sorted([d1["tag"], d2["tag"]]), o
    for t in (d1["tag"], d2["tag"]):
        assert daemon.json("GET", "/v1/snapshots/" + t)[0] == 404


def test_branch_without_wait(daemon, spawn):
    src = spawn(1)[0]
    tag = "bw_%d" % os.getpid()
    st, o = branch(daemon, src["id"], tag=tag, mode="live", wait=False)
    assert st == 202 and o["state"] == "writing" and o["tag"] == tag, o
    deadline = time.time() + 60 * int(os.environ.get("FORKD_TEST_TIME_SCALE", "1"))
    while True:
        st, got = daemon.json("GET", "/v1/snapshots/" + tag)
        assert st == 200, got
        if got["state"] == "ready":
            break
        assert got["state"] == "writing", got
        assert time.time() < deadline, got
        time.sleep(0.05)
    kid = spawn(1, tag=tag)[0]
    ping_ok(daemon, kid["id"])
    assert daemon.json("DELETE", "/v1/sandboxes/" + kid["id"])[0] == 200
    assert daemon.json("DELETE", "/v1/snapshots/" + tag)[0] == 200


def test_branch_errors(daemon, spawn):
    p = os.getpid()
    st, _, data = daemon.request("POST", "/v1/sandboxes/sb-aaaaaaaaaaaaaaaaaaaa/branch", body={})
    assert st == 404 and "no sandbox" in error_of(data)
    src = spawn(1)[0]
    for body in ({"mode": "half"}, {"tag": 7}, {"wait": "yes"}, {"tag": "../x"},
                 {"colour": "red"}):
        st, _, data = daemon.request("POST", "/v1/sandboxes/%s/branch" % src["id"], body=body)
        assert st == 400, (body, st, data)
    st, o = branch(daemon, src["id"], tag="dup_%d" % p, mode="full")
    assert st == 201, o
    st, _, data = daemon.request("POST", "/v1/sandboxes/%s/branch" % src["id"],
                                 body={"tag": "dup_%d" % p})
    assert st == 409 and "exists" in error_of(data)
    assert daemon.json("DELETE", "/v1/snapshots/dup_%d" % p)[0] == 200
    # A sandbox whose VMM is gone.
    os.kill(src["pid"], 9)
    deadline = time.time() + 10
    while os.path.exists("/proc/%d" % src["pid"]) and time.time() < deadline:
        time.sleep(0.05)
    st, _, data = daemon.request("POST", "/v1/sandboxes/%s/branch" % src["id"], body={})
    assert st == 409 and "not running" in error_of(data)
    snaps = os.path.join(daemon.env.home, "snapshots")
    assert not [n for n in os.listdir(snaps) if n.startswith(".")]
