"""Scheduling arithmetic: hot windows, floors, phases, jitter, backoff, priority, adaptivity."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.core.schedule import (
    ADAPTIVE_MIN_FACTOR,
    HISTOGRAM_VERSION,
    MAX_TIER,
    HotWindow,
    RestockHistogram,
    adaptive_factor,
    backoff,
    confirm_recheck_delay,
    due_sort_key,
    effective_interval,
    next_due,
    phase_slot,
    priority,
    stable_phase,
)

TOKYO = ZoneInfo("Asia/Tokyo")
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
EVERY_DAY = frozenset(range(7))
WEEKDAYS = frozenset(range(5))

# The watchlist example's defaults: nights every day, office hours on weekdays.
NIGHTS = HotWindow(EVERY_DAY, time(0, 0), time(5, 0), 1 * MINUTE)
OFFICE = HotWindow(WEEKDAYS, time(10, 0), time(17, 0), 2 * MINUTE)
LATE_FRIDAY = HotWindow(frozenset({4}), time(22, 0), time(2, 0), 30 * SECOND)


def tokyo(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in March 2025: the 3rd is a Monday, the 7th a Friday, the 8th a Saturday."""
    return datetime(2025, 3, day, hour, minute, tzinfo=TOKYO)


@pytest.mark.parametrize(
    ("window", "now", "inside"),
    [
        (NIGHTS, tokyo(3, 0, 0), True),
        (NIGHTS, tokyo(3, 4, 59), True),
        (NIGHTS, tokyo(3, 5, 0), False),  # the end is exclusive
        (NIGHTS, tokyo(8, 3), True),  # Saturday too
        (NIGHTS, tokyo(3, 23, 59), False),
        (OFFICE, tokyo(3, 10), True),  # Monday
        (OFFICE, tokyo(7, 16, 59), True),  # Friday
        (OFFICE, tokyo(8, 12), False),  # Saturday
        (OFFICE, tokyo(9, 12), False),  # Sunday
        (OFFICE, tokyo(3, 9, 59), False),
        (LATE_FRIDAY, tokyo(7, 22), True),  # Friday night
        (LATE_FRIDAY, tokyo(7, 23, 59), True),
        (LATE_FRIDAY, tokyo(8, 1, 59), True),  # after midnight, opened on Friday
        (LATE_FRIDAY, tokyo(8, 2), False),
        (LATE_FRIDAY, tokyo(8, 22), False),  # Saturday night: not its day
        (LATE_FRIDAY, tokyo(7, 1), False),  # early Friday belongs to Thursday's window
        (LATE_FRIDAY, tokyo(7, 21, 59), False),
        (HotWindow(frozenset({6}), time(22), time(2), MINUTE), tokyo(3, 1), True),  # Sun -> Mon
        (HotWindow(frozenset({0}), time(22), time(2), MINUTE), tokyo(9, 23), False),
        (HotWindow(frozenset({0}), time(6), time(6), MINUTE), tokyo(3, 6), True),  # whole day
        (HotWindow(frozenset({0}), time(6), time(6), MINUTE), tokyo(4, 5, 59), True),
        (HotWindow(frozenset({0}), time(6), time(6), MINUTE), tokyo(4, 6), False),
    ],
)
def test_hot_window_contains(window: HotWindow, now: datetime, inside: bool) -> None:
    assert window.contains(now) is inside


@pytest.mark.parametrize(
    ("base", "floor", "now", "expected"),
    [
        (5 * MINUTE, 30 * SECOND, tokyo(3, 3), 1 * MINUTE),  # night window
        (5 * MINUTE, 30 * SECOND, tokyo(3, 12), 2 * MINUTE),  # weekday office hours
        (5 * MINUTE, 30 * SECOND, tokyo(8, 12), 5 * MINUTE),  # Saturday noon: base
        (5 * MINUTE, 30 * SECOND, tokyo(3, 20), 5 * MINUTE),
        (30 * SECOND, 10 * SECOND, tokyo(3, 3), 30 * SECOND),  # base already faster than the window
        (5 * MINUTE, 90 * SECOND, tokyo(3, 3), 90 * SECOND),  # floor wins over the window
        (1 * SECOND, 1 * MINUTE, tokyo(8, 20), 1 * MINUTE),  # floor wins over the base
        (5 * MINUTE, 0 * SECOND, tokyo(7, 23), 30 * SECOND),  # fastest of the overlapping
        (5 * MINUTE, 0 * SECOND, tokyo(8, 1), 30 * SECOND),  # Friday's window after midnight
    ],
)
def test_effective_interval(
    base: timedelta, floor: timedelta, now: datetime, expected: timedelta
) -> None:
    windows = [NIGHTS, OFFICE, LATE_FRIDAY]
    assert effective_interval(base, floor, windows, now) == expected


