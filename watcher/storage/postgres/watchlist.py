"""The operator's watchlist on PostgreSQL: YAML watches, their products and subscriptions.

Workers sync one at a time (a transaction-scoped advisory lock): two workers reloading the same
YAML together would otherwise race on the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from watcher.core.keys import notify_recipients
from watcher.core.model import Watch
from watcher.storage.codec import to_epoch
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.postgres.signals import LOCK_KEY_SQL
from watcher.storage.rows import yaml_watch_params

WATCHLIST_LOCK = "watchlist"


class PostgresWatchlist(PostgresStore):
    """Keeps the stored YAML watches in step with the watchlist."""

    async def sync_yaml_watches(
        self,
        watches: Sequence[Watch],
        now: datetime,
        first_due: Callable[[str], datetime] | None = None,
    ) -> None:
        stamp = to_epoch(now)
        due = {w.target: to_epoch(first_due(w.target)) if first_due else stamp for w in watches}
        async with self._write():
            await self._run(f"SELECT pg_advisory_xact_lock({LOCK_KEY_SQL})", WATCHLIST_LOCK)
            product_ids = await self._upsert_yaml_products(watches, due, stamp)
            watch_ids = await self._upsert_yaml_watches(watches, product_ids, stamp)
            await self._run(
                "UPDATE watches SET active = FALSE, updated_at = $1 WHERE origin = 'yaml'"
                " AND active AND NOT (key = ANY($2::text[]))",
                stamp,
                [w.key for w in watches],
            )
            await self._sync_yaml_subscriptions(watches, watch_ids, stamp)
            await self._refresh_products()

    async def _upsert_yaml_products(
        self, watches: Sequence[Watch], due: dict[str, float], stamp: float
    ) -> dict[str, int]:
        await self._many(
            "INSERT INTO products AS p (target, store, due_at, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (target) DO UPDATE SET store = COALESCE(excluded.store, p.store)"
            " WHERE p.store IS DISTINCT FROM COALESCE(excluded.store, p.store)",
            [(w.target, w.store, due[w.target], stamp) for w in watches],
        )
        rows = await self._rows(
            "SELECT id, target FROM products WHERE target = ANY($1::text[])", list(due)
        )
        return {row["target"]: row["id"] for row in rows}

    async def _upsert_yaml_watches(
        self, watches: Sequence[Watch], product_ids: dict[str, int], stamp: float
    ) -> dict[str, int]:
        # A watch keeps its detector state unless it now watches another product.
        await self._many(
            """
            INSERT INTO watches AS w (key, name, product_id, origin, conditions, once,
                notify_on_first, rules, interval_s, stores, active, created_at, updated_at)
            VALUES ($1, $2, $3, 'yaml', $4, $5, $6, $7, $8, $9, TRUE, $10, $11)
            ON CONFLICT (key) DO UPDATE SET
                detector_state = CASE WHEN w.product_id = excluded.product_id
                                      THEN w.detector_state END,
                name = excluded.name, product_id = excluded.product_id,
                conditions = excluded.conditions, once = excluded.once,
                notify_on_first = excluded.notify_on_first, rules = excluded.rules,
                interval_s = excluded.interval_s, stores = excluded.stores,
                active = TRUE, updated_at = excluded.updated_at
            WHERE w.origin = 'yaml'
            """,
            [yaml_watch_params(w, product_ids[w.target], stamp) for w in watches],
        )
        rows = await self._rows(
            "SELECT id, key FROM watches WHERE origin = 'yaml' AND key = ANY($1::text[])",
            [w.key for w in watches],
        )
        return {row["key"]: row["id"] for row in rows}

    async def _sync_yaml_subscriptions(
        self, watches: Sequence[Watch], watch_ids: dict[str, int], stamp: float
    ) -> None:
        wanted = [
            (watch_ids[w.key], channel, recipient)
            for w in watches
            if w.key in watch_ids
            for channel, recipient in notify_recipients(w)
        ]
        await self._many(
            "INSERT INTO subscriptions AS s (watch_id, channel, recipient, origin, created_at)"
            " VALUES ($1, $2, $3, 'yaml', $4)"
            " ON CONFLICT (watch_id, channel, recipient) DO UPDATE"
            " SET active = TRUE, ended_at = NULL"
            " WHERE s.origin = 'yaml' AND s.opted_out_at IS NULL",
            [(*row, stamp) for row in wanted],
        )
        await self._run(
            """
            UPDATE subscriptions s SET active = FALSE, ended_at = $1
            WHERE s.origin = 'yaml' AND s.active AND s.watch_id = ANY($2::bigint[])
              AND NOT EXISTS (
                SELECT 1 FROM unnest($3::bigint[], $4::text[], $5::text[]) AS t (w, c, r)
                WHERE t.w = s.watch_id AND t.c = s.channel AND t.r = s.recipient)
            """,
            stamp,
            list(watch_ids.values()),
            [row[0] for row in wanted],
            [row[1] for row in wanted],
            [row[2] for row in wanted],
        )
