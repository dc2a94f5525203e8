"""Chat users and their subscriptions (Telegram chats; LINE users in `line_chats`)."""

from __future__ import annotations

from datetime import datetime

from watcher.core.keys import chat_watch_key
from watcher.core.model import QuietHours, WatchConditions
from watcher.storage.codec import conditions_to_json, quiet_columns, to_epoch
from watcher.storage.connector import Query
from watcher.storage.interface import AwaitedProduct, ChatUser, Stats, Subscription
from watcher.storage.roles.products import END_RECIPIENT, END_RECIPIENT_SUBSCRIPTION, Products
from watcher.storage.rows import chat_user, subscription

CHANNEL = "telegram"

SUBSCRIPTION_SELECT = """
    SELECT s.*, w.key AS watch_key, w.name AS watch_name, w.conditions,
           p.id AS product_id, p.target, p.store, p.last_state
    FROM subscriptions s
    JOIN watches w ON w.id = s.watch_id
    JOIN products p ON p.id = w.product_id
"""

ENSURE_CHAT_USER = Query(
    """
    INSERT INTO chat_users AS u (chat_id, user_id, language, created_at)
    VALUES (:chat_id, :user_id, :language, :stamp)
    ON CONFLICT (chat_id) DO UPDATE SET
        user_id = COALESCE(excluded.user_id, u.user_id),
        language = COALESCE(excluded.language, u.language),
        blocked = FALSE
    RETURNING *
    """
)
# A chat watch starts inactive: the product refresh makes it live with its first subscription.
UPSERT_CHAT_WATCH = Query(
    """
    INSERT INTO watches (key, name, product_id, origin, conditions, active,
        created_at, updated_at)
    VALUES (:key, :name, :product_id, 'chat', :conditions, FALSE, :stamp, :stamp)
    ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at
    RETURNING id
    """
)
ACTIVE_WATCH = Query("SELECT id, product_id FROM watches WHERE key = :key AND active = TRUE")
ENSURE_CHAT_ROW = Query(
    "INSERT INTO chat_users (chat_id, created_at) VALUES (:chat_id, :stamp)"
    " ON CONFLICT (chat_id) DO NOTHING"
)
# The chat's quiet hours and language travel with each of its subscriptions.
SUBSCRIBE_CHAT = Query(
    """
    INSERT INTO subscriptions AS s (watch_id, channel, recipient, origin, one_shot,
        quiet_from, quiet_to, quiet_mode, language, created_at)
    SELECT :watch_id, 'telegram', :recipient, 'chat', :one_shot, quiet_from, quiet_to,
        quiet_mode, language, :stamp
    FROM chat_users WHERE chat_id = :chat_id
    ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET
        active = TRUE, paused = FALSE, ended_at = NULL, opted_out_at = NULL,
        -- the operator's standing YAML subscription stays standing
        one_shot = CASE WHEN s.origin = 'yaml' THEN s.one_shot ELSE excluded.one_shot END
    RETURNING id
    """
)
SUBSCRIPTION = Query(SUBSCRIPTION_SELECT + " WHERE s.id = :id")
RECIPIENT_SUBSCRIPTIONS = Query(
    SUBSCRIPTION_SELECT + " WHERE s.channel = :channel AND s.recipient = :recipient"
    " AND s.active = TRUE ORDER BY s.id"
)
SET_PAUSED = Query(
    "UPDATE subscriptions SET paused = :paused WHERE id = :id AND channel = :channel"
    " AND recipient = :recipient AND active = TRUE RETURNING watch_id"
)
BLOCK_CHAT = Query("UPDATE chat_users SET blocked = TRUE WHERE chat_id = :chat_id")
SET_CHAT_QUIET = Query(
    "UPDATE chat_users SET quiet_from = :quiet_from, quiet_to = :quiet_to,"
    " quiet_mode = :quiet_mode WHERE chat_id = :chat_id"
)
SET_SUBSCRIPTIONS_QUIET = Query(
    "UPDATE subscriptions SET quiet_from = :quiet_from, quiet_to = :quiet_to,"
    " quiet_mode = :quiet_mode WHERE channel = 'telegram' AND recipient = :recipient"
)
COUNT_ACTIVE = Query(
    "SELECT COUNT(*) AS n FROM subscriptions WHERE channel = :channel"
    " AND recipient = :recipient AND origin = 'chat' AND active = TRUE"
)
CHAT_IDS = Query(
    "SELECT chat_id FROM chat_users u WHERE blocked = FALSE AND EXISTS ("
    " SELECT 1 FROM subscriptions s WHERE s.channel = 'telegram'"
    " AND s.recipient = CAST(u.chat_id AS TEXT) AND s.active = TRUE) ORDER BY chat_id"
)
USER_COUNTS = Query(
    "SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE blocked = TRUE) AS blocked FROM chat_users"
)
ACTIVE_USER_COUNT = Query(
    "SELECT COUNT(DISTINCT recipient) AS n FROM subscriptions"
    " WHERE channel = 'telegram' AND origin = 'chat' AND active = TRUE"
)
WATCHES_BY_ORIGIN = Query(
    "SELECT origin, COUNT(*) AS n FROM watches WHERE active = TRUE GROUP BY origin"
)
SUBSCRIPTION_COUNT = Query("SELECT COUNT(*) AS n FROM subscriptions WHERE active = TRUE")
CHECKS_BY_STORE = Query(
    "SELECT COALESCE(store, CASE WHEN target LIKE 'jan:%' THEN 'jan' ELSE '?' END)"
    " AS store, SUM(checks) AS checks, SUM(blocks) AS blocks FROM products"
    " GROUP BY 1 ORDER BY 1"
)
MOST_AWAITED = Query(
    "SELECT target, store, last_title, subscribers FROM products"
    " WHERE active = TRUE AND subscribers > 0 ORDER BY subscribers DESC, id LIMIT :top"
)


