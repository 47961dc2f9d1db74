// A joined room: local edits applied at once and sent in debounced batches, changes of others
// applied in rev order, and the catch-up after every reconnect (docs/protocol.md, "a correct
// client"). The connection itself is the client's; a Room reaches it through a RoomLink.

import { KpkError, KpkEvent, isRetryable, retryAfterMs } from "./error.js";
import { committedFromWire, makeChange, updatePayload } from "./change.js";
import { RoomState } from "./room-state.js";
import { Presence } from "./presence.js";
import { RoomTexts } from "./text.js";

/** @typedef {import("./change.js").Committed} Committed */
/** @typedef {import("./change.js").State} State */
/** @typedef {import("./change.js").JSONValue} JSONValue */
/** @typedef {import("./room-state.js").Outgoing} Outgoing */
/** @typedef {import("./presence.js").Member} Member */
/** @typedef {import("./presence.js").PresenceChange} PresenceChange */
/** @typedef {"connecting" | "live" | "offline" | "error"} Status */
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
 * @property {(room: Room) => void} release  the room is closed
 */
/**
 * @typedef {object} RoomOptions
 * @property {number} [debounceMs]  batch local edits over this window (default 500)
 * @property {number} [gapWaitMs]  wait this long for a missing rev before a sync (default 1000)
 * @property {number} [retryDelayMs]  first delay before retrying a failed request (default 500)
 */

/** @typedef {"debounce" | "gap" | "retry" | "rejoin"} TimerName */

const MAX_RETRY_DELAY_MS = 5000;
/** @type {TimerName[]} */
const TIMERS = ["debounce", "gap", "retry", "rejoin"];

export class Room extends EventTarget {
  #link;
  #state = new RoomState();
  #presence = new Presence();
  /** @type {Record<string, any>} */
  #meta = {};
  #texts = new RoomTexts((change) => this.update(change));
  #debounceMs;
  #gapWaitMs;
  #retryDelayMs;
  #retryDelay;
  /** @type {Status} */
  #status = "connecting";
  #wasLive = false;
  /** @type {KpkError | null} */
  #failure = null;
  #closed = false;
  #joinRun = 0;
  #joinedOn = -1;
  #caughtUpOn = -1;
  /** @type {Promise<void> | null} */
  #syncing = null;
  #syncAgain = false;
  #holding = false; // a change was refused or timed out: send nothing until a sync
  #due = false;
  #lastCount = 0;
  /** @type {Record<TimerName, ReturnType<typeof setTimeout> | null>} */
  #timers = { debounce: null, gap: null, retry: null, rejoin: null };
  /** @type {Set<{resolve: () => void, reject: (error: Error) => void}>} */
  #waiters = new Set();
  /** @type {{resolve: (room: Room) => void, reject: (error: Error) => void}} */
  #ready = { resolve: () => {}, reject: () => {} };

