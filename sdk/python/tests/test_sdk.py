"""The Python SDK against a real forkd daemon (see conftest.py)."""

import json
import os
import time

import pytest

import forkd
from forkd import Controller, Sandbox


@pytest.fixture
def ctl(target):
    # A real guest's agent answers in seconds on KVM-PVM hosts (its kernel is
    # emulated); the stub at once.
    return Controller(target[0], target[1], timeout=60 if target[3] else 300)


def run(sb, cmd, timeout=60):
    """sb.commands.run(cmd). On KVM-PVM hosts a process started in a guest
    now and then dies of SIGSEGV (docs/ARCHITECTURE.md, "KVM-PVM hosts"): such
    a command is run once more, and the test output says so."""
    r = sb.commands.run(cmd, timeout=timeout)
    if r.exit_code in (-11, 139) and os.path.isdir("/sys/module/kvm_pvm"):
        print("XFAIL known KVM-PVM crash: %r was killed by SIGSEGV; running it once more" % cmd)
        r = sb.commands.run(cmd, timeout=timeout)
    return r


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
        Controller("ftp://example.com")


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


def test_sandbox_context_manager(ctl, target, spawn_args):
    with Sandbox(tag=target[2], controller=ctl, **spawn_args) as sb:
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
            assert sb.eval("int(np.arange(10).sum())") == "45"  # numpy, imported warm
            assert sb.eval("x = 21") is None
            assert sb.eval("x * 2") == "42"  # state persists between calls
            with pytest.raises(forkd.AgentError) as e:
                sb.eval("1 / 0")
            assert "ZeroDivisionError" in e.value.message
            assert "ZeroDivisionError" in (e.value.traceback or "")
            r = run(sb, "echo out; echo err >&2; exit 3")
            assert r == forkd.CommandResult("out\n", "err\n", 3)
            r = run(sb, ["python3", "-c", "import sys; print(sys.argv[1:])", "a b", "c"])
            assert r == forkd.CommandResult("['a b', 'c']\n", "", 0)
            assert sb.files.write("/tmp/sdk-test", b"\x00\x01hello") == 7
            assert sb.files.read("/tmp/sdk-test") == b"\x00\x01hello"
            # The guest's own view of the bytes the daemon wrote.
            assert run(sb, "od -An -tx1 /tmp/sdk-test").stdout.split() == \
                ["00", "01", "68", "65", "6c", "6c", "6f"]
            with pytest.raises(forkd.AgentError):
                sb.files.read("/no/such/file")
        sid = sb.id
    with pytest.raises(forkd.NotFound):
        ctl.sandbox(sid)
    with pytest.raises(forkd.NotFound):
        ctl.ping(sid)


STUB_ENTRIES = [{"name": "a.txt", "type": "file", "size": 3, "mode": 0o600, "mtime": 1.5},
                {"name": "sub", "type": "dir", "size": 4096, "mode": 0o755, "mtime": 2}]


def stub_file_agent(req):
    """The answers of a scripted agent (tests/daemon/test_files.py) standing in
    for agent_stub, which has no files."""
    if req["op"] == "list_dir":
        return {"entries": STUB_ENTRIES, "truncated": False}
    if req["path"].endswith("/missing"):
        return {"ok": False, "error": "remove: FileNotFoundError: [Errno 2] No such file or "
                                      "directory: '%s'" % req["path"]}
    return {"type": "dir" if req["recursive"] else "file"}


