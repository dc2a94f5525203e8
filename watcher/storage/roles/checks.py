"""Checks: due products claimed, and each check stored with its events and deliveries in one
transaction (the outbox).

On PostgreSQL a claim skips the rows another worker is claiming right now (`FOR UPDATE SKIP
LOCKED`) instead of waiting for them; on SQLite the write lock lets one claim in at a time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from watcher.core.model import ENDING_EVENT_KINDS, Availability, Event, Observation
from watcher.core.schedule import MAX_TIER, PRIORITY_STEP, due_sort_key
from watcher.errors import StorageError
from watcher.storage.codec import (
    dump_json,
    event_from_json,
    event_to_json,
    required_time,
    to_epoch,
)
from watcher.storage.connector import Query
from watcher.storage.group_commit import (
    CheckWrite,
    CheckWriter,
    LeaseLost,
    NewClaims,
    RecipientSettings,
    Written,
)
from watcher.storage.interface import (
    CheckOutcome,
    DeliveryClaim,
    DueProduct,
    RecordedCheck,
    StoredWatch,
    WatchDecision,
)
from watcher.storage.roles.products import Products
from watcher.storage.rows import WATCH_COLUMNS, Row, due_product, quiet_from_row, stored_watch

OBSERVATIONS_KEPT = 200  # per product; older ones are pruned as new ones arrive
PRUNE_EVERY = 20  # observations of a product recorded between two prunings

# Due products leased to :owner, each with its active watches (the columns `rows.stored_watch`
# reads, as a JSON array per watch): one statement for both. The order is `due_sort_key`'s: due
# time moved earlier by :step per priority tier, then id. The first :limit in that order are
# among the first :limit of their own tier in (due_at, id) order, so each tier is read from the
# index `products_due_tier` (tier, due_at, id) as far as :limit rows and only those few rows
# are sorted, never the whole backlog.
_WATCH_ARRAY = (
    "w.id, w.product_id, w.origin, w.key, w.name, {p}.target, {p}.store, w.stores, w.interval_s,"
    " w.conditions, w.once, w.notify_on_first, w.rules, w.detector_state, w.paused"
)
_SQLITE_TIER_DUE = """
        SELECT * FROM (SELECT id, due_at, tier FROM products
                       WHERE active = 1 AND tier = {tier} AND due_at <= :now
                         AND (lease_until IS NULL OR lease_until <= :now)
                       ORDER BY due_at, id LIMIT :limit)"""
_SQLITE_DUE = " UNION ALL".join(
    _SQLITE_TIER_DUE.format(tier=tier) for tier in range(MAX_TIER, -1, -1)
)
# SQLite asks every tier: an empty one costs one probe of the index.
CLAIM_PRODUCTS = Query(
    sqlite=f"""
    UPDATE products SET lease_owner = :owner, lease_until = :lease_until
    WHERE id IN (
        SELECT id FROM ({_SQLITE_DUE})
        ORDER BY due_at - :step * tier, id LIMIT :limit)
    RETURNING *, (SELECT json_group_array(json_array({_WATCH_ARRAY.format(p="products")}))
                  FROM (SELECT * FROM watches WHERE product_id = products.id AND active = 1
                        ORDER BY id) w) AS watches_json
    """,
    # A tier at a time from the highest one any active product has. Each tier's first :limit
    # rows are locked, though only :limit of them all are claimed: the others stay locked until
    # the claim commits, a moment in which another worker's claim passes over them.
    postgres=f"""
    UPDATE products p SET lease_owner = :owner, lease_until = :lease_until
    FROM (SELECT c.id
          FROM generate_series((SELECT max(tier) FROM products WHERE active), 0, -1) AS t (tier)
          CROSS JOIN LATERAL (
              SELECT id, due_at FROM products
              WHERE active AND tier = t.tier AND due_at <= :now
                AND (lease_until IS NULL OR lease_until <= :now)
              ORDER BY due_at, id LIMIT :limit
              FOR UPDATE SKIP LOCKED) c
          ORDER BY c.due_at - :step::double precision * t.tier, c.id LIMIT :limit) due
    WHERE p.id = due.id
    RETURNING p.*, (SELECT json_agg(json_build_array({_WATCH_ARRAY.format(p="p")})
                                    ORDER BY w.id)::text
                    FROM watches w WHERE w.product_id = p.id AND w.active) AS watches_json
    """,
)
RELEASE_PRODUCT = Query(
    "UPDATE products SET due_at = :due_at, lease_owner = NULL, lease_until = NULL WHERE id = :id"
)
WATCHES_OF_PRODUCTS = Query(
    sqlite=f"SELECT {WATCH_COLUMNS} FROM watches w JOIN products p ON p.id = w.product_id"
    " WHERE w.product_id IN (SELECT value FROM json_each(:ids)) AND w.active = 1"
    " ORDER BY w.id",
    postgres=f"SELECT {WATCH_COLUMNS} FROM watches w JOIN products p ON p.id = w.product_id"
    " WHERE w.product_id = ANY(:ids::bigint[]) AND w.active ORDER BY w.id",
)
# A checked product, its lease released (only while :owner still holds it, when one is named).
_UPDATE_CHECKED_PRODUCT = """
    UPDATE products SET
        due_at = :due_at, lease_owner = NULL, lease_until = NULL,
        etag = COALESCE(:etag, etag), last_modified = COALESCE(:last_modified, last_modified),
        content_hash = COALESCE(:content_hash, content_hash),
        store = COALESCE(store, :store),
        last_state = :state,
        last_price = CASE WHEN :known{boolean} THEN :price ELSE last_price END,
        last_title = COALESCE(:title, last_title),
        last_checked_at = :at,
        consecutive_errors = CASE WHEN :error{boolean} THEN consecutive_errors + 1 ELSE 0 END,
        checks = checks + 1,
        blocks = blocks + :blocked,
        reading = :reading{text},
        reading_check = CASE WHEN reading = :reading{text} THEN reading_check ELSE checks + 1 END,
        repeats = repeats + CASE WHEN reading = :reading{text} THEN 1 ELSE 0 END
    WHERE id = :id AND (:owner{text} IS NULL OR lease_owner = :owner{text})
    RETURNING checks, reading_check, repeats
