"""The rules several roles share: a product row per target, and what follows on products from
their watches and subscriptions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from watcher.storage.connector import Query, Role

ENSURE_PRODUCT = Query(
    "INSERT INTO products AS p (target, store, due_at, created_at)"
    " VALUES (:target, :store, :stamp, :stamp)"
    " ON CONFLICT (target) DO UPDATE SET store = COALESCE(p.store, excluded.store)"
    " RETURNING id"
)

# A chat watch lives while it has an active subscription (it restarts from a fresh detector state
# when it comes back); a product is polled while it has an active watch, at the shortest interval
# of those, with its waiting subscribers as priority. PostgreSQL writes only the rows whose values
# change (no dead tuples for nothing).
_SQLITE_REFRESH_WATCHES = """
    UPDATE watches SET
        active = EXISTS (SELECT 1 FROM subscriptions s
                         WHERE s.watch_id = watches.id AND s.active = 1),
        detector_state = CASE WHEN active = 0 THEN NULL ELSE detector_state END
    WHERE origin = 'chat' {scope}
"""
_SQLITE_REFRESH_PRODUCTS = """
    UPDATE products SET
        active = EXISTS (SELECT 1 FROM watches w
                         WHERE w.product_id = products.id AND w.active = 1),
        interval_s = (SELECT MIN(w.interval_s) FROM watches w
                      WHERE w.product_id = products.id AND w.active = 1),
        subscribers = (SELECT COUNT(*) FROM subscriptions s
                       JOIN watches w ON w.id = s.watch_id
                       WHERE w.product_id = products.id AND w.active = 1
                         AND s.active = 1 AND s.paused = 0)
    WHERE 1 {scope}
"""
_POSTGRES_REFRESH_WATCHES = """
    UPDATE watches w SET active = x.live,
        detector_state = CASE WHEN w.active THEN w.detector_state END
    FROM (SELECT w2.id, EXISTS (SELECT 1 FROM subscriptions s
                                WHERE s.watch_id = w2.id AND s.active) AS live
          FROM watches w2
          WHERE w2.origin = 'chat' AND (:ids::bigint[] IS NULL
                                        OR w2.product_id = ANY(:ids::bigint[]))) x
    WHERE w.id = x.id AND (w.active IS DISTINCT FROM x.live
                           OR (NOT w.active AND w.detector_state IS NOT NULL))
"""
_POSTGRES_REFRESH_PRODUCTS = """
    UPDATE products p SET active = x.live, interval_s = x.interval_s,
        subscribers = x.subscribers
    FROM (SELECT p2.id,
            EXISTS (SELECT 1 FROM watches w WHERE w.product_id = p2.id AND w.active)
                AS live,
            (SELECT MIN(w.interval_s) FROM watches w
              WHERE w.product_id = p2.id AND w.active) AS interval_s,
            (SELECT COUNT(*) FROM subscriptions s JOIN watches w ON w.id = s.watch_id
              WHERE w.product_id = p2.id AND w.active AND s.active AND NOT s.paused)
                AS subscribers
          FROM products p2
          WHERE :ids::bigint[] IS NULL OR p2.id = ANY(:ids::bigint[])) x
    WHERE p.id = x.id AND (p.active IS DISTINCT FROM x.live
                           OR p.interval_s IS DISTINCT FROM x.interval_s
                           OR p.subscribers IS DISTINCT FROM x.subscribers)
