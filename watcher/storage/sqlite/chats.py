"""Chat users and their subscriptions on SQLite."""

from __future__ import annotations

from datetime import datetime

from watcher.core.keys import chat_watch_key
from watcher.core.model import (
    QuietHours,
    WatchConditions,
)
from watcher.storage.codec import (
    conditions_to_json,
    quiet_columns,
    to_epoch,
)
from watcher.storage.interface import (
    AwaitedProduct,
    ChatUser,
    Stats,
    Subscription,
)
from watcher.storage.rows import (
    chat_user,
    subscription,
)
from watcher.storage.sqlite.connection import SQLiteStore

_SUBSCRIPTION_SELECT = """
    SELECT s.*, w.key AS watch_key, w.name AS watch_name, w.conditions,
           p.id AS product_id, p.target, p.store, p.last_state
    FROM subscriptions s
    JOIN watches w ON w.id = s.watch_id
    JOIN products p ON p.id = w.product_id
"""


class SQLiteChats(SQLiteStore):
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
                INSERT INTO chat_users (chat_id, user_id, language, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (chat_id) DO UPDATE SET
                    user_id = COALESCE(excluded.user_id, user_id),
                    language = COALESCE(excluded.language, language),
                    blocked = 0
                RETURNING *
                """,
                (chat_id, user_id, language, to_epoch(now)),
            )
        assert row is not None  # RETURNING of an upsert
        return chat_user(row)

    async def ensure_product(self, target: str, store: str | None, now: datetime) -> int:
        async with self._write():
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
                    name or target,
                    product_id,
                    conditions_to_json(conditions),
                    stamp,
                    stamp,
                ),
            )
            assert watch is not None  # RETURNING of an upsert
            sub_id = await self._subscribe_chat(chat_id, watch["id"], one_shot, stamp)
            await self._refresh_products([product_id])
            return await self._subscription(sub_id)

    async def subscribe_to_watch(
        self, chat_id: int, watch_key: str, now: datetime, *, one_shot: bool = True
    ) -> Subscription | None:
        stamp = to_epoch(now)
        async with self._write():
            watch = await self._row(
                "SELECT id, product_id FROM watches WHERE key = ? AND active = 1", (watch_key,)
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
            "INSERT OR IGNORE INTO chat_users (chat_id, created_at) VALUES (?, ?)",
            (chat_id, stamp),
        )
        row = await self._row(
            """
            INSERT INTO subscriptions (watch_id, channel, recipient, origin, one_shot,
                quiet_from, quiet_to, quiet_mode, language, created_at)
            SELECT ?, 'telegram', ?, 'chat', ?, quiet_from, quiet_to, quiet_mode, language, ?
            FROM chat_users WHERE chat_id = ?
            ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET
                active = 1, paused = 0, ended_at = NULL, opted_out_at = NULL,
                -- the operator's standing YAML subscription stays standing
                one_shot = CASE WHEN origin = 'yaml' THEN one_shot ELSE excluded.one_shot END
            RETURNING id
            """,
            (watch_id, str(chat_id), one_shot, stamp, chat_id),
        )
        assert row is not None  # RETURNING of an upsert
        return int(row["id"])

    async def _subscription(self, subscription_id: int) -> Subscription:
        row = await self._row(_SUBSCRIPTION_SELECT + " WHERE s.id = ?", (subscription_id,))
        assert row is not None  # called with an id just written
        return subscription(row)

    async def list_subscriptions(self, chat_id: int) -> list[Subscription]:
        async with self._read():
            rows = await self._rows(
                _SUBSCRIPTION_SELECT + " WHERE s.channel = 'telegram' AND s.recipient = ?"
                " AND s.active = 1 ORDER BY s.id",
                (str(chat_id),),
            )
        return [subscription(row) for row in rows]

    async def set_paused(self, subscription_id: int, chat_id: int, paused: bool) -> bool:
        async with self._write():
            rows = await self._rows(
                "UPDATE subscriptions SET paused = ? WHERE id = ? AND channel = 'telegram'"
                " AND recipient = ? AND active = 1 RETURNING watch_id",
                (paused, subscription_id, str(chat_id)),
            )
            await self._refresh_watch_products([row["watch_id"] for row in rows])
        return bool(rows)

    async def remove_subscription(self, subscription_id: int, chat_id: int, now: datetime) -> bool:
        async with self._write():
            ended = await self._end_subscriptions(
                "id = ? AND channel = 'telegram' AND recipient = ?",
                (subscription_id, str(chat_id)),
                to_epoch(now),
                "unsubscribed",
            )
        return ended > 0

    async def deactivate_chat(self, chat_id: int, now: datetime, *, blocked: bool = False) -> int:
        async with self._write():
            ended = await self._end_subscriptions(
                "channel = 'telegram' AND recipient = ?", (str(chat_id),), to_epoch(now), "stopped"
            )
            if blocked:
                await self._run("UPDATE chat_users SET blocked = 1 WHERE chat_id = ?", (chat_id,))
        return ended

    async def set_quiet(self, chat_id: int, quiet: QuietHours | None) -> None:
        columns = quiet_columns(quiet)
        async with self._write():
            await self._run(
                "UPDATE chat_users SET quiet_from = ?, quiet_to = ?, quiet_mode = ?"
                " WHERE chat_id = ?",
                (*columns, chat_id),
            )
            await self._run(
                "UPDATE subscriptions SET quiet_from = ?, quiet_to = ?, quiet_mode = ?"
                " WHERE channel = 'telegram' AND recipient = ?",
                (*columns, str(chat_id)),
            )

    async def count_active(self, chat_id: int) -> int:
        async with self._read():
            row = await self._row(
                "SELECT COUNT(*) AS n FROM subscriptions WHERE channel = 'telegram'"
                " AND recipient = ? AND origin = 'chat' AND active = 1",
                (str(chat_id),),
            )
        return int(row["n"]) if row else 0

    async def chat_ids(self) -> list[int]:
        async with self._read():
            rows = await self._rows(
                "SELECT chat_id FROM chat_users u WHERE blocked = 0 AND EXISTS ("
                " SELECT 1 FROM subscriptions s WHERE s.channel = 'telegram'"
                " AND s.recipient = CAST(u.chat_id AS TEXT) AND s.active = 1) ORDER BY chat_id"
            )
        return [int(row["chat_id"]) for row in rows]

    async def stats(self, top: int = 10) -> Stats:
        async with self._read():
            users = await self._row(
                "SELECT COUNT(*) AS n, COALESCE(SUM(blocked), 0) AS blocked FROM chat_users"
            )
            active_users = await self._row(
                "SELECT COUNT(DISTINCT recipient) AS n FROM subscriptions"
                " WHERE channel = 'telegram' AND origin = 'chat' AND active = 1"
            )
            watches = await self._rows(
                "SELECT origin, COUNT(*) AS n FROM watches WHERE active = 1 GROUP BY origin"
            )
            subs = await self._row("SELECT COUNT(*) AS n FROM subscriptions WHERE active = 1")
            stores = await self._rows(
                "SELECT COALESCE(store, CASE WHEN target LIKE 'jan:%' THEN 'jan' ELSE '?' END)"
                " AS store, SUM(checks) AS checks, SUM(blocks) AS blocks FROM products"
                " GROUP BY 1 ORDER BY 1"
            )
            awaited = await self._rows(
                "SELECT target, store, last_title, subscribers FROM products"
                " WHERE active = 1 AND subscribers > 0 ORDER BY subscribers DESC, id LIMIT ?",
                (top,),
            )
        assert users is not None and active_users is not None and subs is not None
        return Stats(
            users=users["n"],
            active_users=active_users["n"],
            blocked_users=users["blocked"],
            watches={row["origin"]: row["n"] for row in watches},
            subscriptions=subs["n"],
            checks_by_store={row["store"]: row["checks"] for row in stores},
            blocks_by_store={row["store"]: row["blocks"] for row in stores},
            most_awaited=tuple(
                AwaitedProduct(r["target"], r["store"], r["last_title"], r["subscribers"])
                for r in awaited
            ),
        )
