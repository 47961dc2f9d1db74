"""Commit throughput and latency of each state store, and of updates through one server.

    python -m benchmarks.commits [--commits 5000] [--concurrency 16]

Store level: `commit()` called directly, one after another and with N concurrent callers
(different fields of one room, so every commit contends on one Redis hash). Server level:
one Socket.IO client sending updates and waiting for each ack.
"""

import argparse
import asyncio
import time

from kpk_io.change import Change
from kpk_io.store.base import StateStore
from kpk_io.store.memory import MemoryStateStore
from kpk_io.store.redis import RedisStateStore
from tests.processes import KpkServer, RedisServer
from tests.sockets import members

ROOM = "bench/commits"


async def store_figures(name: str, store: StateStore, commits: int, concurrency: int) -> None:
    latencies = []
    started = time.perf_counter()
    for seq in range(commits):
        begun = time.perf_counter()
        await store.commit(ROOM, Change({"seq": seq, "text": "x" * 100}))
        latencies.append(time.perf_counter() - begun)
    sequential = commits / (time.perf_counter() - started)

    async def caller(index: int) -> None:
        for seq in range(commits // concurrency):
            await store.commit(ROOM, Change({f"c{index}": seq}))

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    parallel = (commits // concurrency) * concurrency / (time.perf_counter() - started)
    latencies.sort()
    p50, p99 = (1e6 * latencies[int(q * (len(latencies) - 1))] for q in (0.5, 0.99))
    print(f"{name:>6} store: {sequential:8.0f} commits/s one caller (p50 {p50:.0f} us, "
          f"p99 {p99:.0f} us), {parallel:8.0f} commits/s with {concurrency} callers")


async def server_figures(url: str, commits: int) -> None:
    async with members(url) as [client]:
        await client.join(ROOM)
        started = time.perf_counter()
        for seq in range(commits):
            ack = await client.update(ROOM, set={"seq": seq})
            assert ack["ok"], ack
        rate = commits / (time.perf_counter() - started)
    print(f"server: {rate:8.0f} acknowledged updates/s, one client waiting for each ack")


async def run(commits: int, concurrency: int) -> None:
    redis = RedisServer()
    redis.start()
    server = KpkServer("--redis-url", redis.url, "--log-level", "warning", "--rate-limit", "0")
    try:
        await store_figures("memory", MemoryStateStore(), commits, concurrency)
        store = RedisStateStore(redis.url, prefix="bench:")
        await store_figures("redis", store, commits, concurrency)
        await store.close()
        server.start()
        await server_figures(server.url, commits)
    finally:
        server.kill()
        redis.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.commits, args.concurrency))


if __name__ == "__main__":
    main()
