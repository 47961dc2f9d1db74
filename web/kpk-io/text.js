// Text fields in the browser: a Y.Doc per text field whose local edits become room changes
// and into which the edits of others are merged, and its binding to a <textarea>, an
// <input> or a contenteditable element (docs/protocol.md, Text fields).

import * as Y from "./yjs.esm.min.js";

/** The root Y.Text of each text field's document. */
export const TEXT_ROOT = "text";
// Marks updates that came from the server, so they are not sent back.
const REMOTE = Symbol("kpk-io remote");

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
 * @typedef {{set: {[field: string]: string}, text: {[field: string]: string}}} TextChange
 */

/**
 * The clients whose structs `update` holds, and how far (a state vector), or an empty map.
 * @param {Uint8Array} update
 */
function clocksOf(update) {
  try {
    return Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update));
  } catch {
    return new Map();
  }
}

/**
 * One text field of a room: `ytext` for editor bindings, `bind(element)` for a plain one.
 *
 * Besides its document it keeps `confirmed`, the server's document as far as this page knows
 * (the server's updates and our acknowledged edits). When the server's document no longer
 * holds it (the field was unset, replaced away or made plain, or Redis lost the room), the
 * handle starts over from the server's document (`doc` and `ytext` are new ones then; bound
 * elements follow) and types again what was typed here and not acknowledged.
 */
export class TextHandle {
  /** @type {Set<() => void>} what bind() does when the document is a new one */
  #rebinds = new Set();
  #send;

  /** @param {string} field @param {(change: TextChange) => void} send */
  constructor(field, send) {
    this.field = field;
    this.#send = send;
    this.#start(null);
  }

  /** @param {string | null} merged */
  #start(merged) {
    const doc = new Y.Doc();
    // Typed by the `yjs` package (a peer dependency): the declarations name no vendored file.
    /** @type {import("yjs").Doc} */
    this.doc = doc;
    /** @type {import("yjs").Text} the Y.Text, for editor bindings (y-prosemirror, y-codemirror) */
    this.ytext = doc.getText(TEXT_ROOT);
    /** @type {import("yjs").Doc} */
    this.confirmed = new Y.Doc();
    const field = this.field;
    doc.on("update", (/** @type {Uint8Array} */ update, /** @type {unknown} */ origin) => {
      if (origin === REMOTE || doc !== this.doc) return; // a remote edit, or an old document
      this.#send({ set: { [field]: doc.getText(TEXT_ROOT).toString() }, text: { [field]: toBase64(update) } });
    });
    if (merged !== null) this.apply(merged);
  }

  toString() {
    return this.ytext.toString();
  }

  /** Merge an update from the server (another member's edit, or a whole document). */
  apply(/** @type {string} */ update) {
    const bytes = fromBase64(update);
    Y.applyUpdate(this.doc, bytes, REMOTE);
    Y.applyUpdate(this.confirmed, bytes, REMOTE);
  }

  /** Our edit `update`, acknowledged: the server holds it, unless made on an older document. */
  acknowledged(/** @type {string} */ update) {
    if (this.madeHere(update)) Y.applyUpdate(this.confirmed, fromBase64(update), REMOTE);
  }

  /** Whether `update` was made on the current document (not one started over from). */
  madeHere(/** @type {string} */ update) {
    return [...clocksOf(fromBase64(update)).keys()].every((client) => client === this.doc.clientID);
  }

  /** Whether the server's document `merged` (null: none) holds everything confirmed here. */
  holds(/** @type {string | null} */ merged) {
    const theirs = merged === null ? new Map() : clocksOf(fromBase64(merged));
    return [...Y.decodeStateVector(Y.encodeStateVector(this.confirmed))].every(([client, clock]) => (theirs.get(client) ?? 0) >= clock);
  }

  /**
   * Start from the server's document `merged` (null: no text), then type again what was
   * typed here and not acknowledged (`retype` false: nothing, after our own unset).
   * @param {string | null} merged
   * @param {boolean} [retype]
   */
  startOver(merged, retype = true) {
    const local = this.ytext.toString();
    const base = this.confirmed.getText(TEXT_ROOT).toString();
    this.doc.destroy();
    this.#start(merged);
    for (const rebind of this.#rebinds) rebind();
    const { at, removed, inserted } = difference(base, local);
    if (!retype || (!removed && !inserted)) return;
    const from = Math.min(at, this.ytext.length);
    this.doc.transact(() => {
      const count = Math.min(removed, this.ytext.length - from);
      if (count) this.ytext.delete(from, count);
      if (inserted) this.ytext.insert(from, inserted);
    });
  }

  /** Replace the whole content, as one edit. */
  replace(/** @type {string} */ content) {
    this.doc.transact(() => {
      this.ytext.delete(0, this.ytext.length);
      this.ytext.insert(0, content);
    });
  }

  /**
   * Keep `element` (a <textarea>, an <input> or a contenteditable element holding plain
   * text) and the text the same both ways; the caret and selection stay where the user had
   * them when other members' edits arrive. Returns a function that unbinds.
   * @param {HTMLElement} element
   * @returns {() => void}
   */
  bind(element) {
    const view = viewOf(element);
    const local = Symbol("kpk-io input");
    view.write(this.ytext.toString());
    const onInput = () => {
      const before = this.ytext.toString();
      const after = view.read();
      const { at, removed, inserted } = difference(before, after, view.selection()[1]);
      if (!removed && !inserted) return;
      this.doc.transact(() => {
        if (removed) this.ytext.delete(at, removed);
        if (inserted) this.ytext.insert(at, inserted);
      }, local);
    };
    const onChange = (/** @type {Y.YTextEvent} */ event) => {
      if (event.transaction.origin === local) return;
      const [start, end] = view.selection();
      view.write(this.ytext.toString());
      if (start !== null && end !== null) view.select(moved(start, event.delta), moved(end, event.delta));
    };
    let observed = this.ytext;
    // A new document (the handle started over): observe it, and show it (typing not yet
    // acknowledged is typed again into it right after, which onChange shows).
    const rebind = () => {
      observed.unobserve(onChange);
      observed = this.ytext;
      observed.observe(onChange);
      view.write(this.ytext.toString());
    };
    element.addEventListener("input", onInput);
    observed.observe(onChange);
    this.#rebinds.add(rebind);
    return () => {
      element.removeEventListener("input", onInput);
      observed.unobserve(onChange);
      this.#rebinds.delete(rebind);
    };
  }
}

