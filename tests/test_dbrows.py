"""The tests' direct row access reads and plants rows alike on both backends."""

from __future__ import annotations

from tests.dbrows import execute, fetch, fetch_one, numbered_placeholders, scalar
from watcher.storage.interface import Repository


def test_placeholders_are_numbered_outside_quoted_text() -> None:
    sql = "SELECT * FROM t WHERE a = ? AND b = '?' AND c = ?"
    assert numbered_placeholders(sql) == "SELECT * FROM t WHERE a = $1 AND b = '?' AND c = $2"


async def test_a_planted_row_reads_back_on_either_backend(repo: Repository, database: str) -> None:
    await execute(database, "INSERT INTO spends (budget, at, cost) VALUES (?, ?, ?)", "x:t", 7.5, 3)
    assert await fetch(database, "SELECT budget, cost FROM spends WHERE at = ?", 7.5) == [
        {"budget": "x:t", "cost": 3}
    ]
    assert await scalar(database, "SELECT cost FROM spends WHERE budget = ?", "x:t") == 3
    assert await fetch_one(database, "SELECT cost FROM spends WHERE budget = ?", "none") is None
