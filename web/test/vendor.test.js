// kpk-io/socket.io.esm.min.js is socket.io-client's published file, unchanged, at the version
// package.json pins (npm run vendor copies it).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";

const web = new URL("../", import.meta.url);
const vendored = readFileSync(new URL("kpk-io/socket.io.esm.min.js", web));
const pinned = JSON.parse(readFileSync(new URL("package.json", web), "utf8")).devDependencies["socket.io-client"];
const lock = JSON.parse(readFileSync(new URL("package-lock.json", web), "utf8"));
const installed = new URL("node_modules/socket.io-client/dist/socket.io.esm.min.js", web);

test("the vendored socket.io-client is the pinned version", () => {
  assert.match(pinned, /^\d+\.\d+\.\d+$/, "an exact version");
  assert.equal(lock.packages["node_modules/socket.io-client"].version, pinned);
  assert.ok(vendored.toString("utf8", 0, 200).includes(` * Socket.IO v${pinned}\n`));
});

test("the vendored file is byte for byte the one npm installs", { skip: !existsSync(installed) && "no node_modules (npm ci)" }, () => {
  assert.ok(vendored.equals(readFileSync(installed)), "run: cd web && npm ci && npm run vendor");
});