"""
UPDATE_CHECKED_PRODUCT = Query(
    sqlite=_UPDATE_CHECKED_PRODUCT.format(boolean="", text=""),
    postgres=_UPDATE_CHECKED_PRODUCT.format(boolean="::boolean", text="::text"),
)
INSERT_OBSERVATION = Query(
    "INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms, blocked,"
    " repeats) VALUES (:product_id, :at, :state, :price, :reason, :status, :bytes, :ms, :blocked,"
    " :repeats)"
)
# Keep the newest OBSERVATIONS_KEPT rows of a product (pruned now and then, in bulk).
PRUNE_OBSERVATIONS = Query(
    "DELETE FROM observations WHERE product_id = :product_id AND id < (SELECT id FROM"
    " observations WHERE product_id = :product_id ORDER BY id DESC LIMIT 1 OFFSET :keep)"
)
INSERT_EVENT = Query(
    "INSERT INTO events (watch_id, kind, payload, created_at)"
    " VALUES (:watch_id, :kind, :payload, :stamp) RETURNING id"
)
# A delivery per active subscription of the watch; those on the :channels of a claim are
# inserted leased to it, as `claim_deliveries` would lease them.
INSERT_DELIVERIES = Query(
    sqlite="""
    INSERT INTO deliveries (event_id, subscription_id, channel, recipient, status,
        attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at,
        idempotency_key)
    SELECT :event, s.id, s.channel, s.recipient, 'pending',
           c.value IS NOT NULL, :now,
           CASE WHEN c.value IS NOT NULL THEN :owner END,
           CASE WHEN c.value IS NOT NULL THEN :lease_until END,
           :now, :now, :event || ':' || s.channel || ':' || s.recipient
    FROM subscriptions s JOIN watches w ON w.id = s.watch_id
    LEFT JOIN json_each(:channels) c ON c.value = s.channel
    WHERE s.watch_id = :watch AND s.active = 1 AND s.paused = 0 AND w.active = 1
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, subscription_id, channel, recipient, lease_owner IS NOT NULL
    """,
    postgres="""
    INSERT INTO deliveries (event_id, subscription_id, channel, recipient, status,
        attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at,
        idempotency_key)
    SELECT :event::bigint, s.id, s.channel, s.recipient, 'pending',
           CASE WHEN s.channel = ANY(:channels::text[]) THEN 1 ELSE 0 END, :now,
           CASE WHEN s.channel = ANY(:channels::text[]) THEN :owner::text END,
           CASE WHEN s.channel = ANY(:channels::text[]) THEN :lease_until::double precision END,
           :now, :now, :event::bigint::text || ':' || s.channel || ':' || s.recipient
    FROM subscriptions s JOIN watches w ON w.id = s.watch_id
    WHERE s.watch_id = :watch AND s.active AND NOT s.paused AND w.active
    ORDER BY s.id
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, subscription_id, channel, recipient, lease_owner IS NOT NULL
    """,
)
END_ONE_SHOT_SUBSCRIPTIONS = Query(
    sqlite="UPDATE subscriptions SET active = 0, ended_at = :stamp"
    " WHERE id IN (SELECT value FROM json_each(:ids)) AND one_shot = 1",
    postgres="UPDATE subscriptions SET active = FALSE, ended_at = :stamp"
    " WHERE id = ANY(:ids::bigint[]) AND one_shot",
)
RECIPIENT_SETTINGS = Query(
    "SELECT id, quiet_from, quiet_to, quiet_mode, language FROM subscriptions"
    " WHERE watch_id = :watch_id AND active = TRUE AND paused = FALSE"
    " AND (quiet_from IS NOT NULL OR language IS NOT NULL)"
)
# Each decided watch's detector state; a finished watch ends.
STORE_DECISIONS = Query(
    sqlite="""
    WITH d AS (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS state,
                      json_extract(value, '$[2]') AS finished
               FROM json_each(:decisions))
    UPDATE watches SET detector_state = d.state, updated_at = :stamp,
        active = CASE WHEN d.finished THEN 0 ELSE watches.active END
    FROM d WHERE watches.id = d.id RETURNING watches.id
    """,
    postgres="""
    UPDATE watches w SET detector_state = d.state, updated_at = :stamp,
        active = CASE WHEN d.finished THEN FALSE ELSE w.active END
    FROM unnest(:decisions_id::bigint[], :decisions_state::text[],
                :decisions_finished::boolean[]) AS d (id, state, finished)
    WHERE w.id = d.id RETURNING w.id
    """,
)
INSERT_RESTOCK = Query(
    "INSERT INTO restocks (product_id, store, at)"
    " SELECT id, COALESCE(:store, store), :at FROM products WHERE id = :product_id"
)
RESTOCK_TIMES = Query(
    sqlite="SELECT at FROM restocks WHERE (:product_id IS NULL OR product_id = :product_id)"
    " AND (:store IS NULL OR store = :store) ORDER BY at DESC LIMIT :limit",
    postgres="SELECT at FROM restocks"
    " WHERE (:product_id::bigint IS NULL OR product_id = :product_id)"
    " AND (:store::text IS NULL OR store = :store) ORDER BY at DESC LIMIT :limit",
)


class Checks(Products):
    """The scheduler's claims and the outbox's writes."""

    _check_writer: CheckWriter  # set by the repository: groups record_check's writes

    async def claim_due_products(
        self, owner: str, now: datetime, limit: int, lease: timedelta
    ) -> list[DueProduct]:
        stamp = to_epoch(now)
        rows = await self._db.transaction(
            lambda: self._db.rows(
                CLAIM_PRODUCTS,
                owner=owner,
                lease_until=stamp + lease.total_seconds(),
                now=stamp,
                limit=limit,
                step=PRIORITY_STEP.total_seconds(),
            )
        )
        products = [due_product(row, _watches_of(row["watches_json"])) for row in rows]
        return sorted(products, key=_claim_order)

    async def release_product(self, product_id: int, due_at: datetime) -> None:
        await self._db.transaction(
            lambda: self._db.run(RELEASE_PRODUCT, due_at=to_epoch(due_at), id=product_id)
        )

    async def load_watches(self, product_id: int) -> list[StoredWatch]:
        return (await self.load_watches_for([product_id])).get(product_id, [])

    async def load_watches_for(self, product_ids: Sequence[int]) -> dict[int, list[StoredWatch]]:
        async with self._db.read():
            rows = await self._db.rows(WATCHES_OF_PRODUCTS, ids=self._db.ids(product_ids))
        watches: dict[int, list[StoredWatch]] = {}
        for row in rows:
            stored = stored_watch(row)
            watches.setdefault(stored.product_id, []).append(stored)
        return watches

    async def record_check(
        self,
        product_id: int,
        observation: Observation,
        decisions: Sequence[WatchDecision],
        outcome: CheckOutcome,
        now: datetime,
    ) -> RecordedCheck:
        return await self._check_writer.record_check(
            product_id, observation, decisions, outcome, now
        )

    async def _record_check(self, write: CheckWrite) -> Written:
        """The check's statements, inside the caller's transaction."""
        product_id, observation, decisions = write.product_id, write.observation, write.decisions
        stamp = write.stamp
        counts = await self._update_checked_product(
            product_id, observation, write.outcome, stamp, write.next_due
        )
        if counts.recorded:
            await self._insert_observation(product_id, observation, stamp, counts)
        stored: list[Event] = []
        deliveries = unclaimed = 0
        claimed: list[NewClaims] = []
        ended = any(d.finished for d in decisions)
        # Events first: a watch that finishes now still delivers its last events.
        for decision in decisions:
            for event in decision.events:
                new = await self._store_event(decision, event, stamp, write.outcome.claim_for)
                stored.append(replace(event, id=new.event_id))
                deliveries += new.deliveries
                unclaimed += new.deliveries - (len(new.claims.rows) if new.claims else 0)
                if new.claims is not None:
                    claimed.append(new.claims)
                ended = ended or new.ended
        await self._store_decisions(decisions, stamp)
        if any(e.kind in ENDING_EVENT_KINDS for e in stored):
            await self._insert_restock(product_id, None, stamp)
        if ended:
            await self._refresh_products([product_id])
        if unclaimed:
            await self._db.announce_deliveries()
        return Written(RecordedCheck(events=tuple(stored), deliveries=deliveries), claimed)

    async def _insert_observation(
        self, product_id: int, obs: Observation, stamp: float, counts: CheckCounts
    ) -> None:
        facts = obs.fetch
        await self._db.execute(
            INSERT_OBSERVATION,
            product_id=product_id,
            at=stamp,
            state=obs.state.value,
            price=obs.price,
            reason=obs.reason,
            status=facts.status if facts else None,
            bytes=facts.bytes if facts else 0,
            ms=facts.elapsed_ms if facts else 0.0,
            blocked=obs.blocked,
            repeats=counts.repeats,
        )
        if not counts.prunes:
            return
        await self._db.execute(
            PRUNE_OBSERVATIONS, product_id=product_id, keep=OBSERVATIONS_KEPT - 1
        )

    async def _update_checked_product(
        self,
        product_id: int,
        obs: Observation,
        outcome: CheckOutcome,
        stamp: float,
        next_due: float,
    ) -> CheckCounts:
        """Update a checked product and release its lease; returns its counts."""
        row = await self._db.row(
            UPDATE_CHECKED_PRODUCT,
            due_at=next_due,
            etag=outcome.etag,
            last_modified=outcome.last_modified,
            content_hash=outcome.content_hash,
            store=obs.store,
            state=obs.state.value,
            known=obs.state is not Availability.UNKNOWN,
            price=obs.price,
            title=obs.title,
            at=stamp,
            error=outcome.error,
            blocked=int(obs.blocked),
            id=product_id,
            owner=outcome.lease_owner,
            reading=obs.reading(),
        )
        if row is not None:
            return CheckCounts.of(row)
        if outcome.lease_owner is not None:
            raise LeaseLost(product_id)
        raise StorageError(f"record_check: no product with id {product_id}")

    async def _store_event(
        self, decision: WatchDecision, event: Event, stamp: float, claim: DeliveryClaim | None
    ) -> _StoredEvent:
        """Insert an event and a delivery per active subscription of its watch, in one statement.

        The deliveries on `claim`'s channels are inserted leased to it, as `claim_deliveries`
        would lease them (an attempt counted, the lease running from `stamp`): with thousands of
        subscribers that saves an update and a read-back of every row.
        """
        payload = event_to_json(event)
        event_id = int(
            await self._db.value(
                INSERT_EVENT,
                watch_id=decision.watch_id,
                kind=event.kind.value,
                payload=payload,
                stamp=stamp,
            )
        )
        lease_until = stamp + claim.lease.total_seconds() if claim else None
        inserted = await self._db.rows(
            INSERT_DELIVERIES,
            event=event_id,
            now=stamp,
            owner=claim.owner if claim else None,
            lease_until=lease_until,
            channels=self._db.array(sorted(claim.channels) if claim else []),
            watch=decision.watch_id,
        )
        claims = None
        if lease_until is not None:
            # In id order, as a claim from the outbox hands them.
            claimed = sorted((row for row in inserted if row[4]), key=_first)
            if claimed:
                extras = await self._recipient_settings(decision.watch_id)
                stored = event_from_json(event_id, payload)  # what a claim from the outbox reads
                claims = NewClaims(stored, required_time(lease_until), claimed, extras)
        ended = 0
        if event.kind in ENDING_EVENT_KINDS and inserted:
            ended = await self._db.run(
                END_ONE_SHOT_SUBSCRIPTIONS,
                stamp=stamp,
                ids=self._db.ids(row[1] for row in inserted),
            )
        return _StoredEvent(event_id, len(inserted), claims, ended > 0)

    async def _recipient_settings(self, watch_id: int) -> dict[int, RecipientSettings]:
        """Quiet hours and language of a watch's active subscriptions that have either, by id."""
        rows = await self._db.rows(RECIPIENT_SETTINGS, watch_id=watch_id)
        return {row[0]: (quiet_from_row(row), row[4]) for row in rows}

    async def _store_decisions(self, decisions: Sequence[WatchDecision], stamp: float) -> None:
        if not decisions:
            return
        rows = await self._db.rows(
            STORE_DECISIONS,
            stamp=stamp,
            **self._db.table(
                "decisions",
                ("id", "state", "finished"),
                [(d.watch_id, dump_json(d.state), d.finished) for d in decisions],
            ),
        )
        if len(rows) != len({d.watch_id for d in decisions}):
            missing = ", ".join(str(d.watch_id) for d in decisions)
            raise StorageError(f"record_check: a watch among ids {missing} does not exist")

    async def _insert_restock(self, product_id: int, store: str | None, stamp: float) -> None:
        await self._db.run(INSERT_RESTOCK, store=store, at=stamp, product_id=product_id)

    async def record_restock(self, product_id: int, store: str | None, at: datetime) -> None:
        async with self._db.write():
            await self._insert_restock(product_id, store, to_epoch(at))

    async def restock_times(
        self, *, product_id: int | None = None, store: str | None = None, limit: int = 500
    ) -> list[datetime]:
        async with self._db.read():
            rows = await self._db.rows(
                RESTOCK_TIMES, product_id=product_id, store=store, limit=limit
            )
        return [required_time(row["at"]) for row in rows]


