"""Failures: the store going away or back in time, handlers failing, connections leaking."""

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from kpk_io import app as kpk_app
from kpk_io.change import Change, CommittedChange
from kpk_io.client import KpkClient
from kpk_io.config import Settings
from kpk_io.publish import AsyncPublisher
from kpk_io.store.base import Conflict, Duplicate
from kpk_io.store.memory import MemoryStateStore
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import RedisServer, free_port
from tests.sockets import members

ROOM = "room/1"


async def test_unavailable_store_refuses_and_commits_nothing(
    start_kpk: StartKpk, own_redis: RedisServer
) -> None:
    kpk = start_kpk("--redis-url", own_redis.url)
    async with members(kpk.url, kpk.url) as [a, b]:
        await a.join(ROOM)
        await b.join(ROOM)
        await a.update(ROOM, set={"v": 1})
        own_redis.stop()
        ack = await a.update(ROOM, set={"v": 2})
        assert (ack["ok"], ack["error"]) == (False, "unavailable")
        assert (await a.call("join", {"room": "other"}))["error"] == "unavailable"
        own_redis.start()
        assert (await a.join(ROOM))["state"] == {"v": 1}
        assert (await a.update(ROOM, set={"v": 3}))["rev"] == 2
        assert [u["set"] for u in await b.wait_updates(ROOM, 2)] == [{"v": 1}, {"v": 3}]


class ExplodingStore(MemoryStateStore):
    """A store with a bug: the one fault here we cannot cause for real."""

    async def commit(
        self, room: str, change: Change, **kw: object
    ) -> CommittedChange | Conflict | Duplicate:
        if "explode" in change.set:
            raise RuntimeError("bug in the store")
        return await super().commit(room, change, **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def in_process_server(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[web.Application, str]]:
    monkeypatch.setattr(kpk_app, "create_store", lambda settings: ExplodingStore())
    settings = Settings(port=free_port())
    application = kpk_app.create_app(settings)
    runner = web.AppRunner(application)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    try:
        yield application, f"http://127.0.0.1:{settings.port}"
    finally:
        await runner.cleanup()


async def test_an_unexpected_failure_answers_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    async with in_process_server(monkeypatch) as (_, url), members(url) as [a]:
        await a.join(ROOM)
        ack = await a.update(ROOM, set={"explode": True})
        assert (ack["ok"], ack["error"]) == (False, "internal")
        assert (await a.update(ROOM, set={"fine": True}))["rev"] == 1


async def test_closed_connections_leave_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    async with in_process_server(monkeypatch) as (application, url):
        async with members(*[url] * 10) as clients:
            for index, client in enumerate(clients):
                await client.join(ROOM)
                await client.join(f"own/{index}")
            metrics = application[kpk_app.METRICS]
            assert metrics.registry.get_sample_value("kpk_io_rooms") == 11
        hub = application[kpk_app.HUB]
        handlers = application[kpk_app.HANDLERS]
        await eventually(lambda: hub.room_count == 0 and not handlers.connection_count,
                         what="every room and connection to be released")
        assert metrics.registry.get_sample_value("kpk_io_connections") == 0


async def test_members_start_over_when_redis_goes_back_in_time(
    start_kpk: StartKpk, own_redis: RedisServer, tmp_path: Path
) -> None:
    node = start_kpk("--redis-url", own_redis.url)
    async with KpkClient(node.url) as client:
        room = await client.join(ROOM)
        async with members(node.url) as [writer]:
            await writer.join(ROOM)
            for i in range(3):
                await writer.update(ROOM, set={"n": i, f"at{i}": True})
        await room.wait_for(lambda s: s.get("n") == 2)
        own_redis.stop()
        shutil.copytree(own_redis.dir, tmp_path / "backup")
        own_redis.start()
        async with members(node.url) as [writer]:
            await writer.join(ROOM)
            for i in range(3, 6):
                await writer.update(ROOM, set={"n": i, f"at{i}": True})
        await room.wait_for(lambda s: s.get("n") == 5)
        # Restore the backup: Redis is back at rev 3, the room's member at rev 6.
        own_redis.stop()
        shutil.rmtree(own_redis.dir)
        shutil.copytree(tmp_path / "backup", own_redis.dir)
        own_redis.start()
        expected = {"n": 2, "at0": True, "at1": True, "at2": True}
        await room.wait_for(lambda s: s == expected, timeout=20)
        assert room.rev == 3
        async with members(node.url) as [writer]:
            await writer.join(ROOM)
            assert (await writer.update(ROOM, set={"after": True}))["rev"] == 4
        await room.wait_for(lambda s: s.get("after") is True)
        assert room.rev == 4


async def test_members_converge_when_redis_goes_back_and_then_past_them(
    start_kpk: StartKpk, own_redis: RedisServer, tmp_path: Path
) -> None:
    node = start_kpk("--redis-url", own_redis.url)
    async with KpkClient(node.url) as client, AsyncPublisher(own_redis.url) as publisher:
        room = await client.join(ROOM)
        for i in range(3):
            await publisher.update(ROOM, {"n": i, f"at{i}": True})
        await room.wait_for(lambda s: s.get("n") == 2)
        own_redis.stop()
        shutil.copytree(own_redis.dir, tmp_path / "backup")
        own_redis.start()
        for i in range(3, 6):
            await publisher.update(ROOM, {"n": i, f"at{i}": True})
        await room.wait_for(lambda s: s.get("n") == 5)
        # Back to rev 3, then straight on to rev 8 before the node catches up: revs 4 to 6
        # now name other changes than the ones the member applied.
        own_redis.stop()
        shutil.rmtree(own_redis.dir)
        shutil.copytree(tmp_path / "backup", own_redis.dir)
        own_redis.start()
        for i in range(5):
            await publisher.update(ROOM, {"m": i})
        server = await publisher.get(ROOM)
        assert server.rev == 8
        await room.wait_for(lambda s: s == server.state, timeout=20)
        assert room.rev == 8
        async with KpkClient(node.url) as late:  # and a member that joins afterwards
            assert (await late.join(ROOM)).state == server.state
