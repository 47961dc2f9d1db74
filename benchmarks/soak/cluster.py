"""The processes a soak run starts and hurts: one redis-server and K `kpk-io serve` nodes,
all on free loopback ports, all killed when the run ends."""

import dataclasses
import subprocess
from pathlib import Path

import redis

from kpk_io.config import Settings
from tests.processes import REDIS_SERVER, KpkServer, RedisServer, port_open, wait_until

KEY_PREFIX = "soak:"


class Redis(RedisServer):
    """The tests' redis-server, with the soak's `appendfsync`, and started again from its
    AOF (same port and directory) only once it has loaded it."""

    def __init__(self, appendfsync: str) -> None:
        super().__init__()
        self.appendfsync = appendfsync
        self.stopped = False

    def start(self) -> None:
        self._process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.stopped = False
        wait_until(lambda: port_open(self.port), timeout=30, what=f"redis on {self.port}")
        wait_until(self._loaded, timeout=60, what="redis to load its AOF")

    def _loaded(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.exceptions.BusyLoadingError:
            return False
        finally:
            client.close()

    def pause(self) -> None:
        super().pause()
        self.stopped = True

    def resume(self) -> None:
        super().resume()
        self.stopped = False

    def kill(self) -> None:
        """kill -9: whatever Redis had not written to its AOF is gone."""
        super().kill()
        self.stopped = False


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ping_env(interval: float, timeout: float) -> dict[str, str]:
    """KPK_IO_PING_INTERVAL / KPK_IO_PING_TIMEOUT, when this kpk-io has those settings:
    short pings make a silent client time out (and hit its room) many times per run."""
    names = {field.name for field in dataclasses.fields(Settings)}
    if not {"ping_interval", "ping_timeout"} <= names:
        return {}
    return {"KPK_IO_PING_INTERVAL": f"{interval:g}", "KPK_IO_PING_TIMEOUT": f"{timeout:g}"}


class Cluster:
    def __init__(self, nodes: int, appendfsync: str, env: dict[str, str]) -> None:
        self.redis = Redis(appendfsync)
        flags = ("--redis-url", self.redis.url, "--key-prefix", KEY_PREFIX,
                 "--log-level", "warning")
        self.nodes = [KpkServer(*flags, env=env) for _ in range(nodes)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> None:
        self.redis.start()
        for node in self.nodes:
            node.start()

    def kill_node(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, index: int) -> None:
        self.nodes[index].start()

    def heal(self) -> None:
        """Undo any fault still in effect: Redis running and every node up."""
        if self.redis.stopped:
            self.redis.resume()
        if not port_open(self.redis.port):
            self.redis.start()
        for node in self.nodes:
            if node.returncode is not None or not port_open(node.port):
                node.kill()
                node.start()

    def node_rss(self) -> list[float]:
        return [rss_mb(node.pid) for node in self.nodes]

    def close(self, keep_logs: bool = False) -> None:
        for node in self.nodes:
            node.kill()
            if not keep_logs:
                node.log_path.unlink(missing_ok=True)
        self.redis.close()
