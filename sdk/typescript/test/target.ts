/**
 * The daemon the TypeScript SDK's tests talk to, found like the Python SDK's
 * tests find theirs (sdk/python/tests/conftest.py):
 *  - FORKD_URL (+ FORKD_TOKEN, FORKD_TAG, default "py"): a running daemon whose
 *    snapshot runs forkd's real agent (tests/e2e/image_fork.sh); FORKD_SPAWN_ARGS,
 *    a JSON object of POST /v1/sandboxes fields, goes into every create;
 *  - otherwise test/start_daemon.py starts one from the repository's build
 *    (tests/daemon/harness.py) with a snapshot of agent_stub, which answers
 *    ping only.
 */

import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

import type { SpawnOptions } from "../src/index.js";

export interface Target {
  url: string;
  token: string | undefined;
  tag: string;
  /** The children run agent_stub (ping only), not forkd's agent. */
  stub: boolean;
  spawnArgs: SpawnOptions;
  /** Why nothing can run (no daemon and none can be started), else undefined. */
  skip?: string;
  stop(): Promise<void>;
}

const SPAWN_FIELDS: Record<string, keyof SpawnOptions> = {
  per_child_netns: "perChildNetns",
  memory_limit_mib: "memoryLimitMib",
  live_fork: "liveFork",
  hugepages: "hugepages",
};

/** FORKD_SPAWN_ARGS (API field names) as SpawnOptions. */
export function spawnArgsFromEnv(text: string | undefined): SpawnOptions {
  const obj: unknown = JSON.parse(text || "{}");
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new TypeError("FORKD_SPAWN_ARGS must be a JSON object");
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const name = SPAWN_FIELDS[k];
    if (!name) throw new TypeError(`FORKD_SPAWN_ARGS: unknown field ${k}`);
    out[name] = v;
  }
  return out as SpawnOptions;
}

export async function startTarget(): Promise<Target> {
  const spawnArgs = spawnArgsFromEnv(process.env["FORKD_SPAWN_ARGS"]);
  const url = process.env["FORKD_URL"];
  if (url) {
    return {
      url,
      token: process.env["FORKD_TOKEN"] || undefined,
      tag: process.env["FORKD_TAG"] || "py",
      stub: false,
      spawnArgs,
      stop: async () => {},
    };
  }
  const helper = fileURLToPath(new URL("../../test/start_daemon.py", import.meta.url));
  const env = { ...process.env };
  delete env["FORKD_TOKEN"];
  const child = spawn("python3", [helper], { stdio: ["pipe", "pipe", "pipe"], env });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  let stdout = "";
  const exited = once(child, "exit");
  const line = await new Promise<string>((resolve, reject) => {
    child.on("error", reject);
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
      const nl = stdout.indexOf("\n");
      if (nl >= 0) resolve(stdout.slice(0, nl));
    });
    void exited.then(([code]) => reject(new Error(`start_daemon.py exited ${code}: ${stderr}`)));
  });
  const o = JSON.parse(line) as { url?: string; token?: string; tag?: string; skip?: string };
  const stop = async (): Promise<void> => {
    child.stdin.end();
    const [code] = (await exited) as [number | null];
    if (code !== 0) throw new Error(`the test daemon did not stop cleanly (status ${code}):\n${stderr}`);
  };
  if (o.skip) {
    await stop();
    return { url: "", token: undefined, tag: "", stub: true, spawnArgs, skip: o.skip, stop: async () => {} };
  }
  return { url: o.url!, token: o.token, tag: o.tag!, stub: true, spawnArgs, stop };
}
