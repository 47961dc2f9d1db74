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

/** One text field of a room: `ytext` for editor bindings, `bind(element)` for a plain one. */
export class TextHandle {
  /** @param {string} field @param {(change: TextChange) => void} send */
  constructor(field, send) {
    this.field = field;
    // Typed by the `yjs` package (a peer dependency): the declarations name no vendored file.
    /** @type {import("yjs").Doc} */
    this.doc = new Y.Doc();
    /** @type {import("yjs").Text} the Y.Text, for editor bindings (y-prosemirror, y-codemirror) */
    this.ytext = this.doc.getText(TEXT_ROOT);
    this.doc.on("update", (/** @type {Uint8Array} */ update, /** @type {unknown} */ origin) => {
      if (origin === REMOTE) return;
      send({ set: { [field]: this.ytext.toString() }, text: { [field]: toBase64(update) } });
    });
  }

  toString() {
    return this.ytext.toString();
  }

  /** Merge an update from the server (another member's edit, or a whole document). */
  apply(/** @type {string} */ update) {
    Y.applyUpdate(this.doc, fromBase64(update), REMOTE);
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
    element.addEventListener("input", onInput);
    this.ytext.observe(onChange);
    return () => {
      element.removeEventListener("input", onInput);
      this.ytext.unobserve(onChange);
    };
  }
}

/**
 * The text fields of one room bound with room.text(), and the documents of the last whole
 * state (join, sync) to start new ones from (kpk_io/client_text.py RoomTexts).
 */
export class RoomTexts {
  /** @type {Map<string, TextHandle>} */
  #bound = new Map();
  /** @type {{[field: string]: string}} */
  #merged = {};
  #send;

  /** @param {(change: TextChange) => void} send */
  constructor(send) {
    this.#send = send;
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

  /** `view` with each bound text's string: its document holds every edit received. */
  show(/** @type {Record<string, unknown>} */ view) {
    for (const [name, handle] of this.#bound) if (Object.hasOwn(view, name)) view[name] = handle.toString();
    return view;
  }

  /** A set of a bound text with a string edits it (as the server would); true then. */
  set(/** @type {string} */ field, /** @type {unknown} */ value) {
    const handle = this.#bound.get(field);
    if (!handle || typeof value !== "string") return false;
    handle.replace(value);
    return true;
  }

  /** Merge a whole state's texts (a join's or a sync's ack) into the bound documents. */
  tookWhole(/** @type {any} */ ack) {
    const texts = ack && typeof ack.texts === "object" && ack.texts !== null ? ack.texts : {};
    this.#merged = {};
    for (const [name, merged] of Object.entries(texts)) {
      if (typeof merged !== "string") continue;
      this.#merged[name] = merged;
      this.#bound.get(name)?.apply(merged);
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
