// Types of yjs.esm.min.js, Yjs bundled with lib0 into one browser module (web/scripts/vendor.js):
// Yjs' own (a peer dependency of this package).
export * from "yjs";
