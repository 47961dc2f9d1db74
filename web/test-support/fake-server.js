// An in-process stand-in for a kpk-io server and socket.io-client's `io()`, for the node unit
// tests of the client algorithm. It follows docs/protocol.md: join/leave/update/sync with
// acks, `update` events to the other members only, in rev order; presence (members in the
// join ack, `presence` events) and `signal`. Every message is delivered
// asynchronously and in order per connection, as over a real socket. Knobs let a test lose an
// ack, skip an update event (a gap), refuse updates, forget history, or go down and come back.

/** @typedef {{rev: number, set: Record<string, any>, unset: string[], replace: boolean, id?: string}} Logged */
/** @typedef {{rev: number, state: Record<string, any>, log: Logged[], ids: Map<string, number>}} FakeRoom */

export class FakeServer {
  /** @type {Map<string, FakeRoom>} */
  rooms = new Map();
  /** @type {Set<FakeSocket>} */
  sockets = new Set();
  up = true;
  history = 1000;
  /** Every request as received: [socket, event, payload]. */
  /** @type {Array<[FakeSocket, string, any]>} */
  requests = [];
  /** The next `update` commits, then the connection drops before the ack goes out. */
  loseNextAck = false;
  /** The next `update` is answered with this error instead of being committed. */
  /** @type {string | null} */
  refuseNextUpdate = null;
  /** The next `update` is answered `rate_limited` with this `retry_after` (ms). */
  /** @type {number | null} */
  rateLimitNextUpdate = null;
  /** The next `update` is committed, then answered with this error: a store that stalled
   * ran the commit after the server had given up on it (docs/protocol.md, `unavailable`). */
  /** @type {string | null} */
  commitButRefuseNextUpdate = null;
  /** The next `update` is committed but never answered. */
  silenceNextUpdate = false;
  /** Revs whose `update` events are not delivered (a gap the client must notice). */
  /** @type {Set<number>} */
  undelivered = new Set();

  /** @param {string} name */
  room(name) {
    let room = this.rooms.get(name);
    if (!room) this.rooms.set(name, (room = { rev: 0, state: {}, log: [], ids: new Map() }));
    return room;
  }

  /** The `update` requests received, optionally for one room. */
  updates(name = undefined) {
    return this.requests
      .filter(([, event, p]) => event === "update" && (name === undefined || p.room === name))
      .map(([, , payload]) => payload);
  }

  /** Drop every connection and refuse new ones until `start()`. */
  stop() {
    this.up = false;
    for (const socket of [...this.sockets]) socket.drop("transport close");
  }

  start() {
    this.up = true;
  }

  /** Forget everything, as an in-memory server that restarted. */
  wipe() {
    this.rooms.clear();
  }

  /**
   * @param {FakeSocket} socket
   * @param {string} event
   * @param {any} p
   * @returns {any} the ack, or undefined for none
   */
  handle(socket, event, p) {
    this.requests.push([socket, event, p]);
    if (event === "join") {
      const fresh = !socket.joined.has(p.room);
      socket.joined.add(p.room);
      if (fresh) socket.metas.set(p.room, p.meta ?? {});
      if (fresh) this.broadcast(p.room, "presence", { room: p.room, joined: [memberOf(socket, p.room)] }, socket);
      const room = this.room(p.room);
      const members = this.membersOf(p.room);
      const member = memberOf(socket, p.room);
      return { ok: true, room: p.room, rev: room.rev, state: structuredClone(room.state), member, members };
    }
    if (event === "leave") {
      if (socket.joined.delete(p.room)) this.left(socket, p.room);
      return { ok: true, room: p.room };
    }
    if (!socket.joined.has(p.room)) return { ok: false, error: "not_joined", message: "join first" };
    if (event === "presence") {
      socket.metas.set(p.room, p.meta);
      this.broadcast(p.room, "presence", { room: p.room, updated: [memberOf(socket, p.room)] }, socket);
      return { ok: true };
    }
    if (event === "signal") {
      this.broadcast(p.room, "signal", { room: p.room, from: socket.memberId, data: p.data }, socket);
      return { ok: true };
    }
    if (event === "sync") return this.#sync(p);
    if (event === "update") return this.#update(socket, p);
    return { ok: false, error: "unknown_event", message: event };
  }

