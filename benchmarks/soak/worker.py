"""One client process: several simulated members and silent clients on one event loop.

The coordinator drives it through multiprocessing events: `stop` (stop operating, flush),
`check` (converge on the stored state it wrote to `targets_path`, then write the results),
`release` (disconnect and exit). It reports on `queue` as (kind, worker index, data)."""

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from benchmarks.soak.actor import Actor
from benchmarks.soak.journal import Journal
from benchmarks.soak.silent import SilentClient


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    urls: list[str]
    rooms: list[str]
    clients: list[tuple[str, int, list[str]]]  # name, node index, rooms
    silent: list[tuple[str, str, int]]  # name, kind, node index
    interval: float
    value_bytes: int
    hold: float
    seed: int
    targets_path: str
    result_path: str


@dataclass(frozen=True)
class Signals:
    queue: "Queue[tuple[str, int, Any]]"
    stop: Event
    check: Event
    release: Event


def work(spec: WorkerSpec, signals: Signals) -> None:
    """The process entry point."""
    # The clients' retry warnings would bury the progress bar; their errors still show.
    logging.getLogger("kpk_io").setLevel(logging.ERROR)
    try:
        asyncio.run(_work(spec, signals))
    except Exception as exc:  # the coordinator reports it; the run fails
        signals.queue.put(("failed", spec.index, repr(exc)))
    # Clients whose connection attempts were cut short by a node kill leave aiohttp sessions
    # behind; once the loop is gone their finalizers can only complain about it.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.unraisablehook = lambda _: None


async def _work(spec: WorkerSpec, signals: Signals) -> None:
    journal = Journal()
    rng = random.Random(spec.seed * 1000 + spec.index)
    actors = [Actor(name, spec.urls[node], rooms, journal, rng=random.Random(rng.random()),
                    interval=spec.interval, pad=spec.value_bytes)
              for name, node, rooms in spec.clients]
    await asyncio.gather(*(actor.start() for actor in actors))
    signals.queue.put(("ready", spec.index, len(actors)))
    stop = asyncio.Event()
    silent = [SilentClient(name, kind, spec.urls[node], spec.rooms, journal,
                           rng=random.Random(rng.random()), hold=spec.hold)
              for name, kind, node in spec.silent]
    tasks = [asyncio.create_task(a.run(stop)) for a in actors]
    tasks += [asyncio.create_task(s.run(stop)) for s in silent]
    while not signals.stop.is_set():
        signals.queue.put(("progress", spec.index, dict(journal.counts)))
        await asyncio.sleep(1.0)
    stop.set()
    await _finish(tasks, 30)
    flushed = await asyncio.gather(*(actor.flush(30) for actor in actors))
    signals.queue.put(("flushed", spec.index, sum(not ok for ok in flushed)))
    await _wait(signals.check, 180)
    raw = _read_json(spec.targets_path)
    targets = {room: (int(t["rev"]), t["state"]) for room, t in raw.items()}
    views = await asyncio.gather(*(actor.converge(targets, 30) for actor in actors))
    result = {"journal": journal.export(), "views": [v for vs in views for v in vs],
              "unflushed": sum(not ok for ok in flushed)}
    _write_json(spec.result_path, result)
    signals.queue.put(("done", spec.index, None))
    await _wait(signals.release, 60)
    await asyncio.gather(*(actor.close() for actor in actors))


def _read_json(path: str) -> Any:
    return json.loads(Path(path).read_text())


def _write_json(path: str, value: object) -> None:
    Path(path).write_text(json.dumps(value))


async def _finish(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*pending, return_exceptions=True)


async def _wait(event: Event, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError("the coordinator went quiet")
        await asyncio.sleep(0.1)
