// One room's state as this client sees it: the confirmed state and the local changes on top.
// Pure bookkeeping with no I/O and no timers (kpk_io/client_room.py does the same in Python).
//
// `confirmed` is the state at `rev` as the server has it. Changes of other members and this
// client's own acknowledged changes are applied to it strictly in rev order: `held` keeps
// what arrived ahead of a gap, `own` keeps acknowledged changes of ours that are ahead of one.
// Local edits are merged into `pending`; a change that was sent waits in `inFlight`, under
// the id it was sent with, until its ack (or a sync result carrying that id) gives its rev.
// kpk_io/room_state.py is its twin; tests/client_vectors.json ("transitions") pins both.
//
// A rev carries exactly one change. When an ack and a committed change name the same rev
// with different ids, the one reported last wins: the server reports in commit order, so a
// later report of the same rev comes from a commit that rewrote the room's history.
// A tag names one commit, though: a whole state (`replace`) with the tag of our ack is that
// commit's state, our change included, so the ack never undoes it; and a whole state at our
// rev is the server's word on that rev, over whatever we made of it.

import { applyChange, mergeChanges, sameJson, touchedFields } from "./change.js";

/** @typedef {import("./change.js").Change} Change */
/** @typedef {import("./change.js").Committed} Committed */
/** @typedef {import("./change.js").State} State */
/**
 * A change that was sent: `sentOn` is the connection it went out on, or null when it must
 * be sent again once a sync has shown it was not committed.
 * @typedef {{id: string, change: Change, sentOn: number | null}} Outgoing
 */

export class RoomState {
  constructor() {
    /** @type {State} */
    this.confirmed = {};
    this.rev = 0;
    /** The tag of the commit that made `rev`: a sync names it, so the server can tell whether
     * our history is still the room's (after Redis lost data it may not be). */
    /** @type {string | null} */
    this.tag = null;
    /** @type {Map<number, {id: string, change: Change, tag: string | null}>} */
    this.own = new Map();
    /** @type {Map<number, Committed>} */
    this.held = new Map();
    /** @type {Outgoing[]} */
    this.inFlight = [];
    /** @type {Change | null} */
    this.pending = null;
    this.everJoined = false;
    /** Updates that overtook the ack of a join on its way: they come after its snapshot (of
     * the room's current history), so they are applied on top of it, whatever we had. */
    /** @type {Committed[] | null} */
    this.early = null;
  }

  /** The state as this client sees it: confirmed, then its own changes on top. */
  get view() {
    const view = structuredClone(this.confirmed);
    for (const rev of [...this.own.keys()].sort((a, b) => a - b)) {
      applyChange(/** @type {{change: Change}} */ (this.own.get(rev)).change, view);
    }
    for (const { change } of this.inFlight) applyChange(change, view);
    if (this.pending) applyChange(this.pending, view);
    return view;
  }

  /** How many fields have local changes the server has not acknowledged. */
  get unacknowledged() {
    const changes = this.inFlight.map((entry) => entry.change);
    if (this.pending) changes.push(this.pending);
    return new Set(changes.flatMap(touchedFields)).size;
  }

  /** Whether a rev between `rev` and a change already here is still missing. */
  get hasGap() {
    return this.held.size > 0 || this.own.size > 0;
  }

  /** @param {Change} change  a local edit, merged into what is not sent yet */
  edit(change) {
    this.pending = this.pending ? mergeChanges(this.pending, change) : change;
  }

  /**
   * Take the unsent edits of text `field` (and its string) out of `pending`: they were made
   * on a document the field has started over from (text.js).
   * @param {string} field
   */
  forgetText(field) {
    const pending = this.pending;
    if (!pending?.text || !Object.hasOwn(pending.text, field)) return;
    const set = { ...pending.set };
    const text = { ...pending.text };
    delete set[field];
    delete text[field];
    const left = { set, unset: pending.unset, replace: pending.replace, ...(Object.keys(text).length ? { text } : {}) };
    this.pending = Object.keys(set).length || left.text || left.unset.length || left.replace ? left : null;
  }

  /**
   * Move the pending change to in-flight under `id`.
   * @param {string} id
   * @param {number} connection
   * @returns {Outgoing | null}
   */
  send(id, connection) {
    if (!this.pending) return null;
    const entry = { id, change: this.pending, sentOn: connection };
    this.pending = null;
    this.inFlight.push(entry);
    return entry;
  }

  /**
   * The ack of change `id`: it was committed as `rev`, with `tag`.
   * @param {string} id
   * @param {number} rev
   * @param {string | null} [tag]
   * @returns {Committed[]} changes of others now applied
   */
  acknowledged(id, rev, tag = null) {
    const entry = this.#takeInFlight(id);
    if (entry && rev > this.rev && !this.#holdsWhole(rev, tag)) {
      this.held.delete(rev); // reported before this ack: the ack is the later word
      this.own.set(rev, { id, change: entry.change, tag });
    }
    return this.#advance();
  }

  /**
   * Forget change `id`: the server refused it for good.
   * @param {string} id
   */
  drop(id) {
    return this.#takeInFlight(id) !== undefined;
  }

