"""LINE chats on PostgreSQL: LINE users' subscriptions and the webhook events already handled.

As on SQLite, LINE users are recipients on the `line` channel of the shared `subscriptions`
table (origin `chat`), each subscription carrying the user's language. Webhook event ids already
handled are kept a week in `line_webhook_events`; the primary key makes the first writer win, so
a redelivered event (or two workers receiving it) is handled once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.core.keys import chat_watch_key
from watcher.core.model import WatchConditions
from watcher.storage.codec import conditions_to_json, to_epoch
from watcher.storage.interface import Subscription
from watcher.storage.postgres.chats import _SUBSCRIPTION_SELECT, PostgresChats
from watcher.storage.rows import subscription as subscription_from_row

CHANNEL = "line"
EVENT_MEMORY = timedelta(days=7)  # LINE redelivers for far less than this


def storable_event_id(event_id: str) -> str:
    """The id in a form PostgreSQL text holds (it holds no NUL); distinct ids stay distinct."""
    return event_id.replace("\\", "\\\\").replace("\x00", "\\0")


class PostgresLineChats(PostgresChats):
    """`LineChatStore` on PostgreSQL: LINE users are chats whose ids are LINE user ids."""

    async def claim_line_event(self, event_id: str, now: datetime) -> bool:
        stamp = to_epoch(now)
        async with self._write():
            await self._run(
                "DELETE FROM line_webhook_events WHERE seen_at < $1",
                stamp - EVENT_MEMORY.total_seconds(),
            )
            claimed = await self._row(
                "INSERT INTO line_webhook_events (event_id, seen_at) VALUES ($1, $2)"
                " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                storable_event_id(event_id),
                stamp,
            )
        return claimed is not None

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
            watch_id: int = await self._conn().fetchval(
                """
                INSERT INTO watches (key, name, product_id, origin, conditions, active,
                    created_at, updated_at)
                VALUES ($1, $2, $3, 'chat', $4, FALSE, $5, $5)
                ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at
                RETURNING id
                """,
                chat_watch_key(target, conditions),
                target,
                product_id,
                conditions_to_json(conditions),
                stamp,
            )
            sub_id: int = await self._conn().fetchval(
                """
                INSERT INTO subscriptions AS s (watch_id, channel, recipient, origin, one_shot,
                    language, created_at)
                VALUES ($1, $2, $3, 'chat', $4, $5, $6)
                ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET
                    active = TRUE, paused = FALSE, ended_at = NULL, opted_out_at = NULL,
                    language = excluded.language,
                    -- the operator's standing YAML subscription stays standing
                    one_shot = CASE WHEN s.origin = 'yaml'
                        THEN s.one_shot ELSE excluded.one_shot END
                RETURNING id
                """,
                watch_id,
                CHANNEL,
                user_id,
                one_shot,
                language,
                stamp,
            )
            await self._refresh_products([product_id])
            return await self._subscription(sub_id)

    async def line_subscriptions(self, user_id: str) -> list[Subscription]:
        async with self._read():
            rows = await self._rows(
                _SUBSCRIPTION_SELECT
                + " WHERE s.channel = $1 AND s.recipient = $2 AND s.active ORDER BY s.id",
                CHANNEL,
                user_id,
            )
        return [subscription_from_row(row) for row in rows]

    async def set_line_paused(self, user_id: str, subscription_id: int, paused: bool) -> bool:
        async with self._write():
            rows = await self._rows(
                "UPDATE subscriptions SET paused = $1 WHERE id = $2 AND channel = $3"
                " AND recipient = $4 AND active RETURNING watch_id",
                paused,
                subscription_id,
                CHANNEL,
                user_id,
            )
            await self._refresh_watch_products([row["watch_id"] for row in rows])
        return bool(rows)

    async def remove_line_subscription(
        self, user_id: str, subscription_id: int, now: datetime
    ) -> bool:
        async with self._write():
            ended = await self._end_subscriptions(
                "id = $3 AND channel = $4 AND recipient = $5",
                (subscription_id, CHANNEL, user_id),
                to_epoch(now),
                "unsubscribed",
            )
        return ended > 0

    async def end_line_subscriptions(self, user_id: str, now: datetime) -> int:
        async with self._write():
            return await self._end_subscriptions(
                "channel = $3 AND recipient = $4", (CHANNEL, user_id), to_epoch(now), "unfollowed"
            )

    async def count_line_active(self, user_id: str) -> int:
        async with self._read():
            count: int = await self._conn().fetchval(
                "SELECT COUNT(*) FROM subscriptions WHERE channel = $1 AND recipient = $2"
                " AND origin = 'chat' AND active",
                CHANNEL,
                user_id,
            )
        return count
