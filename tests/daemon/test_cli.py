"""The CLI verbs through the daemon (spawn, ls, kill, ping, exec, eval) and
straight to a child's vsock socket (--run-dir / --vsock), against the real
daemon and agent_stub children."""

import json
import os
import subprocess

import pytest

import harness


def cli(daemon, *args, token=True, url=True):
    env = dict(os.environ)
    env.pop("FORKD_URL", None)
    env.pop("FORKD_TOKEN", None)
    if url:
        env["FORKD_URL"] = daemon.url
    if token is True:
        env["FORKD_TOKEN"] = daemon.token
    elif token:
        env["FORKD_TOKEN"] = token
    return subprocess.run([harness.forkd_bin()] + list(args), capture_output=True, text=True,
                          env=env, timeout=60)


def test_help(daemon):
    for verb in ("serve", "spawn", "ls", "kill", "ping", "exec", "eval", "bench", "where",
                 "fork", "cleanup", "image", "netns", "doctor", "version", "mcp"):
        r = cli(daemon, verb, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: forkd " + verb), verb
        # forkd help VERB is the same text
        assert cli(daemon, "help", verb).stdout == r.stdout, verb
    for sub in ("ls", "info", "rm", "compact"):
        r = cli(daemon, "snapshot", sub, "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage:") and "forkd snapshot " + sub in r.stdout, sub
    r = cli(daemon, "help")
    assert r.returncode == 0 and r.stdout.startswith("usage: forkd")
    r = cli(daemon, "help", "nope")
    assert r.returncode == 2 and "unknown command 'nope'" in r.stderr


def test_mcp_verb(daemon, tmp_path):
    """forkd mcp execs the SDK's MCP server next to the binary, passing
    --daemon-url and --tag on (tests/mcp drives it with an MCP client)."""
    lines = [{"jsonrpc": "2.0", "id": 1, "method": "ping"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "sandbox_list", "arguments": {}}}]
    env = dict(os.environ, FORKD_TOKEN=daemon.token)
    env.pop("FORKD_URL", None)
    r = subprocess.run([harness.forkd_bin(), "mcp", "--daemon-url", daemon.url, "--tag", "stub"],
                       input="".join(json.dumps(m) + "\n" for m in lines), capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    answers = {a["id"]: a for a in map(json.loads, r.stdout.splitlines())}
    assert answers[1]["result"] == {}
    assert answers[2]["result"]["isError"] is False, answers[2]
    r = cli(daemon, "mcp", "--tag", "../x")
    assert r.returncode == 2 and "not a snapshot tag" in r.stderr
    r = cli(daemon, "mcp", "extra")
    assert r.returncode == 2 and "unexpected argument" in r.stderr
    env["FORKD_PYTHON_SDK"] = str(tmp_path)
    r = subprocess.run([harness.forkd_bin(), "mcp"], input="", capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 1 and "FORKD_PYTHON_SDK" in r.stderr and r.stdout == ""
    env.pop("FORKD_PYTHON_SDK")
    r = subprocess.run([harness.forkd_bin(), "mcp", "--python", "/nonexistent/python3"],
                       input="", capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 127 and "/nonexistent/python3" in r.stderr


def test_spawn_ls_ping_kill(daemon):
    r = cli(daemon, "spawn", "--tag", "stub", "-n", "2", "--json")
    assert r.returncode == 0, r.stderr
    kids = json.loads(r.stdout)
    ids = [k["id"] for k in kids]
    r = cli(daemon, "ls")
    assert r.returncode == 0 and all(i in r.stdout for i in ids)
    assert r.stdout.splitlines()[0].split() == ["ID", "SNAPSHOT", "INDEX", "STATE", "PID",
                                                "NETNS", "MEM", "OOM", "CREATED"]
    for line in r.stdout.splitlines()[1:]:
        if line.split()[0] in ids:
            assert line.split()[3] == "running" and line.split()[5:8] == ["-", "-", "no"]
    r = cli(daemon, "ls", "--json", "--tag", "stub")
    assert set(ids) <= {s["id"] for s in json.loads(r.stdout)}
    r = cli(daemon, "ping", "--sandbox", ids[1])
    assert r.returncode == 0, r.stderr
    assert "pong from %s: agent pid 1, numpy none, warm true, index 1" % ids[1] in r.stdout
    r = cli(daemon, "ping", "--run-dir", kids[0]["run_dir"], "--json", url=False, token=None)
    assert r.returncode == 0 and json.loads(r.stdout)["index"] == 0
    r = cli(daemon, "ping", "--vsock", kids[0]["vsock"], url=False, token=None)
    assert r.returncode == 0 and "index 0" in r.stdout
    r = cli(daemon, "exec", "--sandbox", ids[0], "--", "ls", "-l", "/")
    assert r.returncode == 1 and "agent_stub: op not supported" in r.stderr
    r = cli(daemon, "eval", "--run-dir", kids[0]["run_dir"], "1+1", url=False, token=None)
    assert r.returncode == 1 and "agent_stub: op not supported" in r.stderr
    r = cli(daemon, "kill", ids[0], ids[1])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["killed %s (was running)" % i for i in ids]
    r = cli(daemon, "kill", ids[0])
    assert r.returncode == 1 and "no sandbox" in r.stderr and "HTTP 404" in r.stderr


def test_kill_by_tag(daemon):
    harness.make_stub_snapshot(daemon, "clitag")
    r = cli(daemon, "spawn", "--tag", "clitag", "-n", "3")
    assert r.returncode == 0 and r.stdout.count("clitag") == 3
    r = cli(daemon, "kill", "--tag", "clitag")
    assert r.returncode == 0 and r.stdout.count("killed ") == 3
    r = cli(daemon, "ls", "--tag", "clitag", "--json")
    assert json.loads(r.stdout) == []
    assert daemon.json("DELETE", "/v1/snapshots/clitag")[0] == 200


def test_cli_errors(daemon):
    r = cli(daemon, "ls", token="wrong-token-wrong-token")
    assert r.returncode == 1 and "invalid bearer token (HTTP 401)" in r.stderr
    r = cli(daemon, "ls", token=None)
    assert r.returncode == 1 and "authentication required" in r.stderr
    r = cli(daemon, "spawn", "--tag", "nope")
    assert r.returncode == 1 and "no snapshot 'nope'" in r.stderr
    r = cli(daemon, "spawn", "--tag", "stub", "--memory-limit-mib", "5")
    assert r.returncode == 1 and "from 16" in r.stderr and "HTTP 400" in r.stderr
    r = cli(daemon, "ping", "--sandbox", "../etc")
    assert r.returncode == 2 and "not a sandbox id" in r.stderr
    r = cli(daemon, "ping")
    assert r.returncode == 2 and "give one of --sandbox" in r.stderr
    r = cli(daemon, "exec", "--sandbox", "sb-" + "a" * 20)
    assert r.returncode == 2 and "no command given" in r.stderr
    r = cli(daemon, "ls", "--daemon-url", "http://127.0.0.1:1", url=False)
    assert r.returncode == 1 and "cannot reach the daemon" in r.stderr
    r = cli(daemon, "ping", "--vsock", "/nonexistent/vsock.sock", url=False)
    assert r.returncode == 1 and "no vsock socket at /nonexistent/vsock.sock" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and memory cgroups need root")
def test_spawn_isolated_ls_columns(daemon):
    r = cli(daemon, "spawn", "--tag", "stub", "--per-child-netns", "--memory-limit-mib", "32",
            "--json")
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)[0]
    try:
        r = cli(daemon, "ls", "--tag", "stub")
        row = [ln.split() for ln in r.stdout.splitlines() if ln.startswith(k["id"])]
        assert row and row[0][5:8] == [k["netns"], "32", "no"], r.stdout
        assert k["netns"].startswith("forkd-child-")
    finally:
        r = cli(daemon, "kill", k["id"])
    assert r.returncode == 0 and not os.path.exists("/run/netns/" + k["netns"])


def test_snapshot_from_sandbox(daemon):
    """forkd snapshot --from-sandbox sb-... goes through the daemon's branch endpoint."""
    r = cli(daemon, "spawn", "--tag", "stub", "--json")
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)[0]["id"]
    tag = "clibr%d" % os.getpid()
    r = cli(daemon, "snapshot", "--from-sandbox", sid, "--mode", "diff", "--tag", tag, "--json")
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)
    assert o["tag"] == tag and o["parent"] == "stub" and o["memory"] == "diff"
    r = cli(daemon, "snapshot", "--from-sandbox", sid, "--tag", tag)
    assert r.returncode == 1 and "exists" in r.stderr
    r = cli(daemon, "snapshot", "--from-sandbox", sid, "--mode", "half")
    assert r.returncode == 2 and "--mode" in r.stderr
    r = cli(daemon, "snapshot", "--from-sandbox", "../x")
    assert r.returncode == 2 and "not a sandbox id" in r.stderr
    r = cli(daemon, "snapshot", "--from-sandbox", sid, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: forkd snapshot --from-sandbox")
    assert cli(daemon, "kill", sid).returncode == 0
    st, _ = daemon.json("DELETE", "/v1/snapshots/" + tag)
    assert st == 200


def test_hostile_agent_answer_is_not_parsed(tmp_path):
    """An answer of a million tiny JSON values (a hostile guest's: jansson would
    take hundreds of MiB for it) is refused unparsed, with the reason."""
    import socket
    import threading
    path = str(tmp_path / "vsock.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        f = c.makefile("rb")
        assert f.readline().startswith(b"CONNECT ")
        c.sendall(b"OK 1234\n")
        req = json.loads(f.readline())
        c.sendall(b'{"id":%d,"ok":true,"pong":true,"x":[' % req["id"]
                  + b"0," * 1000000 + b'0]}\n')
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = subprocess.run([harness.forkd_bin(), "ping", "--vsock", path], capture_output=True,
                       text=True, timeout=60)
    t.join(10)
    srv.close()
    assert r.returncode == 1 and "over 4096 JSON values" in r.stderr, r.stderr


def test_where(daemon, tmp_path):
    """forkd where: root's snapshots are in the daemon's directory by default
    (one store), FORKD_HOME moves them, and every entry says if it exists."""
    def where(env_extra, user=None):
        env = dict(os.environ)
        for k in ("FORKD_HOME", "FORKD_CACHE", "XDG_DATA_HOME", "XDG_STATE_HOME"):
            env.pop(k, None)
        env.update(env_extra)
        argv = [harness.forkd_bin(), "where", "--json"]
        if user:
            argv = ["setpriv", "--reuid", user, "--regid", user, "--clear-groups"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    if os.geteuid() == 0:
        w = where({})
        assert w["home"]["path"] == "/var/lib/forkd" == w["state"]["path"], w
        assert w["snapshots"]["path"] == "/var/lib/forkd/snapshots"
        assert w["token"]["path"] == "/var/lib/forkd/token"
        nobody = where({"HOME": "/nonexistent"}, user="65534")
        assert nobody["home"]["path"] == "/nonexistent/.local/share/forkd", nobody
        assert nobody["home"]["exists"] is False
    (tmp_path / "snapshots").mkdir()
    w = where({"FORKD_HOME": str(tmp_path), "FORKD_CACHE": str(tmp_path / "c")})
    assert w["home"] == {"path": str(tmp_path), "exists": True}
    assert w["snapshots"] == {"path": str(tmp_path / "snapshots"), "exists": True}
    assert w["kept"] == {"path": str(tmp_path / "kept"), "exists": False}
    assert w["images"]["path"] == str(tmp_path / "c" / "images")
    assert w["daemon_url"] == "http://127.0.0.1:8889"
    r = cli(daemon, "where")
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith("home ")


def test_bench_names_the_failing_step_and_cleans_up(daemon):
    """forkd bench against agent_stub, which answers ping but refuses exec: the
    run stops at the exec step, says so, prints no table, and leaves no
    sandbox or branch behind. (The whole cycle is timed against the real
    image in the e2e suite image_fork.)"""
    st, v = daemon.json("GET", "/version")
    assert st == 200 and v["kvm"] in ("hardware", "kvm-pvm", "lab"), v
    st, before = daemon.json("GET", "/v1/sandboxes")
    r = cli(daemon, "bench", "--tag", "stub", "-n", "2", "--reps", "2", "--json")
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert "step 'exec'" in r.stderr and "op not supported" in r.stderr, r.stderr
    assert "sandboxes run on " in r.stderr, r.stderr
    st, after = daemon.json("GET", "/v1/sandboxes")
    assert {s["id"] for s in after} == {s["id"] for s in before}, (before, after)
    r = cli(daemon, "bench", "--tag", "no-such-snapshot", "--reps", "1")
    assert r.returncode == 1 and "step 'spawn 1'" in r.stderr and "HTTP 404" in r.stderr, r.stderr
    for bad, why in ((("-n", "0"), "-n wants a number from 1 to 100"),
                     (("--mode", "fast"), "--mode wants live, full or diff"),
                     (("--reps",), "option --reps needs a value")):
        r = cli(daemon, "bench", *bad)
        assert r.returncode == 2 and why in r.stderr and r.stderr.startswith("forkd bench: error:"), r.stderr
