"""The JSON shapes of `/api/`: plain values, times in ISO 8601 with offset, no personal ids."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from watcher.core.forecast import RestockForecast, forecast_fields
from watcher.storage.interface import WatchHistory
from watcher.storage.views import WatchRow
from watcher.web.i18n import Language


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def watch_json(row: WatchRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "name": row.name,
        "origin": row.origin.value,
        "target": row.target,
        "store": row.store,
        "title": row.title,
        "state": row.state.value if row.state else None,
        "price": row.price,
        "reason": row.reason,
        "last_checked_at": _iso(row.last_checked_at),
        "next_check_at": _iso(row.next_check_at),
        "last_restock_at": _iso(row.last_restock_at),
        "paused": row.paused,
        "max_price": row.conditions.max_price,
        "buyable": sorted(state.value for state in row.conditions.buyable),
    }


def forecast_json(forecast: RestockForecast | None, language: Language) -> dict[str, Any] | None:
    return None if forecast is None else forecast_fields(forecast, language)


def watch_detail_json(
    row: WatchRow,
    forecast: RestockForecast | None,
    subscribers: Mapping[str, int],
    language: Language,
) -> dict[str, Any]:
    return {
        **watch_json(row),
        "forecast": forecast_json(forecast, language),
        "subscribers": dict(subscribers),
    }


def history_json(history: WatchHistory, now: datetime) -> dict[str, Any]:
    return {
        "key": history.status.key,
        "generated_at": now.isoformat(),
        "observations": [
            {
                "at": o.at.isoformat(),
                "state": o.state.value,
                "price": o.price,
                "reason": o.reason,
                "status": o.status,
                "blocked": o.blocked,
                "repeats": o.repeats,
            }
            for o in history.observations
        ],
        "events": [
            {
                "id": e.id,
                "kind": e.kind.value,
                "state": e.state.value,
                "price": e.price,
                "title": e.title,
                "seller": e.seller,
                "observed_at": e.observed_at.isoformat(),
            }
            for e in history.events
        ],
    }