class Chats(Products):
    """What the chat front-ends ask of the database."""

    async def ensure_chat_user(
        self,
        chat_id: int,
        now: datetime,
        *,
        user_id: int | None = None,
        language: str | None = None,
    ) -> ChatUser:
        async with self._db.write():
            row = await self._db.row(
                ENSURE_CHAT_USER,
                chat_id=chat_id,
                user_id=user_id,
                language=language,
                stamp=to_epoch(now),
            )
        assert row is not None  # RETURNING of an upsert
        return chat_user(row)

    async def ensure_product(self, target: str, store: str | None, now: datetime) -> int:
        async with self._db.write():
            return await self._ensure_product(target, store, to_epoch(now))

    async def add_chat_subscription(
        self,
        chat_id: int,
        target: str,
        store: str | None,
        conditions: WatchConditions,
        now: datetime,
        *,
        one_shot: bool = True,
        name: str | None = None,
    ) -> Subscription:
        stamp = to_epoch(now)
        async with self._db.write():
            product_id = await self._ensure_product(target, store, stamp)
            watch_id = await self._chat_watch(target, conditions, product_id, stamp, name)
            sub_id = await self._subscribe_chat(chat_id, watch_id, one_shot, stamp)
            await self._refresh_products([product_id])
            return await self._subscription(sub_id)

    async def _chat_watch(
        self,
        target: str,
        conditions: WatchConditions,
        product_id: int,
        stamp: float,
        name: str | None = None,
    ) -> int:
        """The id of the chat watch on `target` under `conditions` (made if new)."""
        watch_id = await self._db.value(
            UPSERT_CHAT_WATCH,
            key=chat_watch_key(target, conditions),
            name=name or target,
            product_id=product_id,
            conditions=conditions_to_json(conditions),
            stamp=stamp,
        )
        return int(watch_id)

    async def subscribe_to_watch(
        self, chat_id: int, watch_key: str, now: datetime, *, one_shot: bool = True
    ) -> Subscription | None:
        stamp = to_epoch(now)
        async with self._db.write():
            watch = await self._db.row(ACTIVE_WATCH, key=watch_key)
            if watch is None:
                return None
            sub_id = await self._subscribe_chat(chat_id, watch["id"], one_shot, stamp)
            await self._refresh_products([watch["product_id"]])
            return await self._subscription(sub_id)

    async def _subscribe_chat(
        self, chat_id: int, watch_id: int, one_shot: bool, stamp: float
    ) -> int:
        """Insert (or reactivate) a chat's subscription, with the chat's quiet hours/language."""
        await self._db.run(ENSURE_CHAT_ROW, chat_id=chat_id, stamp=stamp)
        sub_id = await self._db.value(
            SUBSCRIBE_CHAT,
            watch_id=watch_id,
            recipient=str(chat_id),
            one_shot=one_shot,
            stamp=stamp,
            chat_id=chat_id,
        )
        return int(sub_id)

    async def _subscription(self, subscription_id: int) -> Subscription:
        row = await self._db.row(SUBSCRIPTION, id=subscription_id)
        assert row is not None  # called with an id just written
        return subscription(row)

    async def _recipient_subscriptions(self, channel: str, recipient: str) -> list[Subscription]:
        async with self._db.read():
            rows = await self._db.rows(
                RECIPIENT_SUBSCRIPTIONS, channel=channel, recipient=recipient
            )
        return [subscription(row) for row in rows]

    async def _set_recipient_paused(
        self, channel: str, recipient: str, subscription_id: int, paused: bool
    ) -> bool:
        async with self._db.write():
            rows = await self._db.rows(
                SET_PAUSED, paused=paused, id=subscription_id, channel=channel, recipient=recipient
            )
            await self._refresh_watch_products([row["watch_id"] for row in rows])
        return bool(rows)

    async def _remove_recipient_subscription(
        self, channel: str, recipient: str, subscription_id: int, now: datetime
    ) -> bool:
        async with self._db.write():
            ended = await self._end_matching(
                END_RECIPIENT_SUBSCRIPTION,
                to_epoch(now),
                "unsubscribed",
                id=subscription_id,
                channel=channel,
                recipient=recipient,
            )
        return ended > 0

    async def _count_recipient_active(self, channel: str, recipient: str) -> int:
        async with self._db.read():
            count = await self._db.value(COUNT_ACTIVE, channel=channel, recipient=recipient)
        return int(count or 0)

    async def list_subscriptions(self, chat_id: int) -> list[Subscription]:
        return await self._recipient_subscriptions(CHANNEL, str(chat_id))

    async def set_paused(self, subscription_id: int, chat_id: int, paused: bool) -> bool:
        return await self._set_recipient_paused(CHANNEL, str(chat_id), subscription_id, paused)

    async def remove_subscription(self, subscription_id: int, chat_id: int, now: datetime) -> bool:
        return await self._remove_recipient_subscription(
            CHANNEL, str(chat_id), subscription_id, now
        )

    async def deactivate_chat(self, chat_id: int, now: datetime, *, blocked: bool = False) -> int:
        async with self._db.write():
            ended = await self._end_matching(
                END_RECIPIENT, to_epoch(now), "stopped", channel=CHANNEL, recipient=str(chat_id)
            )
            if blocked:
                await self._db.run(BLOCK_CHAT, chat_id=chat_id)
        return ended

    async def set_quiet(self, chat_id: int, quiet: QuietHours | None) -> None:
        quiet_from, quiet_to, quiet_mode = quiet_columns(quiet)
        columns = {"quiet_from": quiet_from, "quiet_to": quiet_to, "quiet_mode": quiet_mode}
        async with self._db.write():
            await self._db.run(SET_CHAT_QUIET, chat_id=chat_id, **columns)
            await self._db.run(SET_SUBSCRIPTIONS_QUIET, recipient=str(chat_id), **columns)

    async def count_active(self, chat_id: int) -> int:
        return await self._count_recipient_active(CHANNEL, str(chat_id))

    async def chat_ids(self) -> list[int]:
        async with self._db.read():
            rows = await self._db.rows(CHAT_IDS)
        return [int(row["chat_id"]) for row in rows]

    async def stats(self, top: int = 10) -> Stats:
        async with self._db.read():
            users = await self._db.row(USER_COUNTS)
            active_users = await self._db.value(ACTIVE_USER_COUNT)
            watches = await self._db.rows(WATCHES_BY_ORIGIN)
            subs = await self._db.value(SUBSCRIPTION_COUNT)
            stores = await self._db.rows(CHECKS_BY_STORE)
            awaited = await self._db.rows(MOST_AWAITED, top=top)
        assert users is not None
        return Stats(
            users=users["n"],
            active_users=active_users,
            blocked_users=users["blocked"],
            watches={row["origin"]: row["n"] for row in watches},
            subscriptions=subs,
            checks_by_store={row["store"]: int(row["checks"]) for row in stores},
            blocks_by_store={row["store"]: int(row["blocks"]) for row in stores},
            most_awaited=tuple(
                AwaitedProduct(r["target"], r["store"], r["last_title"], r["subscribers"])
                for r in awaited
            ),
        )
