// tests/client_vectors.json against the browser client; tests/test_client_vectors.py runs the
// same cases against the Python client.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { applyChange, committedFromWire, mergeChanges, updatePayload } from "../kpk-io/change.js";
import { isRetryable } from "../kpk-io/error.js";
import { checkRoom } from "../kpk-io/room-path.js";
import { RoomState } from "../kpk-io/room-state.js";
import { RoomTexts, TEXT_ROOT, fromBase64 } from "../kpk-io/text.js";
import * as Y from "../kpk-io/yjs.esm.min.js";

const spec = JSON.parse(readFileSync(new URL("../../tests/client_vectors.json", import.meta.url), "utf8"));

/** @param {any} body */
const change = (body) => ({
  set: structuredClone(body.set ?? {}),
  unset: [...(body.unset ?? [])],
  replace: body.replace ?? false,
  ...(body.text ? { text: { ...body.text } } : {}),
});

/** A change as the vectors write it: only what it does. @param {any} c */
function written(c) {
  if (c === null) return null;
  /** @type {Record<string, any>} */
  const body = {};
  if (Object.keys(c.set).length) body.set = c.set;
  if (c.unset.length) body.unset = c.unset;
  if (c.replace) body.replace = true;
  if (c.text && Object.keys(c.text).length) body.text = c.text;
  return body;
}

test("client_vectors.json apply: a change applied to a state", async (t) => {
  for (const c of spec.apply.cases) {
    await t.test(c.name, () => {
      const state = JSON.parse(JSON.stringify(c.state));
      applyChange(change(c.change), state);
      assert.deepEqual(state, c.after);
    });
  }
});

test("client_vectors.json payload: local edits merged into one update", async (t) => {
  for (const c of spec.payload.cases) {
    await t.test(c.name, () => {
      const merged = c.edits.map(change).reduce((/** @type {any} */ a, /** @type {any} */ b) => mergeChanges(a, b));
      assert.deepEqual(written(merged), c.merged);
      assert.deepEqual(updatePayload("r", "c-1", merged, c.rev), c.payload);
    });
  }
});

test("client_vectors.json from_wire: update bodies read or refused", async (t) => {
  for (const c of spec.from_wire.cases) {
    await t.test(c.name, () => {
      if (c.refused) return void assert.throws(() => committedFromWire(c.wire), TypeError);
      assert.deepEqual(committedFromWire(c.wire), c.committed);
    });
  }
});

test("client_vectors.json rooms: room IDs kept or refused", async (t) => {
  for (const c of spec.rooms.cases) {
    await t.test(JSON.stringify(c.room).slice(0, 40), () => {
      if (c.ok) assert.equal(checkRoom(c.room), c.room);
      else assert.throws(() => checkRoom(c.room), (/** @type {any} */ e) => e.code === "invalid_room");
    });
  }
});

test("client_vectors.json retryable: which refusals are tried again", () => {
  for (const c of spec.retryable.cases) assert.equal(isRetryable(c.code), c.retryable, c.code);
});

/**
 * Drive `room` by one step; returns what listeners hear and, after a join, whether a sync
 * must follow.
 * @param {RoomState} room
 * @param {any} step
 * @returns {{applied: any[], needsSync: boolean | null}}
 */
function drive(room, step) {
  const kind = Object.keys(step).find((key) => key !== "expect");
  const args = step[/** @type {string} */ (kind)];
  const none = { applied: [], needsSync: null };
  switch (kind) {
    case "edit":
      room.edit(change(args));
      return none;
    case "send":
      room.send(args.id, 1);
      return none;
    case "ack":
      return { applied: room.acknowledged(args.id, args.rev, args.tag ?? null), needsSync: null };
    case "drop":
      room.drop(args.id);
      return none;
    case "remote":
      return { applied: room.remote(committedFromWire(args.wire)), needsSync: null };
    case "sync_changes":
      return { applied: args.changes.flatMap((/** @type {any} */ body) => room.remote(committedFromWire(body))), needsSync: null };
    case "sync_state":
      return { applied: room.reset(args.rev, structuredClone(args.state), args.tag ?? null), needsSync: null };
    case "join":
      return room.joined(args.rev, structuredClone(args.state), args.tag ?? null);
    case "joining":
      room.joining();
      return none;
    case "left":
      room.left();
      return none;
    case "disconnect":
      return none;
    default:
      throw new Error(`unknown step ${kind}`);
  }
}

/** What a listener hears, as the vectors write it. @param {any} committed */
function heard(committed) {
  /** @type {Record<string, any>} */
  const out = { rev: committed.rev };
  if (committed.id !== undefined) out.id = committed.id;
  if (committed.reset) out.reset = true;
  return out;
}

test("client_vectors.json transitions: the room state after each event", async (t) => {
  for (const c of spec.transitions.cases) {
    await t.test(c.name, () => {
      const room = new RoomState();
      c.steps.forEach((/** @type {any} */ step, /** @type {number} */ number) => {
        const { applied, needsSync } = drive(room, step);
        /** @type {Record<string, any>} */
        const seen = {
          confirmed: room.confirmed,
          rev: room.rev,
          tag: room.tag,
          view: room.view,
          pending: written(room.pending),
          in_flight: room.inFlight.map((entry) => entry.id),
          gap: room.hasGap,
          applied: applied.map(heard),
          needs_sync: needsSync,
        };
        for (const [key, expected] of Object.entries(step.expect)) {
          assert.deepEqual(seen[key], expected, `step ${number} (${JSON.stringify(step)}): ${key}`);
        }
      });
    });
  }
});

test("client_vectors.json texts: bound text fields after each event", async (t) => {
  for (const c of spec.texts.cases) {
    await t.test(c.name, () => {
      /** @type {any[]} */
      const sent = [];
      /** @type {string[]} */
      const forgotten = [];
      let acked = 0;
      const texts = new RoomTexts((change) => sent.push(change), (field) => forgotten.push(field));
      /** @type {Record<string, any>} */
      let state = {};
      c.steps.forEach((/** @type {any} */ step, /** @type {number} */ number) => {
        const kind = Object.keys(step).find((key) => key !== "expect");
        const args = step[kind ?? ""];
        let shown = null;
        if (kind === "whole") {
          state = structuredClone(args.state);
          texts.tookWhole(args);
        } else if (kind === "bind") texts.text(args.field, state[args.field]);
        else if (kind === "type") texts.text(args.field, null).ytext.insert(args.at, args.insert);
        else if (kind === "ack") {
          for (const change of sent.slice(acked)) texts.acknowledged(change);
          acked = sent.length;
        } else if (kind === "remote") texts.tookChange(committedFromWire(args.wire));
        else if (kind === "show") shown = texts.show(structuredClone(args.view));
        else {
          assert.equal(kind, "unset");
          texts.removed([args.field]);
        }
        /** @type {Record<string, any>} */
        const seen = { sent: sent.length, forgotten, shown, string: texts.text("note", null).toString() };
        const last = sent.at(-1);
        if (last?.text) {
          const empty = new Y.Doc();
          Y.applyUpdate(empty, fromBase64(Object.values(last.text)[0]));
          seen.last_sent_onto_empty = empty.getText(TEXT_ROOT).toString();
        }
        for (const [key, expected] of Object.entries(step.expect)) {
          assert.deepEqual(seen[key], expected, `step ${number} (${JSON.stringify(step)}): ${key}`);
        }
      });
    });
  }
});
