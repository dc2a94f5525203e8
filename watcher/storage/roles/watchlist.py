"""The operator's watchlist: YAML watches, their products and subscriptions.

Workers sync one at a time (`hold_lock`): two workers reloading the same YAML together would
otherwise race on the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from watcher.core.keys import notify_recipients
from watcher.core.model import Watch
from watcher.storage.codec import to_epoch
from watcher.storage.connector import Query
from watcher.storage.roles.products import Products
from watcher.storage.rows import yaml_watch_params

WATCHLIST_LOCK = "watchlist"

RETIRE_YAML_WATCHES = Query(
    sqlite="UPDATE watches SET active = 0, updated_at = :stamp WHERE origin = 'yaml'"
    " AND active = 1 AND key NOT IN (SELECT value FROM json_each(:keys))",
    postgres="UPDATE watches SET active = FALSE, updated_at = :stamp WHERE origin = 'yaml'"
    " AND active AND NOT (key = ANY(:keys::text[]))",
)
UPSERT_YAML_PRODUCT = Query(
    sqlite="INSERT INTO products (target, store, due_at, created_at)"
    " VALUES (:target, :store, :due_at, :stamp)"
    " ON CONFLICT (target) DO UPDATE SET store = COALESCE(excluded.store, store)",
    postgres="INSERT INTO products AS p (target, store, due_at, created_at)"
    " VALUES (:target, :store, :due_at, :stamp)"
    " ON CONFLICT (target) DO UPDATE SET store = COALESCE(excluded.store, p.store)"
    " WHERE p.store IS DISTINCT FROM COALESCE(excluded.store, p.store)",
)
PRODUCT_IDS = Query(
    sqlite="SELECT id, target FROM products"
    " WHERE target IN (SELECT value FROM json_each(:targets))",
    postgres="SELECT id, target FROM products WHERE target = ANY(:targets::text[])",
)
# A watch keeps its detector state unless it now watches another product.
_UPSERT_YAML_WATCH = """
    INSERT INTO watches AS w (key, name, product_id, origin, conditions, once,
        notify_on_first, rules, interval_s, stores, active, created_at, updated_at)
    VALUES (:key, :name, :product_id, 'yaml', :conditions, :once, :notify_on_first, :rules,
        :interval_s, :stores, {true}, :stamp, :stamp)
    ON CONFLICT (key) DO UPDATE SET
        detector_state = CASE WHEN w.product_id = excluded.product_id
                              THEN w.detector_state END,
        name = excluded.name, product_id = excluded.product_id,
        conditions = excluded.conditions, once = excluded.once,
        notify_on_first = excluded.notify_on_first, rules = excluded.rules,
        interval_s = excluded.interval_s, stores = excluded.stores,
        active = {true}, updated_at = excluded.updated_at
    WHERE w.origin = 'yaml'
