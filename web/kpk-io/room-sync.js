// The protocol side of a Room (docs/protocol.md, "a correct client"): joining on every
// connection, catching up (sync, gaps), sending local edits one update at a time with retries.
// The state after each event is RoomState's; what the page sees is Room's (room.js).

import { KpkError, asKpkError, isRetryable, retryAfterMs } from "./error.js";
import { committedFromWire, updatePayload } from "./change.js";
import { MAX_RETRY_DELAY_MS, RoomTimers } from "./room-timers.js";

/** @typedef {import("./change.js").Committed} Committed */ /** @typedef {import("./connect.js").RoomLink} RoomLink */
/** @typedef {import("./room-state.js").RoomState} RoomState */ /** @typedef {import("./room-state.js").Outgoing} Outgoing */
/** @typedef {import("./presence.js").Presence} Presence */ /** @typedef {import("./presence.js").PresenceChange} PresenceChange */
/** @typedef {import("./room-host.js").RoomHost} RoomHost */

export class RoomSync {
  #host;
  #link;
  #state;
  #presence;
  #options;
  #joinRun = 0;
  /** The connection this room joined on, and the one it caught up on (-1: none). */
  joinedOn = -1;
  caughtUpOn = -1;
  /** @type {Promise<void> | null} */
  #syncing = null;
  #syncAgain = false;
  #holding = false; // a change was refused or timed out: send nothing until a sync
  #due = false;
  /** @type {RoomTimers} */
  #timers;

  /**
   * @param {RoomHost} host
   * @param {RoomLink} link
   * @param {RoomState} state
   * @param {Presence} presence
   * @param {{debounceMs: number, gapWaitMs: number, retryDelayMs: number}} options
   */
  constructor(host, link, state, presence, options) {
    this.#host = host;
    this.#link = link;
    this.#state = state;
    this.#presence = presence;
    this.#options = options;
    this.#timers = new RoomTimers(options.retryDelayMs, () => host.closed());
  }

  /** Whether nothing is waiting to be sent or acknowledged. */
  get idle() {
    return this.#state.pending === null && this.#state.inFlight.length === 0;
  }

