"""Claims of due products: the head-start order, leases, the stored tier, the index they read.

Products are planted as rows (subscribers, due time, lease, active), so each case states the
backlog it claims from. Most tests run on both backends; the ones about row locks held by
another transaction are PostgreSQL's alone (SQLite lets one writer in at a time).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiosqlite
import asyncpg
import pytest

from tests import dbrows
from watcher.core.schedule import MAX_TIER, PRIORITY_STEP, due_sort_key, priority
from watcher.storage import open_repository
from watcher.storage.interface import DueProduct, Repository
from watcher.storage.postgres.connection import dsn_of
from watcher.storage.roles.checks import CLAIM_PRODUCTS
from watcher.storage.tiers import TIERS, tier_of
from watcher.storage.url import local_file

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
INT32_MAX = 2**31 - 1  # PostgreSQL's `subscribers` is an INTEGER


@dataclass(frozen=True, slots=True)
class Planted:
    """A product row as a test plants it: `due` is how long after NOW it falls due."""

    name: str
    subscribers: int = 1
    due: timedelta = timedelta(0)
    active: bool = True
    lease_until: datetime | None = None


async def plant(database: str, products: Sequence[Planted]) -> dict[str, int]:
    """Insert the products in one statement; their ids by name."""
    rows = ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in products)
    args: list[object] = []
    for p in products:
        lease = None if p.lease_until is None else p.lease_until.timestamp()
        owner = None if p.lease_until is None else "someone"
        due_at = (NOW + p.due).timestamp()
        args += [p.name, p.active, p.subscribers, due_at, owner, lease, 0.0]
    await dbrows.execute(
        database,
        "INSERT INTO products (target, active, subscribers, due_at, lease_owner, lease_until,"
        f" created_at) VALUES {rows}",
        *args,
    )
    found = await dbrows.fetch(database, "SELECT id, target FROM products")
    return {row["target"]: row["id"] for row in found}


def names(claimed: Sequence[DueProduct]) -> list[str]:
    return [p.target for p in claimed]


def expected_order(products: Sequence[Planted], ids: dict[str, int]) -> list[str]:
    """The due products in `due_sort_key` order, then id."""
    due = [p for p in products if p.active and p.due <= timedelta(0)]
    due.sort(key=lambda p: (due_sort_key(NOW + p.due, p.subscribers), ids[p.name]))
    return [p.name for p in due]


# --- the stored tier ----------------------------------------------------------------------------


def test_tier_thresholds_are_where_priority_steps_up() -> None:
    assert len(TIERS) == MAX_TIER
    for tier, low in enumerate(TIERS, start=1):
        assert priority(low) == tier and priority(low - 1) == tier - 1
    assert priority(2**40) == MAX_TIER
    assert tier_of("n").count("WHEN") == MAX_TIER


def edge_counts(backend: str) -> list[int]:
    counts = {0, 1, 2, 3, 4, -1, -5, -(2**31), INT32_MAX, 2**31, 2**40, 2**62, 2**63 - 1}
    for k in range(1, 63):
        counts |= {2**k - 1, 2**k, 2**k + 1}
    if backend == "postgresql":
        return sorted(n for n in counts if -(2**31) <= n <= INT32_MAX)
    return sorted(counts)


async def test_the_stored_tier_is_priority_for_every_count(database: str, backend: str) -> None:
    counts = edge_counts(backend)
    repo = await open_repository(database)  # the schema
    await repo.close()
    await plant(database, [Planted(f"n{n}", subscribers=n) for n in counts])
    rows = await dbrows.fetch(database, "SELECT subscribers, tier FROM products")
    assert sorted((row["subscribers"], row["tier"]) for row in rows) == [
        (n, priority(n)) for n in counts
    ]


async def test_the_tier_follows_a_change_of_subscribers(repo: Repository, database: str) -> None:
    ids = await plant(database, [Planted("a", subscribers=1)])
    await dbrows.execute(database, "UPDATE products SET subscribers = ? WHERE id = ?", 40, ids["a"])
    assert await dbrows.scalar(database, "SELECT tier FROM products") == priority(40) == 6


# --- the order: a head start in time ------------------------------------------------------------


async def test_a_lonely_product_long_due_goes_before_a_popular_one_due_now(
    repo: Repository, database: str
) -> None:
    await plant(
        database,
        [
            Planted("popular", subscribers=1000, due=timedelta(0)),
            Planted("lonely", subscribers=1, due=-10 * MINUTE),
        ],
    )
    assert names(await repo.claim_due_products("w", NOW, 1, LEASE)) == ["lonely"]
    assert names(await repo.claim_due_products("w", NOW, 1, LEASE)) == ["popular"]


async def test_a_popular_product_due_now_goes_before_a_lonely_one_just_due(
    repo: Repository, database: str
) -> None:
    await plant(
        database,
        [
            Planted("lonely", subscribers=1, due=-5 * SECOND),
            Planted("nobody", subscribers=0, due=-30 * SECOND),
            Planted("popular", subscribers=1000, due=timedelta(0)),
        ],
    )
    assert names(await repo.claim_due_products("w", NOW, 1, LEASE)) == ["popular"]
    assert names(await repo.claim_due_products("w", NOW, 5, LEASE)) == ["nobody", "lonely"]


async def test_equal_head_starts_go_by_id(repo: Repository, database: str) -> None:
    # Tier 3 due now and tier 1 due 30 s ago both stand at NOW - 45 s; tier 2 just behind.
    await plant(
        database,
        [
            Planted("tier 3", subscribers=4),
            Planted("tier 1", subscribers=1, due=-2 * PRIORITY_STEP),
            Planted("tier 2", subscribers=2, due=-PRIORITY_STEP + SECOND),
        ],
    )
    claimed = await repo.claim_due_products("w", NOW, 5, LEASE)
    assert names(claimed) == ["tier 3", "tier 1", "tier 2"]


async def test_claims_in_small_batches_follow_the_head_start_order(
    repo: Repository, database: str
) -> None:
    rng = random.Random(5)
    products = [
        Planted(
            f"p{i}",
            subscribers=rng.choice([0, 1, 1, 2, 3, 5, 8, 40, 300, 5000, 2**20]),
            due=rng.randrange(-900, 60, 5) * SECOND,
        )
        for i in range(90)
    ]
    ids = await plant(database, products)
    claimed: list[DueProduct] = []
    while batch := await repo.claim_due_products("w", NOW, 7, LEASE):
        assert len(batch) <= 7
        claimed += batch
    assert names(claimed) == expected_order(products, ids)
    assert all(p.lease_until == NOW + LEASE for p in claimed)


# --- what a claim passes over -------------------------------------------------------------------


async def test_leased_products_wait_until_their_lease_runs_out(
    repo: Repository, database: str
) -> None:
    await plant(
        database,
        [
            Planted("leased", subscribers=900, due=-MINUTE, lease_until=NOW + 30 * SECOND),
            Planted("lapsed", subscribers=1, lease_until=NOW),
            Planted("free", subscribers=1, due=-SECOND),
        ],
    )
    assert names(await repo.claim_due_products("w", NOW, 5, LEASE)) == ["free", "lapsed"]
    assert await repo.claim_due_products("w", NOW + 29 * SECOND, 5, LEASE) == []
    [leased] = await repo.claim_due_products("w", NOW + 30 * SECOND, 5, LEASE)
    assert leased.target == "leased" and leased.lease_until == NOW + 30 * SECOND + LEASE


async def test_inactive_and_not_yet_due_products_are_never_claimed(
    repo: Repository, database: str
) -> None:
    await plant(
        database,
        [
            Planted("inactive", subscribers=5000, due=-MINUTE, active=False),
            Planted("later", subscribers=5000, due=SECOND),
            Planted("due", subscribers=0),
        ],
    )
    assert names(await repo.claim_due_products("w", NOW, 5, LEASE)) == ["due"]
    assert names(await repo.claim_due_products("w", NOW + SECOND, 5, LEASE)) == ["later"]
    again = await repo.claim_due_products("w", NOW + 10 * MINUTE, 5, LEASE)  # leases ran out
    assert names(again) == ["later", "due"]


async def test_a_claim_takes_no_more_than_its_limit(repo: Repository, database: str) -> None:
    products = [Planted(f"one tier {i}", subscribers=3, due=-i * SECOND) for i in range(10)]
    products += [Planted(f"tier {t}", subscribers=2 ** (t - 1)) for t in range(1, 12)]
    ids = await plant(database, products)
    first = await repo.claim_due_products("w", NOW, 4, LEASE)
    assert names(first) == expected_order(products, ids)[:4]
    rest = await repo.claim_due_products("w", NOW, 100, LEASE)
    assert len(rest) == len(products) - 4
    assert await repo.claim_due_products("w", NOW, 0, LEASE) == []


# --- the plan: each tier read from the index ----------------------------------------------------

BACKLOG = 4000  # 7 parameters a row: under SQLite's 32,766
PARAMS = {
    "owner": "w",
    "lease_until": NOW.timestamp() + 60,
    "now": NOW.timestamp(),
    "limit": 16,
    "step": PRIORITY_STEP.total_seconds(),
}


async def test_each_tier_is_read_from_the_index_without_sorting_the_backlog(
    repo: Repository, database: str, backend: str
) -> None:
    await plant(
        database,
        [Planted(f"p{i}", subscribers=i % 300, due=-(i % 600) * SECOND) for i in range(BACKLOG)],
    )
    plan = await (sqlite_plan(database) if backend == "sqlite" else postgres_plan(database))
    if backend == "sqlite":
        searches = "SEARCH products USING INDEX products_due_tier (tier=? AND due_at<?)"
        assert plan.count(searches) == MAX_TIER + 1
        assert "SCAN products" not in plan
        assert plan.count("USE TEMP B-TREE") == 1  # the outer order, over the tiers' rows
    else:
        assert "Index Scan using products_due_tier" in plan
        assert "Seq Scan on products" not in plan
        assert plan.count("Sort Key") == 1  # the outer order, over the tiers' rows
        assert "LockRows" in plan


async def sqlite_plan(database: str) -> str:
    path = local_file(database)
    assert path is not None
    async with aiosqlite.connect(path) as conn:
        assert CLAIM_PRODUCTS.sqlite is not None
        rows = await conn.execute_fetchall("EXPLAIN QUERY PLAN " + CLAIM_PRODUCTS.sqlite, PARAMS)
    return "\n".join(str(row[3]) for row in rows)


async def postgres_plan(database: str) -> str:
    conn = await asyncpg.connect(dsn_of(database))
    try:
        await conn.execute("ANALYZE products")
        assert CLAIM_PRODUCTS.postgres is not None
        args = [PARAMS[name] for name in CLAIM_PRODUCTS.postgres_names]
        rows = await conn.fetch("EXPLAIN " + CLAIM_PRODUCTS.postgres, *args)
    finally:
        await conn.close()
    return "\n".join(row[0] for row in rows)


# --- PostgreSQL: rows another claim holds -------------------------------------------------------


@pytest.fixture
async def two(postgresql_database: str) -> AsyncIterator[tuple[Repository, Repository]]:
    first = await open_repository(postgresql_database)
    second = await open_repository(postgresql_database)
    yield first, second
    await first.close()
    await second.close()


async def test_a_claim_passes_over_rows_another_transaction_holds(
    two: tuple[Repository, Repository], postgresql_database: str
) -> None:
    repo, _ = two
    ids = await plant(
        postgresql_database,
        [Planted("top", subscribers=1000), Planted("next", subscribers=100)]
        + [Planted(f"low {i}", subscribers=1) for i in range(3)],
    )
    holder = await asyncpg.connect(dsn_of(postgresql_database))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", ids["top"])
            claimed = await repo.claim_due_products("w", NOW, 2, LEASE)
            assert names(claimed) == ["next", "low 0"]
    finally:
        await holder.close()
    assert names(await repo.claim_due_products("w", NOW, 1, LEASE)) == ["top"]


async def test_concurrent_claimers_never_share_a_product(
    two: tuple[Repository, Repository], postgresql_database: str
) -> None:
    rng = random.Random(8)
    products = [
        Planted(f"p{i}", subscribers=rng.choice([0, 1, 2, 7, 60, 900]), due=-i * SECOND)
        for i in range(240)
    ]
    await plant(postgresql_database, products)

    async def drain(repo: Repository, owner: str) -> list[int]:
        taken: list[int] = []
        while batch := await repo.claim_due_products(owner, NOW, 9, LEASE):
            taken += [p.id for p in batch]
        return taken

    a, b = two
    claimed = await asyncio.gather(drain(a, "A"), drain(a, "A2"), drain(b, "B"), drain(b, "B2"))
    every = [product for taken in claimed for product in taken]
    assert len(every) == len(set(every)) == len(products)
