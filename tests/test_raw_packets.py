"""Packets no client library sends, written by hand: binary packets close the connection and
keep nothing; events named like python-socketio's own answer unknown_event and change
nothing; a client secret that is not valid Unicode is refused at connect."""

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartKpk
from tests.polling import eventually, eventually_async
from tests.processes import KpkServer
from tests.raw_client import RawClient
from tests.sockets import Member, members
from tests.test_metrics import sample, scrape

ROOM = "raw/1"
MB = 1_000_000


def resident_bytes(kpk: KpkServer) -> int:
    for line in Path(f"/proc/{kpk.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def assert_room_works(writer: Member, watcher: Member) -> None:
    ack = await writer.update(ROOM, set={"after": True})
    assert ack["ok"], ack
    await eventually(lambda: any(u["rev"] == ack["rev"] for u in watcher.updates_of(ROOM)),
                     10, "the watcher to receive the update")


@pytest.mark.parametrize("header", [
    '5999999-["update",{"room":"raw/1","set":{"b":{"_placeholder":true,"num":0}}}]',
    '51-["update",{"room":"raw/1","set":{"b":{"_placeholder":true,"num":7}}}]',
    '21-["update",{"room":"raw/1","set":{"a":1}}]',
    '61-0[{"_placeholder":true,"num":0}]',
], ids=["999999-attachments", "placeholder-out-of-range", "event-with-attachments", "binary-ack"])
async def test_a_binary_packet_closes_the_connection_and_keeps_nothing(
    start_kpk: StartKpk, header: str
) -> None:
    kpk = start_kpk()
    async with members(kpk.url, kpk.url) as [writer, watcher]:
        await writer.join(ROOM)
        await watcher.join(ROOM)
        hostile = await RawClient(kpk.url).open()
        await hostile.join(ROOM)
        before = resident_bytes(kpk)
        await hostile.send(header)
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            for _ in range(40):  # what the server would keep as attachments
                await hostile.send(b"\x00" * MB)
        await hostile.wait_closed()
        await hostile.close()
        assert resident_bytes(kpk) - before < 15 * MB
        await assert_room_works(writer, watcher)
    assert "refused packet" in kpk.log()


async def test_a_binary_frame_closes_the_connection(start_kpk: StartKpk) -> None:
    kpk = start_kpk()
    async with members(kpk.url, kpk.url) as [writer, watcher]:
        await writer.join(ROOM)
        await watcher.join(ROOM)
        hostile = await RawClient(kpk.url).open()
        await hostile.send(b"\x04binary")
        await hostile.wait_closed()
        await hostile.close()
        await assert_room_works(writer, watcher)


async def connections(kpk: KpkServer) -> float | None:
    return sample(await scrape(kpk), "kpk_io_connections")


@pytest.mark.parametrize("event", [
    ["disconnect"], ["disconnect", "io client disconnect"], ["connect"],
    ["connect", {"client": "c" * 20}], ["connect_error"], ["connect_error", {"message": "x"}],
], ids=["disconnect", "disconnect-reason", "connect", "connect-auth", "connect_error",
        "connect_error-data"])
async def test_reserved_event_names_answer_unknown_event_and_change_nothing(
    start_kpk: StartKpk, event: list[object]
) -> None:
    kpk = start_kpk()
    async with members(kpk.url) as [writer]:
        await writer.join(ROOM)
        client = await RawClient(kpk.url).open()
        try:
            await client.join(ROOM)
            gauge = await connections(kpk)
            assert gauge == 2
            for _ in range(3):
                ack = await client.call(*event)  # type: ignore[arg-type]
                assert (ack["ok"], ack["error"]) == (False, "unknown_event"), ack
            assert await connections(kpk) == gauge
            mine = await client.call("update", {"room": ROOM, "set": {"mine": 1}})
            assert mine["ok"], mine  # still a member
            ack = await writer.update(ROOM, set={"theirs": 1})
            await eventually(lambda: any(u["rev"] == ack["rev"] for u in client.updates),
                             10, "the client to still receive updates")
        finally:
            await client.close()
        await eventually_async(lambda: connections(kpk), 1.0)  # a real disconnect counts


async def test_a_client_secret_that_is_not_unicode_is_refused_at_connect(
    start_kpk: StartKpk,
) -> None:
    kpk = start_kpk()
    refused = RawClient(kpk.url)
    try:
        await refused.open(auth={"client": "\ud800" + "x" * 20})
        assert refused.sid is None
        assert refused.connect_error["data"]["error"] == "invalid_request", refused.connect_error
        assert refused.connect_error["data"]["message"]
    finally:
        await refused.close()
    # The server goes on serving.
    async with members(kpk.url) as [member]:
        await member.join(ROOM)
        assert (await member.update(ROOM, set={"a": 1}, id="x1"))["ok"]


@pytest.mark.parametrize("args", [[{"a": 1}], [], ["OTHER_SID"], ["OTHER_SID", {"room": ROOM}]],
                         ids=["object", "no-data", "another-sid", "another-sid-and-data"])
async def test_an_event_named_star_answers_unknown_event_and_changes_nothing(
    start_kpk: StartKpk, args: list[object]
) -> None:
    # `*` is where python-socketio keeps its catch-all handler: it must not be reachable as an
    # event of its own (it shifted the arguments, taking the first data item for the sid).
    kpk = start_kpk("--join-rate", "0.001", "--join-burst", "3")
    async with members(kpk.url) as [writer]:
        other = await RawClient(kpk.url).open()
        client = await RawClient(kpk.url).open()
        try:
            await other.join(ROOM)
            assert other.sid is not None
            sent = [other.sid if arg == "OTHER_SID" else arg for arg in args]
            for _ in range(5):  # more than the other connection's remaining join tokens
                ack = await client.call("*", *sent)
                assert (ack["ok"], ack["error"]) == (False, "unknown_event"), ack
            assert (await other.call("sync", {"room": ROOM, "since": 0}))["ok"]
            assert (await other.call("leave", {"room": ROOM}))["ok"]
            await client.join(ROOM)  # its own bucket untouched too
            ack = await writer.join(ROOM)
            assert ack["rev"] == 0, ack
        finally:
            await other.close()
            await client.close()
    assert "Task exception" not in kpk.log()
    assert "TypeError" not in kpk.log()


async def test_an_event_on_an_unconnected_namespace_answers_invalid_request(
    start_kpk: StartKpk,
) -> None:
    kpk = start_kpk()
    client = await RawClient(kpk.url).open()
    try:
        answer = client.expect_ack(7)
        await client.send('42/nope,7["join",{"room":"x"}]')
        ack = (await asyncio.wait_for(answer, 10))[0]
        assert (ack["ok"], ack["error"]) == (False, "invalid_request"), ack
        assert "namespace" in ack["message"]
        assert client.acks_by_namespace.get("/nope") == [7]  # answered on that namespace
        await client.send('42/nope,["join",{"room":"x"}]')  # no ack id: no answer
        assert (await client.call("join", {"room": ROOM}))["ok"]  # still usable, and
        joined = await client.call("join", {"room": "x"})  # the refused join changed nothing
        assert joined["ok"] and joined["rev"] == 0, joined
        assert client.acks_by_namespace.get("/nope") == [7]
    finally:
        await client.close()
