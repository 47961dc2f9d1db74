// The room algorithm end to end over a fake transport: KpkClient and Room as the browser runs
// them, with socket.io-client replaced by test-support/fake-server.js, for the faults only a
// fake can inject on demand (lost acks, skipped updates, refusals, a server that forgets).
// The same client against a real `kpk-io serve` on Redis: web/test-server/.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { KpkClient, KpkError, join } from "../kpk-io/kpk-io.js";
import { FakeServer, fakeIo, until } from "../test-support/fake-server.js";

const ROOM = "demo/notes/acme/q1/plan";
/** @type {KpkClient[]} */
let clients = [];

afterEach(async () => {
  await Promise.all(clients.map((client) => client.close()));
  clients = [];
});

/**
 * @param {FakeServer} server
 * @param {import("../kpk-io/client.js").ClientOptions} [options]
 */
function client(server, options = {}) {
  const made = new KpkClient("http://kpk.test", { io: fakeIo(server), requestTimeoutMs: 1000, ...options });
  clients.push(made);
  return made;
}

/** @param {import("../kpk-io/room.js").Room} room */
function recorder(room) {
  /** @type {any[]} */
  const changes = [];
  /** @type {string[]} */
  const statuses = [];
  room.on("change", (change) => changes.push(change));
  room.on("status", ({ status, reconnecting }) => statuses.push(reconnecting ? "reconnecting" : status));
  return { changes, statuses };
}

/** @param {FakeServer} server @param {string} id */
const commitsOf = (server, id) => server.updates(ROOM).filter((p) => p.id === id).length;

test("edits in one debounce window go out as one update with only the changed fields", async () => {
  const server = new FakeServer();
  server.room(ROOM).state = { title: "old", untouched: 1 };
  server.room(ROOM).rev = 1;
  const a = client(server);
  const ra = await a.join(ROOM, { debounceMs: 40 });
  const pending = [];
  ra.on("pending", ({ count }) => pending.push(count));
  for (const text of ["Q", "Q1", "Q1 p", "Q1 plan"]) ra.set("title", text);
  ra.set("done", true);
  assert.deepEqual(ra.state, { title: "Q1 plan", untouched: 1, done: true }, "applied at once");
  assert.equal(server.updates().length, 0, "nothing sent before the window ends");
  await until(() => ra.pendingCount === 0, "the ack");
  assert.deepEqual(server.updates().map(({ set, unset }) => ({ set, unset })), [
    { set: { title: "Q1 plan", done: true }, unset: undefined },
  ]);
  assert.deepEqual(pending, [1, 2, 0]);
});

test("close() sends at once, leaves, and closes the connection it owns", async () => {
  const server = new FakeServer();
  const io = fakeIo(server);
  const room = await join("http://kpk.test", ROOM, { io, debounceMs: 60_000 });
  room.set("title", "last words");
  await room.close();
  assert.deepEqual(server.updates().map((p) => p.set), [{ title: "last words" }]);
  assert.equal(server.requests.at(-1)?.[1], "leave");
  assert.equal(io.sockets[0].connected, false);
  assert.equal(room.status, "offline");
  assert.throws(() => room.set("title", "after"), KpkError);
});

test("a page without a room gets an error and no connection", async () => {
  const server = new FakeServer();
  const io = fakeIo(server);
  for (const roomId of [null, undefined, "undefined", ""]) {
    await assert.rejects(join("http://kpk.test", roomId, { io }), { code: "invalid_room" });
  }
  assert.equal(io.sockets.length, 0);
});

test("a room the server refuses puts the room in status error", async () => {
  const server = new FakeServer();
  server.handle = () => ({ ok: false, error: "invalid_room", message: "no such room here" });
  const a = client(server);
  const room = a.room(ROOM);
  const seen = recorder(room);
  await assert.rejects(room.ready, { code: "invalid_room" });
  assert.equal(room.status, "error");
  assert.deepEqual(seen.statuses, ["error"]);
});

