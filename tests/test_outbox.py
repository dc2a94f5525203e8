"""The transactional outbox: events and deliveries written with the check, claimed, retried."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from tests import dbrows
from watcher.core.model import (
    Availability,
    Event,
    EventKind,
    FetchFacts,
    Notify,
    Observation,
    Watch,
)
from watcher.errors import StorageError
from watcher.storage import open_repository
from watcher.storage.codec import to_epoch
from watcher.storage.interface import (
    CheckOutcome,
    ClaimedDelivery,
    DeliveryResult,
    RecordedCheck,
    StoredWatch,
    WatchDecision,
)
from watcher.storage.sqlite.repository import SQLiteRepository

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
JST = timezone(timedelta(hours=9))
LEASE = timedelta(seconds=60)
URL = "https://www.amazon.co.jp/dp/B0DX000000"
EVERYONE = Notify(
    telegram=(111, 222), email=("me@example.com",), x=True, console=True, webhook=True
)


def watch(notify: Notify = EVERYONE, **kw: object) -> Watch:
    return Watch(key="switch", name="Switch 2", url=URL, notify=notify, **kw)  # type: ignore[arg-type]


def event(kind: EventKind = EventKind.RESTOCK, price: int | None = 49980) -> Event:
    return Event(
        kind=kind,
        watch_key="switch",
        watch_name="Switch 2",
        state=Availability.IN_STOCK,
        observed_at=datetime(2025, 3, 1, 21, 0, 5, 123456, tzinfo=JST),
        url=URL,
        store="amazon_jp",
        price=price,
        title="Nintendo Switch 2",
        seller="Amazon.co.jp",
        previous_price=54980,
    )


async def stored_watch(repo: SQLiteRepository) -> StoredWatch:
    [stored] = await repo.load_watches(await repo.ensure_product(URL, None, NOW))
    return stored


async def record(
    repo: SQLiteRepository, events: list[Event], *, finished: bool = False, now: datetime = NOW
) -> list[Event]:
    stored = await stored_watch(repo)
    decision = WatchDecision(stored.id, {"phase": "fired"}, events, finished=finished)
    obs = Observation(state=Availability.IN_STOCK, reason="test", price=49980)
    outcome = CheckOutcome(next_due_at=now + timedelta(minutes=1))
    result = await repo.record_check(stored.product_id, obs, [decision], outcome, now)
    return list(result.events)


async def fetch_tuples(database: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows `sql` selects, each a tuple in the order of its columns."""
    return [tuple(row.values()) for row in await dbrows.fetch(database, sql)]


async def claim_all(repo: SQLiteRepository, now: datetime = NOW) -> list[ClaimedDelivery]:
    return await repo.claim_deliveries("dispatcher", now, 100, LEASE)


async def test_a_check_writes_events_and_one_delivery_per_subscription(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch()], NOW)
    [stored] = await record(repo, [event()])
    assert stored.id is not None

    claimed = await claim_all(repo)
    assert sorted((d.channel, d.recipient) for d in claimed) == [
        ("console", "-"),
        ("email", "me@example.com"),
        ("telegram", "111"),
        ("telegram", "222"),
        ("webhook", "-"),
        ("x", "public"),
    ]
    assert all(d.attempts == 1 and d.lease_until == NOW + LEASE for d in claimed)
    assert len({d.idempotency_key for d in claimed}) == 6
    assert claimed[0].idempotency_key == f"{stored.id}:{claimed[0].channel}:{claimed[0].recipient}"
    # The stored event is the model's event, with its id, its kind and a tz-aware time.
    assert {d.event for d in claimed} == {stored}
    assert claimed[0].event.observed_at == event().observed_at
    assert claimed[0].event.observed_at.utcoffset() == timedelta(hours=9)
    assert claimed[0].event.kind is EventKind.RESTOCK
    assert claimed[0].event.state is Availability.IN_STOCK
    [status] = await repo.watch_statuses()
    assert status.state == {"phase": "fired"}


