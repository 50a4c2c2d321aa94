"""forkd as an MCP server (Model Context Protocol): `python3 -m forkd.mcp`, or
`forkd mcp`, started by an AI-agent host as a tool server over stdio.

    python3 -m forkd.mcp [--daemon-url URL] [--tag DEFAULT_TAG]

JSON-RPC 2.0, one message per line on stdin and stdout (MCP "stdio"
transport, revisions 2025-06-18, 2025-03-26 and 2024-11-05); log lines go to
stderr only. Methods: initialize, ping, tools/list, tools/call, and the
notifications a client sends (initialized, cancelled...), which get no
answer. The tools (TOOLS below; docs/MCP.md lists them with their schemas)
drive a `forkd serve` daemon through the SDK's Controller: $FORKD_URL or
--daemon-url, $FORKD_TOKEN or the daemon's own token file on loopback.

Errors: a message that is not JSON is -32700; one that is not a JSON-RPC
request -32600; an unknown method -32601; params that do not fit (an unknown
tool, arguments outside a tool's inputSchema) -32602. A tool that ran and
failed (the daemon refused, the agent failed, no such sandbox) is a tool
result with isError true and the message, so the model can read it.

Sandboxes this server created are killed when the session ends (stdin
closed, SIGTERM, SIGINT, SIGHUP); those it did not create never are.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import concurrent.futures
import json
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any, Callable, Dict, List, Optional, Set

from . import __version__
from .client import JSON, Controller
from .errors import AgentError, ForkdError, NotFound

# Newest first: an initialize asking for one of these gets it, any other the newest.
PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

SANDBOX_ID = {"type": "string", "pattern": "^sb-[a-z2-7]{20}$",
              "description": "a sandbox id, as sandbox_create or sandbox_list gives it"}
TAG = {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"}
GUEST_PATH = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^/",
              "description": "an absolute path in the sandbox's file system"}
TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "maximum": 3600, "default": 60,
           "description": "seconds before the guest stops waiting (then timed_out)"}

Args = Dict[str, Any]


class RpcError(Exception):
    """A JSON-RPC error answer: the request itself was wrong."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ToolError(Exception):
    """The tool ran and failed: an isError result carrying the message."""


def _object(props: Dict[str, Any], required: Optional[List[str]] = None) -> Dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [],
            "additionalProperties": False}


def _type_ok(t: str, v: object) -> bool:
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return False


def validate(schema: Dict[str, Any], v: object, where: str = "arguments") -> None:
    """Check v against the subset of JSON Schema the tools use (type, enum,
    properties, required, additionalProperties, items, string lengths and
    patterns, array lengths, numeric bounds); RpcError INVALID_PARAMS naming
    the first place that does not fit."""
    def bad(msg: str) -> RpcError:
        return RpcError(INVALID_PARAMS, "%s: %s" % (where, msg))

    t = schema.get("type")
    if t is not None and not _type_ok(t, v):
        raise bad("expected %s, got %s" % (t, type(v).__name__ if v is not None else "null"))
    if "enum" in schema and v not in schema["enum"]:
        raise bad("must be one of %s" % ", ".join(map(str, schema["enum"])))
    if isinstance(v, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in v:
                raise bad("missing required %r" % k)
        for k, item in v.items():
            if k in props:
                validate(props[k], item, "%s.%s" % (where, k))
            elif schema.get("additionalProperties") is False:
                raise bad("unknown property %r (allowed: %s)" % (k, ", ".join(props) or "none"))
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(schema["additionalProperties"], item, "%s.%s" % (where, k))
    elif isinstance(v, list):
        if len(v) < schema.get("minItems", 0):
            raise bad("needs at least %d items" % schema["minItems"])
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            raise bad("takes at most %d items" % schema["maxItems"])
        for i, item in enumerate(v):
            validate(schema.get("items", {}), item, "%s[%d]" % (where, i))
    elif isinstance(v, str):
        if len(v) < schema.get("minLength", 0):
            raise bad("shorter than %d characters" % schema["minLength"])
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            raise bad("longer than %d characters" % schema["maxLength"])
        if "pattern" in schema and not re.search(schema["pattern"], v):
            raise bad("%r does not match %s" % (v[:80], schema["pattern"]))
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in schema and v < schema["minimum"]:
            raise bad("must be at least %s" % schema["minimum"])
        if "exclusiveMinimum" in schema and v <= schema["exclusiveMinimum"]:
            raise bad("must be more than %s" % schema["exclusiveMinimum"])
        if "maximum" in schema and v > schema["maximum"]:
            raise bad("must be at most %s" % schema["maximum"])


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: Dict[str, Any]
    run: Callable[["Server", Controller, Args], JSON]
    read_only: bool = False
    destructive: bool = False

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "inputSchema": self.input_schema,
                "annotations": {"title": self.title, "readOnlyHint": self.read_only,
                                "destructiveHint": self.destructive,
                                "openWorldHint": False}}


