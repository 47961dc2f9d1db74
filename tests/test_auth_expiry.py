"""A token that expires during a connection: the server closes the transport without a
goodbye, stock clients reconnect, and a fresh token from the token function gets them back in;
a stale one is refused `unauthorized`."""

import asyncio
from typing import Any

import pytest
import socketio

from kpk_io.client import KpkClient
from kpk_io.tokens import issue
from tests.auth_keys import SECRET
from tests.conftest import StartKpk
from tests.polling import eventually
from tests.processes import KpkServer
from tests.test_auth import member

TTL = 3  # seconds; exp is whole seconds, so a token lives 2 to 3 s


@pytest.fixture
def kpk(start_kpk: StartKpk) -> KpkServer:
    return start_kpk(env={"KPK_IO_JWT_SECRET": SECRET, "KPK_IO_JWT_LEEWAY": "0"})


def short_token(sub: str = "ann") -> str:
    return issue(sub, name=sub.title(), rooms=["r"], ttl=TTL, key=SECRET)


async def test_python_client_reconnects_with_a_fresh_token(kpk: KpkServer) -> None:
    issued: list[str] = []

    async def fresh() -> str:
        issued.append(short_token())
        return issued[-1]

    long_lived = issue("watcher", rooms=["r"], ttl=600, key=SECRET)
    async with member(kpk.url, long_lived) as watcher, KpkClient(kpk.url, token=fresh) as ann:
        await watcher.join("r")
        room = await ann.join("r")
        room.set("before", 1)
        await room.flush()
        stop = asyncio.Event()

        async def keep_writing() -> None:  # the watcher is busy while ann's token expires
            n = 0
            while not stop.is_set():
                n += 1
                assert (await watcher.update("r", set={"n": n}))["ok"]
                await asyncio.sleep(0.05)

        writer = asyncio.create_task(keep_writing())
        await eventually(lambda: len(issued) >= 3 and ann.connected, 30,
                         "two reconnects with fresh tokens")
        stop.set()
        await writer
        room.set("after", 2)
        await room.flush()
        await room.wait_for(lambda state: state.get("n") is not None)
        updates = await watcher.wait_updates("r", 2)
        assert [u["set"] for u in updates][-1] == {"after": 2}
        assert updates[-1]["by"] == {"user": "ann", "name": "Ann"}
        assert room.state["before"] == 1
    assert "expired; closing its transport" in kpk.log()


async def test_python_client_with_a_stale_token_is_refused_unauthorized(
    kpk: KpkServer,
) -> None:
    async with KpkClient(kpk.url, token=short_token()) as ann:
        await ann.join("r")
        await eventually(lambda: ann.refused is not None, 30, "a refused reconnect")
        assert ann.refused is not None
        assert ann.refused.code == "unauthorized"
        assert "expired" in ann.refused.message
        assert not ann.connected


async def test_the_transport_closes_without_a_goodbye(kpk: KpkServer) -> None:
    """python-socketio's own client, as a mobile app would use a stock library."""
    sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2)
    reasons: list[Any] = []
    refusals: list[Any] = []
    sio.on("disconnect", lambda reason=None: reasons.append(reason))
    sio.on("connect_error", refusals.append)
    await sio.connect(kpk.url, auth={"token": short_token()}, transports=["websocket"],
                      wait_timeout=10)
    try:
        assert (await sio.call("join", {"room": "r"}, timeout=10))["ok"]
        await eventually(lambda: refusals, 30, "a reconnect, refused")
        # A goodbye (a Socket.IO DISCONNECT) would make stock clients stay away.
        assert reasons and reasons[0] != sio.reason.SERVER_DISCONNECT
        assert refusals[0]["data"]["error"] == "unauthorized"
    finally:
        await sio.shutdown()
