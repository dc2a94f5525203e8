"""The PostgreSQL implementation of `watcher.storage.interface.Repository` (asyncpg, a pool).

The roles are the shared ones (`watcher.storage.roles`, their PostgreSQL statements beside the
SQLite ones), all on one pool (`connection.PostgresConnector`); `PostgresRepository` is their sum
and hands out the web UI's views with `web_views()`. Beyond SQLite it lets several workers
coordinate (`workers`, `watcher.storage.coordination`).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from watcher.storage.coordination import Coordinated
from watcher.storage.group_commit import CheckWriter
from watcher.storage.interface import LineChatStore, Repository
from watcher.storage.postgres.connection import connect
from watcher.storage.postgres.workers import PostgresWorkers
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
from watcher.storage.views import WebViews, WebViewsSource


async def open_repository(url: str | Path) -> PostgresRepository:
    """Open (migrating if needed) the PostgreSQL database at `url`."""
    pool = await connect(str(url))
    return PostgresRepository(pool, str(url))


class PostgresRepository(
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
    PostgresWorkers,
):
    """`Repository` on a PostgreSQL database. Build it with `open_repository`."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        super().__init__(pool, url)
        self.url = url
        self._closed = False
        self._check_writer = CheckWriter(
            self._db.transaction, self._record_check, self._record_quiet_checks
        )

    def web_views(self) -> WebViews:
        """The web UI's reads and operator actions, on this repository's pool."""
        return StoredWebViews(self._db)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._check_writer.drain()
        await self._pool.close()


def _check_protocol(repo: PostgresRepository) -> Repository:
    """Lets mypy prove that PostgresRepository implements Repository."""
    return repo


def _check_coordinated(repo: PostgresRepository) -> Coordinated:
    """Lets mypy prove that PostgresRepository offers what several workers need."""
    return repo


def _check_line_protocol(repo: PostgresRepository) -> LineChatStore:
    """Lets mypy prove that PostgresRepository implements LineChatStore."""
    return repo


def _check_web_views(repo: PostgresRepository) -> WebViewsSource:
    """Lets mypy prove that PostgresRepository can serve the web UI."""
    return repo