async def test_paused_subscriptions_get_no_delivery(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch(Notify())], NOW)
    paused = await repo.subscribe_to_watch(5, "switch", NOW)
    standing = await repo.subscribe_to_watch(6, "switch", NOW)
    assert paused is not None and standing is not None
    await repo.set_paused(paused.id, 5, True)
    await record(repo, [event()])
    assert [(d.recipient, d.subscription_id) for d in await claim_all(repo)] == [("6", standing.id)]


async def test_a_failure_mid_check_writes_nothing(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch()], NOW)
    stored = await stored_watch(repo)
    good = WatchDecision(stored.id, {"phase": "fired"}, [event()])
    missing = WatchDecision(stored.id + 1000, {"phase": "fired"}, [event()])
    outcome = CheckOutcome(next_due_at=NOW + timedelta(hours=1))
    obs = Observation(state=Availability.IN_STOCK, reason="test")

    with pytest.raises(StorageError):
        await repo.record_check(stored.product_id, obs, [good, missing], outcome, NOW)
    quiet_missing = WatchDecision(stored.id + 1000, {"phase": "armed"})
    with pytest.raises(StorageError, match="does not exist"):
        await repo.record_check(stored.product_id, obs, [good, quiet_missing], outcome, NOW)
    naive_time = replace(event(), observed_at=datetime(2025, 3, 1, 21, 0))
    naive = WatchDecision(stored.id, {}, [event(), naive_time])
    with pytest.raises(ValueError, match="naive"):
        await repo.record_check(stored.product_id, obs, [naive], outcome, NOW)

    assert await repo.outbox_depth() == dict.fromkeys(
        ["pending", "sent", "skipped", "failed", "dead"], 0
    )
    history = await repo.history("switch")
    assert history is not None
    assert history.events == () and history.observations == ()
    assert history.status.state is None and history.status.last_checked_at is None
    [due] = await repo.claim_due_products("engine", NOW, 5, LEASE)  # still due: nothing moved
    assert due.id == stored.product_id


# What each backend raises when a row breaks a unique constraint.
UNIQUE_VIOLATION = (sqlite3.IntegrityError, asyncpg.UniqueViolationError)


async def test_idempotency_keys_are_unique_in_the_database(
    repo: SQLiteRepository, database: str
) -> None:
    await repo.sync_yaml_watches([watch(Notify(console=True))], NOW)
    [stored] = await record(repo, [event()])
    with pytest.raises(UNIQUE_VIOLATION, match=r"(?i)unique"):
        await dbrows.execute(
            database,
            "INSERT INTO deliveries (event_id, channel, recipient, status, next_attempt_at,"
            " created_at, updated_at, idempotency_key) VALUES (?, 'console', '-', 'pending',"
            " 0, 0, 0, ?)",
            stored.id,
            f"{stored.id}:console:-",
        )


async def test_retries_back_off_then_dead_letter(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch(Notify(webhook=True))], NOW)
    await record(repo, [event()])
    now = NOW
    for attempt in (1, 2):
        [delivery] = await claim_all(repo, now)
        assert delivery.attempts == attempt
        retry_at = now + timedelta(seconds=30 * attempt)
        status = await repo.mark_retry(delivery.id, retry_at, f"HTTP 503 #{attempt}", now, 3)
        assert status == "pending"
        assert await claim_all(repo, retry_at - timedelta(seconds=1)) == []
        now = retry_at
    [delivery] = await claim_all(repo, now)
    assert delivery.attempts == 3
    assert await repo.mark_retry(delivery.id, now, "HTTP 503 #3", now, 3) == "dead"
    assert await claim_all(repo, now + timedelta(days=1)) == []

    [dead] = await repo.dead_letters()
    assert (dead.id, dead.status, dead.attempts) == (delivery.id, "dead", 3)
    assert dead.last_error == "HTTP 503 #3" and dead.event.price == 49980
    assert (await repo.outbox_depth())["dead"] == 1


