"""The scenarios, and running one of them against one kind of server.

Every scenario runs twice in the same run, once against kpk-io and once against the Node.js
baseline, with the same clients, rates and counts: only the ratio of the two is meaningful
on a shared machine."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.suite.load import Client, Load, percentiles
from benchmarks.suite.servers import Cluster

JOIN_TIMEOUT = 60.0
DRAIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Scenario:
    name: str  # the family: fanout, rooms, nodes, idle, slow
    label: str
    nodes: int
    rooms: int
    members: int  # per room
    writers: int  # per room
    updates: int = 0  # per writer
    rate: float = 0.0  # updates per second per writer (0: as fast as the window allows)
    window: int = 20  # updates a writer may have unacknowledged
    pad: int = 0  # bytes of padding in each update
    processes: int = 2  # load generator processes
    connect_rate: float = 0.0  # connections per second per load process (0: at once)
    load: float = 0.0  # the x axis of the plot (deliveries per second offered)

    def clients(self, urls: list[str]) -> list[Client]:
        out = []
        for room in range(self.rooms):
            for member in range(self.members):
                url = urls[(room * self.members + member) % len(urls)]
                write = member < self.writers
                slow = self.name == "slow" and member == self.members - 1
                out.append(Client(url, f"bench/{self.name}-{room}", write, slow))
        return out

    @property
    def expected_deliveries(self) -> int:
        """Every update reaches every other member of its room (the slow member aside)."""
        readers = self.members - 1 - (1 if self.name == "slow" else 0)
        return self.rooms * self.writers * self.updates * readers

    @property
    def connections(self) -> int:
        return self.rooms * self.members


@dataclass
class Measure:
    figures: dict[str, Any] = field(default_factory=dict)


def full_scenarios() -> list[Scenario]:
    out = [
        Scenario("fanout", f"fan-out, 1 writer, {n} readers", 1, 1, n + 1, 1,
                 updates=int(16 * 6000 / n), rate=6000 / n, load=6000.0, processes=2)
        for n in (50, 200, 1000)
    ]
    out += [Scenario("rooms", f"many rooms, {r} rooms x {m} members, all writing", 1, r, m, m,
                     updates=40, rate=2.0, load=r * m * (m - 1) * 2.0)
            for r, m in ((60, 5), (120, 5))]
    out += [Scenario("nodes", f"cross-node, {n} nodes, 1 writer, 100 readers", n, 1, 101, 1,
                     updates=400, rate=50.0, load=5000.0) for n in (2, 3)]
    out.append(Scenario("idle", "idle capacity, 10,000 connections, 10 per room", 1, 1000, 10,
                        0, processes=4, connect_rate=500.0))
    out.append(Scenario("slow", "slow reader, 20,000 updates of 1 KB", 1, 1, 4, 1,
                        updates=20_000, rate=2000.0, window=50, pad=1000))
    return out


def tiny_scenarios() -> list[Scenario]:
    return [
        Scenario("fanout", "fan-out, 1 writer, 20 readers", 1, 1, 21, 1, updates=60,
                 rate=60.0, load=1200.0),
        Scenario("rooms", "many rooms, 4 rooms x 3 members, all writing", 1, 4, 3, 3,
                 updates=20, rate=20.0, load=480.0),
        Scenario("nodes", "cross-node, 2 nodes, 1 writer, 10 readers", 2, 1, 11, 1,
                 updates=50, rate=50.0, load=500.0),
        Scenario("idle", "idle capacity, 200 connections, 10 per room", 1, 20, 10, 0),
        Scenario("slow", "slow reader, 2,000 updates of 1 KB", 1, 1, 4, 1, updates=2000,
                 rate=1000.0, window=50, pad=1000),
    ]


Progress = Callable[[str, float], None]


async def run(scenario: Scenario, kind: str, env: dict[str, str],
              progress: Progress) -> dict[str, Any]:
    cluster = Cluster(kind, scenario.nodes, env)
    load: Load | None = None
    try:
        idle_rss = cluster.rss_bytes()
        load = await Load.start(
            scenario.clients(cluster.urls), scenario.processes, updates=scenario.updates,
            rate=scenario.rate, window=scenario.window, pad=scenario.pad,
            connectRate=scenario.connect_rate, joinTimeoutMs=JOIN_TIMEOUT * 1000,
        )
        figures = await _joined(scenario, cluster, load, idle_rss, progress)
        if scenario.updates:
            figures.update(await _traffic(scenario, cluster, load, progress))
        return figures
    finally:
        if load is not None:
            await load.close()
        cluster.close()


async def _joined(scenario: Scenario, cluster: Cluster, load: Load, idle_rss: int,
                  progress: Progress) -> dict[str, Any]:
    started = time.monotonic()
    while not load.all_said("ready"):
        progress("joining", load.total("progress", "joined") / scenario.connections)
        if time.monotonic() - started > JOIN_TIMEOUT + 30:
            raise TimeoutError(f"load generator not ready: {load.failures()}")
        await asyncio.sleep(0.25)
    joined = load.total("ready", "joined")
    await asyncio.sleep(1.0)  # let the servers settle before reading their memory
    return {
        "connections": scenario.connections,
        "joined": joined,
        "join_seconds_max": max(one.last["ready"].get("joinMsMax", 0) for one in load.loads) / 1000,
        "connect_and_join_seconds": time.monotonic() - started,
        "rss_per_connection_kb": (cluster.rss_bytes() - idle_rss) / max(joined, 1) / 1024,
        "server_rss_mb": cluster.rss_bytes() / 2**20,
    }


async def _traffic(scenario: Scenario, cluster: Cluster, load: Load,
                   progress: Progress) -> dict[str, Any]:
    expected = scenario.expected_deliveries
    if scenario.name == "slow":
        load.send("pause")
    rss_before = peak = cluster.rss_bytes()
    cpu, load_cpu, started = cluster.cpu_seconds(), load.cpu_seconds(), time.monotonic()
    load.send("go")
    deadline = None
    while load.total("progress", "received") < expected or not load.all_said("sent"):
        peak = max(peak, cluster.rss_bytes())
        progress("traffic", load.total("progress", "received") / max(expected, 1))
        if load.all_said("sent"):
            deadline = deadline or time.monotonic() + DRAIN_TIMEOUT
            if time.monotonic() > deadline:
                break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    cpu, load_cpu = cluster.cpu_seconds() - cpu, load.cpu_seconds() - load_cpu
    figures: dict[str, Any] = {}
    if scenario.name == "slow":
        figures = await _slow_reader_ends(scenario, cluster, load, progress)
        figures["server_rss_growth_mb"] = (peak - rss_before) / 2**20
    await load.ask("result")
    return {**figures, **_summary(scenario, load, elapsed, cpu, load_cpu)}


async def _slow_reader_ends(scenario: Scenario, cluster: Cluster, load: Load,
                            progress: Progress) -> dict[str, Any]:
    load.send("resume")
    deadline = time.monotonic() + DRAIN_TIMEOUT
    final = scenario.updates - 1
    slow: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        await load.ask("result")
        slow = [s for r in load.results() for s in r.get("slow", [])]
        progress("slow reader", max((s["seq"] for s in slow), default=0) / max(final, 1))
        if all(s["seq"] == final for s in slow):
            break
        await asyncio.sleep(0.5)
    return {"slow_reader_final": all(s["seq"] == final for s in slow) and bool(slow),
            "slow_reader_received": sum(s["received"] for s in slow),
            "slow_reader_connected": all(s["connected"] for s in slow)}


def _summary(scenario: Scenario, load: Load, elapsed: float, cpu: float,
             load_cpu: float) -> dict[str, Any]:
    results = load.results()
    received = sum(int(r.get("received", 0)) for r in results)
    slow_received = sum(s["received"] for r in results for s in r.get("slow", []))
    delivered = received - slow_received
    commits = sum(int(r.get("commits", 0)) for r in results)
    p50, p99 = percentiles(results, 0.5, 0.99)
    return {
        "commits": commits,
        "deliveries": delivered,
        "expected_deliveries": scenario.expected_deliveries,
        "complete": delivered == scenario.expected_deliveries
        and commits == scenario.rooms * scenario.writers * scenario.updates,
        "errors": sum(int(r.get("errors", 0)) for r in results),
        "error_codes": _merged([r.get("errorCodes", {}) for r in results]),
        "seconds": elapsed,
        "commits_per_s": commits / elapsed,
        "deliveries_per_s": delivered / elapsed,
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
        "latency_ms_max": max(float(r.get("maxLatency", 0)) for r in results),
        "server_cpu_us_per_delivery": cpu / max(received, 1) * 1e6,
        "server_cpu_percent": cpu / elapsed * 100,
        "load_cpu_percent": load_cpu / elapsed * 100,
    }


def _merged(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for one in counts:
        for key, value in one.items():
            out[key] = out.get(key, 0) + int(value)
    return out
