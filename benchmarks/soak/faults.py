"""The fault schedule: one fault every so often, the kinds in turn, each undone before the
next. The blocking parts (waiting for a process to die or to come up) run in a thread, so
the coordinator's loop keeps drawing progress and probing meanwhile."""

import asyncio
import random
import time
from collections import Counter

from benchmarks.soak.cluster import Cluster
from kpk_io.change import JSON

GRACE = 5.0  # seconds after a fault is undone before probes count again


class FaultSchedule:
    def __init__(self, cluster: Cluster, kinds: tuple[str, ...], every: float,
                 rng: random.Random) -> None:
        self._cluster = cluster
        self._kinds = kinds
        self._every = every
        self._rng = rng
        self.counts: Counter[str] = Counter()
        self.log: list[dict[str, JSON]] = []
        self.active = False
        self.injected = 0  # faults begun so far: a probe spanning a change is discarded
        self._healed_at = 0.0
        self._started = time.monotonic()

    def quiet(self) -> bool:
        """No fault now, nor in the last GRACE seconds."""
        return not self.active and time.monotonic() - self._healed_at > GRACE

    async def run(self, until: float) -> None:
        """Inject faults until the monotonic time `until` (none starts too close to it)."""
        self._started = time.monotonic()  # fault times in the log count from here
        if not self._every or not self._kinds:
            return
        turn = 0
        while time.monotonic() + self._every + 10 < until:
            await asyncio.sleep(self._every)
            await self.inject(self._kinds[turn % len(self._kinds)])
            turn += 1

    async def inject(self, kind: str) -> None:
        self.active = True
        self.injected += 1
        began = time.monotonic()
        try:
            detail = await getattr(self, f"_{kind}")()
        finally:
            self.active = False
            self._healed_at = time.monotonic()
        self.counts[kind] += 1
        self.log.append({"at": round(began - self._started, 1), "kind": kind,
                         "seconds": round(self._healed_at - began, 2), **detail})

    async def _redis_stop(self) -> dict[str, JSON]:
        """SIGSTOP Redis for longer than the store's timeout, then SIGCONT: commits answer
        `unavailable` though Redis may apply them once it runs again."""
        pause = self._rng.uniform(1.0, 4.0)
        self._cluster.redis.pause()
        await asyncio.sleep(pause)
        self._cluster.redis.resume()
        return {"paused": round(pause, 2)}

    async def _redis_kill(self) -> dict[str, JSON]:
        """kill -9 Redis, then start it again from its append-only file."""
        down = self._rng.uniform(0.2, 1.5)
        await asyncio.to_thread(self._cluster.redis.kill)
        await asyncio.sleep(down)
        await asyncio.to_thread(self._cluster.redis.start)
        return {"down": round(down, 2)}

    async def _node_kill(self) -> dict[str, JSON]:
        """SIGKILL one node (its clients reconnect to it), then start it again."""
        index = self._rng.randrange(len(self._cluster.nodes))
        down = self._rng.uniform(0.2, 1.5)
        await asyncio.to_thread(self._cluster.kill_node, index)
        await asyncio.sleep(down)
        await asyncio.to_thread(self._cluster.start_node, index)
        return {"node": index, "down": round(down, 2)}
