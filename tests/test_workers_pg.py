"""Several workers on one PostgreSQL database: claims, duties, wake-ups, shared host budgets.

Each test opens two repositories (two workers' pools) on one fresh schema. Nothing sleeps: a
worker's death is its database session ending, and takeovers happen at the next beat, which
the tests call directly.

PostgreSQL only: SQLite serves one process and offers no coordination (`storage/coordination.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.model import Availability, Event, EventKind, Notify, Observation, Watch
from watcher.service.workers import Duty, Membership
from watcher.storage.interface import CheckOutcome, WatchDecision
from watcher.storage.postgres.repository import PostgresRepository, open_repository

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
TTL = timedelta(seconds=10)


@pytest.fixture
async def two(postgresql_database: str) -> AsyncIterator[tuple[PostgresRepository, ...]]:
    first = await open_repository(postgresql_database)
    second = await open_repository(postgresql_database)
    yield first, second
    await first.close()
    await second.close()


async def end_session(repo: PostgresRepository, coordinator: object) -> None:
    """End a worker's standing session from the server's side, as its death would, and wait
    until the server has let go of what it held."""
    pid = coordinator._conn.get_server_pid()  # type: ignore[attr-defined]
    async with repo._read():
        assert await repo._conn().fetchval("SELECT pg_terminate_backend($1, 10000)", pid)


def watch(n: int, **kw: object) -> Watch:
    url = f"https://shop.example/items/{n}"
    return Watch(key=f"w{n}", name=f"W{n}", url=url, **kw)  # type: ignore[arg-type]


async def test_concurrent_claims_never_take_the_same_product(
    two: tuple[PostgresRepository, PostgresRepository],
) -> None:
    a, b = two
    await a.sync_yaml_watches([watch(n) for n in range(60)], NOW)
    rounds = [
        repo.claim_due_products(name, NOW, 7, LEASE)
        for _ in range(6)
        for repo, name in ((a, "A"), (b, "B"))
    ]
    claimed = [p.id for batch in await asyncio.gather(*rounds) for p in batch]
    assert len(claimed) == 60 and len(set(claimed)) == 60  # every product once, none twice
    # A dead worker's leases expire and its products come back to the other.
    later = await b.claim_due_products("B", NOW + LEASE, 100, LEASE)
    assert len(later) == 60


async def test_a_duty_has_one_holder_and_passes_on_when_it_dies(
    two: tuple[PostgresRepository, PostgresRepository],
) -> None:
    a, b = two
    first, second = a.coordinator("A"), b.coordinator("B")
    await first.start(lambda: None)
    await second.start(lambda: None)
    assert await first.hold("telegram-bot")
    assert not await second.hold("telegram-bot")
    assert await second.hold("send:x")  # another duty is free
    await first.beat(NOW, TTL)
    await second.beat(NOW, TTL)
    live = {w.name: w.duties for w in await a.live_workers(NOW)}
    assert live == {"A": ("telegram-bot",), "B": ("send:x",)}

    await end_session(a, first)  # the process died: its session ends
    assert await second.hold("telegram-bot")
    assert not await first.beat(NOW, TTL)  # the dead link is noticed, its duties are gone
    assert first.held == frozenset()
    # Its row stays until it expires, then it is no longer listed.
    assert [w.name for w in await a.live_workers(NOW + TTL)] == []
    await second.close()
    await first.close()


async def test_membership_hands_a_duty_over_at_the_next_beat(
    two: tuple[PostgresRepository, PostgresRepository],
) -> None:
    a, b = two
    log: list[str] = []

    def duty(worker: str) -> Duty:
        async def gained() -> None:
            log.append(f"{worker}+")

        async def lost() -> None:
            log.append(f"{worker}-")

        return Duty("telegram-bot", gained, lost)

    first = Membership(a.coordinator("A"), [duty("A")], lambda: None, clock=lambda: NOW)
    second = Membership(b.coordinator("B"), [duty("B")], lambda: None, clock=lambda: NOW)
    await first.beat()
    await second.beat()
    assert log == ["A+"] and first.held == {"telegram-bot"} and second.held == set()

    await end_session(a, first.coordinator)  # SIGKILL, as the server sees it
    await second.beat()
    assert log == ["A+", "B+"]
    await first.beat()  # the survivor of a lost link stops its side at once
    assert log == ["A+", "B+", "A-"] and first.held == set()
    await first.beat()  # reconnected, it finds the duty taken
    assert first.held == set()
    stop = asyncio.Event()
    stop.set()
    await second.run(stop)  # a graceful stop gives its duties up
    assert log[-1] == "B-"
    await first.run(stop)


async def test_new_deliveries_wake_every_listening_worker(
    two: tuple[PostgresRepository, PostgresRepository],
) -> None:
    a, b = two
    w = watch(1, notify=Notify(console=True))
    await a.sync_yaml_watches([w], NOW)
    woke = asyncio.Event()
    listener = b.coordinator("B")
    await listener.start(woke.set)
    [product] = await a.claim_due_products("A", NOW, 1, LEASE)
    [stored] = await a.load_watches(product.id)
    event = Event(EventKind.RESTOCK, w.key, w.name, Availability.IN_STOCK, NOW, price=100)
    obs = Observation(state=Availability.IN_STOCK, reason="test")
    outcome = CheckOutcome(next_due_at=NOW + LEASE, lease_owner="A")
    decision = WatchDecision(stored.id, {"n": 1}, [event])
    recorded = await a.record_check(product.id, obs, [decision], outcome, NOW)
    assert recorded.deliveries == 1
    await asyncio.wait_for(woke.wait(), 30)  # LISTEN/NOTIFY, not a poll
    [delivery] = await b.claim_deliveries("B", NOW, 10, LEASE)
    assert delivery.event.kind is EventKind.RESTOCK
    assert await a.claim_deliveries("A", NOW, 10, LEASE) == []  # not sent twice
    await listener.close()


async def test_host_slots_hold_the_limits_of_all_workers_together(
    two: tuple[PostgresRepository, PostgresRepository],
) -> None:
    a, b = two
    limits = {"concurrency": 2, "min_delay": timedelta(seconds=3), "hold": LEASE}
    one = await a.acquire_host_slot("shop.example", "A", NOW, **limits)  # type: ignore[arg-type]
    two_ = await b.acquire_host_slot("shop.example", "B", NOW, **limits)  # type: ignore[arg-type]
    full = await a.acquire_host_slot("shop.example", "A", NOW, **limits)  # type: ignore[arg-type]
    assert one.start_at == NOW and two_.start_at == NOW + timedelta(seconds=3)
    assert full.slot_id is None and full.backoff_until is None  # both slots are taken
    assert one.slot_id is not None
    await a.release_host_slot(one.slot_id)
    three = await b.acquire_host_slot("shop.example", "B", NOW, **limits)  # type: ignore[arg-type]
    assert three.start_at == NOW + timedelta(seconds=6)
    # A dead worker's slot stops counting when its hold ends.
    later = NOW + LEASE + timedelta(seconds=7)
    assert (await a.acquire_host_slot("shop.example", "A", later, **limits)).slot_id  # type: ignore[arg-type]


async def test_a_block_stored_by_one_worker_backs_the_host_off_for_all(
    two: tuple[PostgresRepository, PostgresRepository],
) -> None:
    from watcher.storage.interface import HostState

    a, b = two
    until = NOW + timedelta(minutes=5)
    await a.save_host_state(HostState("shop.example", backoff_until=until, consecutive_blocks=1))
    limits = {"concurrency": 2, "min_delay": timedelta(seconds=1), "hold": LEASE}
    refused = await b.acquire_host_slot("shop.example", "B", NOW, **limits)  # type: ignore[arg-type]
    assert refused.slot_id is None and refused.backoff_until == until
    granted = await b.acquire_host_slot("shop.example", "B", until, **limits)  # type: ignore[arg-type]
    assert granted.start_at == until


async def test_the_leases_of_a_worker_whose_beat_expired_come_back_at_once(
    two: tuple[PostgresRepository, PostgresRepository],
) -> None:
    a, b = two
    await a.sync_yaml_watches([watch(n) for n in range(4)], NOW)
    dead, alive = a.coordinator("A"), b.coordinator("B")
    await dead.start(lambda: None)
    await alive.start(lambda: None)
    await dead.beat(NOW, TTL)
    assert len(await a.claim_due_products("A", NOW, 2, LEASE)) == 2
    assert len(await b.claim_due_products("fresh", NOW, 1, LEASE)) == 1  # never beat yet
    assert await b.release_dead_workers(NOW + TTL / 2) == []  # still alive
    await alive.beat(NOW + TTL, TTL)
    assert await b.release_dead_workers(NOW + TTL) == ["A"]
    freed = await b.claim_due_products("B", NOW + TTL, 10, LEASE)
    assert len(freed) == 3  # A's two and the unclaimed one; "fresh" keeps its own
    assert await b.lease_owners(NOW + TTL) == ["B", "fresh"]
    await dead.close()
    await alive.close()
