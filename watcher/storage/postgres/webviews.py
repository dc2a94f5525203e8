"""The web UI's read model on PostgreSQL: `watcher.storage.views.WebViews` as one more role.

As on SQLite it is not part of `PostgresRepository`'s sum (its names are the pages' own:
`watches`, `remove`): the repository hands it out with `web_views()`, on the same pool. Rows are
decoded by the shared mappers (`watcher.storage.rows.web_watch_row`, the codecs).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from watcher.core.keys import web_watch_key
from watcher.core.model import Availability, WatchConditions
from watcher.storage.codec import conditions_to_json, event_from_json, from_epoch, to_epoch
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.rows import web_watch_row
from watcher.storage.views import Reading, StoreReadings, WatchRow

_WATCH_SELECT = """
    SELECT w.id, w.key, w.name, w.origin, w.conditions, p.id AS product_id, p.target, p.store,
           p.last_state, p.last_price, p.last_title, p.last_checked_at, p.due_at,
           p.active AS product_active,
           (SELECT o.reason FROM observations o WHERE o.product_id = p.id
             ORDER BY o.id DESC LIMIT 1) AS last_reason,
           (SELECT MAX(r.at) FROM restocks r WHERE r.product_id = p.id) AS last_restock_at,
           (SELECT COUNT(*) FROM subscriptions s WHERE s.watch_id = w.id AND s.active)
             AS subscriptions,
           (SELECT COUNT(*) FROM subscriptions s WHERE s.watch_id = w.id AND s.active
             AND s.paused) AS paused_subscriptions
    FROM watches w JOIN products p ON p.id = w.product_id
    WHERE w.active
