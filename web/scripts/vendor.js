// Copy the published browser files that kpk-io serves, at the versions package.json pins
// (installed by `npm ci`), into the tree:
// - socket.io-client's ES module next to kpk-io.js;
// - Yjs (with lib0, its only dependency) as one ES module beside it, yjs.esm.min.js, bundled
//   by esbuild: Yjs publishes no single-file browser build. kpk-io's npm package maps this
//   file to the app's own `yjs` (a peer dependency), so a page loads one copy of Yjs;
// - the Socket.IO Admin UI (@socket.io/admin-ui's built ui/dist) into admin/, with
//   @mdi/font's icons beside it: its index.html loads Google Fonts and @mdi/font from CDNs,
//   rewritten here so that every asset is served by kpk-io itself (the Roboto web font is
//   dropped; the UI falls back to the system's sans-serif), plus kpk-admin.js, which makes
//   the login form default to the origin that serves it.
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { buildSync } from "esbuild";

const web = new URL("../", import.meta.url);
const at = (/** @type {string} */ path) => new URL(path, web);

copyFileSync(at("node_modules/socket.io-client/dist/socket.io.esm.min.js"), at("kpk-io/socket.io.esm.min.js"));
const yjs = JSON.parse(readFileSync(at("node_modules/yjs/package.json"), "utf8")).version;
buildSync({
  stdin: { contents: 'export * from "yjs";', resolveDir: new URL(".", web).pathname },
  bundle: true,
  format: "esm",
  minify: true,
  legalComments: "none",
  banner: { js: `/* Yjs v${yjs} (MIT, https://github.com/yjs/yjs) with lib0, bundled by web/scripts/vendor.js */` },
  outfile: new URL("kpk-io/yjs.esm.min.js", web).pathname,
});

const admin = at("admin/");
rmSync(admin, { recursive: true, force: true });
cpSync(at("node_modules/@socket.io/admin-ui/ui/dist/"), admin, {
  recursive: true,
  filter: (source) => !source.endsWith(".map"),
});
mkdirSync(at("admin/mdi/css/"), { recursive: true });
mkdirSync(at("admin/mdi/fonts/"), { recursive: true });
copyFileSync(at("node_modules/@mdi/font/css/materialdesignicons.min.css"), at("admin/mdi/css/materialdesignicons.min.css"));
for (const format of ["woff2", "woff"]) {
  const name = `materialdesignicons-webfont.${format}`;
  copyFileSync(at(`node_modules/@mdi/font/fonts/${name}`), at(`admin/mdi/fonts/${name}`));
}
writeFileSync(at("admin/kpk-admin.js"), [
  "// kpk-io: the Admin UI's login form offers the server that serves it (its own default is empty).",
  'if (!localStorage.getItem("server_url")) localStorage.setItem("server_url", location.origin);',
  "",
].join("\n"));
writeFileSync(at("admin/index.html"), localIndex(readFileSync(at("admin/index.html"), "utf8")));
console.log("vendored socket.io-client, Yjs, the Admin UI and @mdi/font");

/** @param {string} html  the Admin UI's index.html as published */
export function localIndex(html) {
  const fonts = /<link rel="stylesheet" href="https:\/\/fonts\.googleapis\.com\/[^"]*">/;
  const icons = /<link rel="stylesheet" href="https:\/\/cdn\.jsdelivr\.net\/npm\/@mdi\/font@[^"]*">/;
  if (!fonts.test(html) || !icons.test(html)) throw new Error("the Admin UI's index.html changed: update vendor.js");
  const local = html
    .replace(fonts, "")
    .replace(icons, '<link rel="stylesheet" href="mdi/css/materialdesignicons.min.css">')
    .replace("<script ", '<script src="kpk-admin.js"></script><script ');
  if (/https?:\/\//.test(local.replace(/<noscript>.*<\/noscript>/s, ""))) throw new Error("a remote asset is left");
  return local;
}
