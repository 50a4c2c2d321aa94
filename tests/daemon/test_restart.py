"""Restart and stop: sandboxes outlive the daemon. kill -9 the daemon with
sandboxes alive, kill one sandbox meanwhile, start again: the survivors are
listed under the same ids and answer ping; the dead one is forgotten (row and
run directory). SIGTERM is graceful: a request in flight completes, the daemon
exits 0, sandboxes keep running."""

import os
import signal
import socket
import time

import harness


def own_daemon(env, name):
    st, run = os.path.join(env.top, "st-" + name), os.path.join(env.top, "run-" + name)
    return harness.Daemon(env, extra=["--state-dir", st, "--run-root", run]), st, run


def test_kill9_restart_readopts(env, daemon):
    d, st, run = own_daemon(env, "r")
    d.start()
    code, kids = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub", "n": 3})
    assert code == 201
    ids = [k["id"] for k in kids]
    d.proc.kill()
    d.proc.wait()
    time.sleep(0.3)  # the spawner sees the socket close and exits; children stay
    for k in kids:
        assert harness.proc_alive(k["pid"], harness.read_pidfile(
            os.path.join(k["run_dir"], "pid"))[1]), k["id"]
    dead = kids[1]
    os.kill(dead["pid"], signal.SIGKILL)
    time.sleep(0.2)

    d2 = harness.Daemon(env, extra=["--state-dir", st, "--run-root", run]).start()
    try:
        assert "re-adopted 2 running sandboxes, forgot 1 that had exited" in d2.stderr()
        code, lst = d2.json("GET", "/v1/sandboxes")
        assert code == 200
        assert sorted(s["id"] for s in lst) == sorted([ids[0], ids[2]])
        for s in lst:
            assert s["state"] == "running"
            code, o = d2.json("POST", "/v1/sandboxes/%s/ping" % s["id"])
            assert code == 200 and o["pong"] is True and o["index"] == s["index"]
        assert d2.json("GET", "/v1/sandboxes/" + dead["id"])[0] == 404
        assert not os.path.exists(dead["run_dir"])
        code, hd, text = d2.request("GET", "/metrics")
        assert b"forkd_sandboxes_adopted_total 2\n" in text
        assert b"forkd_sandboxes_forgotten_total 1\n" in text
        for s in lst:
            assert d2.request("DELETE", "/v1/sandboxes/" + s["id"])[0] == 200
    finally:
        assert d2.stop() == 0


def test_sigterm_is_graceful(env, daemon):
    d, st, run = own_daemon(env, "t")
    d.start()
    code, kids = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub", "n": 1})
    assert code == 201
    k = kids[0]
    # A request in flight: headers sent, body not yet.
    s = socket.create_connection(("127.0.0.1", d.port))
    body = b'{"snapshot_tag": "nope"}'
    s.sendall(b"POST /v1/sandboxes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
              + d.token.encode() + b"\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert d.proc.poll() is None, "the daemon exited with a request in flight"
    # New connections are refused once it stopped listening.
    try:
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    assert refused
    s.sendall(body[5:])
    s.settimeout(10)
    resp = s.recv(65536)
    s.close()
    assert resp.startswith(b"HTTP/1.1 404"), resp[:100]
    assert d.proc.wait(10) == 0
    log = d.stderr()
    assert "SIGTERM: no new connections; finishing requests in flight" in log
    assert "stopped; 1 sandbox keep running" in log
    pid, start = harness.read_pidfile(os.path.join(k["run_dir"], "pid"))
    assert harness.proc_alive(pid, start)
    # The next daemon takes it back.
    d2 = harness.Daemon(env, extra=["--state-dir", st, "--run-root", run]).start()
    try:
        code, o = d2.json("POST", "/v1/sandboxes/%s/ping" % k["id"])
        assert code == 200 and o["pong"] is True
        assert d2.request("DELETE", "/v1/sandboxes/" + k["id"])[0] == 200
        assert not harness.proc_alive(pid, start)
    finally:
        assert d2.stop() == 0
