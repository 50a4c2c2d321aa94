#!/usr/bin/env python3
"""forkd guest agent: answers JSON-line requests on vsock port 8888 and TCP :8888.

Started by forkd-init (/sbin/init) in every forkd guest as
    /usr/bin/python3 -I /opt/forkd/agent.py --guest
and on a host, for tests and benchmarks, as
    python3 agent.py --tcp-only --host 127.0.0.1 --port 0

One request object per line, one response object per line, in order, many
per connection; docs/AGENT.md is the reference.  numpy is imported before
the agent reports warm, so a snapshot taken once it is warm holds an
interpreter that has already paid for that import.  Once warm, the agent does
nothing until a request arrives: every thread sleeps in a blocking call, and
no timers run (a quiet guest is cheap to snapshot and to fork).
"""

import argparse
import ast
import base64
import builtins
import contextlib
import errno
import fcntl
import gc
import io
import json
import linecache
import os
import random
import selectors
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types

try:
    import numpy
except ImportError as e:  # reported by ping: numpy null, warm false
    numpy = None
    NUMPY_ERROR = str(e)
else:
    NUMPY_ERROR = None

PORT = 8888
MAX_LINE = 64 * 1024 * 1024  # request line limit (protocol)
MAX_OUTPUT = 64 * 1024 * 1024  # per exec stream; the rest is dropped and flagged
# Each output text field of a reply is cut to this many bytes of JSON, so a
# reply with two of them stays under 96 MiB (the host client's line limit)
# even when every byte needs a 6-byte escape.
MAX_FIELD_JSON = 40 * 1024 * 1024
MAX_READ = 48 * 1024 * 1024  # read_file: 48 MiB is 64 MiB of base64
MAX_ENTROPY = 1024 * 1024
MAX_ENTRIES = 10000  # list_dir: more are left out and flagged
DEFAULT_TIMEOUT = 60.0
RECV_SIZE = 1 << 20
PIPE_CHUNK = 1 << 16
WARM_MARKER = "FORKD-AGENT-WARM"
GC_FREEZE_PARAM = "forkd.gc_freeze"  # kernel command line: forkd.gc_freeze=0 turns it off

# <linux/random.h>
RNDADDENTROPY = 0x40085203  # _IOW('R', 0x03, int[2])
RNDRESEEDCRNG = 0x5207  # _IO('R', 0x07)

AGENT_FILE = os.path.abspath(__file__)


class BadRequest(Exception):
    """A request the agent refuses: the message names the field and the fix."""


KMSG = False  # set with --guest: inside a forkd guest, never on a host


def kmsg(line):
    # Also into the kernel log at error level: a `quiet` console shows it,
    # and printk reaches the serial console where tty output may not.
    if not KMSG:
        return
    try:
        with open("/dev/kmsg", "w") as f:
            f.write("<3>%s\n" % line)
    except OSError:
        pass


def log(msg):
    kmsg("forkd-agent: %s" % msg)
    try:
        sys.__stderr__.write("forkd-agent: %s\n" % msg)
        sys.__stderr__.flush()
    except (OSError, ValueError):
        pass


