"""No room waits on one of its members: a member that goes silent (its ping times out) or
whose connection breaks while a broadcast is sent to it changes nothing for the others."""

import asyncio
import time

from tests.conftest import StartKpk
from tests.processes import KpkServer, RedisServer
from tests.raw_client import RawClient
from tests.sockets import Member, members

ROOM = "deadlock/1"
FAST_PINGS = ("--ping-interval", "1", "--ping-timeout", "1")


async def write_for(writer: Member, seconds: float) -> list[int]:
    """Update the room every 50 ms for `seconds`; the revs acknowledged, in order."""
    revs: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ack = await writer.update(ROOM, set={"n": len(revs)})
        assert ack["ok"], ack
        revs.append(ack["rev"])
        await asyncio.sleep(0.05)
    return revs


async def keep_talking(client: RawClient) -> None:
    """Engine.IO NOOPs: the connection stays busy (so the server's read timeout never fires)
    but no ping is answered; only the ping-timeout check can find this member gone."""
    while not client.closed.is_set():
        await client.send("6")
        await asyncio.sleep(0.2)


async def assert_room_answers(url: str) -> None:
    """A fresh member joins and leaves the room promptly."""
    async with members(url) as [fresh]:
        ack = await fresh.call("join", {"room": ROOM}, timeout=5)
        assert ack["ok"], ack
        assert (await fresh.call("leave", {"room": ROOM}, timeout=5))["ok"]


def assert_prompt_exit(kpk: KpkServer) -> None:
    started = time.monotonic()
    assert kpk.terminate(timeout=20) == 0
    # Normally well under a second; a wedged room held the exit forever (past the drain's
    # 10 s: the disconnect handlers run by the shutdown waited on the room).
    assert time.monotonic() - started < 10, "SIGTERM waited on a wedged room"


async def test_a_member_whose_ping_times_out_mid_broadcast_does_not_wedge_the_room(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    kpk = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix, *FAST_PINGS)
    async with members(kpk.url, kpk.url) as [writer, watcher]:
        await writer.join(ROOM)
        await watcher.join(ROOM)
        silent = await RawClient(kpk.url, answer_pings=False).open()
        talking = asyncio.create_task(keep_talking(silent))
        try:
            await silent.join(ROOM)
            # The silent member's ping is overdue about 2 s after it connected: the writer
            # keeps broadcasting through that moment and well past it.
            revs = await write_for(writer, 5.0)
            await silent.wait_closed(timeout=10)
            assert silent.pings >= 1
        finally:
            talking.cancel()
            await silent.close()
        received = await watcher.wait_updates(ROOM, len(revs), timeout=10)
        assert [u["rev"] for u in received] == revs == list(range(revs[0], revs[-1] + 1))
        await assert_room_answers(kpk.url)
    assert_prompt_exit(kpk)


async def test_members_whose_connections_break_mid_broadcast_change_nothing_for_others(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str
) -> None:
    kpk = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix)
    async with members(kpk.url, kpk.url) as [writer, watcher]:
        await writer.join(ROOM)
        await watcher.join(ROOM)
        doomed = [await RawClient(kpk.url).open() for _ in range(6)]
        for client in doomed:
            await client.join(ROOM)
        writing = asyncio.create_task(write_for(writer, 3.0))
        for client in doomed:  # reset one connection every 200 ms while the writer writes
            await asyncio.sleep(0.2)
            client.reset()
        revs = await writing
        for client in doomed:
            await client.close()
        received = await watcher.wait_updates(ROOM, len(revs), timeout=10)
        assert [u["rev"] for u in received] == revs == list(range(revs[0], revs[-1] + 1))
        await assert_room_answers(kpk.url)
    assert_prompt_exit(kpk)
