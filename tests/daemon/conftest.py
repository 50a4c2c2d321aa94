"""Fixtures for the daemon tests: one daemon (with a bearer token) and one
snapshot of the agent_stub test guest, shared by the session; tests that need
their own daemon (restart, start-up refusals) make one from `env`."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if not os.path.exists(harness.forkd_bin()):
        reason = "%s is missing (run 'make')" % harness.forkd_bin()
    elif not os.path.exists(os.path.join(harness.build_dir(), "guests", "agent_stub.elf")):
        reason = "agent_stub.elf is missing (run 'make guests')"
    elif not harness.kvm_usable():
        reason = "/dev/kvm is not usable: the sandboxes are real KVM VMs"
    else:
        return
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def env():
    e = harness.Env()
    yield e
    e.cleanup()


@pytest.fixture(scope="session")
def daemon(env):
    d = harness.Daemon(env).start()
    harness.make_stub_snapshot(d, "stub")
    yield d
    rc = d.stop()
    log = d.stderr()
    # A sanitizer build reports leaks and errors at exit (status != 0).
    assert rc == 0 and "Sanitizer" not in log and "runtime error" not in log, log[-4000:]


@pytest.fixture
def spawn(daemon):
    """spawn(n, **fields) -> list of SandboxInfo; every one is deleted afterwards."""
    made = []

    def _spawn(n=1, tag="stub", **fields):
        body = {"snapshot_tag": tag, "n": n}
        body.update(fields)
        st, o = daemon.json("POST", "/v1/sandboxes", body)
        assert st == 201, (st, o)
        made.extend(s["id"] for s in o)
        return o

    yield _spawn
    for sid in made:
        daemon.request("DELETE", "/v1/sandboxes/" + sid)
