"""Controller and AsyncController: one method per endpoint of forkd serve's
API v1 (docs/openapi.yaml). Both share the endpoint definitions below; the
sync one returns results, the async one awaitables of the same results."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import (Any, Awaitable, Dict, Generic, Mapping, Optional, Sequence, Tuple,
                    TypeVar, Union)

from ._transport import AsyncTransport, Response, SyncTransport, parse_base_url
from .errors import ForkdError, error_for

DEFAULT_URL = "http://127.0.0.1:8889"

JSON = Any  # a decoded JSON value: dict, list, str, int, float, bool or None
_R = TypeVar("_R")


@dataclass(frozen=True)
class _Req:
    method: str
    path: str
    body: Optional[JSON] = None
    raw: Optional[bytes] = None
    query: Optional[Mapping[str, str]] = None
    timeout: Optional[float] = None
    expect_json: bool = True


class _Api(Generic[_R]):
    """The endpoints. `_send` makes the call: a result (Controller) or an
    awaitable of it (AsyncController)."""

    base_url: str
    token: Optional[str]
    timeout: float

    def _send(self, req: _Req) -> _R:  # pragma: no cover - overridden
        raise NotImplementedError

    def _setup(self, base_url: Optional[str], token: Optional[str], timeout: float) -> None:
        base_url = base_url or os.environ.get("FORKD_URL") or DEFAULT_URL
        self._ep = parse_base_url(base_url)
        if token is None:
            token = os.environ.get("FORKD_TOKEN") or _default_token(self._ep.host)
        self.base_url = self._ep.url
        self.token = token
        if not timeout or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.base_url)

    def _prepare(self, req: _Req) -> Tuple[str, Dict[str, str], Optional[bytes], float]:
        path = req.path
        if req.query:
            path += "?" + urllib.parse.urlencode(req.query)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if req.raw is not None:
            data = bytes(req.raw)
            headers["Content-Type"] = "application/octet-stream"
        elif req.body is not None:
            data = json.dumps(req.body).encode()
            headers["Content-Type"] = "application/json"
        return path, headers, data, req.timeout or self.timeout

    @staticmethod
    def _decode(req: _Req, resp: Response) -> JSON:
        status, headers, payload = resp
        if status >= 400:
            try:
                obj = json.loads(payload)
                msg = obj.get("error") if isinstance(obj, dict) else None
            except ValueError:
                obj, msg = None, None
            raise error_for(status, msg or "HTTP %d: %r" % (status, payload[:200]),
                            obj if isinstance(obj, dict) else None)
        if not req.expect_json:
            return payload
        ctype = headers.get("content-type", "")
        if not ctype.startswith("application/json"):
            if ctype.startswith("text/"):
                return payload.decode("utf-8", "replace")
            return payload
        try:
            return json.loads(payload)
        except ValueError as e:
            raise ForkdError("the daemon sent invalid JSON: %s" % e, status) from e

    # ---- transport ----

    def request(self, method: str, path: str, body: Optional[JSON] = None,
                raw: Optional[bytes] = None, query: Optional[Mapping[str, str]] = None,
                timeout: Optional[float] = None, expect_json: bool = True) -> _R:
        """One HTTP request to path (under the base URL); the decoded JSON (or the
        bytes, expect_json=False). Raises a ForkdError subclass for any status >= 400,
        ConnectionFailed when the daemon cannot be reached or does not answer within
        `timeout` (default: the controller's)."""
        return self._send(_Req(method, path, body, raw, query, timeout, expect_json))

    # ---- service ----

    def healthz(self) -> _R:
        return self._send(_Req("GET", "/healthz"))

    def version(self) -> _R:
        return self._send(_Req("GET", "/version"))

    def metrics(self) -> _R:
        """The Prometheus text."""
        return self._send(_Req("GET", "/metrics"))

    # ---- snapshots ----

    def snapshots(self) -> _R:
        return self._send(_Req("GET", "/v1/snapshots"))

    def create_snapshot(self, tag: str, kind: str = "test-guest", guest: Optional[str] = None,
                        mem_mib: Optional[int] = None, vcpus: Optional[int] = None,
                        cmdline: Optional[str] = None, image: Optional[str] = None) -> _R:
        """Start making snapshot `tag` (202: state "creating"); poll snapshot(tag).

        kind "test-guest" boots `guest` (a test guest of the daemon's --guest-dir,
        e.g. "agent_stub"); kind "image" boots `image`, a guest image made by
        `forkd image build --tag IMAGE` (e.g. "py"; booting one takes minutes).
        Raises BadRequest when the guest or image is missing or named wrongly."""
        body: Dict[str, Any] = {"tag": tag, "kind": kind}
        for k, v in (("guest", guest), ("image", image), ("mem_mib", mem_mib),
                     ("vcpus", vcpus), ("cmdline", cmdline)):
            if v is not None:
                body[k] = v
        return self._send(_Req("POST", "/v1/snapshots", body))

    def snapshot(self, tag: str) -> _R:
        return self._send(_Req("GET", "/v1/snapshots/" + _seg(tag)))

    def delete_snapshot(self, tag: str, cascade: bool = False) -> _R:
        """DELETE /v1/snapshots/{tag}; cascade also deletes the diff branches that need it."""
        return self._send(_Req("DELETE", "/v1/snapshots/" + _seg(tag),
                               query={"cascade": "true"} if cascade else None))

    def branch(self, sandbox_id: str, tag: Optional[str] = None, mode: str = "live",
               wait: bool = True, timeout: float = 900) -> _R:
        """POST /v1/sandboxes/{id}/branch: a new snapshot of the running sandbox.

        mode is "live" (paused only for its vCPU and device state), "full" or "diff"
        (only the pages it changed, over its snapshot). Returns the snapshot's
        description (state "writing" with wait=False)."""
        body: Dict[str, Any] = {"mode": mode, "wait": wait}
        if tag is not None:
            body["tag"] = tag
        return self._send(_Req("POST", "/v1/sandboxes/%s/branch" % _seg(sandbox_id), body,
                               timeout=timeout))

    # ---- sandboxes ----

    def create_sandboxes(self, snapshot_tag: str, n: int = 1,
                         per_child_netns: Optional[bool] = None,
                         memory_limit_mib: Optional[int] = None,
                         live_fork: Optional[bool] = None, hugepages: Optional[bool] = None,
                         timeout: float = 600) -> _R:
        """POST /v1/sandboxes: a list of SandboxInfo dicts.

        per_child_netns: each sandbox in its own network namespace (SandboxInfo
        "netns", "guest_addr"). memory_limit_mib: a memory cgroup per sandbox
        (16 to 1048576); one over it is OOM-killed alone ("oom_killed")."""
        body: Dict[str, Any] = {"snapshot_tag": snapshot_tag, "n": n}
        for k, v in (("per_child_netns", per_child_netns),
                     ("memory_limit_mib", memory_limit_mib), ("live_fork", live_fork),
                     ("hugepages", hugepages)):
            if v is not None:
                body[k] = v
        return self._send(_Req("POST", "/v1/sandboxes", body, timeout=timeout))

    def sandboxes(self, tag: Optional[str] = None) -> _R:
        return self._send(_Req("GET", "/v1/sandboxes", query={"tag": tag} if tag else None))

    def sandbox(self, sandbox_id: str) -> _R:
        return self._send(_Req("GET", "/v1/sandboxes/" + _seg(sandbox_id)))

    def delete_sandbox(self, sandbox_id: str) -> _R:
        return self._send(_Req("DELETE", "/v1/sandboxes/" + _seg(sandbox_id)))

    def ping(self, sandbox_id: str) -> _R:
        return self._send(_Req("POST", "/v1/sandboxes/%s/ping" % _seg(sandbox_id), {}))

    def exec(self, sandbox_id: str, argv: Optional[Sequence[str]] = None,
             cmd: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
             cwd: Optional[str] = None, stdin: Union[str, bytes, None] = None,
             timeout: float = 60) -> _R:
        """Run argv (a list) or cmd (a shell string); the agent's result dict
        (stdout, stderr, exit_code, timed_out, stdout_truncated, stderr_truncated)."""
        body: Dict[str, Any] = {"timeout": timeout}
        if argv is not None:
            body["argv"] = list(argv)
        if cmd is not None:
            body["cmd"] = cmd
        if env is not None:
            body["env"] = dict(env)
        if cwd is not None:
            body["cwd"] = cwd
        if isinstance(stdin, (bytes, bytearray)):
            body["stdin_b64"] = base64.b64encode(stdin).decode()
        elif stdin is not None:
            body["stdin"] = stdin
        return self._send(_Req("POST", "/v1/sandboxes/%s/exec" % _seg(sandbox_id), body,
                               timeout=timeout + 30))

    def eval(self, sandbox_id: str, code: str, timeout: float = 60) -> _R:
        return self._send(_Req("POST", "/v1/sandboxes/%s/eval" % _seg(sandbox_id),
                               {"code": code, "timeout": timeout}, timeout=timeout + 30))

    def write_file(self, sandbox_id: str, path: str, data: Union[str, bytes],
                   mode: Optional[int] = None) -> _R:
        if isinstance(data, str):
            data = data.encode()
        q = {"path": path}
        if mode is not None:
            q["mode"] = "%o" % mode
        return self._send(_Req("PUT", "/v1/sandboxes/%s/files" % _seg(sandbox_id),
                               raw=bytes(data), query=q))

    def read_file(self, sandbox_id: str, path: str) -> _R:
        return self._send(_Req("GET", "/v1/sandboxes/%s/files" % _seg(sandbox_id),
                               query={"path": path}, expect_json=False))

    def list_dir(self, sandbox_id: str, path: str) -> _R:
        """{path, entries: [{name, type, size, mode, mtime}], truncated} of a directory."""
        return self._send(_Req("GET", "/v1/sandboxes/%s/dir" % _seg(sandbox_id),
                               query={"path": path}))

    def remove_file(self, sandbox_id: str, path: str, recursive: bool = False) -> _R:
        """Remove a file, link or empty directory (a whole tree with recursive=True)."""
        q = {"path": path}
        if recursive:
            q["recursive"] = "true"
        return self._send(_Req("DELETE", "/v1/sandboxes/%s/files" % _seg(sandbox_id), query=q))


class Controller(_Api[JSON]):
    """A client of one forkd daemon, over one kept-alive connection.

    base_url: "http[s]://HOST[:PORT][/PREFIX]" (default $FORKD_URL, else
        http://127.0.0.1:8889); a prefix is for a daemon behind a reverse proxy.
    token: bearer token (default $FORKD_TOKEN, else, for a daemon on loopback, the
        token `forkd serve` made in its default state directory, when readable).
    timeout: seconds for calls that have no timeout of their own.
    ssl_context: for https (default: trust $FORKD_CA_CERT if set, else the system's
        CA certificates).
    Safe to share between threads (calls take turns on the connection).
    """

    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = 60.0, ssl_context: Optional[ssl.SSLContext] = None):
        self._setup(base_url, token, timeout)
        self._t = SyncTransport(self._ep, _ssl_context(ssl_context))

    def _send(self, req: _Req) -> JSON:
        path, headers, data, timeout = self._prepare(req)
        return self._decode(req, self._t.request(req.method, path, headers, data, timeout))

    def close(self) -> None:
        """Close the kept-alive connection (a later call opens a new one)."""
        self._t.close()

    def __enter__(self) -> "Controller":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncController(_Api[Awaitable[JSON]]):
    """Controller on asyncio: the same methods, each a coroutine
    (`await ctl.sandboxes()`), the same errors. Idle connections are kept for
    reuse; `await ctl.aclose()` (or `async with`) closes them."""

    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = 60.0, ssl_context: Optional[ssl.SSLContext] = None):
        self._setup(base_url, token, timeout)
        self._t = AsyncTransport(self._ep, _ssl_context(ssl_context))

    async def _call(self, req: _Req) -> JSON:
        path, headers, data, timeout = self._prepare(req)
        return self._decode(req, await self._t.request(req.method, path, headers, data,
                                                       timeout))

    def _send(self, req: _Req) -> Awaitable[JSON]:
        return self._call(req)

    async def aclose(self) -> None:
        await self._t.aclose()

    async def __aenter__(self) -> "AsyncController":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _default_token(host: str) -> Optional[str]:
    """The token a daemon on this host made for itself (`forkd serve` without
    --token-file), for a loopback URL only: /var/lib/forkd/token as root, else
    $XDG_STATE_HOME/forkd/token or ~/.local/state/forkd/token. None if unreadable."""
    if not _is_loopback(host):
        return None
    if os.geteuid() == 0:
        path = "/var/lib/forkd/token"
    else:
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        path = os.path.join(base, "forkd", "token")
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _is_loopback(host: str) -> bool:
    """The whole host is a loopback name or address ("127.0.0.1.nip.io" is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ssl_context(ctx: Optional[ssl.SSLContext]) -> Optional[ssl.SSLContext]:
    """The given context, else one trusting $FORKD_CA_CERT (a PEM file, e.g. a
    daemon's self-signed certificate) when set, else None (the system's CAs)."""
    if ctx is not None:
        return ctx
    ca = os.environ.get("FORKD_CA_CERT")
    return ssl.create_default_context(cafile=ca) if ca else None


def _seg(s: object) -> str:
    """A path segment, percent-encoded: the daemon validates ids and tags itself."""
    return urllib.parse.quote(str(s), safe="")


__all__ = ["Controller", "AsyncController", "DEFAULT_URL", "JSON"]
