/**
 * The SDK against small local servers (no daemon needed): kept-alive
 * connections, a request sent again once when the server had closed the idle
 * connection, the base URL's path prefix, a timeout on every call, statuses
 * mapped to error classes, request encoding, the token rules, https with
 * FORKD_CA_CERT, and await using. The Python suite's test_transport.py twin.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import {
  AgentError,
  AgentUnreachable,
  AuthError,
  BadRequest,
  Conflict,
  ConnectionFailed,
  Controller,
  ForkdError,
  isLoopback,
  NotAvailable,
  NotFound,
  Sandbox,
  ServerError,
  errorFor,
} from "../src/index.js";
import { commandResult, entries } from "../src/sandbox.js";
import { defaultTokenPath, lookupToken } from "../src/token.js";

interface Seen {
  port: number;
  line: string;
  headers: Record<string, string>;
  body: Buffer;
  /** 0 for the first request on its connection, 1 for the next... */
  n: number;
}

interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /**
   * "close": answer, then close the connection (as an idle timeout would);
   * "silent": never answer; "drop": close the connection without an answer.
   */
  then?: "keep" | "close" | "silent" | "drop";
}

type Handler = (r: Seen) => Answer;

/** A JSON echo of the request line's path: {"path": ...}. */
const echo: Handler = (r) => ({ body: JSON.stringify({ path: r.line.split(" ")[1] }) });

/** An HTTP/1.1 server on 127.0.0.1 answering each request with `handler`; records what came. */
class Server {
  readonly seen: Seen[] = [];
  private readonly srv: net.Server;
  private readonly socks = new Set<net.Socket>();

  private constructor(handler: Handler) {
    this.srv = net.createServer((sock) => {
      this.socks.add(sock);
      sock.on("close", () => this.socks.delete(sock));
      sock.on("error", () => {});
      let buf = Buffer.alloc(0);
      let n = 0;
      sock.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const head = buf.subarray(0, end).toString("latin1").split("\r\n");
          const headers: Record<string, string> = {};
          for (const h of head.slice(1)) {
            const i = h.indexOf(":");
            headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
          }
          const len = Number(headers["content-length"] ?? 0);
          if (buf.length < end + 4 + len) return;
          const body = buf.subarray(end + 4, end + 4 + len);
          buf = buf.subarray(end + 4 + len);
          const r: Seen = { port: sock.remotePort ?? 0, line: head[0] ?? "", headers, body, n: n++ };
          this.seen.push(r);
          const a = handler(r);
          if (a.then === "silent") return;
          if (a.then === "drop") {
            sock.destroy();
            return;
          }
          const payload = Buffer.from(a.body ?? "");
          const hdrs = { "Content-Type": "application/json", ...a.headers, "Content-Length": String(payload.length) };
          const text = Object.entries(hdrs)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join("");
          sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 ${a.status ?? 200} X\r\n${text}\r\n`), payload]));
          if (a.then === "close") sock.end();
        }
      });
    });
  }

  static async start(handler: Handler = echo): Promise<Server> {
    const s = new Server(handler);
    await new Promise<void>((resolve) => s.srv.listen(0, "127.0.0.1", resolve));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.srv.address() as net.AddressInfo).port}`;
  }

  ports(): number[] {
    return this.seen.map((s) => s.port);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const s of this.socks) s.destroy();
    await new Promise<void>((resolve) => this.srv.close(() => resolve()));
  }
}

test("one connection is kept for calls in turn", async () => {
  await using srv = await Server.start();
  const ctl = new Controller(srv.url, { token: "t" });
  for (let i = 0; i < 5; i++) assert.deepEqual(await ctl.healthz(), { path: "/healthz" });
  assert.equal(new Set(srv.ports()).size, 1);
  ctl.close();
  await ctl.version();
  assert.equal(new Set(srv.ports()).size, 2);
  // Concurrent calls each get a connection; the idle ones are kept.
  const got = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => ctl.ping(`sb-${i}`)));
  assert.deepEqual(
    got.map((g) => (g as unknown as { path: string }).path),
    [0, 1, 2, 3, 4, 5].map((i) => `/v1/sandboxes/sb-${i}/ping`),
  );
  assert.ok(new Set(srv.ports()).size <= 8);
  ctl.close();
});

