"""HTTP tests against a real `forkd serve` on loopback: every endpoint, errors,
authentication, limits, the audit log and /metrics. Sandboxes are real KVM
children of the agent_stub test guest (tests/guests/agent_stub.c), which
answers ping and refuses every other agent op."""

import http.client
import json
import os
import re
import signal
import socket
import time

import harness

ERR = re.compile(r"^\{\"error\":\"[^\"]")


def error_of(data):
    """Every error body is exactly {"error": "<non-empty message>"} (+ traceback)."""
    o = json.loads(data)
    assert isinstance(o, dict) and isinstance(o.get("error"), str) and o["error"], o
    assert set(o) <= {"error", "traceback"}, o
    return o["error"]


# ---- service endpoints ----

def test_healthz_is_open(daemon):
    st, hd, data = daemon.request("GET", "/healthz", token=False)
    assert st == 200 and json.loads(data) == {"status": "ok"}
    assert hd["content-type"] == "application/json"


def test_version(daemon):
    st, o = daemon.json("GET", "/version")
    assert st == 200 and o["api"] == "v1" and o["auth"] is True
    assert re.match(r"^\d+\.\d+\.\d+", o["version"])


# ---- authentication ----

def test_auth_missing_wrong_and_prefix(daemon):
    for path, method in (("/v1/sandboxes", "GET"), ("/version", "GET"), ("/metrics", "GET"),
                         ("/v1/snapshots", "GET"), ("/v1/sandboxes", "POST")):
        st, hd, data = daemon.request(method, path, body={} if method == "POST" else None,
                                      token=False)
        assert st == 401, (path, st)
        assert "authentication required" in error_of(data)
        assert hd["www-authenticate"].startswith("Bearer")
    tok = daemon.token
    for bad in ("Bearer wrong-token-0123456789", "Bearer " + tok[:-1], "Bearer " + tok + "x",
                "Bearer " + tok[:16], "Basic " + tok, tok, "Bearer"):
        st, _, data = daemon.request("GET", "/v1/sandboxes", token=bad)
        assert st == 401, bad
        assert error_of(data) == "invalid bearer token"
    st, _, _ = daemon.request("GET", "/v1/sandboxes", token="bearer " + tok)
    assert st == 200


def test_token_file_rules(env, tmp_path):
    short = env.top + "/short-token"
    with open(short, "w") as f:
        f.write("0123456789abcde\n")  # 15 bytes
    os.chmod(short, 0o600)
    d = harness.Daemon(env, token=False, extra=["--token-file", short])
    d.args += ["--state-dir", env.top + "/st-short"]
    try:
        d.start(timeout=5)
        d.stop()
        raise AssertionError("a 15-byte token was accepted")
    except RuntimeError as e:
        assert "needs 16 to 4096" in str(e), e
    with open(short, "w") as f:
        f.write("0123456789abcdef-long-enough\n")
    os.chmod(short, 0o644)
    d = harness.Daemon(env, token=False, extra=["--token-file", short])
    try:
        d.start(timeout=5)
        d.stop()
        raise AssertionError("a world-readable token file was accepted")
    except RuntimeError as e:
        assert "chmod 600" in str(e), e


def test_non_loopback_bind_needs_token(env):
    d = harness.Daemon(env, token=False, bind="0.0.0.0:0")
    try:
        d.start(timeout=5)
        d.stop()
        raise AssertionError("non-loopback bind without a token was accepted")
    except RuntimeError as e:
        assert "refusing to listen on 0.0.0.0:0 without authentication" in str(e), e
    d = harness.Daemon(env, token=True, bind="0.0.0.0:0")
    d.start(timeout=5)
    try:
        st, _, _ = d.request("GET", "/healthz")
        assert st == 200
    finally:
        assert d.stop() == 0


# ---- request validation ----

def test_bad_json_and_fields(daemon):
    cases = [
        (b"{", "not valid JSON"),
        (b"[1,2]", "must be a JSON object"),
        (b'"x"', "must be a JSON object"),
        (b'{"snapshot_tag":"stub","n":1,"n":2}', "not valid JSON"),
        (b'{"snapshot_tag":"stub","bogus":1}', 'unknown field "bogus"'),
        (b'{"n":1}', '"snapshot_tag" (a string) is required'),
        (b'{"snapshot_tag":"stub","n":"3"}', '"n" must be an integer'),
        (b'{"snapshot_tag":"stub","n":1.5}', '"n" must be an integer'),
        (b'{"snapshot_tag":"stub","live_fork":1}', '"live_fork" must be true or false'),
        (b'{"snapshot_tag":"stub","per_child_netns":"yes"}', "must be true or false"),
        (b'{"snapshot_tag":"stub","memory_limit_mib":"1G"}', "memory_limit_mib"),
        (b'{"snapshot_tag":"stub","hugepages":true}', 'needs "live_fork"'),
        (b'{"snapshot_tag":7}', '"snapshot_tag" (a string) is required'),
        (b'\xff\xfe{}', "not valid JSON"),
    ]
    for body, want in cases:
        st, _, data = daemon.request("POST", "/v1/sandboxes", body=body)
        assert st == 400, (body, st, data)
        assert want in error_of(data), (body, data)


def test_n_bounds(daemon):
    for n in (0, -1, 1001, 10 ** 12):
        st, o = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub", "n": n})
        assert st == 400 and "from 1 to 1000" in o["error"], (n, o)


