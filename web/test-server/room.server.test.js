// The browser client against a real `kpk-io serve` on Redis (started by
// tests/test_web_js_server.py, which passes its address in the environment): tags, dedupe,
// validation errors and resume, with socket.io-client's own transport. Faults only a fake can
// inject (lost acks, refusals on demand, skipped updates) stay in web/test/room.test.js.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { afterEach, test } from "node:test";

import { io } from "socket.io-client";

import { KpkClient } from "../kpk-io/kpk-io.js";
import { until } from "../test-support/fake-server.js";

const URL_ = process.env.KPK_IO_TEST_URL ?? "";
const REDIS_URL = process.env.KPK_IO_TEST_REDIS_URL ?? "";
const PREFIX = process.env.KPK_IO_TEST_KEY_PREFIX ?? "";
const MAX_UPDATE_BYTES = Number(process.env.KPK_IO_TEST_MAX_UPDATE_BYTES ?? "0");
const skip = URL_ === "" ? "run by tests/test_web_js_server.py, which starts the server" : false;
const WAIT_MS = 60_000; // generous: the machine may be busy

/** @type {KpkClient[]} */
let clients = [];
/** @type {import("socket.io-client").Socket[]} */
let sockets = [];

afterEach(async () => {
  await Promise.all(clients.map((client) => client.close()));
  for (const socket of sockets) socket.disconnect();
  clients = [];
  sockets = [];
});

const newRoom = () => `spec/${randomUUID()}`;

/** A client on the real server; `transports` keeps hold of its sockets. */
function client() {
  const made = new KpkClient(URL_, {
    io: (/** @type {string} */ url, /** @type {any} */ options) => {
      const socket = io(url, options);
      sockets.push(socket);
      return socket;
    },
    reconnectionDelayMs: 100,
    reconnectionDelayMaxMs: 500,
  });
  clients.push(made);
  return made;
}

/** @param {import("../kpk-io/room.js").Room} room */
function changesOf(room) {
  /** @type {any[]} */
  const changes = [];
  room.on("change", (change) => changes.push(change));
  return changes;
}

/** A bare socket.io-client connection, to send what the client itself would not. */
async function rawSocket() {
  const socket = io(URL_, { forceNew: true, transports: ["websocket"] });
  sockets.push(socket);
  await new Promise((resolve) => socket.once("connect", () => resolve(undefined)));
  return socket;
}

/** @param {import("socket.io-client").Socket} socket @param {string} event @param {any} body */
const ask = (socket, event, body) => socket.timeout(WAIT_MS).emitWithAck(event, body);

test("edits reach the other member once, as one update per debounce window, never echoed", { skip }, async () => {
  const room = newRoom();
  const a = client();
  const b = client();
  const ra = await a.join(room, { debounceMs: 50 });
  const rb = await b.join(room, { debounceMs: 50 });
  const seenByB = changesOf(rb);
  for (const text of ["Q", "Q1", "Q1 plan"]) ra.set("title", text);
  ra.set("done", true);
  await ra.flush({ timeoutMs: WAIT_MS });
  await until(() => rb.rev === 1, "b at rev 1", WAIT_MS);
  assert.deepEqual(rb.state, { title: "Q1 plan", done: true });
  assert.deepEqual(seenByB.map(({ rev, set, unset, replace }) => ({ rev, set, unset, replace })), [
    { rev: 1, set: { title: "Q1 plan", done: true }, unset: [], replace: false },
  ]);
  assert.equal(typeof seenByB[0].id, "string");
  rb.unset("done");
  await rb.flush({ timeoutMs: WAIT_MS });
  await until(() => ra.rev === 2, "a at rev 2", WAIT_MS);
  assert.deepEqual(ra.state, { title: "Q1 plan" });
  assert.deepEqual([a.stats.echoes, b.stats.echoes], [0, 0], "nobody gets their own change back");
});

