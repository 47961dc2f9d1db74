"""Fresh connections that test the service from outside: does a join of every room answer
in time on every node, and does a fresh update reach every member?"""

import asyncio
import contextlib
import time
from dataclasses import dataclass

import socketio

from benchmarks.soak.journal import Commit, commit_of
from kpk_io.change import JSON

PROBE_FIELD = "soak-probe"


@dataclass(frozen=True)
class JoinResult:
    node: int
    room: str
    seconds: float | None  # None: no answer in time (or the node refused the connection)
    error: str | None = None


async def probe_joins(urls: list[str], rooms: list[str], timeout: float,
                      only: set[tuple[int, str]] | None = None) -> list[JoinResult]:
    """Join each room on each node with a fresh connection per node; time each answer."""
    results = await asyncio.gather(*(
        _probe_node(index, url, [r for r in rooms if only is None or (index, r) in only],
                    timeout) for index, url in enumerate(urls)))
    return [result for node in results for result in node]


async def _probe_node(index: int, url: str, rooms: list[str],
                      timeout: float) -> list[JoinResult]:
    if not rooms:
        return []
    sio = socketio.AsyncClient(reconnection=False)
    try:
        await sio.connect(url, transports=["websocket"], wait_timeout=10)
    except Exception as exc:
        return [JoinResult(index, room, None, f"connect: {exc}") for room in rooms]
    results = []
    try:
        for room in rooms:
            started = time.monotonic()
            try:
                ack = await sio.call("join", {"room": room}, timeout=timeout)
            except Exception as exc:
                results.append(JoinResult(index, room, None, type(exc).__name__))
                continue
            ok = isinstance(ack, dict) and ack.get("ok")
            results.append(JoinResult(index, room, time.monotonic() - started,
                                      None if ok else f"refused: {ack}"))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.disconnect(), 5)
    return results


async def probe_update(url: str, room: str, token: str) -> tuple[int, Commit]:
    """Commit one fresh change through `url`; its rev and commit record."""
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    try:
        joined = await sio.call("join", {"room": room}, timeout=10)
        if not joined.get("ok"):
            raise RuntimeError(f"probe join refused: {joined}")
        payload: dict[str, JSON] = {"room": room, "set": {PROBE_FIELD: token}, "id": token}
        ack = await sio.call("update", payload, timeout=10)
        if not ack.get("ok"):
            raise RuntimeError(f"probe update refused: {ack}")
        commit = commit_of(payload)
        commit[0] = ack.get("tag")
        return int(ack["rev"]), commit
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.disconnect(), 5)
