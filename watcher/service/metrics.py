"""Every figure the engine exports for `/metrics`, kept and rendered by prometheus-client.

Each `Metrics` owns its own `CollectorRegistry` (never the library's global one), so tests and
several apps in one process keep separate counts. Figures only known at scrape time (the outbox,
a channel's quota) are custom collectors that read them when `/metrics` is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

# The exposition this project always served: no `_created` series beside each counter, so
# dashboards and stored series stay as they were.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# A gauge row: its label values (in the gauge's label order) and its value.
GaugeRows = Mapping[tuple[str, ...], float]


SeriesMetric = TypeVar("SeriesMetric", bound=MetricWrapperBase)


class _Series(Generic[SeriesMetric]):
    """A labelled metric of `registry`, read back by its samples."""

    def __init__(self, name: str, registry: CollectorRegistry, metric: SeriesMetric) -> None:
        self.name = name
        self._registry = registry
        self._metric = metric
        self._children: dict[tuple[tuple[str, str], ...], SeriesMetric] = {}

    def _labelled(self, labels: dict[str, str]) -> SeriesMetric:
        """The series of `labels` (the metric itself without any), kept once made:
        prometheus_client validates and locks on every `labels` call."""
        if not labels:
            return self._metric
        key = tuple(labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(**labels)
        return child

    def _sample(self, suffix: str, labels: dict[str, str]) -> float:
        return self._registry.get_sample_value(self.name + suffix, labels) or 0.0


class CounterSeries(_Series[prometheus_client.Counter]):
    """A labelled counter: `inc(store="x")` counts, `get(store="x")` reads back."""

    def __init__(
        self, name: str, help: str, labels: tuple[str, ...], registry: CollectorRegistry
    ) -> None:
        counter = prometheus_client.Counter(name, help, labels, registry=registry)
        super().__init__(name, registry, counter)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._labelled(labels).inc(amount)

    def get(self, **labels: str) -> float:
        return self._sample("", labels)


class HistogramSeries(_Series[prometheus_client.Histogram]):
    """A labelled latency histogram with the buckets the dashboards were built on."""

    def __init__(
        self, name: str, help: str, labels: tuple[str, ...], registry: CollectorRegistry
    ) -> None:
        histogram = prometheus_client.Histogram(
            name, help, labels, registry=registry, buckets=LATENCY_BUCKETS
        )
        super().__init__(name, registry, histogram)

    def observe(self, value: float, **labels: str) -> None:
        self._labelled(labels).observe(value)

    def count(self, **labels: str) -> float:
        return self._sample("_count", labels)

    def total(self, **labels: str) -> float:
        return self._sample("_sum", labels)


class ReadGauge(Collector):
    """A gauge whose rows are read when a scrape asks (`read` returns them)."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.help = help
        self.labels = labels
        self.read: Callable[[], GaugeRows] = dict

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        for values, value in sorted(self.read().items()):
            family.add_metric(list(values), value)
        yield family

    def describe(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(self.name, self.help, labels=self.labels)


@dataclass
class Metrics:
    """Every figure the engine exports. One instance per app, passed where it is counted."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _quota_rows: dict[tuple[str, ...], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        registry = self.registry
        self.checks = CounterSeries(
            "restock_checks_total",
            "Product checks by store and state",
            ("state", "store"),
            registry,
        )
        self.blocks = CounterSeries(
            "restock_blocks_total", "Checks refused by a shop, by store", ("store",), registry
        )
        self.events = CounterSeries(
            "restock_events_total", "Events fired, by kind", ("kind",), registry
        )
        self.flaps = CounterSeries(
            "restock_flaps_suppressed_total",
            "Buyable spells that ended before confirmation",
            (),
            registry,
        )
        self.deliveries = CounterSeries(
            "restock_deliveries_total",
            "Delivery attempts by channel and result",
            ("channel", "result"),
            registry,
        )
        self.parse_failures = CounterSeries(
            "restock_parse_failures_total",
            "Pages whose parse failed (an error, a parse worker that died or timed out), by store",
            ("store",),
            registry,
        )
        self.fetch_seconds = HistogramSeries(
            "restock_fetch_seconds", "Fetch latency by store", ("store",), registry
        )
        self.handoff_seconds = HistogramSeries(
            "restock_handoff_seconds",
            "Time from an event to its hand-off to a notifier",
            ("channel",),
            registry,
        )
        self.outbox = ReadGauge(
            "restock_outbox_deliveries", "Outbox deliveries by status", ("status",)
        )
        self.message_quota = ReadGauge(
            "restock_message_quota",
            "A channel's monthly message quota: limit, used and left (no limit: no limit row)",
            ("channel", "figure"),
        )
        self.message_quota.read = lambda: dict(self._quota_rows)
        registry.register(self.outbox)
        registry.register(self.message_quota)

    def set_message_quota(self, channel: str, limit: int | None, used: int) -> None:
        """The latest figures of `channel`'s monthly quota (LINE's), as the channel knows them."""
        figures = {"used": float(used)}
        if limit is not None:
            figures |= {"limit": float(limit), "left": float(max(0, limit - used))}
        for key in [k for k in self._quota_rows if k[0] == channel]:
            del self._quota_rows[key]
        for kind, value in figures.items():
            self._quota_rows[(channel, kind)] = value

    def set_outbox(self, depth: Mapping[str, int]) -> None:
        """The outbox's deliveries per status, as the database counted them for this scrape."""
        rows: GaugeRows = {(status,): float(count) for status, count in depth.items()}
        self.outbox.read = lambda: rows

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of every figure."""
        return generate_latest(self.registry).decode("utf-8")
