// A front end's use of the packed npm package, type-checked by tsc (tests/test_npm_package.py
// installs the tarball as node_modules/kpk-io beside a copy of this file). The lines marked
// as expected errors fail the check if the declarations ever degrade to `any`.
import { KpkClient, KpkError, Room, checkRoom, connect, join, roomFromPath } from "kpk-io";
import type { ClientOptions, RoomOptions } from "kpk-io";

export async function page(): Promise<void> {
  const roomId: string | null = roomFromPath("/kpk/notes/:org/:project/:page", location.pathname);
  const options: ClientOptions & RoomOptions = { token: () => "jwt", debounceMs: 200 };
  const room: Room = await join("https://kpk.example", roomId, options);

  const state: Record<string, unknown> = room.state;
  const rev: number = room.rev;
  const stop: () => void = room.on("change", () => console.log(state, rev));
  room.on("status", (detail) => console.log(detail));
  room.set("title", "Q1 plan");
  room.set("items", [{ text: "ship it", done: false }]);
  room.unset("draft");
  room.replace({ title: "fresh" });
  const note = room.text("note"); // a text: concurrent edits merge per character
  const unbind: () => void = note.bind(document.createElement("textarea"));
  const typed: string = note.ytext.toString() + String(note);
  unbind();
  await room.flush();
  stop();
  await room.close();

  const client: KpkClient = connect("https://kpk.example", { reconnectionDelayMaxMs: 2000 });
  const other: Room = await client.join("kpk/notes/acme/q1/intro");
  other.set("seen", true);
  await client.close();

  try {
    checkRoom(roomId);
  } catch (error) {
    if (error instanceof KpkError) console.log(error.code);
  }

  // @ts-expect-error: a field name is a string
  room.set(42, "x");
  // @ts-expect-error: values are JSON
  room.set("when", () => 1);
  // @ts-expect-error: no such event
  room.on("updated", () => {});
  // @ts-expect-error: the server URL comes first
  await join(roomId);
}