/**
 * The text fields of one room bound with room.text(), and the documents of the last whole
 * state (join, sync) to start new ones from (kpk_io/client_text.py RoomTexts). `forget(field)`
 * takes the field's unsent edits of a document started over from out of the pending change.
 */
export class RoomTexts {
  /** @type {Map<string, TextHandle>} */
  #bound = new Map();
  /** @type {{[field: string]: string}} */
  #merged = {};
  #send;
  #forget;

  /** @param {(change: TextChange) => void} send @param {(field: string) => void} [forget] */
  constructor(send, forget = () => {}) {
    this.#send = send;
    this.#forget = forget;
  }

  /** The fields bound with text(). */
  get bound() {
    return [...this.#bound.keys()];
  }

  /** @param {string} field @param {unknown} current  the field's value now */
  text(field, current) {
    let handle = this.#bound.get(field);
    if (!handle) {
      handle = new TextHandle(field, this.#send);
      this.#bound.set(field, handle);
      if (Object.hasOwn(this.#merged, field)) handle.apply(this.#merged[field]);
      else if (typeof current === "string" && current) handle.ytext.insert(0, current); // its first edit
    }
    return handle;
  }

  /**
   * `view` with each bound text's string: its document holds every edit received. A field
   * whose value is not a string (set by another member) shows that value.
   */
  show(/** @type {Record<string, unknown>} */ view) {
    for (const [name, handle] of this.#bound) if (typeof view[name] === "string") view[name] = handle.toString();
    return view;
  }

  /**
   * A set of a bound text with a string edits it (as the server would); true then. Any
   * other value makes the field plain: its document starts over, empty.
   */
  set(/** @type {string} */ field, /** @type {unknown} */ value) {
    const handle = this.#bound.get(field);
    if (!handle) return false;
    if (typeof value !== "string") {
      this.removed([field]);
      return false;
    }
    handle.replace(value);
    return true;
  }

  /** Our own unset or replace removes these texts (null: every one). */
  removed(/** @type {string[] | null} */ fields = null) {
    for (const [name, handle] of this.#bound) {
      if (fields !== null && !fields.includes(name)) continue;
      delete this.#merged[name];
      this.#forget(name);
      handle.startOver(null, false);
    }
  }

  /** @param {string} name @param {string | null} merged */
  #startOver(name, merged) {
    this.#forget(name);
    this.#bound.get(name)?.startOver(merged);
  }

  /**
   * Merge a whole state's texts (a join's or a sync's ack) into the bound documents; a field
   * whose server document lost what was confirmed here starts over from it.
   */
  tookWhole(/** @type {any} */ ack) {
    const texts = ack && typeof ack.texts === "object" && ack.texts !== null ? ack.texts : {};
    this.#merged = {};
    for (const [name, merged] of Object.entries(texts)) if (typeof merged === "string") this.#merged[name] = merged;
    for (const [name, handle] of this.#bound) {
      const merged = this.#merged[name] ?? null;
      if (!handle.holds(merged)) this.#startOver(name, merged); // unset, replaced or lost meanwhile
      else if (merged !== null) handle.apply(merged);
    }
    // A field bound before the join that holds a plain string becomes a text holding it.
    const state = ack && typeof ack.state === "object" && ack.state !== null ? ack.state : {};
    for (const [name, handle] of this.#bound) {
      const plain = state[name];
      if (!Object.hasOwn(texts, name) && typeof plain === "string" && plain && !handle.ytext.length) {
        handle.ytext.insert(0, plain);
      }
    }
  }

  /**
   * A committed change of another member: text edits merge; a bound text it unsets,
   * replaces away or makes plain starts over, empty.
   * @param {{set?: {[field: string]: unknown}, unset?: string[], replace?: boolean, text?: {[field: string]: string}}} committed
   */
  tookChange(committed) {
    const set = committed.set ?? {};
    const text = committed.text ?? {};
    for (const name of this.#bound.keys()) {
      const removed = (committed.unset ?? []).includes(name) || (committed.replace && !Object.hasOwn(set, name));
      if (!Object.hasOwn(text, name) && (removed || Object.hasOwn(set, name))) {
        delete this.#merged[name];
        this.#startOver(name, null);
      }
    }
    this.took(committed);
  }

  /**
   * Merge committed text edits (another member's, or the server's edit made of a set of
   * ours, from its ack); kept for fields not bound yet, so text() starts current.
   */
  took(/** @type {{text?: {[field: string]: string}}} */ committed) {
    for (const [name, update] of Object.entries(committed.text ?? {})) {
      const handle = this.#bound.get(name);
      if (handle) handle.apply(update);
      else this.#merged[name] = Object.hasOwn(this.#merged, name) ? mergeTextUpdates(this.#merged[name], update) : update;
    }
  }

  /** Our change, acknowledged: its text edits are in the server's documents. */
  acknowledged(/** @type {{text?: {[field: string]: string}}} */ change) {
    for (const [name, update] of Object.entries(change.text ?? {})) this.#bound.get(name)?.acknowledged(update);
  }

  /**
   * The server refused `change` as text_stale (after a sync brought what it lacked): each
   * text it edits on a current document starts over from what is confirmed.
   */
  stale(/** @type {{text?: {[field: string]: string}}} */ change) {
    for (const [name, update] of Object.entries(change.text ?? {})) {
      const handle = this.#bound.get(name);
      if (handle?.madeHere(update)) this.#startOver(name, toBase64(Y.encodeStateAsUpdate(handle.confirmed)));
    }
  }
}

/**
 * Where `before` and `after` differ: one replaced range (what a keystroke, a paste or a cut
 * does), found from the common prefix and suffix. `caret` (after the edit) places it when
 * repeated characters leave a choice: typing "b" between the two b's of "abb" is an insert
 * at 2, not at 3.
 * @param {string} before
 * @param {string} after
 * @param {number | null} [caret]
 */
export function difference(before, after, caret = null) {
  let at = 0;
  const grown = Math.max(0, after.length - before.length);
  const shortest = Math.min(before.length, after.length, caret === null ? Infinity : Math.max(0, caret - grown));
  while (at < shortest && before[at] === after[at]) at++;
  let tail = 0;
  const common = Math.min(before.length, after.length);
  while (tail < common - at && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
  return { at, removed: before.length - at - tail, inserted: after.slice(at, after.length - tail) };
}

/**
 * Where an index of the text before a change is after it: text inserted before it moves it
 * on, text deleted before it moves it back; an insertion right at it leaves it in front.
 * @param {number} index
 * @param {Array<{insert?: string | object | any[], retain?: number, delete?: number}>} delta
 */
export function moved(index, delta) {
  let position = 0; // in the new text
  let result = index;
  for (const op of delta) {
    if (op.retain) position += op.retain;
    else if (op.insert !== undefined) {
      const length = typeof op.insert === "string" ? op.insert.length : 1;
      if (position < result) result += length;
      position += length;
    } else if (op.delete) {
      if (position < result) result -= Math.min(op.delete, result - position);
    }
    if (position > result) break;
  }
  return result;
}

/**
 * @typedef {object} PlainView
 * @property {() => string} read
 * @property {(text: string) => void} write
 * @property {() => [number | null, number | null]} selection
 * @property {(start: number, end: number) => void} select
 */

/** @param {HTMLElement} element @returns {PlainView} */
function viewOf(element) {
  if (element instanceof HTMLTextAreaElement || element instanceof HTMLInputElement) {
    const field = element;
    return {
      read: () => field.value,
      write: (text) => void (field.value !== text && (field.value = text)),
      selection: () => (document.activeElement === field ? [field.selectionStart, field.selectionEnd] : [null, null]),
      select: (start, end) => field.setSelectionRange(start, end),
    };
  }
  return {
    read: () => element.textContent ?? "",
    write: (text) => void (element.textContent !== text && (element.textContent = text)),
    selection: () => {
      const selected = document.getSelection();
      if (!selected || !selected.rangeCount || !element.contains(selected.anchorNode)) return [null, null];
      const range = selected.getRangeAt(0);
      return [offsetIn(element, range.startContainer, range.startOffset), offsetIn(element, range.endContainer, range.endOffset)];
    },
    select: (start, end) => {
      const node = element.firstChild ?? element;
      const length = node.textContent?.length ?? 0;
      const range = document.createRange();
      range.setStart(node, Math.min(start, length));
      range.setEnd(node, Math.min(end, length));
      document.getSelection()?.removeAllRanges();
      document.getSelection()?.addRange(range);
    },
  };
}

/** The character offset of (node, offset) in `element`'s text. */
function offsetIn(/** @type {Node} */ element, /** @type {Node} */ node, /** @type {number} */ offset) {
  const range = document.createRange();
  range.selectNodeContents(element);
  range.setEnd(node, offset);
  return range.toString().length;
}
