// A text field bound to a <textarea>, an <input> or a contenteditable element: local
// input becomes Y.Text edits, remote edits are shown with the caret kept where it was.

/** @typedef {import("yjs").YTextEvent} YTextEvent */

/**
 * Bind `element` to `handle`'s text both ways (TextHandle.bind). `onNewDoc(rebind)` is
 * called once: `rebind` must run whenever the handle starts over on a new document; it
 * returns a function that stops that.
 * @param {{doc: import("yjs").Doc, ytext: import("yjs").Text}} handle
 * @param {HTMLElement} element
 * @param {(rebind: () => void) => () => void} onNewDoc
 * @returns {() => void}
 */
export function bindElement(handle, element, onNewDoc) {
  const view = viewOf(element);
  const local = Symbol("kpk-io input");
  view.write(handle.ytext.toString());
  const onInput = () => {
    const before = handle.ytext.toString();
    const after = view.read();
    const { at, removed, inserted } = difference(before, after, view.selection()[1]);
    if (!removed && !inserted) return;
    handle.doc.transact(() => {
      if (removed) handle.ytext.delete(at, removed);
      if (inserted) handle.ytext.insert(at, inserted);
    }, local);
  };
  const onChange = (/** @type {YTextEvent} */ event) => {
    if (event.transaction.origin === local) return;
    const [start, end] = view.selection();
    view.write(handle.ytext.toString());
    if (start !== null && end !== null) view.select(moved(start, event.delta), moved(end, event.delta));
  };
  let observed = handle.ytext;
  // A new document (the handle started over): observe it, and show it (typing not yet
  // acknowledged is typed again into it right after, which onChange shows).
  const rebind = () => {
    observed.unobserve(onChange);
    observed = handle.ytext;
    observed.observe(onChange);
    view.write(handle.ytext.toString());
  };
  element.addEventListener("input", onInput);
  observed.observe(onChange);
  const unwatch = onNewDoc(rebind);
  return () => {
    element.removeEventListener("input", onInput);
    observed.unobserve(onChange);
    unwatch();
  };
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