def test_huge_bodies(daemon):
    big = b'{"snapshot_tag":"stub","pad":"' + b"x" * (9 << 20) + b'"}'
    st, _, data = daemon.request("POST", "/v1/sandboxes", body=big)
    assert st == 413 and "limit" in error_of(data)
    # The same without Content-Length up front: chunked upload.
    s = socket.create_connection(("127.0.0.1", daemon.port))
    s.sendall(b"POST /v1/sandboxes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
              + daemon.token.encode() + b"\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"y" * (1 << 20)
    for _ in range(9):
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    s.settimeout(30)
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += s.recv(65536)
    s.close()
    assert resp.startswith(b"HTTP/1.1 413"), resp[:80]


def test_netns_and_memory_limit_validated(daemon):
    # What they do is tests/daemon/test_isolation.py.
    st, o = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub",
                                                 "memory_limit_mib": 1048577})
    assert st == 400 and "from 16" in o["error"]
    st, o = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub",
                                                 "memory_limit_mib": 5})
    assert st == 400 and "from 16" in o["error"]
    st, o = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub",
                                                 "per_child_netns": False,
                                                 "memory_limit_mib": None, "n": 1})
    assert st == 201, o
    assert daemon.request("DELETE", "/v1/sandboxes/" + o[0]["id"])[0] == 200


def test_path_traversal(daemon, env):
    canary = os.path.join(env.home, "canary")
    open(canary, "w").close()
    tags = ["..", "..%2F..%2Fetc", "%2e%2e", ".hidden", "a%2Fb", "x" * 65, "-x", "a%00b"]
    for t in tags:
        for m in ("GET", "DELETE"):
            st, _, data = daemon.request(m, "/v1/snapshots/" + t)
            assert st in (400, 404), (m, t, st)
            error_of(data)
    for body_tag in ("../stub", "..", "stub/../stub", "/etc", ""):
        st, o = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": body_tag})
        assert st == 400 and "invalid snapshot_tag" in o["error"], (body_tag, o)
        st, o = daemon.json("POST", "/v1/snapshots", {"tag": body_tag, "kind": "test-guest",
                                                      "guest": "agent_stub"})
        assert st == 400, (body_tag, o)
    st, o = daemon.json("POST", "/v1/snapshots", {"tag": "t1", "kind": "test-guest",
                                                  "guest": "../agent_stub"})
    assert st == 400 and '"guest"' in o["error"]
    ids = ["..", "..%2F..%2Fetc%2Fpasswd", "sb-" + "A" * 20, "sb-" + "a" * 19,
           "sb-" + "a" * 21, "sb-aaaaaaaaaaaaaaaaaaa1", "sb-" + "a" * 19 + "%2F"]
    for i in ids:
        for m, p in (("GET", ""), ("DELETE", ""), ("POST", "/ping"), ("GET", "/files")):
            st, _, data = daemon.request(m, "/v1/sandboxes/" + i + p,
                                         body={} if m == "POST" else None)
            assert st in (400, 404), (m, i, p, st)
            error_of(data)
    st, o = daemon.json("GET", "/v1/sandboxes?tag=..")
    assert st == 400
    assert os.path.exists(canary)
    assert os.path.isdir(os.path.join(env.home, "snapshots", "stub"))


def test_not_found_and_method(daemon):
    missing = "sb-" + "a" * 20
    for m, p in (("GET", ""), ("DELETE", ""), ("POST", "/ping"), ("POST", "/exec"),
                 ("POST", "/eval"), ("GET", "/files?path=/x"), ("PUT", "/files?path=/x")):
        body = {"/ping": {}, "/exec": {"argv": ["true"]}, "/eval": {"code": "1"}}.get(p)
        st, _, data = daemon.request(m, "/v1/sandboxes/" + missing + p,
                                     body=(b"x" if m == "PUT" else body))
        assert st == 404 and error_of(data) == "no sandbox " + missing, (m, p, st, data)
    for m in ("GET", "DELETE"):
        st, o = daemon.json(m, "/v1/snapshots/nope")
        assert st == 404 and o["error"] == "no snapshot 'nope'"
    st, o = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": "nope"})
    assert st == 404 and "no snapshot 'nope'" in o["error"]
    st, hd, data = daemon.request("GET", "/v2/sandboxes")
    assert st == 404 and "no such endpoint" in error_of(data)
    st, hd, data = daemon.request("PATCH", "/v1/sandboxes")
    assert st == 405 and hd["allow"] == "POST, GET"
    error_of(data)
    st, hd, data = daemon.request("POST", "/v1/sandboxes/" + missing)
    assert st == 405 and hd["allow"] == "GET, DELETE"


# ---- snapshots ----

def test_snapshots_list_get(daemon):
    st, o = daemon.json("GET", "/v1/snapshots")
    assert st == 200
    stub = [s for s in o if s["tag"] == "stub"]
    assert len(stub) == 1 and stub[0]["state"] == "ready" and stub[0]["vsock"] is True
    assert stub[0]["mem_mib"] == 16 and stub[0]["kernel"].endswith("agent_stub.elf")
    st, one = daemon.json("GET", "/v1/snapshots/stub")
    assert st == 200 and one["tag"] == "stub" and one["state"] == "ready"


