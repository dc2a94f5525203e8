"""Availability bands, day strips and price points from stored observations: pure, no I/O.

An observation's state holds from its time until the next observation; `unknown` readings are
kept as their own band (a gap in what we know), never stretched over by the states around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from watcher.core.model import Availability
from watcher.storage.views import Reading

# Which state a day shows when it saw several: the most hopeful one a shopper would want to know.
HOPE_ORDER = (
    Availability.IN_STOCK,
    Availability.BACKORDER,
    Availability.PREORDER,
    Availability.LOTTERY,
    Availability.OUT_OF_STOCK,
    Availability.DISCONTINUED,
    Availability.UNKNOWN,
)


@dataclass(frozen=True, slots=True)
class Band:
    start: datetime
    end: datetime
    state: Availability


def bands(readings: Sequence[Reading], start: datetime, end: datetime) -> list[Band]:
    """The states held over [start, end), merged where one state follows itself."""
    ordered = sorted(readings, key=lambda r: r.at)
    before = [r for r in ordered if r.at <= start]
    inside = [r for r in ordered if start < r.at < end]
    steps = ([Reading(start, before[-1].state)] if before else []) + inside
    result: list[Band] = []
    if not steps:
        return result
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        stop = following.at if following is not None else end
        if result and result[-1].state is step.state:
            result[-1] = Band(result[-1].start, stop, step.state)
        else:
            result.append(Band(step.at, stop, step.state))
    return result


def day_strip(
    readings: Sequence[Reading], now: datetime, zone: tzinfo, days: int = 7
) -> list[Availability | None]:
    """One state per local day, oldest first, today last: the most hopeful state held that day."""
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    strip: list[Availability | None] = []
    for back in range(days - 1, -1, -1):
        day_start = today - timedelta(days=back)
        day_end = min(day_start + timedelta(days=1), now)
        held = {band.state for band in bands(readings, day_start, day_end)}
        strip.append(next((s for s in HOPE_ORDER if s in held), None))
    return strip


def price_points(readings: Sequence[Reading], start: datetime) -> list[tuple[datetime, int]]:
    """(time, yen) of the priced readings since `start`, oldest first, after the price held
    when the window opened (at `start`): a price that has not moved is recorded only once."""
    priced = sorted((r.at, r.price) for r in readings if r.price is not None)
    held = [(start, price) for at, price in priced if at < start][-1:]
    return held + [(at, price) for at, price in priced if at >= start]


def merge_history(observations: Sequence[Reading], transitions: Sequence[Reading]) -> list[Reading]:
    """Observations where they are kept; before the oldest one, the watch's events stand in."""
    if not observations:
        return sorted(transitions, key=lambda r: r.at)
    oldest = min(r.at for r in observations)
    earlier = [r for r in transitions if r.at < oldest]
    return sorted([*earlier, *observations], key=lambda r: r.at)
