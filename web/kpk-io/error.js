// The one error type of the client and the one event type it dispatches. A KpkError's
// `code` is a protocol error code (docs/protocol.md), or `disconnected` / `timeout` when no
// answer came, `unreachable` when no connection was made within the connect timeout, or
// `closed` for a room that was closed.

export class KpkError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [ack]  the server's answer, when there was one
   */
  constructor(code, message, ack = {}) {
    super(`${code}: ${message}`);
    this.name = "KpkError";
    this.code = code;
    this.ack = ack;
  }
}

/**
 * Codes after which the same request may succeed later (the outcome is unknown, or the
 * server asks to wait or to join first); any other refusal is final. kpk_io.client_error
 * has the same list; tests/client_vectors.json holds both to it.
 */
export const RETRYABLE = new Set([
  "unavailable", "internal", "disconnected", "timeout", "not_joined", "rate_limited",
]);

/** @param {string} code */
export function isRetryable(code) {
  return RETRYABLE.has(code);
}

/**
 * `error` as a KpkError: itself, or `internal` with its message.
 * @param {unknown} error
 */
export function asKpkError(error) {
  if (error instanceof KpkError) return error;
  return new KpkError("internal", error instanceof Error ? error.message : String(error));
}

/**
 * How long a `rate_limited` answer asks to wait before trying again, in ms (0 otherwise).
 * @param {KpkError} error
 */
export function retryAfterMs(error) {
  const wait = error.code === "rate_limited" ? Number(error.ack.retry_after) : 0;
  return Number.isFinite(wait) && wait > 0 ? wait : 0;
}

/**
 * An event with a `detail`, like CustomEvent (which node 18 lacks); what Room and KpkClient
 * dispatch.
 */
export class KpkEvent extends Event {
  /** @param {string} type @param {any} detail */
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}
