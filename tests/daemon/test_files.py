"""GET /v1/sandboxes/{id}/dir and DELETE /v1/sandboxes/{id}/files against a
real daemon. agent_stub has no file system and refuses list_dir and remove
(422); the answers themselves come from a scripted agent put in place of a
real sandbox's vsock socket, which is also how a hostile guest's answers are
tried: every one of those must become a 502, never reach the client."""

import contextlib
import json
import os
import socket
import threading

from test_api import error_of


@contextlib.contextmanager
def scripted_agent(run_dir, answer):
    """Serve the agent protocol on <run_dir>/vsock.sock while the block runs:
    answer(request dict) -> the reply's fields (a dict, id and ok added) or
    raw bytes of a whole reply line. Yields the list of requests seen. The
    VMM's own socket is moved aside and put back afterwards."""
    sock = os.path.join(run_dir, "vsock.sock")
    aside = sock + ".vmm"
    os.rename(sock, aside)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    seen = []
    try:
        srv.bind(sock)
        srv.listen(8)

        def serve():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                with c, c.makefile("rb") as f:
                    if not f.readline().startswith(b"CONNECT "):
                        continue
                    c.sendall(b"OK 1234\n")
                    line = f.readline()
                    if not line:
                        continue
                    req = json.loads(line)
                    seen.append(req)
                    a = answer(req)
                    if isinstance(a, bytes):
                        c.sendall(a.replace(b"$ID", str(req["id"]).encode()) + b"\n")
                    else:
                        c.sendall(json.dumps(dict({"id": req["id"], "ok": True}, **a))
                                  .encode() + b"\n")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        yield seen
    finally:
        srv.close()
        t.join(5)
        os.unlink(sock)
        os.rename(aside, sock)


def entry(name="a.txt", **kw):
    e = {"name": name, "type": "file", "size": 3, "mode": 0o644, "mtime": 1763982000.5}
    e.update(kw)
    return e


def test_list_and_remove_refused_by_stub(daemon, spawn):
    sid = spawn(1)[0]["id"]
    st, _, data = daemon.request("GET", "/v1/sandboxes/%s/dir?path=/tmp" % sid)
    assert st == 422 and error_of(data) == "agent_stub: op not supported"
    st, _, data = daemon.request("DELETE", "/v1/sandboxes/%s/files?path=/tmp/x" % sid)
    assert st == 422 and error_of(data) == "agent_stub: op not supported"
    # Validation comes before the agent is asked.
    for method, p in (("GET", "dir"), ("GET", "dir?path=tmp"), ("DELETE", "files"),
                      ("DELETE", "files?path=x/y"), ("GET", "dir?path=" + "/a" * 2100)):
        st, o = daemon.json(method, "/v1/sandboxes/%s/%s" % (sid, p))
        assert st == 400 and "absolute path" in o["error"], (method, p, o)
    st, o = daemon.json("DELETE", "/v1/sandboxes/%s/files?path=/x&recursive=yes" % sid)
    assert st == 400 and o["error"] == '"recursive" is true or false'
    st, _, data = daemon.request("DELETE", "/v1/sandboxes/%s/files?path=/x" % sid, raw=b"x")
    assert st == 413
    st, _, data = daemon.request("PATCH", "/v1/sandboxes/%s/dir?path=/x" % sid)
    assert st == 405
    st, o = daemon.json("GET", "/v1/sandboxes/sb-%s/dir?path=/x" % ("a" * 20))
    assert st == 404


def test_list_and_remove_answers(daemon, spawn):
    k = spawn(1)[0]
    sid, base = k["id"], "/v1/sandboxes/%s" % k["id"]
    good = [entry("a.txt", extra="dropped"), entry("d", type="dir", size=4096, mode=0o755),
            entry("l", type="symlink", size=4, mode=0o777, mtime=5),
            entry("caf\u00e9 \u2603", type="other", size=0, mode=0)]

    def answer(req):
        if req["op"] == "list_dir":
            if req["path"] == "/err":
                return {"ok": False, "error": "list_dir: FileNotFoundError: [Errno 2] "
                                              "No such file or directory: '/err'"}
            return {"entries": good, "truncated": False, "more": 1}
        if req["path"] == "/full":
            return {"ok": False, "error": "remove: /full: directory not empty (remove it "
                                          "with \"recursive\": true)"}
        return {"type": "dir" if req["recursive"] else "file"}

    with scripted_agent(k["run_dir"], answer) as seen:
        st, o = daemon.json("GET", base + "/dir?path=/tmp/t%C3%A9")
        assert st == 200, o
        want = [dict(e) for e in good]
        del want[0]["extra"]
        assert o == {"path": "/tmp/t\u00e9", "entries": want, "truncated": False}, o
        st, o = daemon.json("GET", base + "/dir?path=/err")
        assert st == 422 and o["error"].startswith("list_dir: FileNotFoundError"), o
        st, o = daemon.json("DELETE", base + "/files?path=/tmp/f")
        assert st == 200 and o == {"path": "/tmp/f", "deleted": True, "type": "file"}, o
        st, o = daemon.json("DELETE", base + "/files?path=/tmp/d&recursive=true")
        assert st == 200 and o == {"path": "/tmp/d", "deleted": True, "type": "dir"}, o
        st, o = daemon.json("DELETE", base + "/files?path=/full&recursive=0")
        assert st == 422 and "directory not empty" in o["error"], o
    assert [(r["op"], r["path"], r.get("recursive")) for r in seen] == [
        ("list_dir", "/tmp/t\u00e9", None), ("list_dir", "/err", None),
        ("remove", "/tmp/f", False), ("remove", "/tmp/d", True), ("remove", "/full", False)]
    assert all(set(r) <= {"op", "id", "path", "recursive"} for r in seen), seen
    # The sandbox's own agent is back.
    st, o = daemon.json("POST", base + "/ping")
    assert st == 200 and o["sandbox"] == sid