@pytest.mark.parametrize(
    ("bias", "floor", "expected"),
    [
        (None, 0 * SECOND, 4 * MINUTE),
        (1.0, 0 * SECOND, 4 * MINUTE),
        (0.5, 0 * SECOND, 2 * MINUTE),
        (0.01, 0 * SECOND, 1 * MINUTE),  # never faster than the adaptive minimum factor
        (3.0, 0 * SECOND, 4 * MINUTE),  # never slower than without it
        (0.25, 90 * SECOND, 90 * SECOND),  # never below the floor
    ],
)
def test_effective_interval_with_adaptive_bias(
    bias: float | None, floor: timedelta, expected: timedelta
) -> None:
    saturday_evening = tokyo(8, 20)
    assert effective_interval(4 * MINUTE, floor, [], saturday_evening, bias) == expected


def test_effective_interval_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        effective_interval(MINUTE, SECOND, [NIGHTS], datetime(2025, 3, 3, 3))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": frozenset()},
        {"days": frozenset({7})},
        {"interval": timedelta(0)},
        {"start": time(1, tzinfo=UTC)},
    ],
)
def test_bad_hot_window_is_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "days": EVERY_DAY,
        "start": time(0),
        "end": time(5),
        "interval": MINUTE,
    }
    with pytest.raises(ValueError):
        HotWindow(**{**fields, **kwargs})  # type: ignore[arg-type]


# --- phase ---------------------------------------------------------------------------------


def test_stable_phase_is_stable_and_inside_the_interval() -> None:
    interval = 5 * MINUTE
    first = stable_phase("https://shop.example/item/1", interval)
    assert first == stable_phase("https://shop.example/item/1", interval)
    assert first != stable_phase("https://shop.example/item/2", interval)
    assert timedelta(0) <= first < interval


def test_stable_phase_is_a_known_value() -> None:
    # Pinned to SHA-256 ("abc" starts ba7816bf8f01cfea): a change of hashing would reshuffle every
    # product's phase, so it must be noticed.
    expected = int("ba7816bf8f01cfea", 16) % 1000
    assert stable_phase("abc", timedelta(microseconds=1000)) == timedelta(microseconds=expected)


def test_stable_phase_of_an_empty_interval_is_zero() -> None:
    assert stable_phase("x", timedelta(0)) == timedelta(0)


def test_stable_phases_spread_evenly_over_the_interval() -> None:
    interval = 10 * MINUTE
    buckets = [0] * 10
    for n in range(5000):
        buckets[stable_phase(f"https://shop.example/item/{n}", interval) // MINUTE] += 1
    # 500 expected per bucket; a hash that clumps would leave some far off.
    assert min(buckets) > 400 and max(buckets) < 600


@given(st.text(max_size=40), st.integers(1, 10**9))
def test_stable_phase_bounds(key: str, micros: int) -> None:
    interval = timedelta(microseconds=micros)
    assert timedelta(0) <= stable_phase(key, interval) < interval


# --- next due ------------------------------------------------------------------------------

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=TOKYO)


@given(st.integers(0, 2**32), st.floats(0, 0.5), st.integers(1, 3600))
def test_next_due_stays_within_jitter(seed: int, jitter: float, seconds: int) -> None:
    interval = timedelta(seconds=seconds)
    due = next_due(NOW, interval, NOW, random.Random(seed), jitter=jitter)
    assert interval * (1 - jitter) <= due - NOW <= interval * (1 + jitter)


def test_next_due_jitter_varies_and_is_reproducible() -> None:
    dues = [next_due(NOW, MINUTE, NOW, random.Random(seed)) for seed in range(50)]
    assert len(set(dues)) > 40
    assert dues == [next_due(NOW, MINUTE, NOW, random.Random(seed)) for seed in range(50)]


