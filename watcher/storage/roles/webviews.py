"""The web UI's read model: `watcher.storage.views.WebViews` as one more role.

It is not part of the repository's sum (its names are the pages' own: `watches`, `remove`): the
repository hands it out with `web_views()`, on its own connector, so its reads and writes take
turns with every other role's as theirs do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.core.keys import web_watch_key
from watcher.core.model import Availability, WatchConditions
from watcher.storage.codec import conditions_to_json, event_from_json, from_epoch, to_epoch
from watcher.storage.connector import Connector, Query
from watcher.storage.roles.products import Products
from watcher.storage.rows import Row, web_watch_row
from watcher.storage.views import Reading, StoreReadings, WatchRow

_WATCH_SELECT = """
    SELECT w.id, w.key, w.name, w.origin, w.conditions, p.id AS product_id, p.target, p.store,
           p.last_state, p.last_price, p.last_title, p.last_checked_at, p.due_at,
           p.active AS product_active,
           (SELECT o.reason FROM observations o WHERE o.product_id = p.id
             ORDER BY o.id DESC LIMIT 1) AS last_reason,
           (SELECT MAX(r.at) FROM restocks r WHERE r.product_id = p.id) AS last_restock_at,
           (SELECT COUNT(*) FROM subscriptions s WHERE s.watch_id = w.id AND s.active = TRUE)
             AS subscriptions,
           (SELECT COUNT(*) FROM subscriptions s WHERE s.watch_id = w.id AND s.active = TRUE
             AND s.paused = TRUE) AS paused_subscriptions
    FROM watches w JOIN products p ON p.id = w.product_id
    WHERE w.active = TRUE