  /** Everyone in `room` now, as the join ack lists them. @param {string} room */
  membersOf(room) {
    return [...this.sockets].filter((s) => s.joined.has(room)).map((s) => memberOf(s, room));
  }

  /**
   * Server side: `event` to every member of `room` but `except`, as the client manager does.
   * @param {string} room @param {string} event @param {any} body @param {FakeSocket | null} [except]
   */
  broadcast(room, event, body, except = null) {
    for (const other of this.sockets) {
      if (other !== except && other.joined.has(room)) other.deliver(event, structuredClone(body));
    }
  }

  /** @param {FakeSocket} socket @param {string} room  it is no member any more */
  left(socket, room) {
    this.broadcast(room, "presence", { room, left: [memberOf(socket, room)] }, socket);
  }

  /** @param {any} p */
  #sync(p) {
    const room = this.room(p.room);
    const kept = this.history > 0 ? room.log.slice(-this.history) : [];
    if (p.since > room.rev || (p.since < room.rev && (kept[0]?.rev ?? Infinity) > p.since + 1)) {
      return { ok: true, room: p.room, rev: room.rev, state: structuredClone(room.state) };
    }
    const changes = kept.filter((c) => c.rev > p.since).map((c) => structuredClone(c));
    return { ok: true, room: p.room, rev: changes.length ? room.rev : p.since, changes };
  }

  /** @param {FakeSocket} socket @param {any} p */
  #update(socket, p) {
    if (this.rateLimitNextUpdate !== null) {
      const retryAfter = this.rateLimitNextUpdate;
      this.rateLimitNextUpdate = null;
      return { ok: false, error: "rate_limited", message: "slow down", retry_after: retryAfter };
    }
    if (this.refuseNextUpdate) {
      const error = this.refuseNextUpdate;
      this.refuseNextUpdate = null;
      return { ok: false, error, message: "refused by the test" };
    }
    const room = this.room(p.room);
    const seen = p.id === undefined ? undefined : room.ids.get(p.id);
    if (seen !== undefined) return { ok: true, room: p.room, rev: seen, duplicate: true };
    if (p.replace) room.state = {};
    for (const name of p.unset ?? []) delete room.state[name];
    Object.assign(room.state, structuredClone(p.set ?? {}));
    room.rev += 1;
    /** @type {Logged} */
    const entry = { rev: room.rev, set: p.set ?? {}, unset: p.unset ?? [], replace: Boolean(p.replace) };
    if (p.id !== undefined) {
      entry.id = p.id;
      room.ids.set(p.id, room.rev);
    }
    room.log.push(entry);
    if (!this.undelivered.delete(room.rev)) {
      for (const other of this.sockets) {
        if (other !== socket && other.joined.has(p.room)) {
          other.deliver("update", structuredClone({ room: p.room, ...entry }));
        }
      }
    }
    if (this.loseNextAck) {
      this.loseNextAck = false;
      socket.drop("transport close");
      return undefined;
    }
    if (this.commitButRefuseNextUpdate) {
      const error = this.commitButRefuseNextUpdate;
      this.commitButRefuseNextUpdate = null;
      return { ok: false, error, message: "committed, then refused by the test" };
    }
    if (this.silenceNextUpdate) {
      this.silenceNextUpdate = false;
      return undefined;
    }
    return { ok: true, room: p.room, rev: room.rev };
  }
}

/** Just enough of socket.io-client's Socket for KpkClient, talking to a FakeServer. */
export class FakeSocket {
  connected = false;
  active = false;
  /** @type {any[]} */
  sendBuffer = [];
  /** @type {Set<string>} */
  joined = new Set();
  memberId = "";
  /** @type {Map<string, Record<string, any>>} */
  metas = new Map();
  /** @type {Map<string, Function[]>} */
  #handlers = new Map();
  /** @type {Map<string, Function[]>} */
  #managerHandlers = new Map();
  #timeout = 0;
  #reconnectDelayMs;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #retry = null;