def test_next_due_jitter_never_undercuts_the_floor() -> None:
    rng = random.Random(7)
    dues = [next_due(NOW, MINUTE, NOW, rng, jitter=0.5, floor=MINUTE) for _ in range(200)]
    assert all(due - NOW >= MINUTE for due in dues)
    assert max(due - NOW for due in dues) > 80 * SECOND


def test_next_due_without_jitter_is_exact() -> None:
    last = NOW - 20 * SECOND
    assert next_due(last, MINUTE, NOW, random.Random(1), jitter=0) == last + MINUTE


def test_first_check_goes_to_the_phase_slot() -> None:
    phase = stable_phase("https://shop.example/item/1", 5 * MINUTE)
    due = next_due(None, 5 * MINUTE, NOW, random.Random(1), phase=phase)
    assert NOW <= due < NOW + 5 * MINUTE
    assert (due - datetime(1970, 1, 1, tzinfo=UTC)) % (5 * MINUTE) == phase


def test_first_check_without_phase_is_now() -> None:
    assert next_due(None, 5 * MINUTE, NOW, random.Random(1)) == NOW


def test_overdue_products_are_spread_not_fired_at_once() -> None:
    # After a day of downtime every product is overdue: each goes to its own slot in one interval.
    interval = 5 * MINUTE
    last = NOW - timedelta(days=1)
    dues = [
        next_due(last, interval, NOW, random.Random(1), phase=stable_phase(f"p{n}", interval))
        for n in range(300)
    ]
    assert all(NOW <= due < NOW + interval for due in dues)
    assert len({due.replace(second=0, microsecond=0) for due in dues}) == 5  # every minute used


@given(st.integers(0, 10**7), st.integers(1, 10**6), st.integers(0, 10**7))
def test_next_due_is_never_in_the_past(last_ago: int, interval_s: int, phase_s: int) -> None:
    interval = timedelta(seconds=interval_s)
    last = NOW - timedelta(seconds=last_ago)
    for phase in (None, timedelta(seconds=phase_s)):
        assert next_due(last, interval, NOW, random.Random(last_ago), phase=phase) >= NOW


def test_phase_slot_on_the_slot_is_now() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    on_slot = epoch + 1000 * MINUTE + 7 * SECOND
    assert phase_slot(on_slot, MINUTE, 7 * SECOND) == on_slot
    assert phase_slot(on_slot + SECOND, MINUTE, 7 * SECOND) == on_slot + MINUTE


def test_next_due_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="jitter"):
        next_due(NOW, MINUTE, NOW, random.Random(1), jitter=1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_due(None, MINUTE, datetime(2025, 3, 3), random.Random(1))


# --- confirmation re-check, backoff, priority ----------------------------------------------


def test_confirm_recheck_delay_is_a_few_jittered_seconds() -> None:
    rng = random.Random(3)
    delays = [confirm_recheck_delay(rng) for _ in range(500)]
    assert all(2 * SECOND <= d <= 5 * SECOND for d in delays)
    assert max(delays) - min(delays) > 2 * SECOND


@given(st.integers(-3, 200), st.integers(0, 2**32))
def test_backoff_stays_under_its_ceiling(attempt: int, seed: int) -> None:
    base, cap = 2 * SECOND, 10 * MINUTE
    delay = backoff(attempt, base, cap, random.Random(seed))
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, 20))
    assert timedelta(0) <= delay <= ceiling


def test_backoff_grows_with_attempts() -> None:
    rng = random.Random(11)

    def mean_seconds(attempt: int) -> float:
        delays = [backoff(attempt, SECOND, timedelta(hours=1), rng) for _ in range(400)]
        return sum(d.total_seconds() for d in delays) / len(delays)

    means = [mean_seconds(attempt) for attempt in (1, 3, 5)]
    assert means[0] < 0.7 and 1.5 < means[1] < 2.5 and 6.5 < means[2] < 9.5


def test_backoff_honours_retry_after() -> None:
    delay = backoff(1, SECOND, MINUTE, random.Random(1), at_least=120 * SECOND)
    assert delay == 120 * SECOND


