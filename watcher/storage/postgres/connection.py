"""The connection pool every role of `PostgresRepository` shares, and how a database is opened.

Each write is one short transaction on a connection borrowed from the pool; statements inside it
find that connection through a context variable, so a role method reads like its SQLite twin.
Claims lock only the rows they take (`FOR UPDATE SKIP LOCKED`): workers never wait for each
other's claims. Times are epoch seconds (double precision, UTC), as on SQLite.
"""

from __future__ import annotations

import contextvars
import time as wall_clock
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg

from watcher.errors import StorageError
from watcher.storage.connector import Connector, Query
from watcher.storage.postgres.migrations import LATEST_VERSION, MIGRATIONS
from watcher.storage.postgres.signals import LOCK_KEY_SQL
from watcher.storage.rows import Row

POOL_MIN = 1
POOL_MAX = 8
# Taken by every process that migrates, so that workers starting together migrate once.
MIGRATION_LOCK = "migrate"

DatabaseErrors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def dsn_of(url: str) -> str:
    """The URL asyncpg reads: `postgresql+asyncpg://` and `postgres://` spellings accepted."""
    scheme, rest = url.split("://", 1)
    if scheme.split("+", 1)[0].lower() not in ("postgresql", "postgres"):
        raise StorageError(f"not a PostgreSQL URL: {scheme}://")
    return f"postgresql://{rest}"


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, rest = url.split("://", 1)
    if "@" not in rest:
        return url
    credentials, where = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{where}"


