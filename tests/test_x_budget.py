"""X's post budget in the database: what `restock run` builds. Posts from several workers spend
one budget, a restart remembers it, a post that did not go gives its units back, and the health
page shows what is left of it. X itself is faked with `responses` (tweepy's requests client)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from test_x import NOW, TWEETS, FakeClock, created, make, notice

from notifiers.base import Notice
from notifiers.post_budget import LocalPostBudget
from notifiers.x import XNotifier
from watcher.config.load import load_config
from watcher.core.model import Outcome
from watcher.service.post_budget import StoredPostBudget
from watcher.service.wiring import X_BUDGET, build_notifiers
from watcher.storage import open_repository
from watcher.storage.interface import Repository
from watcher.web.budgets import ChannelBudget, Period, channel_budgets


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
async def second(database: str) -> AsyncIterator[Repository]:
    """A second worker's repository on the same database."""
    repository = await open_repository(database)
    yield repository
    await repository.close()


def on(repo: Repository, clock: FakeClock, limit: int, **kw: Any) -> XNotifier:
    """An X notifier whose budget is the database's, as `restock run` builds it."""
    return make(clock, budget=StoredPostBudget(repo, X_BUDGET, limit), **kw)


def fresh_notice(clock: FakeClock, delivery_id: int) -> Notice:
    base = notice()
    return Notice(delivery_id, replace(base.event, observed_at=clock.wall), "public")


async def test_two_workers_post_from_one_budget(
    api: responses.RequestsMock, repo: Repository, second: Repository
) -> None:
    api.post(TWEETS, json=created(), status=201)
    clock = FakeClock()
    first, other = on(repo, clock, 3), on(second, clock, 3)
    assert (await first.send(notice())).outcome is Outcome.SENT
    assert (await first.send(notice())).outcome is Outcome.SENT
    assert await other.budget_left() == 1
    assert (await other.send(notice())).outcome is Outcome.SENT
    result = await first.send(notice())
    assert (result.outcome, result.detail) == (Outcome.SKIPPED, "daily post budget spent")
    assert len(api.calls) == 3


async def test_concurrent_posts_from_two_workers_never_exceed_the_budget(
    api: responses.RequestsMock, repo: Repository, second: Repository
) -> None:
    api.post(TWEETS, json=created(), status=201)
    clock = FakeClock()
    workers = [on(repo, clock, 4), on(second, clock, 4)]
    results = await asyncio.gather(
        *(workers[i % 2].send(fresh_notice(clock, i)) for i in range(12))
    )
    assert sum(r.outcome is Outcome.SENT for r in results) == 4
    assert sum(r.outcome is Outcome.SKIPPED for r in results) == 8
    assert len(api.calls) == 4  # X saw only what the budget paid for


async def test_a_restart_remembers_the_budget(
    api: responses.RequestsMock, database: str, tmp_path: Path
) -> None:
    api.post(TWEETS, json=created(), status=201)
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        f"settings:\n  database: '{database}'\n  x: {{daily_budget: 2}}\n"
        "notifiers:\n  x: {consumer_key: ck, consumer_secret: cs, access_token: at,"
        " access_token_secret: ats}\n"
        "watches:\n  - {name: mug, url: 'https://example.com/mug', notify: {x: true}}\n",
        encoding="utf-8",
    )
    config = load_config(watchlist)
    clock = FakeClock()
    for expected in (Outcome.SENT, Outcome.SENT, Outcome.SKIPPED):
        repo = await open_repository(database)  # a restart of the worker each time
        try:
            notifier = build_notifiers(config, spends=repo)["x"]
            assert isinstance(notifier, XNotifier)
            notifier.clock = clock
            assert (await notifier.send(fresh_notice(clock, 1))).outcome is expected
        finally:
            await repo.close()
    assert len(api.calls) == 2
    # Without a database (`restock notify-test`) the budget is this process's own.
    alone = build_notifiers(config, only=["x"])["x"]
    assert isinstance(alone, XNotifier) and isinstance(alone.budget, LocalPostBudget)


async def test_the_budget_comes_back_as_the_day_rolls(
    api: responses.RequestsMock, repo: Repository
) -> None:
    api.post(TWEETS, json=created(), status=201)
    clock = FakeClock()
    notifier = on(repo, clock, 1)
    assert (await notifier.send(fresh_notice(clock, 1))).outcome is Outcome.SENT
    clock.wall += timedelta(hours=23, minutes=59)
    assert (await notifier.send(fresh_notice(clock, 2))).outcome is Outcome.SKIPPED
    clock.wall += timedelta(minutes=1, seconds=1)
    assert await notifier.budget_left() == 1
    assert (await notifier.send(fresh_notice(clock, 3))).outcome is Outcome.SENT


@pytest.mark.parametrize(
    ("status", "outcome"), [(503, Outcome.RETRY), (429, Outcome.RETRY), (400, Outcome.FAILED)]
)
async def test_a_post_x_refused_gives_its_units_back(
    api: responses.RequestsMock, repo: Repository, status: int, outcome: Outcome
) -> None:
    api.post(TWEETS, json={"errors": [{"message": "no"}]}, status=status)
    notifier = on(repo, FakeClock(), 3, url_post_cost=2)
    assert (await notifier.send(notice())).outcome is outcome
    assert await notifier.budget_left() == 3
    assert await repo.spent(X_BUDGET, NOW, timedelta(hours=24)) == 0


async def test_a_post_that_may_still_go_keeps_its_spend(repo: Repository) -> None:
    release = threading.Event()

    class StuckClient:
        def create_tweet(self, **_: Any) -> None:
            release.wait(10)  # the library call outlives the send's own bound

    notifier = on(repo, FakeClock(), 3, client=StuckClient(), send_timeout=0.3)
    try:
        result = await notifier.send(notice())
    finally:
        release.set()
    assert result.outcome is Outcome.RETRY and "timed out" in result.detail
    assert await notifier.budget_left() == 2  # it may have been posted: counted


async def test_an_unreachable_database_holds_the_post_back(
    api: responses.RequestsMock, postgresql_database: str
) -> None:
    api.post(TWEETS, json=created(), status=201)
    repo = await open_repository(postgresql_database)
    notifier = on(repo, FakeClock(), 3)
    await repo.close()
    result = await notifier.send(notice())
    assert result.outcome is Outcome.RETRY
    assert result.detail.startswith("post budget unreadable")
    assert not api.calls
    [budget] = await channel_budgets({"x": notifier})
    assert budget == ChannelBudget("x", Period.DAY, allowance=3, used=None)  # "not read yet"


async def test_the_health_page_figure_is_what_every_worker_spent(
    api: responses.RequestsMock, repo: Repository, second: Repository
) -> None:
    api.post(TWEETS, json=created(), status=201)
    clock = FakeClock()
    shown, other = on(repo, clock, 5), on(second, clock, 5)
    assert (await other.send(notice())).outcome is Outcome.SENT
    assert (await other.send(notice())).outcome is Outcome.SENT
    [budget] = await channel_budgets({"x": shown})
    assert (budget.allowance, budget.used, budget.left) == (5, 2, 3)
