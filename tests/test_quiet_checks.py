"""Repeats: a check that reads what its product's last recorded observation read writes no
observation, only its product's row, on every backend; and what reads observations still tells
the whole story."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_engine import IN, OUT, Lever, Start, eventually, shop_with, url_watch

from watcher.core.model import Availability, Event, EventKind, FetchFacts, Observation, Watch
from watcher.storage.connector import Query
from watcher.storage.interface import CheckOutcome, Repository, StoredWatch, WatchDecision
from watcher.storage.postgres.repository import PostgresRepository
from watcher.storage.sqlite.repository import SQLiteRepository

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
URLS = [f"https://www.amazon.co.jp/dp/B0RP00000{i}" for i in range(4)]
COUNT_OBSERVATIONS = Query("SELECT COUNT(*) FROM observations")

Backend = SQLiteRepository | PostgresRepository


def reading(
    state: Availability = Availability.IN_STOCK, price: int | None = 4980, **kw: Any
) -> Observation:
    facts = FetchFacts(status=200, bytes=1000, elapsed_ms=12.5)
    return Observation(state=state, reason="jsonld:InStock", price=price, fetch=facts, **kw)


def again(obs: Observation, ms: float = 3.0) -> Observation:
    """The same page, not read again: the engine's observation for an unchanged page."""
    facts = FetchFacts(status=304, bytes=0, elapsed_ms=ms)
    return replace(obs, reason="unchanged: " + obs.reason, fetch=facts)


@pytest.fixture
async def backend_repo(repo: Repository) -> Backend:
    assert isinstance(repo, SQLiteRepository | PostgresRepository)
    watches = [Watch(key=f"w{i}", name=f"W{i}", url=url) for i, url in enumerate(URLS)]
    await repo.sync_yaml_watches(watches, NOW)
    return repo


async def product_ids(repo: Backend) -> list[int]:
    return [await repo.ensure_product(url, None, NOW) for url in URLS]


async def observations_stored(repo: Backend) -> int:
    async with repo._db.read():
        return int(await repo._db.value(COUNT_OBSERVATIONS))


def record(
    repo: Backend, product_id: int, obs: Observation, at: datetime, decisions: Any = ()
) -> Awaitable[Any]:
    outcome = CheckOutcome(next_due_at=at + STEP, content_hash="h1")
    return repo.record_check(product_id, obs, list(decisions), outcome, at)


async def record_group(repo: Backend, ids: list[int], obs: Observation, at: datetime) -> None:
    """One check of each product, written together (no await between the calls)."""
    await asyncio.gather(*(record(repo, pid, obs, at) for pid in ids))


