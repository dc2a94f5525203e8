"""The web UI's read model on SQLite: `watcher.storage.views.WebViews` as one more role.

It is not part of `SQLiteRepository`'s sum (its names are the pages' own: `watches`, `remove`):
the repository hands it out with `web_views()`, on the same connection and lock, so its reads
and writes take turns with every other role's as theirs do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from watcher.core.keys import web_watch_key
from watcher.core.model import Availability, WatchConditions
from watcher.storage.codec import conditions_to_json, event_from_json, from_epoch, to_epoch
from watcher.storage.rows import web_watch_row
from watcher.storage.sqlite.connection import SQLiteStore
from watcher.storage.views import Reading, StoreReadings, WatchRow

_WATCH_SELECT = """
    SELECT w.id, w.key, w.name, w.origin, w.conditions, p.id AS product_id, p.target, p.store,
           p.last_state, p.last_price, p.last_title, p.last_checked_at, p.due_at,
           p.active AS product_active,
           (SELECT o.reason FROM observations o WHERE o.product_id = p.id
             ORDER BY o.id DESC LIMIT 1) AS last_reason,
           (SELECT MAX(r.at) FROM restocks r WHERE r.product_id = p.id) AS last_restock_at,
           (SELECT COUNT(*) FROM subscriptions s WHERE s.watch_id = w.id AND s.active = 1)
             AS subscriptions,
           (SELECT COUNT(*) FROM subscriptions s WHERE s.watch_id = w.id AND s.active = 1
             AND s.paused = 1) AS paused_subscriptions
    FROM watches w JOIN products p ON p.id = w.product_id
    WHERE w.active = 1
