// Changes to a room's state, as made locally, merged, sent and received (kpk_io/change.py).

import { mergeTextUpdates } from "./text-codec.js";

/** @typedef {null | boolean | number | string | JSONValue[] | {[key: string]: JSONValue}} JSONValue */
/** @typedef {{[field: string]: JSONValue}} State */
/**
 * Set some top-level fields, remove others, or (replace) remove every field not set. `text`
 * (present only when not empty) holds edits of text fields: field -> base64 Yjs update (v1);
 * such a field is also in `set`, with the text's new string (text.js, docs/protocol.md).
 * @typedef {{set: State, unset: string[], replace: boolean, text?: {[field: string]: string}}} Change
 */
/**
 * Who made a change, when the server checks tokens: the token's `sub` and `name`.
 * @typedef {{user: string, name?: string}} By
 */
/**
 * A change as the server committed it: its revision, the id its sender gave it, its tag and
 * the tag of the commit before it, and (with auth on) who made it.
 * `reset` marks the whole state the server sent instead of a change (it replaces every field).
 * @typedef {Change & {rev: number, id?: string, tag?: string, prev?: string, by?: By, reset?: true}} Committed
 */

/**
 * A checked change with deep copies of its values; throws TypeError for what the server
 * would refuse as `invalid_update`.
 * @param {{set?: State, unset?: string[], replace?: boolean, text?: {[field: string]: string}}} change
 * @returns {Change}
 */
export function makeChange({ set = {}, unset = [], replace = false, text = {} }) {
  if (!isPlainObject(set)) throw new TypeError("set must be an object of fields");
  if (!Array.isArray(unset)) throw new TypeError("unset must be a list of field names");
  /** @type {State} */
  const fields = {};
  for (const [name, value] of Object.entries(set)) {
    checkField(name);
    put(fields, name, copyJSON(value, name));
  }
  for (const name of unset) {
    checkField(name);
    if (Object.hasOwn(fields, name)) throw new TypeError(`field ${name} is both set and unset`);
  }
  /** @type {Change} */
  const change = { set: fields, unset: [...new Set(unset)], replace: Boolean(replace) };
  if (!isPlainObject(text) || !Object.values(text).every((update) => typeof update === "string")) {
    throw new TypeError("text must be an object of fields to base64 Yjs updates");
  }
  if (Object.keys(text).length) change.text = { ...text };
  return change;
}

/**
 * Apply `change` to `state` in place, as the server does.
 * @param {Change} change
 * @param {State} state
 */
export function applyChange(change, state) {
  if (change.replace) for (const name of Object.keys(state)) delete state[name];
  for (const name of change.unset) delete state[name];
  for (const [name, value] of Object.entries(change.set)) put(state, name, structuredClone(value));
}

/**
 * One change with the effect of `first` followed by `then`.
 * @param {Change} first
 * @param {Change} then
 * @returns {Change}
 */
export function mergeChanges(first, then) {
  if (then.replace) return then;
  const set = { ...first.set };
  for (const name of then.unset) delete set[name];
  for (const [name, value] of Object.entries(then.set)) put(set, name, value);
  const unset = first.replace
    ? []
    : [
        ...first.unset.filter((name) => !Object.hasOwn(then.set, name)),
        ...then.unset.filter((name) => !first.unset.includes(name)),
      ];
  /** @type {Change} */
  const merged = { set, unset, replace: first.replace };
  // Text edits of one field merge into one update (Yjs updates commute: every keystroke is
  // kept); a later set or unset of the field ends its edits.
  const thenText = then.text ?? {};
  /** @type {{[field: string]: string}} */
  const text = {};
  for (const [name, update] of Object.entries(first.text ?? {})) {
    const ended = then.unset.includes(name) || (Object.hasOwn(then.set, name) && !Object.hasOwn(thenText, name));
    if (!ended) text[name] = update;
  }
  for (const [name, update] of Object.entries(thenText)) {
    text[name] = Object.hasOwn(text, name) ? mergeTextUpdates(text[name], update) : update;
  }
  if (Object.keys(text).length) merged.text = text;
  return merged;
}

/**
 * The field names a change touches (a replace with no fields counts as one).
 * @param {Change} change
 * @returns {string[]}
 */
export function touchedFields(change) {
  const names = [...Object.keys(change.set), ...change.unset];
  return change.replace && names.length === 0 ? ["*"] : names;
}