async def keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool: no statement leaves session
    state behind (locks are transaction-scoped, LISTEN is on each worker's own connection).
    asyncpg's default reset costs a round trip per borrow (about 40 % of a one-row write)."""


async def connect(url: str) -> asyncpg.Pool:
    """A pool on the database at `url`, its schema migrated to LATEST_VERSION."""
    try:
        pool = await asyncpg.create_pool(
            dsn_of(url),
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            command_timeout=60,
            reset=keep_session,
        )
    except (*DatabaseErrors, ValueError) as exc:
        raise StorageError(f"cannot open database {redacted(url)}: {exc}") from exc
    try:
        async with pool.acquire() as conn:
            await _migrate(conn, url)
    except BaseException:
        await pool.close()
        raise
    return pool


async def _migrate(conn: asyncpg.Connection, url: str) -> None:
    """Bring the schema to LATEST_VERSION in one transaction (other processes wait)."""
    try:
        async with conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock({LOCK_KEY_SQL})", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            if current > LATEST_VERSION:
                raise StorageError(
                    f"database {redacted(url)} has schema version {current}, but this"
                    f" restock-watcher only knows versions up to {LATEST_VERSION}:"
                    " upgrade restock-watcher to use it"
                )
            for version in range(current + 1, LATEST_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    version,
                    wall_clock.time(),
                )
    except DatabaseErrors as exc:
        raise StorageError(f"cannot migrate database {redacted(url)}: {exc}") from exc


class PostgresConnector:
    """The roles' `Connector` on a pool: a transaction or a read borrows one connection, and
    the statements inside it find that connection through a context variable (a write inside
    a write joins it)."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.path = redacted(url)
        self._conn_var: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
            f"restock_pg_{id(self)}", default=None
        )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        """One write transaction; any error rolls everything back."""
        if self._conn_var.get() is not None:  # already inside one: join it
            yield
            return
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                token = self._conn_var.set(conn)
                try:
                    yield
                finally:
                    self._conn_var.reset(token)
        except DatabaseErrors as exc:
            raise StorageError(f"database {self.path}: {exc}") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        """A borrowed connection outside a transaction: reads, or one self-contained statement
        (each is its own transaction)."""
        if self._conn_var.get() is not None:
            yield
            return
        try:
            async with self.pool.acquire() as conn:
                token = self._conn_var.set(conn)
                try:
                    yield
                finally:
                    self._conn_var.reset(token)
        except DatabaseErrors as exc:
            raise StorageError(f"database {self.path}: {exc}") from exc

    def conn(self) -> asyncpg.Connection:
        """The connection of the transaction or read this statement runs in."""
        conn = self._conn_var.get()
        if conn is None:
            raise RuntimeError("a statement outside write() or read()")
        return conn

    async def rows(self, query: Query, /, **params: Any) -> list[Row]:
        if query.postgres is None:
            return []
        return list(await self.conn().fetch(query.postgres, *_args(query, params)))

    async def row(self, query: Query, /, **params: Any) -> Row | None:
        if query.postgres is None:
            return None
        row: asyncpg.Record | None = await self.conn().fetchrow(
            query.postgres, *_args(query, params)
        )
        return row

    async def value(self, query: Query, /, **params: Any) -> Any:
        if query.postgres is None:
            return None
        return await self.conn().fetchval(query.postgres, *_args(query, params))

    async def run(self, query: Query, /, **params: Any) -> int:
        if query.postgres is None:
            return 0
        status: str = await self.conn().execute(query.postgres, *_args(query, params))
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def run_many(self, query: Query, params: Iterable[Mapping[str, Any]], /) -> None:
        if query.postgres is not None:
            await self.conn().executemany(query.postgres, [_args(query, p) for p in params])

    async def hold_lock(self, name: str) -> None:
        """A transaction-scoped advisory lock, per schema."""
        await self.conn().execute(f"SELECT pg_advisory_xact_lock({LOCK_KEY_SQL})", name)

    def holds(self, text: str) -> bool:
        """PostgreSQL text holds no NUL (a key with one, from a hostile path, names nothing)."""
        return "\x00" not in text

    def stored_text(self, text: str) -> str:
        return storable_text(text)

    def ids(self, ids: Iterable[int]) -> list[int]:
        return list(ids)

    def array(self, values: Iterable[Any]) -> list[Any]:
        return list(values)


def storable_text(text: str) -> str:
    """The text in a form PostgreSQL text holds (it holds no NUL); distinct texts stay distinct."""
    return text.replace("\\", "\\\\").replace("\x00", "\\0")


def _args(query: Query, params: Mapping[str, Any]) -> list[Any]:
    return [params[name] for name in query.postgres_names]


class PostgresStore:
    """The pool, transactions, and the rules several roles share."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._connector = PostgresConnector(pool, url)
        self._db: Connector = self._connector
        self._pool = pool
        self.path = self._connector.path

    def _write(self) -> AbstractAsyncContextManager[None]:
        """One write transaction; any error rolls everything back."""
        return self._db.write()

    def _read(self) -> AbstractAsyncContextManager[None]:
        return self._db.read()

    def _conn(self) -> asyncpg.Connection:
        return self._connector.conn()

    async def _rows(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        return list(await self._conn().fetch(sql, *params))

    async def _row(self, sql: str, *params: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._conn().fetchrow(sql, *params)
        return row

    async def _run(self, sql: str, *params: Any) -> int:
        """Run a statement; the number of rows it touched."""
        status: str = await self._conn().execute(sql, *params)
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn().executemany(sql, rows)

    async def _refresh_products(self, product_ids: Iterable[int] | None = None) -> None:
        """Recompute what follows from watches and subscriptions (all products when None).

        A chat watch lives while it has an active subscription (it restarts from a fresh
        detector state when it comes back); a product is polled while it has an active watch, at
        the shortest interval of those, with its waiting subscribers as priority. Only rows whose
        values change are written (no dead tuples for nothing).
        """
        ids = None if product_ids is None else list(product_ids)
        await self._run(
            """
            UPDATE watches w SET active = x.live,
                detector_state = CASE WHEN w.active THEN w.detector_state END
            FROM (SELECT w2.id, EXISTS (SELECT 1 FROM subscriptions s
                                        WHERE s.watch_id = w2.id AND s.active) AS live
                  FROM watches w2
                  WHERE w2.origin = 'chat' AND ($1::bigint[] IS NULL
                                                OR w2.product_id = ANY($1::bigint[]))) x
            WHERE w.id = x.id AND (w.active IS DISTINCT FROM x.live
                                   OR (NOT w.active AND w.detector_state IS NOT NULL))
            """,
            ids,
        )
        await self._run(
            """
            UPDATE products p SET active = x.live, interval_s = x.interval_s,
                subscribers = x.subscribers
            FROM (SELECT p2.id,
                    EXISTS (SELECT 1 FROM watches w WHERE w.product_id = p2.id AND w.active)
                        AS live,
                    (SELECT MIN(w.interval_s) FROM watches w
                      WHERE w.product_id = p2.id AND w.active) AS interval_s,
                    (SELECT COUNT(*) FROM subscriptions s JOIN watches w ON w.id = s.watch_id
                      WHERE w.product_id = p2.id AND w.active AND s.active AND NOT s.paused)
                        AS subscribers
                  FROM products p2
                  WHERE $1::bigint[] IS NULL OR p2.id = ANY($1::bigint[])) x
            WHERE p.id = x.id AND (p.active IS DISTINCT FROM x.live
                                   OR p.interval_s IS DISTINCT FROM x.interval_s
                                   OR p.subscribers IS DISTINCT FROM x.subscribers)
            """,
            ids,
        )

    async def _end_subscriptions(
        self, where: str, params: Sequence[Any], stamp: float, why: str
    ) -> int:
        """End the matching active subscriptions, skip their pending deliveries, refresh.

        `where` numbers its parameters from $3. Every caller ends them on the recipient's own
        word, so they are marked opted out: a watchlist reload does not bring them back.
        """
        rows = await self._rows(
            "UPDATE subscriptions SET active = FALSE, ended_at = $1, opted_out_at = $2"
            f" WHERE active AND {where} RETURNING id, watch_id",
            stamp,
            stamp,
            *params,
        )
        if not rows:
            return 0
        await self._run(
            "UPDATE deliveries SET status = 'skipped', last_error = $1, updated_at = $2,"
            " lease_owner = NULL, lease_until = NULL WHERE status = 'pending'"
            " AND subscription_id = ANY($3::bigint[])",
            why,
            stamp,
            [row["id"] for row in rows],
        )
        await self._refresh_watch_products([row["watch_id"] for row in rows])
        return len(rows)

    async def _refresh_watch_products(self, watch_ids: Sequence[int]) -> None:
        rows = await self._rows(
            "SELECT DISTINCT product_id FROM watches WHERE id = ANY($1::bigint[])", list(watch_ids)
        )
        await self._refresh_products([row["product_id"] for row in rows])
