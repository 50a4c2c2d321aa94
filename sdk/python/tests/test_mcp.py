"""forkd.mcp without a forkd daemon: the JSON-RPC framing over a real stdio
pipe (python3 -m forkd.mcp), version negotiation, the tools' schemas and
argument checks, tool results and errors against a fake Controller, and the
session's end (stdin EOF, SIGTERM) killing only the sandboxes it created,
seen by a fake daemon on loopback. tests/mcp/ drives it with the official
MCP client against a real daemon."""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from forkd import AgentError, NotFound
from forkd import mcp

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
SB = "sb-" + "a" * 20
SB2 = "sb-" + "b" * 20


def server_proc(url="http://127.0.0.1:1", *args):
    env = dict(os.environ, PYTHONPATH=PKG, FORKD_URL=url, FORKD_TOKEN="t" * 20)
    return subprocess.Popen([sys.executable, "-m", "forkd.mcp", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def converse(lines, *args):
    """The answers (decoded) to lines written to a fresh server, then EOF."""
    p = server_proc("http://127.0.0.1:1", *args)
    out, err = p.communicate("".join(l + "\n" for l in lines).encode(), timeout=30)
    assert p.returncode == 0, err
    return [json.loads(l) for l in out.decode().splitlines()]


def req(i, method, params=None):
    m = {"jsonrpc": "2.0", "id": i, "method": method}
    if params is not None:
        m["params"] = params
    return json.dumps(m)


INIT = {"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}


def test_stdio_framing_and_protocol_errors():
    answers = converse([
        req(1, "initialize", INIT),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        "",
        "{not json",
        req(2, "ping"),
        req(3, "no/such/method"),
        req("s", "tools/list", {}),
        json.dumps({"jsonrpc": "1.0", "id": 4, "method": "ping"}),
        json.dumps([{"jsonrpc": "2.0", "id": 5, "method": "ping"}]),
        json.dumps({"jsonrpc": "2.0", "id": 6, "method": "ping", "params": [1]}),
        json.dumps({"jsonrpc": "2.0", "id": 7, "result": {}}),  # a response: no answer
        req(8, "initialize", {}),
        "\xff\xfe",
    ])
    by_id = {}
    for a in answers:
        assert a["jsonrpc"] == "2.0"
        by_id.setdefault(json.dumps(a["id"]), []).append(a)
    init = by_id["1"][0]["result"]
    assert init["protocolVersion"] == "2025-06-18"
    assert init["capabilities"] == {"tools": {"listChanged": False}}
    assert init["serverInfo"]["name"] == "forkd" and init["serverInfo"]["version"]
    assert by_id["2"][0]["result"] == {}
    assert by_id["3"][0]["error"]["code"] == -32601
    assert len(by_id['"s"'][0]["result"]["tools"]) == len(mcp.TOOLS)
    assert by_id["4"][0]["error"]["code"] == -32600
    assert by_id["6"][0]["error"]["code"] == -32602
    assert by_id["8"][0]["error"]["code"] == -32602
    assert "7" not in by_id and "5" not in by_id
    nulls = sorted(a["error"]["code"] for a in by_id["null"])
    assert nulls == [-32700, -32700, -32600], nulls  # two parse errors, the batch
    assert len(answers) == 10


@pytest.mark.parametrize("asked,got", [("2025-06-18", "2025-06-18"), ("2025-03-26", "2025-03-26"),
                                       ("2024-11-05", "2024-11-05"), ("2099-01-01", "2025-06-18"),
                                       ("2025-11-25", "2025-06-18")])
def test_version_negotiation(asked, got):
    srv = mcp.Server(FakeController)
    a = srv.handle(json.loads(req(1, "initialize", dict(INIT, protocolVersion=asked))))
    assert a["result"]["protocolVersion"] == got


def test_tool_schemas():
    names = [t["name"] for t in mcp.Server(FakeController).handle(
        json.loads(req(1, "tools/list")))["result"]["tools"]]
    assert names == ["sandbox_create", "sandbox_list", "sandbox_kill", "run_python",
                     "run_command", "read_file", "write_file", "list_dir", "remove_file",
                     "sandbox_branch"]
    for t in mcp.TOOLS:
        d = t.describe()
        s = d["inputSchema"]
        assert s["type"] == "object" and s["additionalProperties"] is False, t.name
        assert set(s["required"]) <= set(s["properties"]), t.name
        assert d["description"] and d["title"]
        for p in s["properties"].values():
            assert "type" in p, t.name
        json.dumps(d)  # JSON as it is


class FakeController:
    """What the tools call, recorded."""

    def __init__(self):
        self.calls = []
        self.live = {SB2: {"id": SB2, "state": "running"}}
        self.files = {}

    def create_sandboxes(self, tag, n=1, **kw):
        self.calls.append(("create", tag, kw))
        self.live[SB] = {"id": SB, "snapshot_tag": tag, "state": "running"}
        return [dict(self.live[SB])]

    def sandboxes(self, tag=None):
        return [dict(v) for v in self.live.values()]

    def delete_sandbox(self, sid):
        self.calls.append(("delete", sid))
        if self.live.pop(sid, None) is None:
            raise NotFound("no sandbox " + sid, 404)
        return {"id": sid}

    def eval(self, sid, code, timeout=60):
        if code == "boom":
            raise AgentError("eval: ZeroDivisionError", 422, {"traceback": "Traceback: 1/0"})
        return {"result": "2", "stdout": "", "stderr": ""}

    def exec(self, sid, argv=None, cmd=None, env=None, cwd=None, stdin=None, timeout=60):
        self.calls.append(("exec", argv, cmd, env, cwd, timeout))
        return {"stdout": "hi\n", "stderr": "", "exit_code": 0, "timed_out": False}

    def write_file(self, sid, path, data, mode=None):
        self.files[path] = data
        return {"bytes": len(data), "path": path}

    def read_file(self, sid, path):
        return self.files[path]

    def list_dir(self, sid, path):
        return {"path": path, "entries": [], "truncated": False}

    def remove_file(self, sid, path, recursive=False):
        return {"path": path, "deleted": True, "type": "file"}

    def branch(self, sid, tag=None, mode="live"):
        return {"tag": tag or "py-0000abcd", "mode": mode}


def call(srv, name, args, i=1):
    return srv.handle({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": name, "arguments": args}})


@pytest.mark.parametrize("name,args,where", [
    ("nope", {}, "unknown tool"),
    ("sandbox_kill", {}, "missing required 'sandbox_id'"),
    ("sandbox_kill", {"sandbox_id": "sb-x"}, "does not match"),
    ("sandbox_kill", {"sandbox_id": SB, "extra": 1}, "unknown property 'extra'"),
    ("sandbox_create", {"tag": "../etc"}, "arguments.tag"),
    ("sandbox_create", {"per_child_netns": "yes"}, "expected boolean"),
    ("sandbox_create", {"memory_limit_mib": 8}, "at least 16"),
    ("sandbox_create", {"memory_limit_mib": True}, "expected integer"),
    ("run_python", {"sandbox_id": SB, "code": "1", "timeout_secs": 0}, "more than 0"),
    ("run_python", {"sandbox_id": SB, "code": "1", "timeout_secs": 3601}, "at most 3600"),
    ("run_command", {"sandbox_id": SB}, "exactly one of command"),
    ("run_command", {"sandbox_id": SB, "command": "ls", "argv": ["ls"]}, "exactly one"),
    ("run_command", {"sandbox_id": SB, "argv": []}, "at least 1"),
    ("run_command", {"sandbox_id": SB, "argv": ["ls", 1]}, "arguments.argv[1]"),
    ("run_command", {"sandbox_id": SB, "command": "ls", "env": {"A": 1}}, "arguments.env.A"),
    ("read_file", {"sandbox_id": SB, "path": "relative"}, "arguments.path"),
    ("write_file", {"sandbox_id": SB, "path": "/x", "content": "!!", "base64": True},
     "not base64"),
    ("write_file", {"sandbox_id": SB, "path": "/x", "content": "", "mode": "9"},
     "arguments.mode"),
    ("sandbox_branch", {"sandbox_id": SB, "mode": "half"}, "one of live, full, diff"),
])
def test_bad_arguments_are_invalid_params(name, args, where):
    a = call(mcp.Server(FakeController), name, args)
    assert a["error"]["code"] == -32602 and where in a["error"]["message"], a


def test_arguments_not_an_object():
    srv = mcp.Server(FakeController)
    a = srv.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "sandbox_list", "arguments": [1]}})
    assert a["error"]["code"] == -32602


def test_tools_against_a_fake_controller():
    ctl = FakeController()
    srv = mcp.Server(lambda: ctl, default_tag="deftag")
    srv.handle(json.loads(req(0, "initialize", INIT)))
    r = call(srv, "sandbox_create", {"per_child_netns": True})["result"]
    assert not r["isError"] and r["structuredContent"]["sandbox_id"] == SB
    assert json.loads(r["content"][0]["text"]) == r["structuredContent"]
    assert ctl.calls[0] == ("create", "deftag", {"per_child_netns": True,
                                                 "memory_limit_mib": None})
    listed = call(srv, "sandbox_list", {})["result"]["structuredContent"]["sandboxes"]
    assert {s["id"]: s["created_by_this_session"] for s in listed} == {SB: True, SB2: False}
    r = call(srv, "run_python", {"sandbox_id": SB, "code": "1+1"})["result"]
    assert r["structuredContent"]["result"] == "2"
    r = call(srv, "run_python", {"sandbox_id": SB, "code": "boom"})["result"]
    assert r["isError"] and "ZeroDivisionError" in r["content"][0]["text"]
    assert "Traceback: 1/0" in r["content"][0]["text"] and "structuredContent" not in r
    r = call(srv, "run_command", {"sandbox_id": SB, "argv": ["echo", "hi"], "cwd": "/tmp",
                                  "timeout_secs": 5})["result"]
    assert r["structuredContent"]["stdout"] == "hi\n"
    assert ctl.calls[-1] == ("exec", ["echo", "hi"], None, None, "/tmp", 5)
    call(srv, "write_file", {"sandbox_id": SB, "path": "/t", "content": "héllo"})
    assert call(srv, "read_file", {"sandbox_id": SB, "path": "/t"})["result"][
        "structuredContent"] == {"path": "/t", "size": 6, "base64": False, "content": "héllo"}
    call(srv, "write_file", {"sandbox_id": SB, "path": "/b", "content": "AP8=", "base64": True})
    assert ctl.files["/b"] == b"\x00\xff"
    got = call(srv, "read_file", {"sandbox_id": SB, "path": "/b"})["result"]["structuredContent"]
    assert got == {"path": "/b", "size": 2, "base64": True, "content": "AP8="}
    r = call(srv, "sandbox_branch", {"sandbox_id": SB, "tag": "b1", "mode": "diff"})["result"]
    assert r["structuredContent"]["tag"] == "b1"
    # Kill of an unknown sandbox: a tool error, not a protocol error.
    r = call(srv, "sandbox_kill", {"sandbox_id": "sb-" + "c" * 20})["result"]
    assert r["isError"] and "no sandbox" in r["content"][0]["text"]
    srv.close()
    assert ctl.calls[-1] == ("delete", SB) and SB2 in ctl.live
    srv.close()  # once only
    assert ctl.calls[-1] == ("delete", SB)


def test_old_protocol_gets_no_structured_content():
    srv = mcp.Server(FakeController)
    srv.handle(json.loads(req(0, "initialize", dict(INIT, protocolVersion="2025-03-26"))))
    r = call(srv, "sandbox_list", {})["result"]
    assert "structuredContent" not in r and json.loads(r["content"][0]["text"])


def test_killed_by_hand_is_not_killed_again():
    ctl = FakeController()
    srv = mcp.Server(lambda: ctl)
    call(srv, "sandbox_create", {})
    call(srv, "sandbox_kill", {"sandbox_id": SB})
    srv.close()
    assert ctl.calls.count(("delete", SB)) == 1


class FakeDaemon:
    """Just enough of forkd serve on loopback: POST and DELETE /v1/sandboxes."""

    def __init__(self, delete_secs=0.0):
        self.deleted = []
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(201, [{"id": SB, "state": "running"}])

            def do_DELETE(self):
                time.sleep(delete_secs)
                fake.deleted.append(self.path)
                self._send(200, {"id": self.path.rsplit("/", 1)[1]})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("how", ["eof", "sigterm", "sigint", "eof-then-sigterm"])
def test_session_end_kills_what_it_created(how):
    """eof-then-sigterm: what an MCP host does to a server slow to exit; the
    kill under way is not cut short."""
    d = FakeDaemon(1.5 if how == "eof-then-sigterm" else 0)
    try:
        p = server_proc(d.url)
        p.stdin.write((req(1, "initialize", INIT) + "\n").encode())
        p.stdin.write((req(2, "tools/call", {"name": "sandbox_create", "arguments": {}})
                       + "\n").encode())
        p.stdin.flush()
        answers = [json.loads(p.stdout.readline()) for _ in range(2)]
        assert answers[1]["result"]["structuredContent"]["sandbox_id"] == SB, answers
        assert d.deleted == []
        if how.startswith("eof"):
            p.stdin.close()
        if how == "eof-then-sigterm":
            time.sleep(0.5)
            p.send_signal(signal.SIGTERM)
        elif how != "eof":
            p.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        assert p.wait(30) == 0, p.stderr.read()
        assert d.deleted == ["/v1/sandboxes/" + SB]
        p.stdout.close()
        p.stderr.close()
        if not how.startswith("eof"):
            p.stdin.close()
    finally:
        d.close()
