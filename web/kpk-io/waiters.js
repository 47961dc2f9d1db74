// Promises waiting for a room's local edits to be acknowledged (room.flush()).

import { KpkError } from "./error.js";

export class Waiters {
  /** @type {Set<{resolve: () => void, reject: (error: Error) => void}>} */
  #waiting = new Set();

  /**
   * Resolves at the next resolveAll(), rejects at rejectAll() or after `timeoutMs`.
   * @param {number} timeoutMs
   * @returns {Promise<void>}
   */
  wait(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(waiter);
        reject(new KpkError("timeout", `edits not acknowledged within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (/** @type {Error} */ error) => (clearTimeout(timer), reject(error)),
      };
      this.#waiting.add(waiter);
    });
  }

  resolveAll() {
    for (const waiter of this.#waiting) waiter.resolve();
    this.#waiting.clear();
  }

  /** @param {Error} error */
  rejectAll(error) {
    for (const waiter of this.#waiting) waiter.reject(error);
    this.#waiting.clear();
  }
}
