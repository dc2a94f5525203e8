"""The SQLite connection every role of `SQLiteRepository` shares (`SQLiteConnector`), and how a
file is opened.

Every write runs in `BEGIN IMMEDIATE`, which takes SQLite's single write lock up front: a claim's
read and update then see the same data, so two processes on one file never claim the same row
(`busy_timeout` makes the second one wait instead of failing). One repository holds one
connection, shared by the coroutines of a process under an asyncio lock. Times are stored as
epoch seconds (REAL, UTC).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time as wall_clock
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from watcher.errors import StorageError
from watcher.storage.codec import ids_json
from watcher.storage.connector import Query
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


class SQLiteConnector:
    """The roles' `Connector` on one aiosqlite connection: one transaction at a time, under an
    asyncio lock shared by everything built on that connection."""

    def __init__(
        self, conn: aiosqlite.Connection, path: str, lock: asyncio.Lock | None = None
    ) -> None:
        self.conn = conn
        self.path = path
        self.lock = lock or asyncio.Lock()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        """One write transaction; any error rolls everything back."""
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
        async with self.lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StorageError(f"database {self.path}: {exc}") from exc

    async def rows(self, query: Query, /, **params: Any) -> list[Row]:
        if query.sqlite is None:
            return []
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
        cursor = await self.conn.execute(query.sqlite, params)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def execute(self, query: Query, /, **params: Any) -> None:
        if query.sqlite is not None:
            await self.conn.execute_fetchall(query.sqlite, params)

    async def run_many(self, query: Query, params: Iterable[Mapping[str, Any]], /) -> None:
        if query.sqlite is not None:
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
