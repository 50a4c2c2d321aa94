"""Start `forkd serve` for the TypeScript SDK's tests the way the Python
tests do (tests/daemon/harness.py: private state, run and snapshot
directories, a bearer token, a snapshot of the agent_stub test guest).

Prints one JSON line, {"url", "token", "tag"} or {"skip": reason}, then
waits until its stdin closes, stops the daemon and removes everything.
Exit status 1 when the daemon did not stop cleanly (its log on stderr).
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "daemon"))
import harness  # noqa: E402


def main():
    stub = os.path.join(harness.build_dir(), "guests", "agent_stub.elf")
    for missing, why in ((not os.path.exists(harness.forkd_bin()), "%s is missing (run make)"
                          % harness.forkd_bin()),
                         (not os.path.exists(stub), "%s is missing (run make guests)" % stub),
                         (not harness.kvm_usable(), "/dev/kvm is not usable")):
        if missing:
            print(json.dumps({"skip": why}), flush=True)
            return 0
    env = harness.Env()
    d = None
    try:
        d = harness.Daemon(env).start()
        harness.make_stub_snapshot(d, "tsstub")
        print(json.dumps({"url": d.url, "token": d.token, "tag": "tsstub"}), flush=True)
        sys.stdin.read()
    finally:
        rc = d.stop() if d else None
        log = d.stderr() if d else ""
        env.cleanup()
    if rc != 0 or "Sanitizer" in log or "runtime error" in log:
        sys.stderr.write("forkd serve exited %s:\n%s\n" % (rc, log[-4000:]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
