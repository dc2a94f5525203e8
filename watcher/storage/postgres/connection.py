"""The connection pool every role of `PostgresRepository` shares (`PostgresConnector`), and how a
database is opened.

Each write is one short transaction on a connection borrowed from the pool; statements inside it
find that connection through a context variable, so the shared roles never pass it around.
Claims lock only the rows they take (`FOR UPDATE SKIP LOCKED`): workers never wait for each
other's claims. Times are epoch seconds (double precision, UTC), as on SQLite.
"""

from __future__ import annotations

import contextvars
import time as wall_clock
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg

from watcher.errors import StorageError
from watcher.storage.connector import Connector, Query, T
from watcher.storage.postgres.migrations import LATEST_VERSION, MIGRATIONS
from watcher.storage.postgres.signals import LOCK_KEY_SQL, OUTBOX_CHANNEL_SQL, RELOAD_CHANNEL_SQL
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

    async def transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        """`body` in one write transaction (a round trip per statement, as in `write()`)."""
        async with self.write():
            return await body()

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
        return _touched(await self.conn().execute(query.postgres, *_args(query, params)))

    async def execute(self, query: Query, /, **params: Any) -> None:
        if query.postgres is not None:
            await self.conn().execute(query.postgres, *_args(query, params))

    async def run_many(self, query: Query, params: Iterable[Mapping[str, Any]], /) -> None:
        if query.postgres is not None:
            await self.conn().executemany(query.postgres, [_args(query, p) for p in params])

    async def announce_deliveries(self) -> None:
        """Heard by every listening dispatcher when this transaction commits."""
        await self.conn().execute(f"SELECT pg_notify({OUTBOX_CHANNEL_SQL}, '')")

    async def announce_reload(self) -> None:
        """Heard by every worker's standing link when this transaction commits."""
        await self.conn().execute(f"SELECT pg_notify({RELOAD_CHANNEL_SQL}, '')")

    async def hold_lock(self, name: str) -> None:
        """A transaction-scoped advisory lock, per schema."""
        await self.conn().execute(f"SELECT pg_advisory_xact_lock({LOCK_KEY_SQL})", name)

    def table(
        self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> dict[str, Any]:
        listed = list(rows)
        return {f"{name}_{column}": [row[i] for row in listed] for i, column in enumerate(columns)}

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


def _touched(status: str) -> int:
    """The number of rows a statement touched, from its status ("UPDATE 3")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _args(query: Query, params: Mapping[str, Any]) -> list[Any]:
    return [params[name] for name in query.postgres_names]


class PostgresStore:
    """The pool and its connector, with the statement helpers of the PostgreSQL-only parts
    (`workers`)."""

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
        return _touched(await self._conn().execute(sql, *params))
