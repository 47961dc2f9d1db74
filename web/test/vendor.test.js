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

// admin/ is @socket.io/admin-ui's built UI with every asset local (npm run vendor).
const adminIndex = readFileSync(new URL("admin/index.html", web), "utf8");

test("the Admin UI's page loads nothing from another origin", () => {
  const assets = [...adminIndex.matchAll(/(?:href|src)="([^"]+)"/g)].map((match) => match[1]);
  assert.ok(assets.includes("mdi/css/materialdesignicons.min.css"));
  assert.ok(assets.includes("kpk-admin.js"));
  for (const asset of assets) {
    assert.doesNotMatch(asset, /^(https?:)?\/\//, asset);
    assert.ok(existsSync(new URL(`admin/${asset}`, web)), `admin/${asset} is vendored`);
  }
});

test("the vendored Admin UI and icons are the pinned versions", () => {
  const pins = JSON.parse(readFileSync(new URL("package.json", web), "utf8")).devDependencies;
  for (const name of ["@socket.io/admin-ui", "@mdi/font"]) {
    assert.match(pins[name], /^\d+\.\d+\.\d+$/, `${name}: an exact version`);
    assert.equal(lock.packages[`node_modules/${name}`].version, pins[name]);
  }
  const icons = readFileSync(new URL("admin/mdi/css/materialdesignicons.min.css", web), "utf8");
  assert.ok(icons.includes(`v=${pins["@mdi/font"]}`));
});

// kpk-io/yjs.esm.min.js is Yjs with lib0 bundled into one module by esbuild (npm run vendor),
// at the version package.json pins; kpk-io's npm package maps it to the app's own yjs.
test("the vendored Yjs is the pinned version, one module that works", async () => {
  const pins = JSON.parse(readFileSync(new URL("package.json", web), "utf8")).devDependencies;
  assert.match(pins.yjs, /^\d+\.\d+\.\d+$/, "an exact version");
  assert.equal(lock.packages["node_modules/yjs"].version, pins.yjs);
  const bundle = readFileSync(new URL("kpk-io/yjs.esm.min.js", web), "utf8");
  assert.ok(bundle.startsWith(`/* Yjs v${pins.yjs} `));
  assert.doesNotMatch(bundle, /\bfrom\s*"(?!\.)/, "imports nothing");
  const Y = await import(new URL("kpk-io/yjs.esm.min.js", web).href);
  const doc = new Y.Doc();
  doc.getText("text").insert(0, "hi");
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
  assert.equal(copy.getText("text").toString(), "hi");
});
