"""Counters and a latency histogram, rendered in the Prometheus text format for `/metrics`.

Small on purpose: the engine counts a few things, and a scrape reads them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


def _format_labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Counter:
    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = _labels(**labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(_labels(**labels), 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_format_labels(labels)} {value:g}"


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[Labels, list[float]] = field(default_factory=dict)  # bucket counts + sum + count

    def observe(self, value: float, **labels: str) -> None:
        key = _labels(**labels)
        row = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
        index = bisect.bisect_left(self.buckets, value)
        for i in range(index, len(self.buckets)):
            row[i] += 1
        row[-2] += value
        row[-1] += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, row in sorted(self.series.items()):
            for bound, count in zip(self.buckets, row, strict=False):
                le = f'le="{bound:g}"'
                yield f"{self.name}_bucket{_format_labels(labels, le)} {count:g}"
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_format_labels(labels, inf)} {row[-1]:g}"
            yield f"{self.name}_sum{_format_labels(labels)} {row[-2]:g}"
            yield f"{self.name}_count{_format_labels(labels)} {row[-1]:g}"


@dataclass
class Gauge:
    name: str
    help: str
    read: Callable[[], dict[Labels, float]] = dict

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in sorted(self.read().items()):
            yield f"{self.name}{_format_labels(labels)} {value:g}"


@dataclass
class Metrics:
    """Every figure the engine exports. One instance per process, passed where it is counted."""

    checks: Counter = field(
        default_factory=lambda: Counter("restock_checks_total", "Product checks by store and state")
    )
    blocks: Counter = field(
        default_factory=lambda: Counter(
            "restock_blocks_total", "Checks refused by a shop, by store"
        )
    )
    events: Counter = field(
        default_factory=lambda: Counter("restock_events_total", "Events fired, by kind")
    )
    flaps: Counter = field(
        default_factory=lambda: Counter(
            "restock_flaps_suppressed_total", "Buyable spells that ended before confirmation"
        )
    )
    deliveries: Counter = field(
        default_factory=lambda: Counter(
            "restock_deliveries_total", "Delivery attempts by channel and result"
        )
    )
    parse_failures: Counter = field(
        default_factory=lambda: Counter(
            "restock_parse_failures_total",
            "Pages whose parse failed (an error, a parse worker that died or timed out), by store",
        )
    )
    fetch_seconds: Histogram = field(
        default_factory=lambda: Histogram("restock_fetch_seconds", "Fetch latency by store")
    )
    handoff_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "restock_handoff_seconds", "Time from an event to its hand-off to a notifier"
        )
    )
    outbox: Gauge = field(
        default_factory=lambda: Gauge("restock_outbox_deliveries", "Outbox deliveries by status")
    )
    message_quota: Gauge = field(
        default_factory=lambda: Gauge(
            "restock_message_quota",
            "A channel's monthly message quota: limit, used and left (no limit: no limit row)",
        )
    )
    _quota_figures: dict[Labels, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.message_quota.read = lambda: dict(self._quota_figures)

    def set_message_quota(self, channel: str, limit: int | None, used: int) -> None:
        """The latest figures of `channel`'s monthly quota (LINE's), as the channel knows them."""
        figures = {"used": float(used)}
        if limit is not None:
            figures |= {"limit": float(limit), "left": float(max(0, limit - used))}
        for key in [k for k in self._quota_figures if ("channel", channel) in k]:
            del self._quota_figures[key]
        for kind, value in figures.items():
            self._quota_figures[_labels(channel=channel, figure=kind)] = value

    def render(self) -> str:
        parts = (
            self.checks,
            self.blocks,
            self.events,
            self.flaps,
            self.deliveries,
            self.parse_failures,
            self.fetch_seconds,
            self.handoff_seconds,
            self.outbox,
            self.message_quota,
        )
        return "\n".join(line for part in parts for line in part.render()) + "\n"
