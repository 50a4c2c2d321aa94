"""The HTTP listener under abuse (docs/SECURITY.md, "The daemon"):

- a client that announces a body with "Expect: 100-continue" gets a refusal
  decided before the body (413 over the limit, 404 for a missing sandbox,
  401 without a token) at once, and is never asked to send the body; a
  good request with the same header still gets "100 Continue" and its
  answer;
- one client address holds at most --max-client-conns connections: more are
  closed at once, and another client (here 127.0.0.1 against the flood's
  127.0.0.2) is still served; connections that never finish their headers
  are closed after --idle-timeout-secs;
- a slow create does not hold up other requests: a DELETE of another
  sandbox answers while a create of many is still in flight, and a sandbox
  of that create which is still starting is listed as "starting" and
  refused with 409.
"""

import socket
import threading
import time

import harness


def raw_exchange(port, head, wait=10.0, src="127.0.0.1"):
    """Send head (request line + headers, no body); return what comes back
    until the connection closes or `wait` seconds pass."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(head)
    s.settimeout(wait)
    got = b""
    deadline = time.time() + wait
    try:
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got and b"100 Continue" not in got.split(b"\r\n")[0]:
                break
    except socket.timeout:
        pass
    finally:
        s.close()
    return got


def head(method, path, token, length, expect=True):
    h = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Content-Length: %d\r\n" % (method, path, length))
    if token:
        h += "Authorization: Bearer %s\r\n" % token
    if expect:
        h += "Expect: 100-continue\r\n"
    return (h + "\r\n").encode()


def test_refusals_before_the_body(daemon):
    cases = [
        # over the JSON limit
        (head("POST", "/v1/sandboxes", daemon.token, 1 << 30), b"HTTP/1.1 413"),
        # a file upload to a sandbox that does not exist
        (head("PUT", "/v1/sandboxes/sb-%s/files?path=/tmp/x" % ("a" * 20), daemon.token,
              30 << 20), b"HTTP/1.1 404"),
        # no token
        (head("POST", "/v1/sandboxes", None, 100), b"HTTP/1.1 401"),
    ]
    for req, want in cases:
        t0 = time.time()
        got = raw_exchange(daemon.port, req)
        assert got.startswith(want), (req, got[:200])
        assert b"100 Continue" not in got, got[:200]
        assert time.time() - t0 < 5, "the refusal took %.1f s" % (time.time() - t0)


def test_expect_continue_still_works(daemon):
    body = b'{"snapshot_tag": "stub", "n": 0}'
    s = socket.create_connection(("127.0.0.1", daemon.port))
    s.settimeout(10)
    try:
        s.sendall(head("POST", "/v1/sandboxes", daemon.token, len(body)))
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue"), first
        s.sendall(body)
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    finally:
        s.close()
    # The body was read and judged: n out of range.
    assert resp.startswith(b"HTTP/1.1 400"), resp[:200]


def idle_socket(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # headers never finished
    return s


def closed_within(s, secs):
    s.settimeout(secs)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_per_client_cap_and_idle_timeout(env):
    cap, idle = 8, 3
    d = harness.Daemon(env, extra=["--max-client-conns", str(cap), "--idle-timeout-secs",
                                   str(idle)] + harness.own_dirs(env, "limits")).start()
    flood = []
    try:
        flood = [idle_socket("127.0.0.2", d.port) for _ in range(cap)]
        time.sleep(0.3)
        extra = idle_socket("127.0.0.2", d.port)
        assert closed_within(extra, 2), "connection %d from one address was kept" % (cap + 1)
        extra.close()
        # Another client is served meanwhile, at once.
        t0 = time.time()
        st, _, _ = d.request("GET", "/healthz", token=False, timeout=5)
        assert st == 200 and time.time() - t0 < 2
        # The flood never finished its headers: closed after the idle timeout.
        t0 = time.time()
        for s in flood:
            assert closed_within(s, idle + 5 - (time.time() - t0)), \
                "a connection that never finished its headers was still open"
        assert time.time() - t0 >= idle - 1.5
        # And the address is welcome again.
        got = raw_exchange(d.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                           src="127.0.0.2")
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
    finally:
        for s in flood:
            s.close()
        rc = d.stop()
    assert rc == 0, d.stderr()[-3000:]


def test_slow_create_blocks_nothing(daemon, spawn):
    other = spawn(1)[0]["id"]
    result = {}

    def create():
        result["resp"] = daemon.json("POST", "/v1/sandboxes",
                                     {"snapshot_tag": "stub", "n": 150}, timeout=300)

    t = threading.Thread(target=create)
    t.start()
    starting = None
    deadline = time.time() + 60
    while time.time() < deadline and t.is_alive() and not starting:
        st, lst = daemon.json("GET", "/v1/sandboxes?tag=stub")
        assert st == 200
        starting = next((s["id"] for s in lst if s["state"] == "starting"), None)
    assert starting, "never saw a sandbox of the create in state 'starting'"
    st, o = daemon.json("DELETE", "/v1/sandboxes/" + starting)
    assert st == 409 and "still starting" in o["error"], (st, o)
    st, o = daemon.json("DELETE", "/v1/sandboxes/" + other)
    create_running = t.is_alive()
    assert st == 200, (st, o)
    assert create_running, "the create ended before the DELETE: nothing shown"
    t.join(300)
    st, made = result["resp"]
    assert st == 201 and len(made) == 150, (st, made if st != 201 else len(made))
    for s in made:
        assert s["state"] == "running"
        assert daemon.request("DELETE", "/v1/sandboxes/" + s["id"])[0] == 200
