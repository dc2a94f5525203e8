"""The SQLite backend: one file, several processes (WAL, leases), migrations applied at open."""

from watcher.storage.sqlite.repository import SQLiteRepository, open_repository

__all__ = ["SQLiteRepository", "open_repository"]
