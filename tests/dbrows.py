"""A test database's rows, read or planted directly, on either backend.

Tests that look at what was stored (or plant a row the code under test must meet) go through
these, so one test body runs on SQLite and on PostgreSQL. Statements are written with `?`
placeholders; on PostgreSQL they become `$1, $2, ...`. `database` is what the `database`
fixture gives: a `sqlite:///` URL or path, or a `postgresql://` URL (its `search_path` query
keeps the test's own schema).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from watcher.storage.url import database_scheme, local_file

Row = dict[str, Any]


async def fetch(database: str, sql: str, *args: Any) -> list[Row]:
    """Every row `sql` selects, as dicts keyed by column name."""
    async with _connection(database) as run:
        return await run(sql, args, True)


async def fetch_one(database: str, sql: str, *args: Any) -> Row | None:
    rows = await fetch(database, sql, *args)
    return rows[0] if rows else None


async def scalar(database: str, sql: str, *args: Any) -> Any:
    """The first column of the first row (None when there is no row)."""
    row = await fetch_one(database, sql, *args)
    return None if row is None else next(iter(row.values()))


async def execute(database: str, sql: str, *args: Any) -> None:
    """Run one writing statement, committed."""
    async with _connection(database) as run:
        await run(sql, args, False)


def numbered_placeholders(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$n`, leaving quoted text alone."""
    out: list[str] = []
    quote: str | None = None
    count = 0
    for char in sql:
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            count += 1
            out.append(f"${count}")
            continue
        out.append(char)
    return "".join(out)


@asynccontextmanager
async def _connection(database: str) -> AsyncIterator[Any]:
    if database_scheme(database) == "sqlite":
        async with _sqlite(database) as run:
            yield run
    else:
        async with _postgres(database) as run:
            yield run


@asynccontextmanager
async def _sqlite(database: str) -> AsyncIterator[Any]:
    path = local_file(database)
    if path is None:
        raise ValueError(f"not a SQLite file: {database}")
    conn = await aiosqlite.connect(path)
    conn.row_factory = aiosqlite.Row

    async def run(sql: str, args: tuple[Any, ...], rows: bool) -> list[Row]:
        cursor = await conn.execute(sql, args)
        found = [dict(row) for row in await cursor.fetchall()] if rows else []
        await conn.commit()
        return found

    try:
        yield run
    finally:
        await conn.close()


@asynccontextmanager
async def _postgres(database: str) -> AsyncIterator[Any]:
    import asyncpg

    from watcher.storage.postgres.connection import dsn_of

    conn = await asyncpg.connect(dsn_of(database), timeout=10)

    async def run(sql: str, args: tuple[Any, ...], rows: bool) -> list[Row]:
        statement = numbered_placeholders(sql)
        if rows:
            return [dict(row) for row in await conn.fetch(statement, *args)]
        await conn.execute(statement, *args)
        return []

    try:
        yield run
    finally:
        await conn.close()
