#!/usr/bin/env python3
"""Host side of forkd's real-Linux end-to-end test (driven by linux_boot.sh).

Starts the VMM command given after "--", and while it runs:
  * follows the guest console file and prints boot milestones and every
    "FORKD-E2E:" line with the seconds elapsed since the VMM started;
  * serves guest -> host vsock: listens on the Unix socket <vsock>_5000
    (bound before the VMM starts) and answers each line with
    "hello-from-host:<line>";
  * drives host -> guest vsock: once the guest prints "vsock-listen ready",
    connects to <vsock>, sends "CONNECT 6000", expects "OK <n>", sends a line
    and expects "echo:<line>" back;
  * waits for the VMM to exit and writes a results file of lines
        check <name> ok|FAIL <detail>
        guest <name> ok|FAIL <detail>     (copied from the console)
        exit_status <n>
Only the standard library is used.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

MARK = "FORKD-E2E:"
# (substring, label, print every occurrence)
MILESTONES = [
    ("Linux version", "kernel started", False),
    ("x86/fpu: x87 FPU will use", "FPU set up", False),
    ("smp: Brought up", "CPUs up", False),
    ("Run /init as init process", "kernel runs /init", False),
    ("Freeing unused kernel image", "kernel frees init memory", False),
    ("Kernel panic", "KERNEL PANIC", True),
    ("BUG:", "kernel BUG", True),
    ("Oops", "kernel Oops", True),
    ("reboot: Restarting system", "guest reset", False),
    ("reboot: Power down", "guest power down", False),
]

T0 = time.monotonic()
_print_lock = threading.Lock()


def elapsed():
    return time.monotonic() - T0


def say(msg):
    with _print_lock:
        print("[%8.1fs] %s" % (elapsed(), msg), flush=True)


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.host = {}  # name -> (ok, detail)

    def set(self, name, ok, detail):
        with self.lock:
            self.host[name] = (ok, detail)


def recv_line(sock, limit=4096):
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace").rstrip("\n")


def serve_g2h(listener, results, stop):
    """Guest -> host: answer every connection on <vsock>_5000."""
    listener.settimeout(0.5)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        with conn:
            conn.settimeout(120)
            try:
                line = recv_line(conn)
                conn.sendall(("hello-from-host:%s\n" % line).encode())
            except OSError as e:
                results.set("vsock-g2h-host", False, "connection error: %s" % e)
                continue
        ok = line == "hello-from-guest"
        results.set("vsock-g2h-host", ok, "got %r" % line)
        say("host: vsock port 5000 got %r from the guest" % line)


def drive_h2g(uds, results):
    """Host -> guest: CONNECT 6000 through the VMM's vsock Unix socket."""
    msg = "hello-from-host-%d" % os.getpid()
    last = "not tried"
    for attempt in range(1, 6):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(180)
                s.connect(uds)
                s.sendall(b"CONNECT 6000\n")
                ack = recv_line(s)
                if not re.fullmatch(r"OK \d+", ack):
                    last = "handshake reply %r" % ack
                    raise ConnectionError(last)
                s.sendall((msg + "\n").encode())
                reply = recv_line(s)
                ok = reply == "echo:" + msg
                results.set("vsock-h2g-host", ok, "handshake %r, reply %r" % (ack, reply))
                say("host: vsock CONNECT 6000 -> %r, reply %r" % (ack, reply))
                return
        except (OSError, ConnectionError) as e:
            last = str(e) or last
            say("host: vsock CONNECT 6000 attempt %d failed: %s" % (attempt, last))
            time.sleep(3)
    results.set("vsock-h2g-host", False, last)


def follow_console(path, uds, proc, results, stop, heartbeat):
    """Print milestones and markers until the VMM exits; return guest markers."""
    guest = {}
    seen = set()
    pos = 0
    partial = b""
    first_byte = False
    h2g = None
    last_beat = time.monotonic()
    last_line = ""
    size = 0
    while True:
        exited = proc.poll() is not None
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            pos += len(data)
            size += len(data)
            if not first_byte:
                first_byte = True
                say("first console byte")
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if line.strip():
                    last_line = line
                # Each marker reaches the console twice (tty echo and kernel
                # log), and the two can interleave: the kernel's copy may
                # land inside the echoed one. Read every marker in the line;
                # a garbled one matches nothing and its other copy counts.
                texts = [seg.strip() for seg in line.split(MARK)[1:]]
                for text in texts:
                    say("guest: " + text)
                    m = re.match(r"(\S+) (ok|FAIL)\b ?(.*)", text)
                    if m:
                        guest[m.group(1)] = (m.group(2) == "ok", m.group(3))
                    if text == "done" or text.startswith("done "):
                        guest["done"] = (True, "")
                    if text.startswith("vsock-listen ready") and h2g is None:
                        h2g = threading.Thread(
                            target=drive_h2g, args=(uds, results), daemon=True)
                        h2g.start()
                if texts:
                    continue
                for key, label, repeat in MILESTONES:
                    if key in line and (repeat or key not in seen):
                        seen.add(key)
                        say("console: %s | %s" % (label, line.strip()))
        if exited:
            break
        if time.monotonic() - last_beat >= heartbeat:
            last_beat = time.monotonic()
            say("... still running, console %d bytes, last line: %s" % (size, last_line[-120:]))
        time.sleep(0.2)
    if partial:
        line = partial.decode("utf-8", "replace")
        if MARK in line:
            say("guest (partial line): " + line)
    if h2g is not None:
        h2g.join(timeout=200)
    stop.set()
    return guest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--console", required=True)
    ap.add_argument("--vsock", required=True, help="VMM vsock Unix socket path")
    ap.add_argument("--results", required=True)
    ap.add_argument("--deadline", type=float, default=2600, help="kill the VMM after this many seconds")
    ap.add_argument("--heartbeat", type=float, default=60)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no VMM command after --")

    results = Results()
    stop = threading.Event()

    g2h_path = args.vsock + "_5000"
    if os.path.exists(g2h_path):
        os.unlink(g2h_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(g2h_path)
    listener.listen(4)
    server = threading.Thread(target=serve_g2h, args=(listener, results, stop), daemon=True)
    server.start()

    global T0
    T0 = time.monotonic()
    say("starting: " + " ".join(cmd))
    proc = subprocess.Popen(cmd)
    killer = threading.Timer(args.deadline, lambda: (say("deadline reached, killing the VMM"), proc.kill()))
    killer.daemon = True
    killer.start()
    try:
        guest = follow_console(args.console, args.vsock, proc, results, stop, args.heartbeat)
    except KeyboardInterrupt:
        proc.kill()
        raise
    finally:
        killer.cancel()
    status = proc.wait()
    say("VMM exited with status %d" % status)
    listener.close()

    if "vsock-g2h-host" not in results.host:
        results.set("vsock-g2h-host", False, "the guest never connected to port 5000")
    if "vsock-h2g-host" not in results.host:
        results.set("vsock-h2g-host", False, "never saw 'vsock-listen ready'")

    with open(args.results, "w") as f:
        f.write("exit_status %d\n" % status)
        for name, (ok, detail) in sorted(results.host.items()):
            f.write("check %s %s %s\n" % (name, "ok" if ok else "FAIL", detail))
        for name, (ok, detail) in guest.items():
            f.write("guest %s %s %s\n" % (name, "ok" if ok else "FAIL", detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
