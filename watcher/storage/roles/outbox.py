"""Deliveries: claimed by dispatchers, then sent, retried, dead-lettered or skipped.

On PostgreSQL a claim skips the rows another dispatcher is claiming (`FOR UPDATE SKIP LOCKED`);
on SQLite the write lock already lets one claim in at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from watcher.core.keys import TELEGRAM
from watcher.errors import StorageError
from watcher.storage.codec import to_epoch
from watcher.storage.connector import Query
from watcher.storage.interface import ClaimedDelivery, DeliveryResult
from watcher.storage.roles.products import END_RECIPIENT, Products, ending_subscriptions
from watcher.storage.rows import claimed_from_rows

# Pending deliveries due at :now, oldest first, leased to :owner with one more attempt counted.
CLAIM_DELIVERIES = Query(
    sqlite="""
    UPDATE deliveries SET lease_owner = :owner, lease_until = :lease_until,
        attempts = attempts + 1, updated_at = :now
    WHERE id IN (SELECT id FROM deliveries
                 WHERE status = 'pending' AND next_attempt_at <= :now
                   AND (lease_until IS NULL OR lease_until <= :now)
                   AND (:channel IS NULL OR channel = :channel)
                 ORDER BY next_attempt_at, id LIMIT :limit)
    RETURNING id
    """,
    postgres="""
    UPDATE deliveries d SET lease_owner = :owner, lease_until = :lease_until,
        attempts = d.attempts + 1, updated_at = :now
    FROM (SELECT id FROM deliveries
          WHERE status = 'pending' AND next_attempt_at <= :now
            AND (lease_until IS NULL OR lease_until <= :now)
            AND (:channel::text IS NULL OR channel = :channel::text)
          ORDER BY next_attempt_at, id LIMIT :limit
          FOR UPDATE SKIP LOCKED) due
    WHERE d.id = due.id
    RETURNING d.id
    """,
)
# A claimed delivery with what its notifier needs, for the ids in :ids.
_CLAIMED_SELECT = """
    SELECT d.id, d.channel, d.recipient, d.attempts, d.lease_until,
           d.subscription_id, e.id AS event_id, e.payload,
           s.quiet_from, s.quiet_to, s.quiet_mode, s.language
    FROM deliveries d JOIN events e ON e.id = d.event_id
    LEFT JOIN subscriptions s ON s.id = d.subscription_id
    WHERE {which}
    ORDER BY d.next_attempt_at, d.id
"""
CLAIMED = Query(
    sqlite=_CLAIMED_SELECT.format(which="d.id IN (SELECT value FROM json_each(:ids))"),
    postgres=_CLAIMED_SELECT.format(which="d.id = ANY(:ids::bigint[])"),
)
MARK_SENT = Query(
    "UPDATE deliveries SET status = 'sent', sent_at = :stamp, updated_at = :stamp,"
    " last_error = NULL, lease_owner = NULL, lease_until = NULL WHERE id = :id"
)
MARK_RETRY = Query(
    """
    UPDATE deliveries SET
        status = CASE WHEN attempts >= :max_attempts THEN 'dead' ELSE 'pending' END,
        next_attempt_at = :retry_at, last_error = :error, updated_at = :now,
        lease_owner = NULL, lease_until = NULL
    WHERE id = :id AND status = 'pending'
    RETURNING status
    """
)
STATUS_OF = Query("SELECT status FROM deliveries WHERE id = :id")
STATUSES_OF = Query(
    sqlite="SELECT id, status FROM deliveries WHERE id IN (SELECT value FROM json_each(:ids))",
    postgres="SELECT id, status FROM deliveries WHERE id = ANY(:ids::bigint[])",
)
# A held delivery waits for :until; its claim's attempt was never made, so it is given back.
_POSTPONE = (
    "UPDATE deliveries SET next_attempt_at = :until, attempts = {greatest}(attempts - 1, 0),"
    " updated_at = :now, lease_owner = NULL, lease_until = NULL"
    " WHERE id = :id AND status = 'pending'"
)
POSTPONE = Query(
    sqlite=_POSTPONE.format(greatest="MAX"), postgres=_POSTPONE.format(greatest="GREATEST")
)
FINISH_DELIVERY = Query(
    "UPDATE deliveries SET status = :status, last_error = :error, updated_at = :now,"
    " lease_owner = NULL, lease_until = NULL WHERE id = :id"
)
# A result of `record_results` for the deliveries {which} selects: each outcome writes what the
# matching `mark_*` method does; only a pending delivery changes.
_RESULT_UPDATE = """
    UPDATE deliveries SET
        status = CASE :outcome
            WHEN 'retry' THEN CASE WHEN attempts >= :max_attempts THEN 'dead' ELSE 'pending' END
            ELSE :outcome END,
        sent_at = CASE :outcome WHEN 'sent' THEN :now ELSE sent_at END,
        next_attempt_at = CASE :outcome WHEN 'retry' THEN :retry_at ELSE next_attempt_at END,
        last_error = CASE :outcome WHEN 'sent' THEN NULL ELSE :detail END,
        updated_at = :now, lease_owner = NULL, lease_until = NULL
    WHERE {which} AND status = 'pending'
