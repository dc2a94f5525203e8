"""The restock-hour forecast: a table of restock times and what they foretell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from watcher.core.forecast import (
    RestockForecast,
    Scope,
    describe_forecast,
    forecast_for,
    forecast_restocks,
)

JST = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
# 2026-06-02 is a Tuesday.
TUE = datetime(2026, 6, 2, tzinfo=JST)


def at(day: int, hour: int, minute: int = 0, week: int = 0) -> datetime:
    """A JST time: `day` days after Tuesday 2026-06-02, plus `week` weeks."""
    return TUE + timedelta(days=day + 7 * week, hours=hour, minutes=minute)


CASES = [
    ("none", [], None),
    ("three restocks are too few", [at(0, 2, w * 7) for w in range(3)], None),
    (
        "five of seven on Tuesday nights",
        [at(0, 2, 10, w) for w in range(3)]
        + [at(0, 3, 40, 3), at(0, 3, 5, 4), at(3, 14, 0, 1), at(5, 20, 0, 2)],
        (1, 2, 2, 5, 7),
    ),
    (
        "one hour wide when one hour holds enough",
        [at(2, 23, 30, w) for w in range(4)],
        (3, 23, 1, 4, 4),
    ),
    (
        "the same hour on different days is a daily window",
        [at(d, 10, 15) for d in range(5)] + [at(0, 16)],
        (None, 10, 1, 5, 6),
    ),
    (
        "spread over the week and day: no forecast",
        [at(d, 3 * d) for d in range(7)] + [at(0, 22, 0, 1)],
        None,
    ),
    (
        "a Friday-night window across midnight into Saturday",
        [at(3, 23, 30, 0), at(4, 0, 20, 1), at(3, 23, 50, 2), at(4, 0, 10, 3), at(1, 12)],
        (4, 23, 2, 4, 5),
    ),
]


@pytest.mark.parametrize(("times", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_forecast_table(times: list[datetime], expected: tuple[int | None, ...] | None) -> None:
    forecast = forecast_restocks(times, JST)
    if expected is None:
        assert forecast is None
        return
    assert forecast is not None
    got = (forecast.weekday, forecast.start_hour, forecast.width, forecast.hits, forecast.total)
    assert got == expected
    assert forecast.zone_label == "JST"


def test_order_of_times_does_not_matter() -> None:
    times = [at(0, 2, 10, w) for w in range(4)] + [at(3, 14)]
    assert forecast_restocks(times, JST) == forecast_restocks(list(reversed(times)), JST)


def test_utc_and_naive_times_are_read_in_the_zone() -> None:
    utc = [at(0, 2, 10, w).astimezone(UTC) for w in range(4)]
    naive = [t.replace(tzinfo=None) for t in utc]
    expected = forecast_restocks(utc, JST)
    assert expected is not None and (expected.weekday, expected.start_hour) == (1, 2)
    assert forecast_restocks(naive, JST) == expected


def test_daylight_saving_zone_is_labelled_from_the_latest_restock() -> None:
    summer = [datetime(2026, 7, 7 + 7 * w, 6, 30, tzinfo=UTC) for w in range(4)]
    forecast = forecast_restocks(summer, NEW_YORK)
    assert forecast is not None
    assert (forecast.weekday, forecast.start_hour, forecast.zone_label) == (1, 2, "EDT")


def test_store_times_stand_in_for_a_product_without_a_pattern() -> None:
    store = [at(1, 10, 5, w) for w in range(5)]
    forecast = forecast_for([at(0, 1)], store, JST)
    assert forecast is not None and forecast.scope is Scope.STORE
    assert (forecast.weekday, forecast.start_hour, forecast.hits) == (2, 10, 5)
    own = forecast_for([at(0, 2, 0, w) for w in range(4)], store, JST)
    assert own is not None and own.scope is Scope.PRODUCT
    assert forecast_for([], [], JST) is None


WORDING = [
    (
        RestockForecast(1, 2, 2, 5, 7, "JST"),
        "en",
        "usually back on Tue 02:00–04:00 JST (5 of 7 restocks)",
    ),
    (RestockForecast(1, 2, 2, 5, 7, "JST"), "ja", "再入荷は火曜 02:00–04:00 JSTが多い（7回中5回）"),
    (
        RestockForecast(None, 23, 2, 4, 6, "JST"),
        "en",
        "usually back daily 23:00–01:00 JST (4 of 6 restocks)",
    ),
    (
        RestockForecast(6, 10, 1, 3, 4, "JST", Scope.STORE),
        "en",
        "this store usually restocks on Sun 10:00–11:00 JST (3 of 4 restocks)",
    ),
]


@pytest.mark.parametrize(("forecast", "language", "text"), WORDING)
def test_forecast_wording(forecast: RestockForecast, language: str, text: str) -> None:
    assert describe_forecast(forecast, language) == text  # type: ignore[arg-type]
