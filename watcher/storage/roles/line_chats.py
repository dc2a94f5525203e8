"""LINE chats: LINE users' subscriptions and the webhook events already handled.

LINE users are recipients on the `line` channel: their subscriptions live in the shared
`subscriptions` table (origin `chat`), so the engine's fan-out reaches them like any other, and
each carries the user's language for the alert. Webhook event ids already handled are kept a
week in `line_webhook_events`; the primary key makes the first writer win, so a redelivered
event (or two workers receiving it) is handled once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.core.model import WatchConditions
from watcher.storage.codec import to_epoch
from watcher.storage.connector import Query
from watcher.storage.interface import Subscription
from watcher.storage.roles.chats import Chats
from watcher.storage.roles.products import END_RECIPIENT

CHANNEL = "line"
EVENT_MEMORY = timedelta(days=7)  # LINE redelivers for far less than this

FORGET_OLD_EVENTS = Query("DELETE FROM line_webhook_events WHERE seen_at < :before")
CLAIM_EVENT = Query(
    "INSERT INTO line_webhook_events (event_id, seen_at) VALUES (:event_id, :stamp)"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
SUBSCRIBE_LINE_USER = Query(
    """
    INSERT INTO subscriptions AS s (watch_id, channel, recipient, origin, one_shot,
        language, created_at)
    VALUES (:watch_id, :channel, :recipient, 'chat', :one_shot, :language, :stamp)
    ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET
        active = TRUE, paused = FALSE, ended_at = NULL, opted_out_at = NULL,
        language = excluded.language,
        -- the operator's standing YAML subscription stays standing
        one_shot = CASE WHEN s.origin = 'yaml' THEN s.one_shot ELSE excluded.one_shot END
    RETURNING id
    """
)


class LineChats(Chats):
    """`LineChatStore`: LINE users are chats whose ids are LINE user ids."""

    async def claim_line_event(self, event_id: str, now: datetime) -> bool:
        stamp = to_epoch(now)
        async with self._db.write():
            await self._db.run(FORGET_OLD_EVENTS, before=stamp - EVENT_MEMORY.total_seconds())
            claimed = await self._db.row(
                CLAIM_EVENT, event_id=self._db.stored_text(event_id), stamp=stamp
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
        async with self._db.write():
            product_id = await self._ensure_product(target, store, stamp)
            watch_id = await self._chat_watch(target, conditions, product_id, stamp)
            sub_id = await self._db.value(
                SUBSCRIBE_LINE_USER,
                watch_id=watch_id,
                channel=CHANNEL,
                recipient=user_id,
                one_shot=one_shot,
                language=language,
                stamp=stamp,
            )
            await self._refresh_products([product_id])
            return await self._subscription(int(sub_id))

    async def line_subscriptions(self, user_id: str) -> list[Subscription]:
        return await self._recipient_subscriptions(CHANNEL, user_id)

    async def set_line_paused(self, user_id: str, subscription_id: int, paused: bool) -> bool:
        return await self._set_recipient_paused(CHANNEL, user_id, subscription_id, paused)

    async def remove_line_subscription(
        self, user_id: str, subscription_id: int, now: datetime
    ) -> bool:
        return await self._remove_recipient_subscription(CHANNEL, user_id, subscription_id, now)

    async def end_line_subscriptions(self, user_id: str, now: datetime) -> int:
        async with self._db.write():
            return await self._end_matching(
                END_RECIPIENT, to_epoch(now), "unfollowed", channel=CHANNEL, recipient=user_id
            )

    async def count_line_active(self, user_id: str) -> int:
        return await self._count_recipient_active(CHANNEL, user_id)