"""
RESULT_ONE = Query(_RESULT_UPDATE.format(which="id = :id"))
# Results for the distinct deliveries in :ids, each with its outcome, detail and retry time in
# the arrays alongside (PostgreSQL writes them all in one statement).
RESULTS_DISTINCT = Query(
    """
    UPDATE deliveries d SET
        status = CASE r.outcome
            WHEN 'retry' THEN CASE WHEN d.attempts >= :max_attempts THEN 'dead' ELSE 'pending' END
            ELSE r.outcome END,
        sent_at = CASE r.outcome WHEN 'sent' THEN :now ELSE d.sent_at END,
        next_attempt_at = CASE r.outcome WHEN 'retry' THEN r.retry_at ELSE d.next_attempt_at END,
        last_error = CASE r.outcome WHEN 'sent' THEN NULL ELSE r.detail END,
        updated_at = :now, lease_owner = NULL, lease_until = NULL
    FROM unnest(:ids::bigint[], :outcomes::text[], :details::text[],
                :retries::double precision[]) AS r (id, outcome, detail, retry_at)
    WHERE d.id = r.id AND d.status = 'pending'
    """,
    only="postgres",
)
# SQLite writes alike results (a fan-out's thousands of "sent") with one statement per kind.
RESULTS_ALIKE = Query(
    _RESULT_UPDATE.format(which="id IN (SELECT value FROM json_each(:ids))"), only="sqlite"
)
SKIP_RECIPIENT_DELIVERIES = Query(
    "UPDATE deliveries SET status = 'skipped', last_error = 'recipient gone',"
    " updated_at = :stamp, lease_owner = NULL, lease_until = NULL"
    " WHERE channel = :channel AND recipient = :recipient AND status = 'pending'"
)
BLOCK_CHAT = Query("UPDATE chat_users SET blocked = TRUE WHERE chat_id = :chat_id")
# A recipient's own unsubscribe link: the address's case is not the recipient's word.
_SQLITE_WATCH_RECIPIENT = (
    "channel = :channel AND recipient = :recipient COLLATE NOCASE"
    " AND watch_id IN (SELECT id FROM watches WHERE key = :key)"
)
_POSTGRES_WATCH_RECIPIENT = (
    "channel = :channel AND lower(recipient) = lower(:recipient)"
    " AND watch_id IN (SELECT id FROM watches WHERE key = :key)"
)
END_WATCH_RECIPIENT = ending_subscriptions(_SQLITE_WATCH_RECIPIENT, _POSTGRES_WATCH_RECIPIENT)
OPT_OUT_WATCH_RECIPIENT = Query(
    sqlite=f"UPDATE subscriptions SET opted_out_at = :stamp WHERE {_SQLITE_WATCH_RECIPIENT}",
    postgres=f"UPDATE subscriptions SET opted_out_at = :stamp WHERE {_POSTGRES_WATCH_RECIPIENT}",
)
# Moving a recipient: where `new` already follows the same watch, the old row is a duplicate and
# stays behind, ended.
MOVE_SUBSCRIPTIONS = Query(
    sqlite="UPDATE OR IGNORE subscriptions SET recipient = :new"
    " WHERE channel = :channel AND recipient = :old",
    postgres="UPDATE subscriptions s SET recipient = :new WHERE channel = :channel"
    " AND recipient = :old AND NOT EXISTS (SELECT 1 FROM subscriptions t"
    " WHERE t.watch_id = s.watch_id AND t.channel = s.channel AND t.recipient = :new)",
)
END_OLD_SUBSCRIPTIONS = Query(
    "UPDATE subscriptions SET active = FALSE WHERE channel = :channel AND recipient = :old"
)
MOVE_DELIVERIES = Query(
    sqlite="UPDATE OR IGNORE deliveries SET recipient = :new,"
    " idempotency_key = event_id || ':' || channel || ':' || :new"
    " WHERE channel = :channel AND recipient = :old AND status = 'pending'",
    postgres="UPDATE deliveries d SET recipient = :new,"
    " idempotency_key = d.event_id || ':' || d.channel || ':' || :new"
    " WHERE channel = :channel AND recipient = :old AND status = 'pending'"
    " AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.idempotency_key ="
    " d.event_id || ':' || d.channel || ':' || :new)",
)
SKIP_OLD_DELIVERIES = Query(
    "UPDATE deliveries SET status = 'skipped', last_error = 'recipient moved'"
    " WHERE channel = :channel AND recipient = :old AND status = 'pending'"
)
MOVE_CHAT = Query(
    sqlite="UPDATE OR IGNORE chat_users SET chat_id = :new WHERE chat_id = :old",
    postgres="UPDATE chat_users SET chat_id = :new WHERE chat_id = :old"
    " AND NOT EXISTS (SELECT 1 FROM chat_users WHERE chat_id = :new)",
)


class Outbox(Products):
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
        async with self._db.write():
            leased = await self._db.rows(
                CLAIM_DELIVERIES,
                owner=owner,
                lease_until=stamp + lease.total_seconds(),
                now=stamp,
                channel=channel,
                limit=limit,
            )
            if not leased:
                return []
            rows = await self._db.rows(CLAIMED, ids=self._db.ids(row["id"] for row in leased))
        return claimed_from_rows(rows)

    async def mark_sent(self, delivery_id: int, now: datetime) -> None:
        async with self._db.write():
            await self._db.run(MARK_SENT, stamp=to_epoch(now), id=delivery_id)

    async def mark_retry(
        self, delivery_id: int, at: datetime, error: str, now: datetime, max_attempts: int
    ) -> str:
        async with self._db.write():
            row = await self._db.row(
                MARK_RETRY,
                max_attempts=max_attempts,
                retry_at=to_epoch(at),
                error=error,
                now=to_epoch(now),
                id=delivery_id,
            )
        return str(row["status"]) if row else await self._status_of(delivery_id)

    async def _status_of(self, delivery_id: int) -> str:
        async with self._db.read():
            row = await self._db.row(STATUS_OF, id=delivery_id)
        if row is None:
            raise StorageError(f"no delivery with id {delivery_id}")
        return str(row["status"])

    async def postpone_many(self, held: Sequence[tuple[int, datetime]], now: datetime) -> None:
        stamp = to_epoch(now)
        rows = [{"until": to_epoch(until), "now": stamp, "id": id_} for id_, until in held]
        if not rows:
            return
        async with self._db.write():
            await self._db.run_many(POSTPONE, rows)

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "failed", error, now)

    async def mark_skipped(self, delivery_id: int, reason: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "skipped", reason, now)

    async def _finish_delivery(
        self, delivery_id: int, status: str, error: str, now: datetime
    ) -> None:
        async with self._db.write():
            await self._db.run(
                FINISH_DELIVERY, status=status, error=error, now=to_epoch(now), id=delivery_id
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
        async with self._db.write():
            await self._write_results(results, retry_stamps, stamp, max_attempts)
            # Written ones report their new status; those no longer pending, the one they had.
            rows = await self._db.rows(STATUSES_OF, ids=self._db.ids(ids))
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
        """`record_results`' updates, in the caller's transaction.

        When every delivery appears once, the order they are written in does not matter: they
        are written together (PostgreSQL: all in one statement; SQLite: one per kind of alike
        results). Otherwise they are written in order, one statement each (a later result for a
        delivery finds it no longer pending).
        """
        common = {"now": stamp, "max_attempts": max_attempts}
        if len({r.delivery_id for r in results}) < len(results):
            rows = [
                {
                    **common,
                    "id": r.delivery_id,
                    "outcome": r.outcome,
                    "detail": r.detail,
                    "retry_at": t,
                }
                for r, t in zip(results, retry_stamps, strict=True)
            ]
            await self._db.run_many(RESULT_ONE, rows)
            return
        await self._db.run(
            RESULTS_DISTINCT,
            **common,
            ids=[r.delivery_id for r in results],
            outcomes=[r.outcome for r in results],
            details=[r.detail for r in results],
            retries=list(retry_stamps),
        )
        # Where that one statement does not exist (SQLite), one per kind of alike results.
        alike: dict[tuple[str, str, float | None], list[int]] = {}
        for result, retry_stamp in zip(results, retry_stamps, strict=True):
            key = (result.outcome, result.detail, retry_stamp)
            alike.setdefault(key, []).append(result.delivery_id)
        for (outcome, detail, retry_stamp), group in alike.items():
            await self._db.run(
                RESULTS_ALIKE,
                **common,
                outcome=outcome,
                detail=detail,
                retry_at=retry_stamp,
                ids=self._db.array(group),
            )

    async def deactivate_recipient(self, channel: str, recipient: str, now: datetime) -> int:
        stamp = to_epoch(now)
        async with self._db.write():
            ended = await self._end_matching(
                END_RECIPIENT, stamp, "recipient gone", channel=channel, recipient=recipient
            )
            await self._db.run(
                SKIP_RECIPIENT_DELIVERIES, stamp=stamp, channel=channel, recipient=recipient
            )
            if channel == TELEGRAM and _is_int(recipient):
                await self._db.run(BLOCK_CHAT, chat_id=int(recipient))
        return ended

    async def end_subscription(
        self, channel: str, recipient: str, watch_key: str, now: datetime
    ) -> bool:
        stamp = to_epoch(now)
        where = {"channel": channel, "recipient": recipient, "key": watch_key}
        async with self._db.write():
            ended = await self._end_matching(END_WATCH_RECIPIENT, stamp, "unsubscribed", **where)
            # Remembered, so that re-reading the watchlist does not subscribe them again.
            await self._db.run(OPT_OUT_WATCH_RECIPIENT, stamp=stamp, **where)
        return ended > 0

    async def rewrite_recipient(self, channel: str, old: str, new: str) -> None:
        async with self._db.write():
            await self._db.run(MOVE_SUBSCRIPTIONS, new=new, channel=channel, old=old)
            await self._db.run(END_OLD_SUBSCRIPTIONS, channel=channel, old=old)
            await self._db.run(MOVE_DELIVERIES, new=new, channel=channel, old=old)
            await self._db.run(SKIP_OLD_DELIVERIES, channel=channel, old=old)
            if channel == TELEGRAM and _is_int(old) and _is_int(new):
                await self._db.run(MOVE_CHAT, new=int(new), old=int(old))
            await self._refresh_products()


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
