"""Checks on PostgreSQL: due products claimed with `FOR UPDATE SKIP LOCKED`, and each check
stored with its events and deliveries in one transaction (the outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from watcher.core.model import ENDING_EVENT_KINDS, Availability, Event, Observation
from watcher.errors import StorageError
from watcher.storage.codec import (
    dump_json,
    event_from_json,
    event_to_json,
    required_time,
    to_epoch,
)
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
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.postgres.signals import OUTBOX_CHANNEL_SQL
from watcher.storage.rows import WATCH_COLUMNS, due_product, quiet_from_row, stored_watch

OBSERVATIONS_KEPT = 200  # per product; older ones are pruned as new ones arrive
PRUNE_EVERY = 20  # checks of a product between two prunings of its observations

# Due products, most subscribers first; rows another worker is claiming right now are skipped,
# not waited for.
_CLAIM_PRODUCTS = """
    UPDATE products p SET lease_owner = $1, lease_until = $2
    FROM (SELECT id FROM products
          WHERE active AND due_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
          ORDER BY subscribers DESC, due_at, id LIMIT $4
          FOR UPDATE SKIP LOCKED) due
    WHERE p.id = due.id
    RETURNING p.*
"""


class PostgresChecks(PostgresStore):
    """The scheduler's claims and the outbox's writes."""

    _check_writer: CheckWriter  # set by PostgresRepository: groups record_check's writes

    async def claim_due_products(
        self, owner: str, now: datetime, limit: int, lease: timedelta
    ) -> list[DueProduct]:
        stamp = to_epoch(now)
        async with self._write():
            rows = await self._rows(
                _CLAIM_PRODUCTS, owner, stamp + lease.total_seconds(), stamp, limit
            )
        products = [due_product(row) for row in rows]
        return sorted(products, key=lambda p: (-p.subscribers, p.due_at, p.id))

    async def release_product(self, product_id: int, due_at: datetime) -> None:
        async with self._write():
            await self._run(
                "UPDATE products SET due_at = $1, lease_owner = NULL, lease_until = NULL"
                " WHERE id = $2",
                to_epoch(due_at),
                product_id,
            )

    async def load_watches(self, product_id: int) -> list[StoredWatch]:
        return (await self.load_watches_for([product_id])).get(product_id, [])

    async def load_watches_for(self, product_ids: Sequence[int]) -> dict[int, list[StoredWatch]]:
        async with self._read():
            rows = await self._rows(
                f"SELECT {WATCH_COLUMNS} FROM watches w JOIN products p ON p.id = w.product_id"
                " WHERE w.product_id = ANY($1::bigint[]) AND w.active ORDER BY w.id",
                list(product_ids),
            )
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
        checks = await self._update_checked_product(
            product_id, observation, write.outcome, stamp, write.next_due
        )
        await self._insert_observation(product_id, observation, stamp, checks)
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
            # Heard by every listening dispatcher when this transaction commits.
            await self._run(f"SELECT pg_notify({OUTBOX_CHANNEL_SQL}, '')")
        return Written(RecordedCheck(events=tuple(stored), deliveries=deliveries), claimed)

    async def _insert_observation(
        self, product_id: int, obs: Observation, stamp: float, checks: int
    ) -> None:
        facts = obs.fetch
        await self._run(
            "INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms,"
            " blocked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            product_id,
            stamp,
            obs.state.value,
            obs.price,
            obs.reason,
            facts.status if facts else None,
            facts.bytes if facts else 0,
            facts.elapsed_ms if facts else 0.0,
            obs.blocked,
        )
        if checks % PRUNE_EVERY:
            return
        # Keep the newest OBSERVATIONS_KEPT rows of this product (pruned now and then, in bulk).
        await self._run(
            "DELETE FROM observations WHERE product_id = $1 AND id < (SELECT id FROM observations"
            " WHERE product_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            product_id,
            OBSERVATIONS_KEPT - 1,
        )

    async def _update_checked_product(
        self,
        product_id: int,
        obs: Observation,
        outcome: CheckOutcome,
        stamp: float,
        next_due: float,
    ) -> int:
        """Update a checked product and release its lease; returns its number of checks."""
        known = obs.state is not Availability.UNKNOWN
        row = await self._row(
            """
            UPDATE products SET
                due_at = $1, lease_owner = NULL, lease_until = NULL,
                etag = COALESCE($2, etag), last_modified = COALESCE($3, last_modified),
                content_hash = COALESCE($4, content_hash),
                store = COALESCE(store, $5),
                last_state = $6,
                last_price = CASE WHEN $7::boolean THEN $8 ELSE last_price END,
                last_title = COALESCE($9, last_title),
                last_checked_at = $10,
                consecutive_errors = CASE WHEN $11::boolean THEN consecutive_errors + 1 ELSE 0 END,
                checks = checks + 1,
                blocks = blocks + $12
            WHERE id = $13 AND ($14::text IS NULL OR lease_owner = $14::text)
            RETURNING checks
            """,
            next_due,
            outcome.etag,
            outcome.last_modified,
            outcome.content_hash,
            obs.store,
            obs.state.value,
            known,
            obs.price,
            obs.title,
            stamp,
            outcome.error,
            int(obs.blocked),
            product_id,
            outcome.lease_owner,
        )
        if row is not None:
            return int(row["checks"])
        if outcome.lease_owner is not None:
            raise LeaseLost(product_id)
        raise StorageError(f"record_check: no product with id {product_id}")

    async def _store_event(
        self, decision: WatchDecision, event: Event, stamp: float, claim: DeliveryClaim | None
    ) -> _StoredEvent:
        """Insert an event and a delivery per active subscription of its watch, in one statement.

        The deliveries on `claim`'s channels are inserted leased to it, as `claim_deliveries`
        would lease them (an attempt counted, the lease running from `stamp`).
        """
        payload = event_to_json(event)
        event_id: int = await self._conn().fetchval(
            "INSERT INTO events (watch_id, kind, payload, created_at) VALUES ($1, $2, $3, $4)"
            " RETURNING id",
            decision.watch_id,
            event.kind.value,
            payload,
            stamp,
        )
        lease_until = stamp + claim.lease.total_seconds() if claim else None
        inserted = await self._rows(
            """
            INSERT INTO deliveries (event_id, subscription_id, channel, recipient, status,
                attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at,
                idempotency_key)
            SELECT $1::bigint, s.id, s.channel, s.recipient, 'pending',
                   CASE WHEN s.channel = ANY($4::text[]) THEN 1 ELSE 0 END, $2,
                   CASE WHEN s.channel = ANY($4::text[]) THEN $3::text END,
                   CASE WHEN s.channel = ANY($4::text[]) THEN $5::double precision END,
                   $2, $2, $1::bigint::text || ':' || s.channel || ':' || s.recipient
            FROM subscriptions s JOIN watches w ON w.id = s.watch_id
            WHERE s.watch_id = $6 AND s.active AND NOT s.paused AND w.active
            ORDER BY s.id
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id, subscription_id, channel, recipient, lease_owner IS NOT NULL
            """,
            event_id,
            stamp,
            claim.owner if claim else None,
            sorted(claim.channels) if claim else [],
            lease_until,
            decision.watch_id,
        )
        claimed = sorted((row for row in inserted if row[4]), key=_first)
        claims = None
        if claimed and lease_until is not None:
            extras = await self._recipient_settings(decision.watch_id)
            stored = event_from_json(event_id, payload)  # what a claim from the outbox decodes
            claims = NewClaims(stored, required_time(lease_until), claimed, extras)
        ended = 0
        if event.kind in ENDING_EVENT_KINDS and inserted:
            ended = await self._run(
                "UPDATE subscriptions SET active = FALSE, ended_at = $1"
                " WHERE id = ANY($2::bigint[]) AND one_shot",
                stamp,
                [row[1] for row in inserted],
            )
        return _StoredEvent(event_id, len(inserted), claims, ended > 0)

    async def _recipient_settings(self, watch_id: int) -> dict[int, RecipientSettings]:
        """Quiet hours and language of a watch's active subscriptions that have either, by id."""
        rows = await self._rows(
            "SELECT id, quiet_from, quiet_to, quiet_mode, language FROM subscriptions"
            " WHERE watch_id = $1 AND active AND NOT paused"
            " AND (quiet_from IS NOT NULL OR language IS NOT NULL)",
            watch_id,
        )
        return {row[0]: (quiet_from_row(row), row[4]) for row in rows}

    async def _store_decisions(self, decisions: Sequence[WatchDecision], stamp: float) -> None:
        if not decisions:
            return
        rows = await self._rows(
            """
            UPDATE watches w SET detector_state = d.state, updated_at = $1,
                active = CASE WHEN d.finished THEN FALSE ELSE w.active END
            FROM unnest($2::bigint[], $3::text[], $4::boolean[]) AS d (id, state, finished)
            WHERE w.id = d.id RETURNING w.id
            """,
            stamp,
            [d.watch_id for d in decisions],
            [dump_json(d.state) for d in decisions],
            [d.finished for d in decisions],
        )
        if len(rows) != len({d.watch_id for d in decisions}):
            missing = ", ".join(str(d.watch_id) for d in decisions)
            raise StorageError(f"record_check: a watch among ids {missing} does not exist")

    async def _insert_restock(self, product_id: int, store: str | None, stamp: float) -> None:
        await self._run(
            "INSERT INTO restocks (product_id, store, at)"
            " SELECT id, COALESCE($1, store), $2 FROM products WHERE id = $3",
            store,
            stamp,
            product_id,
        )

    async def record_restock(self, product_id: int, store: str | None, at: datetime) -> None:
        async with self._write():
            await self._insert_restock(product_id, store, to_epoch(at))

    async def restock_times(
        self, *, product_id: int | None = None, store: str | None = None, limit: int = 500
    ) -> list[datetime]:
        async with self._read():
            rows = await self._rows(
                "SELECT at FROM restocks WHERE ($1::bigint IS NULL OR product_id = $1)"
                " AND ($2::text IS NULL OR store = $2) ORDER BY at DESC LIMIT $3",
                product_id,
                store,
                limit,
            )
        return [required_time(row["at"]) for row in rows]


@dataclass(frozen=True, slots=True)
class _StoredEvent:
    event_id: int
    deliveries: int
    claims: NewClaims | None
    ended: bool  # one-shot subscriptions ended with it


def _first(row: asyncpg.Record) -> int:
    return int(row[0])
