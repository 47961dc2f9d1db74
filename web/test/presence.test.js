import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Presence } from "../kpk-io/presence.js";

const vectors = JSON.parse(readFileSync(new URL("../../tests/presence_vectors.json", import.meta.url), "utf8"));

test("presence_vectors.json: the member list kpk_io.client_presence is held to", async (t) => {
  for (const vector of vectors.cases) {
    await t.test(vector.name, () => {
      const presence = new Presence();
      presence.joining();
      const changes = [];
      for (const body of vector.before) changes.push(...presence.event(body));
      assert.deepEqual(changes, []);
      changes.push(...presence.joined(vector.ack));
      for (const body of vector.after) changes.push(...presence.event(body));
      const members = Object.fromEntries(presence.members.map((m) => [m.id, m.meta]));
      assert.deepEqual(members, vector.members);
      assert.deepEqual(changes.map((c) => [c.kind, c.members.map((m) => m.id)]), vector.events);
      assert.equal(presence.me?.id, vector.ack.member.id);
    });
  }
});

test("leaving forgets everyone once; this page's own meta shows as an update", () => {
  const presence = new Presence();
  presence.joining();
  presence.joined({ member: { id: "a", user: "u", name: null, meta: {} }, members: [{ id: "a", user: "u", name: null, meta: {} }] });
  assert.deepEqual(presence.metaSet({ color: "red" }).map((c) => c.kind), ["updated"]);
  assert.deepEqual(presence.members[0].meta, { color: "red" });
  assert.deepEqual(presence.left(), [{ kind: "reset", members: [] }]);
  assert.deepEqual(presence.left(), []);
});
