"""Named SQL: one statement text, its :name parameters bound the way each dialect reads them; a
transaction body lands whole or not at all, and on SQLite in one trip to the connection's
thread."""

from __future__ import annotations

import asyncio
import functools

import pytest

from watcher.errors import StorageError
from watcher.storage.connector import Connector, Query
from watcher.storage.interface import Repository
from watcher.storage.sqlite.connection import BodyAwaitedElsewhere, SQLiteConnector


def test_postgres_text_numbers_each_name_once_in_order_of_appearance() -> None:
    query = Query("SELECT * FROM t WHERE a > :since AND b = :owner AND c < :since")

    assert query.postgres == "SELECT * FROM t WHERE a > $1 AND b = $2 AND c < $1"
    assert query.postgres_names == ("since", "owner")
    assert query.sqlite == "SELECT * FROM t WHERE a > :since AND b = :owner AND c < :since"


def test_casts_and_quoted_literals_are_not_parameters() -> None:
    query = Query(postgres="SELECT ':x', 'it''s :y' FROM t WHERE id = ANY(:ids::bigint[])")

    assert query.postgres == "SELECT ':x', 'it''s :y' FROM t WHERE id = ANY($1::bigint[])"
    assert query.postgres_names == ("ids",)
    assert query.sqlite is None


def test_a_statement_for_one_dialect_runs_nothing_on_the_other() -> None:
    query = Query("SELECT pg_advisory_xact_lock(1)", only="postgres")

    assert query.sqlite is None
    assert query.postgres == "SELECT pg_advisory_xact_lock(1)"


def test_a_common_text_and_a_dialect_text_together_are_refused() -> None:
    with pytest.raises(ValueError, match="one common text"):
        Query("SELECT 1", sqlite="SELECT 2")


# --- on each backend ------------------------------------------------------------------------------

TABLE_ROWS = Query(
    sqlite="SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS name"
    " FROM json_each(:people) ORDER BY key",
    postgres="SELECT id, name FROM unnest(:people_id::bigint[], :people_name::text[])"
    " WITH ORDINALITY AS t (id, name, n) ORDER BY n",
)
ARRAY_MEMBERS = Query(
    sqlite="SELECT value AS v FROM json_each(:values) ORDER BY key",
    postgres="SELECT v FROM unnest(:values::text[]) WITH ORDINALITY AS t (v, n) ORDER BY n",
)
IDS = Query(
    sqlite="SELECT value AS id FROM json_each(:ids) ORDER BY value",
    postgres="SELECT DISTINCT id FROM unnest(:ids::bigint[]) AS t (id) ORDER BY id",
)
ONLY_POSTGRES = Query("SELECT 1 AS one", only="postgres")


def connector_of(repo: Repository) -> Connector:
    db: Connector = getattr(repo, "_db")  # noqa: B009 - the repository's own, for its tests
    return db


async def test_rows_travel_as_one_table_parameter_in_order(repo: Repository) -> None:
    db = connector_of(repo)
    people = [(3, "三郎"), (1, "it's"), (2, "x")]
    async with db.read():
        rows = await db.rows(TABLE_ROWS, **db.table("people", ("id", "name"), people))
    assert [(row["id"], row["name"]) for row in rows] == people


async def test_arrays_keep_order_and_ids_are_a_set(repo: Repository) -> None:
    db = connector_of(repo)
    async with db.read():
        values = await db.rows(ARRAY_MEMBERS, values=db.array(["b", "a", "b"]))
        ids = await db.rows(IDS, ids=db.ids([5, 2, 5, 9]))
    assert [row["v"] for row in values] == ["b", "a", "b"]
    assert [row["id"] for row in ids] == [2, 5, 9]


async def test_a_statement_of_the_other_dialect_runs_nothing(
    repo: Repository, backend: str
) -> None:
    db = connector_of(repo)
    async with db.write():
        rows = await db.rows(ONLY_POSTGRES)
        count = await db.run(ONLY_POSTGRES)
    assert (len(rows), count) == ((1, 1) if backend == "postgresql" else (0, 0))


async def test_a_text_with_a_nul_is_stored_escaped_where_text_holds_none(
    repo: Repository, backend: str
) -> None:
    db = connector_of(repo)
    hostile = "key\x00with nul"
    stored = db.stored_text(hostile)
    if backend == "sqlite":
        assert db.holds(hostile) and stored == hostile
    else:
        assert not db.holds(hostile) and "\x00" not in stored
        assert stored != db.stored_text("key\\0with nul")


