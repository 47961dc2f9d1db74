// Copy socket.io-client's published browser ES module (the version pinned in package.json,
// installed by `npm ci`) next to kpk-io.js, where `kpk-io serve` serves it.
import { copyFileSync } from "node:fs";

const from = new URL("../node_modules/socket.io-client/dist/socket.io.esm.min.js", import.meta.url);
const to = new URL("../kpk-io/socket.io.esm.min.js", import.meta.url);
copyFileSync(from, to);
console.log(`copied ${from.pathname} to ${to.pathname}`);
