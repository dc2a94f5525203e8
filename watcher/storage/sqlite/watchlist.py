"""The operator's watchlist on SQLite: YAML watches, their products and subscriptions."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

from watcher.core.keys import notify_recipients
from watcher.core.model import (
    Watch,
)
from watcher.storage.codec import (
    ids_json,
    to_epoch,
)
from watcher.storage.rows import (
    yaml_watch_params,
)
from watcher.storage.sqlite.connection import SQLiteStore


class SQLiteWatchlist(SQLiteStore):
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
            product_ids = await self._upsert_yaml_products(watches, due, stamp)
            watch_ids = await self._upsert_yaml_watches(watches, product_ids, stamp)
            await self._run(
                "UPDATE watches SET active = 0, updated_at = ? WHERE origin = 'yaml'"
                " AND active = 1 AND key NOT IN (SELECT value FROM json_each(?))",
                (stamp, json.dumps([w.key for w in watches])),
            )
            await self._sync_yaml_subscriptions(watches, watch_ids, stamp)
            await self._refresh_products()

    async def _upsert_yaml_products(
        self, watches: Sequence[Watch], due: dict[str, float], stamp: float
    ) -> dict[str, int]:
        await self._conn.executemany(
            "INSERT INTO products (target, store, due_at, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (target) DO UPDATE SET store = COALESCE(excluded.store, store)",
            [(w.target, w.store, due[w.target], stamp) for w in watches],
        )
        rows = await self._rows(
            "SELECT id, target FROM products WHERE target IN (SELECT value FROM json_each(?))",
            (json.dumps(list(due)),),
        )
        return {row["target"]: row["id"] for row in rows}

    async def _upsert_yaml_watches(
        self, watches: Sequence[Watch], product_ids: dict[str, int], stamp: float
    ) -> dict[str, int]:
        # A watch keeps its detector state unless it now watches another product.
        await self._conn.executemany(
            """
            INSERT INTO watches (key, name, product_id, origin, conditions, once,
                notify_on_first, rules, interval_s, stores, active, created_at, updated_at)
            VALUES (?, ?, ?, 'yaml', ?, ?, ?, ?, ?, ?, 1, ?, ?)
            ON CONFLICT (key) DO UPDATE SET
                detector_state = CASE WHEN product_id = excluded.product_id
                                      THEN detector_state END,
                name = excluded.name, product_id = excluded.product_id,
                conditions = excluded.conditions, once = excluded.once,
                notify_on_first = excluded.notify_on_first, rules = excluded.rules,
                interval_s = excluded.interval_s, stores = excluded.stores,
                active = 1, updated_at = excluded.updated_at
            WHERE origin = 'yaml'
            """,
            [yaml_watch_params(w, product_ids[w.target], stamp) for w in watches],
        )
        rows = await self._rows(
            "SELECT id, key FROM watches WHERE origin = 'yaml'"
            " AND key IN (SELECT value FROM json_each(?))",
            (json.dumps([w.key for w in watches]),),
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
        await self._conn.executemany(
            "INSERT INTO subscriptions (watch_id, channel, recipient, origin, created_at)"
            " VALUES (?, ?, ?, 'yaml', ?)"
            " ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET active = 1, ended_at = NULL"
            " WHERE origin = 'yaml' AND opted_out_at IS NULL",
            [(*row, stamp) for row in wanted],
        )
        await self._run(
            "CREATE TEMP TABLE IF NOT EXISTS wanted_subscriptions ("
            " watch_id INTEGER, channel TEXT, recipient TEXT,"
            " PRIMARY KEY (watch_id, channel, recipient))"
        )
        await self._run("DELETE FROM temp.wanted_subscriptions")
        await self._conn.executemany(
            "INSERT OR IGNORE INTO temp.wanted_subscriptions VALUES (?, ?, ?)", wanted
        )
        await self._run(
            """
            UPDATE subscriptions SET active = 0, ended_at = ?
            WHERE origin = 'yaml' AND active = 1
              AND watch_id IN (SELECT value FROM json_each(?))
              AND NOT EXISTS (SELECT 1 FROM temp.wanted_subscriptions t
                              WHERE t.watch_id = subscriptions.watch_id
                                AND t.channel = subscriptions.channel
                                AND t.recipient = subscriptions.recipient)
            """,
            (stamp, ids_json(watch_ids.values())),
        )
