"""Prometheus metrics of one process, in a registry of its own (no globals), so that several
apps in one process (the tests) never clash. docs/operations.md lists every metric."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric

from kpk_io.change import JSON
from kpk_io.metrics_lean import LeanCounter, LeanHistogram

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)
# A connection whose outbound Engine.IO queue holds more packets than this is not keeping up.
SLOW_CONSUMER_PACKETS = 100


class Outcome:
    """Where a request's outcome is recorded: `ok`, or the error code it was refused with."""

    def __init__(self) -> None:
        self.code = "internal"  # what stays if the request raised past its handler

    def of_ack(self, ack: dict[str, JSON]) -> None:
        self.code = outcome_of(ack)


def outcome_of(ack: dict[str, JSON]) -> str:
    """`ok`, or the error code the ack refuses with."""
    return "ok" if ack.get("ok") else str(ack.get("error", "internal"))


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # process_* (CPU, memory, open files), python_info and python_gc_*.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.connections = Gauge(
            "kpk_io_connections", "Open Socket.IO connections", registry=registry
        )
        self.rooms = Gauge(
            "kpk_io_rooms", "Rooms with members on this process", registry=registry
        )
        self.store_up = Gauge(
            "kpk_io_store_up",
            "1 while the store answers (checked every few seconds, by /readyz and by requests)",
            registry=registry,
        )
        self.requests = LeanCounter(
            "kpk_io_requests",
            "Socket.IO events and HTTP API requests answered, by event and outcome (ok or the "
            "error code)",
            ["event", "outcome"],
            registry=registry,
        )
        self.request_seconds = LeanHistogram(
            "kpk_io_request_seconds",
            "Time from a request's arrival to its answer, by event and outcome",
            _LATENCY_BUCKETS,
            ["event", "outcome"],
            registry=registry,
        )
        self.updates_committed = LeanCounter(
            "kpk_io_updates_committed", "Updates committed by this process", registry=registry
        )
        self.updates_refused = Counter(
            "kpk_io_updates_refused",
            "Updates refused, by error code",
            ["code"],
            registry=registry,
        )
        self.deliveries = LeanCounter(
            "kpk_io_broadcast_deliveries",
            "Update events sent to members of this process",
            registry=registry,
        )
        self.commit_seconds = LeanHistogram(
            "kpk_io_commit_seconds",
            "Time to commit one update in the store",
            _LATENCY_BUCKETS,
            registry=registry,
        )
        self._gaps_filled = _CounterReading(
            "kpk_io_feed_gaps_filled",
            "Times this process caught a room up from the store's log (a rev missing from the "
            "feed, or the feed reconnected)",
        )
        registry.register(self._gaps_filled)
        self._relay_dropped = _CounterReading(
            "kpk_io_relay_dropped",
            "Presence events and signals this process never relayed to other nodes: its "
            "relay queue was full, a signal waited longer than 2 s, or Redis did not take it",
        )
        registry.register(self._relay_dropped)
        self.presence_members = Gauge(
            "kpk_io_presence_members",
            "Members (a connection in a room) this process holds, at scrape time",
            registry=registry,
        )
        self.slow_consumers = Gauge(
            "kpk_io_slow_consumers",
            f"Connections whose outbound queue holds more than {SLOW_CONSUMER_PACKETS} "
            "packets, at scrape time",
            registry=registry,
        )

    def track_rooms(self, count: Callable[[], int]) -> None:
        self.rooms.set_function(count)

    def track_gaps_filled(self, count: Callable[[], int]) -> None:
        self._gaps_filled.read = count

    def track_relay_dropped(self, count: Callable[[], int]) -> None:
        self._relay_dropped.read = count

    def track_presence_members(self, count: Callable[[], int]) -> None:
        self.presence_members.set_function(count)

    def track_slow_consumers(self, count: Callable[[], int]) -> None:
        self.slow_consumers.set_function(count)

    @contextmanager
    def request(self, event: str) -> Iterator[Outcome]:
        """Count and time the request answered inside the block, by the outcome set on the
        yielded Outcome."""
        outcome = Outcome()
        started = time.perf_counter()
        try:
            yield outcome
        finally:
            self.answered(event, outcome.code, time.perf_counter() - started)

    def answered(self, event: str, code: str, seconds: float) -> None:
        """Count a request answered with `code` (`ok` or an error code) after `seconds`."""
        self.requests.inc(1, event, code)
        self.request_seconds.observe(seconds, event, code)

    def count_update(self, ack: dict[str, JSON]) -> None:
        if ack.get("ok"):
            if not ack.get("duplicate"):
                self.updates_committed.inc()
        else:
            self.updates_refused.labels(code=str(ack.get("error"))).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CounterReading:
    """A counter whose value is read, at scrape time, from where it is counted (the hub)."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name = name
        self._documentation = documentation
        self.read: Callable[[], int] = lambda: 0

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self.read())
