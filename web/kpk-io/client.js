// One Socket.IO connection and the rooms joined over it. Reconnection is socket.io-client's
// own (exponential backoff with jitter); after every reconnect each room joins again and
// catches up (room.js).

import { io as bundledIo } from "./socket.io.esm.min.js";
import { KpkError, KpkEvent } from "./error.js";
import { OWN_EVENTS, authWith, browserOffline, followPage, randomHex, unreachable } from "./connect.js";
import { checkRoom } from "./room-path.js";
import { Room } from "./room.js";

/** @typedef {import("./connect.js").RoomOptions} RoomOptions */
/** @typedef {"connecting" | "connected" | "offline" | "error"} ConnectionStatus */
/** @typedef {import("./connect.js").ClientOptions} ClientOptions */

export class KpkClient extends EventTarget {
  #socket;
  #requestTimeoutMs;
  /** @type {Map<string, Room>} */
  #rooms = new Map();
  #connection = 0;
  #counter = 0;
  #idPrefix = randomHex(8); // ids must be unique per room: see docs/protocol.md
  #secret = randomHex(16); // never leaves this client but in the connect auth
  /** @type {Set<(error: KpkError) => void>} */
  #unanswered = new Set();
  /** @type {Set<string>} */
  #sentIds = new Set();
  /** @type {ConnectionStatus} */
  #status = "connecting";
  /** @type {Error | null} */
  #error = null;
  #closeWithLastRoom = false;
  /** @type {Array<() => void>} */
  #unlisten = [];
  /** Counts of `update` events received, and of those carrying an id this client sent. */
  stats = { updates: 0, echoes: 0 };

  /**
   * @param {string} url  the kpk-io server, e.g. "https://kpk.example" or location.origin
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    const { token, io = bundledIo, requestTimeoutMs = 10000 } = options;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#socket = io(url, {
      forceNew: true, // never share a connection (and its handlers) with another client
      autoConnect: false,
      reconnection: true,
      reconnectionDelay: options.reconnectionDelayMs ?? 500,
      reconnectionDelayMax: options.reconnectionDelayMaxMs ?? 5000,
      randomizationFactor: options.randomizationFactor ?? 0.5,
      reconnectionAttempts: options.reconnectionAttempts ?? Infinity,
      transports: options.transports,
      path: options.path ?? "/socket.io/",
      auth: authWith(token, this.#secret),
    });
    this.#listen();
    this.#watchFirstConnect(url, options.connectTimeoutMs ?? 20000);
    this.#socket.connect();
  }

  /** `connecting`, `connected`, `offline` (not trying) or `error` (refused). */
  get status() {
    return this.#status;
  }

  get connected() {
    return Boolean(this.#socket.connected);
  }

  /** Numbers this client's connections: it changes on every (re)connect. */
  get connection() {
    return this.#connection;
  }

  get linkStatus() {
    return this.#status;
  }

  get linkError() {
    return this.#error;
  }

  /** The socket.io-client Socket underneath, e.g. for its `io` Manager's events. */
  get socket() {
    return this.#socket;
  }

  /**
   * The handle of a room, joining it now and after every reconnect; `await room.ready`
   * waits until it is live. Throws KpkError `invalid_room` for an unusable ID.
   * @param {string | null | undefined} roomId
   * @param {RoomOptions} [options]
   */
  room(roomId, options = {}) {
    const id = checkRoom(roomId);
    let room = this.#rooms.get(id);
    if (!room) {
      room = new Room(id, this, options);
      this.#rooms.set(id, room);
      room.connectionChanged();
    }
    return room;
  }

  /**
   * Join a room and return its handle once it is live.
   * @param {string | null | undefined} roomId
   * @param {RoomOptions} [options]
   * @returns {Promise<Room>}
   */
  async join(roomId, options = {}) {
    const room = this.room(roomId, options);
    try {
      return await room.ready;
    } catch (error) {
      await room.close();
      throw error;
    }
  }

  /**
   * Send one request; resolves with its ok ack, rejects with KpkError (code `disconnected`
   * or `timeout` when no ack came).
   * @param {string} event
   * @param {Record<string, any>} payload
   * @returns {Promise<Record<string, any>>}
   */
  request(event, payload) {
    if (!this.#socket.connected) {
      return Promise.reject(new KpkError("disconnected", "not connected"));
    }
    if (event === "update") this.#remember(payload.id);
    return new Promise((resolve, reject) => {
      this.#unanswered.add(reject);
      this.#socket.timeout(this.#requestTimeoutMs).emit(event, payload, (/** @type {any} */ error, /** @type {any} */ ack) => {
        if (!this.#unanswered.delete(reject)) return; // already failed: the connection dropped
        if (error) {
          const code = this.#socket.connected ? "timeout" : "disconnected";
          reject(new KpkError(code, `no answer to ${event}`));
        } else if (ack && ack.ok === true) {
          resolve(ack);
        } else {
          reject(new KpkError(String(ack?.error ?? "internal"), String(ack?.message ?? "malformed answer"), ack ?? {}));
        }
      });
    });
  }

  nextChangeId() {
    return `${this.#idPrefix}-${++this.#counter}`;
  }