async def test_sent_failed_and_skipped_deliveries_are_never_claimed_again(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify(telegram=(1, 2, 3)))], NOW)
    await record(repo, [event()])
    sent, failed, skipped = await claim_all(repo)
    await repo.mark_sent(sent.id, NOW)
    await repo.mark_failed(failed.id, "chat not found", NOW)
    await repo.mark_skipped(skipped.id, "quiet hours (drop)", NOW)
    assert await claim_all(repo, NOW + timedelta(days=1)) == []
    depth = await repo.outbox_depth()
    assert (depth["sent"], depth["failed"], depth["skipped"], depth["pending"]) == (1, 1, 1, 0)
    assert [d.id for d in await repo.dead_letters()] == [failed.id]


async def test_a_batch_of_results_is_recorded_at_once_with_each_status(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify(telegram=(1, 2, 3, 4)))], NOW)
    await record(repo, [event()])
    sent, retried, failed, skipped = await claim_all(repo)
    later = NOW + timedelta(minutes=5)
    statuses = await repo.record_results(
        [
            DeliveryResult(sent.id, "sent"),
            DeliveryResult(retried.id, "retry", "HTTP 429", later),
            DeliveryResult(failed.id, "failed", "chat not found"),
            DeliveryResult(skipped.id, "skipped", "duplicate"),
        ],
        NOW,
        max_attempts=3,
    )
    assert statuses == ["sent", "pending", "failed", "skipped"]
    depth = await repo.outbox_depth()
    assert (depth["sent"], depth["pending"], depth["failed"], depth["skipped"]) == (1, 1, 1, 1)
    assert await claim_all(repo, later - timedelta(seconds=1)) == []
    [again] = await claim_all(repo, later)
    assert (again.id, again.attempts) == (retried.id, 2)
    [dead] = await repo.dead_letters()
    assert (dead.id, dead.last_error) == (failed.id, "chat not found")


async def test_a_large_batch_records_alike_results_together_and_each_its_own_time(
    repo: SQLiteRepository, database: str
) -> None:
    await repo.sync_yaml_watches([watch(Notify(telegram=tuple(range(1, 301))))], NOW)
    await record(repo, [event()])
    claimed = await repo.claim_deliveries("dispatcher", NOW, 300, LEASE)
    retry_at = {
        d.id: NOW + timedelta(seconds=i, microseconds=i * 7919) for i, d in enumerate(claimed)
    }
    results = [
        DeliveryResult(d.id, "retry", "HTTP 429", retry_at[d.id])
        if i % 10 == 0
        else DeliveryResult(d.id, "failed", f"chat {d.recipient} not found")
        if i % 10 == 1
        else DeliveryResult(d.id, "sent")
        for i, d in enumerate(claimed)
    ]
    statuses = await repo.record_results(results, NOW, max_attempts=3)

    expected = {"retry": "pending", "failed": "failed", "sent": "sent"}
    assert statuses == [expected[r.outcome] for r in results]
    written = {
        row[0]: row[1:]
        for row in await fetch_tuples(
            database,
            "SELECT id, status, next_attempt_at, last_error, sent_at, lease_owner FROM deliveries",
        )
    }
    for r in results:
        status, next_at, error, sent_at, owner = written[r.delivery_id]
        assert owner is None
        if r.outcome == "retry":
            assert (status, next_at, error) == (
                "pending",
                to_epoch(retry_at[r.delivery_id]),
                r.detail,
            )
        elif r.outcome == "failed":
            assert (status, error, sent_at) == ("failed", r.detail, None)
        else:
            assert (status, error, sent_at) == ("sent", None, to_epoch(NOW))


async def test_a_batch_naming_a_delivery_twice_records_its_first_result(
    repo: SQLiteRepository,
) -> None:
    """As if written one by one: the later result finds the delivery no longer pending, and each
    is reported with the status its delivery ends with."""
    await repo.sync_yaml_watches([watch(Notify(telegram=(1, 2)))], NOW)
    await record(repo, [event()])
    first, second = await claim_all(repo)
    results = [
        DeliveryResult(second.id, "failed", "chat not found"),
        DeliveryResult(first.id, "sent"),
        DeliveryResult(first.id, "failed", "chat not found"),
    ]
    assert await repo.record_results(results, NOW, max_attempts=3) == ["failed", "sent", "sent"]
    assert [d.id for d in await repo.dead_letters()] == [second.id]


