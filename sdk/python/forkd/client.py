"""Controller: one method per endpoint of forkd serve's API v1 (docs/openapi.yaml)."""

import http.client
import json
import os
import urllib.parse

from .errors import ConnectionFailed, ForkdError, error_for

DEFAULT_URL = "http://127.0.0.1:8889"


class Controller:
    """A client of one forkd daemon.

    base_url: "http://HOST:PORT" (default $FORKD_URL, else http://127.0.0.1:8889).
    token: bearer token (default $FORKD_TOKEN, else, for a daemon on loopback, the
        token `forkd serve` made in its default state directory, when readable).
    timeout: seconds for requests that have no timeout of their own.
    """

    def __init__(self, base_url=None, token=None, timeout=60.0):
        base_url = base_url or os.environ.get("FORKD_URL") or DEFAULT_URL
        u = urllib.parse.urlsplit(base_url)
        if u.scheme != "http" or not u.hostname or u.path not in ("", "/"):
            raise ValueError("base_url must be http://HOST:PORT, got %r" % base_url)
        if token is None:
            token = os.environ.get("FORKD_TOKEN") or _default_token(u.hostname)
        self.base_url = base_url.rstrip("/")
        self._host = u.hostname
        self._port = u.port or 80
        self.token = token
        self.timeout = timeout

    def __repr__(self):
        return "Controller(%r)" % self.base_url

    # ---- transport ----

    def request(self, method, path, body=None, raw=None, query=None, timeout=None,
                expect_json=True):
        """One HTTP request; returns the decoded JSON (or bytes when expect_json is false).
        Raises a ForkdError subclass for any status >= 400."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if raw is not None:
            data = bytes(raw)
            headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self._host, self._port,
                                          timeout=timeout or self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            status = resp.status
            ctype = resp.getheader("Content-Type", "")
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            raise ConnectionFailed("cannot reach the forkd daemon at %s: %s"
                                   % (self.base_url, e)) from e
        finally:
            conn.close()
        if status >= 400:
            try:
                obj = json.loads(payload)
                msg = obj.get("error") if isinstance(obj, dict) else None
            except ValueError:
                obj, msg = None, None
            raise error_for(status, msg or "HTTP %d: %r" % (status, payload[:200]),
                            obj if isinstance(obj, dict) else None)
        if not expect_json:
            return payload
        if not ctype.startswith("application/json"):
            if ctype.startswith("text/"):
                return payload.decode("utf-8", "replace")
            return payload
        try:
            return json.loads(payload)
        except ValueError as e:
            raise ForkdError("the daemon sent invalid JSON: %s" % e, status) from e

    # ---- service ----

    def healthz(self):
        return self.request("GET", "/healthz")

    def version(self):
        return self.request("GET", "/version")

    def metrics(self):
        """The Prometheus text."""
        return self.request("GET", "/metrics")

    # ---- snapshots ----

    def snapshots(self):
        return self.request("GET", "/v1/snapshots")

    def create_snapshot(self, tag, kind="test-guest", guest=None, mem_mib=None, vcpus=None,
                        cmdline=None, image=None):
        """Start making snapshot `tag` (202: state "creating"); poll snapshot(tag).

        kind "test-guest" boots `guest` (a test guest of the daemon's --guest-dir,
        e.g. "agent_stub"); kind "image" boots `image`, a guest image made by
        `forkd image build --tag IMAGE` (e.g. "py"; booting one takes minutes).
        Raises BadRequest when the guest or image is missing or named wrongly."""
        body = {"tag": tag, "kind": kind}
        for k, v in (("guest", guest), ("image", image), ("mem_mib", mem_mib),
                     ("vcpus", vcpus), ("cmdline", cmdline)):
            if v is not None:
                body[k] = v
        return self.request("POST", "/v1/snapshots", body)

    def snapshot(self, tag):
        return self.request("GET", "/v1/snapshots/" + _seg(tag))

    def delete_snapshot(self, tag, cascade=False):
        """DELETE /v1/snapshots/{tag}; cascade also deletes the diff branches that need it."""
        return self.request("DELETE", "/v1/snapshots/" + _seg(tag),
                            query={"cascade": "true"} if cascade else None)

    def branch(self, sandbox_id, tag=None, mode="live", wait=True, timeout=900):
        """POST /v1/sandboxes/{id}/branch: a new snapshot of the running sandbox.

        mode is "live" (paused only for its vCPU and device state), "full" or "diff"
        (only the pages it changed, over its snapshot). Returns the snapshot's
        description (state "writing" with wait=False)."""
        body = {"mode": mode, "wait": wait}
        if tag is not None:
            body["tag"] = tag
        return self.request("POST", "/v1/sandboxes/%s/branch" % _seg(sandbox_id), body,
                            timeout=timeout)

    # ---- sandboxes ----

    def create_sandboxes(self, snapshot_tag, n=1, per_child_netns=None, memory_limit_mib=None,
                         live_fork=None, hugepages=None, timeout=600):
        """POST /v1/sandboxes: a list of SandboxInfo dicts.

        per_child_netns: each sandbox in its own network namespace (SandboxInfo
        "netns", "guest_addr"). memory_limit_mib: a memory cgroup per sandbox
        (16 to 1048576); one over it is OOM-killed alone ("oom_killed")."""
        body = {"snapshot_tag": snapshot_tag, "n": n}
        for k, v in (("per_child_netns", per_child_netns),
                     ("memory_limit_mib", memory_limit_mib), ("live_fork", live_fork),
                     ("hugepages", hugepages)):
            if v is not None:
                body[k] = v
        return self.request("POST", "/v1/sandboxes", body, timeout=timeout)

    def sandboxes(self, tag=None):
        return self.request("GET", "/v1/sandboxes", query={"tag": tag} if tag else None)

    def sandbox(self, sandbox_id):
        return self.request("GET", "/v1/sandboxes/" + _seg(sandbox_id))

    def delete_sandbox(self, sandbox_id):
        return self.request("DELETE", "/v1/sandboxes/" + _seg(sandbox_id))

    def ping(self, sandbox_id):
        return self.request("POST", "/v1/sandboxes/%s/ping" % _seg(sandbox_id), {})

    def exec(self, sandbox_id, argv=None, cmd=None, env=None, cwd=None, stdin=None,
             timeout=60):
        """Run argv (a list) or cmd (a shell string); the agent's result dict."""
        body = {"timeout": timeout}
        if argv is not None:
            body["argv"] = list(argv)
        if cmd is not None:
            body["cmd"] = cmd
        if env is not None:
            body["env"] = dict(env)
        if cwd is not None:
            body["cwd"] = cwd
        if isinstance(stdin, (bytes, bytearray)):
            import base64
            body["stdin_b64"] = base64.b64encode(stdin).decode()
        elif stdin is not None:
            body["stdin"] = stdin
        return self.request("POST", "/v1/sandboxes/%s/exec" % _seg(sandbox_id), body,
                            timeout=timeout + 30)

    def eval(self, sandbox_id, code, timeout=60):
        return self.request("POST", "/v1/sandboxes/%s/eval" % _seg(sandbox_id),
                            {"code": code, "timeout": timeout}, timeout=timeout + 30)

    def write_file(self, sandbox_id, path, data, mode=None):
        if isinstance(data, str):
            data = data.encode()
        q = {"path": path}
        if mode is not None:
            q["mode"] = "%o" % mode
        return self.request("PUT", "/v1/sandboxes/%s/files" % _seg(sandbox_id), raw=data,
                            query=q)

    def read_file(self, sandbox_id, path):
        return self.request("GET", "/v1/sandboxes/%s/files" % _seg(sandbox_id),
                            query={"path": path}, expect_json=False)


def _default_token(host):
    """The token a daemon on this host made for itself (`forkd serve` without
    --token-file), for a loopback URL only: /var/lib/forkd/token as root, else
    $XDG_STATE_HOME/forkd/token or ~/.local/state/forkd/token. None if unreadable."""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
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


def _seg(s):
    """A path segment, percent-encoded: the daemon validates ids and tags itself."""
    return urllib.parse.quote(str(s), safe="")
