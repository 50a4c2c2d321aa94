/**
 * HTTP/1.1 to one forkd daemon over node:http / node:https (no fetch: Node's
 * fetch cannot be given a CA certificate per request, and FORKD_CA_CERT must
 * work without extra packages). Connections are kept alive in a small pool;
 * a request sent on a kept-alive connection that the daemon had already
 * closed (it closes idle ones, `forkd serve --idle-timeout-secs`) is sent
 * once more on a new connection: the daemon never saw it. Every request has
 * a deadline (AbortSignal.timeout) covering the connect, the request and the
 * whole answer.
 */

import * as http from "node:http";
import * as https from "node:https";

import { ConnectionFailed } from "./errors.js";

export interface Endpoint {
  scheme: "http" | "https";
  /** Without brackets for IPv6. */
  host: string;
  port: number;
  /** "" or "/some/path", no trailing slash. */
  prefix: string;
  /** scheme://host:port/prefix, port always written. */
  url: string;
}

/** Parse "http[s]://HOST[:PORT][/PREFIX]"; TypeError when it is anything else. */
export function parseBaseUrl(baseUrl: string): Endpoint {
  const bad = (why?: string): TypeError =>
    new TypeError(
      `base URL must be http[s]://HOST[:PORT][/PREFIX], got ${JSON.stringify(baseUrl)}` +
        (why ? `: ${why}` : ""),
    );
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    throw bad();
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw bad();
  if (!u.hostname || u.search || u.hash) throw bad();
  if (u.username || u.password) throw bad("credentials belong in the token, not the URL");
  const scheme = u.protocol === "https:" ? "https" : "http";
  const port = u.port ? Number(u.port) : scheme === "https" ? 443 : 80;
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const prefix = u.pathname.replace(/\/+$/, "");
  const shown = host.includes(":") ? `[${host}]` : host;
  return { scheme, host, port, prefix, url: `${scheme}://${shown}:${port}${prefix}` };
}

export interface HttpResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface TransportOptions {
  /** PEM CA certificate(s) to trust instead of the system's (https only). */
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  /** Idle connections kept for reuse. */
  pool?: number | undefined;
}

/** The connection closed before any byte of an answer, on a reused connection. */
class StaleConnection extends Error {}

const STALE_CODES = new Set(["ECONNRESET", "EPIPE"]);
// setTimeout's limit (about 24.8 days).
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class Transport {
  readonly ep: Endpoint;
  private readonly agent: http.Agent;

  constructor(ep: Endpoint, options: TransportOptions = {}) {
    this.ep = ep;
    const common = { keepAlive: true, maxFreeSockets: options.pool ?? 8 };
    this.agent =
      ep.scheme === "https"
        ? new https.Agent(options.ca !== undefined ? { ...common, ca: options.ca } : common)
        : new http.Agent(common);
  }

  /**
   * One request: `path` is under the base URL's prefix. Throws ConnectionFailed
   * when the daemon cannot be reached or has not answered in full within
   * `timeoutSeconds`; any answer, whatever its status, is returned.
   */
  async request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    timeoutSeconds: number,
  ): Promise<HttpResponse> {
    const signal = AbortSignal.timeout(Math.min(Math.ceil(timeoutSeconds * 1000), MAX_TIMEOUT_MS));
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.exchange(method, path, headers, body, signal);
      } catch (e) {
        if (e instanceof StaleConnection && attempt === 0 && !signal.aborted) continue;
        if (signal.aborted) {
          throw new ConnectionFailed(
            `no answer from the forkd daemon at ${this.ep.url} within ${timeoutSeconds} s`,
            undefined,
            undefined,
            { cause: e },
          );
        }
        const why = e instanceof Error ? e.message : String(e);
        throw new ConnectionFailed(`cannot reach the forkd daemon at ${this.ep.url}: ${why}`, undefined, undefined, {
          cause: e,
        });
      }
    }
  }

  private exchange(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    signal: AbortSignal,
  ): Promise<HttpResponse> {
    return new Promise<HttpResponse>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const mod = this.ep.scheme === "https" ? https : http;
      const hdrs: Record<string, string> = { ...headers };
      if (body !== undefined || method === "POST" || method === "PUT") {
        hdrs["Content-Length"] = String(body?.length ?? 0);
      }
      let settled = false;
      let answered = false;
      const req = mod.request({
        agent: this.agent,
        host: this.ep.host,
        port: this.ep.port,
        method,
        path: this.ep.prefix + path,
        headers: hdrs,
      });
      const onAbort = (): void => {
        fail(signal.reason);
        req.destroy();
      };
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        reject(err);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      req.on("response", (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", fail);
        res.on("close", () => {
          if (!res.complete) fail(new Error("the connection closed in the middle of the answer"));
        });
        res.on("end", () => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
          }
          resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks) });
        });
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (!answered && req.reusedSocket && err.code !== undefined && STALE_CODES.has(err.code)) {
          fail(new StaleConnection(err.message));
        } else {
          fail(err);
        }
      });
      req.end(body);
    });
  }

  /** Close every connection; a later request opens a new one. */
  close(): void {
    this.agent.destroy();
  }
}