def test_snapshot_create_errors(daemon):
    for body, code, want in (
        ({"tag": "stub", "kind": "test-guest", "guest": "agent_stub"}, 409, "already exists"),
        ({"tag": "s2", "kind": "image"}, 400, 'needs "image"'),
        ({"tag": "s2", "kind": "image", "image": "nosuch"}, 400,
         "forkd image build --tag nosuch"),
        ({"tag": "s2", "kind": "image", "image": "../x"}, 400, 'needs "image"'),
        ({"tag": "s2", "kind": "image", "image": "nosuch", "guest": "agent_stub"}, 400,
         '"guest" is for kind "test-guest"'),
        ({"tag": "s2", "kind": "test-guest", "guest": "agent_stub", "image": "py"}, 400,
         '"image" is for kind "image"'),
        ({"tag": "s2", "kind": "vm"}, 400, '"kind"'),
        ({"tag": "s2"}, 400, '"kind"'),
        ({"tag": "s2", "kind": "test-guest", "guest": "nosuch"}, 400, "no test guest"),
        ({"tag": "s2", "kind": "test-guest", "guest": "agent_stub", "mem_mib": 3}, 400,
         "mem_mib"),
        ({"tag": "s2", "kind": "test-guest", "guest": "agent_stub", "cmdline": "a\nb"}, 400,
         "cmdline"),
        ({"tag": "s2", "kind": "test-guest", "guest": "agent_stub", "x": 1}, 400,
         "unknown field"),
    ):
        st, o = daemon.json("POST", "/v1/snapshots", body)
        assert st == code and want in o["error"], (body, st, o)
    assert daemon.json("GET", "/v1/snapshots/s2")[0] == 404


def test_snapshot_create_failure_reported(daemon):
    # A guest that exits at once never rings the warm doorbell: the job fails.
    st, o = daemon.json("POST", "/v1/snapshots", {"tag": "willfail", "kind": "test-guest",
                                                  "guest": "smoke", "mem_mib": 16})
    assert st == 202 and o["state"] == "creating"
    o = harness.wait_snapshot(daemon, "willfail", 60)
    assert o["state"] == "failed" and "forkd snapshot exited with status" in o["error"], o
    st, lst = daemon.json("GET", "/v1/snapshots")
    assert any(s["tag"] == "willfail" and s["state"] == "failed" for s in lst)
    st, o = daemon.json("DELETE", "/v1/snapshots/willfail")
    assert st == 200, o
    assert daemon.json("GET", "/v1/snapshots/willfail")[0] == 404


def test_snapshot_create_spawn_delete(daemon):
    harness.make_stub_snapshot(daemon, "second")
    st, kids = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": "second", "n": 1})
    assert st == 201
    st, o = daemon.json("DELETE", "/v1/snapshots/second")
    assert st == 409 and "1 sandbox still run from snapshot 'second'" in o["error"]
    st, o = daemon.json("GET", "/v1/snapshots/second")
    assert o["sandboxes_running"] == 1
    assert daemon.request("DELETE", "/v1/sandboxes/" + kids[0]["id"])[0] == 200
    st, o = daemon.json("DELETE", "/v1/snapshots/second")
    assert st == 200 and o == {"tag": "second", "deleted": True}
    assert daemon.json("GET", "/v1/snapshots/second")[0] == 404
    assert not os.path.exists(os.path.join(daemon.env.home, "snapshots", "second"))


# ---- sandboxes ----

SANDBOX_FIELDS = {"id", "snapshot_tag", "index", "state", "oom_killed", "pid", "netns",
                  "guest_addr", "vsock",
                  "run_dir", "memory_limit_mib", "live_fork", "hugepages", "created_at"}


def test_sandbox_lifecycle(daemon, spawn, env):
    kids = spawn(3)
    assert len(kids) == 3 and len({k["id"] for k in kids}) == 3
    for i, k in enumerate(kids):
        assert set(k) == SANDBOX_FIELDS
        assert re.fullmatch(r"sb-[a-z2-7]{20}", k["id"])
        assert k["state"] == "running" and k["index"] == i and k["snapshot_tag"] == "stub"
        assert k["run_dir"] == os.path.join(env.run, k["id"])
        assert k["vsock"] == os.path.join(k["run_dir"], "vsock.sock")
        assert k["netns"] is None and k["memory_limit_mib"] is None
        pid, start = harness.read_pidfile(os.path.join(k["run_dir"], "pid"))
        assert pid == k["pid"] and harness.proc_alive(pid, start)
        # Private, but for the jailed VMM's group (root:<jail gid> 02750,
        # src/isolate/jail_fs.h); a daemon that is not root keeps 0700.
        rd = os.stat(k["run_dir"])
        if os.geteuid() == 0:
            assert oct(rd.st_mode & 0o7777) == "0o2750" and rd.st_uid == 0, oct(rd.st_mode)
            assert rd.st_gid == harness.jail_gid()
        else:
            assert oct(rd.st_mode & 0o777) == "0o700"
    st, lst = daemon.json("GET", "/v1/sandboxes")
    assert st == 200 and {k["id"] for k in kids} <= {s["id"] for s in lst}
    st, lst = daemon.json("GET", "/v1/sandboxes?tag=stub")
    assert {k["id"] for k in kids} <= {s["id"] for s in lst}
    for i, k in enumerate(kids):
        st, o = daemon.json("GET", "/v1/sandboxes/" + k["id"])
        assert st == 200 and o["id"] == k["id"] and o["state"] == "running"
        st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"])
        assert st == 200, o
        assert o["pong"] is True and o["pid"] == 1 and o["warm"] is True
        assert o["numpy"] == "none" and o["index"] == i and o["sandbox"] == k["id"]
    st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % kids[0]["id"], {"x": 1})
    assert st == 400

    victim = kids[1]
    st, o = daemon.json("DELETE", "/v1/sandboxes/" + victim["id"])
    assert st == 200 and o == {"id": victim["id"], "deleted": True, "state_before": "running"}
    assert daemon.json("GET", "/v1/sandboxes/" + victim["id"])[0] == 404
    assert daemon.json("DELETE", "/v1/sandboxes/" + victim["id"])[0] == 404
    assert daemon.json("POST", "/v1/sandboxes/%s/ping" % victim["id"])[0] == 404
    assert not os.path.exists(victim["run_dir"])
    assert harness.proc_start_time(victim["pid"]) is None or \
        harness.proc_start_time(victim["pid"])[0] in "ZX"


