"""Shared pieces of the agent and init tests: a real agent process on a TCP
port of the host, a JSON-lines client, and the built forkd-init binary."""

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "guest" / "agent" / "agent.py"
PYTHON = sys.executable


class Client:
    """One connection to an agent: call() sends a request and reads the reply."""

    def __init__(self, port, host="127.0.0.1", timeout=60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        line = self.rfile.readline()
        assert line.endswith(b"\n"), "connection closed before a full reply: %r" % line[:200]
        return json.loads(line)

    def call(self, op, **fields):
        req = {"op": op}
        req.update(fields)
        self.send_raw(json.dumps(req).encode() + b"\n")
        return self.recv()

    def close(self):
        self.rfile.close()
        self.sock.close()


def wait_warm(proc, timeout=60):
    """Read the agent's stderr until it says its TCP port, then its stdout
    until the warm marker. Returns the port."""
    deadline = time.monotonic() + timeout
    port, err = None, b""
    while port is None:
        left = deadline - time.monotonic()
        assert left > 0, "agent did not listen within %ds: %s" % (timeout, err.decode())
        r, _, _ = select.select([proc.stderr], [], [], left)
        if not r:
            continue
        line = proc.stderr.readline()
        assert line, "agent exited (%s): %s" % (proc.poll(), err.decode())
        err += line
        if b"listening on tcp " in line:
            port = int(line.rsplit(b":", 1)[1])
    r, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0.1))
    assert r, "no warm marker on stdout"
    assert proc.stdout.readline() == b"FORKD-AGENT-WARM\n"
    return port


def start_agent(prefix=(), extra=()):
    proc = subprocess.Popen(
        list(prefix) + [PYTHON, str(AGENT), "--tcp-only", "--host", "127.0.0.1",
                        "--port", "0"] + list(extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = wait_warm(proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, port


def stop_agent(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def agent():
    proc, port = start_agent()
    yield port
    assert proc.poll() is None, "the agent died during the tests"
    stop_agent(proc)


@pytest.fixture
def client(agent):
    c = Client(agent)
    yield c
    c.close()


@pytest.fixture(scope="session")
def init_bin():
    """forkd-init, built from guest/init like the image build does."""
    out = tempfile.mkdtemp(prefix="forkd-init-test.")
    subprocess.run(["make", "-s", "-C", str(REPO / "guest" / "init"), "OUT=" + out], check=True)
    return os.path.join(out, "forkd-init")


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, RNDADDENTROPY, loop mounts)")


# The suite's total in the form tests/check.sh adds up.
def pytest_terminal_summary(terminalreporter):
    st = terminalreporter.stats
    def n(key):
        return len(st.get(key, []))

    terminalreporter.write_line("%d passed, %d failed, %d skipped" % (
        n("passed"), n("failed") + n("error"), n("skipped")))