  /**
   * @param {FakeServer} server
   * @param {Record<string, any>} options  the options KpkClient passed to io()
   */
  constructor(server, options) {
    this.server = server;
    this.options = options;
    this.#reconnectDelayMs = 5;
    this.io = { on: (/** @type {string} */ event, /** @type {Function} */ fn) => add(this.#managerHandlers, event, fn) };
  }

  /** @param {string} event @param {Function} fn */
  on(event, fn) {
    add(this.#handlers, event, fn);
    return this;
  }

  /** @param {string} event @param {Function} fn */
  off(event, fn) {
    this.#handlers.set(event, (this.#handlers.get(event) ?? []).filter((f) => f !== fn));
    return this;
  }

  connect() {
    this.active = true;
    this.#attempt();
    return this;
  }

  disconnect() {
    this.active = false;
    if (this.#retry) clearTimeout(this.#retry);
    if (this.connected) this.#close("io client disconnect");
    return this;
  }

  /** @param {number} ms */
  timeout(ms) {
    this.#timeout = ms;
    return this;
  }

  /**
   * @param {string} event
   * @param {any} payload
   * @param {(error: Error | null, ack?: any) => void} callback
   */
  emit(event, payload, callback) {
    let done = false;
    const answer = (/** @type {Error | null} */ error, /** @type {any} */ ack) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.#pendingAnswers.delete(answer);
      callback(error, ack);
    };
    const timer = setTimeout(() => answer(new Error("operation has timed out")), this.#timeout);
    const sentOn = this.#connectionId;
    later(() => {
      if (!this.connected || this.#connectionId !== sentOn) return;
      const ack = this.server.handle(this, event, structuredClone(payload));
      if (ack !== undefined) {
        later(() => this.connected && this.#connectionId === sentOn && answer(null, ack));
      }
    });
    this.#pendingAnswers.add(answer);
    return this;
  }

  /** Server side: deliver an event to this client. @param {string} event @param {any} body */
  deliver(event, body) {
    later(() => this.connected && this.#fire(this.#handlers, event, body));
  }

  /** Server side: the connection breaks; socket.io-client reconnects while active. */
  /** @param {string} reason */
  drop(reason) {
    if (!this.connected) return;
    this.#close(reason);
    if (this.active) this.#retry = setTimeout(() => this.#attempt(), this.#reconnectDelayMs);
  }

  #connectionId = 0;
  /** @type {Set<(error: Error) => void>} */
  #pendingAnswers = new Set();

  #attempt() {
    this.#retry = null;
    if (!this.active || this.connected) return;
    if (!this.server.up) {
      later(() => this.#fire(this.#handlers, "connect_error", new Error("xhr poll error")));
      this.#retry = setTimeout(() => this.#attempt(), this.#reconnectDelayMs);
      return;
    }
    later(() => {
      if (!this.active || this.connected || !this.server.up) return;
      this.connected = true;
      this.#connectionId++;
      this.memberId = `m${++memberCount}`; // per connection, as on the server
      this.joined.clear();
      this.server.sockets.add(this);
      this.#fire(this.#handlers, "connect");
    });
  }

  /** @param {string} reason */
  #close(reason) {
    this.connected = false;
    this.server.sockets.delete(this);
    for (const room of this.joined) this.server.left(this, room);
    this.joined.clear();
    this.#fire(this.#handlers, "disconnect", reason);
    for (const answer of this.#pendingAnswers) answer(new Error("socket has been disconnected"));
    this.#pendingAnswers.clear();
  }

  /** @param {Map<string, Function[]>} handlers @param {string} event @param {...any} args */
  #fire(handlers, event, ...args) {
    for (const fn of handlers.get(event) ?? []) fn(...args);
  }
}

/**
 * An `io()` for KpkClient's `io` option: every socket it makes talks to `server`.
 * @param {FakeServer} server
 */
export function fakeIo(server) {
  /** @type {FakeSocket[]} */
  const sockets = [];
  const io = (/** @type {string} */ url, /** @type {Record<string, any>} */ options) => {
    const socket = new FakeSocket(server, { url, ...options });
    sockets.push(socket);
    return socket;
  };
  io.sockets = sockets;
  return io;
}

/**
 * Poll `condition` until it holds, failing after `timeoutMs`.
 * @param {() => boolean} condition
 * @param {string} what
 */
export async function until(condition, what, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

let memberCount = 0;

/** @param {FakeSocket} socket @param {string} room */
function memberOf(socket, room) {
  return { id: socket.memberId, user: `anonymous-${socket.memberId}`, name: null, meta: socket.metas.get(room) ?? {} };
}

/** @param {Map<string, Function[]>} map @param {string} key @param {Function} fn */
function add(map, key, fn) {
  map.set(key, [...(map.get(key) ?? []), fn]);
}

/** @param {() => void} fn */
function later(fn) {
  setImmediate(fn);
}
