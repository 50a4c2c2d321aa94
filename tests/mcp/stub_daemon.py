"""A forkd daemon for tests/mcp/mcp.test.mjs when FORKD_URL is not set: the
daemon suite's harness (tests/daemon/harness.py) starts `forkd serve` from
$FORKD_BUILD (default build/) with a snapshot of agent_stub. Prints one JSON
line, {"url", "token", "tag"} or {"skip": why}, then waits for stdin to close
and stops the daemon (exit status 1 when it did not stop cleanly)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
import harness  # noqa: E402


def main():
    if not os.path.exists(harness.forkd_bin()) or not harness.kvm_usable():
        print(json.dumps({"skip": "no FORKD_URL, and no %s with a usable /dev/kvm to start "
                                  "a daemon" % harness.forkd_bin()}), flush=True)
        return 0
    env = harness.Env()
    d = None
    try:
        d = harness.Daemon(env).start()
        harness.make_stub_snapshot(d, "mcpstub")
        print(json.dumps({"url": d.url, "token": d.token, "tag": "mcpstub"}), flush=True)
        sys.stdin.read()
    finally:
        rc = d.stop() if d else None
        log = d.stderr() if d else ""
        env.cleanup()
    if rc != 0 or "Sanitizer" in log:
        print("forkd serve stopped with status %s:\n%s" % (rc, log[-4000:]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
