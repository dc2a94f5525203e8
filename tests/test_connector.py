"""Named SQL: one statement text, its :name parameters bound the way each dialect reads them."""

from __future__ import annotations

import pytest

from watcher.storage.connector import Connector, Query
from watcher.storage.interface import Repository


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