def test_files_list_and_remove(ctl, target, spawn_args):
    with Sandbox(tag=target[2], controller=ctl, **spawn_args) as sb:
        with pytest.raises(forkd.BadRequest):
            sb.files.list("relative")
        with pytest.raises(forkd.BadRequest):
            sb.files.remove("relative")
        if target[3]:
            with pytest.raises(forkd.AgentError) as e:
                sb.files.list("/tmp")
            assert e.value.message == "agent_stub: op not supported"
            with pytest.raises(forkd.AgentError):
                sb.files.remove("/tmp/x")
            from test_files import scripted_agent
            with scripted_agent(sb.info["run_dir"], stub_file_agent) as seen:
                got = sb.files.list("/w/")
                sb.files.remove("/w/a.txt")
                sb.files.remove("/w/sub", recursive=True)
                with pytest.raises(forkd.AgentError) as e:
                    sb.files.remove("/w/missing")
                assert "No such file" in e.value.message and e.value.status == 422
            assert got == [forkd.EntryInfo("a.txt", "/w/a.txt", "file", 3, 0o600, 1.5),
                           forkd.EntryInfo("sub", "/w/sub", "dir", 4096, 0o755, 2.0)]
            assert [e.is_dir for e in got] == [False, True]
            assert [(r["op"], r["path"], r.get("recursive")) for r in seen] == [
                ("list_dir", "/w/", None), ("remove", "/w/a.txt", False),
                ("remove", "/w/sub", True), ("remove", "/w/missing", False)]
            return
        d = "/tmp/sdk-ls"
        assert run(sb, "rm -rf %s; mkdir -p %s/sub/deeper && ln -s /etc %s/link && "
                       "echo x > %s/sub/deeper/f" % (d, d, d, d)).exit_code == 0
        assert sb.files.write(d + "/a.txt", b"abc", mode=0o600) == 3
        got = sb.files.list(d)
        assert [(e.name, e.path, e.type) for e in got] == [
            ("a.txt", d + "/a.txt", "file"), ("link", d + "/link", "symlink"),
            ("sub", d + "/sub", "dir")]
        assert got[0].size == 3 and got[0].mode == 0o600 and got[0].mtime > 1.6e9
        with pytest.raises(forkd.AgentError) as e:
            sb.files.remove(d + "/sub")
        assert "directory not empty" in e.value.message
        sb.files.remove(d + "/link", recursive=True)  # the link, never /etc
        assert any(e.name == "passwd" for e in sb.files.list("/etc"))
        sb.files.remove(d + "/a.txt")
        sb.files.remove(d + "/sub", recursive=True)
        assert sb.files.list(d) == []
        sb.files.remove(d)
        with pytest.raises(forkd.AgentError) as e:
            sb.files.list(d)
        assert "No such file" in e.value.message
        with pytest.raises(forkd.AgentError) as e:
            sb.files.remove(d)
        assert "No such file" in e.value.message


def test_create_many_and_attach(ctl, target, spawn_args):
    sbs = Sandbox.create_many(target[2], 3, controller=ctl, **spawn_args)
    try:
        assert len({s.id for s in sbs}) == 3
        assert sorted(s.ping()["index"] for s in sbs) == [0, 1, 2]
        again = Sandbox.connect(sbs[1].id, controller=ctl)
        assert again.info["index"] == 1 and again.ping()["pong"] is True
        assert Sandbox.attach(sbs[2].id, controller=ctl).id == sbs[2].id  # older name
        listed = {s.id: s for s in Sandbox.list(target[2], controller=ctl)}
        assert {s.id for s in sbs} <= set(listed)
        assert all(listed[s.id].info["state"] == "running" for s in sbs)
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


def test_typed_errors(ctl, target, spawn_args):
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
    with Sandbox(target[2], controller=ctl, **spawn_args):
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