test("a change the server refuses (invalid_update, too_large) is dropped and reported; the room goes on", { skip }, async () => {
  const room = newRoom();
  const ra = await client().join(room, { debounceMs: 5 });
  /** @type {any[]} */
  const errors = [];
  ra.on("error", (detail) => errors.push(detail));
  ra.set("x".repeat(300), 1); // the server allows field names of 256 characters
  await until(() => errors.length === 1, "the refusal", WAIT_MS);
  assert.equal(errors[0].error.code, "invalid_update");
  assert.deepEqual(ra.state, {}, "the refused edit is undone");
  assert.ok(MAX_UPDATE_BYTES > 0);
  ra.set("big", "y".repeat(MAX_UPDATE_BYTES));
  await until(() => errors.length === 2, "the second refusal", WAIT_MS);
  assert.equal(errors[1].error.code, "too_large");
  ra.set("fine", true);
  await ra.flush({ timeoutMs: WAIT_MS });
  assert.deepEqual([ra.state, ra.rev, ra.status], [{ fine: true }, 1, "live"]);
});

test("dedupe: an update sent twice with one id is committed once, and members see it once", { skip }, async () => {
  const room = newRoom();
  const rb = await client().join(room);
  const seenByB = changesOf(rb);
  const socket = await rawSocket();
  assert.equal((await ask(socket, "join", { room })).ok, true);
  const first = await ask(socket, "update", { room, id: "same-1", set: { n: 1 } });
  const again = await ask(socket, "update", { room, id: "same-1", set: { n: 1 } });
  assert.deepEqual([first.ok, first.rev, first.duplicate], [true, 1, undefined]);
  assert.deepEqual([again.ok, again.rev, again.duplicate, again.tag], [true, 1, true, first.tag]);
  const next = await ask(socket, "update", { room, id: "same-2", set: { n: 2 } });
  assert.equal(next.rev, 2);
  await until(() => rb.rev === 2, "b at rev 2", WAIT_MS);
  assert.deepEqual(seenByB.map((c) => [c.rev, c.id]), [[1, "same-1"], [2, "same-2"]]);
});

test("resume: edits made across dropped connections are each committed once, in order", { skip }, async () => {
  const room = newRoom();
  const a = client();
  const ra = await a.join(room, { debounceMs: 5 });
  const rb = await client().join(room);
  const seenByB = changesOf(rb);
  for (let n = 1; n <= 30; n++) {
    ra.set("n", n);
    ra.set(`k${n % 3}`, n);
    if (n % 10 === 0) sockets[0].io.engine.close(); // the transport drops; socket.io reconnects
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  const where = () => JSON.stringify([ra, rb].map((r) => [r.state, r.rev, r.status, r.pendingCount]));
  await until(() => ra.status === "live" && ra.pendingCount === 0, "a settled", WAIT_MS)
    .catch((error) => assert.fail(`${error.message}: ${where()}`));
  await until(() => rb.rev === ra.rev, "b caught up", WAIT_MS)
    .catch((error) => assert.fail(`${error.message}: ${where()}`));
  assert.deepEqual(rb.state, { n: 30, k0: 30, k1: 28, k2: 29 });
  assert.deepEqual(ra.state, rb.state);
  const ids = seenByB.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length, "no change applied twice");
  assert.deepEqual(seenByB.map((c) => c.rev), Array.from({ length: ra.rev }, (_, i) => i + 1));
});