"""
UPSERT_YAML_WATCH = Query(
    sqlite=_UPSERT_YAML_WATCH.format(true="1"), postgres=_UPSERT_YAML_WATCH.format(true="TRUE")
)
YAML_WATCH_IDS = Query(
    sqlite="SELECT id, key FROM watches WHERE origin = 'yaml'"
    " AND key IN (SELECT value FROM json_each(:keys))",
    postgres="SELECT id, key FROM watches WHERE origin = 'yaml' AND key = ANY(:keys::text[])",
)
UPSERT_YAML_SUBSCRIPTION = Query(
    sqlite="INSERT INTO subscriptions (watch_id, channel, recipient, origin, created_at)"
    " VALUES (:watch_id, :channel, :recipient, 'yaml', :stamp)"
    " ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET active = 1, ended_at = NULL"
    " WHERE origin = 'yaml' AND opted_out_at IS NULL",
    postgres="INSERT INTO subscriptions AS s (watch_id, channel, recipient, origin, created_at)"
    " VALUES (:watch_id, :channel, :recipient, 'yaml', :stamp)"
    " ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET active = TRUE, ended_at = NULL"
    " WHERE s.origin = 'yaml' AND s.opted_out_at IS NULL",
)
# SQLite compares the wanted subscriptions through a temporary table; PostgreSQL unnests them
# from three arrays in the statement that ends the others.
MAKE_WANTED_TABLE = Query(
    "CREATE TEMP TABLE IF NOT EXISTS wanted_subscriptions ("
    " watch_id INTEGER, channel TEXT, recipient TEXT,"
    " PRIMARY KEY (watch_id, channel, recipient))",
    only="sqlite",
)
CLEAR_WANTED_TABLE = Query("DELETE FROM temp.wanted_subscriptions", only="sqlite")
FILL_WANTED_TABLE = Query(
    "INSERT OR IGNORE INTO temp.wanted_subscriptions VALUES (:watch_id, :channel, :recipient)",
    only="sqlite",
)
END_UNWANTED_YAML_SUBSCRIPTIONS = Query(
    sqlite="""
    UPDATE subscriptions SET active = 0, ended_at = :stamp
    WHERE origin = 'yaml' AND active = 1
      AND watch_id IN (SELECT value FROM json_each(:watch_ids))
      AND NOT EXISTS (SELECT 1 FROM temp.wanted_subscriptions t
                      WHERE t.watch_id = subscriptions.watch_id
                        AND t.channel = subscriptions.channel
                        AND t.recipient = subscriptions.recipient)
    """,
    postgres="""
    UPDATE subscriptions s SET active = FALSE, ended_at = :stamp
    WHERE s.origin = 'yaml' AND s.active AND s.watch_id = ANY(:watch_ids::bigint[])
      AND NOT EXISTS (
        SELECT 1 FROM unnest(:wanted_watches::bigint[], :wanted_channels::text[],
                             :wanted_recipients::text[]) AS t (w, c, r)
        WHERE t.w = s.watch_id AND t.c = s.channel AND t.r = s.recipient)
    """,
)


class Watchlist(Products):
    """Keeps the stored YAML watches in step with the watchlist."""

    async def sync_yaml_watches(
        self,
        watches: Sequence[Watch],
        now: datetime,
        first_due: Callable[[str], datetime] | None = None,
    ) -> None:
        stamp = to_epoch(now)
        due = {w.target: to_epoch(first_due(w.target)) if first_due else stamp for w in watches}
        async with self._db.write():
            await self._db.hold_lock(WATCHLIST_LOCK)
            product_ids = await self._upsert_yaml_products(watches, due, stamp)
            watch_ids = await self._upsert_yaml_watches(watches, product_ids, stamp)
            await self._db.run(
                RETIRE_YAML_WATCHES, stamp=stamp, keys=self._db.array(w.key for w in watches)
            )
            await self._sync_yaml_subscriptions(watches, watch_ids, stamp)
            await self._refresh_products()

    async def _upsert_yaml_products(
        self, watches: Sequence[Watch], due: dict[str, float], stamp: float
    ) -> dict[str, int]:
        await self._db.run_many(
            UPSERT_YAML_PRODUCT,
            (
                {"target": w.target, "store": w.store, "due_at": due[w.target], "stamp": stamp}
                for w in watches
            ),
        )
        rows = await self._db.rows(PRODUCT_IDS, targets=self._db.array(due))
        return {row["target"]: row["id"] for row in rows}

    async def _upsert_yaml_watches(
        self, watches: Sequence[Watch], product_ids: dict[str, int], stamp: float
    ) -> dict[str, int]:
        await self._db.run_many(
            UPSERT_YAML_WATCH,
            (yaml_watch_params(w, product_ids[w.target], stamp) for w in watches),
        )
        rows = await self._db.rows(YAML_WATCH_IDS, keys=self._db.array(w.key for w in watches))
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
        columns = ("watch_id", "channel", "recipient")
        await self._db.run_many(
            UPSERT_YAML_SUBSCRIPTION,
            ({**dict(zip(columns, row, strict=True)), "stamp": stamp} for row in wanted),
        )
        await self._db.run(MAKE_WANTED_TABLE)
        await self._db.run(CLEAR_WANTED_TABLE)
        await self._db.run_many(
            FILL_WANTED_TABLE, (dict(zip(columns, row, strict=True)) for row in wanted)
        )
        await self._db.run(
            END_UNWANTED_YAML_SUBSCRIPTIONS,
            stamp=stamp,
            watch_ids=self._db.ids(watch_ids.values()),
            wanted_watches=[row[0] for row in wanted],
            wanted_channels=[row[1] for row in wanted],
            wanted_recipients=[row[2] for row in wanted],
        )
