"""One restock to many recipients: the check's write, the hand-off, the grouped result writes.

A real database on each backend; the dispatcher with recording notifiers and a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from test_dispatch import (
    LEASE,
    NOW,
    Clock,
    FakeNotifier,
    dispatcher,
    restock_event,
    statuses,
    switch_watch,
)

from notifiers.base import Notice, SendResult
from tests import dbrows
from watcher.core.model import Availability, Notify, Observation, QuietHours, QuietMode
from watcher.service.dispatch import Dispatcher
from watcher.storage import group_commit, open_repository
from watcher.storage.codec import to_epoch
from watcher.storage.interface import (
    CheckOutcome,
    ClaimedDelivery,
    DeliveryClaim,
    RecordedCheck,
    Repository,
    WatchDecision,
)

OWNER = "dispatcher-1"
TELEGRAM = frozenset({"telegram"})
EVENING = QuietHours(time(20, 0), time(7, 0), QuietMode.HOLD)  # NOW is 21:00 in Tokyo
EVENING_DROP = QuietHours(time(20, 0), time(7, 0), QuietMode.DROP)


class BulkNotifier(FakeNotifier):
    """A channel that takes batches as large as the dispatcher's (Telegram's take 100)."""

    batch_size = 100


@pytest.fixture
def clock() -> Clock:
    return Clock()


def chats(count: int, first: int = 1) -> tuple[int, ...]:
    return tuple(range(first, first + count))


async def check(repo: Repository, claim: DeliveryClaim | None) -> RecordedCheck:
    """Check the watched product once, as the engine does, with the detector firing a restock."""
    [product] = await repo.claim_due_products("engine", NOW, 10, LEASE)
    [stored] = await repo.load_watches(product.id)
    decision = WatchDecision(stored.id, {"phase": "fired"}, [restock_event(NOW)])
    observation = Observation(state=Availability.IN_STOCK, reason="test", price=49980)
    outcome = CheckOutcome(next_due_at=NOW, lease_owner="engine", claim_for=claim)
    return await repo.record_check(product.id, observation, [decision], outcome, NOW)


async def rows(database: str) -> dict[tuple[str, str], tuple[str | None, int, str]]:
    """Each delivery by (channel, recipient): its lease owner, attempts and status."""
    found = await dbrows.fetch(
        database, "SELECT channel, recipient, lease_owner, attempts, status FROM deliveries"
    )
    return {
        (row["channel"], row["recipient"]): (row["lease_owner"], row["attempts"], row["status"])
        for row in found
    }


async def follow(repo: Repository, chat: int, **user: Any) -> int:
    """A chat user follows the watch, as the bot's /follow does; returns the subscription id."""
    quiet = user.pop("quiet", None)
    await repo.ensure_chat_user(chat, NOW, **user)
    if quiet is not None:
        await repo.set_quiet(chat, quiet)
    subscription = await repo.subscribe_to_watch(chat, "switch", NOW)
    assert subscription is not None
    return subscription.id


def spy(repo: Repository, monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[Any, ...]]:
    """The arguments of every call of one repository method, in order."""
    calls: list[tuple[Any, ...]] = []
    method: Callable[..., Awaitable[Any]] = getattr(repo, name)

    async def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await method(*args, **kwargs)

    monkeypatch.setattr(repo, name, call)
    return calls


