"""A member that stops reading its socket does not grow the server's memory without bound
(KPK_IO_MAX_BUFFERED_BYTES): past the cap it is sent no more of the room's changes, and once
it reads again it gets one `update` with `replace: true` carrying the room's whole state.
The room's other members, and its other rooms' changes, are unaffected."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import RedisServer
from tests.raw_client import RawClient
from tests.sockets import Member, members

pytestmark = pytest.mark.timeout(240)

BUSY, QUIET = "slow/busy", "slow/quiet"
UPDATES, PAD = 3000, 8192  # 24 MB of changes for the silent member
CAP = 256 * 1024


def rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def replay(updates: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The state a client holds after these `update` events, as both clients apply them:
    a replacing change takes over; another applies when it follows the rev held."""
    rev, state = 0, {}
    for update in updates:
        if update["replace"]:
            rev, state = update["rev"], dict(update["set"])
        elif update["rev"] == rev + 1:
            rev = update["rev"]
            state.update(update["set"])
    return rev, state


async def write(writer: Member, count: int) -> int:
    rev = 0
    for first in range(0, count, 50):
        acks = await asyncio.gather(*(
            writer.update(BUSY, set={"n": n, "pad": "x" * PAD})
            for n in range(first, min(first + 50, count))))
        assert all(ack["ok"] for ack in acks), acks
        rev = max(rev, *(ack["rev"] for ack in acks))
    return rev


async def test_a_member_that_stops_reading_is_held_back_then_caught_up(
    start_kpk: StartKpk, redis_server: RedisServer, key_prefix: str,
) -> None:
    server = start_kpk("--redis-url", redis_server.url, "--key-prefix", key_prefix,
                       "--rate-limit", "0", env={"KPK_IO_MAX_BUFFERED_BYTES": str(CAP)})
    slow = await RawClient(server.url).open()
    try:
        async with members(server.url, server.url) as [writer, reader]:
            for member in (writer, reader):
                await member.join(BUSY)
            await writer.join(QUIET)
            await slow.join(BUSY)
            await slow.join(QUIET)
            before = rss_mb(server.pid)
            slow.pause_reading()
            peak = before
            writing = asyncio.create_task(write(writer, UPDATES))
            while not writing.done():
                peak = max(peak, rss_mb(server.pid))
                await asyncio.sleep(0.1)
            last = await writing
            quiet = await writer.update(QUIET, set={"q": 1})
            # 24 MB went to a member that reads nothing; the server kept what the cap allows.
            print(f"server RSS {before:.1f} MB before, {peak:.1f} MB at most while writing")
            assert peak - before < 12, (before, peak)
            await reader.wait_updates(BUSY, UPDATES, timeout=60)
            assert [u["rev"] for u in reader.updates_of(BUSY)] == list(range(1, last + 1))
            slow.resume_reading()
            await eventually(lambda: replay(updates_of(slow, BUSY))[0] == last, 60,
                             "the slow member's catch-up")
            rev, state = replay(updates_of(slow, BUSY))
            async with members(server.url) as [fresh]:
                assert rev == last and state == (await fresh.join(BUSY))["state"]
            assert any(u["replace"] for u in updates_of(slow, BUSY))
            assert len(updates_of(slow, BUSY)) < UPDATES / 2  # most were never sent
            await eventually(lambda: replay(updates_of(slow, QUIET))[0] == quiet["rev"], 30,
                             "the quiet room's change")
            assert replay(updates_of(slow, QUIET))[1] == {"q": 1}
    finally:
        await slow.close()


def updates_of(client: RawClient, room: str) -> list[dict[str, Any]]:
    return [u for u in client.updates if u["room"] == room]