  /** A local edit was made: send it when its debounce window ends. */
  edited() {
    if (this.#timers.running("debounce") || this.#due) return;
    this.#timers.start("debounce", this.#options.debounceMs, () => {
      this.#due = true;
      this.#pump();
    });
  }

  /** Send what is pending now, without waiting for the debounce window. */
  sendNow() {
    this.#timers.clear("debounce");
    this.#due = this.#state.pending !== null;
    this.#pump();
  }

  stop() {
    this.#timers.stop();
  }

  /** The connection came up, went down or changed status. */
  connectionChanged() {
    const link = this.#link;
    if (link.connected && this.joinedOn !== link.connection) {
      this.#rejoin();
    } else if (!link.connected) {
      this.#joinRun++;
      this.joinedOn = this.caughtUpOn = -1;
      this.#state.left();
      this.#host.presenceChanged(this.#presence.left());
    }
  }

  /** @param {unknown} body  an `update` event for this room */
  received(body) {
    this.#changed(this.#state.remote(committedFromWire(body)));
  }

  async #rejoin() {
    const run = ++this.#joinRun;
    const link = this.#link;
    const connection = link.connection;
    const current = () => run === this.#joinRun && link.connected && link.connection === connection;
    this.joinedOn = this.caughtUpOn = -1;
    let delay = this.#options.retryDelayMs;
    while (!this.#host.closed() && current()) {
      try {
        await this.#join(connection, current);
        return;
      } catch (error) {
        const failure = asKpkError(error);
        if (!isRetryable(failure.code)) return this.#host.fail(failure);
        if (failure.code === "disconnected") return; // the next connect joins again
        const wait = Math.max(delay, retryAfterMs(failure));
        await new Promise((resolve) => this.#timers.start("rejoin", wait, () => resolve(undefined)));
        delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
      }
    }
  }

  /** @param {number} connection @param {() => boolean} current */
  async #join(connection, current) {
    const meta = this.#host.meta();
    this.#presence.joining();
    this.#state.joining();
    const body = { room: this.#host.id, ...(Object.keys(meta).length ? { meta } : {}) };
    const ack = await this.#link.request("join", body).catch((error) => {
      this.#state.left();
      this.#host.presenceChanged(this.#presence.left());
      throw error;
    });
    if (!current()) return;
    this.joinedOn = connection;
    this.#host.presenceChanged(this.#presence.joined(ack));
    this.#host.tookWhole(ack);
    const { applied, needsSync } = this.#state.joined(ack.rev, ack.state, ack.tag ?? null);
    this.#changed(applied);
    if (needsSync) await this.#sync(); // recognises our changes whose acks were lost, by their ids
    if (!current()) return;
    this.caughtUpOn = connection;
    this.#holding = false;
    this.#host.statusChanged();
    this.#checkGap();
    this.#pump();
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
        const ack = await this.#link.request("sync", { room: this.#host.id, since, ...(tag ? { tag } : {}) });
        if (ack.state && typeof ack.state === "object") {
          this.#host.tookWhole(ack);
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
        this.#timers.succeeded();
        this.#checkGap();
        this.#pump();
      },
      (error) => {
        const failure = asKpkError(error);
        if (failure.code === "disconnected" || this.#host.closed()) return; // rejoin does it
        if (failure.code === "not_joined") return void this.#rejoin();
        this.#timers.later(() => this.#syncThenSend(), retryAfterMs(failure));
      },
    );
  }

  /** Send what can be sent: changes not sent on this connection, then the pending batch. */
  #pump() {
    const link = this.#link;
    const ready = link.connected && this.caughtUpOn === link.connection;
    if (!ready || this.#host.failure() || this.#syncing || this.#holding) return;
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
    this.#link.request("update", updatePayload(this.#host.id, entry.id, entry.change)).then(
      (ack) => {
        this.#host.tookAck(ack, entry.change);
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
    if (error.code === "text_stale") return this.#retype(entry, connection);
    if (!isRetryable(error.code)) {
      if (this.#state.drop(entry.id)) this.#host.dropped(error, entry.change);
      this.#changed([]);
      this.#pump();
      return;
    }
    if (error.code === "disconnected" || connection !== this.#link.connection || this.#host.closed()) return;
    if (!this.#state.inFlight.includes(entry)) return;
    // Unanswered or failed: requests of one connection are handled in order, so a sync sent
    // now shows whether it was committed; it is sent again (same id) if it was not.
    entry.sentOn = null;
    if (error.code === "not_joined") return void this.#rejoin();
    if (this.#holding) return;
    this.#holding = true;
    this.#timers.later(() => this.#syncThenSend(), retryAfterMs(error));
  }

  /**
   * After text_stale: sync (it brings the unset, replace or lost room the edit missed), then
   * the edited texts start over and their typing is sent again; the change's other fields
   * are sent again as they were.
   * @param {Outgoing} entry
   * @param {number} connection
   */
  #retype(entry, connection) {
    if (connection !== this.#link.connection || this.#host.closed()) return;
    this.#holding = true;
    this.#sync().then(
      () => {
        this.#holding = false;
        if (this.#state.drop(entry.id)) {
          const { change } = entry;
          const text = change.text ?? {};
          const set = Object.fromEntries(Object.entries(change.set).filter(([name]) => !Object.hasOwn(text, name)));
          if (Object.keys(set).length || change.unset.length || change.replace) this.#state.edit({ set, unset: change.unset, replace: change.replace });
          this.#host.staleText(change);
          this.#due = this.#state.pending !== null;
        }
        this.#changed([]);
        this.#pump();
      },
      (error) => {
        this.#holding = false;
        const failure = asKpkError(error);
        if (failure.code === "disconnected" || this.#host.closed()) return; // rejoin sends it again
        entry.sentOn = null; // sent again as it was, the server refuses it again, this runs again
        this.#timers.later(() => this.#syncThenSend(), retryAfterMs(failure));
      },
    );
  }

  /** Sync now when a missing rev cannot be ours; give it a moment when it may be. */
  #checkGap() {
    const link = this.#link;
    if (!this.#state.hasGap) return this.#timers.clear("gap");
    if (this.joinedOn !== link.connection || this.#syncing) return;
    const awaitingAck = this.#state.inFlight.some((entry) => entry.sentOn === link.connection);
    if (this.#state.held.size > 0 && !awaitingAck) {
      this.#timers.clear("gap");
      return this.#syncThenSend();
    }
    if (this.#timers.running("gap")) return;
    this.#timers.start("gap", this.#options.gapWaitMs, () => {
      if (this.#state.hasGap && this.joinedOn === link.connection) this.#syncThenSend();
    });
  }

  /** @param {Committed[]} applied  changes of others just applied to the state */
  #changed(applied) {
    this.#host.applied(applied);
    this.#checkGap();
    this.#host.settled();
  }
}
