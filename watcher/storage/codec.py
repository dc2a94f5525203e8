"""Values <-> column values, shared by every backend: epoch seconds, canonical JSON texts.

Times cross the storage interface as timezone-aware UTC datetimes and are stored as epoch seconds;
conditions, text rules and events are stored as canonical JSON texts (equal values, equal text).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from watcher.core.forecast import RestockForecast, Scope
from watcher.core.keys import canonical_conditions
from watcher.core.model import (
    DEFAULT_EVENTS,
    Availability,
    ConditionFilter,
    Event,
    EventKind,
    QuietHours,
    QuietMode,
    SellerFilter,
    TextRules,
    WatchConditions,
)

JSONDict = dict[str, Any]


def to_epoch(moment: datetime) -> float:
    """A timezone-aware datetime as epoch seconds; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware one")
    return moment.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def required_time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def seconds(interval: timedelta | None) -> float | None:
    return None if interval is None else interval.total_seconds()


def dump_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def conditions_to_json(conditions: WatchConditions) -> str:
    """A canonical JSON text: equal conditions give equal text (chat watches are keyed by it)."""
    return canonical_conditions(conditions)


@functools.lru_cache(maxsize=4096)
def conditions_from_json(text: str) -> WatchConditions:
    # Cached: many watches share a few condition sets, and a check loads every watch of its
    # product (the result is frozen, so sharing it is safe).
    data = json.loads(text)
    return WatchConditions(
        max_price=data["max_price"],
        condition=ConditionFilter(data["condition"]),
        seller=SellerFilter(data["seller"]),
        exclude_sellers=tuple(data["exclude_sellers"]),
        buyable=frozenset(Availability(state) for state in data["buyable"]),
        stores=frozenset(data.get("stores", ())),
        events=frozenset(EventKind(kind) for kind in data["events"])
        if "events" in data
        else DEFAULT_EVENTS,
    )


def rules_to_json(rules: TextRules | None) -> str | None:
    if rules is None:
        return None
    phrases = [[phrase, state.value] for phrase, state in rules.phrases]
    return dump_json({"selector": rules.selector, "phrases": phrases})


@functools.lru_cache(maxsize=1024)
def rules_from_json(text: str | None) -> TextRules | None:
    if text is None:
        return None
    data = json.loads(text)
    phrases = tuple((phrase, Availability(state)) for phrase, state in data["phrases"])
    return TextRules(selector=data["selector"], phrases=phrases)


def event_to_json(event: Event) -> str:
    to_epoch(event.observed_at)  # refuses a naive time before it is stored
    return dump_json(
        {
            "kind": event.kind.value,
            "watch_key": event.watch_key,
            "watch_name": event.watch_name,
            "state": event.state.value,
            "observed_at": event.observed_at.isoformat(),
            "url": event.url,
            "store": event.store,
            "price": event.price,
            "currency": event.currency,
            "title": event.title,
            "seller": event.seller,
            "shop": event.shop,
            "previous_price": event.previous_price,
            "lottery_deadline": _iso_or_none(event.lottery_deadline),
            "forecast": _forecast_to_data(event.forecast),
        }
    )


def _iso_or_none(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _moment_or_none(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _forecast_to_data(forecast: RestockForecast | None) -> JSONDict | None:
    if forecast is None:
        return None
    return {
        "weekday": forecast.weekday,
        "start_hour": forecast.start_hour,
        "width": forecast.width,
        "hits": forecast.hits,
        "total": forecast.total,
        "zone_label": forecast.zone_label,
        "scope": forecast.scope.value,
    }


def _forecast_from_data(data: object) -> RestockForecast | None:
    """A stored forecast read back; events stored without one (or with one this version cannot
    read) carry none: a forecast is a courtesy, never a reason to lose the event."""
    if not isinstance(data, dict):
        return None
    try:
        forecast = RestockForecast(
            weekday=_small_int_or_none(data["weekday"], 7),
            start_hour=_small_int(data["start_hour"], 24),
            width=_small_int(data["width"], 25),
            hits=_small_int(data["hits"], 1 << 31),
            total=_small_int(data["total"], 1 << 31),
            zone_label=str(data["zone_label"]),
            scope=Scope(data["scope"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return forecast if 0 < forecast.hits <= forecast.total else None


def _small_int(value: object, below: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < below:
        raise ValueError(f"not a whole number in [0, {below}): {value!r}")
    return value


def _small_int_or_none(value: object, below: int) -> int | None:
    return None if value is None else _small_int(value, below)


def event_from_json(event_id: int, text: str) -> Event:
    data = json.loads(text)
    return Event(
        kind=EventKind(data["kind"]),
        watch_key=data["watch_key"],
        watch_name=data["watch_name"],
        state=Availability(data["state"]),
        observed_at=datetime.fromisoformat(data["observed_at"]),
        url=data["url"],
        store=data["store"],
        price=data["price"],
        currency=data["currency"],
        title=data["title"],
        seller=data["seller"],
        shop=data.get("shop"),
        previous_price=data["previous_price"],
        lottery_deadline=_moment_or_none(data.get("lottery_deadline")),
        forecast=_forecast_from_data(data.get("forecast")),
        id=event_id,
    )


def quiet_columns(quiet: QuietHours | None) -> tuple[str | None, str | None, str | None]:
    if quiet is None:
        return None, None, None
    return quiet.start.strftime("%H:%M"), quiet.end.strftime("%H:%M"), quiet.mode.value


@functools.lru_cache(maxsize=256)
def quiet_hours(start: str | None, end: str | None, mode: str | None) -> QuietHours | None:
    """Decoded once per distinct setting: a fan-out reads the same few settings many times."""
    if start is None or end is None:
        return None
    return QuietHours(
        start=time.fromisoformat(start),
        end=time.fromisoformat(end),
        mode=QuietMode(mode or QuietMode.HOLD),
    )


def state_or_none(value: str | None) -> Availability | None:
    return None if value is None else Availability(value)


def known_state(value: object) -> Availability | None:
    """A stored state read back; a value this version does not know reads as none."""
    try:
        return Availability(value) if isinstance(value, str) else None
    except ValueError:
        return None


def json_or_none(text: str | None) -> JSONDict | None:
    return None if text is None else dict(json.loads(text))


def ids_json(ids: Iterable[int]) -> str:
    """A set of ids as a sorted JSON array (one parameter, however many ids)."""
    return json.dumps(sorted(set(ids)))