def test_sandbox_network(ctl, target, spawn_args):
    """A sandbox with its own namespace, from a snapshot whose guest has a
    network and runs forkd's agent: the agent answers on 10.42.0.2:8888 from
    inside that namespace, and the namespace goes with the sandbox."""
    if target[3] or not spawn_args.get("per_child_netns") or os.geteuid() != 0:
        pytest.skip("needs FORKD_URL with a networked agent snapshot, "
                    "FORKD_SPAWN_ARGS per_child_netns, and root")
    import subprocess
    client = ("import json, socket\n"
              "s = socket.create_connection(('10.42.0.2', 8888), timeout=120)\n"
              "s.sendall(b'{\"op\": \"ping\", \"id\": 5}\\n')\n"
              "print(s.makefile().readline())\n")
    with Sandbox(target[2], controller=ctl, **spawn_args) as sb:
        ns = sb.refresh()["netns"]
        assert ns.startswith("forkd-child-"), sb.info
        out = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", client],
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        r = json.loads(out.stdout)
        assert r["ok"] and r["pong"] and r["id"] == 5 and r["pid"] == sb.ping()["pid"], r
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


def test_pip_install(tmp_path):
    """The package installs with pip from the repository (offline: Debian's
    setuptools, no build isolation) and imports from where pip put it."""
    import shutil
    import subprocess
    import sys
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if pip.returncode != 0:
        pytest.skip("pip is missing for %s (Debian: python3-pip; scripts/setup.sh installs it)"
                    % sys.executable)
    src = tmp_path / "src"
    shutil.copytree(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), src,
                    ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                        "--no-deps", "--no-index", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    code = ("import forkd, json, os; print(json.dumps([forkd.__file__, forkd.Controller.__name__, "
            "forkd.Sandbox.__name__, forkd.CommandResult._fields, forkd.AsyncSandbox.__name__, "
            "os.path.exists(os.path.join(os.path.dirname(forkd.__file__), 'py.typed'))]))")
    r = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, %r); %s"
                        % (str(target), code)], capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    where, ctl, sb, fields, asb, typed = json.loads(r.stdout)
    assert where.startswith(str(target)) and ctl == "Controller" and sb == "Sandbox", where
    assert fields == ["stdout", "stderr", "exit_code", "timed_out", "stdout_truncated",
                      "stderr_truncated"]
    assert asb == "AsyncSandbox" and typed is True  # py.typed is installed with it


def test_branch(ctl, target, spawn_args):
    """Sandbox.branch(): children of the branch start from the sandbox's state at
    the branch (variables, files), not from what it does afterwards."""
    made = []
    # On the root disk (not /tmp's tmpfs), synced: the branch children read
    # it back after dropping their page cache, so from the disk's overlay.
    path = "/root/branch-file"
    with Sandbox(tag=target[2], controller=ctl, **spawn_args) as src:
        if not target[3]:
            assert src.eval("x = 41") is None
            assert src.files.write(path, b"before the branch") == 17
            assert run(src, "sync").exit_code == 0
        for mode in ("live", "full", "diff"):
            tag = src.branch(tag="sdk-br-%s-%d" % (mode, os.getpid()), mode=mode)
            made.append(tag)
            info = ctl.snapshot(tag)
            assert info["state"] == "ready" and info["parent"] == target[2]
            assert info["memory"] == ("diff" if mode == "diff" else "full")
            if not target[3]:
                # The source goes on and changes its mind; no branch child sees it.
                assert src.eval("x = 0") is None
                src.files.write(path, b"after")
                assert run(src, "sync").exit_code == 0
            kids = Sandbox.create_many(tag, 3, controller=ctl, **spawn_args)
            try:
                for i, k in enumerate(kids):
                    assert k.ping()["index"] == i
                    if not target[3]:
                        assert k.eval("x + 1") == "42", mode
                        assert run(k, "echo 3 > /proc/sys/vm/drop_caches").exit_code == 0
                        assert k.files.read(path) == b"before the branch", mode
            finally:
                for k in kids:
                    k.kill()
            if not target[3]:
                assert src.eval("x") == "0"
                assert src.eval("x = 41") is None
                src.files.write(path, b"before the branch")
                assert run(src, "sync").exit_code == 0
    for tag in reversed(made):
        ctl.delete_snapshot(tag)
    with pytest.raises(forkd.NotFound):
        ctl.snapshot(made[0])
