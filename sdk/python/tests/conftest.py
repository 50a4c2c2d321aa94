"""The SDK's tests run against a real daemon:
  - FORKD_URL (+ FORKD_TOKEN) and FORKD_TAG: an existing daemon and a snapshot
    whose children run forkd's agent (tests/e2e/image_fork.sh does this with
    the real guest image); FORKD_SPAWN_ARGS, a JSON object, is added to every
    sandbox the tests create (e.g. {"per_child_netns": true} for a snapshot
    with a network device);
  - otherwise tests/daemon/harness.py starts one from the repository's build
    (build/forkd, build/guests/agent_stub.elf) with a snapshot of agent_stub.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the forkd package, uninstalled
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "daemon"))


@pytest.fixture(scope="session")
def spawn_args():
    """Options for every sandbox the tests create (FORKD_SPAWN_ARGS)."""
    import json
    args = json.loads(os.environ.get("FORKD_SPAWN_ARGS") or "{}")
    assert isinstance(args, dict), "FORKD_SPAWN_ARGS must be a JSON object"
    return args


@pytest.fixture(scope="session")
def target():
    """(url, token, tag, stub): stub is True when children run agent_stub."""
    if os.environ.get("FORKD_URL"):
        yield (os.environ["FORKD_URL"], os.environ.get("FORKD_TOKEN"),
               os.environ.get("FORKD_TAG", "py"), False)
        return
    import harness
    if not os.path.exists(harness.forkd_bin()) or not harness.kvm_usable():
        pytest.skip("no FORKD_URL, and no build/forkd with a usable /dev/kvm to start one")
    env = harness.Env()
    d = harness.Daemon(env).start()
    try:
        harness.make_stub_snapshot(d, "sdkstub")
        yield d.url, d.token, "sdkstub", True
    finally:
        rc = d.stop()
        log = d.stderr()
        env.cleanup()
    assert rc == 0 and "Sanitizer" not in log, log[-4000:]
