// What a KpkClient's connection needs besides socket.io-client: its options, the connect
// auth (token and client secret), the diagnosis of a first connect that failed, and the
// link through which each Room uses the connection.

import { KpkError } from "./error.js";

/**
 * @typedef {object} ClientOptions
 * @property {string | (() => string | Promise<string>)} [token]  sent as Socket.IO
 *   `auth: {token}` on every (re)connect; a function is asked again each time
 * @property {number} [requestTimeoutMs]  wait this long for an ack (default 10000)
 * @property {number} [connectTimeoutMs]  never connected after this long: status `error` with
 *   KpkError `unreachable`, which rejects `join()` (default 20000)
 * @property {number} [reconnectionDelayMs]  first reconnect delay (default 500)
 * @property {number} [reconnectionDelayMaxMs]  longest reconnect delay (default 5000)
 * @property {number} [randomizationFactor]  jitter of the delays, 0 to 1 (default 0.5)
 * @property {number} [reconnectionAttempts]  give up (status `offline`) after this many (default Infinity)
 * @property {string[]} [transports]  default ["polling", "websocket"], upgrading to WebSocket
 * @property {string} [path]  the server's Socket.IO path (default "/socket.io/")
 * @property {Function} [io]  socket.io-client's `io()`; default the copy served beside this file
 */

/**
 * The connect `auth`: the token, and the client's secret, which makes the server's dedupe of
 * re-sent changes (by id) this client's own: no other member can cancel its changes by
 * sending their ids first.
 * @param {string | (() => string | Promise<string>) | undefined} token
 * @param {string} client
 */
export function authWith(token, client) {
  if (token === undefined) return { client };
  return (/** @type {(auth: {token: string, client: string}) => void} */ callback) => {
    // A function that throws is a failed token, like one whose promise rejects.
    new Promise((resolve) => resolve(typeof token === "function" ? token() : token)).then(
      (value) => callback({ token: value, client }),
      (error) => {
        console.error("kpk-io: the token function failed", error);
        callback({ token: "", client });
      },
    );
  };
}

/** Events the client handles itself; `client.on` takes only others. */
export const OWN_EVENTS = new Set([
  "connect", "disconnect", "connect_error", "join", "leave", "update", "sync", "presence", "signal",
]);

/**
 * Why the first connect did not succeed, as a KpkError `unreachable`.
 * @param {string} url
 * @param {number} ms
 * @param {Error | null} last  the last connection error, if any
 */
export function unreachable(url, ms, last) {
  const here = typeof location === "undefined" ? null : location.origin;
  const server = new URL(url, here ?? undefined).origin;
  let message = `could not connect to ${server} in ${ms / 1000} s`;
  if (last) message += ` (${last.message})`;
  if (here && here !== "null" && here !== server) {
    message += `; a page on ${here} can connect only if kpk-io allows its origin: ` +
      `start kpk-io with --cors-origins ${here}`;
  }
  return new KpkError("unreachable", message);
}

/**
 * Follow the page: flush every room when it is hidden or left, and say when the browser goes
 * offline or online. Returns what stops listening; outside a browser there is nothing to do.
 * @param {{flush: () => void, offline: () => void, online: () => void}} on
 * @returns {Array<() => void>}
 */
export function followPage(on) {
  if (typeof document === "undefined") return [];
  const onVisibility = () => document.visibilityState === "hidden" && on.flush();
  addEventListener("pagehide", on.flush);
  addEventListener("offline", on.offline);
  addEventListener("online", on.online);
  document.addEventListener("visibilitychange", onVisibility);
  return [
    () => removeEventListener("pagehide", on.flush),
    () => removeEventListener("offline", on.offline),
    () => removeEventListener("online", on.online),
    () => document.removeEventListener("visibilitychange", onVisibility),
  ];
}

export function browserOffline() {
  return typeof navigator !== "undefined" && navigator.onLine === false;
}

/** @param {number} bytes */
export function randomHex(bytes) {
  const values = new Uint8Array(bytes);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(values);
  else values.forEach((_, i) => (values[i] = Math.floor(Math.random() * 256)));
  return Array.from(values, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What a Room needs from its client. `connection` numbers the connections: it changes on
 * every (re)connect, and a request answered on an older one says nothing about the new one.
 * @typedef {object} RoomLink
 * @property {boolean} connected
 * @property {number} connection
 * @property {"connecting" | "connected" | "offline" | "error"} linkStatus
 * @property {Error | null} linkError
 * @property {(event: string, payload: object) => Promise<any>} request  rejects with KpkError
 * @property {() => string} nextChangeId
 * @property {(room: import("./room.js").Room) => void} release  the room is closed
 */
/**
 * @typedef {object} RoomOptions
 * @property {number} [debounceMs]  batch local edits over this window (default 500)
 * @property {number} [gapWaitMs]  wait this long for a missing rev before a sync (default 1000)
 * @property {number} [retryDelayMs]  first delay before retrying a failed request (default 500)
 */
