import assert from "node:assert/strict";
import { test } from "node:test";

import { makeChange } from "../kpk-io/change.js";
import { RoomState } from "../kpk-io/room-state.js";

/** @param {number} rev @param {Record<string, any>} set @param {string} [id] */
const committed = (rev, set, id) => ({ rev, set, unset: [], replace: false, ...(id ? { id } : {}) });

test("changes of others apply in rev order; one ahead waits for the gap to fill", () => {
  const room = new RoomState();
  assert.deepEqual(room.remote(committed(1, { a: 1 })).map((c) => c.rev), [1]);
  assert.deepEqual(room.remote(committed(3, { a: 3 })), []);
  assert.equal(room.rev, 1);
  assert.ok(room.hasGap);
  assert.deepEqual(room.view, { a: 1 });
  assert.deepEqual(room.remote(committed(2, { b: 2 })).map((c) => c.rev), [2, 3]);
  assert.deepEqual(room.confirmed, { a: 3, b: 2 });
  assert.equal(room.rev, 3);
  assert.ok(!room.hasGap);
});

test("a repeated or old change is ignored", () => {
  const room = new RoomState();
  room.remote(committed(1, { a: 1 }));
  assert.deepEqual(room.remote(committed(1, { a: "again" })), []);
  assert.deepEqual(room.view, { a: 1 });
});

test("local edits show at once, merge while unsent, and count their fields", () => {
  const room = new RoomState();
  room.edit(makeChange({ set: { title: "a" } }));
  room.edit(makeChange({ set: { title: "ab", note: "n" } }));
  assert.deepEqual(room.view, { title: "ab", note: "n" });
  assert.equal(room.unacknowledged, 2);
  const sent = room.send("c-1", 1);
  assert.deepEqual(sent?.change.set, { title: "ab", note: "n" });
  room.edit(makeChange({ unset: ["note"] }));
  assert.deepEqual(room.view, { title: "ab" });
  assert.equal(room.unacknowledged, 2);
  assert.equal(room.send("c-2", 1)?.change.unset[0], "note");
  assert.equal(room.send("c-3", 1), null, "nothing pending, nothing sent");
});

test("own acknowledged change fills the gap an update of another left", () => {
  const room = new RoomState();
  room.edit(makeChange({ set: { mine: 1 } }));
  room.send("c-1", 1);
  // Another member's change at rev 2 arrives before the ack that says ours is rev 1.
  assert.deepEqual(room.remote(committed(2, { theirs: 2 })), []);
  const applied = room.acknowledged("c-1", 1);
  assert.deepEqual(applied.map((c) => c.rev), [2], "only the other member's change is reported");
  assert.deepEqual(room.confirmed, { mine: 1, theirs: 2 });
  assert.equal(room.unacknowledged, 0);
});

test("an ack ahead of updates not yet received waits for them", () => {
  const room = new RoomState();
  room.edit(makeChange({ set: { title: "mine" } }));
  room.send("c-1", 1);
  room.acknowledged("c-1", 2);
  assert.equal(room.rev, 0);
  assert.deepEqual(room.view, { title: "mine" }, "still shown while rev 1 is missing");
  room.remote(committed(1, { title: "theirs", other: 1 }));
  assert.equal(room.rev, 2);
  assert.deepEqual(room.confirmed, { title: "mine", other: 1 }, "ours (rev 2) came after theirs");
});

test("a sync result carrying our id settles a change whose ack was lost", () => {
  const room = new RoomState();
  room.edit(makeChange({ set: { a: 1 } }));
  room.send("c-1", 1);
  const applied = room.remote(committed(1, { a: 1 }, "c-1"));
  assert.deepEqual(applied, [], "our own change is never reported as another's");
  assert.equal(room.inFlight.length, 0);
  assert.equal(room.rev, 1);
  assert.deepEqual(room.acknowledged("c-1", 1), [], "a late ack changes nothing");
  assert.deepEqual(room.view, { a: 1 });
});

test("an update for a rev we know is ours is not reported", () => {
  const room = new RoomState();
  room.edit(makeChange({ set: { a: 1 } }));
  room.send("c-1", 1);
  room.acknowledged("c-1", 2);
  assert.deepEqual(room.remote(committed(2, { a: 1 }, "c-1")), []);
  assert.deepEqual(room.remote(committed(1, { b: 1 })).map((c) => c.rev), [1]);
  assert.equal(room.rev, 2);
});

test("reset takes a snapshot and keeps what is newer", () => {
  const room = new RoomState();
  room.remote(committed(1, { a: 1 }));
  room.remote(committed(5, { e: 5 }));
  const applied = room.reset(4, { a: 1, d: 4 });
  assert.deepEqual(applied.map((c) => [c.rev, c.replace]), [[4, true], [5, false]]);
  assert.deepEqual(room.confirmed, { a: 1, d: 4, e: 5 });
  assert.equal(room.rev, 5);
});

test("reset to an older rev (the server lost its history) drops what was ahead", () => {
  const room = new RoomState();
  room.remote(committed(1, { a: 1 }));
  room.remote(committed(3, { c: 3 }));
  room.edit(makeChange({ set: { unsent: true } }));
  room.reset(0, {});
  assert.equal(room.rev, 0);
  assert.ok(!room.hasGap);
  assert.deepEqual(room.view, { unsent: true }, "local edits survive, to be sent again");
});

test("dropping a refused change takes it out of the view", () => {
  const room = new RoomState();
  room.edit(makeChange({ set: { a: 1 } }));
  room.send("c-1", 1);
  assert.ok(room.drop("c-1"));
  assert.ok(!room.drop("c-1"));
  assert.deepEqual(room.view, {});
});

test("a change of ours already in the state (a snapshot) is not sent again", () => {
  const room = new RoomState();
  room.edit(makeChange({ set: { a: 1 } }));
  room.send("c-1", 1);
  room.reset(3, { a: 1 });
  assert.deepEqual(room.remote(committed(2, { a: 1 }, "c-1")), []);
  assert.equal(room.inFlight.length, 0);
});