  /** @param {Room} room  called by a room that was closed */
  release(room) {
    if (this.#rooms.get(room.id) === room) this.#rooms.delete(room.id);
    if (this.#closeWithLastRoom && this.#rooms.size === 0) this.#disconnect();
  }

  /** Close every room (flushing its edits) and the connection. */
  async close() {
    this.#closeWithLastRoom = true;
    await Promise.all([...this.#rooms.values()].map((room) => room.close()));
    this.#disconnect();
  }

  /**
   * Connect again after the server refused the connection (status `error`, e.g. code
   * `unauthorized`): the token function is asked again, and every room joins again.
   */
  reconnect() {
    if (this.#socket.connected || this.#socket.active) return;
    this.#setStatus("connecting", null);
    this.#socket.connect();
  }

  /** Close the connection when its last room is closed (as `join(url, ...)` does). */
  closeWithLastRoom() {
    this.#closeWithLastRoom = true;
  }

  #listen() {
    const socket = this.#socket;
    socket.on("connect", () => {
      this.#connection++;
      this.#setStatus("connected", null);
    });
    socket.on("disconnect", () => {
      socket.sendBuffer.length = 0; // nothing stale goes out on the next connection
      const lost = new KpkError("disconnected", "connection lost");
      for (const reject of this.#unanswered) reject(lost);
      this.#unanswered.clear();
      this.#setStatus(socket.active && !browserOffline() ? "connecting" : "offline", this.#error);
    });
    socket.on("connect_error", (/** @type {Error & {data?: any}} */ error) => {
      // Refused by the server (not a network failure): socket.io-client does not retry.
      // The server's refusals carry {error, message}: `unauthorized` means the token is
      // missing, bad or expired; fetch a fresh one and call reconnect().
      const refusal = typeof error.data?.error === "string"
        ? new KpkError(error.data.error, String(error.data.message ?? error.message), error.data)
        : error;
      this.#setStatus(socket.active ? this.#status : "error", refusal);
    });
    socket.io.on("reconnect_failed", () => this.#setStatus("offline", this.#error));
    // A server shutting down sends an Engine.IO CLOSE packet; engine.io-client acts on it
    // over HTTP long-polling but not over WebSocket, where it would wait for the server to
    // drop the socket. Closing the transport here makes the Manager reconnect at once.
    socket.io.on("open", () => {
      const engine = socket.io.engine;
      engine.on("packet", (/** @type {{type: string}} */ packet) => packet.type === "close" && engine.close());
    });
    socket.on("update", (/** @type {any} */ body) => this.#received(body));
    socket.on("presence", (/** @type {any} */ body) => this.#roomOf(body)?.receivedPresence(body));
    socket.on("signal", (/** @type {any} */ body) => this.#roomOf(body)?.receivedSignal(body));
    this.#unlisten.push(...followPage({
      flush: () => {
        for (const room of this.#rooms.values()) room.flush().catch(() => {});
      },
      offline: () => !socket.connected && this.#setStatus("offline", this.#error),
      online: () => !socket.connected && socket.active && this.#setStatus("connecting", null),
    }));
  }

  /** @param {any} body  an event naming its room */
  #roomOf(body) {
    return typeof body?.room === "string" ? this.#rooms.get(body.room) : undefined;
  }

  /**
   * `handler(...args)` for each `event` the server side sends that is not the protocol's
   * own: custom events an outside emitter (python-socketio's RedisManager, see
   * docs/deployment.md) sends to a room's members. Returns a function that unsubscribes.
   * @param {string} event
   * @param {(...args: any[]) => void} handler
   */
  on(event, handler) {
    if (OWN_EVENTS.has(event)) throw new KpkError("invalid_request", `${event} is the client's own event`);
    this.#socket.on(event, handler);
    return () => this.#socket.off(event, handler);
  }

  /** @param {string} id  of an update sent, to count echoes; the last 10000 are kept */
  #remember(id) {
    this.#sentIds.add(id);
    if (this.#sentIds.size > 10000) this.#sentIds.delete(this.#sentIds.values().next().value);
  }

  /** @param {any} body */
  #received(body) {
    this.stats.updates++;
    if (typeof body?.id === "string" && this.#sentIds.has(body.id)) this.stats.echoes++;
    const room = typeof body?.room === "string" ? this.#rooms.get(body.room) : undefined;
    try {
      room?.received(body);
    } catch (error) {
      console.error("kpk-io: a malformed update was ignored", error);
    }
  }

  /**
   * @param {ConnectionStatus} status
   * @param {Error | null} error
   */
  #setStatus(status, error) {
    this.#error = error;
    const changed = status !== this.#status;
    this.#status = status;
    for (const room of this.#rooms.values()) room.connectionChanged();
    if (changed) this.dispatchEvent(new KpkEvent("status", { status, error }));
  }

  /**
   * A server that never answers (down, a wrong URL, or one refusing this page's origin, which
   * a browser reports only as a failed request) would leave `join()` waiting for ever:
   * after `ms` without a first connection the status becomes `error` with KpkError
   * `unreachable`. socket.io-client keeps trying; a later connection clears the error.
   * @param {string} url
   * @param {number} ms
   */
  #watchFirstConnect(url, ms) {
    const timer = setTimeout(() => {
      if (this.#connection > 0 || this.#status !== "connecting") return;
      this.#setStatus("error", unreachable(url, ms, this.#error));
    }, ms);
    this.#unlisten.push(() => clearTimeout(timer));
  }

  #disconnect() {
    for (const unlisten of this.#unlisten.splice(0)) unlisten();
    this.#socket.disconnect();
    this.#setStatus("offline", null);
  }
}
