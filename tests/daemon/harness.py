"""Test harness for `forkd serve`: a real daemon on loopback with private
state, run and snapshot directories, and a raw HTTP helper.

Used by tests/daemon/test_*.py and by the SDK's tests (sdk/python/tests)
when they are not pointed at a running daemon. Python standard library only.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    return os.environ.get("FORKD_BUILD", os.path.join(ROOT, "build"))


def forkd_bin():
    return os.path.join(build_dir(), "forkd")


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


class Env:
    """Private directories (short paths: Unix socket names are limited to 107 bytes)."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="fdt-", dir="/tmp")
        self.home = os.path.join(self.top, "home")  # FORKD_HOME
        self.state = os.path.join(self.top, "st")
        self.run = os.path.join(self.top, "run")
        os.makedirs(self.home)
        self.token = "tok-" + os.urandom(16).hex()
        self.token_file = os.path.join(self.top, "token")
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_file, 0o600)

    def env(self):
        e = dict(os.environ)
        e["FORKD_HOME"] = self.home
        e.pop("FORKD_URL", None)
        e.pop("FORKD_TOKEN", None)
        return e

    def cleanup(self):
        # Stop every child the tests left (each run dir's pid file), then the
        # files: the shared run root and those of the tests' own daemons
        # (TOP/run-*), so a failed test leaves no sandbox behind.
        roots = [os.path.join(self.top, r) for r in os.listdir(self.top)
                 if r == "run" or r.startswith("run-")]
        for root in roots:
            for d in os.listdir(root) if os.path.isdir(root) else []:
                pid_start = read_pidfile(os.path.join(root, d, "pid"))
                if pid_start and proc_alive(*pid_start):
                    try:
                        os.kill(pid_start[0], signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        shutil.rmtree(self.top, ignore_errors=True)


def jail_uid():
    """The uid of jailed VMMs (src/isolate/jail_fs.h)."""
    return int(os.environ.get("FORKD_JAIL_UID", 0x666f726b))


def jail_gid():
    return int(os.environ.get("FORKD_JAIL_GID", jail_uid()))


def read_pidfile(path):
    try:
        with open(path) as f:
            pid, start = f.read().split()
        return int(pid), int(start)
    except (OSError, ValueError):
        return None


def proc_start_time(pid):
    """(state letter, start time) from /proc/<pid>/stat, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[19])


def proc_alive(pid, start_time):
    st = proc_start_time(pid)
    return bool(st) and st[0] not in "ZX" and st[1] == start_time


class Daemon:
    def __init__(self, env, token=True, bind="127.0.0.1:0", extra=(), guests=True):
        self.env = env
        self.args = [forkd_bin(), "serve", "--bind", bind, "--state-dir", env.state,
                     "--run-root", env.run]
        if token:
            self.args += ["--token-file", env.token_file]
        elif "--token-file" not in extra:
            self.args += ["--no-auth"]  # the default is a token of its own
        if guests:
            self.args += ["--guest-dir", os.path.join(build_dir(), "guests")]
        self.args += list(extra)
        self.token = env.token if token else None
        self.proc = None
        self.port = None
        self.log = os.path.join(env.top, "serve-%d.log" % int(time.time() * 1000))

    def start(self, timeout=15):
        self._logf = open(self.log, "w")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._logf,
                                     env=self.env.env(), text=True)
        deadline = time.time() + timeout
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on https?://[^ ]*:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                return self
        rc = self.proc.wait(5)
        raise RuntimeError("forkd serve did not start (status %s): %s" % (rc, self.stderr()))

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._logf.close()

    def request(self, method, path, body=None, raw=None, token=True, headers=None,
                timeout=60):
        """(status, headers dict (lower-case names), body bytes)."""
        h = dict(headers or {})
        if token is True and self.token:
            h["Authorization"] = "Bearer " + self.token
        elif isinstance(token, str):
            h["Authorization"] = token
        data = raw
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def json(self, method, path, body=None, **kw):
        """(status, decoded JSON body)."""
        st, hd, data = self.request(method, path, body, **kw)
        return st, (json.loads(data) if data else None)


def wait_snapshot(d, tag, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, o = d.json("GET", "/v1/snapshots/" + tag)
        if st == 200 and o["state"] != "creating":
            return o
        time.sleep(0.2)
    raise RuntimeError("snapshot %s still being created after %d s" % (tag, timeout))


def own_dirs(env, name):
    """--state-dir and --run-root of its own for a test's second daemon (the
    session's daemon keeps env.state and env.run)."""
    return ["--state-dir", os.path.join(env.top, "st-" + name),
            "--run-root", os.path.join(env.top, "run-" + name)]


def make_stub_snapshot(d, tag="stub", mem_mib=16):
    """Boot tests/guests/agent_stub through POST /v1/snapshots and wait until it is ready."""
    st, o = d.json("POST", "/v1/snapshots", {"tag": tag, "kind": "test-guest",
                                             "guest": "agent_stub", "mem_mib": mem_mib})
    if st != 202:
        raise RuntimeError("POST /v1/snapshots: %d %r" % (st, o))
    o = wait_snapshot(d, tag)
    if o["state"] != "ready":
        raise RuntimeError("snapshot %s: %r" % (tag, o))
    return o