class Agent:
    def __init__(self, guest):
        self.guest = guest  # set the clock in after_fork (never on a host)
        self.warm = False
        self.index = None
        self.eval_lock = threading.Lock()
        self.eval_count = 0
        # eval's namespace is a module registered as __main__, so functions and
        # classes defined there can be pickled (multiprocessing with fork).
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        if numpy is not None:
            main.__dict__["np"] = numpy
            main.__dict__["numpy"] = numpy
        sys.modules["__main__"] = main
        self.ns = main.__dict__
        self.ops = {
            "ping": self.op_ping,
            "exec": self.op_exec,
            "eval": self.op_eval,
            "write_file": self.op_write_file,
            "read_file": self.op_read_file,
            "list_dir": self.op_list_dir,
            "remove": self.op_remove,
            "after_fork": self.op_after_fork,
        }

    # ---- framing ----------------------------------------------------------

    def handle_line(self, line):
        """One request line (bytes) -> one response dict. Never raises."""
        try:
            req = json.loads(line)
        except (ValueError, RecursionError) as e:
            return {"id": None, "ok": False, "error": "bad JSON: %s" % e}
        if not isinstance(req, dict):
            return {"id": None, "ok": False,
                    "error": "a request must be a JSON object, got %s" % type(req).__name__}
        rid = req.get("id")
        op = req.get("op")
        handler = self.ops.get(op) if isinstance(op, str) else None
        if handler is None:
            if op is None:
                msg = 'missing "op" (one of: %s)' % ", ".join(sorted(self.ops))
            else:
                msg = "unknown op %s (known: %s)" % (json.dumps(op), ", ".join(sorted(self.ops)))
            return {"id": rid, "ok": False, "error": msg}
        try:
            res = handler(req)
        except BadRequest as e:
            return {"id": rid, "ok": False, "error": "%s: %s" % (op, e)}
        except Exception as e:  # a failed request fails alone
            return {"id": rid, "ok": False, "error": "%s: %s: %s" % (op, type(e).__name__, e)}
        out = {"id": rid, "ok": res.pop("ok", True)}
        out.update(res)
        return out

    def serve(self, conn, max_line):
        """Read request lines from conn and answer each, until EOF."""
        buf = bytearray()
        discarding = False  # inside an oversized line
        try:
            while True:
                data = conn.recv(RECV_SIZE)
                if not data:
                    return
                start = 0
                while True:
                    nl = data.find(b"\n", start)
                    if nl < 0:
                        if not discarding:
                            buf += data[start:]
                            if len(buf) > max_line:
                                buf.clear()
                                discarding = True
                                self.reply(conn, self.too_long(max_line))
                        break
                    if discarding:
                        discarding = False
                    else:
                        buf += data[start:nl]
                        if len(buf) > max_line:
                            self.reply(conn, self.too_long(max_line))
                        else:
                            if buf.endswith(b"\r"):
                                del buf[-1:]
                            self.reply(conn, self.handle_line(bytes(buf)))
                        buf.clear()
                    start = nl + 1
        except OSError:
            pass  # the client went away
        except Exception as e:
            log("connection dropped: %s: %s" % (type(e).__name__, e))
        finally:
            conn.close()

    @staticmethod
    def too_long(max_line):
        return {"id": None, "ok": False,
                "error": "request line longer than %d bytes; the rest of it is discarded "
                         "(send large files in pieces)" % max_line}

    @staticmethod
    def reply(conn, res):
        try:
            line = json.dumps(res, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate (eval printed one): escape it
            line = json.dumps(res).encode()
        conn.sendall(line + b"\n")

    # ---- ops --------------------------------------------------------------

    def op_ping(self, req):
        return {"pong": True, "pid": os.getpid(),
                "numpy": numpy.__version__ if numpy is not None else None,
                "warm": self.warm, "index": self.index, "gc_frozen": gc.get_freeze_count()}

    def op_exec(self, req):
        argv = req.get("argv")
        if (not isinstance(argv, list) or not argv
                or not all(isinstance(a, str) for a in argv)):
            raise BadRequest('"argv" must be a non-empty list of strings')
        env = req.get("env")
        if env is not None and (not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise BadRequest('"env" must be an object of string to string')
        cwd = req.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise BadRequest('"cwd" must be a string')
        stdin = None
        if req.get("stdin") is not None and req.get("stdin_b64") is not None:
            raise BadRequest('give "stdin" or "stdin_b64", not both')
        if req.get("stdin") is not None:
            if not isinstance(req["stdin"], str):
                raise BadRequest('"stdin" must be a string (or use "stdin_b64")')
            stdin = req["stdin"].encode("utf-8", "surrogatepass")
        elif req.get("stdin_b64") is not None:
            stdin = b64(req["stdin_b64"], "stdin_b64")
        timeout = number(req, "timeout", DEFAULT_TIMEOUT)
        if not 0 < timeout <= 7 * 86400:
            raise BadRequest('"timeout" must be more than 0 and at most 604800 seconds')

        try:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, start_new_session=True, close_fds=True,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            what = e.filename if e.filename is not None else argv[0]
            return {"ok": False, "error": "exec: %s: %s" % (e.strerror or e, what)}
        except ValueError as e:  # e.g. an embedded NUL byte
            raise BadRequest(str(e)) from None
        out, err, timed_out = pump(proc, stdin, time.monotonic() + timeout)
        res = {"exit_code": proc.returncode, "timed_out": timed_out}
        for key, (data, cut) in (("stdout", out), ("stderr", err)):
            res[key], cut_json = fit(data.decode("utf-8", "replace"))
            if cut or cut_json:
                res[key + "_truncated"] = True
        return res

    def op_eval(self, req):
        code = req.get("code")
        if not isinstance(code, str):
            raise BadRequest('"code" must be a string')
        with self.eval_lock:
            self.eval_count += 1
            fname = "<eval-%d>" % self.eval_count
            # Keep recent sources for tracebacks of functions defined in them.
            linecache.cache[fname] = (len(code), None, code.splitlines(True), fname)
            stale = "<eval-%d>" % (self.eval_count - 256)
            linecache.cache.pop(stale, None)
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    result = self.run_code(code, fname)
            except BaseException as e:  # SystemExit too: eval must not end the agent
                return {"ok": False, "error": exc_line(e), "traceback": user_traceback(e),
                        "stdout": fit(out.getvalue())[0], "stderr": fit(err.getvalue())[0]}
            res = {"result": result}
            if result is not None:
                res["result"], cut = fit(result)
                if cut:
                    res["result_truncated"] = True
            for key, text in (("stdout", out.getvalue()), ("stderr", err.getvalue())):
                res[key], cut = fit(text)
                if cut:
                    res[key + "_truncated"] = True
            return res

    def run_code(self, code, fname):
        """Run CODE in the namespace; repr of a final expression, else None."""
        try:
            tree = ast.parse(code, fname, "exec")
        except SyntaxError as e:
            raise e.with_traceback(None) from None  # the caret says it all
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        if tree.body:
            exec(compile(tree, fname, "exec"), self.ns)
        if last is None:
            return None
        return repr(eval(compile(last, fname, "eval"), self.ns))

    def op_write_file(self, req):
        path = string(req, "path")
        data = b64(req.get("data"), "data")
        mode = req.get("mode")
        if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int)
                                 or not 0 <= mode <= 0o7777):
            raise BadRequest('"mode" must be an integer from 0 to 4095 (0o7777)')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     0o644 if mode is None else mode)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return {"bytes": len(data)}

    def op_read_file(self, req):
        path = string(req, "path")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks, total = [], 0
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_READ:
                    raise BadRequest("%s is larger than %d bytes; read it in pieces with exec "
                                     "(e.g. dd ... | base64)" % (path, MAX_READ))
                chunks.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        return {"data": base64.b64encode(data).decode(), "bytes": len(data)}

    def op_list_dir(self, req):
        path = absolute(req, "path")
        entries, truncated = [], False
        # Bytes names: a name that is not UTF-8 is sent with U+FFFD in place of
        # the bad bytes rather than as a lone surrogate (not valid JSON text).
        with os.scandir(os.fsencode(path)) as it:
            for e in it:
                if len(entries) == MAX_ENTRIES:
                    truncated = True
                    break
                try:
                    st = e.stat(follow_symlinks=False)  # lstat: a link is a link
                except FileNotFoundError:  # removed since readdir
                    continue
                entries.append({"name": e.name.decode("utf-8", "replace"),
                                "type": file_type(st.st_mode), "size": st.st_size,
                                "mode": stat.S_IMODE(st.st_mode), "mtime": st.st_mtime})
        entries.sort(key=lambda x: x["name"])
        return {"entries": entries, "truncated": truncated}

    def op_remove(self, req):
        path = absolute(req, "path")
        recursive = req.get("recursive", False)
        if not isinstance(recursive, bool):
            raise BadRequest('"recursive" must be true or false')
        if not os.path.normpath(path).strip("/"):  # "/", "//", "/tmp/..": the root
            raise BadRequest("refusing to remove /")
        kind = file_type(os.lstat(path).st_mode)
        if kind != "dir":
            os.unlink(path)
        elif recursive:
            # rmtree works through directory fds and never follows a link out
            # of the tree (shutil.rmtree.avoids_symlink_attacks on Linux).
            shutil.rmtree(path)
        else:
            try:
                os.rmdir(path)
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:
                    raise
                raise BadRequest("%s: directory not empty (remove it with "
                                 "\"recursive\": true)" % path) from None
        return {"type": kind}

    def op_after_fork(self, req):
        entropy = b64(req.get("entropy"), "entropy")
        if not 32 <= len(entropy) <= MAX_ENTROPY:
            raise BadRequest('"entropy" must hold 32 to %d bytes, got %d'
                             % (MAX_ENTROPY, len(entropy)))
        unix_time = number(req, "unix_time", None)
        if not 0 < unix_time < 2 ** 40:
            raise BadRequest('"unix_time" must be seconds since 1970 (a positive number)')
        index = req.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise BadRequest('"index" must be a non-negative integer')

        # 1. Mix the host's bytes into the kernel pool and make the CRNG use
        #    them now: without the reseed, every child would keep drawing from
        #    the parent's cloned CRNG state for up to a minute.
        fd = os.open("/dev/urandom", os.O_WRONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, RNDADDENTROPY,
                        struct.pack("ii", len(entropy) * 8, len(entropy)) + entropy)
            fcntl.ioctl(fd, RNDRESEEDCRNG)
        except OSError as e:
            return {"ok": False, "error": "after_fork: %s: %s (needs root: CAP_SYS_ADMIN)"
                    % ("RNDADDENTROPY/RNDRESEEDCRNG", e.strerror)}
        finally:
            os.close(fd)
        # 2. The wall clock: the snapshot's clock is the parent's, long past.
        clock_set = False
        if self.guest:
            try:
                time.clock_settime(time.CLOCK_REALTIME, unix_time)
            except OSError as e:
                return {"ok": False, "error": "after_fork: clock_settime(CLOCK_REALTIME): %s"
                        % e.strerror}
            clock_set = True
        # 3. User-space generators seeded from the fresh kernel CRNG.
        reseeded = ["kernel-crng"]
        random.seed(os.urandom(32))
        reseeded.append("random")
        tempfile._name_sequence = None  # its own Random() is re-made on next use
        reseeded.append("tempfile-names")
        if numpy is not None:
            numpy.random.seed(numpy.frombuffer(os.urandom(32), dtype=numpy.uint32))
            reseeded.append("numpy.random")
        self.index = index
        return {"clock_set": clock_set, "reseeded": reseeded}


