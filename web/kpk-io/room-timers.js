// The timers of one room's protocol side (room-sync.js): each runs at most once at a time, and
// `stop()` ends them all when the room closes. Retries back off, doubling up to a cap.

/** @typedef {"debounce" | "gap" | "retry" | "rejoin"} TimerName */

export const MAX_RETRY_DELAY_MS = 5000;

export class RoomTimers {
  /** @type {Record<TimerName, ReturnType<typeof setTimeout> | null>} */
  #timers = { debounce: null, gap: null, retry: null, rejoin: null };
  #firstDelay;
  #retryDelay;
  #closed;

  /**
   * @param {number} retryDelayMs  the first retry's delay
   * @param {() => boolean} closed  whether the room closed (a retry then does nothing)
   */
  constructor(retryDelayMs, closed) {
    this.#firstDelay = this.#retryDelay = retryDelayMs;
    this.#closed = closed;
  }

  /** @param {TimerName} name */
  running(name) {
    return this.#timers[name] !== null;
  }

  /**
   * Run `step` after `ms`, in place of what `name` was waiting for.
   * @param {TimerName} name
   * @param {number} ms
   * @param {() => void} step
   */
  start(name, ms, step) {
    this.clear(name);
    this.#timers[name] = setTimeout(() => {
      this.#timers[name] = null;
      step();
    }, ms);
  }

  /** @param {TimerName} name */
  clear(name) {
    const timer = this.#timers[name];
    if (timer !== null) clearTimeout(timer);
    this.#timers[name] = null;
  }

  stop() {
    for (const name of /** @type {TimerName[]} */ (Object.keys(this.#timers))) this.clear(name);
  }

  /**
   * Run `step` after the current retry delay, which then grows.
   * @param {() => void} step
   * @param {number} [atLeastMs]  what the server asked to wait (rate_limited)
   */
  later(step, atLeastMs = 0) {
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
    this.start("retry", Math.max(delay, atLeastMs), () => {
      if (!this.#closed()) step();
    });
  }

  /** A retry worked: the next one starts from the first delay again. */
  succeeded() {
    this.#retryDelay = this.#firstDelay;
  }
}
