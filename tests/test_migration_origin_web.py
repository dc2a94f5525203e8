"""Schema version 2: a version-1 database keeps its rows and accepts watches from the web."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from watcher.storage.sqlite.migrations import LATEST_VERSION, MIGRATIONS
from watcher.storage.sqlite.repository import open_repository as open_sqlite


def version_1_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.executescript(
        """
        INSERT INTO products (id, target, due_at, created_at)
            VALUES (1, 'https://a.example/1', 0, 0);
        INSERT INTO watches (id, key, name, product_id, origin, conditions, created_at, updated_at)
            VALUES (7, 'w', 'A watch', 1, 'yaml', '{}', 0, 0);
        INSERT INTO subscriptions (id, watch_id, channel, recipient, origin, created_at)
            VALUES (3, 7, 'console', '-', 'yaml', 0);
        INSERT INTO events (id, watch_id, kind, payload, created_at)
            VALUES (5, 7, 'restock', '{}', 0);
        INSERT INTO deliveries (event_id, subscription_id, channel, recipient, status,
            next_attempt_at, created_at, updated_at, idempotency_key)
            VALUES (5, 3, 'console', '-', 'pending', 0, 0, 0, 'k');
        """
    )
    conn.commit()
    conn.close()


# SQLite only: a version-1 file predates PostgreSQL, whose first schema already has web watches.
async def test_version_1_rows_survive_and_web_origin_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    version_1_database(path)
    repo = await open_sqlite(path)
    await repo.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == LATEST_VERSION
    assert conn.execute("SELECT id, name, origin FROM watches").fetchall() == [
        (7, "A watch", "yaml")
    ]
    assert conn.execute("SELECT id, watch_id FROM subscriptions").fetchall() == [(3, 7)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # The foreign keys of the other tables name the rebuilt tables, not the old copies.
    schema = " ".join(
        row[0] for row in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
    )
    assert "_v2" not in schema
    conn.execute(
        "INSERT INTO watches (key, name, product_id, origin, conditions, created_at, updated_at)"
        " VALUES ('web:x', 'x', 1, 'web', '{}', 0, 0)"
    )
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO watches (key, name, product_id, origin, conditions, created_at,"
            " updated_at) VALUES ('bad', 'x', 1, 'elsewhere', '{}', 0, 0)"
        )
    with pytest.raises(sqlite3.IntegrityError):  # a watch with subscriptions stays referenced
        conn.execute("DELETE FROM watches WHERE id = 7")
    conn.close()
