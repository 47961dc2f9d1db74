"""Texts that are unset, replaced away, made plain or lost by Redis, then typed into again:
clients and server converge and no character typed is lost (issue 12, review B1 and S2)."""

import pytest
import redis.asyncio as aioredis

from kpk_io.client import KpkClient
from kpk_io.client_room import Room
from kpk_io.store.redis_keys import room_keys
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer, RedisServer
from tests.sockets import members

ROOM = "kpk/notes/acme/q1/reset"


@pytest.fixture
def nodes(start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str) -> list[KpkServer]:
    flags = ("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    return [start_kpk(*flags, env={"KPK_IO_RATE_LIMIT": "0"}) for _ in range(2)]


async def server_note(node: KpkServer) -> object:
    async with members(node.url) as [reader]:
        return (await reader.join(ROOM))["state"].get("note")


async def converged(node: KpkServer, rooms: list[Room], expected: str) -> None:
    await eventually(lambda: all(room.state.get("note") == expected for room in rooms))
    assert await server_note(node) == expected


@pytest.mark.parametrize("removal", ["unset", "replace", "plain"])
async def test_typing_into_a_removed_text_again_converges(
    nodes: list[KpkServer], removal: str
) -> None:
    async with KpkClient(nodes[0].url) as one, KpkClient(nodes[1].url) as two:
        a, b = await one.join(ROOM), await two.join(ROOM)
        a.text("note").insert(0, "old text")
        await a.flush()
        await eventually(lambda: str(b.text("note")) == "old text")
        held = b.text("note")  # a caller holding the Y.Text across the removal
        if removal == "unset":
            a.unset("note")
        elif removal == "replace":
            a.replace({"title": "Q1"})
        else:
            a.set("note", 7)
        await a.flush()
        await eventually(lambda: b.state.get("note") in (None, 7))
        assert b.state.get("note") == a.state.get("note")  # S2: a number shows as one
        held.insert(len(held), "!")  # on the old document: carried over to the new one
        await b.flush()
        await converged(nodes[0], [a, b], "!")
        b.text("note").insert(0, "new ")
        await b.flush()
        await converged(nodes[0], [a, b], "new !")


async def test_typing_on_an_old_document_before_the_unset_arrives_keeps_it(
    nodes: list[KpkServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's edit is sent on the old document while the unset has not reached B (its update
    events are lost: the one fault injected): the server refuses it (text_stale), B syncs,
    starts over and sends its typing again."""
    async with KpkClient(nodes[0].url) as one, KpkClient(nodes[1].url) as two:
        a, b = await one.join(ROOM), await two.join(ROOM)
        a.text("note").insert(0, "old text")
        await a.flush()
        await eventually(lambda: str(b.text("note")) == "old text")
        refused: list[str] = []
        with monkeypatch.context() as patch:
            patch.setattr(b, "remote", lambda committed, sync=True: None)
            a.unset("note")
            await a.flush()
            b.text("note").insert(0, "new ")
            await b.flush()
            refused.append(str(b.last_error and b.last_error.code))
        assert refused == ["text_stale"]
        await converged(nodes[0], [a, b], "new ")


async def test_typing_after_redis_lost_the_room_converges(
    nodes: list[KpkServer], redis_server: RedisServer, key_prefix: str
) -> None:
    """A's edit builds on a document Redis lost: text_stale, a sync brings the room's new
    history (a whole state), A starts over from it and sends its typing again; the server,
    A and a member joining later agree, and every character acked after the loss is kept.
    (The characters Redis lost stay lost: the server's document is the truth after a reset.)"""
    async with KpkClient(nodes[0].url) as one, KpkClient(nodes[1].url) as two:
        a, b = await one.join(ROOM), await two.join(ROOM)
        a.text("note").insert(0, "before loss ")
        await a.flush()
        await eventually(lambda: str(b.text("note")) == "before loss ")
        redis = aioredis.Redis.from_url(redis_server.url)
        await redis.delete(*room_keys(key_prefix, ROOM).stored)
        await redis.aclose()
        b.set("title", "x")  # another member writes the room's new history
        await b.flush()
        note = a.text("note")
        note.insert(len(note), "AFTER")
        await a.flush()
        await eventually(lambda: a.state.get("note") == "AFTER", timeout=20)
        assert await server_note(nodes[0]) == "AFTER"
        a.text("note").insert(0, ">")
        await a.flush()
        async with KpkClient(nodes[1].url) as three:
            c = await three.join(ROOM)
            await converged(nodes[0], [a, c], ">AFTER")
            assert str(c.text("note")) == ">AFTER"
