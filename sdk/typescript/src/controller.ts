/**
 * Controller: one method per endpoint of forkd serve's API v1
 * (docs/openapi.yaml), each a promise. The TypeScript twin of the Python
 * SDK's Controller (sdk/python/forkd/client.py): the same defaults, the same
 * token rules, the same errors.
 */

import "./dispose.js";

import { readFileSync } from "node:fs";

import { ForkdError, type JSONObject, type JSONValue, errorFor } from "./errors.js";
import { lookupToken } from "./token.js";
import { type Endpoint, type HttpResponse, Transport, parseBaseUrl } from "./transport.js";
import type {
  BranchMode,
  DeletedSnapshot,
  DirListing,
  EvalResult,
  ExecResponse,
  PingResult,
  RemovedFile,
  SandboxInfo,
  SnapshotInfo,
  VersionInfo,
  WrittenFile,
} from "./types.js";

export const DEFAULT_URL = "http://127.0.0.1:8889";

export interface ControllerOptions {
  /** "http[s]://HOST[:PORT][/PREFIX]"; default $FORKD_URL, else http://127.0.0.1:8889. */
  baseUrl?: string;
  /**
   * Bearer token. Default: $FORKD_TOKEN, else, for a daemon on loopback only,
   * the token `forkd serve` made in its default state directory
   * (/var/lib/forkd/token as root). "" sends none.
   */
  token?: string;
  /** Seconds, for calls that have no timeout of their own (default 60). */
  timeout?: number;
  /**
   * PEM CA certificate(s) to trust for https instead of the system's.
   * Default: the file $FORKD_CA_CERT names, when set.
   */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Idle connections kept for reuse (default 8). */
  pool?: number;
}

/** The options of one low-level request (Controller.request). */
export interface RequestOptions {
  /** A JSON body. */
  body?: JSONValue | object;
  /** Raw bytes (or UTF-8 text) sent as application/octet-stream. */
  raw?: Uint8Array | string;
  query?: Record<string, string>;
  /** Seconds; default the controller's. */
  timeout?: number;
  /** false: return the answer's bytes, whatever its type. */
  expectJson?: boolean;
}

/** Options of POST /v1/sandboxes (Sandbox.create takes them too). */
export interface SpawnOptions {
  /** Each sandbox in its own network namespace (SandboxInfo netns, guest_addr). */
  perChildNetns?: boolean;
  /** A memory cgroup per sandbox, 16 to 1048576 MiB; one over it is OOM-killed alone. */
  memoryLimitMib?: number | null;
  liveFork?: boolean;
  hugepages?: boolean;
}

export interface CreateSandboxesOptions extends SpawnOptions {
  /** How many sandboxes, 1 to 1000 (default 1). */
  n?: number;
  /** Seconds (default 600). */
  timeout?: number;
}

export interface CreateSnapshotOptions {
  /** "test-guest" (default) boots `guest` from the daemon's --guest-dir; "image" boots `image`. */
  kind?: "test-guest" | "image";
  guest?: string;
  image?: string;
  memMib?: number;
  vcpus?: number;
  cmdline?: string;
}

export interface ExecOptions {
  /** A shell command (/bin/sh -c); give this or argv. */
  cmd?: string;
  argv?: readonly string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Text, or bytes (sent base64-encoded). */
  stdin?: string | Uint8Array;
  /** Seconds the command may run (default 60); the call waits 30 s longer. */
  timeout?: number;
}

export interface BranchOptions {
  /** Default "<snapshot>-<8 hex digits>". */
  tag?: string;
  /** "live" (default), "full" or "diff". */
  mode?: BranchMode;
  /** false: answer at once with state "writing" (default true). */
  wait?: boolean;
  /** Seconds (default 900). */
  timeout?: number;
}

/** A path segment, percent-encoded: the daemon checks ids and tags itself. */
function seg(s: string): string {
  return encodeURIComponent(String(s));
}

function queryString(q: Record<string, string>): string {
  return Object.entries(q)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
}

function caFromEnvironment(): Buffer | undefined {
  const file = process.env["FORKD_CA_CERT"];
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`FORKD_CA_CERT: cannot read ${file}: ${(e as Error).message}`);
  }
}

/**
 * A client of one forkd daemon. Calls may run concurrently (each on a
 * connection of its own, kept alive afterwards). `close()`, or `await using`,
 * closes the kept connections; idle ones never keep the process alive.
 */
export class Controller {
  readonly baseUrl: string;
  /** What is sent as the bearer token (undefined: none). */
  readonly token: string | undefined;
  /** Seconds. */
  readonly timeout: number;
  private readonly ep: Endpoint;
  private readonly transport: Transport;

