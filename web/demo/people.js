// Who is on the notes page, and who is typing where: kpk-io presence and signals.
//
// Each page shows itself to the others with `room.setMeta({hue, guest, field})` (a colour,
// a guest name when the token has none, the field being edited) and, while typing, sends
// `room.signal({typing: field, caret})` at most every TYPING_SIGNAL_MS. Neither is room
// state: nothing of it is stored, and a page that closes disappears from the others at once.

const TYPING_SIGNAL_MS = 150;
const TYPING_SHOWN_MS = 2500;
const FIELDS = { title: "the title", note: "the note" };

/** @typedef {import("/kpk-io/kpk-io.js").Room} Room */
/** @typedef {{id: string, user: string, name: string | null, meta: Record<string, any>}} Member */

/**
 * @param {Room} room
 * @param {{people: HTMLElement, typing: HTMLElement, inputs: HTMLInputElement[]}} view
 */
export function showPeople(room, { people, typing, inputs }) {
  const me = { hue: Math.floor(Math.random() * 360), guest: guestName(), field: null };
  /** @type {Map<string, {field: string, caret: number, until: number}>} */
  const typists = new Map();
  const render = () => {
    renderPeople(people, room.members, room.me?.id ?? null);
    renderTyping(typing, room.members, typists);
  };
  room.setMeta(me).catch(() => {}); // sent with every join from now on
  room.on("presence", render);
  room.on("signal", ({ from, data }) => {
    if (typeof from !== "string" || typeof data?.typing !== "string") return;
    typists.set(from, { field: data.typing, caret: Number(data.caret) || 0, until: Date.now() + TYPING_SHOWN_MS });
    render();
    setTimeout(render, TYPING_SHOWN_MS + 50);
  });
  for (const input of inputs) bindTyping(room, me, input);
  render();
}

/**
 * @param {Room} room
 * @param {{hue: number, guest: string, field: string | null}} me
 * @param {HTMLInputElement} input
 */
function bindTyping(room, me, input) {
  let last = 0;
  const showField = (/** @type {string | null} */ field) => {
    if (me.field === field) return;
    me.field = field;
    room.setMeta({ ...me }).catch(() => {});
  };
  input.addEventListener("focus", () => showField(input.id));
  input.addEventListener("blur", () => showField(null));
  input.addEventListener("input", () => {
    const now = Date.now();
    if (now - last < TYPING_SIGNAL_MS) return;
    last = now;
    // Dropped when refused (rate_limited): the next keystroke sends a newer one anyway.
    room.signal({ typing: input.id, caret: input.selectionStart ?? 0 }).catch(() => {});
  });
}

/**
 * @param {HTMLElement} list
 * @param {Member[]} members
 * @param {string | null} myId
 */
function renderPeople(list, members, myId) {
  const sorted = [...members].sort((a, b) => Number(b.id === myId) - Number(a.id === myId) || a.id.localeCompare(b.id));
  list.replaceChildren(
    ...sorted.map((member) => {
      const name = displayName(member);
      const where = FIELDS[/** @type {keyof FIELDS} */ (member.meta.field)];
      const badge = Object.assign(document.createElement("li"), {
        className: "person",
        textContent: initials(name),
        title: `${name}${member.id === myId ? " (you)" : ""}${where ? `, in ${where}` : ""}`,
      });
      badge.dataset.id = member.id;
      badge.dataset.name = name;
      badge.classList.toggle("me", member.id === myId);
      badge.classList.toggle("editing", Boolean(where));
      badge.style.setProperty("--hue", String(hueOf(member)));
      return badge;
    }),
  );
  list.dataset.count = String(members.length);
}

/**
 * @param {HTMLElement} line
 * @param {Member[]} members
 * @param {Map<string, {field: string, caret: number, until: number}>} typists
 */
function renderTyping(line, members, typists) {
  const now = Date.now();
  const present = new Map(members.map((m) => [m.id, m]));
  const shown = [];
  for (const [id, typist] of typists) {
    const member = present.get(id);
    if (!member || typist.until < now) {
      typists.delete(id);
      continue;
    }
    const where = FIELDS[/** @type {keyof FIELDS} */ (typist.field)] ?? typist.field;
    const who = Object.assign(document.createElement("span"), {
      className: "typist",
      textContent: `${displayName(member)} is typing in ${where} (at ${typist.caret})`,
    });
    who.dataset.id = id;
    who.style.setProperty("--hue", String(hueOf(member)));
    shown.push(who);
  }
  line.replaceChildren(...shown);
  line.hidden = shown.length === 0;
}

/** @param {Member} member */
function displayName(member) {
  return member.name ?? (typeof member.meta.guest === "string" ? member.meta.guest : "Guest");
}

/** @param {Member} member */
function hueOf(member) {
  const hue = Number(member.meta.hue);
  return Number.isFinite(hue) ? hue % 360 : 210;
}

/** @param {string} name */
function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : name.slice(0, 2);
  return letters.toUpperCase();
}

function guestName() {
  const animals = ["Otter", "Heron", "Lynx", "Marten", "Puffin", "Ibex", "Wren", "Badger"];
  return `Guest ${animals[Math.floor(Math.random() * animals.length)]}`;
}
