"""The Python SDK against a real forkd daemon (see conftest.py)."""

import os
import time

import pytest

import forkd
from forkd import Controller, Sandbox


@pytest.fixture
def ctl(target):
    return Controller(target[0], target[1])


def test_service_endpoints(ctl):
    assert ctl.healthz() == {"status": "ok"}
    v = ctl.version()
    assert v["api"] == "v1"
    text = ctl.metrics()
    assert isinstance(text, str) and "# TYPE forkd_http_requests_total counter" in text


def test_controller_from_environment(target, monkeypatch):
    monkeypatch.setenv("FORKD_URL", target[0])
    if target[1]:
        monkeypatch.setenv("FORKD_TOKEN", target[1])
    assert Controller().healthz()["status"] == "ok"
    assert isinstance(Controller().sandboxes(), list)
    with pytest.raises(ValueError):
        Controller("https://example.com")


def test_snapshots(ctl, target):
    tags = [s["tag"] for s in ctl.snapshots()]
    assert target[2] in tags
    s = ctl.snapshot(target[2])
    assert s["state"] == "ready"
    with pytest.raises(forkd.NotFound) as e:
        ctl.snapshot("no-such-snapshot")
    assert e.value.status == 404 and e.value.message == "no snapshot 'no-such-snapshot'"
    with pytest.raises(forkd.BadRequest):
        ctl.snapshot("..")


def test_sandbox_context_manager(ctl, target):
    with Sandbox(tag=target[2], controller=ctl) as sb:
        assert sb.id.startswith("sb-") and sb.state == "running"
        p = sb.ping()
        assert p["pong"] is True and p["index"] == 0
        assert any(s["id"] == sb.id for s in ctl.sandboxes(tag=target[2]))
        if target[3]:
            # agent_stub answers ping only: every other op is refused, and the
            # refusal reaches the caller as AgentError with the agent's words.
            with pytest.raises(forkd.AgentError) as e:
                sb.eval("1 + 1")
            assert e.value.message == "agent_stub: op not supported"
            assert e.value.status == 422 and e.value.traceback is None
            with pytest.raises(forkd.AgentError):
                sb.commands.run("ls /", timeout=5)
            with pytest.raises(forkd.AgentError):
                sb.files.write("/tmp/x", b"data")
            with pytest.raises(forkd.AgentError):
                sb.files.read("/tmp/x")
        else:
            assert sb.eval("1 + 1") == "2"
            r = sb.commands.run("echo out; echo err >&2; exit 3", timeout=10)
            assert r == forkd.CommandResult("out\n", "err\n", 3)
            assert sb.files.write("/tmp/sdk-test", b"\x00\x01hello") == 7
            assert sb.files.read("/tmp/sdk-test") == b"\x00\x01hello"
        sid = sb.id
    with pytest.raises(forkd.NotFound):
        ctl.sandbox(sid)
    with pytest.raises(forkd.NotFound):
        ctl.ping(sid)


def test_create_many_and_attach(ctl, target):
    sbs = Sandbox.create_many(target[2], 3, controller=ctl)
    try:
        assert len({s.id for s in sbs}) == 3
        assert sorted(s.ping()["index"] for s in sbs) == [0, 1, 2]
        again = Sandbox.attach(sbs[1].id, controller=ctl)
        assert again.info["index"] == 1 and again.ping()["pong"] is True
    finally:
        for s in sbs:
            s.kill()
    for s in sbs:
        with pytest.raises(forkd.NotFound):
            s.refresh()
    sbs[0].kill()  # a second kill is a no-op


def child_netns():
    """The forkd-child-* network namespaces on this host (empty when unreadable)."""
    try:
        return {n for n in os.listdir("/run/netns") if n.startswith("forkd-child-")}
    except OSError:
        return set()


