#!/usr/bin/env python3
"""Runs the programs of docs/SDK.md, so that the page keeps working.

A program is the fenced block after a line
    <!-- example: NAME [stub-ok] [expect="TEXT"]... -->
NAME starts with its kind: py- (```python), ts- (```ts) or mcp- (```json, an
MCP host's configuration). stub-ok: it needs nothing of the agent but ping
(the daemon suite's agent_stub). expect: text its output must contain.

  sdk_examples.py --list
  sdk_examples.py --check                   no daemon: compile / type-check every block
  sdk_examples.py [--stub-ok] [--only NAME,...]
                                            run them against $FORKD_URL ($FORKD_TOKEN,
                                            $FORKD_TAG): exit 0 and every expect printed

Python blocks run with PYTHONPATH=sdk/python; TypeScript blocks are compiled
by the SDK's tsc (sdk/typescript/node_modules) in a directory whose
node_modules/forkd is sdk/typescript (built: npm ci / npm run build); an MCP
configuration's server is started by the official MCP client
(tests/mcp/node_modules), its command looked up in $FORKD_BUILD (default
build/) before $PATH, with FORKD_URL / FORKD_TOKEN of this environment over
its "env": initialize, tools/list (all ten tools), tools/call sandbox_list.
Prints "ok NAME" or "FAIL NAME: why" per block and a last line "N passed, N
failed"; exit status 1 when one failed. Standard library only.
"""

import argparse
import ast
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(REPO, "docs", "SDK.md")
TS_SDK = os.path.join(REPO, "sdk", "typescript")
PY_SDK = os.path.join(REPO, "sdk", "python")
MCP_CLIENT = os.path.join(REPO, "tests", "mcp", "node_modules", "@modelcontextprotocol", "sdk")
FENCES = {"py": "python", "ts": "ts", "mcp": "json"}
MCP_TOOLS = ["sandbox_create", "sandbox_list", "sandbox_kill", "run_python", "run_command",
             "read_file", "write_file", "list_dir", "remove_file", "sandbox_branch"]
MARKER = re.compile(r"^<!-- example: ([a-z0-9-]+)((?:\s+(?:stub-ok|expect=\"[^\"]*\"))*)\s*-->$")


class Example:
    def __init__(self, name, kind, line, code, stub_ok, expect):
        self.name, self.kind, self.line, self.code = name, kind, line, code
        self.stub_ok, self.expect = stub_ok, expect