  /**
   * A committed change from an `update` event or a `sync` result.
   * @param {Committed} committed
   * @returns {Committed[]} changes of others now applied
   */
  remote(committed) {
    if (this.early) {
      this.early.push(committed);
      return [];
    }
    const entry = committed.id === undefined ? undefined : this.#takeInFlight(committed.id);
    const rev = committed.rev;
    if (rev === this.rev && committed.replace) return this.#supersede(committed);
    if (rev <= this.rev) return []; // known already (or covered by a whole state)
    if (entry) {
      // Ours, whose ack was lost.
      this.held.delete(rev);
      this.own.set(rev, { id: entry.id, change: entry.change, tag: committed.tag ?? null });
    } else if (this.own.has(rev) && this.own.get(rev)?.id === committed.id) {
      return []; // ours, replayed by a sync
    } else {
      this.own.delete(rev);
      this.held.set(rev, committed);
    }
    return this.#advance();
  }

  /**
   * Take the server's whole state at `rev` (a join or a sync that could not list changes).
   * @param {number} rev
   * @param {State} state
   * @param {string | null} [tag]
   * @returns {Committed[]} the reset as one replacing change, then what followed it
   */
  reset(rev, state, tag = null) {
    if (rev < this.rev || (rev === this.rev && tag !== this.tag)) {
      // The server lost history (an in-memory server restarted): what we had past its rev
      // no longer exists there.
      this.own.clear();
      this.held.clear();
    } else {
      for (const r of this.own.keys()) if (r <= rev) this.own.delete(r);
      for (const r of this.held.keys()) if (r <= rev) this.held.delete(r);
    }
    this.confirmed = structuredClone(state);
    this.rev = rev;
    this.tag = tag;
    /** @type {Committed} */
    const snapshot = { rev, set: structuredClone(state), unset: [], replace: true, reset: true };
    return [snapshot, ...this.#advance()];
  }

  /**
   * A join's ack: the changes now applied, and whether a sync must follow.
   * @param {number} rev
   * @param {State} state
   * @param {string | null} [tag]
   * @returns {{applied: Committed[], needsSync: boolean}}
   */
  joined(rev, state, tag = null) {
    const first = !this.everJoined;
    const early = this.early ?? [];
    this.everJoined = true;
    this.early = null;
    let applied = [];
    let needsSync = rev !== this.rev || tag !== this.tag;
    // Behind us only if the server lost data: start over from what it has now. At our own
    // rev and tag with another state, we applied a change on a history the server lost (its
    // ack raced the hub dropping us): the join's state is the truth.
    const same = rev === this.rev && tag === this.tag;
    if (first || rev < this.rev || (same && !sameJson(state, this.confirmed))) {
      applied = this.reset(rev, state, tag);
      needsSync = false;
    }
    for (const committed of early) applied.push(...this.remote(committed));
    return { applied, needsSync };
  }

  /** A join was sent: updates wait for its ack. */
  joining() {
    this.early = [];
  }

  /** The join failed or the connection dropped: updates received meanwhile are moot. */
  left() {
    this.early = null;
  }

  /**
   * Whether a whole state of the commit tagged `tag` already waits at `rev`.
   * @param {number} rev
   * @param {string | null} tag
   */
  #holdsWhole(rev, tag) {
    const held = this.held.get(rev);
    return tag !== null && held !== undefined && held.replace && held.tag === tag;
  }

  /**
   * A whole state at our rev: the server sends one when its history and ours parted (Redis
   * lost data), even for the commit our own ack named, so it replaces ours.
   * @param {Committed} committed
   * @returns {Committed[]}
   */
  #supersede(committed) {
    /** @type {State} */
    const state = {};
    applyChange(committed, state);
    const tag = committed.tag ?? null;
    if (tag === this.tag && sameJson(state, this.confirmed)) return [];
    if (tag !== this.tag) {
      this.own.clear(); // they followed a history the server no longer has
      this.held.clear();
    }
    this.confirmed = state;
    this.tag = tag;
    return [committed, ...this.#advance()];
  }

  /** @param {string} id */
  #takeInFlight(id) {
    const index = this.inFlight.findIndex((entry) => entry.id === id);
    return index < 0 ? undefined : this.inFlight.splice(index, 1)[0];
  }

  /** Apply to `confirmed` everything now contiguous with `rev`. */
  #advance() {
    /** @type {Committed[]} */
    const applied = [];
    for (;;) {
      const next = this.rev + 1;
      const own = this.own.get(next);
      const other = this.held.get(next);
      // Made on another history: a sync (with our tag) brings the server's whole state.
      if (!own && other && !follows(other, this.tag)) break;
      if (own) {
        applyChange(own.change, this.confirmed); // ours: never reported as someone else's
        this.tag = own.tag;
      } else if (other) {
        applyChange(other, this.confirmed);
        this.tag = other.tag ?? null;
        applied.push(other);
      } else {
        break;
      }
      this.own.delete(next);
      this.held.delete(next);
      this.rev = next;
    }
    return applied;
  }
}

/**
 * Whether `committed` was made on the commit tagged `tag` (unknown counts as yes).
 * @param {Committed} committed
 * @param {string | null} tag
 */
function follows(committed, tag) {
  const prev = committed.prev ?? null;
  return committed.replace || prev === null || tag === null || prev === tag;
}