def test_typed_errors(ctl, target):
    sandboxes_before = {s["id"] for s in ctl.sandboxes()}
    netns_before = child_netns()
    with pytest.raises(forkd.BadRequest) as e:
        ctl.create_sandboxes(target[2], n=0)
    assert '"n" must be an integer from 1 to 1000' in str(e.value)
    with pytest.raises(forkd.BadRequest):
        ctl.create_sandboxes(target[2], n=1001)
    with pytest.raises(forkd.NotFound):
        ctl.create_sandboxes("no-such-snapshot")
    with pytest.raises(forkd.NotFound) as e:
        ctl.create_sandboxes("no-such-snapshot", per_child_netns=True, memory_limit_mib=64)
    assert e.value.status == 404 and "no snapshot 'no-such-snapshot'" in e.value.message
    for bad in (5, 15, 1048577, "64", True):
        with pytest.raises(forkd.BadRequest) as e:
            ctl.create_sandboxes(target[2], memory_limit_mib=bad)
        assert e.value.status == 400 and "from 16" in e.value.message, bad
    with pytest.raises(forkd.BadRequest) as e:
        ctl.create_sandboxes(target[2], per_child_netns="yes")
    assert e.value.status == 400 and "per_child_netns" in e.value.message
    with Sandbox(target[2], controller=ctl):
        with pytest.raises(forkd.Conflict) as e:
            ctl.delete_snapshot(target[2])  # a sandbox still runs from it
        assert "still run from snapshot" in e.value.message
    if target[1]:
        with pytest.raises(forkd.AuthError) as e:
            Controller(target[0], "not-the-token-at-all").sandboxes()
        assert e.value.status == 401 and e.value.message == "invalid bearer token"
        with pytest.raises(forkd.AuthError):
            Controller(target[0], target[1][:-1]).sandboxes()
    with pytest.raises(forkd.ConnectionFailed):
        Controller("http://127.0.0.1:1").healthz()
    assert issubclass(forkd.AgentError, forkd.ForkdError)
    # The refused requests made nothing, and the one sandbox is gone.
    assert {s["id"] for s in ctl.sandboxes()} == sandboxes_before
    if target[3]:
        assert child_netns() <= netns_before


def test_isolated_sandbox(ctl, target):
    """per_child_netns and memory_limit_mib through the SDK: the sandbox reports
    its namespace and limit, and deleting it removes the namespace."""
    if not target[3] or os.geteuid() != 0:
        pytest.skip("needs the test harness's local daemon, as root (namespaces, cgroups)")
    with Sandbox(target[2], controller=ctl, per_child_netns=True, memory_limit_mib=32) as sb:
        info = sb.refresh()
        assert info["netns"].startswith("forkd-child-") and info["memory_limit_mib"] == 32
        assert info["oom_killed"] is False and sb.ping()["pong"] is True
        assert os.path.exists("/run/netns/" + info["netns"])
        ns = info["netns"]
    assert not os.path.exists("/run/netns/" + ns)


def test_snapshot_create_and_delete(ctl, target):
    if not target[3]:
        pytest.skip("creating snapshots needs a daemon with --guest-dir (the test harness)")
    r = ctl.create_snapshot("sdk-made", kind="test-guest", guest="agent_stub", mem_mib=16)
    assert r["state"] == "creating"
    deadline = time.time() + 60
    while ctl.snapshot("sdk-made")["state"] == "creating" and time.time() < deadline:
        time.sleep(0.1)
    assert ctl.snapshot("sdk-made")["state"] == "ready"
    with pytest.raises(forkd.Conflict):
        ctl.create_snapshot("sdk-made", kind="test-guest", guest="agent_stub")
    with pytest.raises(forkd.BadRequest) as e:
        ctl.create_snapshot("sdk-img", kind="image")
    assert e.value.status == 400 and 'needs "image"' in e.value.message
    with pytest.raises(forkd.BadRequest) as e:
        ctl.create_snapshot("sdk-img", kind="image", image="no-such-image")
    assert "forkd image build --tag no-such-image" in e.value.message
    with pytest.raises(forkd.BadRequest) as e:
        ctl.create_snapshot("sdk-img", kind="test-guest", guest="agent_stub", image="py")
    assert '"image" is for kind "image"' in e.value.message
    with pytest.raises(forkd.NotFound):
        ctl.snapshot("sdk-img")
    assert ctl.delete_snapshot("sdk-made") == {"tag": "sdk-made", "deleted": True}
    with pytest.raises(forkd.NotFound):
        ctl.snapshot("sdk-made")
