"""Deliveries on SQLite: claimed by dispatchers, then sent, retried, dead-lettered or skipped."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from watcher.core.keys import TELEGRAM
from watcher.errors import StorageError
from watcher.storage.codec import (
    ids_json,
    to_epoch,
)
from watcher.storage.interface import (
    ClaimedDelivery,
    DeliveryResult,
)
from watcher.storage.rows import (
    claimed_from_rows,
)
from watcher.storage.sqlite.connection import SQLiteStore

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
_RESULT_UPDATE_ONE = _RESULT_UPDATE.format(which="id = :id")
_RESULT_UPDATE_ALIKE = _RESULT_UPDATE.format(which="id IN (SELECT value FROM json_each(:ids))")


# A delivery `claim_deliveries` may claim at :now.
_CLAIMABLE_DELIVERY = (
    "status = 'pending' AND next_attempt_at <= :now"
    " AND (lease_until IS NULL OR lease_until <= :now)"
)

# A claimed delivery with what its notifier needs, for the ids in the JSON array :ids.
_CLAIMED_SELECT = """
    SELECT d.id, d.channel, d.recipient, d.attempts, d.lease_until,
           d.subscription_id, e.id AS event_id, e.payload,
           s.quiet_from, s.quiet_to, s.quiet_mode, s.language
    FROM deliveries d JOIN events e ON e.id = d.event_id
    LEFT JOIN subscriptions s ON s.id = d.subscription_id
    WHERE d.id IN (SELECT value FROM json_each(:ids))
    ORDER BY d.next_attempt_at, d.id