  /**
   * @param {string} id
   * @param {RoomLink} link
   * @param {RoomOptions} [options]
   */
  constructor(id, link, { debounceMs = 500, gapWaitMs = 1000, retryDelayMs = 500 } = {}) {
    super();
    this.id = id;
    this.#link = link;
    this.#debounceMs = debounceMs;
    this.#gapWaitMs = gapWaitMs;
    this.#retryDelayMs = this.#retryDelay = retryDelayMs;
    /** Resolves when the room is first live; rejects if the server refuses it. */
    this.ready = new Promise((resolve, reject) => (this.#ready = { resolve, reject }));
    this.ready.catch(() => {});
  }

  /**
   * The state as this page sees it: the server's, with this page's own edits on top; a text
   * field bound with text() shows its document, which holds every edit received.
   */
  get state() {
    return this.#texts.show(this.#state.view);
  }

  /**
   * The text field `field` (a collaborative string: concurrent edits merge per character):
   * `bind(element)` for a <textarea> or contenteditable, `ytext` (a Y.Text) for editor
   * bindings, `toString()`. A field holding a plain string becomes a text holding it.
   * @param {string} field
   * @returns {import("./text.js").TextHandle}
   */
  text(field) {
    return this.#texts.text(field, this.#state.view[field]);
  }

  /** The server revision the confirmed state is at. */
  get rev() {
    return this.#state.rev;
  }

  get status() {
    return this.#status;
  }

  /** How many fields have local edits the server has not acknowledged yet. */
  get pendingCount() {
    return this.#state.unacknowledged;
  }

  /** The error that put the room in status `error`, if any. */
  get error() {
    return this.#failure;
  }

  /** Everyone in the room now, on every node, this page included (`room.me`). */
  get members() {
    return this.#presence.members;
  }

  /** This page as the other members see it, once joined. */
  get me() {
    return this.#presence.me;
  }

  /**
   * Show `meta` (an object, at most 1 KiB encoded) to the other members; kept for later
   * joins. Resolves once the server took it; rejects with KpkError (`too_large`, ...).
   * @param {Record<string, any>} meta
   */
  async setMeta(meta) {
    this.#meta = { ...meta };
    if (!this.#link.connected || this.#joinedOn !== this.#link.connection) return;
    await this.#link.request("presence", { room: this.id, meta: this.#meta });
    this.#presenceChanged(this.#presence.metaSet(this.#meta));
  }

  /**
   * Send `data` (JSON, at most 4 KiB encoded) to every other member now; never stored.
   * Rejects with KpkError (`rate_limited`, `too_large`, `not_joined`, `disconnected`).
   * @param {JSONValue} data
   * @returns {Promise<void>}
   */
  async signal(data) {
    await this.#link.request("signal", { room: this.id, data });
  }

  /** @param {string} field @param {JSONValue} value */
  set(field, value) {
    if (this.#texts.set(field, value)) return; // a string set of a bound text edits it
    this.update({ set: { [field]: value } });
  }

  /** @param {string} field */
  unset(field) {
    this.update({ unset: [field] });
  }

  /** @param {State} state  the whole new state: fields not in it are removed */
  replace(state) {
    this.update({ set: state, replace: true });
  }

  /**
   * Apply a local change now; it goes out with the others of its debounce window.
   * @param {{set?: State, unset?: string[], replace?: boolean, text?: {[field: string]: string}}} change
   */
  update(change) {
    if (this.#closed) throw new KpkError("closed", `room ${this.id} is closed`);
    const checked = makeChange(change);
    if (!checked.replace && !checked.unset.length && !Object.keys(checked.set).length && !checked.text) return;
    this.#state.edit(checked);
    if (this.#timers.debounce === null && !this.#due) {
      this.#timers.debounce = setTimeout(() => {
        this.#timers.debounce = null;
        this.#due = true;
        this.#pump();
      }, this.#debounceMs);
    }
    this.#settled();
  }

  /**
   * Send local edits now, and resolve once the server has acknowledged all of them.
   * @param {{timeoutMs?: number}} [options]
   * @returns {Promise<void>}
   */
  flush({ timeoutMs = 10000 } = {}) {
    this.#clearTimer("debounce");
    this.#due = this.#state.pending !== null;
    this.#pump();
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new KpkError("timeout", `edits not acknowledged within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (/** @type {Error} */ error) => (clearTimeout(timer), reject(error)),
      };
      this.#waiters.add(waiter);
    });
  }

  /**
   * Flush, leave the room and stop. Edits the server cannot take within `timeoutMs` (or
   * at all, when offline) are dropped.
   * @param {{timeoutMs?: number}} [options]
   */
  async close({ timeoutMs = 5000 } = {}) {
    if (this.#closed) return;
    if (this.#link.connected) await this.flush({ timeoutMs }).catch(() => {});
    this.#closed = true;
    for (const name of TIMERS) this.#clearTimer(name);
    const closed = new KpkError("closed", `room ${this.id} is closed`);
    for (const waiter of this.#waiters) waiter.reject(closed);
    this.#waiters.clear();
    this.#ready.reject(closed);
    this.#refreshStatus();
    if (this.#link.connected && this.#joinedOn === this.#link.connection) {
      await this.#link.request("leave", { room: this.id }).catch(() => {});
    }
    this.#link.release(this);
  }

  /**
   * `listener(event.detail)` for each event of `type`; returns a function that unsubscribes.
   * Events: `change` (a change of another member, or a whole new state, was applied),
   * `status` ({status, reconnecting, error}), `pending` ({count}), `error` ({error, change}),
   * `presence` ({kind: joined | left | updated | reset, members}: see `room.members`),
   * `signal` ({from, data}: `from` is the sender's member id, null from the server side).
   * @param {"change" | "status" | "pending" | "error" | "presence" | "signal"} type
   * @param {(detail: any) => void} listener
   */
  on(type, listener) {
    const handler = (/** @type {Event} */ event) => listener(/** @type {KpkEvent} */ (event).detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  // Called by the client.

  /** The connection came up, went down or changed status. */
  connectionChanged() {
    const link = this.#link;
    if (this.#closed || this.#failure) return;
    if (link.connected && this.#joinedOn !== link.connection) {
      this.#rejoin();
    } else if (!link.connected) {
      this.#joinRun++;
      this.#joinedOn = this.#caughtUpOn = -1;
      this.#presenceChanged(this.#presence.left());
    }
    this.#refreshStatus();
  }

  /** @param {unknown} body  an `update` event for this room */
  received(body) {
    if (this.#closed) return;
    this.#changed(this.#state.remote(committedFromWire(body)));
  }

  /** @param {unknown} body  a `presence` event for this room */
  receivedPresence(body) {
    if (!this.#closed) this.#presenceChanged(this.#presence.event(body));
  }

  /** @param {any} body  a `signal` event for this room */
  receivedSignal(body) {
    if (this.#closed) return;
    this.#emit("signal", { from: typeof body?.from === "string" ? body.from : null, data: body?.data });
  }

  /** @param {PresenceChange[]} changes */
  #presenceChanged(changes) {
    for (const change of changes) this.#emit("presence", change);
  }

  async #rejoin() {
    const run = ++this.#joinRun;
    const link = this.#link;
    const connection = link.connection;
    const current = () => run === this.#joinRun && link.connected && link.connection === connection;
    this.#joinedOn = this.#caughtUpOn = -1;
    let delay = this.#retryDelayMs;
    while (!this.#closed && current()) {
      try {
        const meta = Object.keys(this.#meta).length ? { meta: this.#meta } : {};
        this.#presence.joining();
        const ack = await link.request("join", { room: this.id, ...meta }).catch((error) => {
          this.#presenceChanged(this.#presence.left());
          throw error;
        });
        if (!current()) return;
        this.#joinedOn = connection;
        this.#presenceChanged(this.#presence.joined(ack));
        this.#texts.tookWhole(ack);
        const { applied, needsSync } = this.#state.joined(ack.rev, ack.state, ack.tag ?? null);
        this.#changed(applied);
        if (needsSync) await this.#sync(); // recognises our changes whose acks were lost, by their ids
        if (!current()) return;
        this.#caughtUpOn = connection;
        this.#holding = false;
        this.#refreshStatus();
        this.#checkGap();
        this.#pump();
        return;
      } catch (error) {
        const failure = asKpkError(error);
        if (!isRetryable(failure.code)) return this.#fail(failure);
        if (failure.code === "disconnected") return; // the next connect joins again
        const wait = Math.max(delay, retryAfterMs(failure));
        await new Promise((resolve) => (this.#timers.rejoin = setTimeout(resolve, wait)));
        delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
      }
    }
  }

  /** Bring `confirmed` up to date from `rev`; concurrent calls share one run. */
  #sync() {
    if (this.#syncing) {
      this.#syncAgain = true;
      return this.#syncing;
    }
    const run = async () => {
      do {
        this.#syncAgain = false;
        const { rev: since, tag } = this.#state;
        // With our tag the server answers with the whole state if our history is not the
        // room's any more (Redis lost data and moved on).
        const ack = await this.#link.request("sync", { room: this.id, since, ...(tag ? { tag } : {}) });
        if (ack.state && typeof ack.state === "object") {
          this.#texts.tookWhole(ack);
          this.#changed(this.#state.reset(ack.rev, ack.state, ack.tag ?? null));
        } else {
          const applied = [];
          for (const body of ack.changes) applied.push(...this.#state.remote(committedFromWire(body)));
          this.#changed(applied);
        }
      } while (this.#syncAgain);
    };
    this.#syncing = run().finally(() => (this.#syncing = null));
    return this.#syncing;
  }

  /** A sync outside of a rejoin: after a gap, or before sending a refused change again. */
  #syncThenSend() {
    this.#sync().then(
      () => {
        this.#holding = false;
        this.#retryDelay = this.#retryDelayMs;
        this.#checkGap();
        this.#pump();
      },
      (error) => {
        const failure = asKpkError(error);
        if (failure.code === "disconnected" || this.#closed) return; // rejoin does it
        if (failure.code === "not_joined") return void this.#rejoin();
        this.#later(() => this.#syncThenSend(), retryAfterMs(failure));
      },
    );
  }

  /** Send what can be sent: changes not sent on this connection, then the pending batch. */
  #pump() {
    const link = this.#link;
    const ready = link.connected && this.#caughtUpOn === link.connection;
    if (!ready || this.#failure || this.#syncing || this.#holding) return;
    for (const entry of this.#state.inFlight) if (entry.sentOn !== link.connection) this.#send(entry);
    // One update in flight at a time: if it were refused while a later one got through,
    // sending it again would put an older value over a newer one.
    if (this.#due && this.#state.inFlight.length === 0) {
      this.#due = false;
      const entry = this.#state.send(link.nextChangeId(), link.connection);
      if (entry) this.#send(entry);
    }
  }

  /** @param {Outgoing} entry */
  #send(entry) {
    const connection = this.#link.connection;
    entry.sentOn = connection;
    this.#link.request("update", updatePayload(this.id, entry.id, entry.change)).then(
      (ack) => {
        this.#texts.took(ack); // the server's edits made of our sets of texts
        this.#changed(this.#state.acknowledged(entry.id, ack.rev, ack.tag ?? null));
        this.#pump();
      },
      (error) => this.#refused(entry, asKpkError(error), connection),
    );
  }

  /**
   * @param {Outgoing} entry
   * @param {KpkError} error
   * @param {number} connection  the one the change went out on
   */
  #refused(entry, error, connection) {
    if (!isRetryable(error.code)) {
      if (this.#state.drop(entry.id)) this.#emit("error", { error, change: entry.change });
      this.#changed([]);
      this.#pump();
      return;
    }
    if (error.code === "disconnected" || connection !== this.#link.connection || this.#closed) return;
    if (!this.#state.inFlight.includes(entry)) return;
    // Unanswered or failed: requests of one connection are handled in order, so a sync sent
    // now shows whether it was committed; it is sent again (same id) if it was not.
    entry.sentOn = null;
    if (error.code === "not_joined") return void this.#rejoin();
    if (this.#holding) return;
    this.#holding = true;
    this.#later(() => this.#syncThenSend(), retryAfterMs(error));
  }

  /** Sync now when a missing rev cannot be ours; give it a moment when it may be. */
  #checkGap() {
    const link = this.#link;
    if (!this.#state.hasGap) return this.#clearTimer("gap");
    if (this.#joinedOn !== link.connection || this.#syncing) return;
    const awaitingAck = this.#state.inFlight.some((entry) => entry.sentOn === link.connection);
    if (this.#state.held.size > 0 && !awaitingAck) {
      this.#clearTimer("gap");
      return this.#syncThenSend();
    }
    if (this.#timers.gap !== null) return;
    this.#timers.gap = setTimeout(() => {
      this.#timers.gap = null;
      if (this.#state.hasGap && this.#joinedOn === link.connection) this.#syncThenSend();
    }, this.#gapWaitMs);
  }

  /** @param {Committed[]} applied  changes of others just applied to the state */
  #changed(applied) {
    for (const committed of applied) this.#texts.took(committed);
    for (const committed of applied) this.#emit("change", committed);
    this.#checkGap();
    this.#settled();
  }

  #settled() {
    const count = this.#state.unacknowledged;
    if (count !== this.#lastCount) {
      this.#lastCount = count;
      this.#emit("pending", { count });
    }
    if (!this.#idle()) return;
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
  }

  #idle() {
    return this.#state.pending === null && this.#state.inFlight.length === 0;
  }

  /** @param {KpkError} error */
  #fail(error) {
    this.#failure = error;
    this.#ready.reject(error);
    this.#emit("error", { error, change: null });
    this.#refreshStatus();
  }

  #refreshStatus() {
    const link = this.#link;
    /** @type {Status} */
    let status = "connecting";
    if (this.#failure || link.linkStatus === "error") status = "error";
    else if (this.#closed || link.linkStatus === "offline") status = "offline";
    else if (link.connected && this.#caughtUpOn === link.connection) status = "live";
    if (status === this.#status) return;
    this.#status = status;
    const reconnecting = status === "connecting" && this.#wasLive;
    if (status === "live") {
      this.#wasLive = true;
      this.#ready.resolve(this);
    } else if (status === "error" && !this.#wasLive) {
      this.#ready.reject(this.#failure ?? asKpkError(link.linkError));
    }
    this.#emit("status", { status, reconnecting, error: this.#failure ?? link.linkError });
  }

  /**
   * @param {() => void} step  run after the current retry delay, which then grows
   * @param {number} [atLeastMs]  what the server asked to wait (rate_limited)
   */
  #later(step, atLeastMs = 0) {
    this.#clearTimer("retry");
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
    this.#timers.retry = setTimeout(() => {
      this.#timers.retry = null;
      if (!this.#closed) step();
    }, Math.max(delay, atLeastMs));
  }

  /** @param {TimerName} name */
  #clearTimer(name) {
    const timer = this.#timers[name];
    if (timer !== null) clearTimeout(timer);
    this.#timers[name] = null;
  }

  /** @param {string} type @param {unknown} detail */
  #emit(type, detail) {
    this.dispatchEvent(new KpkEvent(type, detail));
  }
}

/** @param {unknown} error */
function asKpkError(error) {
  if (error instanceof KpkError) return error;
  return new KpkError("internal", error instanceof Error ? error.message : String(error));
}
