// The notes demo: everyone on the same /demo/notes/{org}/{project}/{page} URL edits one room.
//
// Fields of the room: "title" (a string), "note" (a text: concurrent typing merges per
// character, see room.text), and one "item:<id>" field per checklist
// item ({text, done, at}), so that people adding or ticking different items never overwrite
// each other: kpk-io merges changes field by field, the last writer of a field wins.

import { connect, roomFromPath } from "/kpk-io/kpk-io.js";
import { showPeople } from "/demo/assets/people.js";

const PATTERN = "/demo/notes/:org/:project/:page";
// Where a token pasted into the page is kept: this tab only, never the URL.
const TOKEN_KEY = "kpk-io-token";
const ITEM = "item:";
const STATUS_TEXT = {
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  live: "Live",
  offline: "Offline",
  error: "Error",
};

/** @param {string} id */
const $ = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
/** @type {Map<string, HTMLLIElement>} */
const rows = new Map();

main();

function main() {
  showCrumbs();
  const roomId = roomFromPath(PATTERN, location.pathname);
  if (roomId === null) {
    showProblem(
      `The address ${decodeSafely(location.pathname)} does not name a notes page. ` +
        "Notes pages live at /demo/notes/{org}/{project}/{page}, for example /demo/notes/acme/launch/plan.",
    );
    return;
  }
  $("room-id").textContent = roomId;
  // Asked again on every reconnect; a server without auth ignores the token.
  const client = connect(location.origin, { token: storedToken });
  const room = client.room(roomId);
  Object.assign(window, { __kpk: { client, room } }); // for the console and the browser tests

  room.on("status", ({ status, reconnecting, error }) => {
    showStatus(reconnecting ? "reconnecting" : status);
    if (status === "error" && error?.code === "unauthorized") askForToken(error.message, () => client.reconnect());
    if (status === "live") {
      $("token-form").hidden = true;
      if ($("fields").disabled) {
        // Live after a token was pasted: room.ready had failed before that.
        $("fields").disabled = false;
        render(room);
      }
    }
  });
  room.on("pending", ({ count }) => {
    showPending(count);
    $("rev").textContent = String(room.rev); // acks move the rev too
  });
  room.on("change", (/** @type {{by?: {user: string, name?: string}}} */ change) => {
    if (change.by) showAuthor(change.by.name ?? change.by.user);
    render(room);
  });
  room.on("error", ({ error, change }) => {
    if (change) flash(`A change was refused by the server (${error.code}) and undone.`);
    if (!change && error.code === "forbidden") {
      // The rights come with the connection's token: another one needs a new page load.
      askForToken(`Your token does not admit room ${roomId}.`, () => location.reload());
    }
    render(room);
  });
  room.ready.then(
    () => {
      $("fields").disabled = false;
      render(room);
    },
    (error) => {
      // The status and error listeners ask for a token when that is the problem.
      if (error.code !== "unauthorized" && error.code !== "forbidden") {
        showProblem(`The server refused this room: ${error.message}`);
      }
    },
  );
  bindInputs(room);
  showPeople(room, { people: $("people"), typing: $("typing"), inputs: [$("title"), $("note")] });
  $("copy-link").addEventListener("click", copyLink);
}

/**
 * Show the token form; `retry` runs once a token is pasted.
 * @param {string} reason
 * @param {() => void} retry
 */
function askForToken(reason, retry) {
  const form = $("token-form");
  $("token-reason").textContent = reason;
  form.hidden = false;
  form.onsubmit = (event) => {
    event.preventDefault();
    try {
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    } catch {
      flash("This browser keeps no token for this page (storage is blocked).");
    }
    $("token").value = "";
    form.hidden = true;
    retry();
  };
}

/** The token pasted in this tab, or "" (storage may be off limits, e.g. in a third-party frame). */
function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

/** @param {string} who */
function showAuthor(who) {
  $("by-name").textContent = who;
  $("by").hidden = false;
}

