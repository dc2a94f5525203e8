"""Availability bands and day strips from readings: what a reading means until the next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from watcher.core.model import Availability as A
from watcher.storage.views import Reading
from watcher.web.timeline import Band, bands, day_strip, merge_history, price_points

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


BAND_CASES = [
    ("no readings", [], []),
    (
        "one reading holds to the end",
        [Reading(h(2), A.OUT_OF_STOCK)],
        [Band(h(2), h(10), A.OUT_OF_STOCK)],
    ),
    (
        "a reading before the window sets its first state",
        [Reading(h(-5), A.IN_STOCK), Reading(h(4), A.OUT_OF_STOCK)],
        [Band(h(0), h(4), A.IN_STOCK), Band(h(4), h(10), A.OUT_OF_STOCK)],
    ),
    (
        "repeats merge, unknown stays its own band",
        [Reading(h(1), A.OUT_OF_STOCK), Reading(h(2), A.OUT_OF_STOCK), Reading(h(3), A.UNKNOWN),
         Reading(h(5), A.OUT_OF_STOCK)],
        [Band(h(1), h(3), A.OUT_OF_STOCK), Band(h(3), h(5), A.UNKNOWN),
         Band(h(5), h(10), A.OUT_OF_STOCK)],
    ),
    ("readings after the window are ignored", [Reading(h(12), A.IN_STOCK)], []),
    (
        "order of readings does not matter",
        [Reading(h(6), A.IN_STOCK), Reading(h(1), A.PREORDER)],
        [Band(h(1), h(6), A.PREORDER), Band(h(6), h(10), A.IN_STOCK)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("readings", "expected"), [c[1:] for c in BAND_CASES], ids=[c[0] for c in BAND_CASES]
)
def test_bands(readings: list[Reading], expected: list[Band]) -> None:
    assert bands(readings, h(0), h(10)) == expected


def test_day_strip_shows_the_most_hopeful_state_of_each_local_day() -> None:
    jst = ZoneInfo("Asia/Tokyo")
    now = datetime(2026, 6, 7, 12, 0, tzinfo=jst)
    readings = [
        Reading(datetime(2026, 6, 2, 9, 0, tzinfo=jst), A.OUT_OF_STOCK),
        Reading(datetime(2026, 6, 4, 2, 0, tzinfo=jst), A.IN_STOCK),
        Reading(datetime(2026, 6, 4, 2, 30, tzinfo=jst), A.OUT_OF_STOCK),
        Reading(datetime(2026, 6, 6, 23, 30, tzinfo=jst), A.UNKNOWN),
    ]
    assert day_strip(readings, now, jst) == [
        None,  # 06-01: nothing known yet
        A.OUT_OF_STOCK,
        A.OUT_OF_STOCK,
        A.IN_STOCK,  # back for half an hour at 02:00
        A.OUT_OF_STOCK,
        A.OUT_OF_STOCK,  # 06-06 ends unknown, but was sold out first
        A.UNKNOWN,
    ]


def test_price_points_keep_priced_readings_in_the_window_after_the_price_held() -> None:
    readings = [
        Reading(h(-2), A.IN_STOCK, 950),
        Reading(h(-1), A.IN_STOCK, 900),
        Reading(h(3), A.IN_STOCK, 800),
        Reading(h(1), A.UNKNOWN),
    ]
    assert price_points(readings, h(0)) == [(h(0), 900), (h(3), 800)]
    # A price recorded once, long ago (later checks repeated it), still draws its line.
    assert price_points(readings[:1], h(0)) == [(h(0), 950)]
    assert price_points([Reading(h(-1), A.UNKNOWN)], h(0)) == []


def test_events_carry_the_history_back_past_pruned_observations() -> None:
    observations = [Reading(h(5), A.OUT_OF_STOCK, 900), Reading(h(6), A.IN_STOCK, 880)]
    events = [
        Reading(h(1), A.IN_STOCK, 950),
        Reading(h(2), A.OUT_OF_STOCK),
        Reading(h(6), A.IN_STOCK),
    ]
    assert merge_history(observations, events) == [
        Reading(h(1), A.IN_STOCK, 950),
        Reading(h(2), A.OUT_OF_STOCK),
        *observations,  # where observations are kept, they alone tell
    ]
    assert merge_history([], events) == events
    assert merge_history(observations, []) == observations