def extract(path):
    """Every marked block of the page; a malformed marker or block is an error."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, seen = [], set()
    for i, line in enumerate(lines):
        if not line.startswith("<!-- example:"):
            continue
        where = "%s:%d" % (os.path.relpath(path, REPO), i + 1)
        m = MARKER.match(line)
        if not m:
            raise SystemExit("sdk_examples: %s: malformed marker %r" % (where, line))
        name, attrs = m.group(1), m.group(2)
        kind = name.split("-", 1)[0]
        if kind not in FENCES:
            raise SystemExit("sdk_examples: %s: %s: the name must start with py-, ts- or mcp-"
                             % (where, name))
        if name in seen:
            raise SystemExit("sdk_examples: %s: a second example %s" % (where, name))
        seen.add(name)
        fence = "```" + FENCES[kind]
        if i + 1 >= len(lines) or lines[i + 1] != fence:
            raise SystemExit("sdk_examples: %s: %s must be followed by a %s line" % (where, name, fence))
        try:
            end = lines.index("```", i + 2)
        except ValueError:
            raise SystemExit("sdk_examples: %s: %s's block is not closed" % (where, name))
        out.append(Example(name, kind, i + 1, "\n".join(lines[i + 2:end]) + "\n",
                           "stub-ok" in attrs.split(), re.findall(r'expect="([^"]*)"', attrs)))
    if not out:
        raise SystemExit("sdk_examples: no examples in %s" % path)
    return out


# ---- --check: no daemon --------------------------------------------------------------

def check_python(ex, tmp):
    path = os.path.join(tmp, ex.name.replace("-", "_") + ".py")
    with open(path, "w") as f:
        f.write(ex.code)
    try:
        py_compile.compile(path, doraise=True)
    except py_compile.PyCompileError as e:
        return str(e)
    sys.path.insert(0, PY_SDK)
    try:
        import forkd
    finally:
        sys.path.pop(0)
    for node in ast.walk(ast.parse(ex.code)):
        if isinstance(node, ast.ImportFrom) and node.module == "forkd":
            missing = [a.name for a in node.names if not hasattr(forkd, a.name)]
            if missing:
                return "forkd has no %s" % ", ".join(missing)
    return None


def check_mcp(ex):
    try:
        servers = json.loads(ex.code)["mcpServers"]
        (name, srv), = servers.items()
        assert isinstance(srv["command"], str) and srv["command"], "no command"
        assert all(isinstance(a, str) for a in srv.get("args", [])), "args must be strings"
        assert all(isinstance(v, str) for v in srv.get("env", {}).values()), "env must be strings"
        assert srv.get("args", [None])[0] == "mcp", "args must start with mcp"
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        return "not an MCP host configuration with one server: %s" % (e or type(e).__name__)
    return None


def ts_project(examples, tmp, emit):
    """A TypeScript project of the ts- blocks in tmp; returns tsc's complaint or None."""
    tsc = os.path.join(TS_SDK, "node_modules", "typescript", "bin", "tsc")
    if not os.path.exists(os.path.join(TS_SDK, "dist", "src", "index.d.ts")) or not os.path.exists(tsc):
        return "the TypeScript SDK is not built (npm ci --prefix sdk/typescript)"
    os.makedirs(os.path.join(tmp, "node_modules"), exist_ok=True)
    link = os.path.join(tmp, "node_modules", "forkd")
    if not os.path.islink(link):
        os.symlink(TS_SDK, link)
    with open(os.path.join(tmp, "package.json"), "w") as f:
        json.dump({"private": True, "type": "module"}, f)
    with open(os.path.join(tmp, "tsconfig.json"), "w") as f:
        json.dump({"compilerOptions": {
            "target": "ES2022", "lib": ["ES2022", "esnext.disposable"], "module": "NodeNext",
            "moduleResolution": "NodeNext", "strict": True, "outDir": "out",
            "types": ["node"], "typeRoots": [os.path.join(TS_SDK, "node_modules", "@types")],
            "noEmit": not emit, "skipLibCheck": True}, "files": [e.name + ".ts" for e in examples]}, f)
    for e in examples:
        with open(os.path.join(tmp, e.name + ".ts"), "w") as f:
            f.write(e.code)
    r = subprocess.run(["node", tsc, "-p", "."], capture_output=True, text=True, timeout=300,
                       cwd=tmp)
    if r.returncode != 0:
        return (r.stdout + r.stderr).strip()
    return None


def check(examples):
    failed = 0
    with tempfile.TemporaryDirectory(prefix="forkd-sdk-ex-") as tmp:
        results = {}
        for ex in examples:
            if ex.kind == "py":
                results[ex.name] = check_python(ex, tmp)
            elif ex.kind == "mcp":
                results[ex.name] = check_mcp(ex)
        ts = [e for e in examples if e.kind == "ts"]
        if ts:
            why = ts_project(ts, os.path.join(tmp, "ts"), emit=False)
            for e in ts:
                # tsc names the file of each error: blame the blocks it names, or all of them.
                named = why and any(o.name + ".ts" in why for o in ts)
                results[e.name] = why if why and (not named or e.name + ".ts" in why) else None
        for ex in examples:
            why = results[ex.name]
            failed += why is not None
            print("ok   %s (line %d)" % (ex.name, ex.line) if why is None
                  else "FAIL %s (line %d): %s" % (ex.name, ex.line, why))
    return failed


# ---- running them against a daemon ------------------------------------------------------

MCP_RUNNER = r"""
import { pathToFileURL } from 'node:url';
const [sdk, cfgPath] = process.argv.slice(2);
const { Client } = await import(pathToFileURL(sdk + '/dist/esm/client/index.js'));
const { StdioClientTransport } = await import(pathToFileURL(sdk + '/dist/esm/client/stdio.js'));
const srv = JSON.parse((await import('node:fs')).readFileSync(cfgPath, 'utf8'));
const transport = new StdioClientTransport({ command: srv.command, args: srv.args ?? [],
  env: { PATH: process.env.PATH, HOME: process.env.HOME ?? '/', ...(srv.env ?? {}) }, stderr: 'inherit' });
const client = new Client({ name: 'forkd-sdk-docs', version: '0.0.0' });
await client.connect(transport);
const info = client.getServerVersion();
console.log('server', info.name, info.version);
const { tools } = await client.listTools();
console.log('tools', tools.map((t) => t.name).join(' '));
const r = await client.callTool({ name: 'sandbox_list', arguments: {} });
if (r.isError) throw new Error('sandbox_list: ' + r.content[0].text);
console.log('sandbox_list', JSON.parse(r.content[0].text).sandboxes.length, 'sandboxes');
await client.close();
"""


