"""The SDK's HTTP transport against small local servers (no daemon needed):
one kept-alive connection per Controller, a request re-sent once when the
server had closed the idle connection, the base URL's path prefix, a timeout
on every call, and the same behaviour from the asyncio transport."""

import asyncio
import json
import socket
import threading
import time

import pytest

import forkd
from forkd import AsyncController, Controller


class Server:
    """A TCP server on 127.0.0.1 answering each request per `mode`:
    "keep": 200 JSON, connection kept; "close-after": 200 JSON with keep-alive
    headers, then the connection is closed (as an idle timeout would);
    "silent": reads and never answers. Records (peer port, request line)."""

    def __init__(self, mode):
        self.mode = mode
        self.seen = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c, addr), daemon=True).start()

    def _serve(self, c, addr):
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                length = 0
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    k, _, v = h.decode().partition(":")
                    if k.lower() == "content-length":
                        length = int(v)
                if length:
                    f.read(length)
                self.seen.append((addr[1], line.decode().strip()))
                if self.mode == "silent":
                    time.sleep(30)
                    return
                body = json.dumps({"path": line.split()[1].decode()}).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
                if self.mode == "close-after":
                    return
        finally:
            c.close()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self.stop = True
        self.sock.close()


@pytest.fixture
def server(request):
    s = Server(request.param)
    yield s
    s.close()


@pytest.mark.parametrize("server", ["keep"], indirect=True)
def test_one_connection_kept(server):
    ctl = Controller(server.url, token="t")
    for _ in range(5):
        assert ctl.healthz() == {"path": "/healthz"}
    assert len({port for port, _ in server.seen}) == 1, server.seen
    ctl.close()
    ctl.version()
    assert len({port for port, _ in server.seen}) == 2


@pytest.mark.parametrize("server", ["close-after"], indirect=True)
def test_stale_connection_is_retried(server):
    ctl = Controller(server.url, token="t")
    for _ in range(3):
        assert ctl.healthz() == {"path": "/healthz"}
    # Each request went out once, each on a fresh connection after the first.
    assert [line for _, line in server.seen] == ["GET /healthz HTTP/1.1"] * 3
    assert len({port for port, _ in server.seen}) == 3


@pytest.mark.parametrize("server", ["keep"], indirect=True)
def test_path_prefix(server):
    ctl = Controller(server.url + "/forkd/", token="t")
    assert ctl.base_url == server.url + "/forkd"
    assert ctl.sandboxes(tag="py") == {"path": "/forkd/v1/sandboxes?tag=py"}
    actl = AsyncController(server.url + "/a/b", token="t")
    assert asyncio.run(actl.healthz()) == {"path": "/a/b/healthz"}


def test_base_urls():
    assert Controller("https://example.com/forkd", token="t").base_url == \
        "https://example.com:443/forkd"
    assert Controller("http://[::1]:8889", token="t").base_url == "http://[::1]:8889"
    for bad in ("ftp://x", "example.com:80", "http://h:80/?q=1", "http://h:99999"):
        with pytest.raises(ValueError):
            Controller(bad, token="t")
    with pytest.raises(ValueError):
        Controller("http://h", token="t", timeout=0)


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_every_call_has_a_timeout(server):
    t0 = time.time()
    with pytest.raises(forkd.ConnectionFailed):
        Controller(server.url, token="t", timeout=0.5).healthz()
    assert time.time() - t0 < 5
    t0 = time.time()
    with pytest.raises(forkd.ConnectionFailed) as e:
        asyncio.run(AsyncController(server.url, token="t", timeout=0.5).healthz())
    assert "within 0.5 s" in str(e.value) and time.time() - t0 < 5


@pytest.mark.parametrize("server", ["keep"], indirect=True)
def test_async_pool(server):
    async def main():
        async with AsyncController(server.url, token="t") as ctl:
            for _ in range(3):
                assert await ctl.healthz() == {"path": "/healthz"}
            got = await asyncio.gather(*(ctl.ping("sb-%d" % i) for i in range(6)))
            assert [g["path"] for g in got] == ["/v1/sandboxes/sb-%d/ping" % i
                                                for i in range(6)]
    asyncio.run(main())
    ports = [port for port, _ in server.seen]
    # The sequential calls shared one connection; the concurrent ones needed more.
    assert len(set(ports[:3])) == 1 and len(set(ports)) <= 7


@pytest.mark.parametrize("server", ["close-after"], indirect=True)
def test_async_stale_connection_is_retried(server):
    async def main():
        async with AsyncController(server.url, token="t") as ctl:
            for _ in range(3):
                assert await ctl.healthz() == {"path": "/healthz"}
    asyncio.run(main())
    assert [line for _, line in server.seen] == ["GET /healthz HTTP/1.1"] * 3


def test_connection_refused():
    with pytest.raises(forkd.ConnectionFailed):
        Controller("http://127.0.0.1:1", token="t").healthz()
    with pytest.raises(forkd.ConnectionFailed):
        asyncio.run(AsyncController("http://127.0.0.1:1", token="t").healthz())


def test_command_result_fields():
    from forkd.sandbox import _result
    r = _result({"stdout": "a", "stderr": "b", "exit_code": -9, "timed_out": True,
                 "stdout_truncated": True})
    assert r == forkd.CommandResult("a", "b", -9, True, True, False)
    assert (r.timed_out, r.stdout_truncated, r.stderr_truncated) == (True, True, False)
    # The three-field form of earlier versions still compares equal.
    assert _result({"stdout": "o", "stderr": "", "exit_code": 0}) == \
        forkd.CommandResult("o", "", 0)


def test_token_found_here_stays_on_loopback():
    from forkd.client import _is_loopback
    for host in ("localhost", "127.0.0.1", "127.1.2.3", "::1"):
        assert _is_loopback(host), host
    for host in ("127.0.0.1.nip.io", "localhost.example.com", "10.0.0.1", "example.com",
                 "::2"):
        assert not _is_loopback(host), host