def test_agent_ops_refused_by_stub(daemon, spawn):
    sid = spawn(1)[0]["id"]
    for path, body in (("exec", {"argv": ["ls", "/"]}), ("exec", {"cmd": "echo hi"}),
                       ("eval", {"code": "1+1"})):
        st, o = daemon.json("POST", "/v1/sandboxes/%s/%s" % (sid, path), body)
        assert st == 422 and o == {"error": "agent_stub: op not supported"}, (path, st, o)
    st, _, data = daemon.request("PUT", "/v1/sandboxes/%s/files?path=/tmp/x" % sid, raw=b"hi")
    assert st == 422 and error_of(data) == "agent_stub: op not supported"
    st, _, data = daemon.request("GET", "/v1/sandboxes/%s/files?path=/tmp/x" % sid)
    assert st == 422
    # Validation happens before the agent is asked.
    for path, body, want in (("exec", {}, "exactly one of"),
                             ("exec", {"argv": []}, "non-empty array"),
                             ("exec", {"argv": ["a", 1]}, "non-empty array"),
                             ("exec", {"argv": ["a"], "cmd": "b"}, "exactly one of"),
                             ("exec", {"argv": ["a"], "timeout": 0}, '"timeout"'),
                             ("exec", {"argv": ["a"], "timeout": 99999}, '"timeout"'),
                             ("exec", {"argv": ["a"], "env": {"A": 1}}, '"env"'),
                             ("exec", {"argv": ["a"], "stdin": "x", "stdin_b64": "eA=="},
                              "at most one"),
                             ("eval", {}, '"code"'), ("eval", {"code": 1}, '"code"')):
        st, o = daemon.json("POST", "/v1/sandboxes/%s/%s" % (sid, path), body)
        assert st == 400 and want in o["error"], (body, o)
    for q in ("", "?path=relative", "?path=" + "/a" * 2100):
        st, o = daemon.json("GET", "/v1/sandboxes/%s/files%s" % (sid, q))
        assert st == 400 and "absolute path" in o["error"]
    st, o = daemon.json("PUT", "/v1/sandboxes/%s/files?path=/x&mode=99" % sid)
    assert st == 400 and "octal" in o["error"]


def test_live_fork_sandbox(daemon, spawn):
    k = spawn(1, live_fork=True)[0]
    assert k["live_fork"] is True and k["hugepages"] is False
    st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"])
    assert st == 200 and o["pong"] is True