async def test_postpone_many_holds_each_delivery_until_its_own_time(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify(telegram=(1, 2, 3)))], NOW)
    await record(repo, [event()])
    one, two, three = await claim_all(repo)
    await repo.mark_sent(three.id, NOW)
    morning = NOW + timedelta(hours=8)
    await repo.postpone_many(
        [(one.id, morning), (two.id, morning + timedelta(hours=1)), (three.id, morning)], NOW
    )
    await repo.postpone_many([], NOW)
    assert await claim_all(repo, morning - timedelta(minutes=1)) == []
    [first] = await claim_all(repo, morning)
    assert (first.id, first.attempts) == (one.id, 1)  # the held attempt was not spent
    await repo.mark_sent(first.id, morning)
    [second] = await claim_all(repo, morning + timedelta(hours=1))
    assert second.id == two.id
    assert (await repo.outbox_depth())["sent"] == 2  # a sent one stays sent


async def test_a_batch_retry_dead_letters_once_its_attempts_are_spent(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify(webhook=True))], NOW)
    await record(repo, [event()])
    now = NOW
    for expected in ("pending", "dead"):
        [delivery] = await claim_all(repo, now)
        retry = DeliveryResult(delivery.id, "retry", f"HTTP 503 #{delivery.attempts}", now)
        assert await repo.record_results([retry], now, max_attempts=2) == [expected]
    assert await claim_all(repo, now + timedelta(days=1)) == []
    [dead] = await repo.dead_letters()
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 2, "HTTP 503 #2")


async def test_a_batch_leaves_deliveries_that_are_no_longer_pending_alone(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify(telegram=(1, 2)))], NOW)
    await record(repo, [event()])
    gone, fine = await claim_all(repo)
    await repo.deactivate_recipient("telegram", gone.recipient, NOW)  # skips its pending ones
    results = [DeliveryResult(gone.id, "sent"), DeliveryResult(fine.id, "sent")]
    assert await repo.record_results(results, NOW, max_attempts=3) == ["skipped", "sent"]
    depth = await repo.outbox_depth()
    assert (depth["skipped"], depth["sent"]) == (1, 1)


async def test_a_batch_with_an_unknown_delivery_writes_nothing(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch(Notify(webhook=True))], NOW)
    await record(repo, [event()])
    [delivery] = await claim_all(repo)
    results = [DeliveryResult(delivery.id, "sent"), DeliveryResult(delivery.id + 999, "sent")]
    with pytest.raises(StorageError, match="no delivery"):
        await repo.record_results(results, NOW, max_attempts=3)
    assert (await repo.outbox_depth())["sent"] == 0
    assert [d.id for d in await claim_all(repo, NOW + LEASE)] == [delivery.id]


async def test_a_batch_refuses_naive_times_and_retries_without_a_time(
    repo: SQLiteRepository,
) -> None:
    with pytest.raises(ValueError, match="retry_at"):
        DeliveryResult(1, "retry", "HTTP 503")
    with pytest.raises(ValueError, match="retry_at"):
        DeliveryResult(1, "sent", retry_at=NOW)
    naive = DeliveryResult(1, "retry", "HTTP 503", NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        await repo.record_results([naive], NOW, max_attempts=3)
    assert await repo.record_results([], NOW, max_attempts=3) == []


async def test_postpone_holds_a_delivery_without_counting_an_attempt(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify(console=True))], NOW)
    await record(repo, [event()])
    [held] = await claim_all(repo)
    morning = NOW + timedelta(hours=8)
    await repo.postpone_many([(held.id, morning)], NOW)
    assert await claim_all(repo, morning - timedelta(minutes=1)) == []
    [again] = await claim_all(repo, morning)
    assert again.id == held.id and again.attempts == 1


async def test_claims_can_be_limited_to_one_channel(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch()], NOW)
    await record(repo, [event()])
    telegram = await repo.claim_deliveries("tg", NOW, 10, LEASE, channel="telegram")
    assert sorted(d.recipient for d in telegram) == ["111", "222"]
    assert len(await claim_all(repo)) == 4


