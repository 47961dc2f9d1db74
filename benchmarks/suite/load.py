"""The load generator's processes (benchmarks/node/load.js, socket.io-client), driven over
their stdin and stdout, one JSON object a line."""

import asyncio
import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from benchmarks.suite.servers import NODE_DIR, cpu_seconds

_LOG_STEP = math.log(1.01)  # load.js's latency buckets: 1% wide, in µs


@dataclass
class Client:
    url: str
    room: str
    write: bool = False
    slow: bool = False


@dataclass
class LoadProcess:
    process: asyncio.subprocess.Process
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # newest line per event
    plan_path: str = ""
    said: dict[str, asyncio.Event] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, plan: dict[str, Any]) -> "LoadProcess":
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(plan, file)  # too long for a command line at 10,000 clients
        process = await asyncio.create_subprocess_exec(
            "node", str(NODE_DIR / "load.js"), file.name,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        load = cls(process, plan_path=file.name)
        load._reader = asyncio.create_task(load._read())
        return load

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            message = json.loads(line)
            self.last[message["event"]] = message
            self.said.setdefault(message["event"], asyncio.Event()).set()

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
        with contextlib.suppress(OSError):
            os.unlink(self.plan_path)


class Load:
    """Clients spread over `processes` load generator processes."""

    def __init__(self, loads: list[LoadProcess]) -> None:
        self.loads = loads

    @classmethod
    async def start(
        cls, clients: list[Client], processes: int, **plan: Any
    ) -> "Load":
        shares = [clients[i::processes] for i in range(processes)]
        loads = [await LoadProcess.start({"clients": [vars(c) for c in share], **plan})
                 for share in shares if share]
        return cls(loads)

    def send(self, command: str) -> None:
        for load in self.loads:
            load.send(command)

    async def ask(self, event: str, timeout: float = 30.0) -> None:
        """Send `report` and wait until every process has answered with a fresh `event`."""
        for load in self.loads:
            load.last.pop(event, None)
            load.said.setdefault(event, asyncio.Event()).clear()
        self.send("report")
        for load in self.loads:
            await asyncio.wait_for(load.said[event].wait(), timeout)

    def all_said(self, event: str) -> bool:
        return all(event in load.last or load.process.returncode is not None
                   for load in self.loads)

    def total(self, event: str, key: str) -> int:
        return sum(int(load.last.get(event, {}).get(key, 0)) for load in self.loads)

    def failures(self) -> list[str]:
        return [str(load.last["failed"]) for load in self.loads if "failed" in load.last]

    def cpu_seconds(self) -> float:
        return sum(load.cpu_seconds() for load in self.loads)

    def results(self) -> list[dict[str, Any]]:
        return [load.last.get("result", {}) for load in self.loads]

    async def close(self) -> None:
        for load in self.loads:
            await load.close()


def percentiles(results: list[dict[str, Any]], *quantiles: float) -> list[float]:
    """Latency percentiles in ms from the processes' merged histograms."""
    merged: dict[int, int] = {}
    for result in results:
        for bucket, count in result.get("histogram", {}).items():
            merged[int(bucket)] = merged.get(int(bucket), 0) + int(count)
    total = sum(merged.values())
    out = []
    for quantile in quantiles:
        seen, value = 0, 0.0
        for bucket in sorted(merged):
            seen += merged[bucket]
            value = math.expm1(bucket * _LOG_STEP) / 1000
            if seen >= quantile * total:
                break
        out.append(value if total else float("nan"))
    return out