# ---- the tools: each takes arguments its schema has already checked ----

def _sandbox_create(srv: "Server", ctl: Controller, a: Args) -> JSON:
    tag = a.get("tag") or srv.default_tag
    info = ctl.create_sandboxes(tag, n=1, per_child_netns=a.get("per_child_netns"),
                                memory_limit_mib=a.get("memory_limit_mib"))[0]
    srv.created(info["id"], ctl)
    return {"sandbox_id": info["id"], "info": info}


def _sandbox_list(srv: "Server", ctl: Controller, a: Args) -> JSON:
    infos = ctl.sandboxes(a.get("tag"))
    owned = srv.owned()
    for i in infos:
        i["created_by_this_session"] = i.get("id") in owned
    return {"sandboxes": infos}


def _sandbox_kill(srv: "Server", ctl: Controller, a: Args) -> JSON:
    ctl.delete_sandbox(a["sandbox_id"])
    srv.forget(a["sandbox_id"])
    return {"sandbox_id": a["sandbox_id"], "killed": True}


def _run_python(srv: "Server", ctl: Controller, a: Args) -> JSON:
    r = ctl.eval(a["sandbox_id"], a["code"], timeout=a.get("timeout_secs", 60))
    return dict(r) if isinstance(r, dict) else {"result": r}


def _run_command(srv: "Server", ctl: Controller, a: Args) -> JSON:
    if ("command" in a) == ("argv" in a):
        raise RpcError(INVALID_PARAMS, "arguments: give exactly one of command (a shell "
                                       "string) and argv (an array of strings)")
    r = ctl.exec(a["sandbox_id"], argv=a.get("argv"), cmd=a.get("command"), env=a.get("env"),
                 cwd=a.get("cwd"), stdin=a.get("stdin"), timeout=a.get("timeout_secs", 60))
    return dict(r) if isinstance(r, dict) else {"result": r}


def _read_file(srv: "Server", ctl: Controller, a: Args) -> JSON:
    data = ctl.read_file(a["sandbox_id"], a["path"])
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        raise ToolError("the daemon sent a %s for a file" % type(data).__name__)
    try:
        return {"path": a["path"], "size": len(data), "base64": False, "content": data.decode()}
    except UnicodeDecodeError:
        return {"path": a["path"], "size": len(data), "base64": True,
                "content": base64.b64encode(data).decode()}