test("the token goes to the server as Socket.IO auth, asked again on each connect", async () => {
  const server = new FakeServer();
  const io = fakeIo(server);
  let calls = 0;
  client(server, { io, token: () => `token-${++calls}` });
  const auth = io.sockets[0].options.auth;
  const first = await new Promise((resolve) => auth(resolve));
  const second = await new Promise((resolve) => auth(resolve));
  assert.deepEqual(
    [first.token, second.token],
    ["token-1", "token-2"],
  );
  // The client's secret comes along, the same on every connect (see docs/protocol.md).
  assert.match(first.client, /^[0-9a-f]{32}$/);
  assert.equal(second.client, first.client);
  assert.equal(io.sockets[0].options.reconnection, true);
  assert.equal(io.sockets[0].options.randomizationFactor, 0.5);
});

test("edits made while the server is down arrive once it is back, each once", async () => {
  const server = new FakeServer();
  const a = client(server);
  const b = client(server);
  const ra = await a.join(ROOM, { debounceMs: 5 });
  const rb = await b.join(ROOM, { debounceMs: 5 });
  const seen = recorder(ra);
  ra.set("title", "before");
  await ra.flush();
  server.stop();
  await until(() => ra.status === "connecting", "reconnecting");
  ra.set("title", "while down");
  ra.set("note", "typed offline");
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(ra.pendingCount, 2, "kept while offline");
  assert.deepEqual(ra.state, { title: "while down", note: "typed offline" });
  server.start();
  await until(() => rb.state.note === "typed offline", "offline edits to reach b");
  await ra.flush();
  assert.deepEqual(rb.state, { title: "while down", note: "typed offline" });
  assert.deepEqual(seen.statuses, ["reconnecting", "live"]);
  const ids = server.updates(ROOM).map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "no change sent twice");
  assert.equal(server.room(ROOM).rev, 2);
});

test("a change whose ack was lost is recognised after the reconnect, not sent again", async () => {
  const server = new FakeServer();
  const a = client(server);
  const b = client(server);
  const ra = await a.join(ROOM, { debounceMs: 5 });
  const rb = await b.join(ROOM, { debounceMs: 5 });
  server.loseNextAck = true;
  ra.set("title", "committed, ack lost");
  await until(() => rb.state.title === "committed, ack lost", "the commit");
  rb.set("note", "b wrote after");
  await rb.flush();
  await ra.flush();
  const [sent] = server.updates(ROOM);
  assert.equal(commitsOf(server, sent.id), 1, "sent once only");
  assert.equal(server.room(ROOM).rev, 2);
  assert.deepEqual(ra.state, { title: "committed, ack lost", note: "b wrote after" });
  assert.equal(ra.rev, 2);
});

test("a skipped update (a gap) triggers a sync instead of a wrong state", async () => {
  const server = new FakeServer();
  const a = client(server);
  const b = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1 });
  const rb = await b.join(ROOM, { debounceMs: 1 });
  const seen = recorder(ra);
  server.undelivered.add(2);
  for (const [field, value] of [["a", 1], ["b", 2], ["c", 3]]) {
    rb.set(field, value);
    await rb.flush();
  }
  await until(() => ra.rev === 3, "a to catch up");
  assert.deepEqual(ra.state, { a: 1, b: 2, c: 3 });
  assert.deepEqual(seen.changes.map((c) => c.rev), [1, 2, 3], "in rev order");
  assert.ok(server.requests.some(([, event, p]) => event === "sync" && p.since === 1));
});

test("when the server has no history left, sync gives the whole state", async () => {
  const server = new FakeServer();
  server.history = 1;
  const a = client(server);
  const b = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1 });
  const rb = await b.join(ROOM, { debounceMs: 1 });
  server.undelivered.add(1).add(2);
  for (const [field, value] of [["a", 1], ["b", 2], ["c", 3]]) {
    rb.set(field, value);
    await rb.flush();
  }
  await until(() => ra.rev === 3, "a to catch up");
  assert.deepEqual(ra.state, { a: 1, b: 2, c: 3 });
});

