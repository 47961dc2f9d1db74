// The wire form of text edits: Yjs updates (v1) in base64 (docs/protocol.md, Text fields).

import * as Y from "./yjs.esm.min.js";

/** @param {Uint8Array} bytes */
export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** @param {string} text */
export function fromBase64(text) {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

/**
 * Two base64 Yjs updates (v1) of one text as one: every edit of both is kept.
 * @param {string} first
 * @param {string} then
 */
export function mergeTextUpdates(first, then) {
  return toBase64(Y.mergeUpdates([fromBase64(first), fromBase64(then)]));
}

/**
 * The clients whose structs `update` holds, and how far (a state vector), or an empty map.
 * @param {Uint8Array} update
 */
export function clocksOf(update) {
  try {
    return Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update));
  } catch {
    return new Map();
  }
}