/** @param {import("/kpk-io/kpk-io.js").Room} room */
function bindInputs(room) {
  $("title").addEventListener("input", (event) => room.set("title", inputValue(event)));
  // The note is a text: what several people type at once merges, character by character.
  room.text("note").bind($("note"));
  const add = () => {
    const input = $("new-item");
    const text = input.value.trim();
    if (!text) return;
    room.set(`${ITEM}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, {
      text,
      done: false,
      at: Date.now(),
    });
    input.value = "";
    render(room);
  };
  $("add-item").addEventListener("click", add);
  $("new-item").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      add();
    }
  });
  $("sheet").addEventListener("submit", (event) => event.preventDefault());
}

/** @param {import("/kpk-io/kpk-io.js").Room} room */
function render(room) {
  const state = room.state;
  setValue($("title"), typeof state.title === "string" ? state.title : "");
  renderChecklist(room, state);
  $("rev").textContent = String(room.rev);
  document.title = `${state.title || "Untitled"} · Notes`;
}

/**
 * @param {import("/kpk-io/kpk-io.js").Room} room
 * @param {Record<string, any>} state
 */
function renderChecklist(room, state) {
  const list = $("checklist");
  const items = Object.entries(state)
    .filter(([key, item]) => key.startsWith(ITEM) && item && typeof item.text === "string")
    .sort(([ka, a], [kb, b]) => (Number(a.at) || 0) - (Number(b.at) || 0) || ka.localeCompare(kb));
  const keys = new Set(items.map(([key]) => key));
  for (const [key, row] of rows) {
    if (!keys.has(key)) {
      row.remove();
      rows.delete(key);
    }
  }
  items.forEach(([key, item], index) => {
    const row = rows.get(key) ?? newRow(room, key);
    const [done, text] = /** @type {HTMLInputElement[]} */ ([...row.querySelectorAll("input")]);
    done.checked = Boolean(item.done);
    setValue(text, item.text);
    row.classList.toggle("checked", Boolean(item.done));
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] ?? null);
  });
}

/**
 * @param {import("/kpk-io/kpk-io.js").Room} room
 * @param {string} key
 */
function newRow(room, key) {
  const template = /** @type {HTMLTemplateElement} */ (document.getElementById("item-template"));
  const row = /** @type {HTMLLIElement} */ (template.content.firstElementChild?.cloneNode(true));
  row.dataset.key = key;
  const [done, text] = /** @type {HTMLInputElement[]} */ ([...row.querySelectorAll("input")]);
  const edit = (/** @type {Record<string, unknown>} */ fields) => {
    const item = room.state[key];
    if (item && typeof item === "object") room.set(key, { ...item, ...fields });
    render(room);
  };
  done.addEventListener("change", () => edit({ done: done.checked }));
  text.addEventListener("input", () => edit({ text: text.value }));
  text.addEventListener("keydown", (event) => event.key === "Enter" && $("new-item").focus());
  row.querySelector(".remove")?.addEventListener("click", () => {
    room.unset(key);
    render(room);
  });
  rows.set(key, row);
  return row;
}

/**
 * Show `value` in an input without disturbing the caret of someone typing in it.
 * @param {HTMLInputElement | HTMLTextAreaElement} element
 * @param {string} value
 */
function setValue(element, value) {
  if (element.value === value) return;
  if (document.activeElement !== element) {
    element.value = value;
    return;
  }
  const { selectionStart, selectionEnd } = element;
  element.value = value;
  element.setSelectionRange(Math.min(selectionStart ?? 0, value.length), Math.min(selectionEnd ?? 0, value.length));
}

/** @param {string} status */
function showStatus(status) {
  const badge = $("status");
  badge.dataset.status = status;
  badge.textContent = STATUS_TEXT[/** @type {keyof STATUS_TEXT} */ (status)] ?? status;
}

/** @param {number} count */
function showPending(count) {
  const pending = $("pending");
  pending.dataset.count = String(count);
  pending.textContent = count === 0 ? "All changes saved" : `${count} unsaved change${count === 1 ? "" : "s"}`;
}

/** @param {string} message */
function showProblem(message) {
  $("problem-text").textContent = message;
  $("problem").hidden = false;
  $("sheet").hidden = true;
  $("hint").hidden = true;
  $("pending").hidden = true;
  showStatus("error");
  $("status").textContent = "No room";
}

function showCrumbs() {
  const parts = location.pathname.split("/").filter(Boolean).slice(2).map(decodeSafely);
  $("crumbs").replaceChildren(
    ...parts.flatMap((part, i) => {
      const crumb = Object.assign(document.createElement("span"), { textContent: part });
      if (i === parts.length - 1) crumb.className = "here";
      return i === 0 ? [crumb] : [Object.assign(document.createElement("span"), { className: "sep", textContent: "/" }), crumb];
    }),
  );
}

async function copyLink() {
  const button = $("copy-link");
  try {
    await navigator.clipboard.writeText(location.href);
    button.textContent = "Copied";
  } catch {
    button.textContent = location.href;
  }
  setTimeout(() => (button.textContent = "Copy link"), 1500);
}

/** @param {string} message */
function flash(message) {
  const note = Object.assign(document.createElement("div"), { className: "flash", textContent: message });
  document.body.append(note);
  setTimeout(() => note.remove(), 4000);
}

/** @param {Event} event */
function inputValue(event) {
  return /** @type {HTMLInputElement} */ (event.target).value;
}

/** @param {string} text */
function decodeSafely(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
