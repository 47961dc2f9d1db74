"""The coordinator's side of the client processes: spawn them, hear from them, stop them."""

import asyncio
import multiprocessing
import queue
import time
from collections import Counter
from typing import Any

from benchmarks.soak.worker import Signals, WorkerSpec, work


class WorkerFailed(Exception):
    pass


class Crew:
    def __init__(self, specs: list[WorkerSpec]) -> None:
        context = multiprocessing.get_context("spawn")  # no forked event loops or sockets
        self.signals = Signals(context.Queue(), context.Event(), context.Event(),
                               context.Event())
        self._processes = [context.Process(target=work, args=(spec, self.signals),
                                           name=f"soak-worker-{spec.index}", daemon=True)
                           for spec in specs]
        self._heard: dict[str, dict[int, Any]] = {}
        self.counts: dict[int, dict[str, int]] = {}

    def start(self) -> None:
        for process in self._processes:
            process.start()

    def drain(self) -> None:
        """Take every message waiting; raise WorkerFailed if a worker failed or died."""
        while True:
            try:
                kind, index, data = self.signals.queue.get_nowait()
            except queue.Empty:
                break
            if kind == "failed":
                raise WorkerFailed(f"worker {index}: {data}")
            if kind == "progress":
                self.counts[index] = data
            else:
                self._heard.setdefault(kind, {})[index] = data
        for process in self._processes:
            if process.exitcode not in (None, 0):
                raise WorkerFailed(f"{process.name} exited with {process.exitcode}")

    async def all_say(self, kind: str, timeout: float) -> dict[int, Any]:
        """Wait until every worker has sent `kind`; what each sent with it."""
        deadline = time.monotonic() + timeout
        while len(self._heard.get(kind, {})) < len(self._processes):
            self.drain()
            if time.monotonic() > deadline:
                missing = len(self._processes) - len(self._heard.get(kind, {}))
                raise WorkerFailed(f"{missing} workers did not report {kind!r} in {timeout}s")
            await asyncio.sleep(0.1)
        return self._heard[kind]

    def total(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for counts in self.counts.values():
            found.update(counts)
        return found

    def close(self) -> None:
        for event in (self.signals.stop, self.signals.check, self.signals.release):
            event.set()
        for process in self._processes:
            process.join(20)
            if process.is_alive():
                process.kill()
                process.join(5)