async def test_pending_deliveries_survive_a_crash_and_return_after_the_lease(
    database: str,
) -> None:
    repo = await open_repository(database)
    await repo.sync_yaml_watches([watch()], NOW)
    await record(repo, [event()])
    in_flight = await claim_all(repo)
    assert len(in_flight) == 6
    await repo.close()  # the process dies: nothing marked, nothing released

    repo = await open_repository(database)
    try:
        assert await claim_all(repo, NOW + LEASE - timedelta(seconds=1)) == []
        again = await claim_all(repo, NOW + LEASE)
        assert {d.id for d in again} == {d.id for d in in_flight}
        assert all(d.attempts == 2 for d in again)
    finally:
        await repo.close()


async def test_a_graceful_stop_releases_leases_at_once(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch(Notify(console=True))], NOW)
    await record(repo, [event()])
    [claimed] = await repo.claim_deliveries("worker-1", NOW, 10, LEASE)
    await repo.release_leases("worker-1")
    [again] = await repo.claim_deliveries("worker-2", NOW, 10, LEASE)
    assert again.id == claimed.id and again.attempts == 1


async def test_two_dispatchers_never_claim_the_same_delivery(database: str) -> None:
    first, second = await open_repository(database), await open_repository(database)
    try:
        recipients = tuple(range(1000, 1060))
        await first.sync_yaml_watches([watch(Notify(telegram=recipients))], NOW)
        await record(first, [event(), event(EventKind.PRICE_DROP, price=45000)])

        async def drain(repo: SQLiteRepository, owner: str) -> list[int]:
            taken: list[int] = []
            while batch := await repo.claim_deliveries(owner, NOW, 5, LEASE):
                taken += [d.id for d in batch]
                await asyncio.sleep(0)
            return taken

        results = await asyncio.gather(drain(first, "a"), drain(second, "b"), drain(first, "c"))
    finally:
        await first.close()
        await second.close()
    everything = [d for taken in results for d in taken]
    assert len(everything) == len(set(everything)) == 120


async def test_one_shot_subscriptions_end_with_their_restock_delivery(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify())], NOW)
    one_shot = await repo.subscribe_to_watch(5, "switch", NOW, one_shot=True)
    standing = await repo.subscribe_to_watch(6, "switch", NOW, one_shot=False)
    assert one_shot is not None and standing is not None

    await record(repo, [event(EventKind.OUT_OF_STOCK)])
    assert [s.id for s in await repo.list_subscriptions(5)] == [one_shot.id]  # not the end yet
    await record(repo, [event(EventKind.RESTOCK)])
    assert await repo.list_subscriptions(5) == []
    assert await repo.count_active(5) == 0
    await record(repo, [event(EventKind.RESTOCK)])

    recipients = sorted(d.recipient for d in await claim_all(repo))
    assert recipients == ["5", "5", "6", "6", "6"]


async def test_a_once_watch_finishes_after_its_notification(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch(Notify(console=True), once=True)], NOW)
    product_id = await repo.ensure_product(URL, None, NOW)
    await record(repo, [event()], finished=True)
    assert len(await claim_all(repo)) == 1
    assert await repo.load_watches(product_id) == []
    assert await repo.claim_due_products("engine", NOW + timedelta(days=1), 5, LEASE) == []
    assert await repo.restock_times(product_id=product_id) == [NOW]


