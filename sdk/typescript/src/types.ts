/**
 * What the daemon answers, as docs/openapi.yaml describes it. Field names are
 * the API's own (snake_case): these objects are the decoded JSON, unchanged.
 * The SDK's own results (CommandResult, EntryInfo) are camelCase.
 */

import type { JSONValue } from "./errors.js";

export type SandboxState = "starting" | "running" | "exited";

/** One sandbox (GET /v1/sandboxes/{id}). */
export interface SandboxInfo {
  id: string;
  snapshot_tag: string;
  /** Index within its spawn request. */
  index: number;
  state: SandboxState;
  /** Exited because the kernel's OOM killer ended it over its memory_limit_mib. */
  oom_killed: boolean;
  pid: number;
  /** forkd-child-<k> with per_child_netns, else null. */
  netns?: string | null;
  /** 10.42.0.2 (inside netns) when the snapshot has a network device, else null. */
  guest_addr?: string | null;
  vsock?: string | null;
  run_dir: string;
  memory_limit_mib?: number | null;
  live_fork?: boolean;
  hugepages?: boolean;
  /** ISO 8601 date-time. */
  created_at: string;
  [field: string]: JSONValue | undefined;
}

export type SnapshotState = "ready" | "creating" | "writing" | "failed" | "damaged";
export type BranchMode = "live" | "full" | "diff";

/** One snapshot or snapshot job (GET /v1/snapshots/{tag}); branch replies add mode, sandbox, pause_us... */
export interface SnapshotInfo {
  tag: string;
  state: SnapshotState;
  /** Why a job failed. */
  error?: string;
  created?: string;
  mem_mib?: number;
  vcpus?: number;
  kernel?: string;
  cmdline?: string;
  vsock?: boolean;
  disks?: number;
  /** The snapshot this one was branched from. */
  parent?: string;
  memory?: "full" | "diff";
  chain_depth?: number;
  logical_bytes?: number;
  physical_bytes?: number;
  memory_bytes_on_disk?: number;
  dependents?: string[];
  dependents_count?: number;
  sandboxes_running?: number;
  /** The guest runs forkd's agent on this vsock port (absent: no agent). */
  agent_port?: number;
  mode?: BranchMode;
  sandbox?: string;
  pause_us?: number;
  written_bytes?: number;
  seconds?: number;
  [field: string]: JSONValue | undefined;
}

/** DELETE /v1/snapshots/{tag}: with cascade, `snapshots` lists every tag deleted. */
export interface DeletedSnapshot {
  tag: string;
  deleted: boolean;
  snapshots?: string[];
  [field: string]: JSONValue | undefined;
}

/** The agent's pong plus `sandbox` and `rtt_ms`; other fields depend on the agent (docs/AGENT.md). */
export interface PingResult {
  pong: boolean;
  pid?: number;
  numpy?: string | null;
  warm?: boolean;
  index?: number | null;
  /** forkd's guest agent: objects it froze (gc.freeze()) before it reported warm. */
  gc_frozen?: number;
  sandbox: string;
  rtt_ms: number;
  [field: string]: JSONValue | undefined;
}

/** POST /v1/sandboxes/{id}/exec as the daemon answers it. */
export interface ExecResponse {
  stdout: string;
  stderr: string;
  /** -N when signal N ended it; -9 when killed at the timeout. */
  exit_code: number | null;
  timed_out: boolean;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
}

/** POST /v1/sandboxes/{id}/eval: `result` is the repr of the value, null for statements. */
export interface EvalResult {
  result: string | null;
  result_truncated?: boolean;
  stdout: string;
  stderr: string;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
}

export type FileType = "file" | "dir" | "symlink" | "other";

/** One entry of GET /v1/sandboxes/{id}/dir, as lstat sees it in the guest. */
export interface DirEntry {
  name: string;
  type: FileType;
  /** Bytes. */
  size: number;
  /** Permission bits (0o644 is 420). */
  mode: number;
  /** Seconds since 1970. */
  mtime: number;
}

export interface DirListing {
  path: string;
  entries: DirEntry[];
  /** More than 10000 entries: the rest were left out. */
  truncated: boolean;
}

export interface WrittenFile {
  bytes: number;
  path: string;
}

export interface RemovedFile {
  path: string;
  deleted: true;
  type: FileType;
}

/** GET /version. */
export interface VersionInfo {
  version: string;
  api: "v1";
  auth: boolean;
  kvm: "hardware" | "kvm-pvm" | "lab";
  [field: string]: JSONValue | undefined;
}
