"""Fan-out across nodes: update-to-delivery latency, and the CPU each node spends.

Three `kpk-io serve` processes on one private redis-server. The room has listeners on nodes
A and B; node C has members only in another room. A writer on A sends updates one after the
other; the script prints delivery latency at the listeners and the CPU time each node used
per update. C's figure shows what a node with no members in a room pays for it.

    python -m benchmarks.fanout [--updates 2000] [--listeners 20]
"""

import argparse
import asyncio
import statistics
import time

from tests.processes import KpkServer, RedisServer
from tests.sockets import Member, members

ROOM = "bench/fanout"


async def run(updates: int, listeners_per_node: int) -> None:
    redis = RedisServer()
    redis.start()
    nodes = [KpkServer("--redis-url", redis.url, "--log-level", "warning", "--rate-limit", "0")
             for _ in range(3)]
    try:
        for node in nodes:
            node.start()
        a, b, c = nodes
        urls = [a.url, b.url] * listeners_per_node
        async with members(a.url, c.url, *urls) as [writer, bystander, *listeners]:
            await writer.join(ROOM)
            await bystander.join("bench/elsewhere")
            for listener in listeners:
                await listener.join(ROOM)
            await _warm_up(writer, listeners)
            cpu_before = [n.cpu_seconds() for n in nodes]
            latencies = await _measure(writer, listeners, updates)
            cpu_after = [n.cpu_seconds() for n in nodes]
        _report(updates, len(listeners), latencies, cpu_before, cpu_after)
    finally:
        for node in nodes:
            node.kill()
        redis.close()


async def _warm_up(writer: Member, listeners: list[Member]) -> None:
    await writer.update(ROOM, set={"warm": True})
    for listener in listeners:
        await listener.wait_updates(ROOM, 1)


async def _measure(writer: Member, listeners: list[Member], updates: int) -> list[float]:
    arrival: dict[int, list[float]] = {}
    for listener in listeners:
        listener.sio.on("update", lambda data: arrival.setdefault(
            data["rev"], []).append(time.perf_counter()))
    sent: dict[int, float] = {}
    for seq in range(updates):
        started = time.perf_counter()
        ack = await writer.update(ROOM, set={"seq": seq, "payload": "x" * 100})
        sent[ack["rev"]] = started
    deadline = time.monotonic() + 30
    while sum(len(v) for v in arrival.values()) < updates * len(listeners):
        if time.monotonic() > deadline:
            raise TimeoutError("not every update arrived")
        await asyncio.sleep(0.01)
    return [t - sent[rev] for rev, times in arrival.items() if rev in sent for t in times]


def _report(updates: int, listeners: int, latencies: list[float],
            before: list[float], after: list[float]) -> None:
    latencies.sort()
    ms = [1000 * latencies[int(q * (len(latencies) - 1))] for q in (0.5, 0.9, 0.99)]
    print(f"{updates} updates, {listeners} listeners on nodes A and B")
    print(f"delivery latency ms: p50 {ms[0]:.2f}  p90 {ms[1]:.2f}  p99 {ms[2]:.2f}  "
          f"mean {1000 * statistics.fmean(latencies):.2f}")
    for name, start, end in zip("ABC", before, after, strict=True):
        per_update = 1e6 * (end - start) / updates
        print(f"node {name}: {end - start:.3f} s CPU, {per_update:.1f} us per update")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--listeners", type=int, default=10, help="per node (A and B)")
    args = parser.parse_args()
    asyncio.run(run(args.updates, args.listeners))


if __name__ == "__main__":
    main()
