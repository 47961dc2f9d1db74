"""Counters and histograms for the hot paths (a request answered, an update committed, an
event delivered): plain numbers added up in place, turned into Prometheus samples only when
/metrics is scraped.

prometheus_client's own Counter and Histogram take a threading lock for every increment
(each histogram bucket its own value), which a single-threaded asyncio service never needs:
five such operations per update were a few percent of the server's CPU. These export the
same names, types and labels (without the `_created` samples, which nothing here reads).
"""

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class LeanCounter:
    """A counter, with or without labels; `inc(amount, *label_values)`."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 registry: CollectorRegistry) -> None:
        self._name, self._documentation, self._labelnames = name, documentation, labelnames
        self._values: dict[tuple[str, ...], float] = {} if labelnames else {(): 0.0}
        registry.register(self)

    def inc(self, amount: float = 1, *labels: str) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation,
                                     labels=list(self._labelnames))
        for labels, value in list(self._values.items()):
            family.add_metric(list(labels), value)
        yield family

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self._name, self._documentation,
                                    labels=list(self._labelnames))]


class LeanHistogram:
    """A histogram with fixed buckets, with or without labels; `observe(value, *labels)`."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 labelnames: Sequence[str] = (), *, registry: CollectorRegistry) -> None:
        self._name, self._documentation, self._labelnames = name, documentation, labelnames
        self._bounds = [float(bound) for bound in buckets]  # +Inf is the last count
        self._series: dict[tuple[str, ...], list[float]] = {}  # counts per bucket, then sum
        if not labelnames:
            self._series[()] = [0.0] * (len(self._bounds) + 2)
        registry.register(self)

    def observe(self, value: float, *labels: str) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self._bounds) + 2)
        series[bisect_left(self._bounds, value)] += 1  # le: a value on a bound counts in it
        series[-1] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation,
                                       labels=list(self._labelnames))
        for labels, series in list(self._series.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip([*self._bounds, float("inf")], series[:-1], strict=True):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            family.add_metric(list(labels), buckets, series[-1])
        yield family

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation,
                                      labels=list(self._labelnames))]


def _le(bound: float) -> str:
    """A bucket's `le` as prometheus_client's own histograms write it."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]
