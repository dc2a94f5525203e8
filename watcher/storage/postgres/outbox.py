"""Deliveries on PostgreSQL: claimed by dispatchers (`FOR UPDATE SKIP LOCKED`), then sent,
retried, dead-lettered or skipped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from watcher.core.keys import TELEGRAM
from watcher.errors import StorageError
from watcher.storage.codec import to_epoch
from watcher.storage.interface import ClaimedDelivery, DeliveryResult
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.rows import claimed_from_rows

# Pending deliveries due at $3, oldest first; rows another dispatcher is claiming are skipped.
_CLAIM_DELIVERIES = """
    UPDATE deliveries d SET lease_owner = $1, lease_until = $2, attempts = d.attempts + 1,
        updated_at = $3
    FROM (SELECT id FROM deliveries
          WHERE status = 'pending' AND next_attempt_at <= $3
            AND (lease_until IS NULL OR lease_until <= $3)
            AND ($4::text IS NULL OR channel = $4::text)
          ORDER BY next_attempt_at, id LIMIT $5
          FOR UPDATE SKIP LOCKED) due
    WHERE d.id = due.id
    RETURNING d.id
"""

# A claimed delivery with what its notifier needs, for the ids in $1.
_CLAIMED_SELECT = """
    SELECT d.id, d.channel, d.recipient, d.attempts, d.lease_until,
           d.subscription_id, e.id AS event_id, e.payload,
           s.quiet_from, s.quiet_to, s.quiet_mode, s.language
    FROM deliveries d JOIN events e ON e.id = d.event_id
    LEFT JOIN subscriptions s ON s.id = d.subscription_id
    WHERE d.id = ANY($1::bigint[])
    ORDER BY d.next_attempt_at, d.id
"""

# Results for the deliveries in $1 (each with its outcome, detail and retry time, in step):
# each outcome writes what the matching `mark_*` method does; only a pending delivery changes.
_RESULTS_UPDATE = """
    UPDATE deliveries d SET
        status = CASE r.outcome
            WHEN 'retry' THEN CASE WHEN d.attempts >= $5 THEN 'dead' ELSE 'pending' END
            ELSE r.outcome END,
        sent_at = CASE r.outcome WHEN 'sent' THEN $6 ELSE d.sent_at END,
        next_attempt_at = CASE r.outcome WHEN 'retry' THEN r.retry_at ELSE d.next_attempt_at END,
        last_error = CASE r.outcome WHEN 'sent' THEN NULL ELSE r.detail END,
        updated_at = $6, lease_owner = NULL, lease_until = NULL
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::double precision[])
        AS r (id, outcome, detail, retry_at)
    WHERE d.id = r.id AND d.status = 'pending'
