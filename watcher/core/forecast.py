"""When a product usually comes back: the restock-hour forecast.

A pure function of stored restock times. It looks for the narrowest window of whole hours, first
on one weekday, then on every day, that holds at least half of the restocks, and says how many
restocks it rests on. Too few restocks, or none clustered enough, means no forecast at all: a
guess presented as a pattern would send shoppers to their screens at the wrong hour.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

Language = Literal["ja", "en"]

MIN_RESTOCKS = 4  # fewer restocks than this make no forecast
MIN_HITS = 3  # the window must hold at least this many of them
MIN_SHARE = 0.5  # ... and at least this share of them
WIDTHS = (1, 2, 3)  # window widths tried, in hours, narrowest first
HOURS_PER_WEEK = 7 * 24


class Scope(enum.StrEnum):
    """What the restock times were of: this very product, or any product of its store."""

    PRODUCT = "product"
    STORE = "store"


@dataclass(frozen=True, slots=True)
class RestockForecast:
    """A window of local hours in which most restocks happened.

    `weekday` is 0 (Monday) to 6, or None when the window holds on every day. `start_hour` and
    `width` are whole hours; the window may run past midnight.
    """

    weekday: int | None
    start_hour: int
    width: int
    hits: int
    total: int
    zone_label: str
    scope: Scope = Scope.PRODUCT

    @property
    def end_hour(self) -> int:
        return (self.start_hour + self.width) % 24


def forecast_restocks(
    times: Iterable[datetime],
    zone: tzinfo,
    *,
    scope: Scope = Scope.PRODUCT,
    min_restocks: int = MIN_RESTOCKS,
) -> RestockForecast | None:
    """The restock window of `times` in `zone`, or None when they are too few or too spread.

    Naive times are taken as UTC. Ties go to the earliest window of the week, so the same
    times always give the same answer.
    """
    local = [_aware(t).astimezone(zone) for t in times]
    if len(local) < max(min_restocks, MIN_HITS):
        return None
    label = local_zone_label(max(local))
    weekly = [t.weekday() * 24 + t.hour for t in local]
    daily = [t.hour for t in local]
    for hours, period in ((weekly, HOURS_PER_WEEK), (daily, 24)):
        for width in WIDTHS:
            start, hits = _best_window(hours, period, width)
            if hits >= MIN_HITS and hits >= MIN_SHARE * len(local):
                day = start // 24 if period == HOURS_PER_WEEK else None
                return RestockForecast(day, start % 24, width, hits, len(local), label, scope)
    return None


def forecast_for(
    product_times: Sequence[datetime], store_times: Sequence[datetime], zone: tzinfo
) -> RestockForecast | None:
    """The product's own forecast; failing that, its store's (restocks of any of its products)."""
    own = forecast_restocks(product_times, zone)
    if own is not None or not store_times:
        return own
    return forecast_restocks(store_times, zone, scope=Scope.STORE)


def _best_window(hours: Sequence[int], period: int, width: int) -> tuple[int, int]:
    """(start, count) of the `width`-hour window (circular over `period`) holding most hours."""
    counts = [0] * period
    for hour in hours:
        counts[hour % period] += 1
    best_start, best_hits = 0, -1
    for start in range(period):
        hits = sum(counts[(start + step) % period] for step in range(width))
        if hits > best_hits:
            best_start, best_hits = start, hits
    return best_start, best_hits


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def local_zone_label(moment: datetime) -> str:
    """The zone's short name at `moment` ("JST"), or its UTC offset when it has none."""
    name = moment.tzname() or ""
    if name and not name.startswith(("+", "-")):
        return name
    return moment.strftime("UTC%z")


# --- wording ------------------------------------------------------------------------------------

_WEEKDAYS: dict[Language, tuple[str, ...]] = {
    "ja": ("月曜", "火曜", "水曜", "木曜", "金曜", "土曜", "日曜"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_EVERY_DAY: dict[Language, str] = {"ja": "毎日", "en": "daily"}
_SENTENCE: dict[Language, dict[Scope, str]] = {
    "ja": {
        Scope.PRODUCT: "再入荷は{when} {hours} {zone}が多い（{total}回中{hits}回）",
        Scope.STORE: "このストアの再入荷は{when} {hours} {zone}が多い（{total}回中{hits}回）",
    },
    "en": {
        Scope.PRODUCT: "usually back {on}{when} {hours} {zone} ({hits} of {total} restocks)",
        Scope.STORE: (
            "this store usually restocks {on}{when} {hours} {zone} ({hits} of {total} restocks)"
        ),
    },
}


def describe_forecast(forecast: RestockForecast, language: Language = "en") -> str:
    """One line for pages and messages: "usually back on Tue 02:00–04:00 JST (5 of 7 restocks)"."""
    day = forecast.weekday
    weekly = day is not None
    when = _EVERY_DAY[language] if day is None else _WEEKDAYS[language][day]
    hours = f"{forecast.start_hour:02d}:00–{forecast.end_hour:02d}:00"
    return _SENTENCE[language][forecast.scope].format(
        on="on " if weekly else "",
        when=when,
        hours=hours,
        zone=forecast.zone_label,
        hits=forecast.hits,
        total=forecast.total,
    )


def forecast_fields(forecast: RestockForecast, language: Language) -> dict[str, Any]:
    """The forecast as JSON carries it: the window, its counts and its text in `language`."""
    return {
        "weekday": forecast.weekday,
        "start_hour": forecast.start_hour,
        "end_hour": forecast.end_hour,
        "restocks_in_window": forecast.hits,
        "restocks": forecast.total,
        "zone": forecast.zone_label,
        "scope": forecast.scope.value,
        "text": describe_forecast(forecast, language),
    }


def forecast_payload(forecast: RestockForecast | None) -> dict[str, Any] | None:
    """The forecast as the webhook carries it: its fields, the text in English and Japanese."""
    if forecast is None:
        return None
    return forecast_fields(forecast, "en") | {"text_ja": describe_forecast(forecast, "ja")}
