// A joined room: local edits applied at once and sent in debounced batches, changes of others
// applied in rev order, and the catch-up after every reconnect (docs/protocol.md, "a correct
// client"). The connection itself is the client's; a Room reaches it through a RoomLink.

import { KpkError, KpkEvent, asKpkError } from "./error.js";
import { makeChange } from "./change.js";
import { RoomState } from "./room-state.js";
import { RoomSync } from "./room-sync.js";
import { Presence } from "./presence.js";
import { RoomTexts } from "./text.js";
import { Waiters } from "./waiters.js";

/** @typedef {import("./change.js").State} State */
/** @typedef {import("./change.js").JSONValue} JSONValue */
/** @typedef {import("./presence.js").PresenceChange} PresenceChange */
/** @typedef {"connecting" | "live" | "offline" | "error"} Status */
/** @typedef {import("./connect.js").RoomLink} RoomLink */
/** @typedef {import("./connect.js").RoomOptions} RoomOptions */

export class Room extends EventTarget {
  #link;
  #state = new RoomState();
  #presence = new Presence();
  #sync;
  /** @type {Record<string, any>} */
  #meta = {};
  #texts = new RoomTexts(
    (change) => this.update(change),
    (field) => this.#state.forgetText(field),
  );
  /** @type {Status} */
  #status = "connecting";
  #wasLive = false;
  /** @type {KpkError | null} */
  #failure = null;
  #closed = false;
  #lastCount = 0;
  #waiters = new Waiters();
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
    /** @type {import("./room-host.js").RoomHost} */
    const host = {
      id,
      closed: () => this.#closed,
      failure: () => this.#failure,
      meta: () => this.#meta,
      applied: (applied) => {
        // A whole state (reset) reached the texts already (tookWhole).
        for (const committed of applied) if (!committed.reset) this.#texts.tookChange(committed);
        for (const committed of applied) this.#emit("change", committed);
      },
      tookWhole: (ack) => this.#texts.tookWhole(ack),
      tookAck: (ack, change) => {
        this.#texts.took(ack); // the server's edits made of our sets of texts
        this.#texts.acknowledged(change);
      },
      staleText: (change) => this.#texts.stale(change),
      settled: () => this.#settled(),
      presenceChanged: (changes) => this.#presenceChanged(changes),
      dropped: (error, change) => this.#emit("error", { error, change }),
      fail: (error) => this.#fail(error),
      statusChanged: () => this.#refreshStatus(),
    };
    this.#sync = new RoomSync(host, link, this.#state, this.#presence, { debounceMs, gapWaitMs, retryDelayMs });
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
    if (!this.#link.connected || this.#sync.joinedOn !== this.#link.connection) return;
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
    this.#texts.removed([field]);
    this.update({ unset: [field] });
  }

  /** @param {State} state  the whole new state: fields not in it are removed */
  replace(state) {
    this.#texts.removed(this.#texts.bound.filter((name) => !Object.hasOwn(state, name)));
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
    this.#sync.edited();
    this.#settled();
  }

  /**
   * Send local edits now, and resolve once the server has acknowledged all of them.
   * @param {{timeoutMs?: number}} [options]
   * @returns {Promise<void>}
   */
  flush({ timeoutMs = 10000 } = {}) {
    this.#sync.sendNow();
    return this.#sync.idle ? Promise.resolve() : this.#waiters.wait(timeoutMs);
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
    this.#sync.stop();
    const closed = new KpkError("closed", `room ${this.id} is closed`);
    this.#waiters.rejectAll(closed);
    this.#ready.reject(closed);
    this.#refreshStatus();
    if (this.#link.connected && this.#sync.joinedOn === this.#link.connection) {
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
    if (this.#closed || this.#failure) return;
    this.#sync.connectionChanged();
    this.#refreshStatus();
  }

  /** @param {unknown} body  an `update` event for this room */
  received(body) {
    if (!this.#closed) this.#sync.received(body);
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

  #settled() {
    const count = this.#state.unacknowledged;
    if (count !== this.#lastCount) {
      this.#lastCount = count;
      this.#emit("pending", { count });
    }
    if (this.#sync.idle) this.#waiters.resolveAll();
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
    else if (link.connected && this.#sync.caughtUpOn === link.connection) status = "live";
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

  /** @param {string} type @param {unknown} detail */
  #emit(type, detail) {
    this.dispatchEvent(new KpkEvent(type, detail));
  }
}
