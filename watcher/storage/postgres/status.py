"""Status reads on PostgreSQL: what `restock status`, /metrics and the web pages show."""

from __future__ import annotations

from watcher.core.model import Event
from watcher.storage.codec import event_from_json
from watcher.storage.interface import DeadLetter, WatchHistory, WatchStatus
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.rows import dead_letter, observation_record, watch_status

DELIVERY_STATUSES = ("pending", "sent", "skipped", "failed", "dead")

_WATCH_STATUS_SELECT = """
    SELECT w.id, w.key, w.name, w.origin, w.active, w.detector_state,
           p.target, p.store, p.last_state, p.last_price, p.last_checked_at, p.due_at,
           p.active AS product_active,
           (SELECT COUNT(*) FROM subscriptions s
             WHERE s.watch_id = w.id AND s.active AND NOT s.paused)::integer AS subscribers
    FROM watches w JOIN products p ON p.id = w.product_id
"""


class PostgresStatus(PostgresStore):
    """Read-only views of watches, history and the outbox."""

    async def watch_statuses(self, *, events_per_watch: int = 3) -> list[WatchStatus]:
        async with self._read():
            rows = await self._rows(_WATCH_STATUS_SELECT + " WHERE w.active ORDER BY w.id")
            event_rows = await self._rows(
                """
                SELECT id, watch_id, payload FROM (
                    SELECT e.id, e.watch_id, e.payload, ROW_NUMBER() OVER (
                        PARTITION BY e.watch_id ORDER BY e.id DESC) AS n
                    FROM events e JOIN watches w ON w.id = e.watch_id WHERE w.active) ranked
                WHERE n <= $1 ORDER BY id DESC
                """,
                events_per_watch,
            )
        events: dict[int, list[Event]] = {}
        for row in event_rows:
            events.setdefault(row["watch_id"], []).append(
                event_from_json(row["id"], row["payload"])
            )
        return [watch_status(row, events.get(row["id"], [])) for row in rows]

    async def history(self, watch_key: str, limit: int = 50) -> WatchHistory | None:
        async with self._read():
            row = await self._row(_WATCH_STATUS_SELECT + " WHERE w.key = $1", watch_key)
            if row is None:
                return None
            event_rows = await self._rows(
                "SELECT id, payload FROM events WHERE watch_id = $1 ORDER BY id DESC LIMIT $2",
                row["id"],
                limit,
            )
            obs_rows = await self._rows(
                "SELECT o.* FROM observations o JOIN watches w ON w.product_id = o.product_id"
                " WHERE w.id = $1 ORDER BY o.id DESC LIMIT $2",
                row["id"],
                limit,
            )
        events = tuple(event_from_json(r["id"], r["payload"]) for r in event_rows)
        return WatchHistory(
            status=watch_status(row, events[:3]),
            observations=tuple(observation_record(r) for r in obs_rows),
            events=events,
        )

    async def outbox_depth(self) -> dict[str, int]:
        async with self._read():
            rows = await self._rows("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
        depth = dict.fromkeys(DELIVERY_STATUSES, 0)
        depth.update({row["status"]: row["n"] for row in rows})
        return depth

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        async with self._read():
            rows = await self._rows(
                "SELECT d.*, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id"
                " WHERE d.status IN ('dead', 'failed') ORDER BY d.updated_at DESC, d.id DESC"
                " LIMIT $1",
                limit,
            )
        return [dead_letter(row) for row in rows]