"""


class PostgresOutbox(PostgresStore):
    """The dispatcher's side of the outbox."""

    async def claim_deliveries(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease: timedelta,
        channel: str | None = None,
    ) -> list[ClaimedDelivery]:
        stamp = to_epoch(now)
        async with self._write():
            leased = await self._rows(
                _CLAIM_DELIVERIES, owner, stamp + lease.total_seconds(), stamp, channel, limit
            )
            if not leased:
                return []
            rows = await self._rows(_CLAIMED_SELECT, [row["id"] for row in leased])
        return claimed_from_rows(rows)

    async def mark_sent(self, delivery_id: int, now: datetime) -> None:
        stamp = to_epoch(now)
        async with self._write():
            await self._run(
                "UPDATE deliveries SET status = 'sent', sent_at = $1, updated_at = $1,"
                " last_error = NULL, lease_owner = NULL, lease_until = NULL WHERE id = $2",
                stamp,
                delivery_id,
            )

    async def mark_retry(
        self, delivery_id: int, at: datetime, error: str, now: datetime, max_attempts: int
    ) -> str:
        async with self._write():
            row = await self._row(
                """
                UPDATE deliveries SET
                    status = CASE WHEN attempts >= $1 THEN 'dead' ELSE 'pending' END,
                    next_attempt_at = $2, last_error = $3, updated_at = $4,
                    lease_owner = NULL, lease_until = NULL
                WHERE id = $5 AND status = 'pending'
                RETURNING status
                """,
                max_attempts,
                to_epoch(at),
                error,
                to_epoch(now),
                delivery_id,
            )
        return str(row["status"]) if row else await self._status_of(delivery_id)

    async def _status_of(self, delivery_id: int) -> str:
        async with self._read():
            row = await self._row("SELECT status FROM deliveries WHERE id = $1", delivery_id)
        if row is None:
            raise StorageError(f"no delivery with id {delivery_id}")
        return str(row["status"])

    async def postpone_many(self, held: Sequence[tuple[int, datetime]], now: datetime) -> None:
        stamp = to_epoch(now)
        rows = [(to_epoch(until), stamp, delivery_id) for delivery_id, until in held]
        if not rows:
            return
        async with self._write():
            await self._many(
                "UPDATE deliveries SET next_attempt_at = $1, attempts = GREATEST(attempts - 1, 0),"
                " updated_at = $2, lease_owner = NULL, lease_until = NULL"
                " WHERE id = $3 AND status = 'pending'",
                rows,
            )

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "failed", error, now)

    async def mark_skipped(self, delivery_id: int, reason: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "skipped", reason, now)

    async def _finish_delivery(
        self, delivery_id: int, status: str, error: str, now: datetime
    ) -> None:
        async with self._write():
            await self._run(
                "UPDATE deliveries SET status = $1, last_error = $2, updated_at = $3,"
                " lease_owner = NULL, lease_until = NULL WHERE id = $4",
                status,
                error,
                to_epoch(now),
                delivery_id,
            )

    async def record_results(
        self, results: Sequence[DeliveryResult], now: datetime, max_attempts: int
    ) -> list[str]:
        stamp = to_epoch(now)
        # Converted before the transaction: a naive retry time refuses the batch, writes nothing.
        retry_stamps = [None if r.retry_at is None else to_epoch(r.retry_at) for r in results]
        if not results:
            return []
        ids = [result.delivery_id for result in results]
        async with self._write():
            await self._write_results(results, retry_stamps, stamp, max_attempts)
            rows = await self._rows(
                "SELECT id, status FROM deliveries WHERE id = ANY($1::bigint[])", ids
            )
            status = {row[0]: str(row[1]) for row in rows}
            unknown = [i for i in ids if i not in status]
            if unknown:
                raise StorageError(f"no delivery with id {unknown[0]}")
        return [status[i] for i in ids]

    async def _write_results(
        self,
        results: Sequence[DeliveryResult],
        retry_stamps: Sequence[float | None],
        stamp: float,
        max_attempts: int,
    ) -> None:
        """`record_results`' updates, in the caller's transaction: one statement when every
        delivery appears once; otherwise in order, one each (a later result for a delivery
        finds it no longer pending)."""
        columns = [
            (r.delivery_id, r.outcome, r.detail, t)
            for r, t in zip(results, retry_stamps, strict=True)
        ]
        distinct = len({c[0] for c in columns}) == len(columns)
        groups = [columns] if distinct else [[c] for c in columns]
        for group in groups:
            ids, outcomes, details, retries = (list(column) for column in zip(*group, strict=True))
            await self._run(_RESULTS_UPDATE, ids, outcomes, details, retries, max_attempts, stamp)

    async def deactivate_recipient(self, channel: str, recipient: str, now: datetime) -> int:
        stamp = to_epoch(now)
        async with self._write():
            ended = await self._end_subscriptions(
                "channel = $3 AND recipient = $4", (channel, recipient), stamp, "recipient gone"
            )
            await self._run(
                "UPDATE deliveries SET status = 'skipped', last_error = 'recipient gone',"
                " updated_at = $1, lease_owner = NULL, lease_until = NULL"
                " WHERE channel = $2 AND recipient = $3 AND status = 'pending'",
                stamp,
                channel,
                recipient,
            )
            if channel == TELEGRAM and _is_int(recipient):
                await self._run(
                    "UPDATE chat_users SET blocked = TRUE WHERE chat_id = $1", int(recipient)
                )
        return ended

    async def end_subscription(
        self, channel: str, recipient: str, watch_key: str, now: datetime
    ) -> bool:
        stamp = to_epoch(now)
        async with self._write():
            where = (
                "channel = $3 AND lower(recipient) = lower($4)"
                " AND watch_id IN (SELECT id FROM watches WHERE key = $5)"
            )
            ended = await self._end_subscriptions(
                where, (channel, recipient, watch_key), stamp, "unsubscribed"
            )
            # Remembered, so that re-reading the watchlist does not subscribe them again.
            await self._run(
                "UPDATE subscriptions SET opted_out_at = $1 WHERE channel = $2"
                " AND lower(recipient) = lower($3)"
                " AND watch_id IN (SELECT id FROM watches WHERE key = $4)",
                stamp,
                channel,
                recipient,
                watch_key,
            )
        return ended > 0

    async def rewrite_recipient(self, channel: str, old: str, new: str) -> None:
        async with self._write():
            # Where `new` already follows the same watch, the old row is a duplicate: end it.
            await self._run(
                "UPDATE subscriptions s SET recipient = $1 WHERE channel = $2 AND recipient = $3"
                " AND NOT EXISTS (SELECT 1 FROM subscriptions t WHERE t.watch_id = s.watch_id"
                " AND t.channel = s.channel AND t.recipient = $1)",
                new,
                channel,
                old,
            )
            await self._run(
                "UPDATE subscriptions SET active = FALSE WHERE channel = $1 AND recipient = $2",
                channel,
                old,
            )
            await self._run(
                "UPDATE deliveries d SET recipient = $1,"
                " idempotency_key = d.event_id || ':' || d.channel || ':' || $1"
                " WHERE channel = $2 AND recipient = $3 AND status = 'pending'"
                " AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.idempotency_key ="
                " d.event_id || ':' || d.channel || ':' || $1)",
                new,
                channel,
                old,
            )
            await self._run(
                "UPDATE deliveries SET status = 'skipped', last_error = 'recipient moved'"
                " WHERE channel = $1 AND recipient = $2 AND status = 'pending'",
                channel,
                old,
            )
            if channel == TELEGRAM and _is_int(old) and _is_int(new):
                await self._run(
                    "UPDATE chat_users SET chat_id = $1 WHERE chat_id = $2"
                    " AND NOT EXISTS (SELECT 1 FROM chat_users WHERE chat_id = $1)",
                    int(new),
                    int(old),
                )
            await self._refresh_products()


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
