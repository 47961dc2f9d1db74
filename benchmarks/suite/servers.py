"""The servers under test: `kpk-io serve` nodes, or the Node.js baseline's nodes, on one
private redis-server, on loopback. Each reads its own CPU time and resident memory from
/proc."""

import os
import subprocess
import tempfile
from pathlib import Path

from tests.processes import KpkServer, RedisServer, free_port, port_open, wait_until

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


class NodeBaseline:
    """benchmarks/node/baseline.js as a child process."""

    def __init__(self, redis_url: str) -> None:
        self.port = free_port()
        self.redis_url = redis_url
        self.log_path = Path(tempfile.mkstemp(prefix="kpk-baseline-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                ["node", str(NODE_DIR / "baseline.js"), str(self.port), self.redis_url],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(lambda: port_open(self.port), timeout=20, what="the Node.js baseline")

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)


class Cluster:
    """`nodes` servers of one `kind` ("kpk-io" or "node") on a redis-server of their own."""

    def __init__(self, kind: str, nodes: int, env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.redis = RedisServer("--appendonly", "no")
        self.redis.start()
        flags = ("--redis-url", self.redis.url, "--log-level", "warning", "--rate-limit", "0",
                 "--join-rate", "0", "--signal-rate", "0")
        self.servers: list[KpkServer | NodeBaseline] = [
            KpkServer(*flags, env=env) if kind == "kpk-io" else NodeBaseline(self.redis.url)
            for _ in range(nodes)
        ]
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.close()
            raise

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    @property
    def pids(self) -> list[int]:
        return [server.pid for server in self.servers]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def rss_bytes(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)

    def close(self) -> None:
        for server in self.servers:
            server.kill()
        self.redis.close()
