"""/metrics: process and Python collectors, the store gauge, requests by event and outcome,
feed gaps, slow consumers; and the Grafana dashboard asks only for metrics that exist."""

import asyncio
import json
import re
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from kpk_io.app import METRICS, create_app
from kpk_io.config import Settings
from kpk_io.metrics import SLOW_CONSUMER_PACKETS
from kpk_io.metrics_lean import LeanCounter, LeanHistogram
from tests.conftest import StartKpk
from tests.polling import eventually_async
from tests.processes import KpkServer, RedisServer
from tests.sockets import members

ROOM = "kpk/notes/acme/q1/metrics"
DASHBOARD = Path(__file__).parent.parent / "config" / "grafana-kpk-io.json"


async def scrape(node: KpkServer) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels`, if there is one."""
    for line in text.splitlines():
        metric, _, value = line.rpartition(" ")
        base, _, rest = metric.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if base == name and labels.items() <= found.items():
            return float(value)
    return None


def declared(text: str) -> set[str]:
    """Every metric family in an exposition, and each sample name it has."""
    names = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    names |= {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    return names


async def test_process_and_python_collectors_and_the_store_gauge(
    start_kpk: StartKpk, own_redis: RedisServer
) -> None:
    node = start_kpk("--redis-url", own_redis.url)
    text = await scrape(node)
    assert (sample(text, "process_resident_memory_bytes") or 0) > 0
    assert sample(text, "process_cpu_seconds_total") is not None
    assert sample(text, "python_info") == 1
    assert sample(text, "python_gc_collections_total", generation="0") is not None
    assert sample(text, "kpk_io_store_up") == 1
    own_redis.stop()
    # The periodic check notices without anyone asking /readyz.
    await eventually_async(lambda: _value(node, "kpk_io_store_up"), 0.0, timeout=20)
    own_redis.start()
    await eventually_async(lambda: _value(node, "kpk_io_store_up"), 1.0, timeout=20)


async def _value(node: KpkServer, name: str, **labels: str) -> float | None:
    return sample(await scrape(node), name, **labels)


async def test_requests_are_counted_and_timed_by_event_and_outcome(
    start_kpk: StartKpk,
) -> None:
    node = start_kpk(env={"KPK_IO_API_KEY": "k"})
    async with members(node.url) as [member]:
        assert (await member.update(ROOM, set={"x": 1}))["error"] == "not_joined"
        await member.join(ROOM)
        await member.update(ROOM, set={"x": 1})
        await member.call("sync", {"room": ROOM, "since": 0})
        await member.call("leave", {"room": ROOM})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{node.url}/api/rooms/x", headers={"Authorization": "Bearer no"}):
            pass
        async with http.get(f"{node.url}/api/rooms/x", headers={"Authorization": "Bearer k"}):
            pass
    text = await scrape(node)
    counts = {
        ("update", "not_joined"): 1, ("update", "ok"): 1, ("join", "ok"): 1,
        ("sync", "ok"): 1, ("leave", "ok"): 1, ("api_get", "unauthorized"): 1,
        ("api_get", "ok"): 1,
    }
    for (event, outcome), count in counts.items():
        assert sample(text, "kpk_io_requests_total", event=event, outcome=outcome) == count
        timed = sample(text, "kpk_io_request_seconds_count", event=event, outcome=outcome)
        assert timed == count, (event, outcome)


async def test_a_feed_gap_filled_is_counted(start_kpk: StartKpk, own_redis: RedisServer) -> None:
    node = start_kpk("--redis-url", own_redis.url)
    async with members(node.url) as [member]:
        await member.join(ROOM)
        assert await _value(node, "kpk_io_feed_gaps_filled_total") == 0
        own_redis.stop()  # the feed drops; when it is back, the hub catches the room up
        own_redis.start()
        await eventually_async(lambda: _caught_up(node), True, timeout=30)


async def _caught_up(node: KpkServer) -> bool:
    return (await _value(node, "kpk_io_feed_gaps_filled_total") or 0) >= 1


async def test_a_member_that_stops_reading_is_a_slow_consumer(start_kpk: StartKpk) -> None:
    # The API writes flat out here: no rate limit.
    node = start_kpk(env={"KPK_IO_API_KEY": "k", "KPK_IO_RATE_LIMIT": "0"})
    async with aiohttp.ClientSession() as http:
        await _polling_member(http, node.url)
        assert await _value(node, "kpk_io_slow_consumers") == 0
        auth = {"Authorization": "Bearer k"}
        url = f"{node.url}/api/rooms/{ROOM.replace('/', '%2F')}"
        for n in range(SLOW_CONSUMER_PACKETS + 5):
            async with http.patch(url, json={"set": {"n": n}}, headers=auth) as response:
                assert response.status == 200
        # It never polls, so every update waits in its queue.
        await eventually_async(lambda: _value(node, "kpk_io_slow_consumers"), 1.0)


async def _polling_member(http: aiohttp.ClientSession, url: str) -> None:
    """Join ROOM over HTTP long-polling by hand, then never poll again."""
    base = f"{url}/socket.io/?EIO=4&transport=polling"
    async with http.get(base) as response:
        sid = json.loads((await response.text())[1:])["sid"]
    session = f"{base}&sid={sid}"
    for packet in ("40", f'420["join",{{"room":"{ROOM}"}}]'):
        async with http.post(session, data=packet) as response:
            assert response.status == 200
    answers = ""
    while '430[{"ok":true' not in answers:
        async with http.get(session) as response:
            answers += await response.text()


def test_two_apps_in_one_process_have_their_own_metrics() -> None:
    first, second = create_app(Settings()), create_app(Settings())
    first[METRICS].connections.inc()
    assert first[METRICS].registry.get_sample_value("kpk_io_connections") == 1
    assert second[METRICS].registry.get_sample_value("kpk_io_connections") == 0
    assert second[METRICS].registry.get_sample_value("process_open_fds")


async def test_every_metric_of_the_dashboard_exists(start_kpk: StartKpk) -> None:
    node = start_kpk()
    async with members(node.url) as [member]:
        await member.join(ROOM)
        await member.update(ROOM, set={"x": 1})
        exposed = declared(await scrape(node))
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for query in queries
            for name in re.findall(r"\b((?:kpk_io|process|python)_\w+)", query)}
    assert len(used) >= 12
    assert not used - exposed, f"the dashboard asks for {sorted(used - exposed)}"


async def test_presence_members_and_signals_are_counted(start_kpk: StartKpk) -> None:
    node = start_kpk()
    async with members(node.url, node.url) as [first, second]:
        await first.join(ROOM)
        await second.join(ROOM)
        await second.join("another")
        assert (await first.call("signal", {"room": ROOM, "data": 1}))["ok"]
        text = await scrape(node)
        assert sample(text, "kpk_io_presence_members") == 3
        assert sample(text, "kpk_io_requests_total", event="signal", outcome="ok") == 1
        assert sample(text, "kpk_io_relay_dropped_total") == 0
    await eventually_async(lambda: _value(node, "kpk_io_presence_members"), 0.0)


def test_lean_counters_and_histograms_expose_what_prometheus_clients_own_do() -> None:
    """kpk_io/metrics_lean.py: the same samples as prometheus_client's Counter and Histogram
    for the same increments and observations (bar the `_created` timestamps)."""
    bounds = (0.001, 0.01, 0.1, 1.0)
    values = [0.0005, 0.001, 0.002, 0.01, 0.5, 1.0, 3.0, 0.0]
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("c", "doc", ["a", "b"], registry=theirs)
    histogram = Histogram("h", "doc", ["a"], buckets=bounds, registry=theirs)
    lean_counter = LeanCounter("c", "doc", ["a", "b"], registry=ours)
    lean_histogram = LeanHistogram("h", "doc", bounds, ["a"], registry=ours)
    for number, value in enumerate(values):
        label = "x" if number % 2 else "y"
        counter.labels(a=label, b="z").inc(number)
        lean_counter.inc(number, label, "z")
        histogram.labels(a=label).observe(value)
        lean_histogram.observe(value, label)

    def samples(registry: CollectorRegistry) -> list[str]:
        return sorted(line for line in generate_latest(registry).decode().splitlines()
                      if not line.startswith("#") and "_created" not in line)

    assert samples(ours) == samples(theirs)


async def test_the_young_generation_is_collected_rarely_under_load(start_kpk: StartKpk) -> None:
    """kpk-io raises the cyclic collector's thresholds (kpk_io/service.py GC_THRESHOLDS):
    with CPython's default (every 700 allocations), these requests alone ran 16 young
    collections."""
    node = start_kpk("--rate-limit", "0")
    async with members(node.url) as [member]:
        await member.join(ROOM)
        before = await _value(node, "python_gc_collections_total", generation="0")
        # In flight at once, as in a burst: objects that stay alive are what the collector
        # counts (those freed at once by their reference count are not).
        acks = await asyncio.gather(*(member.update(ROOM, set={"n": n, "list": [n]})
                                      for n in range(1000)))
        assert all(ack["ok"] for ack in acks)
        after = await _value(node, "python_gc_collections_total", generation="0")
    assert before is not None and after is not None
    assert after - before <= 3, f"{after - before} young collections for 1,000 updates"
