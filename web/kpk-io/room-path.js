// Room IDs in the browser: checked and built from page URLs by the same rules as
// kpk_io/rooms.py (check_room, room_from_path); tests/room_vectors.json holds both to it.

import { KpkError } from "./error.js";

export const MAX_ROOM_LENGTH = 256;

// What a broken page sends when its template variable is missing.
const PLACEHOLDERS = new Set(["undefined", "null"]);
// Python's str.isspace() characters (JavaScript's trim() differs at U+001C-U+001F, U+0085
// and U+FEFF), so that "whitespace only" means the same on both sides.
const SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const EDGE_SPACE = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "g");
const ONLY_SPACE = new RegExp(`^[${SPACE}]*$`);
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// A UTF-16 surrogate without its other half: Python refuses it, and no UTF-8 can carry it.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// Python's str.casefold() turns these ligatures into letters that spell placeholders.
const LIGATURES = { "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl" };
// urlsplit(): a scheme, then an optional //netloc; both are dropped, as is what follows ? or #.
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * Return `value` if it is a valid room ID, else throw a KpkError with code `invalid_room`.
 * @param {unknown} value
 * @returns {string}
 */
export function checkRoom(value) {
  if (value === null || value === undefined) {
    throw invalidRoom("no room ID (does the page URL match the room pattern?)");
  }
  if (typeof value !== "string") throw invalidRoom("room must be a string");
  if (ONLY_SPACE.test(value)) throw invalidRoom("room must not be empty");
  if ([...value].length > MAX_ROOM_LENGTH) {
    throw invalidRoom(`room must be at most ${MAX_ROOM_LENGTH} characters`);
  }
  if (CONTROL.test(value) || LONE_SURROGATE.test(value)) {
    throw invalidRoom("room must not contain control characters or lone surrogates");
  }
  if (isPlaceholder(value)) {
    throw invalidRoom(`room ${JSON.stringify(value)} is a placeholder, not an ID`);
  }
  return value;
}

/**
 * The room ID of a page, or null when `path` does not match `pattern`.
 *
 * `pattern` is a path such as `/kpk/notes/:org/:project/:page`; each `:name` matches one
 * non-empty segment. Every segment is percent-decoded, then encoded again with
 * encodeURIComponent, and the segments are joined with `/`. `path` may be a full URL; its
 * query and fragment are ignored. Malformed percent-encoding, or a parameter that is a
 * placeholder such as `undefined`, gives null.
 *
 * @param {string} pattern
 * @param {string} path  e.g. `location.pathname` or `location.href`
 * @returns {string | null}
 */
export function roomFromPath(pattern, path) {
  const wanted = segments(pattern);
  const given = segments(pathOf(path));
  if (wanted === null || given === null || wanted.length !== given.length) return null;
  const parts = [];
  for (let i = 0; i < wanted.length; i++) {
    const segment = decode(given[i]);
    if (!segment) return null;
    if (wanted[i].startsWith(":")) {
      if (isPlaceholder(segment)) return null;
    } else if (segment !== decode(wanted[i])) {
      return null;
    }
    const encoded = encode(segment);
    if (encoded === null) return null;
    parts.push(encoded);
  }
  try {
    return checkRoom(parts.join("/"));
  } catch (error) {
    if (error instanceof KpkError) return null;
    throw error;
  }
}

/** @param {string} message */
function invalidRoom(message) {
  return new KpkError("invalid_room", message);
}

/** @param {string} value */
function isPlaceholder(value) {
  const folded = value
    .replace(EDGE_SPACE, "")
    .toLowerCase()
    .replace(/[\ufb00-\ufb04]/g, (ligature) => LIGATURES[/** @type {keyof LIGATURES} */ (ligature)]);
  return PLACEHOLDERS.has(folded);
}

/**
 * The path part of a URL or path, as Python's urllib.parse.urlsplit() finds it.
 * @param {string} url
 */
function pathOf(url) {
  let rest = String(url).replace(/^[\u0000-\u0020]+/, "").replace(/[\t\r\n]/g, "");
  const scheme = SCHEME.exec(rest);
  if (scheme) rest = rest.slice(scheme[0].length);
  if (rest.startsWith("//")) {
    const end = rest.slice(2).search(/[/?#]/);
    rest = end < 0 ? "" : rest.slice(2 + end);
  }
  return rest.split("#", 1)[0].split("?", 1)[0];
}

/**
 * Split an absolute path; one trailing slash is allowed, as Django URLs end with one.
 * @param {string} path
 * @returns {string[] | null}
 */
function segments(path) {
  if (!path.startsWith("/")) return null;
  const parts = path.slice(1).split("/");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

/** @param {string} segment */
function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null; // malformed percent-encoding or UTF-8
  }
}

/** @param {string} segment */
function encode(segment) {
  try {
    return encodeURIComponent(segment);
  } catch {
    return null; // a lone surrogate
  }
}