"""


async def ensure_product(
    conn: asyncpg.Connection, target: str, store: str | None, stamp: float
) -> int:
    """The product row of `target` (made if new); its id. A store once known is kept."""
    product_id: int = await conn.fetchval(
        "INSERT INTO products AS p (target, store, due_at, created_at) VALUES ($1, $2, $3, $3)"
        " ON CONFLICT (target) DO UPDATE SET store = COALESCE(p.store, excluded.store)"
        " RETURNING id",
        target,
        store,
        stamp,
    )
    return product_id


def _storable(key: str) -> bool:
    """PostgreSQL text holds no NUL: a key with one (a hostile path) names no stored watch."""
    return "\x00" not in key


class PostgresWebViews(PostgresStore):
    """`WebViews` on the repository's pool (build it with `PostgresRepository.web_views`)."""

    # --- reads -----------------------------------------------------------------------------------

    async def watches(self) -> list[WatchRow]:
        async with self._read():
            rows = await self._rows(_WATCH_SELECT + " ORDER BY w.id")
        return [web_watch_row(row) for row in rows]

    async def watch(self, key: str) -> WatchRow | None:
        if not _storable(key):
            return None
        async with self._read():
            row = await self._row(_WATCH_SELECT + " AND w.key = $1", key)
        return web_watch_row(row) if row is not None else None

    async def readings(
        self, product_ids: Sequence[int], since: datetime
    ) -> dict[int, list[Reading]]:
        """Each product's readings since `since`, plus its last one before (the state it held)."""
        async with self._read():
            rows = await self._rows(
                """
                SELECT product_id, at, state, price FROM observations
                WHERE product_id = ANY($1::bigint[]) AND at >= $2
                UNION ALL
                SELECT before.product_id, before.at, before.state, before.price
                FROM unnest($1::bigint[]) AS ids (id)
                CROSS JOIN LATERAL (
                    SELECT product_id, at, state, price FROM observations
                    WHERE product_id = ids.id AND at < $2
                    ORDER BY at DESC LIMIT 1) AS before
                ORDER BY at
                """,
                sorted(set(product_ids)),
                to_epoch(since),
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
        async with self._read():
            rows = await self._rows(
                """
                SELECT id, watch_id, payload FROM events
                WHERE watch_id = ANY($1::bigint[]) AND created_at >= $2
                UNION ALL
                SELECT before.id, before.watch_id, before.payload
                FROM unnest($1::bigint[]) AS ids (id)
                CROSS JOIN LATERAL (
                    SELECT id, watch_id, payload FROM events
                    WHERE watch_id = ids.id AND created_at < $2
                    ORDER BY id DESC LIMIT 1) AS before
                ORDER BY id
                """,
                sorted(set(watch_ids)),
                to_epoch(since),
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
                " WHERE watch_id = $1 AND active GROUP BY channel ORDER BY channel",
                watch_id,
            )
        return {row["channel"]: int(row["n"]) for row in rows}

    async def store_readings(self, since: datetime) -> list[StoreReadings]:
        """How many readings per store since `since`, and how many were `unknown`."""
        async with self._read():
            rows = await self._rows(
                "SELECT COALESCE(p.store, '-') AS store, COUNT(*) AS total,"
                " COUNT(*) FILTER (WHERE o.state = 'unknown') AS unknown"
                " FROM observations o JOIN products p ON p.id = o.product_id"
                " WHERE o.at >= $1 GROUP BY 1 ORDER BY 1",
                to_epoch(since),
            )
        return [StoreReadings(row["store"], int(row["unknown"]), int(row["total"])) for row in rows]

    # --- operator actions ------------------------------------------------------------------------

    async def check_now(self, key: str, now: datetime) -> bool:
        """Make the watch's product due now (the scheduler takes it at its next claim)."""
        if not _storable(key):
            return False
        async with self._write():
            changed = await self._run(
                "UPDATE products SET due_at = LEAST(due_at, $1) WHERE active AND id ="
                " (SELECT product_id FROM watches WHERE key = $2 AND active)",
                to_epoch(now),
                key,
            )
        return changed > 0

    async def set_paused(self, key: str, paused: bool) -> bool:
        """Pause or resume every message of a watch; it is still checked meanwhile."""
        if not _storable(key):
            return False
        async with self._write():
            watch = await self._row(
                "SELECT id, product_id FROM watches WHERE key = $1 AND active", key
            )
            if watch is None:
                return False
            changed = await self._run(
                "UPDATE subscriptions SET paused = $1 WHERE active AND watch_id = $2",
                paused,
                watch["id"],
            )
            await self._refresh_products([watch["product_id"]])
        return changed > 0

    async def remove(self, key: str, now: datetime) -> bool:
        """End a watch added through the web (others belong to the YAML or to a chat user)."""
        if not _storable(key):
            return False
        stamp = to_epoch(now)
        async with self._write():
            row = await self._row(
                "UPDATE watches SET active = FALSE, detector_state = NULL, updated_at = $1"
                " WHERE key = $2 AND origin = 'web' AND active RETURNING id, product_id",
                stamp,
                key,
            )
            if row is None:
                return False
            await self._run(
                "UPDATE subscriptions SET active = FALSE, ended_at = $1"
                " WHERE watch_id = $2 AND active",
                stamp,
                row["id"],
            )
            await self._refresh_products([row["product_id"]])
        return True

    async def retry_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Send a dead or failed delivery again, with fresh attempts."""
        stamp = to_epoch(now)
        async with self._write():
            changed = await self._run(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1,"
                " last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $1"
                " WHERE id = $2 AND status IN ('dead', 'failed')",
                stamp,
                delivery_id,
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
            product_id = await ensure_product(self._conn(), target, store, stamp)
            watch_id: int | None = await self._conn().fetchval(
                """
                INSERT INTO watches AS w (key, name, product_id, origin, conditions, active,
                    created_at, updated_at)
                VALUES ($1, $2, $3, 'web', $4, TRUE, $5, $5)
                ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = TRUE,
                    updated_at = excluded.updated_at
                WHERE w.origin = 'web'
                RETURNING id
                """,
                key,
                name,
                product_id,
                conditions_to_json(conditions),
                stamp,
            )
            assert watch_id is not None  # the key is a web key: the upsert always returns
            await self._many(
                "INSERT INTO subscriptions (watch_id, channel, recipient, origin, created_at)"
                " VALUES ($1, $2, $3, 'web', $4) ON CONFLICT (watch_id, channel, recipient)"
                " DO UPDATE SET active = TRUE, ended_at = NULL",
                [(watch_id, channel, recipient, stamp) for channel, recipient in recipients],
            )
            await self._run(
                "UPDATE products SET due_at = LEAST(due_at, $1) WHERE id = $2", stamp, product_id
            )
            await self._refresh_products([product_id])
        return key
