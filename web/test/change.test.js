import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { applyChange, committedFromWire, makeChange, mergeChanges, updatePayload } from "../kpk-io/change.js";

test("applyChange: replace clears, then unset, then set", () => {
  const state = { a: 1, b: 2, c: 3 };
  applyChange(makeChange({ set: { d: 4 }, unset: ["a"] }), state);
  assert.deepEqual(state, { b: 2, c: 3, d: 4 });
  applyChange(makeChange({ set: { e: null }, replace: true }), state);
  assert.deepEqual(state, { e: null });
});

test("makeChange copies values and refuses what JSON cannot carry", () => {
  const value = { list: [1, { x: "y" }] };
  const change = makeChange({ set: { v: value } });
  value.list.push(2);
  assert.deepEqual(change.set.v, { list: [1, { x: "y" }] });
  for (const bad of [NaN, Infinity, undefined, () => 1, new Date(0), [1, NaN], { a: Symbol("s") }]) {
    assert.throws(() => makeChange({ set: { v: bad } }), TypeError, String(bad));
  }
  assert.throws(() => makeChange({ set: { "": 1 } }), TypeError);
  assert.throws(() => makeChange({ set: { a: 1 }, unset: ["a"] }), TypeError);
  assert.throws(() => makeChange({ set: [1] }), TypeError);
});

test("a field named __proto__ is an ordinary field", () => {
  const change = makeChange({ set: JSON.parse('{"__proto__": {"polluted": true}}') });
  const state = {};
  applyChange(change, state);
  assert.deepEqual(Object.keys(state), ["__proto__"]);
  assert.equal(/** @type {any} */ ({}).polluted, undefined);
  assert.equal(Object.getPrototypeOf(state), Object.prototype);
});

test("mergeChanges has the effect of both, in order", () => {
  const cases = [
    [{ set: { a: 1 } }, { set: { a: 2, b: 3 } }],
    [{ set: { a: 1 } }, { unset: ["a"] }],
    [{ unset: ["a"] }, { set: { a: 5 } }],
    [{ set: { a: 1 }, unset: ["b"] }, { set: { c: 2 }, unset: ["d"] }],
    [{ set: { a: 1 }, replace: true }, { set: { b: 2 }, unset: ["a"] }],
    [{ set: { a: 1 } }, { set: { b: 2 }, replace: true }],
    [{ replace: true }, { unset: ["x"] }],
  ];
  for (const [first, then] of cases) {
    const one = makeChange(first);
    const two = makeChange(then);
    const separately = { a: 0, b: 0, x: 0, z: 9 };
    applyChange(one, separately);
    applyChange(two, separately);
    const merged = mergeChanges(one, two);
    const together = { a: 0, b: 0, x: 0, z: 9 };
    applyChange(merged, together);
    assert.deepEqual(together, separately, JSON.stringify([first, then]));
    const overlap = merged.unset.filter((name) => Object.hasOwn(merged.set, name));
    assert.deepEqual(overlap, [], "a merged change never sets and unsets one field");
  }
});

test("updatePayload carries only what changed", () => {
  assert.deepEqual(updatePayload("r", "i-1", makeChange({ set: { a: 1 } })), { room: "r", id: "i-1", set: { a: 1 } });
  assert.deepEqual(updatePayload("r", "i-2", makeChange({ unset: ["a"] })), { room: "r", id: "i-2", unset: ["a"] });
  assert.deepEqual(updatePayload("r", "i-3", makeChange({ replace: true })), { room: "r", id: "i-3", replace: true });
});

test("committedFromWire checks the shape of an update", () => {
  const body = { room: "r", rev: 3, set: { a: 1 }, unset: [], replace: false, id: "x-1" };
  assert.deepEqual(committedFromWire(body), { rev: 3, set: { a: 1 }, unset: [], replace: false, id: "x-1" });
  for (const bad of [null, {}, { ...body, rev: "3" }, { ...body, rev: 0 }, { ...body, set: [] }, { ...body, unset: [1] }, { ...body, id: 5 }]) {
    assert.throws(() => committedFromWire(bad), TypeError);
  }
});

const byVectors = JSON.parse(readFileSync(new URL("../../tests/by_vectors.json", import.meta.url), "utf8"));

test("by_vectors.json: who made a change, as kpk_io.change reads it", () => {
  const body = { room: "r", rev: 1, set: {}, unset: [], replace: false };
  assert.ok(byVectors.cases.length > 5);
  for (const { wire, by, refused } of byVectors.cases) {
    const withBy = wire === null ? body : { ...body, by: wire };
    if (refused) assert.throws(() => committedFromWire(withBy), TypeError, JSON.stringify(wire));
    else assert.deepEqual(committedFromWire(withBy).by, by ?? undefined, JSON.stringify(wire));
  }
});
