"""Chat users and their subscriptions on PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from watcher.core.keys import chat_watch_key
from watcher.core.model import QuietHours, WatchConditions
from watcher.storage.codec import conditions_to_json, quiet_columns, to_epoch
from watcher.storage.interface import AwaitedProduct, ChatUser, Stats, Subscription
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.rows import chat_user, subscription

_SUBSCRIPTION_SELECT = """
    SELECT s.*, w.key AS watch_key, w.name AS watch_name, w.conditions,
           p.id AS product_id, p.target, p.store, p.last_state
    FROM subscriptions s
    JOIN watches w ON w.id = s.watch_id
    JOIN products p ON p.id = w.product_id
"""


async def ensure_product(
    conn: asyncpg.Connection, target: str, store: str | None, stamp: float
) -> int:
    """The product row of `target` (made if new); its id. A store once known is kept."""
    product_id: int = await conn.fetchval(
        "INSERT INTO products AS p (target, store, due_at, created_at) VALUES ($1, $2, $3, $3)"
        " ON CONFLICT (target) DO UPDATE SET store = COALESCE(p.store, excluded.store)"
        " RETURNING id",
        target,
        store,
        stamp,
    )
    return product_id


class PostgresChats(PostgresStore):
    """What the chat front-ends ask of the database."""

    async def ensure_chat_user(
        self,
        chat_id: int,
        now: datetime,
        *,
        user_id: int | None = None,
        language: str | None = None,
    ) -> ChatUser:
        async with self._write():
            row = await self._row(
                """
                INSERT INTO chat_users AS u (chat_id, user_id, language, created_at)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (chat_id) DO UPDATE SET
                    user_id = COALESCE(excluded.user_id, u.user_id),
                    language = COALESCE(excluded.language, u.language),
                    blocked = FALSE
                RETURNING *
                """,
                chat_id,
                user_id,
                language,
                to_epoch(now),
            )
        assert row is not None  # RETURNING of an upsert
        return chat_user(row)

    async def ensure_product(self, target: str, store: str | None, now: datetime) -> int:
        async with self._write():
            return await self._ensure_product(target, store, to_epoch(now))

    async def _ensure_product(self, target: str, store: str | None, stamp: float) -> int:
        return await ensure_product(self._conn(), target, store, stamp)

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
                name or target,
                product_id,
                conditions_to_json(conditions),
                stamp,
            )
            sub_id = await self._subscribe_chat(chat_id, watch_id, one_shot, stamp)
            await self._refresh_products([product_id])
            return await self._subscription(sub_id)

    async def subscribe_to_watch(
        self, chat_id: int, watch_key: str, now: datetime, *, one_shot: bool = True
    ) -> Subscription | None:
        stamp = to_epoch(now)
        async with self._write():
            watch = await self._row(
                "SELECT id, product_id FROM watches WHERE key = $1 AND active", watch_key
            )
            if watch is None:
                return None
            sub_id = await self._subscribe_chat(chat_id, watch["id"], one_shot, stamp)
            await self._refresh_products([watch["product_id"]])
            return await self._subscription(sub_id)

    async def _subscribe_chat(
        self, chat_id: int, watch_id: int, one_shot: bool, stamp: float
    ) -> int:
        """Insert (or reactivate) a chat's subscription, with the chat's quiet hours/language."""
        await self._run(
            "INSERT INTO chat_users (chat_id, created_at) VALUES ($1, $2)"
            " ON CONFLICT (chat_id) DO NOTHING",
            chat_id,
            stamp,
        )
        sub_id: int = await self._conn().fetchval(
            """
            INSERT INTO subscriptions AS s (watch_id, channel, recipient, origin, one_shot,
                quiet_from, quiet_to, quiet_mode, language, created_at)
            SELECT $1, 'telegram', $2, 'chat', $3, quiet_from, quiet_to, quiet_mode, language, $4
            FROM chat_users WHERE chat_id = $5
            ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET
                active = TRUE, paused = FALSE, ended_at = NULL, opted_out_at = NULL,
                -- the operator's standing YAML subscription stays standing
                one_shot = CASE WHEN s.origin = 'yaml' THEN s.one_shot ELSE excluded.one_shot END
            RETURNING id
            """,
            watch_id,
            str(chat_id),
            one_shot,
            stamp,
            chat_id,
        )
        return sub_id

    async def _subscription(self, subscription_id: int) -> Subscription:
        row = await self._row(_SUBSCRIPTION_SELECT + " WHERE s.id = $1", subscription_id)
        assert row is not None  # called with an id just written
        return subscription(row)

    async def list_subscriptions(self, chat_id: int) -> list[Subscription]:
        async with self._read():
            rows = await self._rows(
                _SUBSCRIPTION_SELECT + " WHERE s.channel = 'telegram' AND s.recipient = $1"
                " AND s.active ORDER BY s.id",
                str(chat_id),
            )
        return [subscription(row) for row in rows]

    async def set_paused(self, subscription_id: int, chat_id: int, paused: bool) -> bool:
        async with self._write():
            rows = await self._rows(
                "UPDATE subscriptions SET paused = $1 WHERE id = $2 AND channel = 'telegram'"
                " AND recipient = $3 AND active RETURNING watch_id",
                paused,
                subscription_id,
                str(chat_id),
            )
            await self._refresh_watch_products([row["watch_id"] for row in rows])
        return bool(rows)

    async def remove_subscription(self, subscription_id: int, chat_id: int, now: datetime) -> bool:
        async with self._write():
            ended = await self._end_subscriptions(
                "id = $3 AND channel = 'telegram' AND recipient = $4",
                (subscription_id, str(chat_id)),
                to_epoch(now),
                "unsubscribed",
            )
        return ended > 0

    async def deactivate_chat(self, chat_id: int, now: datetime, *, blocked: bool = False) -> int:
        async with self._write():
            ended = await self._end_subscriptions(
                "channel = 'telegram' AND recipient = $3", (str(chat_id),), to_epoch(now), "stopped"
            )
            if blocked:
                await self._run("UPDATE chat_users SET blocked = TRUE WHERE chat_id = $1", chat_id)
        return ended

    async def set_quiet(self, chat_id: int, quiet: QuietHours | None) -> None:
        columns = quiet_columns(quiet)
        async with self._write():
            await self._run(
                "UPDATE chat_users SET quiet_from = $1, quiet_to = $2, quiet_mode = $3"
                " WHERE chat_id = $4",
                *columns,
                chat_id,
            )
            await self._run(
                "UPDATE subscriptions SET quiet_from = $1, quiet_to = $2, quiet_mode = $3"
                " WHERE channel = 'telegram' AND recipient = $4",
                *columns,
                str(chat_id),
            )

    async def count_active(self, chat_id: int) -> int:
        async with self._read():
            count: int = await self._conn().fetchval(
                "SELECT COUNT(*) FROM subscriptions WHERE channel = 'telegram'"
                " AND recipient = $1 AND origin = 'chat' AND active",
                str(chat_id),
            )
        return count

    async def chat_ids(self) -> list[int]:
        async with self._read():
            rows = await self._rows(
                "SELECT chat_id FROM chat_users u WHERE NOT blocked AND EXISTS ("
                " SELECT 1 FROM subscriptions s WHERE s.channel = 'telegram'"
                " AND s.recipient = u.chat_id::text AND s.active) ORDER BY chat_id"
            )
        return [int(row["chat_id"]) for row in rows]

    async def stats(self, top: int = 10) -> Stats:
        async with self._read():
            users = await self._row(
                "SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE blocked) AS blocked FROM chat_users"
            )
            active_users = await self._row(
                "SELECT COUNT(DISTINCT recipient) AS n FROM subscriptions"
                " WHERE channel = 'telegram' AND origin = 'chat' AND active"
            )
            watches = await self._rows(
                "SELECT origin, COUNT(*) AS n FROM watches WHERE active GROUP BY origin"
            )
            subs = await self._row("SELECT COUNT(*) AS n FROM subscriptions WHERE active")
            stores = await self._rows(
                "SELECT COALESCE(store, CASE WHEN target LIKE 'jan:%' THEN 'jan' ELSE '?' END)"
                " AS store, SUM(checks) AS checks, SUM(blocks) AS blocks FROM products"
                " GROUP BY 1 ORDER BY 1"
            )
            awaited = await self._rows(
                "SELECT target, store, last_title, subscribers FROM products"
                " WHERE active AND subscribers > 0 ORDER BY subscribers DESC, id LIMIT $1",
                top,
            )
        assert users is not None and active_users is not None and subs is not None
        return Stats(
            users=users["n"],
            active_users=active_users["n"],
            blocked_users=users["blocked"],
            watches={row["origin"]: row["n"] for row in watches},
            subscriptions=subs["n"],
            checks_by_store={row["store"]: int(row["checks"]) for row in stores},
            blocks_by_store={row["store"]: int(row["blocks"]) for row in stores},
            most_awaited=tuple(
                AwaitedProduct(r["target"], r["store"], r["last_title"], r["subscribers"])
                for r in awaited
            ),
        )
