// The contract between a Room (room.js, what the page sees) and its RoomSync (room-sync.js,
// the protocol side): what RoomSync tells its Room, and asks it. Types only.

/** @typedef {import("./change.js").Committed} Committed */
/** @typedef {import("./error.js").KpkError} KpkError */
/** @typedef {import("./presence.js").PresenceChange} PresenceChange */

/**
 * What RoomSync tells its Room, and asks it.
 * @typedef {object} RoomHost
 * @property {string} id
 * @property {() => boolean} closed
 * @property {() => KpkError | null} failure
 * @property {() => Record<string, any>} meta
 * @property {(applied: Committed[]) => void} applied  changes of others (or a whole state) applied
 * @property {(ack: any) => void} tookWhole  a join or sync answered with the whole state
 * @property {(ack: any, change: import("./change.js").Change) => void} tookAck  an update's ack
 *   (it may carry the server's text edits), with the change it acknowledges
 * @property {(change: import("./change.js").Change) => void} staleText  a change refused as
 *   text_stale, after a sync: its texts start over and their typing is sent again
 * @property {() => void} settled  the unacknowledged edits may have changed
 * @property {(changes: PresenceChange[]) => void} presenceChanged
 * @property {(error: KpkError, change: import("./change.js").Change) => void} dropped
 * @property {(error: KpkError) => void} fail  the room cannot go on (a refused join)
 * @property {() => void} statusChanged
 */

export {};
