"""Checks on SQLite: due products claimed, and each check stored with its events and
deliveries in one transaction (the outbox)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from watcher.core.model import (
    ENDING_EVENT_KINDS,
    Availability,
    Event,
    Observation,
)
from watcher.errors import StorageError
from watcher.storage.codec import (
    dump_json,
    event_from_json,
    event_to_json,
    ids_json,
    required_time,
    to_epoch,
)
from watcher.storage.group_commit import (
    LEASE_LOST,
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
from watcher.storage.rows import (
    WATCH_COLUMNS,
    due_product,
    quiet_from_row,
    stored_watch,
)
from watcher.storage.sqlite.connection import SQLiteStore

OBSERVATIONS_KEPT = 200  # per product; older ones are pruned as new ones arrive
PRUNE_EVERY = 20  # checks of a product between two prunings of its observations


class SQLiteChecks(SQLiteStore):
    """The scheduler's claims and the outbox's writes."""

    _check_writer: CheckWriter  # set by SQLiteRepository: groups record_check's writes

    async def claim_due_products(
        self, owner: str, now: datetime, limit: int, lease: timedelta
    ) -> list[DueProduct]:
        stamp = to_epoch(now)
        async with self._write():
            rows = await self._rows(
                """
                UPDATE products SET lease_owner = ?, lease_until = ?
                WHERE id IN (
                    SELECT id FROM products
                    WHERE active = 1 AND due_at <= ?
                      AND (lease_until IS NULL OR lease_until <= ?)
                    ORDER BY subscribers DESC, due_at, id LIMIT ?)
                RETURNING *
                """,
                (owner, stamp + lease.total_seconds(), stamp, stamp, limit),
            )
        products = [due_product(row) for row in rows]
        return sorted(products, key=lambda p: (-p.subscribers, p.due_at, p.id))

    async def release_product(self, product_id: int, due_at: datetime) -> None:
        async with self._write():
            await self._run(
                "UPDATE products SET due_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ?",
                (to_epoch(due_at), product_id),
            )

    async def load_watches(self, product_id: int) -> list[StoredWatch]:
        return (await self.load_watches_for([product_id])).get(product_id, [])

    async def load_watches_for(self, product_ids: Sequence[int]) -> dict[int, list[StoredWatch]]:
        async with self._read():
            rows = await self._rows(
                f"SELECT {WATCH_COLUMNS} FROM watches w"
                " JOIN products p ON p.id = w.product_id"
                " WHERE w.product_id IN (SELECT value FROM json_each(?)) AND w.active = 1"
                " ORDER BY w.id",
                (ids_json(product_ids),),
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
        deliveries = 0
        claimed: list[NewClaims] = []
        ended = any(d.finished for d in decisions)
        # Events first: a watch that finishes now still delivers its last events.
        for decision in decisions:
            for event in decision.events:
                new = await self._store_event(decision, event, stamp, write.outcome.claim_for)
                stored.append(replace(event, id=new.event_id))
                deliveries += new.deliveries
                if new.claims is not None:
                    claimed.append(new.claims)
                ended = ended or new.ended
        await self._store_decisions(decisions, stamp)
        if any(e.kind in ENDING_EVENT_KINDS for e in stored):
            await self._insert_restock(product_id, None, stamp)
        if ended:
            await self._refresh_products([product_id])
        return Written(RecordedCheck(events=tuple(stored), deliveries=deliveries), claimed)

    async def _record_quiet_checks(self, writes: Sequence[CheckWrite]) -> list[Written]:
        """Quiet checks (no events, distinct products), inside the caller's transaction, with
        three or four statements for the whole group: each statement is a trip to the database
        thread, which costs the event loop more than the statement costs SQLite."""
        updated = await self._update_checked_products(writes)
        kept = [w for w in writes if w.product_id in updated]
        for write in writes:
            if write.product_id not in updated and write.outcome.lease_owner is None:
                raise StorageError(f"record_check: no product with id {write.product_id}")
        await self._insert_observations(kept, updated)
        await self._store_quiet_decisions(kept)
        quiet = Written(RecordedCheck(events=(), deliveries=0))
        return [quiet if w.product_id in updated else LEASE_LOST for w in writes]

    async def _update_checked_products(self, writes: Sequence[CheckWrite]) -> dict[int, int]:
        """As `_update_checked_product` for a group: checks by product id of those updated (a
        product whose lease passed to another check is left as it is, and is not among them)."""
        values = []
        for write in writes:
            obs, outcome = write.observation, write.outcome
            values.append(
                (
                    write.product_id,
                    write.next_due,
                    outcome.etag,
                    outcome.last_modified,
                    outcome.content_hash,
                    obs.store,
                    obs.state.value,
                    obs.state is not Availability.UNKNOWN,
                    obs.price,
                    obs.title,
                    write.stamp,
                    outcome.error,
                    int(obs.blocked),
                    outcome.lease_owner,
                )
            )
        rows = await self._rows(
            """
            WITH c AS (SELECT
                json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS due_at,
                json_extract(value, '$[2]') AS etag, json_extract(value, '$[3]') AS modified,
                json_extract(value, '$[4]') AS hash, json_extract(value, '$[5]') AS store,
                json_extract(value, '$[6]') AS state, json_extract(value, '$[7]') AS known,
                json_extract(value, '$[8]') AS price, json_extract(value, '$[9]') AS title,
                json_extract(value, '$[10]') AS at, json_extract(value, '$[11]') AS error,
                json_extract(value, '$[12]') AS blocked, json_extract(value, '$[13]') AS owner
                FROM json_each(?))
            UPDATE products SET
                due_at = c.due_at, lease_owner = NULL, lease_until = NULL,
                etag = COALESCE(c.etag, products.etag),
                last_modified = COALESCE(c.modified, products.last_modified),
                content_hash = COALESCE(c.hash, products.content_hash),
                store = COALESCE(products.store, c.store),
                last_state = c.state,
                last_price = CASE WHEN c.known THEN c.price ELSE products.last_price END,
                last_title = COALESCE(c.title, products.last_title),
                last_checked_at = c.at,
                consecutive_errors = CASE WHEN c.error THEN products.consecutive_errors + 1
                                          ELSE 0 END,
                checks = products.checks + 1,
                blocks = products.blocks + c.blocked
            FROM c
            WHERE products.id = c.id AND (c.owner IS NULL OR products.lease_owner = c.owner)
            RETURNING products.id, products.checks
            """,
            (json.dumps(values, ensure_ascii=False),),
        )
        return {int(row[0]): int(row[1]) for row in rows}

    async def _insert_observations(
        self, writes: Sequence[CheckWrite], checks: dict[int, int]
    ) -> None:
        """As `_insert_observation` for a group, in one statement (and one more to prune)."""
        if not writes:
            return
        values = []
        for write in writes:
            obs, facts = write.observation, write.observation.fetch
            values.append(
                (
                    write.product_id,
                    write.stamp,
                    obs.state.value,
                    obs.price,
                    obs.reason,
                    facts.status if facts else None,
                    facts.bytes if facts else 0,
                    facts.elapsed_ms if facts else 0.0,
                    int(obs.blocked),
                )
            )
        await self._conn.execute_fetchall(
            "INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms,"
            " blocked) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
            " json_extract(value, '$[2]'), json_extract(value, '$[3]'),"
            " json_extract(value, '$[4]'), json_extract(value, '$[5]'),"
            " json_extract(value, '$[6]'), json_extract(value, '$[7]'),"
            " json_extract(value, '$[8]') FROM json_each(?) ORDER BY key",
            (json.dumps(values, ensure_ascii=False),),
        )
        pruned = [w.product_id for w in writes if not checks[w.product_id] % PRUNE_EVERY]
        if pruned:
            # Keep the newest OBSERVATIONS_KEPT rows of these products (as _insert_observation).
            await self._conn.execute_fetchall(
                "DELETE FROM observations WHERE id IN (SELECT o.id FROM json_each(?) p"
                " JOIN observations o ON o.product_id = p.value WHERE o.id < (SELECT id FROM"
                " observations WHERE product_id = p.value ORDER BY id DESC LIMIT 1 OFFSET ?))",
                (ids_json(pruned), OBSERVATIONS_KEPT - 1),
            )

    async def _store_quiet_decisions(self, writes: Sequence[CheckWrite]) -> None:
        """As `_store_decisions` for a group's quiet checks (none finishes its watch)."""
        values = [(d.watch_id, dump_json(d.state), w.stamp) for w in writes for d in w.decisions]
        if not values:
            return
        rows = await self._rows(
            "WITH d AS (SELECT json_extract(value, '$[0]') AS id,"
            " json_extract(value, '$[1]') AS state, json_extract(value, '$[2]') AS at"
            " FROM json_each(?))"
            " UPDATE watches SET detector_state = d.state, updated_at = d.at"
            " FROM d WHERE watches.id = d.id RETURNING watches.id",
            (json.dumps(values, ensure_ascii=False),),
        )
        if len(rows) != len({v[0] for v in values}):
            missing = ", ".join(str(v[0]) for v in values)
            raise StorageError(f"record_check: a watch among ids {missing} does not exist")

    async def _insert_observation(
        self, product_id: int, obs: Observation, stamp: float, checks: int
    ) -> None:
        facts = obs.fetch
        # execute_fetchall: one trip to the database thread instead of execute + close.
        await self._conn.execute_fetchall(
            "INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms,"
            " blocked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                product_id,
                stamp,
                obs.state.value,
                obs.price,
                obs.reason,
                facts.status if facts else None,
                facts.bytes if facts else 0,
                facts.elapsed_ms if facts else 0.0,
                int(obs.blocked),
            ),
        )
        if checks % PRUNE_EVERY:
            return
        # Keep the newest OBSERVATIONS_KEPT rows of this product (pruned now and then, in bulk).
        await self._conn.execute_fetchall(
            "DELETE FROM observations WHERE product_id = ? AND id < (SELECT id FROM observations"
            " WHERE product_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (product_id, product_id, OBSERVATIONS_KEPT - 1),
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
                due_at = ?, lease_owner = NULL, lease_until = NULL,
                etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified),
                content_hash = COALESCE(?, content_hash),
                store = COALESCE(store, ?),
                last_state = ?,
                last_price = CASE WHEN ? THEN ? ELSE last_price END,
                last_title = COALESCE(?, last_title),
                last_checked_at = ?,
                consecutive_errors = CASE WHEN ? THEN consecutive_errors + 1 ELSE 0 END,
                checks = checks + 1,
                blocks = blocks + ?
            WHERE id = ? AND (? IS NULL OR lease_owner = ?)
            RETURNING checks
            """,
            (
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
                outcome.lease_owner,
            ),
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
        would lease them (an attempt counted, the lease running from `stamp`): with thousands of
        subscribers that saves an update and a read-back of every row.
        """
        payload = event_to_json(event)
        row = await self._row(
            "INSERT INTO events (watch_id, kind, payload, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING id",
            (decision.watch_id, event.kind.value, payload, stamp),
        )
        assert row is not None  # RETURNING of a successful insert
        event_id: int = row["id"]
        lease_until = stamp + claim.lease.total_seconds() if claim else None
        inserted = await self._rows(
            """
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
            {
                "event": event_id,
                "now": stamp,
                "owner": claim.owner if claim else None,
                "lease_until": lease_until,
                "channels": json.dumps(sorted(claim.channels) if claim else []),
                "watch": decision.watch_id,
            },
        )
        claimed = [row for row in inserted if row[4]]
        claims = None
        if claimed and lease_until is not None:
            claimed.sort(key=_first)  # in id order, as a claim from the outbox hands them
            extras = await self._recipient_settings(decision.watch_id)
            stored = event_from_json(event_id, payload)  # what a claim from the outbox decodes
            claims = NewClaims(stored, required_time(lease_until), claimed, extras)
        ended = 0
        if event.kind in ENDING_EVENT_KINDS and inserted:
            ended = await self._run(
                "UPDATE subscriptions SET active = 0, ended_at = ?"
                " WHERE id IN (SELECT value FROM json_each(?)) AND one_shot = 1",
                (stamp, ids_json(row[1] for row in inserted)),
            )
        return _StoredEvent(event_id, len(inserted), claims, ended > 0)

    async def _recipient_settings(self, watch_id: int) -> dict[int, RecipientSettings]:
        """Quiet hours and language of a watch's active subscriptions that have either, by id."""
        rows = await self._rows(
            "SELECT id, quiet_from, quiet_to, quiet_mode, language FROM subscriptions"
            " WHERE watch_id = ? AND active = 1 AND paused = 0"
            " AND (quiet_from IS NOT NULL OR language IS NOT NULL)",
            (watch_id,),
        )
        return {row[0]: (quiet_from_row(row), row[4]) for row in rows}

    async def _store_decisions(self, decisions: Sequence[WatchDecision], stamp: float) -> None:
        if not decisions:
            return
        cursor = await self._conn.executemany(
            "UPDATE watches SET detector_state = ?, updated_at = ?,"
            " active = CASE WHEN ? THEN 0 ELSE active END WHERE id = ?",
            [(dump_json(d.state), stamp, d.finished, d.watch_id) for d in decisions],
        )
        changed = cursor.rowcount
        await cursor.close()
        if decisions and changed != len(decisions):
            missing = ", ".join(str(d.watch_id) for d in decisions)
            raise StorageError(f"record_check: a watch among ids {missing} does not exist")

    async def _insert_restock(self, product_id: int, store: str | None, stamp: float) -> None:
        await self._run(
            "INSERT INTO restocks (product_id, store, at)"
            " SELECT id, COALESCE(?, store), ? FROM products WHERE id = ?",
            (store, stamp, product_id),
        )

    async def record_restock(self, product_id: int, store: str | None, at: datetime) -> None:
        async with self._write():
            await self._insert_restock(product_id, store, to_epoch(at))

    async def restock_times(
        self, *, product_id: int | None = None, store: str | None = None, limit: int = 500
    ) -> list[datetime]:
        async with self._read():
            rows = await self._rows(
                "SELECT at FROM restocks WHERE (? IS NULL OR product_id = ?)"
                " AND (? IS NULL OR store = ?) ORDER BY at DESC LIMIT ?",
                (product_id, product_id, store, store, limit),
            )
        return [required_time(row["at"]) for row in rows]


@dataclass(frozen=True, slots=True)
class _StoredEvent:
    event_id: int
    deliveries: int
    claims: NewClaims | None
    ended: bool  # one-shot subscriptions ended with it


def _first(row: sqlite3.Row) -> int:
    return int(row[0])
