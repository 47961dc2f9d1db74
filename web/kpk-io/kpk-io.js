// kpk-io in the browser: live shared state for the pages of one URL.
//
//   import { join, roomFromPath } from "/kpk-io/kpk-io.js";
//   const room = await join(location.origin, roomFromPath("/notes/:org/:page", location.pathname));
//   room.on("change", () => render(room.state));
//   room.set("title", "Q1 plan");
//
// docs/browser-client.md describes the API.

import { KpkClient } from "./client.js";
import { checkRoom } from "./room-path.js";

export { KpkClient } from "./client.js";
export { KpkError } from "./error.js";
export { Room } from "./room.js";
export { MAX_ROOM_LENGTH, checkRoom, roomFromPath } from "./room-path.js";

/** @typedef {import("./client.js").ClientOptions} ClientOptions */
/** @typedef {import("./connect.js").RoomOptions} RoomOptions */

/**
 * Connect to `url`, join `roomId` and resolve with the room once it is live. The connection
 * is the room's own: `room.close()` closes it. Rejects with KpkError (`invalid_room` for a
 * missing or unusable ID, before any connection is made).
 * @param {string} url
 * @param {string | null | undefined} roomId
 * @param {ClientOptions & RoomOptions} [options]
 * @returns {Promise<import("./room.js").Room>}
 */
export async function join(url, roomId, options = {}) {
  checkRoom(roomId);
  const { debounceMs, gapWaitMs, retryDelayMs, ...clientOptions } = options;
  const client = new KpkClient(url, clientOptions);
  client.closeWithLastRoom();
  return client.join(roomId, { debounceMs, gapWaitMs, retryDelayMs });
}

/**
 * A connection to `url` for several rooms: `client.room(id)` gives a handle at once,
 * `await client.join(id)` once it is live.
 * @param {string} url
 * @param {ClientOptions} [options]
 */
export function connect(url, options = {}) {
  return new KpkClient(url, options);
}
