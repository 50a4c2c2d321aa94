/**
 * forkd: a TypeScript client for the forkd controller daemon (`forkd serve`).
 *
 *     import { Sandbox } from "forkd";
 *     await using sb = await Sandbox.create("py");
 *     console.log(await sb.eval("1 + 1"));   // "2"
 */

export {
  Controller,
  DEFAULT_URL,
  type BranchOptions,
  type ControllerOptions,
  type CreateSandboxesOptions,
  type CreateSnapshotOptions,
  type ExecOptions,
  type RequestOptions,
  type SpawnOptions,
} from "./controller.js";
export {
  AgentError,
  AgentUnreachable,
  AuthError,
  BadRequest,
  Conflict,
  ConnectionFailed,
  ForkdError,
  NotAvailable,
  NotFound,
  ServerError,
  errorFor,
  type JSONObject,
  type JSONValue,
} from "./errors.js";
export {
  Commands,
  Files,
  Sandbox,
  type CommandResult,
  type EntryInfo,
  type RunOptions,
  type SandboxOptions,
} from "./sandbox.js";
export { isLoopback } from "./token.js";
export type * from "./types.js";

export const VERSION = "0.2.0";
