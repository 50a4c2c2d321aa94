/**
 * Errors the SDK throws. Each carries the daemon's `{"error": ...}` text as
 * `message` and the HTTP status; the classes map statuses the same way as
 * the Python SDK (sdk/python/forkd/errors.py).
 */

/** A decoded JSON object (the body of an error answer, for one). */
export type JSONObject = { [key: string]: JSONValue };
export type JSONValue = null | boolean | number | string | JSONValue[] | JSONObject;

/** Base class: `message` is the daemon's error text, `status` the HTTP status (absent when no answer came). */
export class ForkdError extends Error {
  readonly status: number | undefined;
  /** The whole error object the daemon sent (empty when it sent none). */
  readonly body: JSONObject;

  constructor(message: string, status?: number, body?: JSONObject, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.body = body ?? {};
  }

  override toString(): string {
    return this.status !== undefined
      ? `${this.name}: ${this.message} (HTTP ${this.status})`
      : `${this.name}: ${this.message}`;
  }
}

/** The daemon could not be reached (not running, wrong URL, TLS refused) or did not answer in time. */
export class ConnectionFailed extends ForkdError {}

/** 400, 405 or 413: the request was malformed or too large. */
export class BadRequest extends ForkdError {}

/** 401: missing or wrong bearer token. */
export class AuthError extends ForkdError {}

/** 404: no such snapshot, sandbox or endpoint. */
export class NotFound extends ForkdError {}

/** 409: the state forbids it (sandbox not running, snapshot in use or existing). */
export class Conflict extends ForkdError {}

/** 422: the guest agent refused or failed; `traceback` is set for errors raised by eval. */
export class AgentError extends ForkdError {
  get traceback(): string | undefined {
    const t = this.body["traceback"];
    return typeof t === "string" ? t : undefined;
  }
}

/** 501: the feature is not available in this daemon yet. */
export class NotAvailable extends ForkdError {}

/** 502 or 504: no agent answered on the sandbox's vsock socket, or not in time. */
export class AgentUnreachable extends ForkdError {}

/** Any other 5xx. */
export class ServerError extends ForkdError {}

const BY_STATUS: ReadonlyMap<number, typeof ForkdError> = new Map<number, typeof ForkdError>([
  [400, BadRequest],
  [405, BadRequest],
  [413, BadRequest],
  [401, AuthError],
  [404, NotFound],
  [409, Conflict],
  [422, AgentError],
  [501, NotAvailable],
  [502, AgentUnreachable],
  [504, AgentUnreachable],
]);

/** The error for an answer with HTTP status `status` (>= 400). */
export function errorFor(status: number, message: string, body?: JSONObject): ForkdError {
  const cls = BY_STATUS.get(status) ?? (status >= 500 ? ServerError : ForkdError);
  return new cls(message, status, body);
}
