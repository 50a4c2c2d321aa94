/**
 * Sandbox: one forked child, driven through the daemon. The TypeScript twin
 * of the Python SDK's Sandbox / AsyncSandbox (sdk/python/forkd/sandbox.py).
 */

import "./dispose.js";

import { Controller, type BranchOptions, type SpawnOptions } from "./controller.js";
import type { BranchMode, DirListing, EvalResult, ExecResponse, FileType, PingResult, SandboxInfo } from "./types.js";

/** What a command printed and how it ended. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  /** -N when signal N ended it; -9 when it was killed at its timeout. */
  exitCode: number | null;
  timedOut: boolean;
  /** The output was cut to fit the agent's limit. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export interface RunOptions {
  /** Seconds the command may run (default 60); then it is killed and timedOut is true. */
  timeout?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Text, or bytes. */
  stdin?: string | Uint8Array;
}

/** One entry of a directory listing, as lstat describes it in the guest. */
export interface EntryInfo {
  name: string;
  /** The listed directory joined with name. */
  path: string;
  /** "file", "dir", "symlink" (whatever it points to) or "other". */
  type: FileType;
  /** Bytes. */
  size: number;
  /** Permission bits (0o644...). */
  mode: number;
  /** Seconds since 1970. */
  mtime: number;
  isDir: boolean;
}

export interface SandboxOptions extends SpawnOptions {
  /** Default: a new Controller() (from $FORKD_URL, $FORKD_TOKEN). */
  controller?: Controller;
  /** Seconds the spawn may take (default 600). */
  timeout?: number;
}

export function commandResult(r: Partial<ExecResponse>): CommandResult {
  return {
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? "",
    exitCode: r.exit_code ?? null,
    timedOut: Boolean(r.timed_out),
    stdoutTruncated: Boolean(r.stdout_truncated),
    stderrTruncated: Boolean(r.stderr_truncated),
  };
}

export function entries(listing: DirListing, path: string): EntryInfo[] {
  const base = path.endsWith("/") ? path : path + "/";
  return listing.entries.map((e) => ({
    name: e.name,
    path: base + e.name,
    type: e.type,
    size: e.size,
    mode: e.mode,
    mtime: e.mtime,
    isDir: e.type === "dir",
  }));
}

export class Commands {
  constructor(private readonly sb: Sandbox) {}

  /** Run `cmd`: a shell string (/bin/sh -c), or an argv array. */
  async run(cmd: string | readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const what = typeof cmd === "string" ? { cmd } : { argv: cmd };
    return commandResult(await this.sb.controller.exec(this.sb.id, { ...options, ...what }));
  }
}

export class Files {
  constructor(private readonly sb: Sandbox) {}

  /** Write bytes (or text, as UTF-8) to `path` in the guest; the byte count. */
  async write(path: string, data: Uint8Array | string, options: { mode?: number } = {}): Promise<number> {
    return (await this.sb.controller.writeFile(this.sb.id, path, data, options)).bytes;
  }

  /** The bytes of `path` in the guest (a Buffer). */
  read(path: string): Promise<Uint8Array> {
    return this.sb.controller.readFile(this.sb.id, path);
  }

  /**
   * The entries of directory `path`, sorted by name (at most 10000:
   * controller.listDir() says whether more were left out).
   */
  async list(path: string): Promise<EntryInfo[]> {
    return entries(await this.sb.controller.listDir(this.sb.id, path), path);
  }

  /**
   * Remove a file, link or empty directory; with recursive, a directory and
   * all under it. A link is removed, never what it points to. AgentError when
   * the guest cannot (no such path, a non-empty directory...).
   */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.sb.controller.removeFile(this.sb.id, path, options);
  }
}

/**
 * A sandbox of the daemon.
 *
 *     await using sb = await Sandbox.create("py");
 *     console.log(await sb.eval("1 + 1"));
 *
 * Leaving the `await using` scope kills it (or call kill()).
 */
export class Sandbox {
  readonly controller: Controller;
  readonly id: string;
  /** As the daemon last described it (refresh() asks again). */
  info: SandboxInfo;
  readonly commands: Commands;
  readonly files: Files;
  private killed = false;

  /** From a SandboxInfo the daemon sent; Sandbox.create/connect/list make them. */
  constructor(controller: Controller, info: SandboxInfo) {
    this.controller = controller;
    this.info = info;
    this.id = info.id;
    this.commands = new Commands(this);
    this.files = new Files(this);
  }

  /** One new sandbox, a child of snapshot `tag`. */
  static async create(tag: string, options: SandboxOptions = {}): Promise<Sandbox> {
    const [sb] = await Sandbox.createMany(tag, 1, options);
    return sb as Sandbox;
  }

  /** `n` sandboxes of snapshot `tag` from one spawn request (all or none). */
  static async createMany(tag: string, n: number, options: SandboxOptions = {}): Promise<Sandbox[]> {
    const { controller = new Controller(), ...spawn } = options;
    const infos = await controller.createSandboxes(tag, { ...spawn, n });
    return infos.map((i) => new Sandbox(controller, i));
  }

  /** An existing sandbox by id (NotFound when the daemon has none). */
  static async connect(sandboxId: string, options: { controller?: Controller } = {}): Promise<Sandbox> {
    const controller = options.controller ?? new Controller();
    return new Sandbox(controller, await controller.sandbox(sandboxId));
  }

  /** Every sandbox of the daemon (of snapshot `tag`), running or exited, oldest first. */
  static async list(options: { tag?: string; controller?: Controller } = {}): Promise<Sandbox[]> {
    const controller = options.controller ?? new Controller();
    return (await controller.sandboxes(options.tag)).map((i) => new Sandbox(controller, i));
  }

  toString(): string {
    return `Sandbox(${this.id}, tag=${this.info.snapshot_tag})`;
  }

  async refresh(): Promise<SandboxInfo> {
    this.info = await this.controller.sandbox(this.id);
    return this.info;
  }

  /** "running" or "exited" ("starting" while its create still runs), asked afresh. */
  async state(): Promise<SandboxInfo["state"]> {
    return (await this.refresh()).state;
  }

  ping(): Promise<PingResult> {
    return this.controller.ping(this.id);
  }

  /**
   * Evaluate Python in the sandbox's warm interpreter: the repr of the value,
   * null for statements (printed output: evalFull). An exception in the code
   * is an AgentError whose `traceback` says where.
   */
  async eval(code: string, options: { timeout?: number } = {}): Promise<string | null> {
    return (await this.evalFull(code, options)).result;
  }

  evalFull(code: string, options: { timeout?: number } = {}): Promise<EvalResult> {
    return this.controller.eval(this.id, code, options);
  }

  /**
   * Snapshot this running sandbox as it is now; the new snapshot's tag.
   * Sandbox.create(tag) then starts sandboxes with this one's memory, files
   * and interpreter state; this one runs on unchanged.
   */
  async branch(options: BranchOptions & { mode?: BranchMode } = {}): Promise<string> {
    return (await this.controller.branch(this.id, options)).tag;
  }

  /** Stop the sandbox and remove it (a second call does nothing). */
  async kill(): Promise<void> {
    if (this.killed) return;
    await this.controller.deleteSandbox(this.id);
    this.killed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