async def test_a_recipient_that_is_gone_is_deactivated(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([watch(Notify())], NOW)
    await repo.ensure_chat_user(5, NOW)
    await repo.subscribe_to_watch(5, "switch", NOW, one_shot=False)
    await repo.subscribe_to_watch(6, "switch", NOW, one_shot=False)
    await record(repo, [event(EventKind.PRICE_DROP)])

    assert await repo.deactivate_recipient("telegram", "5", NOW) == 1
    assert [d.recipient for d in await claim_all(repo)] == ["6"]
    assert (await repo.outbox_depth())["skipped"] == 1
    assert await repo.list_subscriptions(5) == []
    assert (await repo.stats()).blocked_users == 1


async def test_a_migrated_chat_keeps_its_subscriptions_and_pending_deliveries(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch(Notify())], NOW)
    await repo.subscribe_to_watch(-100, "switch", NOW, one_shot=False)
    await record(repo, [event(EventKind.PRICE_DROP)])

    await repo.rewrite_recipient("telegram", "-100", "-1009999")
    [delivery] = await claim_all(repo)
    assert delivery.recipient == "-1009999"
    assert delivery.idempotency_key.endswith(":telegram:-1009999")
    assert [s.recipient for s in await repo.list_subscriptions(-1009999)] == ["-1009999"]
    assert await repo.list_subscriptions(-100) == []


async def test_notify_lists_edited_in_yaml_change_who_gets_deliveries(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch()], NOW)
    await repo.sync_yaml_watches([watch(Notify(console=True, telegram=(111,)))], NOW)
    await record(repo, [event()])
    first = sorted((d.channel, d.recipient) for d in await claim_all(repo))
    assert first == [("console", "-"), ("telegram", "111")]

    await repo.sync_yaml_watches([watch()], NOW)
    await record(repo, [event(EventKind.PRICE_DROP)])
    assert len(await claim_all(repo)) == 6

    await repo.sync_yaml_watches([], NOW)  # an emptied watchlist silences the watch
    assert await repo.watch_statuses() == []


