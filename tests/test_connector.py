"""Named SQL: one statement text, its :name parameters bound the way each dialect reads them."""

from __future__ import annotations

import pytest

from watcher.storage.connector import Query


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
