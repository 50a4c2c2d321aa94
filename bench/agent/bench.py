#!/usr/bin/env python3
"""Round-trip latency of the forkd guest agent: ping, eval and exec, p50/p99.

Targets:
  --local                 start guest/agent/agent.py on this host (TCP, no VM):
                          the protocol and Python cost alone
  --tcp HOST:PORT         an agent over TCP (e.g. a guest's 10.42.0.2:8888)
  --vsock PATH            a child's vsock Unix socket (<run dir>/vsock.sock):
                          "CONNECT 8888" handshake, then the guest's agent

Each op runs --count times on one connection after a warm-up; --json FILE
writes the numbers too. On KVM-PVM hosts the guest kernel is emulated, so
figures measured against a guest there are not real-KVM figures.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.path.join(REPO, "guest", "agent", "agent.py")
PVM_NOTE = ("note: on KVM-PVM hosts the guest kernel is emulated (every guest syscall, "
            "interrupt and page fault is slow), so guest figures here are not real-KVM figures")


def kvm_pvm_host():
    return os.path.exists("/sys/module/kvm_pvm") or os.path.exists("/sys/module/kvm_pvm_intel")


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.rfile = sock.makefile("rb")

    def call(self, req):
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        line = self.rfile.readline()
        if not line:
            raise SystemExit("bench: the agent closed the connection")
        r = json.loads(line)
        if not r.get("ok"):
            raise SystemExit("bench: %s failed: %s" % (req["op"], r.get("error")))
        return r


def connect_tcp(spec):
    host, _, port = spec.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit("bench: --tcp wants HOST:PORT, got %r" % spec)
    s = socket.create_connection((host, int(port)), timeout=600)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def connect_vsock(path, port=8888):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(600)
    try:
        s.connect(path)
    except OSError as e:
        raise SystemExit("bench: connect %s: %s (is the child running?)" % (path, e.strerror))
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            raise SystemExit("bench: %s closed during the CONNECT handshake" % path)
        line += c
    if not line.startswith(b"OK "):
        raise SystemExit("bench: vsock handshake: expected 'OK <port>', got %r" % line)
    return s


def start_local():
    proc = subprocess.Popen([sys.executable, AGENT, "--tcp-only", "--host", "127.0.0.1",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    port = None
    while port is None:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit("bench: the local agent did not start")
        if b"listening on tcp " in line:
            port = int(line.rsplit(b":", 1)[1])
    proc.stdout.readline()  # the warm marker
    return proc, "127.0.0.1:%d" % port


def measure(conn, req, count, warmup):
    for _ in range(warmup):
        conn.call(req)
    times = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        conn.call(req)
        times.append((time.perf_counter_ns() - t0) / 1e3)
    times.sort()
    return {"count": count, "p50_us": times[len(times) // 2],
            "p99_us": times[min(len(times) - 1, int(len(times) * 0.99))],
            "mean_us": statistics.fmean(times), "min_us": times[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--local", action="store_true")
    g.add_argument("--tcp", metavar="HOST:PORT")
    g.add_argument("--vsock", metavar="PATH")
    ap.add_argument("--count", type=int, default=200, help="requests per op (default 200)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    if args.count < 1 or args.warmup < 0:
        ap.error("--count wants at least 1 and --warmup at least 0")

    proc = None
    if args.local:
        proc, args.tcp = start_local()
        transport, where = "tcp", "agent on this host (no VM), %s" % args.tcp
        sock = connect_tcp(args.tcp)
    elif args.tcp:
        transport, where = "tcp", args.tcp
        sock = connect_tcp(args.tcp)
    else:
        transport, where = "vsock", args.vsock
        sock = connect_vsock(args.vsock)
    try:
        conn = Conn(sock)
        ping = conn.call({"op": "ping"})
        ops = {
            "ping": {"op": "ping"},
            "eval": {"op": "eval", "code": "1 + 1"},
            "exec": {"op": "exec", "argv": ["true"]},
        }
        results = {}
        for name, req in ops.items():
            n = args.count if name != "exec" else max(1, args.count // 4)
            results[name] = measure(conn, req, n, args.warmup if name != "exec" else 2)
    finally:
        sock.close()
        if proc:
            proc.terminate()
            proc.wait()

    print("forkd agent round trips over %s: %s (agent pid %s, numpy %s, warm %s)"
          % (transport, where, ping["pid"], ping["numpy"], ping["warm"]))
    print("%-6s %7s %10s %10s %10s" % ("op", "count", "p50 us", "p99 us", "mean us"))
    for name, r in results.items():
        print("%-6s %7d %10.1f %10.1f %10.1f" % (name, r["count"], r["p50_us"], r["p99_us"],
                                                 r["mean_us"]))
    if args.local:
        print("note: no VM in this run: these are the agent's own costs (JSON, Python, fork+exec)")
    if not args.local or kvm_pvm_host():
        print(PVM_NOTE)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"transport": transport, "target": where, "results": results,
                       "kvm_pvm_host": kvm_pvm_host()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
