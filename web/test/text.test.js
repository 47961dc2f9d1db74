// text.js: where an edit of a bound element is, where a caret goes when others edit, and the
// bookkeeping of a room's texts (kpk_io/client_text.py is the Python twin).
import assert from "node:assert/strict";
import { test } from "node:test";

import * as Y from "../kpk-io/yjs.esm.min.js";
import { RoomTexts, difference, fromBase64, moved, toBase64 } from "../kpk-io/text.js";

test("an edit is one replaced range, placed by the caret among repeated characters", () => {
  assert.deepEqual(difference("hello", "helXlo", 4), { at: 3, removed: 0, inserted: "X" });
  assert.deepEqual(difference("abb", "abbb", 3), { at: 2, removed: 0, inserted: "b" });
  assert.deepEqual(difference("abb", "abbb"), { at: 3, removed: 0, inserted: "b" });
  assert.deepEqual(difference("hello", "hlo", 1), { at: 1, removed: 2, inserted: "" });
  assert.deepEqual(difference("abc", "aXYc", 3), { at: 1, removed: 1, inserted: "XY" });
});

test("a caret moves with text inserted or deleted before it, not after it", () => {
  assert.equal(moved(5, [{ retain: 2 }, { insert: "ab" }]), 7);
  assert.equal(moved(1, [{ retain: 2 }, { insert: "ab" }]), 1);
  assert.equal(moved(2, [{ retain: 2 }, { insert: "ab" }]), 2); // an insert at the caret: in front
  assert.equal(moved(5, [{ delete: 3 }]), 2);
  assert.equal(moved(2, [{ retain: 1 }, { delete: 3 }]), 1);
});

test("local edits are sent as updates; edits received before binding are kept", () => {
  /** @type {any[]} */
  const sent = [];
  const texts = new RoomTexts((change) => sent.push(change));
  const other = new Y.Doc();
  other.getText("text").insert(0, "hello");
  texts.tookWhole({ state: { note: "hello" }, texts: { note: toBase64(Y.encodeStateAsUpdate(other)) } });
  const before = Y.encodeStateVector(other);
  other.getText("text").insert(5, " world");
  texts.took({ text: { note: toBase64(Y.encodeStateAsUpdate(other, before)) } });
  const handle = texts.text("note", "hello world");
  assert.equal(String(handle), "hello world");
  assert.equal(sent.length, 0, "nothing received is sent back");
  handle.ytext.insert(0, ">");
  assert.equal(sent.length, 1);
  assert.equal(sent[0].set.note, ">hello world");
  Y.applyUpdate(other, fromBase64(sent[0].text.note));
  assert.equal(other.getText("text").toString(), ">hello world");
  assert.deepEqual(texts.show({ note: "stale", other: 1 }), { note: ">hello world", other: 1 });
  assert.equal(texts.set("note", "new"), true);
  assert.equal(String(handle), "new");
  assert.equal(texts.set("missing", "x"), false);
});

test("a field bound before the join that holds a plain string becomes a text holding it", () => {
  /** @type {any[]} */
  const sent = [];
  const texts = new RoomTexts((change) => sent.push(change));
  const handle = texts.text("note", undefined);
  texts.tookWhole({ state: { note: "plain" } });
  assert.equal(String(handle), "plain");
  assert.equal(sent.length, 1);
});
