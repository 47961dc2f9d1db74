// Presence and signals through KpkClient and Room, over the fake transport.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { KpkClient, KpkError } from "../kpk-io/kpk-io.js";
import { FakeServer, fakeIo, until } from "../test-support/fake-server.js";

const ROOM = "demo/notes/acme/q1/plan";
/** @type {KpkClient[]} */
let clients = [];

afterEach(async () => {
  await Promise.all(clients.map((client) => client.close()));
  clients = [];
});

/** @param {FakeServer} server */
function client(server) {
  const made = new KpkClient("http://kpk.test", { io: fakeIo(server), requestTimeoutMs: 1000 });
  clients.push(made);
  return made;
}

/** @param {import("../kpk-io/room.js").Room} room */
const ids = (room) => room.members.map((m) => m.id).sort();

test("members see each other join, change their meta, signal and leave", async () => {
  const server = new FakeServer();
  const a = client(server);
  const ra = a.room(ROOM);
  ra.setMeta({ hue: 10 }); // before the join: sent with it
  await ra.ready;
  /** @type {any[]} */
  const presence = [];
  /** @type {any[]} */
  const signals = [];
  ra.on("presence", (change) => presence.push([change.kind, change.members.map((/** @type {any} */ m) => m.id)]));
  ra.on("signal", (signal) => signals.push(signal));
  assert.deepEqual(ra.me?.meta, { hue: 10 });
  assert.deepEqual(ra.members, [ra.me]);

  const b = client(server);
  const rb = await b.join(ROOM);
  const bId = rb.me?.id ?? "";
  assert.deepEqual(ids(rb), [ra.me?.id, bId].sort());
  assert.deepEqual(rb.members.find((m) => m.id === ra.me?.id)?.meta, { hue: 10 });
  await until(() => ra.members.length === 2, "b among a's members");
  assert.deepEqual(presence, [["joined", [bId]]]);

  await rb.setMeta({ typing: true });
  await until(() => ra.members.find((m) => m.id === bId)?.meta.typing === true, "b's meta");
  assert.deepEqual(rb.me?.meta, { typing: true });
  await rb.signal({ caret: 3 });
  await until(() => signals.length === 1, "the signal");
  assert.deepEqual(signals, [{ from: bId, data: { caret: 3 } }]);

  await rb.close();
  await until(() => ra.members.length === 1, "b left");
  assert.deepEqual(presence.at(-1), ["left", [bId]]);
});

test("after a reconnect the list is the new join's, and the meta goes with it", async () => {
  const server = new FakeServer();
  const a = client(server);
  const ra = await a.join(ROOM);
  await ra.setMeta({ hue: 200 });
  const b = client(server);
  const rb = await b.join(ROOM);
  /** @type {string[]} */
  const kinds = [];
  rb.on("presence", ({ kind }) => kinds.push(kind));
  server.stop();
  await until(() => rb.members.length === 0, "nobody known while disconnected");
  server.start();
  await until(() => rb.status === "live" && ra.status === "live" && rb.members.length === 2 && ra.members.length === 2, "both back");
  assert.deepEqual(rb.members.find((m) => m.id === ra.me?.id)?.meta, { hue: 200 });
  assert.ok(kinds.includes("reset"));
});

test("a refused signal rejects with its code; custom events reach client.on", async () => {
  const server = new FakeServer();
  const a = client(server);
  const ra = await a.join(ROOM);
  await ra.close();
  await assert.rejects(ra.signal("late"), (error) => error instanceof KpkError && error.code === "not_joined");
  const b = client(server);
  await b.join(ROOM);
  /** @type {any[]} */
  const notices = [];
  const stop = b.on("notice", (body) => notices.push(body));
  server.broadcast(ROOM, "notice", { text: "deploy at 5" });
  await until(() => notices.length === 1, "the notice");
  stop();
  server.broadcast(ROOM, "notice", { text: "again" });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(notices, [{ text: "deploy at 5" }]);
  assert.throws(() => b.on("update", () => {}), KpkError);
});