class Statements:
    """Counts the statements a repository's connector runs (not BEGIN and COMMIT)."""

    def __init__(self, repo: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts: list[str] = []
        db = repo._db
        for name in ("rows", "row", "value", "run", "execute", "run_many"):
            monkeypatch.setattr(db, name, self._counting(getattr(db, name)))

    def _counting(self, method: Any) -> Any:
        async def counted(query: Query, /, *args: Any, **params: Any) -> Any:
            self.texts.append(query.sqlite or query.postgres or "")
            return await method(query, *args, **params)

        return counted


async def test_a_repeat_writes_no_observation_and_updates_its_product(
    backend_repo: Backend,
) -> None:
    repo = backend_repo
    [first, *_] = await product_ids(repo)
    await record(repo, first, reading(), NOW)
    assert await observations_stored(repo) == 1
    for n in range(1, 4):
        await record(repo, first, again(reading(), ms=float(n)), NOW + n * STEP)
    assert await observations_stored(repo) == 1  # three repeats: no row of their own

    history = await repo.history("w0")
    assert history is not None
    [only] = history.observations
    assert (only.at, only.reason, only.repeats) == (NOW, "jsonld:InStock", 3)
    # The product's row says when it was last checked and when it is due.
    assert history.status.last_checked_at == NOW + 3 * STEP
    assert history.status.next_check_at == NOW + 4 * STEP
    assert history.status.last_state is Availability.IN_STOCK


async def test_a_changed_price_or_state_is_recorded(backend_repo: Backend) -> None:
    repo = backend_repo
    [first, *_] = await product_ids(repo)
    steps = [
        reading(),
        again(reading()),
        reading(price=4500),  # the price moved
        again(reading(price=4500)),
        again(reading(price=4500)),
        reading(Availability.OUT_OF_STOCK, price=4500),  # the state moved
        reading(price=4500, blocked=True),  # a block page that still reads a state
    ]
    for n, obs in enumerate(steps):
        await record(repo, first, obs, NOW + n * STEP)
    history = await repo.history("w0")
    assert history is not None
    recorded = [(o.state, o.price, o.blocked, o.repeats) for o in reversed(history.observations)]
    assert recorded == [
        (Availability.IN_STOCK, 4980, False, 1),
        (Availability.IN_STOCK, 4500, False, 2),
        (Availability.OUT_OF_STOCK, 4500, False, 0),
        (Availability.IN_STOCK, 4500, True, 0),
    ]
    assert sum(1 + o.repeats for o in history.observations) == len(steps)


async def test_unknown_is_always_recorded(backend_repo: Backend) -> None:
    repo = backend_repo
    [first, *_] = await product_ids(repo)
    blocked = Observation.unknown("blocked:captcha", blocked=True)
    for n, obs in enumerate([reading(), blocked, blocked, again(reading()), again(reading())]):
        await record(repo, first, obs, NOW + n * STEP)
    history = await repo.history("w0")
    assert history is not None
    # Both unknown checks are recorded, and so is the reading after them: the last recorded
    # observation was unknown, so it is no repeat (the one after it is).
    states = [(o.state, o.repeats) for o in reversed(history.observations)]
    assert states == [
        (Availability.IN_STOCK, 0),
        (Availability.UNKNOWN, 0),
        (Availability.UNKNOWN, 0),
        (Availability.IN_STOCK, 1),
    ]


async def test_a_group_of_repeats_is_one_statement(
    backend_repo: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = backend_repo
    ids = await product_ids(repo)
    await record_group(repo, ids, reading(), NOW)
    assert await observations_stored(repo) == len(ids)

    statements = Statements(repo, monkeypatch)
    await record_group(repo, ids, again(reading()), NOW + STEP)
    assert len(statements.texts) == 1 and "UPDATE products" in statements.texts[0]

    # A group where one product's reading changed adds one statement: its observation.
    statements.texts.clear()
    await asyncio.gather(
        record(repo, ids[0], reading(price=3000), NOW + 2 * STEP),
        *(record(repo, pid, again(reading()), NOW + 2 * STEP) for pid in ids[1:]),
    )
    assert len(statements.texts) == 2 and "INSERT INTO observations" in statements.texts[1]
    assert await observations_stored(repo) == len(ids) + 1

    for index in range(len(URLS)):
        history = await repo.history(f"w{index}")
        assert history is not None and history.status.last_checked_at == NOW + 2 * STEP
        assert sum(1 + o.repeats for o in history.observations) == 3


async def test_a_repeat_with_an_event_writes_its_event_but_no_observation(
    backend_repo: Backend,
) -> None:
    """The confirming check of a restock reads what the first buyable check read."""
    repo = backend_repo
    [first, *_] = await product_ids(repo)
    [stored] = await repo.load_watches(first)
    await record(repo, first, reading(), NOW)
    event = _restock(stored, NOW + STEP)
    recorded = await record(
        repo,
        first,
        again(reading()),
        NOW + STEP,
        [WatchDecision(stored.id, {"phase": "buyable"}, [event])],
    )
    assert [e.kind for e in recorded.events] == [EventKind.RESTOCK]
    history = await repo.history("w0")
    assert history is not None
    assert [(o.at, o.repeats) for o in history.observations] == [(NOW, 1)]
    assert [e.kind for e in history.events] == [EventKind.RESTOCK]
    assert history.status.state == {"phase": "buyable"}


def _restock(stored: StoredWatch, at: datetime) -> Event:
    watch = stored.watch
    return Event(EventKind.RESTOCK, watch.key, watch.name, Availability.IN_STOCK, at, price=4980)


# --- the engine: the detector across repeats ---------------------------------------------------


@pytest.fixture
async def start(tmp_path: Path, database: str) -> AsyncIterator[Start]:
    starter = Start(tmp_path, database)
    yield starter
    await starter.close()


async def test_a_restock_across_repeats_fires_once(start: Start) -> None:
    """Out of stock for a few checks, then in stock for a few: one restock, debounced as ever,
    and two recorded observations whose repeats account for every check."""
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    h = await start([url_watch("box", shop.url("box"))], shop=shop, parse_workers=0)
    await eventually(lambda: h.requests("box") >= 3, what="a run of out-of-stock checks")
    lever.shows = IN
    await eventually(lambda: bool(h.recorder.notices), what="the restock message")
    seen = h.requests("box")
    await eventually(lambda: h.requests("box") >= seen + 3, what="a run of in-stock checks")
    h.stop.set()
    await h.task

    assert h.recorder.kinds() == [EventKind.RESTOCK]
    history = await h.repo.history("box", limit=50)
    assert history is not None
    states = [o.state for o in reversed(history.observations)]
    assert states == [Availability.OUT_OF_STOCK, Availability.IN_STOCK]
    assert all(o.repeats >= 2 for o in history.observations)
    assert sum(1 + o.repeats for o in history.observations) == h.counters.checks
    assert [e.kind for e in history.events] == [EventKind.RESTOCK]


async def test_a_claim_reads_its_products_watches_in_the_same_statement(
    backend_repo: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = backend_repo
    ids = await product_ids(repo)
    # One product with two watches (the second on other terms), one whose watch has ended.
    second = Watch(key="w0-cheap", name="Cheap", url=URLS[0])
    watches = [Watch(key=f"w{i}", name=f"W{i}", url=url) for i, url in enumerate(URLS)]
    await repo.sync_yaml_watches([*watches[:3], second], NOW)
    expected = await repo.load_watches_for(ids)

    statements = Statements(repo, monkeypatch)
    claimed = await repo.claim_due_products("worker-a", NOW, 10, STEP)
    assert len(statements.texts) == 1
    by_id = {p.id: p.watches for p in claimed}
    assert set(by_id) == set(ids[:3])  # the fourth product has no active watch left
    for pid, found in by_id.items():
        assert found is not None and list(found) == expected[pid]
    assert [w.watch.key for w in by_id[ids[0]] or ()] == ["w0", "w0-cheap"]