def run_one(ex, tmp, env, timeout):
    """(output, why it failed or None)."""
    if ex.kind == "py":
        path = os.path.join(tmp, ex.name + ".py")
        with open(path, "w") as f:
            f.write(ex.code)
        cmd = [sys.executable, path]
        env = dict(env, PYTHONPATH=PY_SDK)
    elif ex.kind == "ts":
        cmd = ["node", os.path.join(tmp, "ts", "out", ex.name + ".js")]
    else:
        srv = next(iter(json.loads(ex.code)["mcpServers"].values()))
        build = os.environ.get("FORKD_BUILD", os.path.join(REPO, "build"))
        command = srv["command"]
        if "/" not in command:
            command = shutil.which(command, path=build + os.pathsep + env.get("PATH", "")) or command
        srv = dict(srv, command=command, env=dict(srv.get("env", {})))
        for k in ("FORKD_URL", "FORKD_TOKEN"):
            if env.get(k):
                srv["env"][k] = env[k]
        if not os.path.isdir(MCP_CLIENT):
            return "", "the MCP client is missing (npm ci --prefix tests/mcp)"
        cfg, runner = os.path.join(tmp, ex.name + ".json"), os.path.join(tmp, "mcp_host.mjs")
        with open(cfg, "w") as f:
            json.dump(srv, f)
        with open(runner, "w") as f:
            f.write(MCP_RUNNER)
        cmd = ["node", runner, MCP_CLIENT, cfg]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return out, "no end after %d s" % timeout
    out = r.stdout + r.stderr
    if r.returncode != 0:
        return out, "exit %d" % r.returncode
    want = list(ex.expect)
    if ex.kind == "mcp":
        want += ["tools " + " ".join(MCP_TOOLS)]
    missing = [w for w in want if w not in r.stdout]
    if missing:
        return out, "did not print %s" % ", ".join(repr(w) for w in missing)
    return out, None


def run(examples, timeout, verbose):
    env = dict(os.environ)
    if not env.get("FORKD_URL"):
        raise SystemExit("sdk_examples: set FORKD_URL (and FORKD_TOKEN, FORKD_TAG) to the daemon to run them against")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="forkd-sdk-ex-") as tmp:
        ts = [e for e in examples if e.kind == "ts"]
        ts_why = ts_project(ts, os.path.join(tmp, "ts"), emit=True) if ts else None
        for ex in examples:
            if ex.kind == "ts" and ts_why:
                out, why = "", "does not compile: " + ts_why
            else:
                out, why = run_one(ex, tmp, env, timeout)
            failed += why is not None
            print("ok   %s" % ex.name if why is None else "FAIL %s: %s" % (ex.name, why), flush=True)
            if why is not None or verbose:
                for line in out.rstrip().splitlines()[-25:]:
                    print("     | " + line)
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc", default=DOC, help="the page (default docs/SDK.md)")
    ap.add_argument("--list", action="store_true", help="list the examples and stop")
    ap.add_argument("--check", action="store_true", help="compile and type-check only, no daemon")
    ap.add_argument("--only", help="comma-separated names")
    ap.add_argument("--stub-ok", action="store_true",
                    help="only the examples marked stub-ok (an agent that answers ping only)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per example (default 900)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every example's output")
    args = ap.parse_args()
    examples = extract(args.doc)
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {e.name for e in examples}
        if unknown:
            ap.error("no example %s" % ", ".join(sorted(unknown)))
        examples = [e for e in examples if e.name in names]
    if args.stub_ok:
        examples = [e for e in examples if e.stub_ok]
    if args.list:
        for e in examples:
            print("%-10s line %-4d %s%s" % (e.name, e.line, "stub-ok " if e.stub_ok else "",
                                             " ".join("expect=%r" % x for x in e.expect)))
        return 0
    failed = check(examples) if args.check else run(examples, args.timeout, args.verbose)
    print("%d passed, %d failed" % (len(examples) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