"""
REFRESH_ALL_WATCHES = Query(
    sqlite=_SQLITE_REFRESH_WATCHES.format(scope=""), postgres=_POSTGRES_REFRESH_WATCHES
)
REFRESH_ALL_PRODUCTS = Query(
    sqlite=_SQLITE_REFRESH_PRODUCTS.format(scope=""), postgres=_POSTGRES_REFRESH_PRODUCTS
)
REFRESH_WATCHES = Query(
    sqlite=_SQLITE_REFRESH_WATCHES.format(
        scope="AND product_id IN (SELECT value FROM json_each(:ids))"
    ),
    postgres=_POSTGRES_REFRESH_WATCHES,
)
REFRESH_PRODUCTS = Query(
    sqlite=_SQLITE_REFRESH_PRODUCTS.format(scope="AND id IN (SELECT value FROM json_each(:ids))"),
    postgres=_POSTGRES_REFRESH_PRODUCTS,
)
SKIP_PENDING_OF_SUBSCRIPTIONS = Query(
    sqlite="UPDATE deliveries SET status = 'skipped', last_error = :why, updated_at = :stamp,"
    " lease_owner = NULL, lease_until = NULL WHERE status = 'pending'"
    " AND subscription_id IN (SELECT value FROM json_each(:ids))",
    postgres="UPDATE deliveries SET status = 'skipped', last_error = :why, updated_at = :stamp,"
    " lease_owner = NULL, lease_until = NULL WHERE status = 'pending'"
    " AND subscription_id = ANY(:ids::bigint[])",
)
PRODUCTS_OF_WATCHES = Query(
    sqlite="SELECT DISTINCT product_id FROM watches"
    " WHERE id IN (SELECT value FROM json_each(:ids))",
    postgres="SELECT DISTINCT product_id FROM watches WHERE id = ANY(:ids::bigint[])",
)


def ending_subscriptions(where: str, postgres_where: str | None = None) -> Query:
    """The statement that ends the active subscriptions `where` picks (its parameters named,
    besides :stamp; PostgreSQL's condition apart where it differs), marked opted out, returning
    their ids and watches."""
    return Query(
        sqlite="UPDATE subscriptions SET active = 0, ended_at = :stamp, opted_out_at = :stamp"
        f" WHERE active = 1 AND {where} RETURNING id, watch_id",
        postgres="UPDATE subscriptions SET active = FALSE, ended_at = :stamp,"
        f" opted_out_at = :stamp WHERE active AND {postgres_where or where} RETURNING id, watch_id",
    )


END_RECIPIENT = ending_subscriptions("channel = :channel AND recipient = :recipient")
END_RECIPIENT_SUBSCRIPTION = ending_subscriptions(
    "id = :id AND channel = :channel AND recipient = :recipient"
)


class Products(Role):
    """Product rows, and the state products and watches derive from subscriptions."""

    async def _ensure_product(self, target: str, store: str | None, stamp: float) -> int:
        """The product row of `target` (made if new); its id. A store once known is kept."""
        product_id = await self._db.value(ENSURE_PRODUCT, target=target, store=store, stamp=stamp)
        return int(product_id)

    async def _refresh_products(self, product_ids: Iterable[int] | None = None) -> None:
        """Recompute what follows from watches and subscriptions (all products when None)."""
        if product_ids is None:
            await self._db.run(REFRESH_ALL_WATCHES, ids=None)
            await self._db.run(REFRESH_ALL_PRODUCTS, ids=None)
            return
        ids = self._db.ids(product_ids)
        await self._db.run(REFRESH_WATCHES, ids=ids)
        await self._db.run(REFRESH_PRODUCTS, ids=ids)

    async def _end_matching(self, ending: Query, stamp: float, why: str, **params: Any) -> int:
        """End the subscriptions `ending` (from `ending_subscriptions`) picks, skip their pending
        deliveries, refresh; how many ended.

        Every caller ends them on the recipient's own word (unsubscribe, /stop, removal, a
        blocked bot), so they are marked opted out: a watchlist reload does not bring them back.
        """
        rows = await self._db.rows(ending, stamp=stamp, **params)
        if not rows:
            return 0
        await self._db.run(
            SKIP_PENDING_OF_SUBSCRIPTIONS,
            why=why,
            stamp=stamp,
            ids=self._db.ids(row["id"] for row in rows),
        )
        await self._refresh_watch_products([row["watch_id"] for row in rows])
        return len(rows)

    async def _refresh_watch_products(self, watch_ids: Sequence[int]) -> None:
        rows = await self._db.rows(PRODUCTS_OF_WATCHES, ids=self._db.ids(watch_ids))
        await self._refresh_products([row["product_id"] for row in rows])