@pytest.mark.parametrize(
    ("subscribers", "tier"),
    [
        (-1, 0),
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 2),
        (4, 3),
        (1000, 10),
        (2**30 - 1, 30),
        (2**30, MAX_TIER),
        (2**31, MAX_TIER),
        (2**62, MAX_TIER),
    ],
)
def test_priority_tiers(subscribers: int, tier: int) -> None:
    assert priority(subscribers) == tier


def test_popular_products_go_first_but_long_waiters_still_win() -> None:
    popular = due_sort_key(NOW, 100)
    lonely = due_sort_key(NOW, 1)
    assert popular < lonely
    assert due_sort_key(NOW - 10 * MINUTE, 1) < popular


# --- adaptive polling ----------------------------------------------------------------------


def histogram_of(*hours: int) -> RestockHistogram:
    histogram = RestockHistogram()
    for hour in hours:
        histogram = histogram.record(tokyo(3, hour, 30))
    return histogram


@pytest.mark.parametrize(
    ("hours", "now_hour", "low", "high"),
    [
        ((), 3, 1.0, 1.0),
        ((3, 3), 3, 1.0, 1.0),  # too little data: no effect
        ((3, 3, 3), 3, 0.25, 0.4),
        ((3, 3, 3), 4, 0.5, 0.8),  # the neighbouring hour gains a little
        ((3, 3, 3), 15, 1.0, 1.0),  # a quiet hour keeps its interval
        ((1, 9, 17), 9, 0.5, 0.8),  # scattered restocks say less
        ((3,) * 50, 3, ADAPTIVE_MIN_FACTOR, ADAPTIVE_MIN_FACTOR),
        ((3,) * 50, 12, 1.0, 1.0),
        (tuple(range(24)) * 5, 7, 1.0, 1.0),  # even spread: no bias
    ],
)
def test_adaptive_factor(hours: tuple[int, ...], now_hour: int, low: float, high: float) -> None:
    factor = adaptive_factor(histogram_of(*hours), tokyo(5, now_hour, 10))
    assert low <= factor <= high


@given(st.lists(st.integers(0, 23), max_size=200), st.integers(0, 23))
def test_adaptive_factor_bounds(hours: list[int], now_hour: int) -> None:
    factor = adaptive_factor(histogram_of(*hours), tokyo(5, now_hour))
    assert ADAPTIVE_MIN_FACTOR <= factor <= 1.0


def test_histogram_records_local_hours() -> None:
    histogram = RestockHistogram().record(tokyo(3, 2, 59)).record(tokyo(4, 2, 0))
    assert histogram.counts[2] == 2 and histogram.total == 2


def test_histogram_from_stored_times_counts_local_hours() -> None:
    stored = [
        datetime(2025, 3, 2, 17, 30, tzinfo=UTC),  # 02:30 in Tokyo
        datetime(2025, 3, 3, 2, 15, tzinfo=TOKYO),
        datetime(2025, 3, 2, 18, 5),  # naive: read as UTC, 03:05 in Tokyo
    ]
    histogram = RestockHistogram.from_times(stored, TOKYO)
    assert (histogram.counts[2], histogram.counts[3], histogram.total) == (2, 1, 3)


def test_histogram_round_trips() -> None:
    histogram = histogram_of(0, 3, 3, 23)
    assert RestockHistogram.from_json(histogram.to_json()) == histogram
    assert histogram.to_json()["version"] == HISTOGRAM_VERSION


@pytest.mark.parametrize(
    "data",
    [
        None,
        [0] * 24,
        {"version": HISTOGRAM_VERSION + 1, "hours": [0] * 24},
        {"version": HISTOGRAM_VERSION, "hours": [0] * 23},
        {"version": HISTOGRAM_VERSION, "hours": [-1] + [0] * 23},
        {"version": HISTOGRAM_VERSION, "hours": ["1"] + [0] * 23},
        {"version": HISTOGRAM_VERSION, "hours": [True] + [0] * 23},
        {"version": HISTOGRAM_VERSION},
    ],
)
def test_unreadable_histogram_is_empty(data: object) -> None:
    assert RestockHistogram.from_json(data) == RestockHistogram()


def test_bad_histogram_is_refused() -> None:
    with pytest.raises(ValueError):
        RestockHistogram((0,) * 23)