@dataclass(frozen=True, slots=True)
class CheckCounts:
    """A checked product's counters as its update left them.

    A check whose reading is the one its product's last recorded observation read (a repeat)
    adds to `repeats` and records nothing; any other check, `unknown` ones too, records an
    observation and is then the product's `reading_check`. So `checks - repeats` observations
    were recorded, and the repeats after an observation are the difference between its
    `repeats` and the next one's (or the product's).
    """

    checks: int
    reading_check: int
    repeats: int

    @classmethod
    def of(cls, row: Row) -> CheckCounts:
        return cls(int(row["checks"]), int(row["reading_check"]), int(row["repeats"]))

    @property
    def recorded(self) -> bool:
        """Whether this check records an observation."""
        return self.reading_check == self.checks

    @property
    def prunes(self) -> bool:
        """Whether the product's old observations are pruned after this check's."""
        return (self.checks - self.repeats) % PRUNE_EVERY == 0


@dataclass(frozen=True, slots=True)
class _StoredEvent:
    event_id: int
    deliveries: int
    claims: NewClaims | None
    ended: bool  # one-shot subscriptions ended with it


def _first(row: Row) -> int:
    return int(row[0])


def _claim_order(product: DueProduct) -> tuple[datetime, int]:
    """The order a claim leases in: `due_sort_key`, then id."""
    return due_sort_key(product.due_at, product.subscribers), product.id


def _watches_of(text: str | None) -> tuple[StoredWatch, ...]:
    """A claimed product's watches, from the JSON array of their columns its claim returned."""
    return tuple(stored_watch(row) for row in json.loads(text)) if text else ()
