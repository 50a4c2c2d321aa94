#!/usr/bin/env bash
# virtio-vsock: both directions through forkd's Unix-socket host end, with
# tests/guests/virtio_vsock.c on the guest side.
#   host to guest: connect to $WORK/v.sock, "CONNECT 1234\n", expect
#     "OK <port>\n", send a line and expect it uppercased, stream 300000
#     pattern bytes (the guest checks them under tight credit) and expect
#     "GOT 300000 OK\n", then close.
#   guest to host: a listener on $WORK/v.sock_5000 gets "ping from guest\n",
#     answers "pong\n", reads 300000 pattern bytes slowly (so forkd must
#     buffer and hold back credit), answers "GOT 300000 OK\n" and expects
#     EOF (the guest's OP_SHUTDOWN).
# Host-side checks first: a stale socket file at the path is replaced,
# malformed handshakes are closed, a second VMM refuses the live socket.
# Then forkd must exit 0 with SUCCESS on the console, and the socket file
# must be gone. Every wait is bounded.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
set -euo pipefail

[[ -c /dev/kvm ]] || { echo "skip: no /dev/kvm"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 is needed for the host side"; exit 77; }
: "${FORKD:?}" "${GUEST:?}" "${WORK:?}"

run() {
	local name=$1 bin=$2 rc=0
	rm -f "$WORK/v.sock" "$WORK/v.sock_5000"
	timeout "$(scaled 120)" python3 - "$bin" "$GUEST" "$WORK" "$name" <<'PY' || rc=$?
import os, re, socket, subprocess, sys, threading, time

forkd, guest, work, name = sys.argv[1:5]
uds = os.path.join(work, "v.sock")
N = 300000
pattern = bytes(((k * 7 + (k >> 9)) & 0xFF) for k in range(N))
results, errors = {}, []

def read_line(s, limit=64):
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            raise RuntimeError("EOF after %r" % buf)
        buf += c
        if len(buf) > limit:
            raise RuntimeError("line too long: %r" % buf)
    return buf

def read_exact(s, n, slow=False):
    buf = bytearray()
    while len(buf) < n:
        c = s.recv(min(65536, n - len(buf)) if not slow else 4096)
        if not c:
            raise RuntimeError("EOF after %d of %d bytes" % (len(buf), n))
        buf += c
        if slow and len(buf) < 64 * 1024:
            time.sleep(0.002)
    return bytes(buf)

def guest_to_host(srv):
    try:
        c, _ = srv.accept()
        c.settimeout(60)
        line = read_line(c)
        assert line == b"ping from guest\n", line
        c.sendall(b"pong\n")
        time.sleep(1.0)  # let the guest fill the socket and then forkd's buffer
        data = read_exact(c, N, slow=True)
        assert data == pattern, "stream from the guest differs"
        c.sendall(b"GOT 300000 OK\n")
        assert c.recv(1) == b"", "expected EOF after the guest's shutdown"
        c.close()
        results["g2h"] = True
    except Exception as e:
        errors.append("guest to host: %r" % (e,))

def host_to_guest():
    try:
        deadline = time.time() + 30
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(uds)
                break
            except OSError:
                s.close()
                if time.time() > deadline:
                    raise RuntimeError("no listener on %s" % uds)
                time.sleep(0.05)
        s.settimeout(60)
        s.sendall(b"CONNECT 1234\n")
        ok = read_line(s)
        assert re.fullmatch(rb"OK [0-9]+\n", ok), ok
        s.sendall(b"hello from host\n")
        line = read_line(s)
        assert line == b"HELLO FROM HOST\n", line
        s.sendall(pattern)
        line = read_line(s)
        assert line == b"GOT 300000 OK\n", line
        host_checks()  # while the guest waits for this connection to close
        s.close()
        results["h2g"] = ok.decode().strip()
    except Exception as e:
        errors.append("host to guest: %r" % (e,))

def expect_closed(payload, what):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(uds)
    s.sendall(payload)
    try:
        got = s.recv(64)
    except ConnectionResetError:
        got = b""
    s.close()
    if got != b"":
        raise RuntimeError("%s: got %r instead of a close" % (what, got))

def host_checks():
    try:
        # Malformed handshakes are refused before the guest hears of them.
        expect_closed(b"CONNECT 12x4\n", "bad port")
        expect_closed(b"CONNECT 99999999999\n", "port over 32 bits")
        expect_closed(b"HELLO 1234\n", "bad verb")
        expect_closed(b"CONNECT 1234" + b" " * 40, "line without newline over 32 bytes")
        # A second VMM must not take over (or remove) a live socket.
        r = subprocess.run([forkd, "vm", "run", "--kernel", guest, "--no-rng", "--vsock", uds,
                            "--timeout-secs", "20"], capture_output=True, text=True, timeout=30)
        if r.returncode != 1 or "in use" not in r.stderr:
            raise RuntimeError("second VMM on a live socket: status %d, %r" % (r.returncode, r.stderr))
        if not os.path.exists(uds):
            raise RuntimeError("second VMM removed the live socket")
        results["checks"] = True
    except Exception as e:
        errors.append("host-side checks: %r" % (e,))

# A stale socket file (bound, nobody listening) must be replaced.
stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stale.bind(uds)
stale.close()

srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(uds + "_5000")
srv.listen(4)
srv.settimeout(60)
console = os.path.join(work, "console-%s.log" % name)
log = open(os.path.join(work, "forkd-%s.log" % name), "w")
t0 = time.time()
vm = subprocess.Popen([forkd, "vm", "run", "--kernel", guest, "--no-rng", "--vsock", uds,
                       "--console", console, "--timeout-secs", "90"],
                      stdout=log, stderr=subprocess.STDOUT)
threads = [threading.Thread(target=guest_to_host, args=(srv,), daemon=True),
           threading.Thread(target=host_to_guest, daemon=True)]
for t in threads:
    t.start()
deadline = t0 + 100  # inside the caller's 120 s limit, with room to clean up
for t in threads:
    t.join(max(0.1, deadline - time.time()))
try:
    rc = vm.wait(timeout=max(1, deadline + 5 - time.time()))
except subprocess.TimeoutExpired:
    vm.kill()
    vm.wait()
    rc = "killed after %d s" % (time.time() - t0)
if any(t.is_alive() for t in threads):
    errors.append("host side still waiting at the deadline")
log.close()
console_text = open(console).read() if os.path.exists(console) else ""
print(console_text, end="")
out = open(os.path.join(work, "forkd-%s.log" % name)).read()
fail = list(errors)
if rc != 0:
    fail.append("forkd exited with status %s" % rc)
if "SUCCESS\n" not in console_text:
    fail.append("no SUCCESS on the console")
if re.search(r"AddressSanitizer|runtime error|LeakSanitizer", out):
    fail.append("sanitizer report")
if os.path.exists(uds):
    fail.append("%s left behind" % uds)
if fail:
    print("FAIL (%s): %s" % (name, "; ".join(fail)))
    print(out, end="")
    sys.exit(1)
print("ok (%s): stale socket replaced, live socket refused to a second VMM, 4 bad "
      "handshakes closed" % name)
print("ok (%s): host->guest (%s, echo, %d bytes), guest->host (ping, %d bytes, EOF), "
      "exit 0, SUCCESS, socket removed, %.1f s" % (name, results["h2g"], N, N, time.time() - t0))
PY
	((rc == 0)) || exit 1
}

run plain "$FORKD"
san="$(dirname "$(dirname "$FORKD")")/build-san/forkd"
if [[ -x $san && $san != "$FORKD" ]]; then
	run sanitized "$san"
fi