def _write_file(srv: "Server", ctl: Controller, a: Args) -> JSON:
    data: bytes
    if a.get("base64"):
        try:
            data = base64.b64decode(a["content"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise RpcError(INVALID_PARAMS, "arguments.content: not base64: %s" % e) from None
    else:
        data = a["content"].encode()
    mode = int(a["mode"], 8) if "mode" in a else None
    r = ctl.write_file(a["sandbox_id"], a["path"], data, mode=mode)
    return dict(r) if isinstance(r, dict) else {"result": r}


def _list_dir(srv: "Server", ctl: Controller, a: Args) -> JSON:
    return ctl.list_dir(a["sandbox_id"], a["path"])


def _remove_file(srv: "Server", ctl: Controller, a: Args) -> JSON:
    return ctl.remove_file(a["sandbox_id"], a["path"], recursive=bool(a.get("recursive")))


def _sandbox_branch(srv: "Server", ctl: Controller, a: Args) -> JSON:
    snap = ctl.branch(a["sandbox_id"], tag=a.get("tag"), mode=a.get("mode", "live"))
    return {"tag": snap["tag"], "snapshot": snap}


TOOLS: List[Tool] = [
    Tool("sandbox_create", "Create a sandbox",
         "Start a new sandbox: a microVM forked in milliseconds from a warm snapshot (the "
         "default has Python with numpy loaded). Returns its sandbox_id for the other tools. "
         "Sandboxes made here are killed when this MCP session ends.",
         _object({"tag": dict(TAG, description="snapshot to fork (default: the server's "
                                               "--tag, $FORKD_TAG or \"py\"); a tag "
                                               "sandbox_branch made works too"),
                  "per_child_netns": {"type": "boolean", "description":
                                      "own network namespace (needed for a snapshot "
                                      "with a network device)"},
                  "memory_limit_mib": {"type": "integer", "minimum": 16, "maximum": 1048576,
                                       "description": "memory cgroup limit"}}),
         _sandbox_create),
    Tool("sandbox_list", "List sandboxes",
         "The daemon's sandboxes (optionally of one snapshot tag), with state and whether "
         "this session created them.",
         _object({"tag": dict(TAG, description="only sandboxes of this snapshot")}),
         _sandbox_list, read_only=True),
    Tool("sandbox_kill", "Kill a sandbox", "Stop a sandbox and remove everything it had.",
         _object({"sandbox_id": SANDBOX_ID}, ["sandbox_id"]), _sandbox_kill,
         destructive=True),
    Tool("run_python", "Run Python",
         "Evaluate Python code in the sandbox's warm interpreter (state persists between "
         "calls; numpy is imported as np in the default image). Returns result (repr of the "
         "last expression, null for statements), stdout and stderr; an exception is an "
         "error with its traceback.",
         _object({"sandbox_id": SANDBOX_ID,
                  "code": {"type": "string", "minLength": 1, "maxLength": 1048576},
                  "timeout_secs": TIMEOUT}, ["sandbox_id", "code"]),
         _run_python),
    Tool("run_command", "Run a command",
         "Run a command in the sandbox: either command (a string for /bin/sh -c) or argv "
         "(an array, no shell), not both. Returns stdout, stderr, exit_code (-N: killed by "
         "signal N) and timed_out.",
         _object({"sandbox_id": SANDBOX_ID,
                  "command": {"type": "string", "minLength": 1, "maxLength": 1048576},
                  "argv": {"type": "array", "minItems": 1, "maxItems": 4096,
                           "items": {"type": "string"}},
                  "timeout_secs": TIMEOUT,
                  "cwd": dict(GUEST_PATH, description="working directory"),
                  "env": {"type": "object", "additionalProperties": {"type": "string"},
                          "description": "environment variables added"},
                  "stdin": {"type": "string", "description": "text sent to its stdin"}},
                 ["sandbox_id"]),
         _run_command),
    Tool("read_file", "Read a file",
         "Read a file of the sandbox. content is its text, or base64 (base64: true) when it "
         "is not UTF-8.",
         _object({"sandbox_id": SANDBOX_ID, "path": GUEST_PATH}, ["sandbox_id", "path"]),
         _read_file, read_only=True),
    Tool("write_file", "Write a file",
         "Write a file in the sandbox (created or replaced): content is text, or base64 "
         "with base64: true.",
         _object({"sandbox_id": SANDBOX_ID, "path": GUEST_PATH,
                  "content": {"type": "string", "maxLength": 44739244},
                  "base64": {"type": "boolean", "default": False},
                  "mode": {"type": "string", "pattern": "^[0-7]{1,4}$",
                           "description": "permission bits in octal, e.g. \"755\""}},
                 ["sandbox_id", "path", "content"]),
         _write_file),
    Tool("list_dir", "List a directory",
         "The entries of a directory in the sandbox: name, type (file, dir, symlink, other), "
         "size, mode, mtime; at most 10000 (truncated says so).",
         _object({"sandbox_id": SANDBOX_ID, "path": GUEST_PATH}, ["sandbox_id", "path"]),
         _list_dir, read_only=True),
    Tool("remove_file", "Remove a file",
         "Remove a file, link or empty directory in the sandbox; with recursive, a directory "
         "and everything under it. Links are never followed.",
         _object({"sandbox_id": SANDBOX_ID, "path": GUEST_PATH,
                  "recursive": {"type": "boolean", "default": False}},
                 ["sandbox_id", "path"]),
         _remove_file, destructive=True),
    Tool("sandbox_branch", "Branch a sandbox",
         "Snapshot a running sandbox as it is now (memory, interpreter state, files); "
         "sandbox_create with the returned tag starts new sandboxes from that point. The "
         "sandbox runs on.",
         _object({"sandbox_id": SANDBOX_ID,
                  "tag": dict(TAG, description="the new snapshot's tag (default: made up)"),
                  "mode": {"type": "string", "enum": ["live", "full", "diff"],
                           "default": "live", "description":
                           "live: paused only for vCPU/device state; full: paused while "
                           "memory is written; diff: only pages changed since its snapshot"}},
                 ["sandbox_id"]),
         _sandbox_branch),
]
TOOLS_BY_NAME = {t.name: t for t in TOOLS}

INSTRUCTIONS = ("forkd runs code in sandboxes: Linux microVMs forked in milliseconds from a warm "
                "snapshot. Call sandbox_create, then run_python / run_command / the file tools "
                "with its sandbox_id; sandbox_branch saves a sandbox's state to start more "
                "from. Sandboxes created in this session are killed when it ends.")


def _log(msg: str) -> None:
    print("forkd mcp: %s" % msg, file=sys.stderr, flush=True)


class Server:
    """One MCP session. handle() answers one decoded message (None for a
    notification); serve() reads stdin until EOF, answering tools/call on worker
    threads so that a long run_python does not hold up ping; close() kills the
    sandboxes this session created.

    make_controller is called once per worker thread (each its own connection)."""

    def __init__(self, make_controller: Callable[[], Controller], default_tag: str = "py",
                 workers: int = 8):
        self.default_tag = default_tag
        self._make = make_controller
        self._local = threading.local()
        self._lock = threading.Lock()
        self._owned: Set[str] = set()
        self._closing = False
        self._version = PROTOCOL_VERSIONS[0]
        self._workers = workers
        self._out_lock = threading.Lock()

    # ---- the sandboxes this session owns ----

    def created(self, sandbox_id: str, ctl: Controller) -> None:
        with self._lock:
            closing = self._closing
            if not closing:
                self._owned.add(sandbox_id)
        if closing:  # created while the session was ending
            self._kill(ctl, sandbox_id)

    def forget(self, sandbox_id: str) -> None:
        with self._lock:
            self._owned.discard(sandbox_id)

    def owned(self) -> Set[str]:
        with self._lock:
            return set(self._owned)

    def _kill(self, ctl: Controller, sandbox_id: str) -> None:
        try:
            ctl.delete_sandbox(sandbox_id)
        except NotFound:
            pass
        except (ForkdError, ValueError) as e:
            _log("could not kill sandbox %s: %s" % (sandbox_id, e))

    def close(self) -> None:
        """Kill every sandbox this session created, all at once (an MCP host
        waits only seconds before it kills a server that does not exit)."""
        with self._lock:
            self._closing = True
            ids, self._owned = sorted(self._owned), set()
        if not ids:
            return
        threads = [threading.Thread(target=lambda i=i: self._kill(self._make(), i))
                   for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _log("killed %d sandbox(es) of this session" % len(ids))

    def _controller(self) -> Controller:
        ctl: Optional[Controller] = getattr(self._local, "ctl", None)
        if ctl is None:
            ctl = self._make()
            self._local.ctl = ctl
        return ctl

    # ---- JSON-RPC ----

    def handle(self, msg: object) -> Optional[Dict[str, Any]]:
        """The answer to one decoded message, or None (a notification, or a
        response from the client)."""
        if not isinstance(msg, dict):
            return _error(None, INVALID_REQUEST, "a message must be a JSON object"
                          if not isinstance(msg, list) else "batches are not supported")
        rid = msg.get("id")
        if "method" not in msg and ("result" in msg or "error" in msg):
            return None  # a response: this server sends no requests
        if (msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str)
                or ("id" in msg and (isinstance(rid, bool)
                                     or not isinstance(rid, (str, int))))):
            return _error(rid if isinstance(rid, (str, int)) and not isinstance(rid, bool)
                          else None, INVALID_REQUEST,
                          "not a JSON-RPC 2.0 request (jsonrpc \"2.0\", a string method, "
                          "a string or integer id)")
        if "id" not in msg:
            return None  # notifications/initialized, notifications/cancelled, ...
        params = msg.get("params", {})
        try:
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params must be an object")
            return {"jsonrpc": "2.0", "id": rid, "result": self._call(msg["method"], params)}
        except RpcError as e:
            return _error(rid, e.code, e.message)
        except Exception as e:  # a bug here: answer it rather than die
            _log("internal error in %s: %r" % (msg["method"], e))
            return _error(rid, INTERNAL_ERROR, "internal error: %s" % e)

    def _call(self, method: str, params: Dict[str, Any]) -> Dict[str, Any]:
        if method == "initialize":
            want = params.get("protocolVersion")
            if not isinstance(want, str):
                raise RpcError(INVALID_PARAMS, "initialize: protocolVersion must be a string")
            self._version = want if want in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
            return {"protocolVersion": self._version,
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": "forkd", "title": "forkd sandboxes",
                                   "version": __version__},
                    "instructions": INSTRUCTIONS}
        if method == "ping":
            return {}
        if method == "tools/list":
            if "cursor" in params and not isinstance(params["cursor"], str):
                raise RpcError(INVALID_PARAMS, "tools/list: cursor must be a string")
            return {"tools": [t.describe() for t in TOOLS]}
        if method == "tools/call":
            return self._call_tool(params)
        raise RpcError(METHOD_NOT_FOUND, "method not found: %s" % method)

    def _call_tool(self, params: Dict[str, Any]) -> Dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call: name must be a string")
        tool = TOOLS_BY_NAME.get(name)
        if tool is None:
            raise RpcError(INVALID_PARAMS, "unknown tool: %s (tools/list has %s)"
                           % (name, ", ".join(TOOLS_BY_NAME)))
        args = params.get("arguments", {})
        validate(tool.input_schema, args)
        try:
            result = tool.run(self, self._controller(), args)
        except (ToolError, ForkdError, ValueError) as e:
            text = str(e)
            if isinstance(e, AgentError) and e.traceback:
                text += "\n" + e.traceback
            return {"content": [{"type": "text", "text": text}], "isError": True}
        out: Dict[str, Any] = {"content": [{"type": "text",
                                            "text": json.dumps(result, indent=1)}],
                               "isError": False}
        # structuredContent came with 2025-06-18.
        if self._version >= "2025-06-18" and isinstance(result, dict):
            out["structuredContent"] = result
        return out

    # ---- stdio ----

    def _write(self, out: IO[bytes], answer: Optional[Dict[str, Any]]) -> None:
        if answer is None:
            return
        line = json.dumps(answer, separators=(",", ":")).encode() + b"\n"
        with self._out_lock:
            try:
                out.write(line)
                out.flush()
            except (BrokenPipeError, ValueError):
                pass  # the host went away; stdin's EOF ends the session

    def handle_line(self, line: bytes) -> Optional[Dict[str, Any]]:
        try:
            msg = json.loads(line)
        except ValueError as e:
            return _error(None, PARSE_ERROR, "parse error: %s" % e)
        return self.handle(msg)

    def serve(self, inp: IO[bytes], out: IO[bytes]) -> None:
        """Answer the messages on inp until EOF; the caller then close()s."""
        pool = concurrent.futures.ThreadPoolExecutor(self._workers, "forkd-mcp")

        def answer(msg: Dict[str, Any]) -> None:
            self._write(out, self.handle(msg))

        try:
            for line in iter(inp.readline, b""):
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError as e:
                    self._write(out, _error(None, PARSE_ERROR, "parse error: %s" % e))
                    continue
                if isinstance(msg, dict) and msg.get("method") == "tools/call" and "id" in msg:
                    pool.submit(answer, msg)
                else:
                    self._write(out, self.handle(msg))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _error(rid: object, code: int, message: str) -> Dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    raise _Stop(signal.Signals(signum).name)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m forkd.mcp",
        description="forkd's MCP server (Model Context Protocol) on stdin/stdout: tools that "
                    "create sandboxes of a forkd daemon and run code in them.")
    p.add_argument("--daemon-url", default=None,
                   help="forkd serve's address (default $FORKD_URL, else http://127.0.0.1:8889)")
    p.add_argument("--tag", default=None,
                   help="snapshot sandbox_create forks by default ($FORKD_TAG, else py)")
    p.add_argument("--version", action="version", version="forkd mcp %s" % __version__)
    opts = p.parse_args(argv)
    tag = opts.tag or os.environ.get("FORKD_TAG") or "py"
    if not re.fullmatch(TAG["pattern"], tag):
        p.error("--tag %r is not a snapshot tag" % tag)
    url = opts.daemon_url
    try:
        Controller(url).close()  # a bad URL is a usage error now, not at the first call
    except ValueError as e:
        p.error(str(e))
    srv = Server(lambda: Controller(url), default_tag=tag)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    try:
        srv.serve(sys.stdin.buffer, sys.stdout.buffer)
    except (_Stop, KeyboardInterrupt) as e:
        _log("stopping (%s)" % (e or "interrupt"))
    finally:
        # The session is over: a signal now (a host's SIGTERM after closing
        # stdin) must not cut the kills short.
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
