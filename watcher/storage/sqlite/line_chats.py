"""LINE chats on SQLite: LINE users' subscriptions and the webhook events already handled.

LINE users are recipients on the `line` channel: their subscriptions live in the shared
`subscriptions` table (origin `chat`), so the engine's fan-out reaches them like any other, and
each carries the user's language for the alert. Webhook event ids already handled are kept a
week in `line_webhook_events`, the first writer winning, so a redelivered event (or two workers
receiving it) is handled once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.core.keys import chat_watch_key
from watcher.core.model import WatchConditions
from watcher.storage.codec import conditions_to_json, to_epoch
from watcher.storage.interface import Subscription
from watcher.storage.rows import subscription as subscription_from_row
from watcher.storage.sqlite.chats import _SUBSCRIPTION_SELECT, SQLiteChats

CHANNEL = "line"
EVENT_MEMORY = timedelta(days=7)  # LINE redelivers for far less than this

# The chats' own select, so both read subscriptions into the same row shape.
_SELECT = _SUBSCRIPTION_SELECT


class SQLiteLineChats(SQLiteChats):
    """`LineChatStore` on SQLite: LINE users are chats whose ids are LINE user ids."""

    async def claim_line_event(self, event_id: str, now: datetime) -> bool:
        stamp = to_epoch(now)
        async with self._write():
            await self._run(
                "DELETE FROM line_webhook_events WHERE seen_at < ?",
                (stamp - EVENT_MEMORY.total_seconds(),),
            )
            inserted = await self._run(
                "INSERT OR IGNORE INTO line_webhook_events (event_id, seen_at) VALUES (?, ?)",
                (event_id, stamp),
            )
        return inserted > 0

    async def add_line_subscription(
        self,
        user_id: str,
        target: str,
        store: str | None,
        conditions: WatchConditions,
        language: str,
        now: datetime,
        *,
        one_shot: bool = True,
    ) -> Subscription:
        stamp = to_epoch(now)
        async with self._write():
            product_id = await self._ensure_product(target, store, stamp)
            watch = await self._row(
                """
                INSERT INTO watches (key, name, product_id, origin, conditions, active,
                    created_at, updated_at)
                VALUES (?, ?, ?, 'chat', ?, 0, ?, ?)
                ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at
                RETURNING id
                """,
                (
                    chat_watch_key(target, conditions),
                    target,
                    product_id,
                    conditions_to_json(conditions),
                    stamp,
                    stamp,
                ),
            )
            assert watch is not None  # RETURNING of an upsert
            row = await self._row(
                """
                INSERT INTO subscriptions (watch_id, channel, recipient, origin, one_shot,
                    language, created_at)
                VALUES (?, ?, ?, 'chat', ?, ?, ?)
                ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET
                    active = 1, paused = 0, ended_at = NULL, opted_out_at = NULL,
                    language = excluded.language,
                    one_shot = CASE WHEN origin = 'yaml' THEN one_shot ELSE excluded.one_shot END
                RETURNING id
                """,
                (watch["id"], CHANNEL, user_id, one_shot, language, stamp),
            )
            assert row is not None  # RETURNING of an upsert
            await self._refresh_products([product_id])
            return await self._subscription(int(row["id"]))

    async def line_subscriptions(self, user_id: str) -> list[Subscription]:
        async with self._read():
            rows = await self._rows(
                _SELECT + " WHERE s.channel = ? AND s.recipient = ? AND s.active = 1 ORDER BY s.id",
                (CHANNEL, user_id),
            )
        return [subscription_from_row(row) for row in rows]

    async def set_line_paused(self, user_id: str, subscription_id: int, paused: bool) -> bool:
        async with self._write():
            rows = await self._rows(
                "UPDATE subscriptions SET paused = ? WHERE id = ? AND channel = ?"
                " AND recipient = ? AND active = 1 RETURNING watch_id",
                (paused, subscription_id, CHANNEL, user_id),
            )
            await self._refresh_watch_products([row["watch_id"] for row in rows])
        return bool(rows)

    async def remove_line_subscription(
        self, user_id: str, subscription_id: int, now: datetime
    ) -> bool:
        async with self._write():
            ended = await self._end_subscriptions(
                "id = ? AND channel = ? AND recipient = ?",
                (subscription_id, CHANNEL, user_id),
                to_epoch(now),
                "unsubscribed",
            )
        return ended > 0

    async def end_line_subscriptions(self, user_id: str, now: datetime) -> int:
        async with self._write():
            return await self._end_subscriptions(
                "channel = ? AND recipient = ?", (CHANNEL, user_id), to_epoch(now), "unfollowed"
            )

    async def count_line_active(self, user_id: str) -> int:
        async with self._read():
            row = await self._row(
                "SELECT COUNT(*) AS n FROM subscriptions WHERE channel = ? AND recipient = ?"
                " AND origin = 'chat' AND active = 1",
                (CHANNEL, user_id),
            )
        return int(row["n"]) if row else 0
