import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { KpkError, MAX_ROOM_LENGTH, checkRoom, roomFromPath } from "../kpk-io/kpk-io.js";

const vectors = JSON.parse(readFileSync(new URL("../../tests/room_vectors.json", import.meta.url), "utf8"));

test("room_vectors.json: the cases kpk_io.rooms.room_from_path is held to", async (t) => {
  assert.ok(vectors.cases.length > 20);
  for (const { pattern, path, room } of vectors.cases) {
    await t.test(`${pattern} ${path}`, () => assert.equal(roomFromPath(pattern, path), room));
  }
});

test("a path that does not match gives null, never the text undefined", () => {
  for (const path of ["/demo/notes/acme/q1", "/demo/notes/undefined/q1/p", "/demo/notes/%E0%A4%A/q/p", ""]) {
    assert.equal(roomFromPath("/demo/notes/:org/:project/:page", path), null);
  }
});

test("placeholders are recognised however they are spelled", () => {
  const pattern = "/board/:id";
  for (const id of ["undefined", "UNDEFINED", "Null", "%20null%20", "unde%EF%AC%81ned", "%1Cnull"]) {
    assert.equal(roomFromPath(pattern, `/board/${id}`), null, id);
  }
  // Python's casefold() leaves a dotless i alone, so this is a room on both sides.
  assert.equal(roomFromPath(pattern, "/board/undef%C4%B1ned"), "board/undef%C4%B1ned");
  assert.equal(roomFromPath(pattern, "/board/nullish"), "board/nullish");
});

test("a full URL: scheme and host are dropped as urlsplit() does", () => {
  const pattern = "/demo/notes/:org/:project/:page";
  assert.equal(roomFromPath(pattern, "http://127.0.0.1:8000/demo/notes/a/b/c#x"), "demo/notes/a/b/c");
  assert.equal(roomFromPath(pattern, "//host/demo/notes/a/b/c?q"), "demo/notes/a/b/c");
  assert.equal(roomFromPath(pattern, "  /demo/notes/a/b/c"), "demo/notes/a/b/c");
  assert.equal(roomFromPath(pattern, "/demo/notes/a\t/b/c"), "demo/notes/a/b/c");
});

test("a too long room is no room", () => {
  const long = "x".repeat(MAX_ROOM_LENGTH);
  assert.equal(roomFromPath("/:a", `/${long.slice(1)}`), long.slice(1));
  assert.equal(roomFromPath("/:a/:b", `/${long}/y`), null);
});

test("checkRoom refuses what the server refuses with invalid_room", () => {
  const emoji = "🎉".repeat(MAX_ROOM_LENGTH); // 256 code points, 512 UTF-16 units
  for (const good of ["a", "a_b/c", "x%2Fy", "ünï cödé", "{braces}:colons", emoji, "null-ish"]) {
    assert.equal(checkRoom(good), good);
  }
  for (const bad of [undefined, null, 42, "", "   ", "\u3000", "a\u0000b", "a\u009fb", "undefined", " NULL ", `${emoji}x`]) {
    assert.throws(() => checkRoom(bad), (error) => error instanceof KpkError && error.code === "invalid_room", String(bad));
  }
});

test("a missing room says what to check", () => {
  assert.throws(() => checkRoom(null), /does the page URL match/);
});