def gate_results(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Every `record_results` waits for the returned gate (a database busy with other writes)."""
    gate = asyncio.Event()
    method = repo.record_results

    async def gated(*args: Any) -> list[str]:
        await gate.wait()
        return await method(*args)

    monkeypatch.setattr(repo, "record_results", gated)
    return gate


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


async def hand_and_run(repo: Repository, d: Dispatcher) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Fire the restock with the dispatcher's claim, hand what it claimed, run the dispatcher."""
    recorded = await check(repo, d.claim_request())
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    d.hand(recorded.claimed)
    return stop, task


# --- the check's write ------------------------------------------------------------------------


async def test_an_event_writes_one_delivery_per_active_subscription_all_claimed(
    repo: Repository, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "CLAIMED_CHUNK", 7)  # built in several chunks
    await repo.sync_yaml_watches([switch_watch(Notify(webhook=True))], NOW)
    subscription = {chat: await follow(repo, chat) for chat in chats(40)}
    await follow(repo, 41, language="en")
    await follow(repo, 42, quiet=EVENING)
    for chat in chats(5):  # paused: they keep following, but hear nothing now
        assert await repo.set_paused(subscription[chat], chat, True)
    for chat in chats(5, first=6):  # unsubscribed (opted out)
        assert await repo.remove_subscription(subscription[chat], chat, NOW)
    for chat in chats(5, first=11):  # /stop, or the bot was blocked
        await repo.deactivate_chat(chat, NOW, blocked=chat % 2 == 0)

    recorded = await check(repo, DeliveryClaim(OWNER, LEASE, TELEGRAM))

    following = [str(chat) for chat in chats(42 - 15, first=16)]
    assert recorded.deliveries == len(following) + 1  # and the webhook's
    claimed = recorded.claimed
    assert [c.recipient for c in claimed] == following  # in the order they subscribed
    assert [c.id for c in claimed] == sorted({c.id for c in claimed})
    [event] = recorded.events
    for item in claimed:
        assert (item.channel, item.attempts, item.lease_until) == ("telegram", 1, NOW + LEASE)
        assert item.event == event and item.subscription_id is not None
    assert (claimed[-2].language, claimed[-2].quiet) == ("en", None)
    assert (claimed[-1].language, claimed[-1].quiet) == (None, EVENING)
    written = await rows(database)
    assert written.pop(("webhook", "-")) == (None, 0, "pending")  # left to the outbox
    assert written == {("telegram", r): (OWNER, 1, "pending") for r in following}

    # One-shot: those that got it stop following; the paused ones still follow.
    assert await repo.list_subscriptions(16) == []
    [paused] = await repo.list_subscriptions(1)
    assert paused.paused and paused.active
    again = await check(repo, DeliveryClaim(OWNER, LEASE, TELEGRAM))
    assert (again.deliveries, again.claimed) == (1, ())  # the standing webhook only


async def test_a_fan_outs_claim_equals_a_claim_from_the_outbox_right_after(
    database: str, other_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids, order, event, quiet hours, languages: the same whichever way they are claimed."""
    monkeypatch.setattr(group_commit, "CLAIMED_CHUNK", 4)
    claimed: list[Sequence[ClaimedDelivery]] = []
    for name, url in (("in-check", database), ("after", other_database)):
        repo = await open_repository(url)
        try:
            notify = Notify(telegram=chats(5, first=100), console=True)
            await repo.sync_yaml_watches([switch_watch(notify)], NOW)
            for chat in chats(12):
                quiet = (EVENING, EVENING_DROP, None)[chat % 3]
                await follow(repo, chat, language=("ja", "en", None)[chat % 3], quiet=quiet)
            if name == "in-check":
                claimed.append((await check(repo, DeliveryClaim(OWNER, LEASE, TELEGRAM))).claimed)
            else:
                await check(repo, None)
                claimed.append(
                    await repo.claim_deliveries(OWNER, NOW, 100, LEASE, channel="telegram")
                )
        finally:
            await repo.close()

    in_check, after = claimed
    assert len(in_check) == 17
    assert list(in_check) == list(after)


async def test_a_check_without_a_claim_leaves_every_new_delivery_to_the_outbox(
    repo: Repository, database: str
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=chats(30)))], NOW)
    recorded = await check(repo, None)
    assert (recorded.deliveries, recorded.claimed) == (30, ())
    assert set((await rows(database)).values()) == {(None, 0, "pending")}
    assert len(await repo.claim_deliveries(OWNER, NOW, 100, LEASE)) == 30


# --- the dispatcher ---------------------------------------------------------------------------


async def test_a_large_handed_set_is_sent_once_each_and_every_result_recorded(
    repo: Repository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipients = 1_200
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=chats(recipients)))], NOW)
    writes = spy(repo, monkeypatch, "record_results")
    telegram = BulkNotifier("telegram")
    d = dispatcher(repo, [telegram], clock, batch=50, record_group=500)

    stop, task = await hand_and_run(repo, d)
    await until(lambda: len(telegram.notices) == recipients)
    stop.set()
    await task

    assert len({n.delivery_id for n in telegram.notices}) == recipients
    assert {n.attempt for n in telegram.notices} == {1}  # handed over, never claimed again
    assert sorted(telegram.recipients, key=int) == [str(c) for c in chats(recipients)]
    assert await statuses(repo) == {"sent": recipients}
    assert d.metrics.deliveries.get(channel="telegram", result="sent") == recipients
    # The results of 24 batches went to the database in a few writes, none over the group size.
    sizes = [len(results) for results, *_ in writes]
    assert sum(sizes) == recipients and max(sizes) <= 500
    assert len(writes) <= recipients // 50 // 2


async def test_a_worker_waits_for_the_recorder_once_a_whole_group_is_unwritten(
    repo: Repository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=chats(1_000)))], NOW)
    gate = gate_results(repo, monkeypatch)
    telegram = BulkNotifier("telegram")
    d = dispatcher(repo, [telegram], clock, batch=50, record_group=200)

    stop, task = await hand_and_run(repo, d)
    await until(lambda: len(telegram.notices) >= 250)
    await asyncio.sleep(0.05)
    # The first write (one batch) waits for the database, a group waits behind it: no more goes
    # out until they are written, so a crash now could resend at most those.
    assert len(telegram.notices) == 250
    assert await statuses(repo) == {"pending": 1_000}

    gate.set()
    await until(lambda: len(telegram.notices) == 1_000)
    stop.set()
    await task
    assert await statuses(repo) == {"sent": 1_000}


async def test_run_returns_once_every_sent_result_is_written(
    repo: Repository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=chats(120)))], NOW)
    gate = gate_results(repo, monkeypatch)
    telegram = BulkNotifier("telegram")
    d = dispatcher(repo, [telegram], clock)

    stop, task = await hand_and_run(repo, d)
    await until(lambda: len(telegram.notices) == 120)
    stop.set()
    await asyncio.sleep(0.05)
    assert not task.done()  # its results are still being written

    gate.set()
    await task
    assert await statuses(repo) == {"sent": 120}
    assert await repo.lease_owners(NOW) == []


async def test_many_recipients_in_quiet_hours_are_held_and_dropped_in_few_writes(
    repo: Repository, database: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(console=True))], NOW)
    settings = {chat: (EVENING, EVENING_DROP, None)[chat % 3] for chat in chats(120)}
    for chat, quiet in settings.items():
        await follow(repo, chat, quiet=quiet)
    postpones = spy(repo, monkeypatch, "postpone_many")
    singles = spy(repo, monkeypatch, "mark_skipped")
    telegram = BulkNotifier("telegram")
    d = dispatcher(repo, [telegram, FakeNotifier("console")], clock, batch=50)

    stop, task = await hand_and_run(repo, d)
    await until(lambda: len(telegram.notices) == 40)
    await asyncio.sleep(0.05)
    stop.set()
    await task

    assert sorted(telegram.recipients, key=int) == [str(c) for c, q in settings.items() if not q]
    assert len(postpones) == 3 and singles == []  # one write per batch of 50
    pending = [r for (c, r), (_, _, s) in (await rows(database)).items() if s == "pending"]
    assert sorted(map(int, pending)) == [c for c, q in settings.items() if q is EVENING]
    morning = datetime(2025, 3, 2, 7, 0, tzinfo=NOW.tzinfo) - timedelta(hours=9)  # 07:00 JST
    waiting = await dbrows.fetch(
        database,
        "SELECT DISTINCT next_attempt_at, attempts, lease_owner FROM deliveries"
        " WHERE status = 'pending' AND channel = 'telegram'",
    )
    assert [tuple(row.values()) for row in waiting] == [
        (to_epoch(morning), 0, None)
    ]  # the attempt was not spent
    assert await statuses(repo) == {"sent": 41, "skipped": 40, "pending": 40}
    assert d.metrics.deliveries.get(channel="telegram", result="skipped") == 40


class StallingNotifier(BulkNotifier):
    """Sends the first `before_stall` notices it is handed, then hangs mid-batch (as a process
    does in the moment before it is killed)."""

    def __init__(self, channel: str, before_stall: int) -> None:
        super().__init__(channel)
        self.before_stall = before_stall
        self.stalled = asyncio.Event()
        self.gate = asyncio.Event()

    async def send(self, notice: Notice) -> SendResult:
        if len(self.notices) >= self.before_stall:
            self.stalled.set()
            await self.gate.wait()
        return await super().send(notice)


async def test_results_are_written_as_their_sends_end_not_when_the_batch_does(
    repo: Repository, clock: Clock
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=chats(100)))], NOW)
    telegram = StallingNotifier("telegram", before_stall=30)
    d = dispatcher(repo, [telegram], clock, batch=100)

    stop, task = await hand_and_run(repo, d)
    await until(telegram.stalled.is_set)
    # The batch of 100 is still in hand; the 30 that went out are written all the same, so a
    # crash now would repeat none of them.
    async with asyncio.timeout(10):
        while await statuses(repo) != {"sent": 30, "pending": 70}:
            await asyncio.sleep(0.01)
    telegram.gate.set()
    stop.set()
    await task
    assert await statuses(repo) == {"sent": 100}
