"""The SQLite implementation of `watcher.storage.interface.Repository` (aiosqlite, WAL).

The roles are the shared ones (`watcher.storage.roles`), all on one connection
(`connection.SQLiteConnector`); `SQLiteRepository` is their sum. The web UI's views are one more
role on that connector, handed out by `web_views()`.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from watcher.storage.group_commit import CheckWriter
from watcher.storage.interface import LineChatStore, Repository
from watcher.storage.roles.checks import Checks
from watcher.storage.roles.hosts import Hosts
from watcher.storage.roles.leases import Leases
from watcher.storage.roles.line_chats import LineChats
from watcher.storage.roles.outbox import Outbox
from watcher.storage.roles.quiet_checks import QuietChecks
from watcher.storage.roles.reloads import Reloads
from watcher.storage.roles.spends import Spends
from watcher.storage.roles.status import Status
from watcher.storage.roles.watchlist import Watchlist
from watcher.storage.roles.webviews import StoredWebViews
from watcher.storage.sqlite.connection import SQLiteConnector, connect, connect_read_only
from watcher.storage.views import WebViews, WebViewsSource


async def open_repository(path_or_url: str | Path) -> SQLiteRepository:
    """Open (creating and migrating if needed) the database at `path_or_url`."""
    conn, path = await connect(path_or_url)
    return SQLiteRepository(conn, path)


async def open_read_only(path_or_url: str | Path) -> SQLiteRepository:
    """Open the existing database at `path_or_url` to read it only (no migration, no writes)."""
    conn, path = await connect_read_only(path_or_url)
    return SQLiteRepository(conn, path)


class SQLiteRepository(
    Watchlist,
    Checks,
    QuietChecks,
    Outbox,
    Leases,
    Hosts,
    Spends,
    Reloads,
    Status,
    LineChats,
):
    """`Repository` on one SQLite file. Build it with `open_repository`."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._connector = SQLiteConnector(conn, path)
        self._db = self._connector
        self._conn = conn
        self.path = path
        self._closed = False
        self._check_writer = CheckWriter(
            self._db.transaction, self._record_check, self._record_quiet_checks
        )

    def web_views(self) -> WebViews:
        """The web UI's reads and operator actions, on this connection and its lock."""
        return StoredWebViews(self._db)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._check_writer.drain()
        async with self._connector.lock:
            await self._conn.close()


def _check_protocol(repo: SQLiteRepository) -> Repository:
    """Lets mypy prove that SQLiteRepository implements Repository."""
    return repo


def _check_web_views(repo: SQLiteRepository) -> WebViewsSource:
    """Lets mypy prove that SQLiteRepository serves the web UI."""
    return repo


def _check_line_protocol(repo: SQLiteRepository) -> LineChatStore:
    """Lets mypy prove that SQLiteRepository implements LineChatStore."""
    return repo
