"""Where restock-watcher keeps its state: the interface (`interface`), and its backends.

The logic lives once, above the backends: each role (`roles`: watchlist, checks, outbox, chats,
LINE chats, web views, status, leases, hosts, spends, reloads) names its SQL statements
(`connector.Query`, one text where SQLite and PostgreSQL agree, one per dialect where they do
not) and runs them on a small `connector.Connector`: transactions, rows, one row, a count, many
at once. A backend (`sqlite`, `postgres`) is its connector, its migrations and what only it
does: SQLite's group commit of quiet checks, PostgreSQL's coordination of several workers.

`open_repository(url)` picks the backend from the URL's scheme and imports only that one (the
way a queue library picks its broker from a URL): a plain path or `sqlite:///path` is SQLite,
`postgresql://...` is PostgreSQL. A backend is one line in `BACKENDS`: the module that has an
`open_repository(url)` coroutine.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from watcher.errors import StorageError
from watcher.storage.url import database_scheme

if TYPE_CHECKING:
    from watcher.storage.interface import Repository

BACKENDS: dict[str, str] = {
    "sqlite": "watcher.storage.sqlite.repository",
    "postgresql": "watcher.storage.postgres.repository",
}


async def open_repository(path_or_url: str | Path) -> Repository:
    """Open (creating and migrating if needed) the database `path_or_url` names."""
    scheme = database_scheme(path_or_url)
    module_name = BACKENDS.get(scheme)
    if module_name is None:
        known = ", ".join(f"{name}://" for name in BACKENDS)
        raise StorageError(f"unsupported database URL scheme {scheme!r}: use a path or {known}")
    try:
        backend = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and f"{module_name}.".startswith(f"{exc.name}."):
            raise StorageError(
                f"the {scheme} database backend is not part of this restock-watcher yet:"
                " use a SQLite path or a sqlite:/// URL"
            ) from exc
        raise StorageError(f"the {scheme} database backend needs {exc.name!r} installed") from exc
    repository: Repository = await backend.open_repository(path_or_url)
    return repository


async def open_for_reading(path_or_url: str | Path) -> Repository:
    """Open the database only to read it where the backend can (`restock status`): a SQLite
    file is opened read-only, without migrating it or taking the write lock."""
    if database_scheme(path_or_url) == "sqlite":
        from watcher.storage.sqlite.repository import open_read_only

        return await open_read_only(path_or_url)
    return await open_repository(path_or_url)
