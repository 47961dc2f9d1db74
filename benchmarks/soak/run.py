"""The coordinator: start the cluster and the client processes, run the load with faults
and probes, then settle, check and report.

Settling: faults are undone, clients stop and flush, one fresh update goes into every room,
a fresh join of every room is timed on every node (each must answer within a second), and
each member must then hold exactly the stored state, that update included."""

import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.soak.cluster import KEY_PREFIX, Cluster, ping_env
from benchmarks.soak.crew import Crew, WorkerFailed
from benchmarks.soak.faults import FaultSchedule
from benchmarks.soak.invariants import Evidence, verdicts
from benchmarks.soak.plan import Plan, parse_plan
from benchmarks.soak.probe import probe_joins, probe_update
from benchmarks.soak.progress import ProgressBar
from benchmarks.soak.silent import KINDS
from benchmarks.soak.worker import WorkerSpec
from kpk_io.change import JSON, State
from kpk_io.store.redis import RedisStateStore

FINAL_JOIN_SECONDS = 1.0
RUN_JOIN_SECONDS = 3.0  # during the run, under load: still far beyond a healthy join
DEFAULT_PINGS = (25.0, 20.0)  # python-engineio's, when the server has no setting for them


class Soak:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rooms = [f"soak/room-{i}" for i in range(plan.rooms)]
        self._env = ping_env(plan.ping_interval, plan.ping_timeout)
        self.cluster = Cluster(plan.nodes, plan.appendfsync, self._env)
        self.faults = FaultSchedule(self.cluster, plan.faults, plan.fault_every,
                                    random.Random(plan.seed))
        self._dir = Path(tempfile.mkdtemp(prefix="kpk-soak-"))
        self.crew = Crew(self._specs())
        self.wedges: dict[tuple[int, str], dict[str, JSON]] = {}
        self.probe_rounds = 0
        self.memory: list[dict[str, float]] = []

    def _specs(self) -> list[WorkerSpec]:
        plan = self.plan
        rng = random.Random(plan.seed)
        clients: list[list[tuple[str, int, list[str]]]] = [[] for _ in range(plan.workers)]
        for c in range(plan.clients):
            first = self.rooms[c % plan.rooms]
            others = rng.sample([r for r in self.rooms if r != first], plan.rooms_per_client - 1)
            clients[c % plan.workers].append((f"c{c}", c % plan.nodes, [first, *others]))
        silent: list[list[tuple[str, str, int]]] = [[] for _ in range(plan.workers)]
        for s in range(plan.silent):
            silent[s % plan.workers].append((f"silent{s}", KINDS[s % 2], s % plan.nodes))
        interval, timeout = self.pings
        return [WorkerSpec(i, self.cluster.urls, self.rooms, clients[i], silent[i],
                           plan.op_interval, plan.value_bytes, interval + timeout + 10,
                           plan.seed + i, str(self._dir / "targets.json"),
                           str(self._dir / f"worker-{i}.json"))
                for i in range(plan.workers)]

    @property
    def pings(self) -> tuple[float, float]:
        if self._env:
            return self.plan.ping_interval, self.plan.ping_timeout
        return DEFAULT_PINGS

    async def run(self) -> dict[str, JSON]:
        started = time.monotonic()
        try:
            await asyncio.to_thread(self.cluster.start)
            self.crew.start()
            await self.crew.all_say("ready", 180)
            await asyncio.sleep(2)
            baseline = self.cluster.node_rss()
            await self._load()
            evidence = await self._settle(baseline)
            return self._summary(started, evidence, None)
        except (WorkerFailed, TimeoutError, RuntimeError, OSError) as exc:
            return self._summary(started, None, f"{type(exc).__name__}: {exc}")
        finally:
            self.crew.close()
            self.cluster.close(keep_logs=self.plan.keep_logs)
            shutil.rmtree(self._dir, ignore_errors=True)

    async def _load(self) -> None:
        until = time.monotonic() + self.plan.duration
        bar = ProgressBar(self.plan.duration)
        tasks = [asyncio.create_task(self.faults.run(until)),
                 asyncio.create_task(self._watch(until))]
        self._peak = self.cluster.node_rss()
        while (left := until - time.monotonic()) > 0:
            self.crew.drain()
            self._sample_memory()
            total = self.crew.total()
            bar.draw(self.plan.duration - left, {
                "acked": total["acked"], "faults": sum(self.faults.counts.values()),
                "reconnects": total["connections"] - self.plan.clients,
                "wedged": len(self.wedges)})
            await asyncio.sleep(0.5)
        bar.say("")
        await asyncio.gather(*tasks)

    def _sample_memory(self) -> None:
        if self.faults.active:
            return  # a node may be down
        for index, rss in enumerate(self.cluster.node_rss()):
            self._peak[index] = max(self._peak[index], rss)

    async def _watch(self, until: float) -> None:
        """Fresh joins of every room on every node, now and then, while no fault is on: a
        join that hangs twice in a row is a wedged room (a later node kill would hide it)."""
        while time.monotonic() + self.plan.probe_every < until:
            await asyncio.sleep(self.plan.probe_every)
            if not self.faults.quiet():
                continue
            mark = self.faults.injected
            self.probe_rounds += 1
            first = await probe_joins(self.cluster.urls, self.rooms, RUN_JOIN_SECONDS)
            hung = {(r.node, r.room) for r in first if r.seconds is None}
            if not hung:
                continue
            again = await probe_joins(self.cluster.urls, self.rooms, RUN_JOIN_SECONDS, hung)
            if self.faults.injected != mark or not self.faults.quiet():
                continue
            for result in again:
                if result.seconds is None and (result.node, result.room) not in self.wedges:
                    self.wedges[(result.node, result.room)] = {
                        "node": result.node, "room": result.room, "error": result.error,
                        "at": "during the run"}

    async def _settle(self, baseline: list[float]) -> Evidence:
        _say("settling: faults undone, members stop and flush")
        await asyncio.to_thread(self.cluster.heal)
        self.crew.signals.stop.set()
        await self.crew.all_say("flushed", 120)
        _say("probing: a fresh update in every room, a fresh join of every room on every node")
        probes = []
        for index, room in enumerate(self.rooms):
            url = self.cluster.urls[index % len(self.cluster.urls)]
            rev, commit = await probe_update(url, room, f"probe-{index}-{time.time_ns()}")
            probes.append((room, rev, commit))
        joins = await self._final_joins()  # after the update: delivering it may wedge a room
        stored = await self._stored()
        targets = {room: {"rev": rev, "state": state} for room, (rev, state) in stored.items()}
        _write_json(self._dir / "targets.json", targets)
        self.crew.signals.check.set()
        _say("checking: every member must hold the stored state")
        await self.crew.all_say("done", 180)
        self._memory(baseline, self.cluster.node_rss())
        self.crew.signals.release.set()
        results = [_read_json(self._dir / f"worker-{i}.json") for i in range(self.plan.workers)]
        return Evidence(results, stored, probes, joins, list(self.wedges.values()),
                        self.memory, self.plan.appendfsync == "always")

    async def _final_joins(self) -> list[dict[str, JSON]]:
        """A join of every room on every node must answer within a second; one that does
        not gets a second chance on a fresh connection before it counts."""
        first = await probe_joins(self.cluster.urls, self.rooms, FINAL_JOIN_SECONDS)
        self.final_join_max = max((r.seconds or 0.0) for r in first)
        slow = {(r.node, r.room) for r in first
                if r.seconds is None or r.seconds > FINAL_JOIN_SECONDS or r.error}
        again = await probe_joins(self.cluster.urls, self.rooms, FINAL_JOIN_SECONDS, slow)
        return [{"node": r.node, "room": r.room, "error": r.error or "slow",
                 "seconds": r.seconds, "at": "end"} for r in again
                if r.seconds is None or r.seconds > FINAL_JOIN_SECONDS or r.error]

    async def _stored(self) -> dict[str, tuple[int, State]]:
        store = RedisStateStore(self.cluster.redis.url, prefix=KEY_PREFIX)
        try:
            snapshots = {room: await store.snapshot(room) for room in self.rooms}
        finally:
            await store.close()
        return {room: (s.rev, s.state) for room, s in snapshots.items()}

    def _memory(self, baseline: list[float], end: list[float]) -> None:
        slack = self.plan.rss_slack_mb
        self.memory = [{"node": i, "baseline_mb": round(b, 1), "peak_mb": round(p, 1),
                        "end_mb": round(e, 1), "bound_mb": round(b + slack, 1)}
                       for i, (b, p, e) in enumerate(zip(baseline, self._peak, end, strict=True))]

    def _summary(self, started: float, evidence: Evidence | None,
                 error: str | None) -> dict[str, JSON]:
        found = verdicts(evidence) if evidence is not None else {}
        counts: Counter[str] = Counter()
        for result in evidence.results if evidence is not None else []:
            counts.update(result["journal"]["counts"])
        interval, timeout = self.pings
        stored = evidence.stored if evidence is not None else {}
        return {
            "ok": error is None and all(v.ok for v in found.values()),
            "error": error,
            "plan": self.plan.to_json(),
            "pings": {"interval": interval, "timeout": timeout, "set": bool(self._env)},
            "elapsed_seconds": round(time.monotonic() - started, 1),
            "updates": {"acked": counts["acked"], "duplicate_acks": counts["duplicate acks"],
                        "deliveries": counts["deliveries"],
                        # Server faults answered to members: not an invariant, but a defect.
                        "internal_answers": sum(n for k, n in counts.items()
                                                if k.endswith(" internal")),
                        "counts": dict(sorted(counts.items()))},
            "faults": {"total": sum(self.faults.counts.values()),
                       "by_kind": dict(self.faults.counts), "log": self.faults.log},
            "probes": {"rounds_during_run": self.probe_rounds,
                       "final_join_max_seconds": round(getattr(self, "final_join_max", 0), 3)},
            "rooms": {room: rev for room, (rev, _) in stored.items()},
            "memory": self.memory,
            "node_logs": [str(n.log_path) for n in self.cluster.nodes if self.plan.keep_logs],
            "invariants": {name: verdict.to_json() for name, verdict in found.items()},
        }


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _write_json(path: Path, value: JSON) -> None:
    path.write_text(json.dumps(value))


def _report(summary: dict[str, Any]) -> None:
    for name, verdict in summary["invariants"].items():
        mark = "ok  " if verdict["ok"] else "FAIL"
        print(f"{mark} {name}: checked {verdict['checked']}, "
              f"violations {verdict['violation_count']}", file=sys.stderr)
    if summary["error"]:
        print(f"FAIL the run did not finish: {summary['error']}", file=sys.stderr)
    print("soak " + ("passed" if summary["ok"] else "FAILED"), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    plan = parse_plan(argv)
    summary = asyncio.run(Soak(plan).run())
    text = json.dumps(summary, indent=2)
    if plan.json_path:
        Path(plan.json_path).write_text(text + "\n")
    print(text)
    _report(summary)
    sys.exit(0 if summary["ok"] else 1)