"""
WATCHES = Query(_WATCH_SELECT + " ORDER BY w.id")
WATCH = Query(_WATCH_SELECT + " AND w.key = :key")
# A product's readings since a moment, plus its last one before (the state it held then).
READINGS = Query(
    sqlite="""
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
    postgres="""
    SELECT product_id, at, state, price FROM observations
    WHERE product_id = ANY(:ids::bigint[]) AND at >= :since
    UNION ALL
    SELECT before.product_id, before.at, before.state, before.price
    FROM unnest(:ids::bigint[]) AS ids (id)
    CROSS JOIN LATERAL (
        SELECT product_id, at, state, price FROM observations
        WHERE product_id = ids.id AND at < :since
        ORDER BY at DESC LIMIT 1) AS before
    ORDER BY at
    """,
)
TRANSITIONS = Query(
    sqlite="""
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
    postgres="""
    SELECT id, watch_id, payload FROM events
    WHERE watch_id = ANY(:ids::bigint[]) AND created_at >= :since
    UNION ALL
    SELECT before.id, before.watch_id, before.payload
    FROM unnest(:ids::bigint[]) AS ids (id)
    CROSS JOIN LATERAL (
        SELECT id, watch_id, payload FROM events
        WHERE watch_id = ids.id AND created_at < :since
        ORDER BY id DESC LIMIT 1) AS before
    ORDER BY id
    """,
)
SUBSCRIBERS_PER_CHANNEL = Query(
    "SELECT channel, COUNT(*) AS n FROM subscriptions"
    " WHERE watch_id = :watch_id AND active = TRUE GROUP BY channel ORDER BY channel"
)
STORE_READINGS = Query(
    "SELECT COALESCE(p.store, '-') AS store, COUNT(*) AS total,"
    " COUNT(*) FILTER (WHERE o.state = 'unknown') AS unknown"
    " FROM observations o JOIN products p ON p.id = o.product_id"
    " WHERE o.at >= :since GROUP BY 1 ORDER BY 1"
)
# Products checked since a moment that have repeats, with their last observation before it and
# their first one since (time and the product's repeats when it was recorded).
_EDGE = (
    "(SELECT o.{column} FROM observations o WHERE o.product_id = p.id AND o.at {side} :since"
    " ORDER BY o.id {order} LIMIT 1)"
)
STORE_REPEATS = Query(
    "SELECT COALESCE(p.store, '-') AS store, p.repeats, p.last_checked_at, "
    + ", ".join(
        _EDGE.format(column=column, side=side, order=order) + f" AS {name}"
        for name, column, side, order in (
            ("before_at", "at", "<", "DESC"),
            ("before_repeats", "repeats", "<", "DESC"),
            ("first_at", "at", ">=", "ASC"),
            ("first_repeats", "repeats", ">=", "ASC"),
        )
    )
    + " FROM products p WHERE p.last_checked_at >= :since AND p.repeats > 0"
)
_CHECK_NOW = (
    "UPDATE products SET due_at = {least}(due_at, :now) WHERE active = TRUE AND id ="
    " (SELECT product_id FROM watches WHERE key = :key AND active = TRUE)"
)
CHECK_NOW = Query(sqlite=_CHECK_NOW.format(least="MIN"), postgres=_CHECK_NOW.format(least="LEAST"))
ACTIVE_WATCH = Query("SELECT id, product_id FROM watches WHERE key = :key AND active = TRUE")
PAUSE_WATCH = Query(
    "UPDATE subscriptions SET paused = :paused WHERE active = TRUE AND watch_id = :watch_id"
)
END_WEB_WATCH = Query(
    "UPDATE watches SET active = FALSE, detector_state = NULL, updated_at = :stamp"
    " WHERE key = :key AND origin = 'web' AND active = TRUE RETURNING id, product_id"
)
END_WATCH_SUBSCRIPTIONS = Query(
    "UPDATE subscriptions SET active = FALSE, ended_at = :stamp"
    " WHERE watch_id = :watch_id AND active = TRUE"
)
RETRY_DELIVERY = Query(
    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = :stamp,"
    " last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = :stamp"
    " WHERE id = :id AND status IN ('dead', 'failed')"
)
UPSERT_WEB_WATCH = Query(
    """
    INSERT INTO watches AS w (key, name, product_id, origin, conditions, active,
        created_at, updated_at)
    VALUES (:key, :name, :product_id, 'web', :conditions, TRUE, :stamp, :stamp)
    ON CONFLICT (key) DO UPDATE SET name = excluded.name, active = TRUE,
        updated_at = excluded.updated_at
    WHERE w.origin = 'web'
    RETURNING id
    """
)
SUBSCRIBE_WEB = Query(
    "INSERT INTO subscriptions (watch_id, channel, recipient, origin, created_at)"
    " VALUES (:watch_id, :channel, :recipient, 'web', :stamp)"
    " ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET active = TRUE, ended_at = NULL"
)
_DUE_NOW = "UPDATE products SET due_at = {least}(due_at, :now) WHERE id = :id"
DUE_NOW = Query(sqlite=_DUE_NOW.format(least="MIN"), postgres=_DUE_NOW.format(least="LEAST"))


class StoredWebViews(Products):
    """`WebViews` on a repository's connector (build it with the repository's `web_views`)."""

    def __init__(self, db: Connector) -> None:
        self._db = db

    # --- reads -----------------------------------------------------------------------------------

    async def watches(self) -> list[WatchRow]:
        async with self._db.read():
            rows = await self._db.rows(WATCHES)
        return [web_watch_row(row) for row in rows]

    async def watch(self, key: str) -> WatchRow | None:
        if not self._db.holds(key):
            return None
        async with self._db.read():
            row = await self._db.row(WATCH, key=key)
        return web_watch_row(row) if row is not None else None

    async def readings(
        self, product_ids: Sequence[int], since: datetime
    ) -> dict[int, list[Reading]]:
        """Each product's readings since `since`, plus its last one before (the state it held)."""
        ids = self._db.ids(sorted(set(product_ids)))
        async with self._db.read():
            rows = await self._db.rows(READINGS, ids=ids, since=to_epoch(since))
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
        ids = self._db.ids(sorted(set(watch_ids)))
        async with self._db.read():
            rows = await self._db.rows(TRANSITIONS, ids=ids, since=to_epoch(since))
        found: dict[int, list[Reading]] = {}
        for row in rows:
            event = event_from_json(row["id"], row["payload"])
            reading = Reading(event.observed_at, event.state, event.price)
            found.setdefault(row["watch_id"], []).append(reading)
        return found

    async def subscribers_per_channel(self, watch_id: int) -> dict[str, int]:
        """Active subscriptions by channel: counts only, never who."""
        async with self._db.read():
            rows = await self._db.rows(SUBSCRIBERS_PER_CHANNEL, watch_id=watch_id)
        return {row["channel"]: int(row["n"]) for row in rows}

    async def store_readings(self, since: datetime) -> list[StoreReadings]:
        """How many readings per store since `since`, and how many were `unknown`.

        Repeats count as readings (an `unknown` one is never a repeat); a run of them that
        began before `since` counts in proportion to its time since then.
        """
        stamp = to_epoch(since)
        async with self._db.read():
            rows = await self._db.rows(STORE_READINGS, since=stamp)
            repeat_rows = await self._db.rows(STORE_REPEATS, since=stamp)
        repeats: dict[str, float] = {}
        for row in repeat_rows:
            repeats[row["store"]] = repeats.get(row["store"], 0.0) + _repeats_since(row, stamp)
        counted = {row["store"]: (int(row["unknown"]), int(row["total"])) for row in rows}
        readings = []
        for store in sorted({*counted, *repeats}):
            unknown, total = counted.get(store, (0, 0))
            total += round(repeats.get(store, 0.0))
            if total:
                readings.append(StoreReadings(store, unknown, total))
        return readings

    # --- operator actions ------------------------------------------------------------------------

    async def check_now(self, key: str, now: datetime) -> bool:
        """Make the watch's product due now (the scheduler takes it at its next claim)."""
        if not self._db.holds(key):
            return False
        async with self._db.write():
            changed = await self._db.run(CHECK_NOW, now=to_epoch(now), key=key)
        return changed > 0

    async def set_paused(self, key: str, paused: bool) -> bool:
        """Pause or resume every message of a watch; it is still checked meanwhile."""
        if not self._db.holds(key):
            return False
        async with self._db.write():
            watch = await self._db.row(ACTIVE_WATCH, key=key)
            if watch is None:
                return False
            changed = await self._db.run(PAUSE_WATCH, paused=paused, watch_id=watch["id"])
            await self._refresh_products([watch["product_id"]])
        return changed > 0

    async def remove(self, key: str, now: datetime) -> bool:
        """End a watch added through the web (others belong to the YAML or to a chat user)."""
        if not self._db.holds(key):
            return False
        stamp = to_epoch(now)
        async with self._db.write():
            row = await self._db.row(END_WEB_WATCH, stamp=stamp, key=key)
            if row is None:
                return False
            await self._db.run(END_WATCH_SUBSCRIPTIONS, stamp=stamp, watch_id=row["id"])
            await self._refresh_products([row["product_id"]])
        return True

    async def retry_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Send a dead or failed delivery again, with fresh attempts."""
        async with self._db.write():
            changed = await self._db.run(RETRY_DELIVERY, stamp=to_epoch(now), id=delivery_id)
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
        async with self._db.write():
            product_id = await self._ensure_product(target, store, stamp)
            watch_id = await self._db.value(
                UPSERT_WEB_WATCH,
                key=key,
                name=name,
                product_id=product_id,
                conditions=conditions_to_json(conditions),
                stamp=stamp,
            )
            assert watch_id is not None  # the key is a web key: the upsert always returns
            await self._db.run_many(
                SUBSCRIBE_WEB,
                [
                    {
                        "watch_id": watch_id,
                        "channel": channel,
                        "recipient": recipient,
                        "stamp": stamp,
                    }
                    for channel, recipient in recipients
                ],
            )
            await self._db.run(DUE_NOW, now=stamp, id=product_id)
            await self._refresh_products([product_id])
        return key


def _repeats_since(row: Row, since: float) -> float:
    """A product's repeats since `since`: those after its first observation since then (or all
    of its current run, when it has none), plus the part of the run that crossed `since` in
    proportion to its time since then."""
    repeats, first_at, first_repeats = int(row["repeats"]), row["first_at"], row["first_repeats"]
    end_at = first_at if first_at is not None else row["last_checked_at"]
    end_repeats = int(first_repeats) if first_repeats is not None else repeats
    inside = repeats - end_repeats if first_at is not None else 0
    crossing = end_repeats - int(row["before_repeats"] or 0)
    start_at = row["before_at"]
    if start_at is None or end_at <= start_at:
        return float(inside + crossing)
    return inside + crossing * float(end_at - since) / float(end_at - start_at)