test("a request on a connection the server closed is sent again, once", async () => {
  await using srv = await Server.start((r) => ({ ...echo(r), then: "close" }));
  const ctl = new Controller(srv.url, { token: "t" });
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await ctl.healthz(), { path: "/healthz" });
    await new Promise((r) => setTimeout(r, i * 20));
  }
  // The server closes each connection after its answer. A call that goes
  // out on the kept connection before the client has seen that close
  // reaches the server unanswered and is sent again on a new one (seen
  // under emulation); the first call cannot race. So each answered call has
  // a connection of its own, and at most one more request per later call.
  const lines = srv.seen.map((s) => s.line);
  assert.ok(lines.length >= 3 && lines.length <= 5, `requests seen: ${lines.length}`);
  assert.ok(lines.every((l) => l === "GET /healthz HTTP/1.1"), String(lines));
  assert.equal(new Set(srv.ports()).size, 3);
  ctl.close();
});

test("a kept connection that fails before any answer is retried; a new one is not", async () => {
  // The server closes each connection when its second request arrives: the
  // race of a daemon closing an idle connection just as a request goes out.
  await using srv = await Server.start((r) => (r.n === 0 ? echo(r) : { then: "drop" }));
  const ctl = new Controller(srv.url, { token: "t" });
  for (let i = 0; i < 3; i++) assert.deepEqual(await ctl.healthz(), { path: "/healthz" });
  assert.deepEqual(
    srv.seen.map((s) => s.n),
    [0, 1, 0, 1, 0],
  );
  assert.equal(new Set(srv.ports()).size, 3);
  ctl.close();
  await using dropper = await Server.start(() => ({ then: "drop" }));
  await assert.rejects(new Controller(dropper.url, { token: "t" }).healthz(), (e: unknown) => {
    assert.ok(e instanceof ConnectionFailed);
    assert.match(e.message, /socket hang up/);
    return true;
  });
  assert.equal(dropper.seen.length, 1);
});

test("the base URL's path prefix", async () => {
  await using srv = await Server.start();
  const ctl = new Controller(srv.url + "/forkd/", { token: "t" });
  assert.equal(ctl.baseUrl, srv.url + "/forkd");
  assert.deepEqual(await ctl.sandboxes("py"), { path: "/forkd/v1/sandboxes?tag=py" });
  assert.deepEqual(await new Controller(srv.url + "/a/b", { token: "t" }).healthz(), { path: "/a/b/healthz" });
  ctl.close();
});

test("base URLs and options", () => {
  assert.equal(new Controller("https://example.com/forkd", { token: "t" }).baseUrl, "https://example.com:443/forkd");
  assert.equal(new Controller("http://[::1]:8889", { token: "t" }).baseUrl, "http://[::1]:8889");
  assert.equal(new Controller({ baseUrl: "http://h", token: "t" }).baseUrl, "http://h:80");
  for (const bad of ["ftp://x", "example.com:80", "http://h:80/?q=1", "http://h:99999", "http://u:p@h/"]) {
    assert.throws(() => new Controller(bad, { token: "t" }), TypeError, bad);
  }
  for (const timeout of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new Controller("http://h", { token: "t", timeout }), RangeError);
  }
});

test("every call has a timeout", async () => {
  await using srv = await Server.start(() => ({ then: "silent" }));
  const t0 = Date.now();
  await assert.rejects(new Controller(srv.url, { token: "t", timeout: 0.5 }).healthz(), (e: unknown) => {
    assert.ok(e instanceof ConnectionFailed);
    assert.match(e.message, /within 0\.5 s/);
    assert.equal(e.status, undefined);
    return true;
  });
  assert.ok(Date.now() - t0 < 5000);
  // exec waits for the command's own timeout and 30 s more: the call's deadline follows it.
  const ctl = new Controller(srv.url, { token: "t", timeout: 0.2 });
  await assert.rejects(ctl.request("GET", "/x", { timeout: 0.3 }), /within 0\.3 s/);
  ctl.close();
});

