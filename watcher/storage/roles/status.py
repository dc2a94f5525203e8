"""Status reads: what `restock status`, /metrics and the web pages show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from watcher.core.model import Event
from watcher.storage.codec import event_from_json
from watcher.storage.connector import Query, Role
from watcher.storage.interface import DeadLetter, ObservationRecord, WatchHistory, WatchStatus
from watcher.storage.rows import Row, dead_letter, observation_record, watch_status

DELIVERY_STATUSES = ("pending", "sent", "skipped", "failed", "dead")

_WATCH_STATUS_SELECT = """
    SELECT w.id, w.key, w.name, w.origin, w.active, w.detector_state,
           p.target, p.store, p.last_state, p.last_price, p.last_checked_at, p.due_at,
           p.active AS product_active, p.repeats,
           (SELECT COUNT(*) FROM subscriptions s
             WHERE s.watch_id = w.id AND {live_subscription}){count_type} AS subscribers
    FROM watches w JOIN products p ON p.id = w.product_id
"""
_SQLITE_WATCH_STATUS = _WATCH_STATUS_SELECT.format(
    live_subscription="s.active = 1 AND s.paused = 0", count_type=""
)
_POSTGRES_WATCH_STATUS = _WATCH_STATUS_SELECT.format(
    live_subscription="s.active AND NOT s.paused", count_type="::integer"
)

ACTIVE_WATCH_STATUSES = Query(
    sqlite=_SQLITE_WATCH_STATUS + " WHERE w.active = 1 ORDER BY w.id",
    postgres=_POSTGRES_WATCH_STATUS + " WHERE w.active ORDER BY w.id",
)
_RECENT_EVENTS = """
    SELECT id, watch_id, payload FROM (
        SELECT e.id, e.watch_id, e.payload, ROW_NUMBER() OVER (
            PARTITION BY e.watch_id ORDER BY e.id DESC) AS n
        FROM events e JOIN watches w ON w.id = e.watch_id WHERE {active_watch}) ranked
    WHERE n <= :per_watch ORDER BY id DESC
"""
RECENT_EVENTS = Query(
    sqlite=_RECENT_EVENTS.format(active_watch="w.active = 1"),
    postgres=_RECENT_EVENTS.format(active_watch="w.active"),
)
WATCH_STATUS = Query(
    sqlite=_SQLITE_WATCH_STATUS + " WHERE w.key = :key",
    postgres=_POSTGRES_WATCH_STATUS + " WHERE w.key = :key",
)
WATCH_EVENTS = Query(
    "SELECT id, payload FROM events WHERE watch_id = :watch_id ORDER BY id DESC LIMIT :limit"
)
WATCH_OBSERVATIONS = Query(
    "SELECT o.* FROM observations o JOIN watches w ON w.product_id = o.product_id"
    " WHERE w.id = :watch_id ORDER BY o.id DESC LIMIT :limit"
)
OUTBOX_DEPTH = Query("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
DEAD_LETTERS = Query(
    "SELECT d.*, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id"
    " WHERE d.status IN ('dead', 'failed') ORDER BY d.updated_at DESC, d.id DESC LIMIT :limit"
)


class Status(Role):
    """Read-only views of watches, history and the outbox."""

    async def watch_statuses(self, *, events_per_watch: int = 3) -> list[WatchStatus]:
        async with self._db.read():
            rows = await self._db.rows(ACTIVE_WATCH_STATUSES)
            event_rows = await self._db.rows(RECENT_EVENTS, per_watch=events_per_watch)
        events: dict[int, list[Event]] = {}
        for row in event_rows:
            events.setdefault(row["watch_id"], []).append(
                event_from_json(row["id"], row["payload"])
            )
        return [watch_status(row, events.get(row["id"], [])) for row in rows]

    async def history(self, watch_key: str, limit: int = 50) -> WatchHistory | None:
        async with self._db.read():
            row = await self._db.row(WATCH_STATUS, key=watch_key)
            if row is None:
                return None
            event_rows = await self._db.rows(WATCH_EVENTS, watch_id=row["id"], limit=limit)
            obs_rows = await self._db.rows(WATCH_OBSERVATIONS, watch_id=row["id"], limit=limit)
        events = tuple(event_from_json(r["id"], r["payload"]) for r in event_rows)
        return WatchHistory(
            status=watch_status(row, events[:3]),
            observations=_with_repeats(obs_rows, int(row["repeats"])),
            events=events,
        )

    async def outbox_depth(self) -> dict[str, int]:
        async with self._db.read():
            rows = await self._db.rows(OUTBOX_DEPTH)
        depth = dict.fromkeys(DELIVERY_STATUSES, 0)
        depth.update({row["status"]: row["n"] for row in rows})
        return depth

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        async with self._db.read():
            rows = await self._db.rows(DEAD_LETTERS, limit=limit)
        return [dead_letter(row) for row in rows]


def _with_repeats(rows: Sequence[Row], product_repeats: int) -> tuple[ObservationRecord, ...]:
    """Observations (newest first) with the checks that read the same after each: the product's
    repeats when the next one was recorded (now, for the newest) less its own."""
    records = []
    following = product_repeats
    for row in rows:
        repeats = int(row["repeats"])
        records.append(replace(observation_record(row), repeats=max(0, following - repeats)))
        following = repeats
    return tuple(records)