test("an update the server could not answer in time is synced, then sent again only if lost", async () => {
  const server = new FakeServer();
  const a = client(server, { requestTimeoutMs: 30 });
  const ra = await a.join(ROOM, { debounceMs: 1, retryDelayMs: 5 });
  server.silenceNextUpdate = true;
  ra.set("title", "slow");
  await until(() => ra.pendingCount === 0, "the change to settle");
  assert.equal(server.updates(ROOM).length, 1, "committed once, found by the sync");
  assert.equal(ra.rev, 1);
  server.refuseNextUpdate = "unavailable";
  ra.set("title", "retried");
  await until(() => ra.pendingCount === 0, "the retry");
  assert.deepEqual(server.updates(ROOM).map((p) => p.set.title), ["slow", "retried", "retried"]);
  assert.equal(server.room(ROOM).rev, 2, "the refused attempt committed nothing");
  assert.deepEqual(ra.state, { title: "retried" });
});

test("a rate_limited update waits the retry_after it was given, then goes out again", async () => {
  const server = new FakeServer();
  const a = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1, retryDelayMs: 5 });
  /** @type {unknown[]} */
  const errors = [];
  ra.on("error", (event) => errors.push(event));
  server.rateLimitNextUpdate = 200;
  const started = Date.now();
  ra.set("title", "patient");
  await until(() => ra.pendingCount === 0, "the re-sent change");
  assert.ok(Date.now() - started >= 200, "it waited retry_after, not its own 5 ms");
  assert.deepEqual(server.updates(ROOM).map((p) => p.set.title), ["patient", "patient"]);
  assert.equal(server.room(ROOM).rev, 1, "the refused attempt committed nothing");
  assert.deepEqual(ra.state, { title: "patient" });
  assert.deepEqual(errors, [], "not a final refusal");
});

test("an update answered unavailable but committed (a stalled store) is applied once", async () => {
  const server = new FakeServer();
  const a = client(server);
  const b = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1, retryDelayMs: 5 });
  const rb = await b.join(ROOM, { debounceMs: 1 });
  const seenByB = recorder(rb);
  server.commitButRefuseNextUpdate = "unavailable";
  ra.set("title", "stalled");
  await until(() => ra.pendingCount === 0, "the change to settle");
  // The sync after the refusal lists the change with our id: it is ours, not sent again.
  const [sent] = server.updates(ROOM);
  assert.equal(commitsOf(server, sent.id), 1);
  assert.equal(server.room(ROOM).log.filter((entry) => entry.id === sent.id).length, 1);
  assert.deepEqual([ra.rev, ra.state], [server.room(ROOM).rev, server.room(ROOM).state]);
  assert.deepEqual(ra.state, { title: "stalled" });
  await until(() => rb.rev === 1, "b to see it");
  assert.deepEqual(seenByB.changes.map((c) => [c.rev, c.set]), [[1, { title: "stalled" }]]);
});

test("an unavailable update the sync cannot show is sent again with its id: a duplicate", async () => {
  const server = new FakeServer();
  server.history = 0; // every sync from behind answers with the whole state
  const a = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1, retryDelayMs: 5 });
  server.commitButRefuseNextUpdate = "unavailable";
  ra.set("title", "stalled");
  await until(() => ra.pendingCount === 0, "the change to settle");
  const sent = server.updates(ROOM);
  assert.equal(sent.length, 2, "sent again after the sync");
  assert.equal(sent[1].id, sent[0].id, "with the same id");
  assert.deepEqual(sent[1].set, sent[0].set, "and the same change");
  assert.equal(server.room(ROOM).log.length, 1, "committed once: the server answered duplicate");
  assert.deepEqual([ra.rev, ra.state], [1, { title: "stalled" }]);
  assert.deepEqual(server.room(ROOM).state, ra.state);
  ra.set("title", "next");
  await ra.flush();
  assert.deepEqual([server.room(ROOM).rev, ra.rev, ra.state], [2, 2, { title: "next" }]);
});

