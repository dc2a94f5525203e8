"""Budgets kept in the database (X's daily posts): on every backend, across reopening, across
workers sharing the database, under concurrent spends, and as the window rolls."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from watcher.storage import open_repository
from watcher.storage.interface import Repository

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
X = "x"


@pytest.fixture
async def second(database: str) -> AsyncIterator[Repository]:
    """A second worker's repository on the same database."""
    repository = await open_repository(database)
    yield repository
    await repository.close()


async def spend(repo: Repository, cost: int, at: datetime, limit: int = 5) -> int | None:
    return await repo.spend(X, cost, at, limit=limit, window=DAY)


async def test_a_spend_is_taken_while_the_budget_affords_it(repo: Repository) -> None:
    assert await spend(repo, 2, NOW) is not None
    assert await spend(repo, 3, NOW) is not None
    assert await spend(repo, 1, NOW) is None  # 5 of 5 spent
    assert await repo.spent(X, NOW, DAY) == 5
    assert await spend(repo, 0, NOW) is not None  # nothing asked, nothing refused


async def test_a_refused_spend_records_nothing(repo: Repository) -> None:
    assert await spend(repo, 4, NOW) is not None
    assert await spend(repo, 2, NOW) is None
    assert await repo.spent(X, NOW, DAY) == 4
    assert await spend(repo, 1, NOW) is not None  # the last unit is still there


async def test_budgets_are_kept_apart_by_their_key(repo: Repository) -> None:
    assert await spend(repo, 5, NOW) is not None
    assert await repo.spend("other", 5, NOW, limit=5, window=DAY) is not None
    assert await repo.spent("other", NOW, DAY) == 5
    assert await repo.spent("unknown", NOW, DAY) == 0


async def test_a_refund_gives_the_units_back(repo: Repository) -> None:
    first = await spend(repo, 3, NOW)
    assert first is not None and await spend(repo, 2, NOW) is not None
    await repo.refund(first)
    assert await repo.spent(X, NOW, DAY) == 2
    assert await spend(repo, 3, NOW) is not None
    await repo.refund(first)  # twice, or an id that was never spent: nothing changes
    await repo.refund(10**9)
    assert await repo.spent(X, NOW, DAY) == 5


async def test_the_window_rolls(repo: Repository) -> None:
    assert await spend(repo, 3, NOW) is not None
    assert await spend(repo, 2, NOW + timedelta(hours=6)) is not None
    almost = NOW + DAY - timedelta(seconds=1)
    assert await repo.spent(X, almost, DAY) == 5
    assert await spend(repo, 1, almost) is None
    past_first = NOW + DAY  # the first spend is exactly a window old: out of it
    assert await repo.spent(X, past_first, DAY) == 2
    assert await spend(repo, 3, past_first) is not None
    assert await spend(repo, 1, past_first) is None
    assert await repo.spent(X, NOW + DAY + timedelta(hours=6), DAY) == 3


async def test_spends_out_of_the_window_are_pruned(repo: Repository) -> None:
    assert await spend(repo, 2, NOW) is not None
    later = NOW + timedelta(days=3)
    assert await repo.spent(X, later, timedelta(days=4)) == 2  # still stored
    assert await spend(repo, 1, later) is not None  # a spend prunes what fell out
    assert await repo.spent(X, later, timedelta(days=4)) == 1


async def test_the_budget_survives_reopening_the_database(database: str) -> None:
    repo = await open_repository(database)
    try:
        assert await spend(repo, 4, NOW) is not None
    finally:
        await repo.close()
    reopened = await open_repository(database)
    try:
        assert await reopened.spent(X, NOW + timedelta(hours=1), DAY) == 4
        assert await spend(reopened, 2, NOW + timedelta(hours=1)) is None
    finally:
        await reopened.close()


async def test_two_workers_on_one_database_share_the_budget(
    repo: Repository, second: Repository
) -> None:
    assert await spend(repo, 3, NOW) is not None
    assert await second.spent(X, NOW, DAY) == 3
    assert await spend(second, 3, NOW) is None
    assert await spend(second, 2, NOW) is not None
    assert await spend(repo, 1, NOW) is None
    assert await repo.spent(X, NOW, DAY) == await second.spent(X, NOW, DAY) == 5


async def test_concurrent_spends_never_exceed_the_budget(
    repo: Repository, second: Repository
) -> None:
    limit = 7
    workers = itertools.cycle([repo, second])
    # Every spend checks and records at the same moment, from two workers at once.
    taken = await asyncio.gather(*(spend(next(workers), 1, NOW, limit=limit) for _ in range(40)))
    assert sum(t is not None for t in taken) == limit
    assert len({t for t in taken if t is not None}) == limit
    assert await repo.spent(X, NOW, DAY) == limit


async def test_a_naive_time_or_a_negative_cost_is_refused(repo: Repository) -> None:
    with pytest.raises(ValueError, match="naive"):
        await spend(repo, 1, datetime(2026, 11, 23, 2, 0))
    with pytest.raises(ValueError, match="-1 units"):
        await spend(repo, -1, NOW)
    assert await repo.spent(X, NOW, DAY) == 0