test("connection refused", async () => {
  await assert.rejects(new Controller("http://127.0.0.1:1", { token: "t" }).healthz(), (e: unknown) => {
    assert.ok(e instanceof ConnectionFailed);
    assert.match(e.message, /cannot reach the forkd daemon at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
    return true;
  });
});

test("statuses map to error classes", async () => {
  const cases: Array<[number, typeof ForkdError]> = [
    [400, BadRequest],
    [401, AuthError],
    [404, NotFound],
    [405, BadRequest],
    [409, Conflict],
    [413, BadRequest],
    [418, ForkdError],
    [422, AgentError],
    [500, ServerError],
    [501, NotAvailable],
    [502, AgentUnreachable],
    [503, ServerError],
    [504, AgentUnreachable],
    [507, ServerError],
  ];
  await using srv = await Server.start((r) => {
    const status = Number(r.line.split(" ")[1]?.slice(1));
    if (status === 599) return { status: 500, body: "<html>oops</html>", headers: { "Content-Type": "text/html" } };
    return { status, body: JSON.stringify({ error: `failed ${status}`, traceback: "Traceback..." }) };
  });
  const ctl = new Controller(srv.url, { token: "t" });
  for (const [status, cls] of cases) {
    await assert.rejects(ctl.request("GET", `/${status}`), (e: unknown) => {
      assert.ok(e instanceof cls && e instanceof ForkdError && e instanceof Error, `${status}`);
      assert.equal(e.constructor, cls, `${status}`);
      assert.equal(e.status, status);
      assert.equal(e.message, `failed ${status}`);
      assert.equal(e.name, cls.name);
      assert.equal(String(e), `${cls.name}: failed ${status} (HTTP ${status})`);
      return true;
    });
    assert.equal(errorFor(status, "m").constructor, cls);
  }
  await assert.rejects(ctl.request("GET", "/422"), (e: unknown) => e instanceof AgentError && e.traceback === "Traceback...");
  await assert.rejects(ctl.request("GET", "/599"), (e: unknown) => {
    assert.ok(e instanceof ServerError);
    assert.equal(e.message, 'HTTP 500: "<html>oops</html>"');
    assert.deepEqual(e.body, {});
    return true;
  });
  ctl.close();
});

test("answers are decoded by their type", async () => {
  await using srv = await Server.start((r) => {
    const p = r.line.split(" ")[1];
    if (p === "/text") return { body: "a b\n", headers: { "Content-Type": "text/plain; version=0.0.4" } };
    if (p === "/bytes") return { body: Buffer.from([0, 1, 2]), headers: { "Content-Type": "application/octet-stream" } };
    if (p === "/bad") return { body: "{not json" };
    return echo(r);
  });
  const ctl = new Controller(srv.url, { token: "t" });
  assert.equal(await ctl.request("GET", "/text"), "a b\n");
  assert.deepEqual([...(await ctl.request<Uint8Array>("GET", "/bytes"))], [0, 1, 2]);
  assert.deepEqual(Buffer.from(await ctl.request<Uint8Array>("GET", "/x", { expectJson: false })).toString(), '{"path":"/x"}');
  await assert.rejects(ctl.request("GET", "/bad"), /the daemon sent invalid JSON/);
  ctl.close();
});

test("what requests carry", async () => {
  await using srv = await Server.start(() => ({ body: JSON.stringify({ bytes: 3, path: "/p", stdout: "", stderr: "", exit_code: 0, timed_out: false }) }));
  const ctl = new Controller(srv.url, { token: "secret" });
  const sb = new Sandbox(ctl, { id: "sb-x", snapshot_tag: "t", index: 0, state: "running", oom_killed: false, pid: 1, run_dir: "/r", created_at: "" });
  await sb.ping();
  await sb.commands.run("echo hi", { timeout: 5, env: { A: "1" }, cwd: "/tmp", stdin: "in" });
  await sb.commands.run(["ls", "-l"], { stdin: new Uint8Array([0, 255]) });
  await sb.files.write("/a dir/f", "héllo", { mode: 0o640 });
  await sb.files.remove("/a", { recursive: true });
  await ctl.deleteSnapshot("s", { cascade: true });
  await ctl.createSandboxes("py", { n: 2, perChildNetns: true, memoryLimitMib: 64 });
  await ctl.branch("sb-x", { mode: "diff" });
  await new Controller(srv.url, { token: "" }).healthz();
  const [ping, run1, run2, write, remove, delSnap, create, branch, noauth] = srv.seen;
  assert.equal(ping?.line, "POST /v1/sandboxes/sb-x/ping HTTP/1.1");
  assert.equal(ping?.headers["authorization"], "Bearer secret");
  assert.equal(ping?.headers["content-type"], "application/json");
  assert.equal(ping?.headers["origin"], undefined);
  assert.equal(ping?.body.toString(), "{}");
  assert.deepEqual(JSON.parse(run1!.body.toString()), { timeout: 5, cmd: "echo hi", env: { A: "1" }, cwd: "/tmp", stdin: "in" });
  assert.deepEqual(JSON.parse(run2!.body.toString()), { timeout: 60, argv: ["ls", "-l"], stdin_b64: "AP8=" });
  assert.equal(write?.line, "PUT /v1/sandboxes/sb-x/files?path=%2Fa%20dir%2Ff&mode=640 HTTP/1.1");
  assert.equal(write?.headers["content-type"], "application/octet-stream");
  assert.equal(write?.body.toString("utf8"), "héllo");
  assert.equal(remove?.line, "DELETE /v1/sandboxes/sb-x/files?path=%2Fa&recursive=true HTTP/1.1");
  assert.equal(remove?.headers["content-length"], undefined); // no body on a DELETE
  assert.equal(delSnap?.line, "DELETE /v1/snapshots/s?cascade=true HTTP/1.1");
  assert.deepEqual(JSON.parse(create!.body.toString()), { snapshot_tag: "py", n: 2, per_child_netns: true, memory_limit_mib: 64 });
  assert.deepEqual(JSON.parse(branch!.body.toString()), { mode: "diff", wait: true });
  assert.equal(noauth?.headers["authorization"], undefined);
  ctl.close();
});

test("await using kills the sandbox; kill twice sends one DELETE", async () => {
  await using srv = await Server.start((r) =>
    r.line.startsWith("POST /v1/sandboxes ")
      ? { status: 201, body: JSON.stringify([{ id: "sb-one", snapshot_tag: "py", index: 0, state: "running" }]) }
      : { body: "{}" },
  );
  await using ctl = new Controller(srv.url, { token: "t" });
  {
    await using sb = await Sandbox.create("py", { controller: ctl });
    assert.equal(sb.id, "sb-one");
    assert.equal(String(sb), "Sandbox(sb-one, tag=py)");
  }
  assert.deepEqual(
    srv.seen.map((s) => s.line),
    ["POST /v1/sandboxes HTTP/1.1", "DELETE /v1/sandboxes/sb-one HTTP/1.1"],
  );
  const sb = await Sandbox.create("py", { controller: ctl });
  await sb.kill();
  await sb.kill();
  assert.equal(srv.seen.filter((s) => s.line.startsWith("DELETE")).length, 2);
});

test("CommandResult and EntryInfo from the daemon's answers", () => {
  assert.deepEqual(commandResult({ stdout: "a", stderr: "b", exit_code: -9, timed_out: true, stdout_truncated: true }), {
    stdout: "a",
    stderr: "b",
    exitCode: -9,
    timedOut: true,
    stdoutTruncated: true,
    stderrTruncated: false,
  });
  const listing = {
    path: "/w",
    truncated: false,
    entries: [
      { name: "a.txt", type: "file" as const, size: 3, mode: 0o600, mtime: 1.5 },
      { name: "sub", type: "dir" as const, size: 4096, mode: 0o755, mtime: 2 },
    ],
  };
  for (const dir of ["/w", "/w/"]) {
    assert.deepEqual(entries(listing, dir), [
      { name: "a.txt", path: "/w/a.txt", type: "file", size: 3, mode: 0o600, mtime: 1.5, isDir: false },
      { name: "sub", path: "/w/sub", type: "dir", size: 4096, mode: 0o755, mtime: 2, isDir: true },
    ]);
  }
});

test("the token found here stays on loopback", () => {
  for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0:0:0:0:0:0:1"]) {
    assert.ok(isLoopback(host), host);
  }
  for (const host of ["127.0.0.1.nip.io", "localhost.example.com", "localhost.", "10.0.0.1", "example.com", "::2", "::ffff:127.0.0.1"]) {
    assert.ok(!isLoopback(host), host);
  }
  assert.equal(defaultTokenPath(0, {}), "/var/lib/forkd/token");
  assert.equal(defaultTokenPath(1000, { XDG_STATE_HOME: "/s" }), "/s/forkd/token");
  assert.match(defaultTokenPath(1000, {}), /\/\.local\/state\/forkd\/token$/);
  const dir = mkdtempSync(join(tmpdir(), "forkd-ts-"));
  try {
    execFileSync("sh", ["-c", `mkdir -p ${dir}/forkd && echo ' from-file ' > ${dir}/forkd/token`]);
    const env = { XDG_STATE_HOME: dir };
    assert.equal(lookupToken("127.0.0.1", env, 1000), "from-file");
    assert.equal(lookupToken("localhost", env, 1000), "from-file");
    assert.equal(lookupToken("127.0.0.1.nip.io", env, 1000), undefined);
    assert.equal(lookupToken("example.com", env, 1000), undefined);
    assert.equal(lookupToken("example.com", { ...env, FORKD_TOKEN: "env" }, 1000), "env");
    assert.equal(lookupToken("127.0.0.1", { ...env, FORKD_TOKEN: "env" }, 1000), "env");
    assert.equal(lookupToken("127.0.0.1", { XDG_STATE_HOME: "/nonexistent" }, 1000), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // A token given is used as it is; "" sends none.
  assert.equal(new Controller("http://example.com", { token: "x" }).token, "x");
  assert.equal(new Controller("http://127.0.0.1", { token: "" }).token, undefined);
});

function haveOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test("https: FORKD_CA_CERT or ca trusts a certificate of one's own", { skip: !haveOpenssl() && "no openssl" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "forkd-ts-tls-"));
  const key = join(dir, "key.pem");
  const crt = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
     "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", crt],
    { stdio: "ignore" },
  );
  const srv = https.createServer({ key: readFileSync(key), cert: readFileSync(crt) }, (req, res) => {
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const url = `https://127.0.0.1:${(srv.address() as net.AddressInfo).port}/pre`;
  const saved = process.env["FORKD_CA_CERT"];
  try {
    delete process.env["FORKD_CA_CERT"];
    await assert.rejects(new Controller(url, { token: "t" }).healthz(), (e: unknown) => {
      assert.ok(e instanceof ConnectionFailed);
      assert.match(e.message, /self[- ]signed certificate/);
      return true;
    });
    assert.deepEqual(await new Controller(url, { token: "t", ca: readFileSync(crt) }).healthz(), { path: "/pre/healthz" });
    process.env["FORKD_CA_CERT"] = crt;
    const ctl = new Controller(url, { token: "t" });
    assert.deepEqual(await ctl.healthz(), { path: "/pre/healthz" });
    ctl.close();
    process.env["FORKD_CA_CERT"] = join(dir, "missing.pem");
    assert.throws(() => new Controller(url, { token: "t" }), /FORKD_CA_CERT: cannot read/);
  } finally {
    if (saved === undefined) delete process.env["FORKD_CA_CERT"];
    else process.env["FORKD_CA_CERT"] = saved;
    srv.closeAllConnections();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});