# ---- helpers ------------------------------------------------------------------


def string(req, key):
    v = req.get(key)
    if not isinstance(v, str) or not v:
        raise BadRequest('"%s" must be a non-empty string' % key)
    return v


def absolute(req, key):
    v = string(req, key)
    if not v.startswith("/"):
        raise BadRequest('"%s" must be an absolute path' % key)
    return v


def file_type(mode):
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def number(req, key, default):
    v = req.get(key, default)
    if v is None and default is None:
        raise BadRequest('"%s" is required (a number)' % key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadRequest('"%s" must be a number' % key)
    return float(v)


def b64(v, key):
    if not isinstance(v, str):
        raise BadRequest('"%s" must be a base64 string' % key)
    try:
        return base64.b64decode(v, validate=True)
    except ValueError as e:
        raise BadRequest('"%s" is not valid base64: %s' % (key, e)) from None


def fit(text, budget=MAX_FIELD_JSON):
    """(text, False) if text takes at most budget bytes as a JSON string in a
    reply, else (the longest prefix found that does, True)."""
    if len(text) * 6 + 2 <= budget:  # no character encodes to more than 6 bytes
        return text, False
    size = len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size <= budget:
        return text, False
    while size > budget:
        text = text[:int(len(text) * budget / size * 0.98)]
        size = len(json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return text, True


def exc_line(e):
    msg = str(e)
    return "%s: %s" % (type(e).__name__, msg) if msg else type(e).__name__


def user_traceback(e):
    """The traceback without the agent's own frames."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == AGENT_FILE:
        tb = tb.tb_next
    if isinstance(e, SyntaxError) and tb is None:
        return "".join(traceback.format_exception_only(type(e), e))
    return "".join(traceback.format_exception(type(e), e, tb))


def pump(proc, stdin, deadline):
    """Feed stdin, collect stdout/stderr (each capped at MAX_OUTPUT) until
    both close and the process exits, or the deadline passes: then kill its
    process group.  Returns ((out, truncated), (err, truncated), timed_out)."""
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    trunc = {proc.stdout: False, proc.stderr: False}
    timed_out = False
    with selectors.DefaultSelector() as sel:
        for f in bufs:
            sel.register(f, selectors.EVENT_READ)
        view = memoryview(stdin) if stdin else None
        if view is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                f = key.fileobj
                if f is proc.stdin:
                    try:
                        view = view[os.write(f.fileno(), view[:PIPE_CHUNK]):]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        sel.unregister(f)
                        f.close()
                    continue
                chunk = os.read(f.fileno(), RECV_SIZE)
                if not chunk:
                    sel.unregister(f)
                    continue
                room = MAX_OUTPUT - len(bufs[f])
                if len(chunk) > room:
                    trunc[f] = True
                    chunk = chunk[:max(room, 0)]
                bufs[f] += chunk
    if not timed_out:
        try:
            proc.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None and not f.closed:
            f.close()
    return ((bytes(bufs[proc.stdout]), trunc[proc.stdout]),
            (bytes(bufs[proc.stderr]), trunc[proc.stderr]), timed_out)


def gc_freeze_wanted(guest, cmdline="/proc/cmdline"):
    """False only in a guest whose kernel command line says forkd.gc_freeze=0
    (for A/B measurements); a host agent always freezes."""
    if not guest:
        return True
    try:
        with open(cmdline) as f:
            words = f.read().split()
    except OSError:
        return True
    return "%s=0" % GC_FREEZE_PARAM not in words


def gc_freeze():
    """Collect, then move every object left into the permanent generation.
    A child's collector then never walks the parent's heap: each walk writes
    the GC header of every object it visits, and each page it writes is a page
    of memory.bin copied into that child.  Returns the frozen count."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def listen_vsock(port, guest):
    """A vsock listener on (any CID, port). In a guest the device may still be
    settling: retry for a while, then give up (init restarts the agent)."""
    tries = 30 if guest else 1
    for attempt in range(tries):
        try:
            s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        except OSError as e:
            err = e
        else:
            try:
                s.bind((socket.VMADDR_CID_ANY, port))
                s.listen(128)
                return s
            except OSError as e:
                s.close()
                err = e
        if attempt + 1 < tries:
            time.sleep(1)
    raise OSError(err.errno, "vsock port %d: %s (is the virtio vsock device there?)"
                  % (port, err.strerror))


def listen_tcp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description="forkd guest agent (docs/AGENT.md)")
    ap.add_argument("--port", type=int, default=PORT,
                    help="vsock and TCP port (default %d; 0 = any free TCP port)" % PORT)
    ap.add_argument("--host", default="0.0.0.0", help="TCP address (default 0.0.0.0)")
    ap.add_argument("--tcp-only", action="store_true", help="no vsock listener (host tests)")
    ap.add_argument("--guest", action="store_true",
                    help="running in a forkd guest: after_fork sets the wall clock")
    ap.add_argument("--max-line", type=int, default=MAX_LINE,
                    help="request line limit in bytes (default %d)" % MAX_LINE)
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535 or args.max_line < 1:
        ap.error("--port wants 0-65535 and --max-line a positive number")

    global KMSG
    KMSG = args.guest
    agent = Agent(guest=args.guest)
    if NUMPY_ERROR:
        log("numpy unavailable (%s); the agent will not report warm" % NUMPY_ERROR)
    listeners = []
    try:
        if not args.tcp_only:
            listeners.append(listen_vsock(args.port, args.guest))
            log("listening on vsock port %d" % args.port)
        tcp = listen_tcp(args.host, args.port)
        listeners.append(tcp)
        log("listening on tcp %s:%d" % tcp.getsockname()[:2])
    except OSError as e:
        log("cannot listen: %s" % e)
        return 1
    # Exercise the request path once so no first-request work (imports,
    # compiler and JSON set-up) is left for the children after the snapshot.
    agent.handle_line(b'{"op":"eval","code":"1+1"}')
    agent.eval_count = 0
    linecache.cache.pop("<eval-1>", None)
    if gc_freeze_wanted(args.guest):
        log("gc: %d objects frozen" % gc_freeze())
    else:
        log("gc: not frozen (%s=0)" % GC_FREEZE_PARAM)

    agent.warm = numpy is not None
    if agent.warm:
        print(WARM_MARKER, flush=True)
        kmsg(WARM_MARKER)
    sel = selectors.DefaultSelector()
    for s in listeners:
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():  # no timeout: idle means asleep
            try:
                conn, _ = key.fileobj.accept()
            except OSError as e:
                log("accept: %s" % e)
                time.sleep(0.1)  # e.g. out of file descriptors: do not spin
                continue
            threading.Thread(target=agent.serve, args=(conn, args.max_line),
                             daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