def kill_child(daemon, k):
    """SIGKILL a sandbox's VMM and wait until the daemon reports it exited."""
    os.kill(k["pid"], signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline:
        st, o = daemon.json("GET", "/v1/sandboxes/" + k["id"])
        if o["state"] == "exited":
            break
        time.sleep(0.05)
    assert o["state"] == "exited" and o["vsock"] is None, o


def test_sandbox_that_died(daemon, spawn):
    k = spawn(1)[0]
    kill_child(daemon, k)
    st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"])
    assert st == 409 and "is not running" in o["error"]
    st, o = daemon.json("DELETE", "/v1/sandboxes/" + k["id"])
    assert st == 200 and o["state_before"] == "exited"


def test_agent_ops_on_exited_sandbox(daemon, spawn):
    k = spawn(1)[0]
    sid = k["id"]
    # Alive, the stub refuses these ops (422): the 409s below come from the
    # exited child, not from the request.
    st, _ = daemon.json("POST", "/v1/sandboxes/%s/exec" % sid, {"argv": ["true"]})
    assert st == 422
    kill_child(daemon, k)
    want = "sandbox %s is not running (its VMM exited); DELETE it" % sid
    for path, body in (("exec", {"argv": ["true"]}), ("exec", {"cmd": "echo hi", "timeout": 5}),
                       ("eval", {"code": "1+1"})):
        st, _, data = daemon.request("POST", "/v1/sandboxes/%s/%s" % (sid, path), body=body)
        assert st == 409 and error_of(data) == want, (path, st, data)
    st, _, data = daemon.request("PUT", "/v1/sandboxes/%s/files?path=/tmp/x&mode=600" % sid,
                                 raw=b"some bytes")
    assert st == 409 and error_of(data) == want, (st, data)
    st, hd, data = daemon.request("GET", "/v1/sandboxes/%s/files?path=/tmp/x" % sid)
    assert st == 409 and error_of(data) == want, (st, data)
    assert hd["content-type"] == "application/json"
    # Validation still comes first: a bad request is a 400 even now.
    st, o = daemon.json("POST", "/v1/sandboxes/%s/exec" % sid, {"argv": []})
    assert st == 400, o
    st, o = daemon.json("GET", "/v1/sandboxes/" + sid)
    assert st == 200 and o["state"] == "exited"
    st, o = daemon.json("DELETE", "/v1/sandboxes/" + sid)
    assert st == 200 and o["state_before"] == "exited"


def openapi_file_limit():
    """The PUT .../files body limit, as docs/openapi.yaml states it (maxLength)."""
    with open(os.path.join(harness.ROOT, "docs", "openapi.yaml")) as f:
        text = f.read()
    put = text[text.index("  /v1/sandboxes/{id}/files:"):]
    return int(re.search(r"format: binary, maxLength: (\d+)", put).group(1))


def zeros(total, chunk=1 << 20):
    """total zero bytes in chunks of at most `chunk`, never all in memory."""
    block = bytes(chunk)
    while total > 0:
        yield block[:min(chunk, total)]
        total -= chunk


def test_files_put_over_limit(daemon, spawn):
    sid = spawn(1)[0]["id"]
    limit = openapi_file_limit()
    assert limit == 32 << 20
    path = "/v1/sandboxes/%s/files?path=/tmp/big" % sid
    auth = {"Authorization": "Bearer " + daemon.token}
    for chunked in (True, False):
        c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
        try:
            headers = dict(auth, **({} if chunked else {"Content-Length": str(limit + 1)}))
            c.request("PUT", path, body=zeros(limit + 1), headers=headers,
                      encode_chunked=chunked)
            r = c.getresponse()
            st, data = r.status, r.read()
        finally:
            c.close()
        assert st == 413, (chunked, st, data)
        assert error_of(data) == ("request body over the %d-byte limit for PUT "
                                  "/v1/sandboxes/{id}/files" % limit), data
    # The daemon and the sandbox still answer.
    st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % sid)
    assert st == 200 and o["pong"] is True and o["sandbox"] == sid
    assert daemon.request("GET", "/healthz", token=False)[0] == 200


def test_body_where_none_is_taken(daemon):
    # Operations without a request body take none: any body is over their limit.
    for method, path in (("GET", "/v1/sandboxes"), ("GET", "/healthz"),
                         ("DELETE", "/v1/sandboxes/sb-" + "a" * 20)):
        st, _, data = daemon.request(method, path, raw=b"x")
        assert st == 413 and "over the 0-byte limit" in error_of(data), (method, path, st)


