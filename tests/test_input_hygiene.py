"""Input hygiene: control characters in watch URLs, invisible marks in chat users' links, secret
variables in ordinary fields, and `restock status` on a database it must not write."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import dbrows
from watcher.bot.parse import looks_like_target, parse_target
from watcher.cli import main
from watcher.config.load import parse_config
from watcher.errors import ConfigError
from watcher.storage import open_repository
from watcher.storage.url import database_scheme, local_file

URL = "https://www.amazon.co.jp/dp/B0DX000000"


@pytest.mark.parametrize(
    "written", ['"https://a.example/x\\ny"', '"https://a.example/x\\ry"', '"https://a.example/x\\0y"',
                '"https://a.example/x\\ty"', '"https://a.example/\\x1b[31m"'],
)  # fmt: skip
def test_control_characters_in_a_watch_url_are_refused(written: str) -> None:
    text = f"watches:\n  - name: a\n    url: {written}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "w.yaml", env={})
    [problem] = caught.value.problems
    assert problem.path == "watches[0].url" and problem.line == 3
    assert "control characters" in problem.message


@pytest.mark.parametrize(
    "mark", ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff", "\u00ad"]
)
def test_invisible_marks_are_dropped_from_a_chat_users_link(mark: str) -> None:
    pasted = f"{mark}https://www.ama{mark}zon.co.jp/dp/B0DX{mark}000000{mark}"
    assert looks_like_target(pasted)
    assert parse_target(pasted) == (URL, None)
    assert parse_target(f"4902370{mark}551051") == (None, "4902370551051")


def test_a_secret_variable_in_an_ordinary_field_is_not_echoed() -> None:
    token = "7001234567:AAHx-secret-token-value"
    text = "watches:\n  - name: a\n    url: ${TELEGRAM_BOT_TOKEN}\n    max_price: ${TOKEN_B}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "w.yaml", env={"TELEGRAM_BOT_TOKEN": token, "TOKEN_B": "secret-b-99"})
    shown = str(caught.value)
    assert token not in shown and "secret-b-99" not in shown
    assert "${TELEGRAM_BOT_TOKEN}" in shown and "${TOKEN_B}" in shown


@contextlib.asynccontextmanager
async def a_writer_mid_transaction(database: str) -> AsyncIterator[None]:
    """Another connection inside a write transaction, as `restock run` often is."""
    if database_scheme(database) == "sqlite":
        writer = sqlite3.connect(local_file(database) or "", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, held
        writer.execute("CREATE TABLE busy (x INTEGER)")
        try:
            yield
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        return
    import asyncpg

    from watcher.storage.postgres.connection import dsn_of

    conn = await asyncpg.connect(dsn_of(database))
    try:
        async with conn.transaction():
            await conn.execute("CREATE TABLE busy (x INTEGER)")
            await conn.execute("UPDATE schema_version SET applied_at = applied_at")
            yield
            await conn.execute("DROP TABLE busy")
    finally:
        await conn.close()


async def test_status_reads_while_a_running_watcher_holds_a_write_transaction(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = await open_repository(database)
    await repo.close()
    async with a_writer_mid_transaction(database):
        status = ["status", "--database", database, "--json"]
        assert await asyncio.wait_for(asyncio.to_thread(main, status), 30) == 0
    assert '"outbox"' in capsys.readouterr().out
    path = local_file(database)
    assert path is None or not Path(f"{path}-journal").exists()  # SQLite: opened read-only


async def test_status_on_a_database_of_another_version_says_so(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await dbrows.execute(
        database, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    await dbrows.execute(database, "INSERT INTO schema_version VALUES (99, 0)")
    status = ["status", "--database", database]
    assert await asyncio.to_thread(main, status) != 0
    assert "schema version 99" in capsys.readouterr().err