async def test_a_check_whose_lease_passed_to_another_worker_stores_nothing(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([watch()], NOW)
    [mine] = await repo.claim_due_products("worker-a", NOW, 10, LEASE)
    later = NOW + LEASE + timedelta(seconds=1)  # worker-a's lease ran out while it waited
    [theirs] = await repo.claim_due_products("worker-b", later, 10, LEASE)
    assert theirs.id == mine.id
    stored = await stored_watch(repo)
    decision = WatchDecision(stored.id, {"phase": "buyable"}, [event()])
    obs = Observation(state=Availability.IN_STOCK, reason="test", price=49980)

    late = CheckOutcome(next_due_at=later + LEASE, lease_owner="worker-a")
    lost = await repo.record_check(mine.id, obs, [decision], late, later)
    assert lost.lease_lost and lost.events == () and lost.deliveries == 0
    assert await claim_all(repo, later) == []

    current = CheckOutcome(next_due_at=later + LEASE, lease_owner="worker-b")
    kept = await repo.record_check(theirs.id, obs, [decision], current, later)
    assert not kept.lease_lost and len(kept.events) == 1
    assert len(await claim_all(repo, later)) == kept.deliveries > 0


async def test_checks_written_together_land_or_fail_each_on_their_own(
    repo: SQLiteRepository,
) -> None:
    """Concurrent checks share a transaction; a failing or lease-lost one spoils no other."""
    urls = [f"https://www.amazon.co.jp/dp/B0DX00000{i}" for i in range(4)]
    watches = [Watch(key=f"w{i}", name=f"w{i}", url=u, notify=EVERYONE) for i, u in enumerate(urls)]
    await repo.sync_yaml_watches(watches, NOW)
    products = await repo.claim_due_products("worker-a", NOW, 10, LEASE)
    assert len(products) == 4
    obs = Observation(state=Availability.IN_STOCK, reason="test", price=100)

    decisions = {}
    for product in products:
        [stored] = await repo.load_watches(product.id)
        ev = replace(event(), watch_key=stored.watch.key, watch_name=stored.watch.name)
        decisions[product.id] = WatchDecision(stored.id, {"phase": "buyable"}, [ev])

    def write(product_id: int, owner: str) -> Awaitable[RecordedCheck]:
        # No await before record_check: concurrent calls queue up and are written as one batch.
        outcome = CheckOutcome(next_due_at=NOW + LEASE, lease_owner=owner)
        return repo.record_check(product_id, obs, [decisions[product_id]], outcome, NOW)

    ids = [p.id for p in products]
    missing = max(ids) + 1000  # no such product: its write fails
    results = await asyncio.gather(
        write(ids[0], "worker-a"),
        write(ids[1], "worker-b"),  # not the lease holder: dropped whole
        write(ids[2], "worker-a"),
        write(ids[3], "worker-a"),
    )
    first_round = await claim_all(repo)
    assert {d.event.watch_key for d in first_round} == {"w0", "w2", "w3"}
    for delivery in first_round:
        await repo.mark_sent(delivery.id, NOW)

    # A write that fails (no such product) shares a batch with a good one: the good one lands.
    await repo.claim_due_products("worker-a", NOW + LEASE, 10, LEASE)
    failing = await asyncio.gather(
        repo.record_check(missing, obs, [], CheckOutcome(next_due_at=NOW + LEASE), NOW),
        write(ids[0], "worker-a"),
        return_exceptions=True,
    )
    assert isinstance(failing[0], StorageError)
    assert [r.lease_lost for r in results] == [False, True, False, False]
    assert isinstance(failing[1], RecordedCheck) and not failing[1].lease_lost
    second_round = await claim_all(repo, NOW + LEASE * 3)
    assert {d.event.watch_key for d in second_round} == {"w0"}


async def test_quiet_checks_written_together_store_what_each_check_read(
    repo: SQLiteRepository, database: str
) -> None:
    """Checks without events share a few statements; each still lands as if written alone."""
    urls = [f"https://www.amazon.co.jp/dp/B0QX00000{i}" for i in range(4)]
    watches = [Watch(key=f"q{i}", name=f"q{i}", url=u, notify=EVERYONE) for i, u in enumerate(urls)]
    await repo.sync_yaml_watches(watches, NOW)
    products = await repo.claim_due_products("worker-a", NOW, 10, LEASE)
    ids = [p.id for p in products]
    stored = {pid: (await repo.load_watches(pid))[0] for pid in ids}
    later = NOW + timedelta(seconds=5)

    def write(index: int, owner: str) -> Awaitable[RecordedCheck]:
        pid = ids[index]
        obs = Observation(
            state=Availability.OUT_OF_STOCK,
            reason=f"read {index}",
            price=1000 + index,
            title=f"item {index}",
            fetch=FetchFacts(status=200, bytes=100 + index, elapsed_ms=1.5),
        )
        outcome = CheckOutcome(
            next_due_at=later + timedelta(minutes=index),
            content_hash=f"hash{index}",
            lease_owner=owner,
        )
        decision = WatchDecision(stored[pid].id, {"phase": "idle", "n": index})
        # No await before record_check: concurrent calls queue up and are written as one batch.
        return repo.record_check(pid, obs, [decision], outcome, later)

    results = await asyncio.gather(
        write(0, "worker-a"), write(1, "worker-b"), write(2, "worker-a"), write(3, "worker-a")
    )
    assert [r.lease_lost for r in results] == [False, True, False, False]
    assert all(r.events == () and r.deliveries == 0 for r in results)

    rows = {
        row[0]: row[1:]
        for row in await fetch_tuples(
            database,
            "SELECT id, due_at, lease_owner, content_hash, last_state, last_price,"
            " last_title, last_checked_at, checks FROM products",
        )
    }
    observed = await fetch_tuples(
        database,
        "SELECT product_id, state, price, reason, status, bytes FROM observations ORDER BY id",
    )
    states = dict(await fetch_tuples(database, "SELECT product_id, detector_state FROM watches"))
    for index in (0, 2, 3):
        pid = ids[index]
        due = to_epoch(later + timedelta(minutes=index))
        assert rows[pid] == (
            due, None, f"hash{index}", "out_of_stock", 1000 + index, f"item {index}",
            to_epoch(later), 1,
        )  # fmt: skip
        assert (pid, "out_of_stock", 1000 + index, f"read {index}", 200, 100 + index) in observed
        assert states[pid] is not None and f'"n":{index}' in states[pid]
    # The check that lost its lease wrote nothing: its product is still leased to worker-a.
    assert rows[ids[1]][1:3] == ("worker-a", None) and rows[ids[1]][-1] == 0
    assert [o for o in observed if o[0] == ids[1]] == []
    assert states[ids[1]] is None