def proc_ppid(pid):
    """Field 4 of /proc/<pid>/stat, or None when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return int(s[s.rindex(")") + 2:].split()[1])


def proc_children(pid):
    """Child pids of every thread of pid (/proc/PID/task/*/children, or a
    scan of /proc where the kernel lacks that file)."""
    task = "/proc/%d/task" % pid
    files = [os.path.join(task, t, "children") for t in os.listdir(task)]
    if all(os.path.exists(f) for f in files):
        kids = set()
        for f in files:
            try:
                with open(f) as fh:
                    kids.update(int(x) for x in fh.read().split())
            except FileNotFoundError:  # a thread that just ended
                pass
        return kids
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and proc_ppid(int(p)) == pid}


def proc_comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().strip()


def spawner_of(d):
    """The daemon's one child: its spawner (src/daemon/spawnsvc.h)."""
    kids = proc_children(d.proc.pid)
    assert len(kids) == 1, ("the daemon has children other than its spawner", kids)
    (pid,) = kids
    assert proc_comm(pid) == "forkd-spawner" and proc_ppid(pid) == d.proc.pid
    return pid


def shared_files(pid):
    """The pipes and sockets pid holds (as readlink names them)."""
    fds = "/proc/%d/fd" % pid
    names = set()
    for fd in os.listdir(fds):
        try:
            names.add(os.readlink(os.path.join(fds, fd)))
        except FileNotFoundError:
            pass
    return {n for n in names if n.startswith(("socket:", "pipe:"))}


def test_daemon_never_forks(daemon, spawn):
    kids = spawn(3) + spawn(1, live_fork=True)
    spawner = spawner_of(daemon)
    theirs = shared_files(spawner) | shared_files(daemon.proc.pid)
    for k in kids:
        ppid = proc_ppid(k["pid"])
        assert ppid == spawner and ppid != daemon.proc.pid, (k["id"], k["pid"], ppid)
        # Nor does a sandbox hold the spawner's control socket or the
        # daemon's output: it would keep them open after their owner died.
        assert not shared_files(k["pid"]) & theirs, (k["id"], shared_files(k["pid"]) & theirs)
    # Still only the spawner after the children (and any snapshot job) ran.
    assert spawner_of(daemon) == spawner


def test_spawner_gone(env, daemon):
    st_dir, run = os.path.join(env.top, "st-spawner"), os.path.join(env.top, "run-spawner")
    d = harness.Daemon(env, extra=["--state-dir", st_dir, "--run-root", run]).start()
    try:
        code, kids = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub", "n": 1})
        assert code == 201, kids
        spawner = spawner_of(d)
        os.kill(spawner, signal.SIGKILL)
        deadline = time.time() + 5
        while harness.proc_start_time(spawner)[0] not in "ZX" and time.time() < deadline:
            time.sleep(0.02)  # the daemon reaps it only when it stops
        assert harness.proc_start_time(spawner)[0] in "ZX"
        st, _, data = d.request("POST", "/v1/sandboxes", body={"snapshot_tag": "stub", "n": 2},
                                timeout=30)
        assert st == 503, (st, data)
        assert error_of(data) == "the spawner process is gone; restart forkd serve"
        st, _, data = d.request("POST", "/v1/snapshots", body={
            "tag": "nospawner", "kind": "test-guest", "guest": "agent_stub"})
        assert st == 503 and "the spawner could not start the snapshot job" in error_of(data)
        # Nothing of the refused spawn is left; the sandbox started before
        # the spawner died (detached, not its child to stop) runs on.
        code, lst = d.json("GET", "/v1/sandboxes")
        assert code == 200 and [s["id"] for s in lst] == [kids[0]["id"]], lst
        assert sorted(os.listdir(run)) == [kids[0]["id"]]
        code, o = d.json("POST", "/v1/sandboxes/%s/ping" % kids[0]["id"])
        assert code == 200 and o["pong"] is True
        assert d.proc.poll() is None
        st, _, data = d.request("GET", "/healthz", token=False)
        assert st == 200 and json.loads(data) == {"status": "ok"}
        assert d.request("DELETE", "/v1/sandboxes/" + kids[0]["id"])[0] == 200
    finally:
        rc = d.stop()
    log = d.stderr()
    assert rc == 0 and "Sanitizer" not in log and "runtime error" not in log, log[-4000:]


def test_spawn_many(daemon, spawn):
    kids = spawn(20)
    assert [k["index"] for k in kids] == list(range(20))
    for k in (kids[0], kids[19]):
        st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"])
        assert st == 200 and o["index"] == k["index"]


# ---- audit log and metrics ----

def test_audit_log(daemon):
    marker = "/v1/sandboxes/sb-" + "q" * 20
    daemon.request("GET", marker)
    daemon.request("GET", "/v1/sandboxes", token="Bearer nope-nope-nope-nope")
    path = os.path.join(daemon.env.state, "audit.log")
    with open(path) as f:
        text = f.read()
    assert daemon.token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    for e in lines:
        assert {"time", "remote", "method", "path", "status", "duration_ms", "auth"} <= set(e)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"])
    mine = [e for e in lines if e["path"] == marker]
    assert mine and mine[-1]["status"] == 404 and mine[-1]["auth"] == "ok"
    assert mine[-1]["sandbox"] == "sb-" + "q" * 20 and mine[-1]["remote"] == "127.0.0.1"
    assert mine[-1]["error"].startswith("no sandbox")
    bad = [e for e in lines if e["auth"] == "invalid"]
    assert bad and bad[-1]["status"] == 401
    assert any(e["method"] == "POST" and e["path"] == "/v1/sandboxes" and e["status"] == 201
               for e in lines)


METRIC_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*\})?'
                         r" [-+]?(\d+(\.\d+)?([eE][-+]?\d+)?|\+Inf|NaN)$")


def test_metrics(daemon, spawn):
    spawn(1)
    st, hd, data = daemon.request("GET", "/metrics")
    assert st == 200 and hd["content-type"].startswith("text/plain; version=0.0.4")
    text = data.decode()
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif not line.startswith("# HELP "):
            assert METRIC_LINE.match(line), line
    assert types["forkd_http_requests_total"] == "counter"
    assert types["forkd_http_request_duration_seconds"] == "histogram"
    assert types["forkd_sandboxes"] == "gauge"
    spawned = int(re.search(r"^forkd_sandboxes_spawned_total (\d+)$", text, re.M).group(1))
    assert spawned >= 1
    assert re.search(r'^forkd_sandboxes\{state="running"\} [1-9]\d*$', text, re.M)
    m = re.search(r'^forkd_http_requests_total\{route="/v1/sandboxes",method="POST",'
                  r'code="201"\} (\d+)$', text, re.M)
    assert m and int(m.group(1)) >= 1
    assert re.search(r'^forkd_http_request_duration_seconds_bucket\{route="/healthz",'
                     r'le="\+Inf"\} \d+$', text, re.M)
    # Buckets are cumulative.
    for route in set(re.findall(r'_bucket\{route="([^"]+)"', text)):
        vals = [int(v) for v in re.findall(
            r'_bucket\{route="%s",le="[^"]+"\} (\d+)' % re.escape(route), text)]
        assert vals == sorted(vals), route


# ---- the contract: docs/openapi.yaml ----

def openapi_operations():
    """{(method, path): set of documented status codes} from docs/openapi.yaml's
    `paths:` section (responses are the quoted codes under each operation)."""
    ops, path, op = {}, None, None
    with open(os.path.join(harness.ROOT, "docs", "openapi.yaml")) as f:
        in_paths = False
        for line in f:
            if line.startswith("paths:"):
                in_paths = True
                continue
            if in_paths and re.match(r"^\S", line):
                break
            m = re.match(r"^  (/[^:]*):\s*$", line)
            if in_paths and m:
                path, op = m.group(1), None
            m = re.match(r"^    (\S+):", line)
            if in_paths and m and path:
                method = m.group(1)
                op = (method.upper(), path) if method in ("get", "post", "put", "delete",
                                                          "patch") else None
                if op:
                    ops[op] = set()
            m = re.match(r'^        "(\d{3})":', line)
            if in_paths and m and op:
                ops[op].add(int(m.group(1)))
    return ops


def openapi_routes():
    """(method, path) pairs from docs/openapi.yaml's `paths:` section."""
    return list(openapi_operations())


def audit_entries(env):
    """Every complete line of the audit logs of this session's daemons."""
    out = []
    for d in sorted(os.listdir(env.top)):
        path = os.path.join(env.top, d, "audit.log")
        if (d == "st" or d.startswith("st-")) and os.path.exists(path):
            with open(path) as f:
                text = f.read()
            out += [json.loads(line) for line in text.split("\n")[:-1]]
    return out


def test_openapi_matches_routes(daemon):
    routes = openapi_routes()
    assert len(routes) == 19, routes
    sid = "sb-" + "z" * 20
    for method, path in routes:
        p = path.replace("{id}", sid).replace("{tag}", "nosuchtag")
        if p.endswith("/files") or p.endswith("/dir"):
            p += "?path=/x"
        body = {} if method == "POST" else (b"" if method == "PUT" else None)
        st, hd, data = daemon.request(method, p, body=body)
        if st >= 400:
            msg = error_of(data)
            assert "no such endpoint" not in msg and st != 405, (method, path, st, msg)
    # And nothing undocumented answers.
    documented = {p for _, p in routes}
    for p in ("/v1", "/v1/", "/v1/sandboxes/%s/fork" % sid, "/v1/snapshots/x/y", "/api"):
        st, _, data = daemon.request("GET", p)
        assert st == 404 and p not in documented


def test_openapi_lists_observed_statuses(daemon, env):
    """Every answer the tests so far drew from a daemon (its audit log) has its
    status listed for its operation in docs/openapi.yaml; a listed path answers
    an unlisted method with 405 (MethodNotAllowed), an unlisted path 404."""
    ops = openapi_operations()
    with open(os.path.join(harness.ROOT, "docs", "openapi.yaml")) as f:
        assert re.search(r"^    MethodNotAllowed:$", f.read(), re.M)
    # A few answers of each kind even when this test runs alone.
    for method, path, token in (("GET", "/healthz", True), ("GET", "/v1/sandboxes", False),
                                ("GET", "/v1/sandboxes/sb-x", True), ("GET", "/nope", True),
                                ("PATCH", "/v1/snapshots", True)):
        daemon.request(method, path, token=token)
    # The audit line is written right after the answer is sent.
    deadline = time.time() + 5
    while time.time() < deadline and not any(
            e["method"] == "PATCH" and e.get("path") == "/v1/snapshots"
            for e in audit_entries(env)):
        time.sleep(0.02)
    patterns = {p: re.compile("^" + re.sub(r"\\\{[a-z]+\\\}", "[^/]+", re.escape(p)) + "$")
                for _, p in ops}
    entries = [e for e in audit_entries(env) if "path" in e]
    seen, missing = set(), set()
    for e in entries:
        path = next((p for p, rx in patterns.items() if rx.match(e["path"])), None)
        if path is None:
            want = {404}
        elif (e["method"], path) in ops:
            want = ops[(e["method"], path)]
        else:
            want = {405}
        seen.add((e["method"], path, e["status"]))
        if e["status"] not in want:
            missing.add((e["method"], path or e["path"], e["status"]))
    assert not missing, sorted(missing)
    assert {s for _, _, s in seen} >= {200, 400, 401, 404, 405}, seen


def test_nul_in_path_is_not_cut(daemon):
    """%00 in a path parameter does not end it early: /v1/snapshots/stub%00x is not
    'stub' (it once was, so DELETE a%00b acted on 'a')."""
    for method in ("GET", "DELETE"):
        st, _, data = daemon.request(method, "/v1/snapshots/stub%00x")
        assert st in (400, 404), (method, st, data)
    st, o = daemon.json("GET", "/v1/snapshots/stub")
    assert st == 200 and o["state"] == "ready"
    st, _, _ = daemon.request("GET", "/v1/sandboxes/sb-aaaaaaaaaaaaaaaaaaaa%00")
    assert st in (400, 404)


def test_web_pages_are_refused(daemon):
    """What a web page can make a browser send never acts: a cross-site POST
    (Origin, text/plain) starts no snapshot job, a rebound DNS name (foreign Host)
    is not served, and bodies must be of the endpoint's type."""
    before = daemon.json("GET", "/v1/snapshots")[1]
    body = json.dumps({"tag": "csrf", "kind": "test-guest", "guest": "agent_stub"})
    st, _, data = daemon.request("POST", "/v1/snapshots", raw=body.encode(),
                                 headers={"Origin": "https://evil.example",
                                          "Content-Type": "text/plain"})
    assert st == 403 and "Origin" in error_of(data)
    st, _, data = daemon.request("POST", "/v1/snapshots", raw=body.encode(),
                                 headers={"Content-Type": "text/plain"})
    assert st == 415 and "application/json" in error_of(data)
    st, _, data = daemon.request("GET", "/v1/sandboxes", headers={"Host": "evil.example:8889"})
    assert st == 421 and "evil.example" in error_of(data)
    st, _, data = daemon.request("GET", "/healthz", token=False,
                                 headers={"Origin": "https://evil.example"})
    assert st == 403
    for host in ("localhost:1", "127.0.0.1", "LOCALHOST"):
        assert daemon.request("GET", "/v1/sandboxes", headers={"Host": host})[0] == 200, host
    st, _, data = daemon.request("PUT", "/v1/sandboxes/sb-aaaaaaaaaaaaaaaaaaaa/files?path=/x",
                                 raw=b"data", headers={"Content-Type": "multipart/form-data"})
    assert st == 415
    assert daemon.json("GET", "/v1/snapshots")[1] == before
    assert daemon.json("GET", "/v1/snapshots/csrf")[0] == 404


def test_allow_host(env):
    """--allow-host NAME serves that Host too (a reverse proxy's), and only it."""
    d = harness.Daemon(env, extra=["--allow-host", "forkd.example"]).start()
    try:
        assert d.request("GET", "/v1/sandboxes", headers={"Host": "forkd.example"})[0] == 200
        assert d.request("GET", "/v1/sandboxes", headers={"Host": "forkd.example:443"})[0] == 200
        assert d.request("GET", "/v1/sandboxes", headers={"Host": "forkd.example.evil"})[0] == 421
        assert d.request("GET", "/v1/sandboxes", headers={"Host": "other.example"})[0] == 421
    finally:
        assert d.stop() == 0


def test_body_for_missing_sandbox_not_buffered(daemon):
    """A 30 MiB upload to a sandbox that does not exist is answered 404 without
    the daemon holding the body: its peak memory grows by less than 16 MiB."""
    def hwm_kib():
        with open("/proc/%d/status" % daemon.proc.pid) as f:
            return int(next(ln for ln in f if ln.startswith("VmHWM:")).split()[1])

    before = hwm_kib()
    for i in range(4):
        sid = "sb-" + chr(ord("a") + i) * 20
        st, _, data = daemon.request("PUT", "/v1/sandboxes/%s/files?path=/x" % sid,
                                     raw=b"z" * (30 << 20),
                                     headers={"Content-Type": "application/octet-stream"})
        assert st == 404 and error_of(data) == "no sandbox " + sid
    assert hwm_kib() - before < 16 << 10, (before, hwm_kib())


def test_snapshot_cmdline_allow_list(daemon):
    """POST /v1/snapshots may add only listed kernel parameters to the boot of an
    unjailed root VMM: init= and friends are refused, naming the word."""
    for cmd, bad in (("init=/bin/sh", "init=/bin/sh"), ("quiet rdinit=/x", "rdinit=/x"),
                     ("console=ttyS0 modprobe.blacklist=a", "modprobe.blacklist=a"),
                     ("loglevel=$(id)", "loglevel=$(id)"), ("root=/dev/vdb", "root=/dev/vdb")):
        st, _, data = daemon.request("POST", "/v1/snapshots",
                                     body={"tag": "cl", "kind": "test-guest",
                                           "guest": "agent_stub", "cmdline": cmd})
        assert st == 400 and "'%s' is not allowed" % bad in error_of(data), (cmd, data)
    assert daemon.json("GET", "/v1/snapshots/cl")[0] == 404


def test_token_by_default(env):
    """With neither --token-file nor --no-auth the daemon makes a token of its own
    (0600, in its state directory), requires it, and keeps it across restarts."""
    st_dir = env.top + "/st-default-token"
    d = harness.Daemon(env, token=False, extra=["--state-dir", st_dir,
                                                "--run-root", env.top + "/run-default-token"])
    d.args.remove("--no-auth")
    d.start()
    path = os.path.join(st_dir, "token")
    try:
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        with open(path) as f:
            tok = f.read().strip()
        assert re.match(r"^[0-9a-f]{64}$", tok), tok
        assert d.request("GET", "/v1/sandboxes", token=False)[0] == 401
        assert d.request("GET", "/v1/sandboxes", token="Bearer " + tok)[0] == 200
        assert d.request("GET", "/healthz", token=False)[0] == 200
    finally:
        assert d.stop() == 0
    d.start()
    try:
        with open(path) as f:
            assert f.read().strip() == tok
        assert d.request("GET", "/v1/sandboxes", token="Bearer " + tok)[0] == 200
    finally:
        assert d.stop() == 0


def test_audit_log_rotates(env, monkeypatch):
    """An audit log over its limit becomes audit.log.1 and a new one starts: at
    most twice the limit on disk however many requests come."""
    monkeypatch.setenv("FORKD_TEST_AUDIT_MAX_BYTES", "4096")
    st_dir = env.top + "/st-rotate"
    d = harness.Daemon(env, extra=["--state-dir", st_dir, "--run-root", env.top + "/run-rot"])
    d.start()
    try:
        for _ in range(200):
            assert d.request("GET", "/v1/sandboxes")[0] == 200
    finally:
        assert d.stop() == 0
    log, old = os.path.join(st_dir, "audit.log"), os.path.join(st_dir, "audit.log.1")
    assert os.path.exists(old), os.listdir(st_dir)
    for p in (log, old):
        size = os.path.getsize(p)
        assert 0 < size < 4096 + 1024, (p, size)
        with open(p) as f:
            for line in f:
                assert json.loads(line)["path"] == "/v1/sandboxes"