/**
 * The body of an `update` request: only what the change does (`set` when it does nothing),
 * and `rev` for compare-and-set (kpk_io.change.update_payload).
 * @param {string} room
 * @param {string} id
 * @param {Change} change
 * @param {number} [rev]
 */
export function updatePayload(room, id, change, rev) {
  /** @type {{room: string, id: string, set?: State, unset?: string[], replace?: true, text?: {[field: string]: string}, rev?: number}} */
  const body = { room, id };
  const text = change.text ?? {};
  // A text field's string is this page's own view; the edit itself travels in `text`.
  /** @type {State} */
  const plain = {};
  for (const [name, value] of Object.entries(change.set)) if (!Object.hasOwn(text, name)) put(plain, name, value);
  const fields = Object.keys(plain).length > 0;
  const edits = Object.keys(text).length > 0;
  if (fields || !(change.unset.length || change.replace || edits)) body.set = plain;
  if (edits) body.text = text;
  if (change.unset.length) body.unset = change.unset;
  if (change.replace) body.replace = true;
  if (rev !== undefined) body.rev = rev;
  return body;
}

/**
 * An `update` event body or a `sync` change entry; throws TypeError if malformed.
 * rev (a positive integer), set (an object), unset (a list of strings) and replace (a
 * boolean) are required; id, tag and prev are strings or absent (null reads as absent);
 * other keys are ignored. tests/client_vectors.json holds both clients to this.
 * @param {any} body
 * @returns {Committed}
 */
export function committedFromWire(body) {
  const ok =
    isPlainObject(body) &&
    Number.isInteger(body.rev) &&
    body.rev > 0 &&
    isPlainObject(body.set) &&
    Array.isArray(body.unset) &&
    body.unset.every((/** @type {unknown} */ name) => typeof name === "string") &&
    typeof body.replace === "boolean" &&
    ["id", "tag", "prev"].every((key) => body[key] == null || typeof body[key] === "string") &&
    (body.text == null || (isPlainObject(body.text) && Object.values(body.text).every((u) => typeof u === "string"))) &&
    (body.by == null || isBy(body.by));
  if (!ok) throw new TypeError(`not a change: ${JSON.stringify(body)}`);
  /** @type {Committed} */
  const committed = { rev: body.rev, set: body.set, unset: body.unset, replace: body.replace };
  if (body.text != null && Object.keys(body.text).length) committed.text = body.text;
  if (body.id != null) committed.id = body.id;
  if (body.tag != null) committed.tag = body.tag;
  if (body.prev != null) committed.prev = body.prev;
  if (body.by != null) committed.by = body.by.name == null ? { user: body.by.user } : { user: body.by.user, name: body.by.name };
  return committed;
}

/** @param {unknown} by @returns {by is By} */
function isBy(by) {
  return isPlainObject(by) && typeof by.user === "string" && (by.name == null || typeof by.name === "string");
}

/** @param {unknown} value @returns {value is Record<string, any>} */
export function isPlainObject(value) {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * `object[name] = value`, also for a field called `__proto__`.
 * @param {State} object
 * @param {string} name
 * @param {JSONValue} value
 */
export function put(object, name, value) {
  Object.defineProperty(object, name, { value, enumerable: true, writable: true, configurable: true });
}

/** @param {unknown} name */
function checkField(name) {
  if (typeof name !== "string" || name === "") throw new TypeError("a field name must be a non-empty string");
}

/**
 * A deep copy of a JSON value; throws TypeError for anything JSON cannot carry.
 * @param {unknown} value
 * @param {string} where
 * @returns {JSONValue}
 */
function copyJSON(value, where) {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
  } else if (Array.isArray(value)) {
    return value.map((item, i) => copyJSON(item, `${where}[${i}]`));
  } else if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyJSON(v, `${where}.${k}`)]));
  }
  throw new TypeError(`${where} is not a JSON value: ${String(value)}`);
}

/**
 * Whether two JSON values are equal (objects whatever their key order).
 * @param {unknown} a
 * @param {unknown} b
 * @returns {boolean}
 */
export function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every(
    (key) =>
      Object.hasOwn(b, key) &&
      sameJson(/** @type {any} */ (a)[key], /** @type {any} */ (b)[key]),
  );
}