"""


class SQLiteOutbox(SQLiteStore):
    """The dispatcher's side of the outbox."""

    async def claim_deliveries(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease: timedelta,
        channel: str | None = None,
    ) -> list[ClaimedDelivery]:
        pick = (
            f"SELECT id FROM deliveries WHERE {_CLAIMABLE_DELIVERY}"
            " AND (:channel IS NULL OR channel = :channel)"
            " ORDER BY next_attempt_at, id LIMIT :limit"
        )
        params = {"channel": channel, "limit": limit}
        stamp = to_epoch(now)
        async with self._write():
            return await self._lease_deliveries(pick, params, owner, stamp, lease)

    async def _lease_deliveries(
        self, pick: str, params: Mapping[str, Any], owner: str, stamp: float, lease: timedelta
    ) -> list[ClaimedDelivery]:
        """Lease the deliveries whose ids `pick` selects, counting an attempt; in the caller's
        transaction. `pick` may use :now, which is `stamp`."""
        leased = await self._rows(
            "UPDATE deliveries SET lease_owner = :owner, lease_until = :lease_until,"
            f" attempts = attempts + 1, updated_at = :now WHERE id IN ({pick}) RETURNING id",
            {**params, "owner": owner, "lease_until": stamp + lease.total_seconds(), "now": stamp},
        )
        if not leased:
            return []
        rows = await self._rows(_CLAIMED_SELECT, {"ids": ids_json(row["id"] for row in leased)})
        return claimed_from_rows(rows)

    async def mark_sent(self, delivery_id: int, now: datetime) -> None:
        stamp = to_epoch(now)
        async with self._write():
            await self._run(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, updated_at = ?,"
                " last_error = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                (stamp, stamp, delivery_id),
            )

    async def mark_retry(
        self, delivery_id: int, at: datetime, error: str, now: datetime, max_attempts: int
    ) -> str:
        async with self._write():
            row = await self._row(
                """
                UPDATE deliveries SET
                    status = CASE WHEN attempts >= ? THEN 'dead' ELSE 'pending' END,
                    next_attempt_at = ?, last_error = ?, updated_at = ?,
                    lease_owner = NULL, lease_until = NULL
                WHERE id = ? AND status = 'pending'
                RETURNING status
                """,
                (max_attempts, to_epoch(at), error, to_epoch(now), delivery_id),
            )
        return str(row["status"]) if row else await self._status_of(delivery_id)

    async def _status_of(self, delivery_id: int) -> str:
        async with self._read():
            row = await self._row("SELECT status FROM deliveries WHERE id = ?", (delivery_id,))
        if row is None:
            raise StorageError(f"no delivery with id {delivery_id}")
        return str(row["status"])

    async def postpone_many(self, held: Sequence[tuple[int, datetime]], now: datetime) -> None:
        stamp = to_epoch(now)
        rows = [(to_epoch(until), stamp, delivery_id) for delivery_id, until in held]
        if not rows:
            return
        async with self._write():
            cursor = await self._conn.executemany(
                "UPDATE deliveries SET next_attempt_at = ?, attempts = MAX(attempts - 1, 0),"
                " updated_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND status = 'pending'",
                rows,
            )
            await cursor.close()

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "failed", error, now)

    async def mark_skipped(self, delivery_id: int, reason: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "skipped", reason, now)

    async def _finish_delivery(
        self, delivery_id: int, status: str, error: str, now: datetime
    ) -> None:
        async with self._write():
            await self._run(
                "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ?,"
                " lease_owner = NULL, lease_until = NULL WHERE id = ?",
                (status, error, to_epoch(now), delivery_id),
            )

    async def record_results(
        self, results: Sequence[DeliveryResult], now: datetime, max_attempts: int
    ) -> list[str]:
        stamp = to_epoch(now)
        # Converted before the transaction: a naive retry time refuses the batch, writes nothing.
        retry_stamps = [None if r.retry_at is None else to_epoch(r.retry_at) for r in results]
        if not results:
            return []
        ids = ids_json(result.delivery_id for result in results)
        async with self._write():
            await self._write_results(results, retry_stamps, stamp, max_attempts)
            # Written ones report their new status; those no longer pending, the one they had.
            rows = await self._rows(
                "SELECT id, status FROM deliveries WHERE id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            status = {row[0]: str(row[1]) for row in rows}
            unknown = [r.delivery_id for r in results if r.delivery_id not in status]
            if unknown:
                raise StorageError(f"no delivery with id {unknown[0]}")
        return [status[result.delivery_id] for result in results]

    async def _write_results(
        self,
        results: Sequence[DeliveryResult],
        retry_stamps: Sequence[float | None],
        stamp: float,
        max_attempts: int,
    ) -> None:
        """`record_results`' updates, in the caller's transaction.

        Alike results (a fan-out's thousands of "sent") share one statement: when every delivery
        appears once, the order they are written in does not matter. Otherwise they are written
        in order, one statement each (a later result for a delivery finds it no longer pending).
        """
        common = {"now": stamp, "max_attempts": max_attempts}
        if len({r.delivery_id for r in results}) == len(results):
            alike: dict[tuple[str, str, float | None], list[int]] = {}
            for result, retry_stamp in zip(results, retry_stamps, strict=True):
                key = (result.outcome, result.detail, retry_stamp)
                alike.setdefault(key, []).append(result.delivery_id)
            for (outcome, detail, retry_stamp), ids in alike.items():
                values = {"outcome": outcome, "detail": detail, "retry_at": retry_stamp}
                params = {**common, **values, "ids": json.dumps(ids)}
                await (await self._conn.execute(_RESULT_UPDATE_ALIKE, params)).close()
            return
        rows = [
            {**common, "id": r.delivery_id, "outcome": r.outcome, "detail": r.detail, "retry_at": t}
            for r, t in zip(results, retry_stamps, strict=True)
        ]
        await (await self._conn.executemany(_RESULT_UPDATE_ONE, rows)).close()

    async def deactivate_recipient(self, channel: str, recipient: str, now: datetime) -> int:
        stamp = to_epoch(now)
        async with self._write():
            ended = await self._end_subscriptions(
                "channel = ? AND recipient = ?", (channel, recipient), stamp, "recipient gone"
            )
            await self._run(
                "UPDATE deliveries SET status = 'skipped', last_error = 'recipient gone',"
                " updated_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE channel = ? AND recipient = ? AND status = 'pending'",
                (stamp, channel, recipient),
            )
            if channel == TELEGRAM and _is_int(recipient):
                await self._run(
                    "UPDATE chat_users SET blocked = 1 WHERE chat_id = ?", (int(recipient),)
                )
        return ended

    async def end_subscription(
        self, channel: str, recipient: str, watch_key: str, now: datetime
    ) -> bool:
        async with self._write():
            where = (
                "channel = ? AND recipient = ? COLLATE NOCASE"
                " AND watch_id IN (SELECT id FROM watches WHERE key = ?)"
            )
            ended = await self._end_subscriptions(
                where, (channel, recipient, watch_key), to_epoch(now), "unsubscribed"
            )
            # Remembered, so that re-reading the watchlist does not subscribe them again.
            await self._run(
                f"UPDATE subscriptions SET opted_out_at = ? WHERE {where}",
                (to_epoch(now), channel, recipient, watch_key),
            )
        return ended > 0

    async def rewrite_recipient(self, channel: str, old: str, new: str) -> None:
        async with self._write():
            # Where `new` already follows the same watch, the old row is a duplicate: end it.
            await self._run(
                "UPDATE OR IGNORE subscriptions SET recipient = ?"
                " WHERE channel = ? AND recipient = ?",
                (new, channel, old),
            )
            await self._run(
                "UPDATE subscriptions SET active = 0 WHERE channel = ? AND recipient = ?",
                (channel, old),
            )
            await self._run(
                "UPDATE OR IGNORE deliveries SET recipient = ?,"
                " idempotency_key = event_id || ':' || channel || ':' || ?"
                " WHERE channel = ? AND recipient = ? AND status = 'pending'",
                (new, new, channel, old),
            )
            await self._run(
                "UPDATE deliveries SET status = 'skipped', last_error = 'recipient moved'"
                " WHERE channel = ? AND recipient = ? AND status = 'pending'",
                (channel, old),
            )
            if channel == TELEGRAM and _is_int(old) and _is_int(new):
                await self._run(
                    "UPDATE OR IGNORE chat_users SET chat_id = ? WHERE chat_id = ?",
                    (int(new), int(old)),
                )
            await self._refresh_products()


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