# --- transactions as one body ---------------------------------------------------------------------

SCRATCH = Query("CREATE TABLE IF NOT EXISTS scratch (v INTEGER NOT NULL)")
PUT = Query("INSERT INTO scratch (v) VALUES (:v)")
ALL = Query("SELECT v FROM scratch ORDER BY v")


async def scratch_values(db: Connector) -> list[int]:
    async with db.read():
        return [int(row["v"]) for row in await db.rows(ALL)]


async def test_a_transaction_body_commits_its_statements_and_returns_its_result(
    repo: Repository,
) -> None:
    db = connector_of(repo)
    await db.transaction(lambda: db.execute(SCRATCH))

    async def body() -> int:
        await db.execute(PUT, v=1)
        await db.run_many(PUT, [{"v": 2}, {"v": 3}])
        touched = await db.run(Query("UPDATE scratch SET v = v * 10 WHERE v > :floor"), floor=1)
        return touched + len(await db.rows(ALL))

    assert await db.transaction(body) == 2 + 3
    assert await scratch_values(db) == [1, 20, 30]


async def test_a_body_that_raises_writes_nothing(repo: Repository) -> None:
    db = connector_of(repo)
    await db.transaction(lambda: db.execute(SCRATCH))

    async def body() -> None:
        await db.execute(PUT, v=1)
        raise ValueError("changed its mind")

    with pytest.raises(ValueError, match="changed its mind"):
        await db.transaction(body)
    assert await scratch_values(db) == []
    # The connection is free and sound afterwards.
    await db.transaction(lambda: db.execute(PUT, v=4))
    assert await scratch_values(db) == [4]


async def test_a_database_error_in_a_body_is_a_storage_error_and_writes_nothing(
    repo: Repository,
) -> None:
    db = connector_of(repo)
    await db.transaction(lambda: db.execute(SCRATCH))

    async def body() -> None:
        await db.execute(PUT, v=1)
        await db.execute(Query("INSERT INTO scratch (v) VALUES (NULL)"))

    with pytest.raises(StorageError):
        await db.transaction(body)
    assert await scratch_values(db) == []


async def test_a_body_inside_a_body_joins_its_transaction(repo: Repository) -> None:
    db = connector_of(repo)
    await db.transaction(lambda: db.execute(SCRATCH))

    async def inner() -> None:
        await db.execute(PUT, v=2)

    async def outer() -> None:
        await db.execute(PUT, v=1)
        await db.transaction(inner)
        async with db.write():
            await db.execute(PUT, v=3)
        raise ValueError("all of it goes")

    with pytest.raises(ValueError):
        await db.transaction(outer)
    assert await scratch_values(db) == []


async def test_concurrent_bodies_each_land_whole(repo: Repository) -> None:
    db = connector_of(repo)
    await db.transaction(lambda: db.execute(SCRATCH))

    async def pair(n: int) -> None:
        await db.execute(PUT, v=2 * n)
        await db.execute(PUT, v=2 * n + 1)

    await asyncio.gather(*(db.transaction(functools.partial(pair, n)) for n in range(50)))
    assert await scratch_values(db) == list(range(100))


async def test_on_sqlite_a_transaction_is_one_trip_to_the_connections_thread(
    repo: Repository, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        pytest.skip("a round trip per statement is how a server database is spoken to")
    db = connector_of(repo)
    assert isinstance(db, SQLiteConnector)
    await db.transaction(lambda: db.execute(SCRATCH))
    trips: list[object] = []
    real = db.conn._execute

    async def counted(fn: object, *args: object, **kwargs: object) -> object:
        trips.append(fn)
        return await real(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(db.conn, "_execute", counted)

    async def body() -> None:
        for v in range(5):
            await db.execute(PUT, v=v)
        await db.rows(ALL)

    await db.transaction(body)
    assert len(trips) == 1
    monkeypatch.undo()
    assert await scratch_values(db) == [0, 1, 2, 3, 4]


async def test_on_sqlite_a_body_that_waits_on_anything_else_is_refused(
    repo: Repository, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("a body on PostgreSQL runs on the event loop and may wait on it")
    db = connector_of(repo)
    await db.transaction(lambda: db.execute(SCRATCH))

    async def body() -> None:
        await db.execute(PUT, v=1)
        await asyncio.sleep(0)  # the loop's business: no place in a transaction

    with pytest.raises(BodyAwaitedElsewhere):
        await db.transaction(body)
    assert await scratch_values(db) == []
