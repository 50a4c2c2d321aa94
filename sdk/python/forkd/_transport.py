"""HTTP/1.1 to one forkd daemon, kept alive: a blocking transport (one
connection, reused under a lock) and an asyncio one (a small pool of idle
connections). Standard library only; http and https; a path prefix in the
base URL (a daemon behind a reverse proxy at /forkd/ ...).

Both return (status, headers with lower-case names, body bytes) and raise
ConnectionFailed when the daemon cannot be reached. A request sent on a
reused connection that the daemon had already closed (it closes idle ones,
`forkd serve --idle-timeout-secs`) is sent again once on a new connection:
the daemon never saw it.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .errors import ConnectionFailed

Response = Tuple[int, Dict[str, str], bytes]

# What a dead kept-alive connection looks like when it is used again.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          http.client.CannotSendRequest, http.client.BadStatusLine)


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    prefix: str  # "" or "/some/path", no trailing slash

    @property
    def url(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d%s" % (self.scheme, host, self.port, self.prefix)


def parse_base_url(base_url: str) -> Endpoint:
    u = urllib.parse.urlsplit(base_url)
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment:
        raise ValueError("base_url must be http[s]://HOST[:PORT][/PREFIX], got %r" % base_url)
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError as e:
        raise ValueError("base_url %r: %s" % (base_url, e)) from None
    return Endpoint(u.scheme, u.hostname, port, u.path.rstrip("/"))


class SyncTransport:
    def __init__(self, ep: Endpoint, ssl_context: Optional[ssl.SSLContext] = None):
        self.ep = ep
        self._ssl = ssl_context
        self._conn: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()

    def _new(self, timeout: float) -> http.client.HTTPConnection:
        if self.ep.scheme == "https":
            return http.client.HTTPSConnection(self.ep.host, self.ep.port, timeout=timeout,
                                               context=self._ssl or ssl.create_default_context())
        return http.client.HTTPConnection(self.ep.host, self.ep.port, timeout=timeout)

    def request(self, method: str, path: str, headers: Dict[str, str],
                body: Optional[bytes], timeout: float) -> Response:
        with self._lock:
            for attempt in (0, 1):
                reused = self._conn is not None
                if self._conn is None:
                    self._conn = self._new(timeout)
                conn = self._conn
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                try:
                    conn.request(method, self.ep.prefix + path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    result = (resp.status, {k.lower(): v for k, v in resp.getheaders()},
                              payload)
                    if resp.will_close:
                        self.close_locked()
                    return result
                except _STALE as e:
                    self.close_locked()
                    if reused and attempt == 0:
                        continue
                    raise ConnectionFailed("cannot reach the forkd daemon at %s: %s"
                                           % (self.ep.url, e)) from e
                except (OSError, http.client.HTTPException) as e:
                    self.close_locked()
                    raise ConnectionFailed("cannot reach the forkd daemon at %s: %s"
                                           % (self.ep.url, e)) from e
        raise AssertionError("unreachable")

    def close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


class _AsyncConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class AsyncTransport:
    """Connections are opened as needed and kept (up to `pool` idle ones)."""

    def __init__(self, ep: Endpoint, ssl_context: Optional[ssl.SSLContext] = None,
                 pool: int = 8):
        self.ep = ep
        self._ssl = ssl_context
        self._idle: List[_AsyncConn] = []
        self._pool = pool

    async def _open(self) -> _AsyncConn:
        ctx = None
        if self.ep.scheme == "https":
            ctx = self._ssl or ssl.create_default_context()
        r, w = await asyncio.open_connection(self.ep.host, self.ep.port, ssl=ctx,
                                             server_hostname=self.ep.host if ctx else None)
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _AsyncConn(r, w)

    async def request(self, method: str, path: str, headers: Dict[str, str],
                      body: Optional[bytes], timeout: float) -> Response:
        try:
            return await asyncio.wait_for(self._request(method, path, headers, body), timeout)
        except asyncio.TimeoutError as e:
            raise ConnectionFailed("no answer from the forkd daemon at %s within %g s"
                                   % (self.ep.url, timeout)) from e

    async def _request(self, method: str, path: str, headers: Dict[str, str],
                       body: Optional[bytes]) -> Response:
        for attempt in (0, 1):
            reused = bool(self._idle)
            try:
                conn = self._idle.pop() if self._idle else await self._open()
            except OSError as e:
                raise ConnectionFailed("cannot reach the forkd daemon at %s: %s"
                                       % (self.ep.url, e)) from e
            try:
                status, hdrs, payload, keep = await _exchange(conn, self.ep, method, path,
                                                              headers, body)
            except (ConnectionError, asyncio.IncompleteReadError, _Stale) as e:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise ConnectionFailed("cannot reach the forkd daemon at %s: %s"
                                       % (self.ep.url, e)) from e
            except BaseException:
                conn.close()  # cancelled or broken mid-way: never reuse it
                raise
            if keep and len(self._idle) < self._pool:
                self._idle.append(conn)
            else:
                conn.close()
            return status, hdrs, payload
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for c in idle:
            c.close()
            try:
                await c.writer.wait_closed()
            except OSError:
                pass


class _Stale(Exception):
    """The connection closed before any byte of a response."""


_MAX_HEADER_LINE = 65536


async def _exchange(conn: _AsyncConn, ep: Endpoint, method: str, path: str,
                    headers: Dict[str, str],
                    body: Optional[bytes]) -> Tuple[int, Dict[str, str], bytes, bool]:
    host = "[%s]" % ep.host if ":" in ep.host else ep.host
    lines = ["%s %s HTTP/1.1" % (method, ep.prefix + path), "Host: %s:%d" % (host, ep.port)]
    for k, v in headers.items():
        lines.append("%s: %s" % (k, v))
    lines.append("Content-Length: %d" % (len(body) if body else 0))
    conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if body:
        conn.writer.write(body)
    await conn.writer.drain()

    status_line = await conn.reader.readline()
    if not status_line:
        raise _Stale("the daemon closed the connection")
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError("not an HTTP response: %r" % status_line[:80])
    status = int(parts[1])
    hdrs: Dict[str, str] = {}
    while True:
        line = await conn.reader.readline()
        if len(line) > _MAX_HEADER_LINE:
            raise ConnectionError("an HTTP header line over %d bytes" % _MAX_HEADER_LINE)
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    keep = parts[0] == "HTTP/1.1" and hdrs.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, hdrs, b"", keep
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size_line = await conn.reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await conn.reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(await conn.reader.readexactly(size))
            await conn.reader.readexactly(2)
        return status, hdrs, b"".join(chunks), keep
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        return status, hdrs, await conn.reader.readexactly(n), keep
    return status, hdrs, await conn.reader.read(), False