def test_list_of_10000_entries(daemon, spawn):
    """The agent's whole bound passes (60000 JSON values, over the 4096 of
    other answers); one more entry is a 502."""
    k = spawn(1)[0]
    many = [entry("f%05d" % i) for i in range(10000)]
    with scripted_agent(k["run_dir"], lambda req: {"entries": many, "truncated": True}):
        st, o = daemon.json("GET", "/v1/sandboxes/%s/dir?path=/big" % k["id"])
        assert st == 200 and o["truncated"] is True and o["entries"] == many
    with scripted_agent(k["run_dir"],
                        lambda req: {"entries": many + [entry("x")], "truncated": True}):
        st, o = daemon.json("GET", "/v1/sandboxes/%s/dir?path=/big" % k["id"])
        assert st == 502 and "at most 10000 entries" in o["error"], o


def test_hostile_answers_are_502(daemon, spawn):
    k = spawn(1)[0]
    bad_lists = [
        ({"entries": {}, "truncated": False}, "not an array"),
        ({"entries": []}, '"truncated"'),
        ({"entries": [], "truncated": "no"}, '"truncated"'),
        ({"entries": [7], "truncated": False}, "not an object"),
        ({"entries": [entry("a/b")], "truncated": False}, '"name"'),
        ({"entries": [entry("..")], "truncated": False}, '"name"'),
        ({"entries": [entry(".")], "truncated": False}, '"name"'),
        ({"entries": [entry("")], "truncated": False}, '"name"'),
        ({"entries": [entry("x" * 256)], "truncated": False}, '"name"'),
        ({"entries": [entry(5)], "truncated": False}, '"name"'),
        ({"entries": [entry(type="fifo")], "truncated": False}, '"type"'),
        ({"entries": [entry(size=-1)], "truncated": False}, '"size"'),
        ({"entries": [entry(size="3")], "truncated": False}, '"size"'),
        ({"entries": [entry(size=1.5)], "truncated": False}, '"size"'),
        ({"entries": [entry(mode=0o10000)], "truncated": False}, '"mode"'),
        ({"entries": [entry(mode=-1)], "truncated": False}, '"mode"'),
        ({"entries": [entry(mtime="now")], "truncated": False}, '"mtime"'),
        ({"entries": [entry(mtime=None)], "truncated": False}, '"mtime"'),
        ({"entries": [entry(), {"name": "b"}], "truncated": False}, '"type"'),
    ]
    it = iter(bad_lists)
    with scripted_agent(k["run_dir"], lambda req: next(it)[0]):
        for a, want in bad_lists:
            st, o = daemon.json("GET", "/v1/sandboxes/%s/dir?path=/x" % k["id"])
            assert st == 502 and want in o["error"], (a, st, o)
            assert "the agent's list_dir answer" in o["error"]
    # jansson itself refuses these: too many values (counted before parsing),
    # a duplicate key, a lone surrogate, a NUL in a name.
    raw = [b'{"id":$ID,"ok":true,"entries":[' + b"[]," * 70000 + b'[]],"truncated":false}',
           b'{"id":$ID,"ok":true,"entries":[{"name":"a\\u0000b","type":"file","size":1,'
           b'"mode":1,"mtime":1}],"truncated":false}',
           b'{"id":$ID,"ok":true,"entries":[],"truncated":false,"truncated":true}',
           b'{"id":$ID,"ok":true,"entries":[{"name":"\\udc80","type":"file","size":1,'
           b'"mode":1,"mtime":1}],"truncated":false}']
    it2 = iter(raw)
    with scripted_agent(k["run_dir"], lambda req: next(it2)):
        for _ in raw:
            st, o = daemon.json("GET", "/v1/sandboxes/%s/dir?path=/x" % k["id"])
            assert st == 502, o
    bad_removes = [{}, {"type": "fifo"}, {"type": 1}]
    it3 = iter(bad_removes)
    with scripted_agent(k["run_dir"], lambda req: next(it3)):
        for _ in bad_removes:
            st, o = daemon.json("DELETE", "/v1/sandboxes/%s/files?path=/x" % k["id"])
            assert st == 502 and "remove answer" in o["error"], o
    st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"])
    assert st == 200 and o["pong"] is True