test("a sync that fails too is retried with backoff until the change settles", async () => {
  const server = new FakeServer();
  const a = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1, retryDelayMs: 5 });
  server.commitButRefuseNextUpdate = "unavailable";
  let refusedSyncs = 0;
  /** @type {number[]} */
  const syncedAt = [];
  const handle = server.handle.bind(server);
  server.handle = (socket, event, p) => {
    if (event === "sync") syncedAt.push(performance.now());
    // The store is still stalled for the next three syncs.
    if (event === "sync" && refusedSyncs < 3) {
      refusedSyncs += 1;
      server.requests.push([socket, event, p]);
      return { ok: false, error: "unavailable", message: "still stalled" };
    }
    return handle(socket, event, p);
  };
  ra.set("title", "stalled");
  await until(() => ra.pendingCount === 0, "the change to settle", 5000);
  assert.equal(refusedSyncs, 3);
  // Each wait is twice the one before (5 ms, then 10, 20, 40 here; 0.5 s doubling to 5 s by
  // default).
  const gaps = syncedAt.slice(1).map((at, i) => at - syncedAt[i]);
  assert.equal(gaps.length, 3);
  gaps.forEach((gap, i) => assert.ok(gap >= 10 * 2 ** i - 1, `wait ${i}: ${gap} ms`));
  assert.equal(server.room(ROOM).log.length, 1);
  assert.deepEqual([ra.rev, ra.state], [1, { title: "stalled" }]);
});

test("a change the server refuses for good is dropped and reported", async () => {
  const server = new FakeServer();
  const a = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1 });
  /** @type {any[]} */
  const errors = [];
  ra.on("error", (detail) => errors.push(detail));
  server.refuseNextUpdate = "invalid_update";
  ra.set("title", "bad");
  await until(() => errors.length === 1, "the error event");
  assert.equal(errors[0].error.code, "invalid_update");
  assert.deepEqual(errors[0].change.set, { title: "bad" });
  assert.deepEqual(ra.state, {});
  assert.equal(ra.status, "live");
});

test("a server that lost its state (in-memory restart) is taken as it is", async () => {
  const server = new FakeServer();
  const a = client(server);
  const ra = await a.join(ROOM, { debounceMs: 1 });
  ra.set("title", "forgotten");
  await ra.flush();
  server.stop();
  server.wipe();
  ra.set("note", "typed while it restarted");
  server.start();
  await until(() => ra.status === "live" && ra.pendingCount === 0, "live again");
  assert.deepEqual(ra.state, { note: "typed while it restarted" });
  assert.deepEqual(server.room(ROOM).state, { note: "typed while it restarted" });
  assert.equal(ra.rev, 1);
});

test("rooms of one client share its connection and each rejoins", async () => {
  const server = new FakeServer();
  const io = fakeIo(server);
  const a = client(server, { io });
  const [one, two] = await Promise.all([a.join(`${ROOM}/1`), a.join(`${ROOM}/2`)]);
  assert.equal(io.sockets.length, 1);
  assert.equal(a.room(`${ROOM}/1`), one, "the same handle");
  server.stop();
  server.start();
  await until(() => one.status === "live" && two.status === "live", "both live again");
  const joins = server.requests.filter(([, event]) => event === "join").map(([, , p]) => p.room);
  assert.deepEqual(joins.sort(), [`${ROOM}/1`, `${ROOM}/1`, `${ROOM}/2`, `${ROOM}/2`]);
});

test("a flush never overtakes a refused update: the last edit wins", async () => {
  const server = new FakeServer();
  const room = await client(server).join(ROOM, { debounceMs: 60_000, retryDelayMs: 5 });
  server.refuseNextUpdate = "unavailable"; // a Redis blip answers the first update
  room.set("title", "x");
  const first = room.flush();
  room.set("title", "y"); // the user's last edit, flushed while "x" is still unanswered
  const second = room.flush();
  await Promise.allSettled([first, second]);
  await until(() => room.pendingCount === 0, "settled");
  const sent = server.updates(ROOM).map((update) => update.set.title);
  assert.deepEqual(sent, ["x", "x", "y"]);
  assert.equal(server.room(ROOM).state.title, "y");
  assert.equal(room.state.title, "y");
});
