#!/usr/bin/env python3
"""bench/api: the controller daemon under load, on loopback.

  bench/api/run.py [--build build] [--secs 3] [--clients 1,8,32] [--json out.json]

1. requests/s and latency (p50/p99) of GET /v1/sandboxes (10 sandboxes listed)
   and POST /v1/sandboxes/{id}/ping (a round trip to the child's agent over
   vsock) with 1..N concurrent keep-alive clients (bench/api/apiload.c);
2. spawning 100 children: POST /v1/sandboxes n=100, `forkd spawn -n 100`
   (CLI through the daemon) and `forkd fork -n 100` (the one-shot CLI, no
   daemon), each wall time, median of 3 runs.

The guest is tests/guests/agent_stub (a freestanding test guest answering
ping on vsock), snapshotted through POST /v1/snapshots. Prints figures; not a
test. On KVM-PVM hosts the guest's kernel code is emulated, which slows the
ping round trip (the guest handles each packet in emulated CPL0 code), not the
daemon.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "daemon"))
import harness  # noqa: E402


def build_apiload(build):
    out = os.path.join(build, "bench", "apiload")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    src = os.path.join(HERE, "apiload.c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        subprocess.run(["gcc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                        "-D_GNU_SOURCE", "-pthread", "-o", out, src], check=True)
    return out


def load(apiload, d, method, path, clients, secs, body=None):
    cmd = [apiload, "-p", str(d.port), "-t", d.token, "-m", method, "-c", str(clients),
           "-d", str(secs), "-j"]
    if body is not None:
        cmd += ["-b", body]
    r = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=secs + 60)
    if not r.stdout.strip():
        raise RuntimeError("apiload failed: %s" % r.stderr)
    return json.loads(r.stdout)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--spawn-n", type=int, default=100)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    os.environ["FORKD_BUILD"] = os.path.abspath(a.build)
    if not harness.kvm_usable():
        print("bench/api: /dev/kvm is not usable; nothing to measure")
        return 77
    apiload = build_apiload(os.path.abspath(a.build))
    pvm = os.path.exists("/sys/module/kvm_pvm")
    env = harness.Env()
    d = harness.Daemon(env).start()
    results = {"host_cpus": os.cpu_count(), "kvm_pvm": pvm, "load": [], "spawn": {}}
    try:
        harness.make_stub_snapshot(d, "bench")
        st, kids = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "bench", "n": 10})
        assert st == 201, kids
        sid = kids[0]["id"]
        print("bench/api: forkd serve on 127.0.0.1:%d, 10 sandboxes of agent_stub, %d CPUs%s"
              % (d.port, os.cpu_count(), ", KVM-PVM host (guest kernel code emulated)"
                 if pvm else ""))
        for c in [int(x) for x in a.clients.split(",")]:
            for method, path, body in (("GET", "/v1/sandboxes", None),
                                       ("POST", "/v1/sandboxes/%s/ping" % sid, "{}")):
                r = load(apiload, d, method, path, c, a.secs, body)
                results["load"].append(r)
                label = path if "ping" not in path else "/v1/sandboxes/{id}/ping"
                print("  %-4s %-26s %3d clients: %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms"
                      "  (%d requests, %d errors)" % (method, label, c, r["rps"], r["p50_ms"],
                                                       r["p99_ms"], r["requests"], r["errors"]))
        for k in kids:
            d.request("DELETE", "/v1/sandboxes/" + k["id"])

        n = a.spawn_n
        api_ms, cli_ms, fork_ms, fork_ready_ms = [], [], [], []
        cli_env = dict(env.env(), FORKD_URL=d.url, FORKD_TOKEN=d.token)

        def delete_all():
            for s in d.json("GET", "/v1/sandboxes")[1]:
                d.request("DELETE", "/v1/sandboxes/" + s["id"])

        for _ in range(3):
            box = {}

            def api_spawn():
                box["r"] = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "bench", "n": n},
                                  timeout=600)
            api_ms.append(timed(api_spawn))
            assert box["r"][0] == 201, box["r"]
            delete_all()

            def cli_spawn():
                r = subprocess.run([harness.forkd_bin(), "spawn", "--tag", "bench", "-n",
                                    str(n)], env=cli_env, capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
            cli_ms.append(timed(cli_spawn))
            delete_all()

            def fork():
                r = subprocess.run([harness.forkd_bin(), "fork", "--tag", "bench", "-n", str(n),
                                    "--settle-secs", "0"], env=env.env(), capture_output=True,
                                   text=True)
                assert r.returncode == 0, r.stdout + r.stderr
                m = re.search(r"children running in ([\d.]+) ms", r.stdout)
                fork_ready_ms.append(float(m.group(1)))
            fork_ms.append(timed(fork))
        results["spawn"] = {"n": n, "api_ms": api_ms, "cli_via_daemon_ms": cli_ms,
                            "fork_oneshot_ms": fork_ms, "fork_children_running_ms": fork_ready_ms}
        med = statistics.median
        print("  spawn n=%d (median of 3, wall time until every child runs):" % n)
        print("    POST /v1/sandboxes            %8.1f ms  (%.2f ms per child)"
              % (med(api_ms), med(api_ms) / n))
        print("    forkd spawn (CLI -> daemon)   %8.1f ms" % med(cli_ms))
        print("    forkd fork (one-shot CLI)     %8.1f ms  wall, incl. stopping them;"
              " children running after %.1f ms" % (med(fork_ms), med(fork_ready_ms)))
    finally:
        d.stop()
        env.cleanup()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