  /** `new Controller()`, `new Controller("http://host:8889")` or `new Controller({baseUrl, token, ...})`. */
  constructor(baseUrl?: string | ControllerOptions, options: ControllerOptions = {}) {
    const opts: ControllerOptions = typeof baseUrl === "string" ? { ...options, baseUrl } : { ...(baseUrl ?? options) };
    this.ep = parseBaseUrl(opts.baseUrl || process.env["FORKD_URL"] || DEFAULT_URL);
    this.baseUrl = this.ep.url;
    const token = opts.token ?? lookupToken(this.ep.host);
    this.token = token ? token : undefined;
    const timeout = opts.timeout ?? 60;
    if (!(typeof timeout === "number" && timeout > 0 && Number.isFinite(timeout))) {
      throw new RangeError("timeout must be a positive number of seconds");
    }
    this.timeout = timeout;
    const ca = opts.ca ?? (this.ep.scheme === "https" ? caFromEnvironment() : undefined);
    this.transport = new Transport(this.ep, { ca, pool: opts.pool });
  }

  toString(): string {
    return `Controller(${this.baseUrl})`;
  }

  /**
   * One HTTP request to `path` (under the base URL): the decoded JSON, text for
   * a text/* answer, else the bytes (always the bytes with expectJson: false).
   * Throws a ForkdError subclass for any status >= 400, ConnectionFailed when
   * the daemon cannot be reached or does not answer within the timeout.
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    let p = path;
    if (options.query && Object.keys(options.query).length > 0) p += "?" + queryString(options.query);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers["Authorization"] = "Bearer " + this.token;
    let data: Buffer | undefined;
    if (options.raw !== undefined) {
      data = typeof options.raw === "string" ? Buffer.from(options.raw, "utf8") : Buffer.from(options.raw);
      headers["Content-Type"] = "application/octet-stream";
    } else if (options.body !== undefined) {
      data = Buffer.from(JSON.stringify(options.body), "utf8");
      headers["Content-Type"] = "application/json";
    }
    const timeout = options.timeout ?? this.timeout;
    const resp = await this.transport.request(method, p, headers, data, timeout);
    return decode(resp, options.expectJson ?? true) as T;
  }

  /** Close the kept-alive connections (a later call opens new ones). */
  close(): void {
    this.transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  // ---- service ----

  healthz(): Promise<{ status: string }> {
    return this.request("GET", "/healthz");
  }

  version(): Promise<VersionInfo> {
    return this.request("GET", "/version");
  }

  /** The Prometheus text. */
  metrics(): Promise<string> {
    return this.request("GET", "/metrics");
  }

  // ---- snapshots ----

  snapshots(): Promise<SnapshotInfo[]> {
    return this.request("GET", "/v1/snapshots");
  }

  /**
   * Start making snapshot `tag` (202: state "creating"); poll snapshot(tag)
   * until "ready" or "failed". BadRequest when the guest or image is missing.
   */
  createSnapshot(tag: string, options: CreateSnapshotOptions = {}): Promise<SnapshotInfo> {
    const body: JSONObject = { tag, kind: options.kind ?? "test-guest" };
    if (options.guest !== undefined) body["guest"] = options.guest;
    if (options.image !== undefined) body["image"] = options.image;
    if (options.memMib !== undefined) body["mem_mib"] = options.memMib;
    if (options.vcpus !== undefined) body["vcpus"] = options.vcpus;
    if (options.cmdline !== undefined) body["cmdline"] = options.cmdline;
    return this.request("POST", "/v1/snapshots", { body });
  }

  snapshot(tag: string): Promise<SnapshotInfo> {
    return this.request("GET", "/v1/snapshots/" + seg(tag));
  }

  /** Delete a snapshot; `cascade` deletes the diff branches that need it too. */
  deleteSnapshot(tag: string, options: { cascade?: boolean } = {}): Promise<DeletedSnapshot> {
    return this.request("DELETE", "/v1/snapshots/" + seg(tag), options.cascade ? { query: { cascade: "true" } } : {});
  }

  /** A new snapshot of a running sandbox (state "writing" with wait: false). */
  branch(sandboxId: string, options: BranchOptions = {}): Promise<SnapshotInfo> {
    const body: JSONObject = { mode: options.mode ?? "live", wait: options.wait ?? true };
    if (options.tag !== undefined) body["tag"] = options.tag;
    return this.request("POST", `/v1/sandboxes/${seg(sandboxId)}/branch`, {
      body,
      timeout: options.timeout ?? 900,
    });
  }

  // ---- sandboxes ----

  /** POST /v1/sandboxes: the new sandboxes, all or none. */
  createSandboxes(snapshotTag: string, options: CreateSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const body: JSONObject = { snapshot_tag: snapshotTag, n: options.n ?? 1 };
    if (options.perChildNetns !== undefined) body["per_child_netns"] = options.perChildNetns;
    if (options.memoryLimitMib !== undefined) body["memory_limit_mib"] = options.memoryLimitMib;
    if (options.liveFork !== undefined) body["live_fork"] = options.liveFork;
    if (options.hugepages !== undefined) body["hugepages"] = options.hugepages;
    return this.request("POST", "/v1/sandboxes", { body, timeout: options.timeout ?? 600 });
  }

  /** Every sandbox (of snapshot `tag`), oldest first. */
  sandboxes(tag?: string): Promise<SandboxInfo[]> {
    return this.request("GET", "/v1/sandboxes", tag ? { query: { tag } } : {});
  }

  sandbox(sandboxId: string): Promise<SandboxInfo> {
    return this.request("GET", "/v1/sandboxes/" + seg(sandboxId));
  }

  deleteSandbox(sandboxId: string): Promise<JSONObject> {
    return this.request("DELETE", "/v1/sandboxes/" + seg(sandboxId));
  }

  ping(sandboxId: string): Promise<PingResult> {
    return this.request("POST", `/v1/sandboxes/${seg(sandboxId)}/ping`, { body: {} });
  }

  /** Run `argv` or `cmd` in the sandbox: the agent's answer (see Sandbox.commands.run). */
  exec(sandboxId: string, options: ExecOptions): Promise<ExecResponse> {
    const timeout = options.timeout ?? 60;
    const body: JSONObject = { timeout };
    if (options.argv !== undefined) body["argv"] = [...options.argv];
    if (options.cmd !== undefined) body["cmd"] = options.cmd;
    if (options.env !== undefined) body["env"] = { ...options.env };
    if (options.cwd !== undefined) body["cwd"] = options.cwd;
    if (typeof options.stdin === "string") body["stdin"] = options.stdin;
    else if (options.stdin !== undefined) body["stdin_b64"] = Buffer.from(options.stdin).toString("base64");
    return this.request("POST", `/v1/sandboxes/${seg(sandboxId)}/exec`, { body, timeout: timeout + 30 });
  }

  eval(sandboxId: string, code: string, options: { timeout?: number } = {}): Promise<EvalResult> {
    const timeout = options.timeout ?? 60;
    return this.request("POST", `/v1/sandboxes/${seg(sandboxId)}/eval`, {
      body: { code, timeout },
      timeout: timeout + 30,
    });
  }

  /** Write bytes (or text, as UTF-8) to `path` in the guest; `mode` e.g. 0o600. */
  writeFile(sandboxId: string, path: string, data: Uint8Array | string, options: { mode?: number } = {}): Promise<WrittenFile> {
    const query: Record<string, string> = { path };
    if (options.mode !== undefined) query["mode"] = options.mode.toString(8);
    return this.request("PUT", `/v1/sandboxes/${seg(sandboxId)}/files`, { raw: data, query });
  }

  async readFile(sandboxId: string, path: string): Promise<Uint8Array> {
    return this.request<Buffer>("GET", `/v1/sandboxes/${seg(sandboxId)}/files`, {
      query: { path },
      expectJson: false,
    });
  }

  /** {path, entries: [{name, type, size, mode, mtime}], truncated} of a directory. */
  listDir(sandboxId: string, path: string): Promise<DirListing> {
    return this.request("GET", `/v1/sandboxes/${seg(sandboxId)}/dir`, { query: { path } });
  }

  /** Remove a file, link or empty directory (a whole tree with recursive). */
  removeFile(sandboxId: string, path: string, options: { recursive?: boolean } = {}): Promise<RemovedFile> {
    const query: Record<string, string> = { path };
    if (options.recursive) query["recursive"] = "true";
    return this.request("DELETE", `/v1/sandboxes/${seg(sandboxId)}/files`, { query });
  }
}

function decode(resp: HttpResponse, expectJson: boolean): unknown {
  const { status, headers, body } = resp;
  if (status >= 400) {
    let obj: unknown;
    try {
      obj = JSON.parse(body.toString("utf8"));
    } catch {
      obj = undefined;
    }
    const isObj = typeof obj === "object" && obj !== null && !Array.isArray(obj);
    const msg = isObj ? (obj as JSONObject)["error"] : undefined;
    throw errorFor(
      status,
      typeof msg === "string" && msg ? msg : `HTTP ${status}: ${JSON.stringify(body.subarray(0, 200).toString("latin1"))}`,
      isObj ? (obj as JSONObject) : undefined,
    );
  }
  if (!expectJson) return body;
  const ctype = headers["content-type"] ?? "";
  if (!ctype.startsWith("application/json")) {
    return ctype.startsWith("text/") ? body.toString("utf8") : body;
  }
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new ForkdError(`the daemon sent invalid JSON: ${(e as Error).message}`, status);
  }
}
