"""Prometheus metrics of one process, in a registry of its own (no globals)."""

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from kpk_io.change import JSON


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "kpk_io_connections", "Open Socket.IO connections", registry=self.registry
        )
        self.rooms = Gauge(
            "kpk_io_rooms", "Rooms with members on this process", registry=self.registry
        )
        self.updates_committed = Counter(
            "kpk_io_updates_committed", "Updates committed by this process", registry=self.registry
        )
        self.updates_refused = Counter(
            "kpk_io_updates_refused",
            "Updates refused, by error code",
            ["code"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "kpk_io_broadcast_deliveries",
            "Update events sent to members of this process",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "kpk_io_commit_seconds",
            "Time to commit one update in the store",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def track_rooms(self, count: Callable[[], int]) -> None:
        self.rooms.set_function(count)

    def count_update(self, ack: dict[str, JSON]) -> None:
        if ack.get("ok"):
            if not ack.get("duplicate"):
                self.updates_committed.inc()
        else:
            self.updates_refused.labels(code=str(ack.get("error"))).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
