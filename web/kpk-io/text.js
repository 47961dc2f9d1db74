// Text fields in the browser: a Y.Doc per text field whose local edits become room changes
// and into which the edits of others are merged, and its binding to a <textarea>, an
// <input> or a contenteditable element (docs/protocol.md, Text fields).

import * as Y from "./yjs.esm.min.js";
import { bindElement, difference } from "./text-element.js";
import { clocksOf, fromBase64, mergeTextUpdates, toBase64 } from "./text-codec.js";

export { fromBase64, mergeTextUpdates, toBase64 };
export { difference, moved } from "./text-element.js";

/** The root Y.Text of each text field's document. */
export const TEXT_ROOT = "text";
// Marks updates that came from the server, so they are not sent back.
const REMOTE = Symbol("kpk-io remote");

/**
 * @typedef {{set: {[field: string]: string}, text: {[field: string]: string}}} TextChange
 */

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
    return bindElement(this, element, (rebind) => {
      this.#rebinds.add(rebind);
      return () => this.#rebinds.delete(rebind);
    });
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
