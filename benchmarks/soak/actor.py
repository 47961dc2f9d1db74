"""A simulated member: a real KpkClient (which re-joins, re-syncs and re-sends by itself)
that records what the server sent it and what it acknowledged, doing random sets, unsets,
replaces, compare-and-sets and reconnects."""

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from benchmarks.soak.journal import Journal, commit_of
from kpk_io.change import JSON, Change, State
from kpk_io.client import KpkClient, KpkError, Room
from kpk_io.protocol import Event

FIELDS = tuple(f"f{i}" for i in range(6))
# Operation weights: set, unset, replace, compare-and-set, reconnect.
_OPS = ("set", "unset", "replace", "cas", "reconnect")
_WEIGHTS = (55, 12, 6, 22, 5)


class ObservedClient(KpkClient):
    """KpkClient that writes to a Journal what each connection was sent and acknowledged."""

    def __init__(self, name: str, url: str, journal: Journal) -> None:
        super().__init__(url, transports=["websocket"])
        self.name = name
        self.journal = journal
        self.epoch = 0  # one per connection: a reconnect is a new member to the server

    async def _on_connect(self) -> None:
        self.epoch += 1
        self.journal.counts["connections"] += 1
        await super()._on_connect()

    async def _on_update(self, data: object) -> None:
        if isinstance(data, dict) and isinstance(data.get("rev"), int):
            room, commit = str(data.get("room")), commit_of(data)
            self.journal.learn(room, data["rev"], commit)
            whole = commit[4] and commit[1] is None  # the hub's catch-up: the whole state
            self.journal.view(self.name, self.epoch, room).delivered.append((data["rev"], whole))
            self.journal.counts["deliveries"] += 1
        await super()._on_update(data)

    async def request(self, event: Event, payload: dict[str, JSON]) -> dict[str, JSON]:
        room, view = str(payload.get("room")), None
        view = self.journal.view(self.name, self.epoch, room)
        sent = commit_of(payload)
        if event is Event.UPDATE:
            self.journal.sent[str(payload["id"])] = (room, sent)
            view.own_ids.add(str(payload["id"]))
        try:
            ack = await super().request(event, payload)
        except KpkError as exc:
            self.journal.counts[f"{event.value} {exc.code}"] += 1
            raise
        self._acknowledged(event, room, view, sent, ack)
        return ack

    def _acknowledged(self, event: Event, room: str, view: Any, sent: list[Any],
                      ack: dict[str, JSON]) -> None:
        journal = self.journal
        if event is Event.UPDATE:
            rev, sent[0] = int(ack["rev"]), ack.get("tag")
            journal.learn(room, rev, sent)
            journal.acked.append((room, rev, sent[1]))
            view.own_revs.add(rev)
            journal.counts["duplicate acks" if ack.get("duplicate") else "acked"] += 1
        elif event is Event.JOIN and view.joined is None:
            view.joined = int(ack["rev"])
        elif event is Event.SYNC:
            for body in ack.get("changes") or []:
                journal.learn(room, int(body["rev"]), commit_of(body))


class Actor:
    def __init__(self, name: str, url: str, rooms: list[str], journal: Journal, *,
                 rng: random.Random, interval: float, pad: int) -> None:
        self.name = name
        self.rooms = rooms
        self.client = ObservedClient(name, url, journal)
        self.journal = journal
        self._rng = rng
        self._interval = interval
        self._seq = 0
        self._pad = "x" * pad
        self.handles: dict[str, Room] = {}

    async def start(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.client.connect()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        for room in self.rooms:
            while room not in self.handles:
                try:
                    self.handles[room] = await self.client.join(room)
                except KpkError:  # counted by request(); a real page would try again too
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                pause = self._rng.uniform(0.5, 1.5) * self._interval
                await asyncio.wait_for(stop.wait(), pause)
                return
            try:
                await self._operate(self.handles[self._rng.choice(self.rooms)])
            except Exception as exc:  # counted and reported; the member carries on
                self.journal.counts[f"op error {type(exc).__name__}"] += 1

    def _token(self) -> str:
        """A value no other write uses: the stored state then names the write it kept."""
        self._seq += 1
        return f"{self.name}.{self._seq}{self._pad}"

    async def _operate(self, room: Room) -> None:
        op = self._rng.choices(_OPS, _WEIGHTS)[0]
        self.journal.counts[f"op {op}"] += 1
        field = self._rng.choice(FIELDS)
        if op == "set":
            room.set(field, self._token())
        elif op == "unset":
            room.unset(field)
        elif op == "replace":
            room.replace({f: self._token() for f in self._rng.sample(FIELDS, 2)})
        elif op == "cas":
            await self._compare_and_set(room, field)
        else:
            ws = getattr(self.client.sio.eio, "ws", None)
            if ws is not None:  # drop the transport, as a network would: the client reconnects
                await ws.close()

    async def _compare_and_set(self, room: Room, field: str) -> None:
        try:
            await asyncio.wait_for(room.commit(Change({field: self._token()}), rev=room.rev), 15)
        except KpkError as exc:
            self.journal.counts[f"cas {exc.code}"] += 1
        except TimeoutError:
            self.journal.counts["cas timeout"] += 1

    async def flush(self, timeout: float) -> bool:
        try:
            await asyncio.gather(*(room.flush(timeout) for room in self.handles.values()))
        except TimeoutError:
            return False
        return True

    async def converge(self, targets: dict[str, tuple[int, State]],
                       timeout: float) -> list[dict[str, JSON]]:
        """Wait until each room's view is the stored state; report each room."""
        deadline = time.monotonic() + timeout
        results = []
        for name, room in self.handles.items():
            rev, state = targets[name]
            with contextlib.suppress(TimeoutError):
                left = max(0.1, deadline - time.monotonic())
                await room.wait_for(_converged(room, rev, state), left)
            results.append({"client": self.name, "room": name, "ok": _same(room, rev, state),
                            "rev": room.rev, "stored_rev": rev, "unsent": room.has_unsent,
                            "connected": self.client.connected, "node": self.client.url,
                            "differs": sorted(k for k in set(state) | set(room.state)
                                              if state.get(k) != room.state.get(k))[:10]})
        return results

    async def close(self) -> None:
        for room in self.handles.values():
            room.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.sio.shutdown(), 5)


def _converged(room: Room, rev: int, state: State) -> Callable[[State], bool]:
    return lambda _: _same(room, rev, state)


def _same(room: Room, rev: int, state: State) -> bool:
    return room.rev == rev and not room.has_unsent and room.state == state
