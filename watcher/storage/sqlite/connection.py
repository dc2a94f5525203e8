"""The SQLite connection every role of `SQLiteRepository` shares (`SQLiteConnector`), and how a
file is opened.

Every write runs in `BEGIN IMMEDIATE`, which takes SQLite's single write lock up front: a claim's
read and update then see the same data, so two processes on one file never claim the same row
(`busy_timeout` makes the second one wait instead of failing). One repository holds one
connection, shared by the coroutines of a process under an asyncio lock. Times are stored as
epoch seconds (REAL, UTC).

aiosqlite runs each statement in its connection's thread and wakes the event loop with the
result: a trip there and back per statement, which on a busy loop costs far more than the
statement. `transaction(body)` makes the trip once: the whole transaction, `body`'s role logic
included, runs in that thread, where the connector's statements run on the sqlite3 connection
directly (`body` awaits nothing else, so it runs to its end without the loop).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time as wall_clock
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from watcher.errors import StorageError
from watcher.storage.codec import ids_json
from watcher.storage.connector import Query, T
from watcher.storage.rows import Row
from watcher.storage.sqlite.migrations import LATEST_VERSION, MIGRATIONS

BUSY_TIMEOUT_MS = 10_000


def sqlite_path(path_or_url: str | Path) -> str:
    """The file path in `path_or_url` (a path, or a sqlite:/// URL); other URLs are refused."""
    text = str(path_or_url)
    if text.startswith("sqlite:///"):
        return text.removeprefix("sqlite:///") or ":memory:"
    if text == "sqlite://":
        return ":memory:"
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StorageError(f"unsupported database URL scheme {scheme!r}: use a SQLite file path")
    return text


async def connect(path_or_url: str | Path) -> tuple[aiosqlite.Connection, str]:
    """Open (creating and migrating if needed) the database at `path_or_url`."""
    path = sqlite_path(path_or_url)
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    try:
        await _configure(conn)
        await _migrate(conn, path)
    except BaseException:
        await conn.close()
        raise
    return conn, path


async def connect_read_only(path_or_url: str | Path) -> tuple[aiosqlite.Connection, str]:
    """Open an existing database only to read it (`restock status`): no migration, no write lock,
    so it works on a read-only file or volume and while a running watcher holds the write lock.
    """
    path = sqlite_path(path_or_url)
    uri = f"file:{quote(path)}?mode=ro"
    try:
        conn = await _read_only_connection(uri)
    except sqlite3.Error:
        # A WAL database needs its -shm file; where that cannot be made (a read-only folder),
        # the file is read as it stands.
        try:
            conn = await _read_only_connection(uri + "&immutable=1")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read database {path}: {exc}") from exc
    try:
        rows = await conn.execute_fetchall("SELECT MAX(version) AS v FROM schema_version")
        current = next(iter(rows))["v"] or 0
    except sqlite3.Error as exc:
        await conn.close()
        raise StorageError(f"cannot read database {path}: {exc}") from exc
    if current != LATEST_VERSION:
        await conn.close()
        raise StorageError(
            f"database {path} has schema version {current}, this restock-watcher reads "
            f"{LATEST_VERSION}: run `restock run` (or upgrade restock-watcher) first"
        )
    return conn, path


async def _read_only_connection(uri: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute_fetchall("SELECT 1 FROM sqlite_master LIMIT 1")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _configure(conn: aiosqlite.Connection) -> None:
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot use the database: {exc}") from exc


async def _migrate(conn: aiosqlite.Connection, path: str) -> None:
    """Bring the schema to LATEST_VERSION in one transaction (other processes wait).

    Foreign keys are off meanwhile, so a migration may rebuild a table that others refer to
    (SQLite's way to change a constraint); they are checked before the commit and back on after.
    """
    await conn.execute("PRAGMA foreign_keys = OFF")
    try:
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        rows = await conn.execute_fetchall("SELECT MAX(version) AS v FROM schema_version")
        current = next(iter(rows))["v"] or 0
        if current > LATEST_VERSION:
            raise StorageError(
                f"database {path} has schema version {current}, but this restock-watcher only "
                f"knows versions up to {LATEST_VERSION}: upgrade restock-watcher to use it"
            )
        for version in range(current + 1, LATEST_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, wall_clock.time()),
            )
        if list(await conn.execute_fetchall("PRAGMA foreign_key_check")):
            raise StorageError(f"cannot migrate database {path}: foreign keys would break")
        await conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"cannot migrate database {path}: {exc}") from exc
        raise
    finally:
        await conn.execute("PRAGMA foreign_keys = ON")


# What `transaction` uses of aiosqlite that it names no public way to do: queueing a callable on
# the connection's thread, and the sqlite3 connection there. pyproject.toml bounds aiosqlite to
# the releases tested with them; this says what is wrong if another release is installed anyway.
_THREAD_ACCESS = ("_execute", "_conn")


def _check_thread_access(conn: aiosqlite.Connection) -> None:
    # Looked up on the class: `_conn` is a property that raises once the connection is closed.
    missing = [name for name in _THREAD_ACCESS if not hasattr(type(conn), name)]
    if missing:
        version = getattr(aiosqlite, "__version__", "unknown")
        raise StorageError(
            f"aiosqlite {version} has no {', '.join(missing)}, which the SQLite backend runs its"
            " transactions through: install the release pyproject.toml asks for"
            " (pip install 'aiosqlite>=0.20,<0.23')"
        )


