"""What one signal costs each node, at 1, 2 and 3 nodes.

`kpk-io serve` processes on one private redis-server. The room has a sender and listeners on
node A and listeners on node B; node C has a member in another room only, so its figure is
what a node with no members in a room pays for each of its signals (AsyncRedisManager's own
decode of every message on the channel). The sender sends signals one after the other, each
acknowledged; the script prints the CPU time (user + system, from /proc) each node used per
signal, and the delivery latency at the listeners.

    python -m benchmarks.signals [--signals 2000] [--listeners 10]
"""

import argparse
import asyncio
import statistics
import time
from typing import Any

import socketio

from tests.polling import eventually
from tests.processes import KpkServer, RedisServer

ROOM = "bench/signals"


class Peer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.arrivals: dict[int, float] = {}
        self.sio.on("signal", self._received)

    async def _received(self, body: dict[str, Any]) -> None:
        self.arrivals[body["data"]["n"]] = time.perf_counter()

    async def join(self, room: str) -> None:
        await self.sio.connect(self.url, transports=["websocket"], wait_timeout=10)
        ack = await self.sio.call("join", {"room": room}, timeout=10)
        assert ack["ok"], ack


async def run(node_count: int, signals: int, listeners_per_node: int) -> dict[str, Any]:
    redis = RedisServer()
    redis.start()
    nodes = [KpkServer("--redis-url", redis.url, "--log-level", "warning",
                       "--signal-rate", "0") for _ in range(node_count)]
    peers: list[Peer] = []
    try:
        for node in nodes:
            node.start()
        sender = Peer(nodes[0].url)
        listeners = [Peer(n.url) for n in nodes[:2] for _ in range(listeners_per_node)]
        peers = [sender, *listeners]
        for peer in peers:
            await peer.join(ROOM)
        if node_count == 3:
            bystander = Peer(nodes[2].url)
            peers.append(bystander)
            await bystander.join("bench/elsewhere")
        await _send(sender, listeners, -1)  # warm up
        started = time.perf_counter()
        cpu_before = [n.cpu_seconds() for n in nodes]
        sent = {}
        for n in range(signals):
            sent[n] = time.perf_counter()
            await _send(sender, [], n)
        await eventually(lambda: all(len(p.arrivals) > signals for p in listeners), 60,
                         "every signal at every listener")
        cpu_after = [n.cpu_seconds() for n in nodes]
        # What each node spends doing nothing for as long (heartbeats, timers): not the
        # signals' cost.
        idle = await _idle_cpu(nodes, time.perf_counter() - started)
        latencies = [p.arrivals[n] - sent[n] for p in listeners for n in range(signals)]
        return {
            "nodes": node_count,
            "listeners": len(listeners),
            "cpu_us_per_signal": [
                round((after - before - still) / signals * 1e6) for before, after, still in
                zip(cpu_before, cpu_after, idle, strict=True)
            ],
            "idle_cpu_ms": [round(still * 1000) for still in idle],
            "latency_ms_median": round(statistics.median(latencies) * 1000, 2),
            "latency_ms_p99": round(statistics.quantiles(latencies, n=100)[98] * 1000, 2),
        }
    finally:
        for peer in peers:
            await peer.sio.disconnect()
        for node in nodes:
            node.kill()
        redis.close()


async def _idle_cpu(nodes: list[KpkServer], seconds: float) -> list[float]:
    before = [n.cpu_seconds() for n in nodes]
    await asyncio.sleep(seconds)
    return [n.cpu_seconds() - b for n, b in zip(nodes, before, strict=True)]


async def _send(sender: Peer, listeners: list[Peer], n: int) -> None:
    ack = await sender.sio.call("signal", {"room": ROOM, "data": {"n": n}}, timeout=10)
    assert ack == {"ok": True}, ack
    if listeners:
        await eventually(lambda: all(n in p.arrivals for p in listeners), 10, "warm-up signal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=2000)
    parser.add_argument("--listeners", type=int, default=10, help="listeners per node (A, B)")
    args = parser.parse_args()
    for node_count in (1, 2, 3):
        result = asyncio.run(run(node_count, args.signals, args.listeners))
        print(result, flush=True)


if __name__ == "__main__":
    main()
