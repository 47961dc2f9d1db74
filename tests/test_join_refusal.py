"""A join refused after the room's snapshot was taken (the presence write failed) changes
nothing: the connection is not left a member that receives the room's updates and counts
toward KPK_IO_MAX_ROOMS."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from kpk_io import app as kpk_app
from kpk_io.config import Settings
from kpk_io.presence import Member as PresenceMember
from kpk_io.presence_memory import MemoryPresence
from kpk_io.store.base import StoreUnavailable
from tests.polling import eventually
from tests.processes import free_port
from tests.sockets import members

ROOM = "refusal/1"


class FailingPresence(MemoryPresence):
    """A presence store whose writes fail on demand: a Redis outage that starts between the
    hub's snapshot and the presence write cannot be timed for real."""

    failing = False

    async def add(self, room: str, member: PresenceMember) -> list[PresenceMember]:
        if self.failing:
            raise StoreUnavailable("presence store down (injected)")
        return await super().add(room, member)

    async def members(self, room: str) -> list[PresenceMember]:
        if self.failing:
            raise StoreUnavailable("presence store down (injected)")
        return await super().members(room)


@asynccontextmanager
async def server(presence: FailingPresence) -> AsyncIterator[tuple[web.Application, str]]:
    settings = Settings(port=free_port(), max_rooms=2)
    application = kpk_app.create_app(settings, presence=presence)
    runner = web.AppRunner(application)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    try:
        yield application, f"http://127.0.0.1:{settings.port}"
    finally:
        await runner.cleanup()


async def test_a_join_whose_presence_write_fails_leaves_no_membership() -> None:
    presence = FailingPresence(ttl=30)
    async with server(presence) as (application, url), members(url, url, url) as [a, b, c]:
        await a.join("refusal/other")
        presence.failing = True
        ack = await a.call("join", {"room": ROOM})
        assert (ack["ok"], ack["error"]) == (False, "unavailable"), ack
        presence.failing = False
        hub = application[kpk_app.HUB]
        assert not hub.is_member(a.sio.get_sid(), ROOM)
        await b.join(ROOM)
        await c.join(ROOM)
        written = await b.update(ROOM, set={"x": 1})
        await eventually(lambda: any(u["rev"] == written["rev"] for u in c.updates_of(ROOM)),
                         10, "a member to receive the update")
        assert a.updates_of(ROOM) == []  # the refused joiner is no member
        # The refused join took none of a's KPK_IO_MAX_ROOMS=2: a second room still fits.
        joined = await a.join(ROOM)
        assert joined["rev"] == written["rev"]


async def test_a_refused_join_again_keeps_the_membership_it_had() -> None:
    presence = FailingPresence(ttl=30)
    async with server(presence) as (_, url), members(url, url) as [a, b]:
        await a.join(ROOM)
        presence.failing = True
        ack = await a.call("join", {"room": ROOM})
        assert (ack["ok"], ack["error"]) == (False, "unavailable"), ack
        presence.failing = False
        await b.join(ROOM)
        written = await b.update(ROOM, set={"x": 1})
        await eventually(lambda: any(u["rev"] == written["rev"] for u in a.updates_of(ROOM)),
                         10, "the member to still receive the room's updates")