class SQLiteConnector:
    """The roles' `Connector` on one aiosqlite connection: one transaction at a time, under an
    asyncio lock shared by everything built on that connection."""

    def __init__(
        self, conn: aiosqlite.Connection, path: str, lock: asyncio.Lock | None = None
    ) -> None:
        _check_thread_access(conn)
        self.conn = conn
        self.path = path
        self.lock = lock or asyncio.Lock()
        # Set in the connection's thread while it runs a `transaction` body there.
        self._in_thread = threading.local()

    def _direct(self) -> sqlite3.Connection | None:
        """The sqlite3 connection, when called from a transaction body in its own thread."""
        raw: sqlite3.Connection | None = getattr(self._in_thread, "conn", None)
        return raw

    async def transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        """`body` in one write transaction, run whole in the connection's thread (one trip)."""
        if self._direct() is not None:  # a body inside a body: it is one transaction already
            return await body()
        async with self.lock:
            try:
                # aiosqlite's own way to run a callable in its thread (no public name for it).
                result: T = await self.conn._execute(self._run_body, body)  # type: ignore[no-untyped-call]
            except sqlite3.Error as exc:
                raise StorageError(f"database {self.path}: {exc}") from exc
            return result

    def _run_body(self, body: Callable[[], Awaitable[T]]) -> T:
        """In the connection's thread: BEGIN, `body` to its end, COMMIT (ROLLBACK on error)."""
        raw = self.conn._conn
        self._in_thread.conn = raw
        try:
            raw.execute("BEGIN IMMEDIATE")
            try:
                result = _to_the_end(body())
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            return result
        finally:
            self._in_thread.conn = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        """One write transaction; any error rolls everything back."""
        if self._direct() is not None:  # inside a transaction body: join it
            yield
            return
        async with self.lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                yield
                await self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"database {self.path}: {exc}") from exc
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        if self._direct() is not None:
            yield
            return
        async with self.lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StorageError(f"database {self.path}: {exc}") from exc

    async def rows(self, query: Query, /, **params: Any) -> list[Row]:
        if query.sqlite is None:
            return []
        raw = self._direct()
        if raw is not None:
            return list(raw.execute(query.sqlite, params).fetchall())
        return list(await self.conn.execute_fetchall(query.sqlite, params))

    async def row(self, query: Query, /, **params: Any) -> Row | None:
        rows = await self.rows(query, **params)
        return rows[0] if rows else None

    async def value(self, query: Query, /, **params: Any) -> Any:
        row = await self.row(query, **params)
        return None if row is None else row[0]

    async def run(self, query: Query, /, **params: Any) -> int:
        if query.sqlite is None:
            return 0
        raw = self._direct()
        if raw is not None:
            direct = raw.execute(query.sqlite, params)
            touched = direct.rowcount
            direct.close()
            return touched
        cursor = await self.conn.execute(query.sqlite, params)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def execute(self, query: Query, /, **params: Any) -> None:
        if query.sqlite is None:
            return
        raw = self._direct()
        if raw is not None:
            raw.execute(query.sqlite, params).fetchall()
            return
        await self.conn.execute_fetchall(query.sqlite, params)

    async def run_many(self, query: Query, params: Iterable[Mapping[str, Any]], /) -> None:
        if query.sqlite is None:
            return
        raw = self._direct()
        if raw is not None:
            raw.executemany(query.sqlite, params).close()
            return
        await (await self.conn.executemany(query.sqlite, params)).close()

    async def announce_deliveries(self) -> None:
        """Nothing to do: a dispatcher on SQLite polls the outbox."""

    async def announce_reload(self) -> None:
        """Nothing to do: workers on SQLite look at the reload counter at their next poll."""

    async def hold_lock(self, name: str) -> None:
        """Nothing to take: `BEGIN IMMEDIATE` already lets one writer in at a time."""

    def table(
        self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> dict[str, Any]:
        return {name: json.dumps([list(row) for row in rows], ensure_ascii=False)}

    def holds(self, text: str) -> bool:
        return True

    def stored_text(self, text: str) -> str:
        return text

    def ids(self, ids: Iterable[int]) -> str:
        return ids_json(ids)

    def array(self, values: Iterable[Any]) -> str:
        return json.dumps(list(values))


class BodyAwaitedElsewhere(RuntimeError):
    """A transaction body awaited something other than the connector's statements."""


def _to_the_end(body: Awaitable[T]) -> T:
    """Run a coroutine that never suspends to its end, in this thread; its result.

    A body awaits only the connector's statements, which in the connection's thread run at once,
    so the coroutine finishes on its first step. One that suspends would wait for an event loop
    this thread does not run: it is closed and refused.
    """
    if not isinstance(body, Coroutine):
        raise TypeError(f"a transaction body must be a coroutine, not {type(body).__name__}")
    try:
        body.send(None)
    except StopIteration as end:
        result: T = end.value
        return result
    body.close()
    raise BodyAwaitedElsewhere("a transaction body awaited something other than the database")
