"""Pure scheduling arithmetic: how often to poll, when a product is next due, how long to back off.

Every input is an argument (the time, the random source, the settings), so a decision is the same
on every worker and every test. Callers convert to the watchlist's timezone; functions taking
`now_local` expect an aware datetime in that zone (hot windows and restock hours are wall-clock).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

HOURS = 24
ADAPTIVE_MIN_FACTOR = 0.25
ADAPTIVE_MIN_RESTOCKS = 3
HISTOGRAM_VERSION = 1
PRIORITY_STEP = timedelta(seconds=15)
MAX_TIER = 31  # 2**30 subscribers and more; storage keeps the tier in a column of its own
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class HotWindow:
    """Poll at `interval` on `days` (0 = Monday) between `start` and `end` (wall-clock times).

    A window whose end is not after its start crosses midnight (22:00–02:00): the hours after
    midnight belong to the day it opened. `start == end` means a whole day from `start`.
    """

    days: frozenset[int]
    start: time
    end: time
    interval: timedelta

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError(f"hot window days must be weekdays 0..6, got {sorted(self.days)}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("hot window times are wall-clock times without a timezone")
        if self.interval <= _ZERO:
            raise ValueError("hot window interval must be positive")

    def contains(self, now_local: datetime) -> bool:
        clock = now_local.time()
        today = now_local.weekday()
        if self.start < self.end:
            return today in self.days and self.start <= clock < self.end
        opened_today = today in self.days and clock >= self.start
        opened_yesterday = (today - 1) % 7 in self.days and clock < self.end
        return opened_today or opened_yesterday


def effective_interval(
    base: timedelta,
    floor: timedelta,
    hot_windows: Iterable[HotWindow],
    now_local: datetime,
    adaptive_bias: float | None = None,
) -> timedelta:
    """The interval to poll at now: the fastest of base and active hot windows, never below floor.

    `adaptive_bias` (see `adaptive_factor`) shortens it further in hours when restocks happened.
    """
    _require_aware(now_local)
    active = [w.interval for w in hot_windows if w.contains(now_local)]
    interval = min([base, *active])
    if adaptive_bias is not None:
        interval *= _clamp(adaptive_bias, ADAPTIVE_MIN_FACTOR, 1.0)
    return max(interval, floor)


def stable_phase(product_key: str, interval: timedelta) -> timedelta:
    """A fixed offset in [0, interval) per product, so checks stay spread across restarts."""
    span = interval // timedelta(microseconds=1)
    if span <= 0:
        return _ZERO
    return timedelta(microseconds=_phase_seed(product_key) % span)


@functools.lru_cache(maxsize=65_536)  # asked once per check: one digest per watched product
def _phase_seed(product_key: str) -> int:
    digest = hashlib.sha256(product_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def next_due(
    last_check: datetime | None,
    interval: timedelta,
    now: datetime,
    rng: random.Random,
    jitter: float = 0.1,
    phase: timedelta | None = None,
    floor: timedelta = _ZERO,
) -> datetime:
    """When a product is next due: one jittered interval after its last check, never in the past.

    A first check (no `last_check`) and an overdue product (after downtime or overload) go to the
    product's next phase slot, so a restart spreads them over one interval instead of firing them
    all at once; without a `phase` they are due now. The jittered interval never drops below
    `floor` (the host's `min_interval`).
    """
    _require_aware(now)
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    if last_check is not None:
        due = last_check + max(floor, interval * (1 + rng.uniform(-jitter, jitter)))
        if due >= now:
            return due
    return now if phase is None else phase_slot(now, interval, phase)


def phase_slot(now: datetime, interval: timedelta, phase: timedelta) -> datetime:
    """The first time at or after `now` that lies `phase` past a multiple of `interval`."""
    if interval <= _ZERO:
        return now
    behind = (now - _EPOCH - phase) % interval
    return now if behind == _ZERO else now + (interval - behind)


def confirm_recheck_delay(
    rng: random.Random,
    low: timedelta = timedelta(seconds=2),
    high: timedelta = timedelta(seconds=5),
) -> timedelta:
    """How soon to re-check a product whose buyable verdict awaits confirmation."""
    return timedelta(seconds=rng.uniform(low.total_seconds(), high.total_seconds()))


def backoff(
    attempt: int,
    base: timedelta,
    cap: timedelta,
    rng: random.Random,
    at_least: timedelta = _ZERO,
) -> timedelta:
    """Exponential backoff with full jitter; `attempt` 1 is the first retry.

    Full jitter spreads retries of many failing products or deliveries instead of synchronising
    them; `at_least` carries a server's Retry-After, which the jitter never undercuts.
    """
    exponent = min(max(attempt, 1) - 1, 62)  # bounded: 2**62 seconds already exceeds any cap
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2.0**exponent)
    return max(at_least, timedelta(seconds=rng.uniform(0, max(ceiling, 0.0))))


def priority(subscribers: int) -> int:
    """A tier per doubling of subscribers (0 for none, at most MAX_TIER): higher goes first
    among due products (`due_sort_key`)."""
    return min(max(subscribers, 0).bit_length(), MAX_TIER)


def due_sort_key(due: datetime, subscribers: int, step: timedelta = PRIORITY_STEP) -> datetime:
    """Order due products by due time, moved earlier by `step` per priority tier.

    A head start in time rather than a strict tier order: under overload a popular product goes
    ahead, yet a lonely product that has waited long enough still gets its turn.
    """
    return due - step * priority(subscribers)


@dataclass(frozen=True, slots=True)
class RestockHistogram:
    """How many restocks happened in each wall-clock hour (local time), for adaptive polling."""

    counts: tuple[int, ...] = (0,) * HOURS

    def __post_init__(self) -> None:
        if len(self.counts) != HOURS or any(c < 0 for c in self.counts):
            raise ValueError("a restock histogram holds 24 non-negative counts")

    @property
    def total(self) -> int:
        return sum(self.counts)

    @classmethod
    def from_times(cls, times: Iterable[datetime], zone: tzinfo) -> RestockHistogram:
        """Count stored restock times in the hours of `zone` (naive times are taken as UTC)."""
        counts = [0] * HOURS
        for moment in times:
            aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
            counts[aware.astimezone(zone).hour] += 1
        return cls(tuple(counts))

    def record(self, at_local: datetime) -> RestockHistogram:
        counts = list(self.counts)
        counts[at_local.hour] += 1
        return RestockHistogram(tuple(counts))

    def to_json(self) -> dict[str, Any]:
        return {"version": HISTOGRAM_VERSION, "hours": list(self.counts)}

    @classmethod
    def from_json(cls, data: object) -> RestockHistogram:
        """Read a stored histogram; an unknown version or a corrupt value gives an empty one."""
        if not isinstance(data, Mapping) or data.get("version") != HISTOGRAM_VERSION:
            return cls()
        hours = data.get("hours")
        if not isinstance(hours, list) or not all(_is_count(h) for h in hours):
            return cls()
        try:
            return cls(tuple(hours))
        except ValueError:
            return cls()


def adaptive_factor(
    histogram: RestockHistogram, now_local: datetime, min_restocks: int = ADAPTIVE_MIN_RESTOCKS
) -> float:
    """A factor in [0.25, 1] that shortens the interval in hours when restocks used to happen.

    Each hour's weight takes in half of its neighbours' (a restock at 02:58 says as much about
    03:00), plus one pseudo-restock per hour so a little data moves little. An hour busier than
    average gets the interval divided by how much busier it is; other hours keep it.
    """
    _require_aware(now_local)
    if histogram.total < min_restocks:
        return 1.0
    weights = _smoothed(histogram.counts)
    share = (weights[now_local.hour] + 1) / (sum(weights) + HOURS)
    busier = share * HOURS
    return _clamp(1 / busier, ADAPTIVE_MIN_FACTOR, 1.0)


def _smoothed(counts: tuple[int, ...]) -> list[float]:
    return [
        counts[h] + 0.5 * (counts[(h - 1) % HOURS] + counts[(h + 1) % HOURS]) for h in range(HOURS)
    ]


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("scheduling needs timezone-aware times")