"""


class SQLiteWebViews(SQLiteStore):
    """`WebViews` on the repository's connection (build it with `SQLiteRepository.web_views`)."""

    # --- reads -----------------------------------------------------------------------------------

    async def watches(self) -> list[WatchRow]:
        async with self._read():
            rows = await self._rows(_WATCH_SELECT + " ORDER BY w.id")
        return [web_watch_row(row) for row in rows]

    async def watch(self, key: str) -> WatchRow | None:
        async with self._read():
            row = await self._row(_WATCH_SELECT + " AND w.key = ?", (key,))
        return web_watch_row(row) if row is not None else None

    async def readings(
        self, product_ids: Sequence[int], since: datetime
    ) -> dict[int, list[Reading]]:
        """Each product's readings since `since`, plus its last one before (the state it held)."""
        ids = json.dumps(sorted(set(product_ids)))
        async with self._read():
            rows = await self._rows(
                """
                SELECT product_id, at, state, price FROM observations
                WHERE product_id IN (SELECT value FROM json_each(:ids)) AND at >= :since
                UNION ALL
                SELECT product_id, at, state, price FROM (
                    SELECT product_id, at, state, price, ROW_NUMBER() OVER (
                        PARTITION BY product_id ORDER BY at DESC) AS n
                    FROM observations
                    WHERE product_id IN (SELECT value FROM json_each(:ids)) AND at < :since)
                WHERE n = 1
                ORDER BY at
                """,
                {"ids": ids, "since": to_epoch(since)},
            )
        found: dict[int, list[Reading]] = {}
        for row in rows:
            moment = from_epoch(row["at"])
            assert moment is not None
            reading = Reading(moment, Availability(row["state"]), row["price"])
            found.setdefault(row["product_id"], []).append(reading)
        return found

    async def transitions(
        self, watch_ids: Sequence[int], since: datetime
    ) -> dict[int, list[Reading]]:
        """Each watch's events since `since` (plus its last one before) as readings.

        Events are kept for good while observations are pruned to the last few hundred per
        product, so events carry the timeline back past the oldest observation.
        """
        ids = json.dumps(sorted(set(watch_ids)))
        async with self._read():
            rows = await self._rows(
                """
                SELECT id, watch_id, payload FROM events
                WHERE watch_id IN (SELECT value FROM json_each(:ids)) AND created_at >= :since
                UNION ALL
                SELECT id, watch_id, payload FROM (
                    SELECT id, watch_id, payload, ROW_NUMBER() OVER (
                        PARTITION BY watch_id ORDER BY id DESC) AS n
                    FROM events
                    WHERE watch_id IN (SELECT value FROM json_each(:ids)) AND created_at < :since)
                WHERE n = 1
                ORDER BY id
                """,
                {"ids": ids, "since": to_epoch(since)},
            )
        found: dict[int, list[Reading]] = {}
        for row in rows:
            event = event_from_json(row["id"], row["payload"])
            reading = Reading(event.observed_at, event.state, event.price)
            found.setdefault(row["watch_id"], []).append(reading)
        return found

    async def subscribers_per_channel(self, watch_id: int) -> dict[str, int]:
        """Active subscriptions by channel: counts only, never who."""
        async with self._read():
            rows = await self._rows(
                "SELECT channel, COUNT(*) AS n FROM subscriptions"
                " WHERE watch_id = ? AND active = 1 GROUP BY channel ORDER BY channel",
                (watch_id,),
            )
        return {row["channel"]: row["n"] for row in rows}

    async def store_readings(self, since: datetime) -> list[StoreReadings]:
        """How many readings per store since `since`, and how many were `unknown`."""
        async with self._read():
            rows = await self._rows(
                "SELECT COALESCE(p.store, '-') AS store, COUNT(*) AS total,"
                " SUM(o.state = 'unknown') AS unknown"
                " FROM observations o JOIN products p ON p.id = o.product_id"
                " WHERE o.at >= ? GROUP BY 1 ORDER BY 1",
                (to_epoch(since),),
            )
        return [StoreReadings(row["store"], row["unknown"] or 0, row["total"]) for row in rows]

    # --- operator actions ------------------------------------------------------------------------

    async def check_now(self, key: str, now: datetime) -> bool:
        """Make the watch's product due now (the scheduler takes it at its next claim)."""
        async with self._write():
            changed = await self._run(
                "UPDATE products SET due_at = MIN(due_at, ?) WHERE active = 1 AND id ="
                " (SELECT product_id FROM watches WHERE key = ? AND active = 1)",
                (to_epoch(now), key),
            )
        return changed > 0

    async def set_paused(self, key: str, paused: bool) -> bool:
        """Pause or resume every message of a watch; it is still checked meanwhile."""
        async with self._write():
            watch = await self._row(
                "SELECT id, product_id FROM watches WHERE key = ? AND active = 1", (key,)
            )
            if watch is None:
                return False
            changed = await self._run(
                "UPDATE subscriptions SET paused = ? WHERE active = 1 AND watch_id = ?",
                (int(paused), watch["id"]),
            )
            await self._refresh_products([watch["product_id"]])
        return changed > 0

    async def remove(self, key: str, now: datetime) -> bool:
        """End a watch added through the web (others belong to the YAML or to a chat user)."""
        stamp = to_epoch(now)
        async with self._write():
            row = await self._row(
                "UPDATE watches SET active = 0, detector_state = NULL, updated_at = ?"
                " WHERE key = ? AND origin = 'web' AND active = 1 RETURNING id, product_id",
                (stamp, key),
            )
            if row is None:
                return False
            await self._run(
                "UPDATE subscriptions SET active = 0, ended_at = ?"
                " WHERE watch_id = ? AND active = 1",
                (stamp, row["id"]),
            )
            await self._refresh_products([row["product_id"]])
        return True

    async def retry_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Send a dead or failed delivery again, with fresh attempts."""
        stamp = to_epoch(now)
        async with self._write():
            changed = await self._run(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND status IN ('dead', 'failed')",
                (stamp, stamp, delivery_id),
            )
        return changed > 0

    async def add_watch(
        self,
        target: str,
        store: str | None,
        conditions: WatchConditions,
        recipients: Sequence[tuple[str, str]],
        now: datetime,
        *,
        name: str,
    ) -> str:
        """Store a watch with origin `web` and its (channel, recipient) subscriptions; its key."""
        stamp = to_epoch(now)
        key = web_watch_key(target, conditions)
        async with self._write():
            product_id = await self._ensure_product(target, store, stamp)
            watch = await self._row(
                """
                INSERT INTO watches (key, name, product_id, origin, conditions, active,
                    created_at, updated_at)
                VALUES (?, ?, ?, 'web', ?, 1, ?, ?)
                ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = 1,
                    updated_at = excluded.updated_at
                WHERE origin = 'web'
                RETURNING id
                """,
                (key, name, product_id, conditions_to_json(conditions), stamp, stamp),
            )
            assert watch is not None  # the key is a web key: the upsert always returns
            await self._conn.executemany(
                "INSERT INTO subscriptions (watch_id, channel, recipient, origin, created_at)"
                " VALUES (?, ?, ?, 'web', ?) ON CONFLICT (watch_id, channel, recipient)"
                " DO UPDATE SET active = 1, ended_at = NULL",
                [(watch["id"], channel, recipient, stamp) for channel, recipient in recipients],
            )
            await self._run(
                "UPDATE products SET due_at = MIN(due_at, ?) WHERE id = ?", (stamp, product_id)
            )
            await self._refresh_products([product_id])
        return key
