/**
 * Which bearer token a Controller sends when it is given none: $FORKD_TOKEN,
 * else, for a daemon on loopback only, the token `forkd serve` made for itself
 * in its default state directory (the same rules as the CLI and the Python SDK).
 */

import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The whole host is a loopback name or address: "localhost", 127.0.0.0/8 or
 * ::1. "127.0.0.1.nip.io" and "localhost.example.com" are not.
 */
export function isLoopback(host: string): boolean {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (h.toLowerCase() === "localhost") return true;
  if (isIP(h) === 4) return Number(h.split(".")[0]) === 127;
  if (isIP(h) === 6) {
    // The URL parser writes an IPv6 address in its shortest form.
    return new URL(`http://[${h}]/`).hostname === "[::1]";
  }
  return false;
}

/**
 * Where a daemon on this host keeps the token it made: /var/lib/forkd/token
 * as root, else $XDG_STATE_HOME/forkd/token or ~/.local/state/forkd/token.
 */
export function defaultTokenPath(
  euid: number = process.geteuid?.() ?? -1,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (euid === 0) return "/var/lib/forkd/token";
  const base = env["XDG_STATE_HOME"] || join(homedir(), ".local", "state");
  return join(base, "forkd", "token");
}

/** The token for a daemon on `host` when none was given; undefined when there is none to send. */
export function lookupToken(
  host: string,
  env: NodeJS.ProcessEnv = process.env,
  euid: number = process.geteuid?.() ?? -1,
): string | undefined {
  const fromEnv = env["FORKD_TOKEN"];
  if (fromEnv) return fromEnv;
  if (!isLoopback(host)) return undefined;
  try {
    return readFileSync(defaultTokenPath(euid, env), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}
