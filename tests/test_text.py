"""Text fields: concurrent edits merge per character, on one node or several, through
outages; outside reads see strings; the stored document stays compact."""

import asyncio
import uuid

import aiohttp
import pycrdt
import pytest
import redis.asyncio as aioredis
from yarl import URL

from kpk_io.change import Change
from kpk_io.client import KpkClient
from kpk_io.rooms import encode_uri_component
from kpk_io.store.base import guard_of
from kpk_io.store.memory import MemoryStateStore
from kpk_io.store.redis import RedisStateStore
from kpk_io.store.redis_keys import room_keys
from kpk_io.text import ROOT, encode_update, stored_text
from kpk_io.text_commit import commit_change
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer, RedisServer
from tests.sockets import members

ROOM = "kpk/notes/acme/q1/text"
API_KEY = f"key-{uuid.uuid4().hex}"


def in_order(typed: str, text: str) -> bool:
    """Whether every character of `typed` is in `text`, in the order typed."""
    rest = iter(text)
    return all(char in rest for char in typed)


async def type_into(room_text: pycrdt.Text, typed: str, pause: float = 0.005) -> None:
    for char in typed:
        room_text.insert(len(room_text), char)
        await asyncio.sleep(pause)


@pytest.fixture
def node(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> KpkServer:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    return start_kpk(*flags, env={"KPK_IO_API_KEY": API_KEY, "KPK_IO_RATE_LIMIT": "0"})


async def test_two_clients_typing_at_once_keep_every_character(node: KpkServer) -> None:
    async with KpkClient(node.url) as one, KpkClient(node.url) as two:
        first, second = await one.join(ROOM), await two.join(ROOM)
        a, b = first.text("note"), second.text("note")
        typed_a, typed_b = "alpha beta gamma " * 3, "ONE TWO THREE " * 3
        await asyncio.gather(type_into(a, typed_a), type_into(b, typed_b))
        await first.flush()
        await second.flush()
        await eventually(lambda: str(a) == str(b) and len(str(a)) == len(typed_a + typed_b))
        assert in_order(typed_a, str(a)) and in_order(typed_b, str(a))
        assert first.state["note"] == second.state["note"] == str(a)
        async with members(node.url) as [reader]:  # a display-only client reads a string
            ack = await reader.join(ROOM)
            assert ack["state"] == {"note": str(a)}
            assert set(ack["texts"]) == {"note"}
        async with KpkClient(node.url) as three:  # a new editor starts from the document
            late = await three.join(ROOM)
            assert str(late.text("note")) == str(a)


async def test_a_set_from_outside_merges_and_reads_outside_see_strings(
    node: KpkServer,
) -> None:
    url = URL(f"{node.url}/api/rooms/{encode_uri_component(ROOM)}", encoded=True)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with KpkClient(node.url) as one, aiohttp.ClientSession(headers=auth) as http:
        room = await one.join(ROOM)
        note = room.text("note")
        note.insert(0, "draft")
        room.set("title", "Q1")
        await room.flush()
        async with http.patch(url, json={"set": {"note": "from the API"}}) as response:
            assert response.status == 200
        await eventually(lambda: str(note) == "from the API")
        note.insert(len(note), "!")  # typing goes on in the same document
        await room.flush()
        async with http.get(url) as response:
            body = await response.json()
        assert body["state"] == {"note": "from the API!", "title": "Q1"}
        async with http.patch(url, json={"unset": ["note"]}) as response:
            assert response.status == 200
        await room.wait_for(lambda state: "note" not in state)


async def test_malformed_or_oversized_text_edits_are_refused(node: KpkServer) -> None:
    async with members(node.url) as [member]:
        await member.join(ROOM)
        for bad in ("not base64!", encode_update(b"\x07garbage")):
            ack = await member.update(ROOM, text={"note": bad})
            assert (ack["ok"], ack["error"]) == (False, "invalid_update"), ack
        ack = await member.update(ROOM, text={"note": "A" * (300 * 1024)})
        assert ack["error"] == "too_large"
        ack = await member.update(ROOM, set={"x": {"$text": "AAA="}})
        assert ack["error"] == "invalid_update"
        ack = await member.update(ROOM, set={"note": 1}, text={"note": "AAA="})
        assert ack["error"] == "invalid_update"
        assert (await member.update(ROOM, set={"ok": 1}))["ok"] is True


async def test_an_edit_building_on_text_the_server_lost_is_refused_not_acked(
    node: KpkServer,
) -> None:
    """An edit made on a document from before an unset or a replace depends on characters
    the stored document lacks: pycrdt would keep it pending and drop it, acked. text_stale."""
    doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    text = doc.get(ROOT, type=pycrdt.Text)
    text.insert(0, "old text")
    whole, before = encode_update(doc.get_update()), doc.get_state()
    text.insert(0, "new ")
    delta = encode_update(doc.get_update(before))
    async with members(node.url) as [member]:
        await member.join(ROOM)
        for removal in ({"unset": ["note"]}, {"replace": True, "set": {"x": 1}}):
            assert (await member.update(ROOM, text={"note": whole}))["ok"] is True
            assert (await member.update(ROOM, **removal))["ok"] is True
            ack = await member.update(ROOM, text={"note": delta})
            assert (ack["ok"], ack["error"]) == (False, "text_stale"), ack
            assert "note" not in (await member.join(ROOM))["state"]
        assert (await member.update(ROOM, text={"note": whole}))["ok"] is True
        assert (await member.update(ROOM, text={"note": delta}))["ok"] is True
        assert (await member.join(ROOM))["state"]["note"] == "new old text"


async def typing_in_store(
    store: RedisStateStore | MemoryStateStore, edits: int, *, jumps: bool = True
) -> str:
    """`edits` commits of one typist who types, deletes and (with `jumps`) moves the caret."""
    doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    text = doc.get(ROOT, type=pycrdt.Text)
    caret = 0
    for step in range(edits):
        before = doc.get_state()
        if step % 7 == 6 and caret:
            del text[caret - 1:caret]
            caret -= 1
        else:
            text.insert(caret, "abcdefghij"[step % 10])
            caret += 1
        if step % 500 == 499:  # the page is rewritten: most of it deleted
            del text[0:len(text) - 20]
            caret = len(text)
        if jumps and step % 97 == 96:
            caret = len(text) // 2
        change = Change({}, text={"note": encode_update(doc.get_update(before))})
        result = await commit_change(store, ROOM, change)
        assert not isinstance(result, str)
    return str(text)


async def test_thousands_of_edits_keep_the_stored_text_small(
    redis_server: RedisServer, key_prefix: str
) -> None:
    store = RedisStateStore(redis_server.url, prefix=key_prefix)
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        plain = await typing_in_store(store, 3000)
        snapshot = await store.snapshot(ROOM)
        assert snapshot.rev == 3000 and snapshot.state == {"note": plain}
        stored = await redis.hget(room_keys(key_prefix, ROOM).state, "note")
        assert isinstance(stored, bytes) and stored_text(stored.decode()) == snapshot.texts["note"]
        # 3000 edits of ~30 bytes each were sent; the store keeps the text and its metadata
        # (measured: ~2 KB; a tombstone range per place the caret jumped to and deleted at).
        assert len(stored) < len(plain.encode()) + 4096, (len(stored), len(plain))
    finally:
        await store.close()
        await redis.aclose()


async def test_typing_at_the_caret_for_long_keeps_the_stored_size_flat() -> None:
    """Typing, backspacing and rewriting at the caret: runs of one writer squash, deleted
    text leaves one tombstone range, so the stored size does not grow with the edits."""
    sizes = []
    for edits in (1000, 4000):
        store = MemoryStateStore()
        plain = await typing_in_store(store, edits, jumps=False)
        snapshot = await store.snapshot(ROOM)
        assert snapshot.state == {"note": plain}
        sizes.append(len(snapshot.texts["note"]))
    assert max(sizes) < 400, sizes  # measured ~200 bytes of base64 for a 20-character text


async def test_a_stale_merge_is_retried_not_lost() -> None:
    """Two merges from the same read: the second finds the text changed (its guard fails)
    and merges again, so both edits are kept."""
    store = MemoryStateStore()
    one: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    one.get(ROOT, type=pycrdt.Text).insert(0, "one ")
    two: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    two.get(ROOT, type=pycrdt.Text).insert(0, "two ")
    await commit_change(store, ROOM, Change(text={"note": encode_update(one.get_update())}))
    stale = await store.snapshot(ROOM)
    edit = Change(text={"note": encode_update(two.get_update())})
    guard = {"note": guard_of('{"$text":"' + "AAAA" + '"}')}
    assert type(await store.commit(ROOM, edit, guards=guard)).__name__ == "Stale"
    await commit_change(store, ROOM, edit)
    merged = (await store.snapshot(ROOM)).state["note"]
    assert isinstance(merged, str) and sorted(merged.split()) == ["one", "two"] and stale.rev == 1


async def test_typing_on_two_nodes_while_the_other_restarts_converges(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    nodes = [start_kpk(*flags, env={"KPK_IO_RATE_LIMIT": "0"}) for _ in range(2)]
    async with KpkClient(nodes[0].url) as one, KpkClient(nodes[1].url) as two:
        rooms = [await one.join(ROOM), await two.join(ROOM)]
        texts = [rooms[0].text("note"), rooms[1].text("note")]
        typed = ["", ""]
        for round_, down in enumerate((1, 0, 1)):
            nodes[down].kill()
            clients = (one, two)
            await eventually(lambda: not clients[down].connected)  # noqa: B023
            chunks = [f"<{round_}a{i}>" for i in range(8)], [f"[{round_}b{i}]" for i in range(8)]
            for index in (0, 1):  # both type: the one whose node is down, offline
                typed[index] += "".join(chunks[index])
            await asyncio.gather(*(type_into(texts[i], "".join(chunks[i])) for i in (0, 1)))
            nodes[down].start()  # same port: the client reconnects by itself
            await eventually(lambda: clients[down].connected, timeout=20)  # noqa: B023
        for room in rooms:
            await room.flush(timeout=20)
        await eventually(lambda: str(texts[0]) == str(texts[1]), timeout=20)
        final = str(texts[0])
        assert len(final) == len(typed[0]) + len(typed[1])
        assert in_order(typed[0], final) and in_order(typed[1], final)
        assert rooms[0].state["note"] == rooms[1].state["note"] == final
    async with members(nodes[0].url) as [reader]:
        assert (await reader.join(ROOM))["state"] == {"note": final}


async def test_a_text_bound_late_starts_from_every_edit_received(node: KpkServer) -> None:
    """Edits that arrive before text() is called, and the server's edit made of this
    client's own set of a text, are in the document text() starts from."""
    async with KpkClient(node.url) as one, KpkClient(node.url) as two:
        writer, late = await one.join(ROOM), await two.join(ROOM)
        typed = writer.text("note")
        typed.insert(0, "first")
        await writer.flush()
        await late.wait_for(lambda state: state.get("note") == "first")
        typed.insert(5, " second")
        await writer.flush()
        await late.wait_for(lambda state: state.get("note") == "first second")
        late.set("note", "rewritten")  # not bound here: the server makes it an edit
        await late.flush()
        assert str(late.text("note")) == "rewritten"
        await eventually(lambda: str(typed) == "rewritten")
        late.text("note").insert(0, ">")
        await late.flush()
        await eventually(lambda: str(typed) == ">rewritten")


async def test_hostile_text_edits_are_refused_quickly(node: KpkServer) -> None:
    """A few bytes that announce billions of structs cost pycrdt seconds (or never return);
    kpk_io/text_check.py reads every edit first. Refused at once, and the room goes on."""
    other_root: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    other_root.get("other", type=pycrdt.Text).insert(0, "x")
    hostile = [
        bytes.fromhex("e1ccb67672744209127576dceb2602"),  # ~1.6 s in pycrdt
        bytes.fromhex("ecbba0ff60507f1a"),
        bytes.fromhex("8ee0c37fc4f59d86a407b0"),
        other_root.get_update(),  # a root type other than "text"
    ]
    async with members(node.url) as [member]:
        await member.join(ROOM)
        started = asyncio.get_running_loop().time()
        for data in hostile:
            ack = await member.update(ROOM, text={"note": encode_update(data)})
            assert (ack["ok"], ack["error"]) == (False, "invalid_update"), ack
        assert asyncio.get_running_loop().time() - started < 2.0
        assert (await member.update(ROOM, set={"ok": 1}))["ok"] is True


async def test_the_room_bounds_apply_to_texts(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    server = start_kpk(*flags, env={"KPK_IO_MAX_STATE_BYTES": "3000"})
    doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    text = doc.get(ROOT, type=pycrdt.Text)
    text.insert(0, "fits")
    async with members(server.url) as [member]:
        await member.join(ROOM)
        ack = await member.update(ROOM, text={"note": encode_update(doc.get_update())})
        assert ack["ok"] is True
        before = doc.get_state()
        text.insert(4, "x" * 4000)  # the stored document would pass the room's bound
        ack = await member.update(ROOM, text={"note": encode_update(doc.get_update(before))})
        assert ack["error"] == "too_large", ack
        assert (await member.join(ROOM))["state"] == {"note": "fits"}
