// Who else is in a room, as this page sees it. Not room state: never stored or replayed.
//
// The join ack lists the members at the moment it was read; `presence` events may overtake
// it (they come from other nodes). Events that arrive while a join is in flight are kept and
// applied on top of the ack's list, in arrival order: each is newer than, or already part
// of, that list, and applying a `joined`, `left` or `updated` twice is harmless. The Python
// client (kpk_io/client_presence.py) does the same; docs/protocol.md states the rule.

/**
 * @typedef {object} Member
 * @property {string} id  per connection: two tabs of one user are two members
 * @property {string} user  the token's `sub`, or an anonymous id without auth
 * @property {string | null} name  the token's `name`
 * @property {Record<string, any>} meta  what the member shows others (room.setMeta)
 */
/** @typedef {"joined" | "left" | "updated" | "reset"} PresenceKind */
/** @typedef {{kind: PresenceKind, members: Member[]}} PresenceChange */

/** @type {PresenceKind[]} */
const KINDS = ["joined", "left", "updated"];

export class Presence {
  /** @type {Map<string, Member>} */
  #members = new Map();
  /** @type {unknown[] | null} */
  #early = null;
  /** @type {Member | null} */
  me = null;

  /** Everyone in the room now, on every node, this page included. */
  get members() {
    return [...this.#members.values()];
  }

  /** A join was sent: keep events until its ack. */
  joining() {
    this.#early = [];
  }

  /**
   * The join's ack: its members, then whatever came meanwhile.
   * @param {any} ack
   * @returns {PresenceChange[]}
   */
  joined(ack) {
    const early = this.#early ?? [];
    this.#early = null;
    const listed = Array.isArray(ack?.members) ? ack.members.map(memberOf) : [];
    this.#members = new Map(listed.filter(isMember).map((m) => [m.id, m]));
    this.me = memberOf(ack?.member);
    /** @type {PresenceChange[]} */
    const changes = [{ kind: "reset", members: this.members }];
    for (const body of early) changes.push(...this.event(body));
    return changes;
  }

  /**
   * Not a member any more (disconnected, a failed join): nobody is known to be here.
   * @returns {PresenceChange[]}
   */
  left() {
    this.#early = null;
    if (this.#members.size === 0) return [];
    this.#members.clear();
    return [{ kind: "reset", members: [] }];
  }

  /**
   * The server took this page's new meta (others get `updated`, this page does not).
   * @param {Record<string, any>} meta
   * @returns {PresenceChange[]}
   */
  metaSet(meta) {
    if (!this.me) return [];
    this.me = { ...this.me, meta };
    this.#members.set(this.me.id, this.me);
    return [{ kind: "updated", members: [this.me] }];
  }

  /**
   * A `presence` event for this room.
   * @param {any} body
   * @returns {PresenceChange[]}
   */
  event(body) {
    if (this.#early) {
      this.#early.push(body);
      return [];
    }
    /** @type {PresenceChange[]} */
    const changes = [];
    for (const kind of KINDS) {
      const members = (Array.isArray(body?.[kind]) ? body[kind] : []).map(memberOf).filter(isMember);
      for (const member of members) {
        if (kind === "left") this.#members.delete(member.id);
        else this.#members.set(member.id, member);
      }
      if (members.length) changes.push({ kind, members });
    }
    return changes;
  }
}

/**
 * @param {any} value
 * @returns {Member | null}
 */
function memberOf(value) {
  if (typeof value?.id !== "string" || typeof value?.user !== "string") return null;
  const meta = value.meta && typeof value.meta === "object" && !Array.isArray(value.meta) ? value.meta : {};
  return { id: value.id, user: value.user, name: typeof value.name === "string" ? value.name : null, meta };
}

/**
 * @param {Member | null} member
 * @returns {member is Member}
 */
function isMember(member) {
  return member !== null;
}