test("tags: after Redis lost the room and others wrote it again, every member ends on the server's state", { skip }, async () => {
  const room = newRoom();
  const ra = await client().join(room, { debounceMs: 5 });
  const rb = await client().join(room, { debounceMs: 5 });
  ra.set("old", 1);
  ra.set("older", 1);
  await ra.flush({ timeoutMs: WAIT_MS });
  await until(() => rb.rev === ra.rev, "b caught up", WAIT_MS);
  // Redis loses every key of the room (a failover to a replica that never saw it).
  const lua = "for _, key in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', key) end";
  execFileSync("redis-cli", ["-u", REDIS_URL, "EVAL", lua, "0", `${PREFIX}*`]);
  const rc = await client().join(room, { debounceMs: 5 });
  rc.set("new", 1);
  await rc.flush({ timeoutMs: WAIT_MS });
  rc.set("newer", 2);
  await rc.flush({ timeoutMs: WAIT_MS });
  const server = { new: 1, newer: 2 };
  const where = () => JSON.stringify([ra, rb, rc].map((r) => [r.state, r.rev, r.status, r.pendingCount]));
  await until(
    () => [ra, rb].every((r) => JSON.stringify(r.state) === JSON.stringify(server) && r.status === "live"),
    "a and b on the server's state",
    WAIT_MS,
  ).catch((error) => assert.fail(`${error.message}: ${where()}`));
  rb.set("after", true);
  await rb.flush({ timeoutMs: WAIT_MS });
  await until(() => ra.state.after === true && rc.state.after === true, "b's later edit everywhere", WAIT_MS);
  assert.deepEqual([ra.rev, rb.rev, rc.rev], [3, 3, 3]);
});

/** Redis loses every key of the test's rooms (a failover to a replica that never saw them). */
function loseRooms() {
  const lua = "for _, key in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', key) end";
  execFileSync("redis-cli", ["-u", REDIS_URL, "EVAL", lua, "0", `${PREFIX}*`]);
}

/**
 * The room as Redis holds it, read around the server: a join would make it send the state.
 * @param {string} name
 * @returns {{state: any, rev: number}}
 */
function stored(name) {
  const base = `${PREFIX}{${encodeURIComponent(name)}}`;
  const lua = `local h, s = redis.call('HGETALL', KEYS[1]), {}
    for i = 1, #h, 2 do s[#s + 1] = cjson.encode(h[i]) .. ':' .. h[i + 1] end
    return (redis.call('GET', KEYS[2]) or '0') .. ' {' .. table.concat(s, ',') .. '}'`;
  const args = ["-u", REDIS_URL, "EVAL", lua, "2", `${base}:state`, `${base}:rev`];
  const out = execFileSync("redis-cli", args, { encoding: "utf8" }).trim();
  const space = out.indexOf(" ");
  return { rev: Number(out.slice(0, space)), state: JSON.parse(out.slice(space + 1)) };
}

/**
 * Wait until every room holds the stored state at the stored rev.
 * @param {string} name
 * @param {import("../kpk-io/room.js").Room[]} rooms
 */
async function converged(name, rooms) {
  const server = stored(name);
  const want = JSON.stringify([server.state, server.rev]);
  const where = () => JSON.stringify(rooms.map((r) => [r.state, r.rev, r.status]));
  await until(
    () => rooms.every((r) => JSON.stringify([r.state, r.rev]) === want),
    `every member on the server's ${want}`,
    WAIT_MS,
  ).catch((error) => assert.fail(`${error.message}: ${where()}`));
  return server;
}

// Two members at rev 1; then Redis loses the room and b's change is the first on its new
// history (rev 1 again, another tag).
async function afterTheRoomIsLost(room) {
  const ra = await client().join(room, { debounceMs: 5 });
  const rb = await client().join(room, { debounceMs: 5 });
  ra.set("a", 1);
  await ra.flush({ timeoutMs: WAIT_MS });
  await until(() => rb.rev === 1, "b caught up", WAIT_MS);
  loseRooms();
  rb.set("title", "x");
  await rb.flush({ timeoutMs: WAIT_MS });
  return [ra, rb];
}

test("tags: a member whose change is the second on the room's new history takes the server's whole state", { skip }, async () => {
  const room = newRoom();
  const [ra, rb] = await afterTheRoomIsLost(room);
  ra.set("c", 3);
  await ra.flush({ timeoutMs: WAIT_MS });
  const server = await converged(room, [ra, rb]);
  assert.deepEqual([server.state, server.rev], [{ title: "x", c: 3 }, 2]);
});

test("tags: when the first change after Redis lost the room is the last, every member takes it", { skip }, async () => {
  const room = newRoom();
  const [ra, rb] = await afterTheRoomIsLost(room);
  const server = await converged(room, [ra, rb]);
  assert.deepEqual([server.state, server.rev], [{ title: "x" }, 1]);
});
