"""The dispatcher against a real outbox on each backend and scripted notifiers, on a fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from notifiers.base import Notice, Notifier, SendResult
from watcher.core.model import (
    Availability,
    Event,
    EventKind,
    Notify,
    Observation,
    Outcome,
    QuietHours,
    QuietMode,
    Watch,
)
from watcher.errors import StorageError
from watcher.service.dispatch import Dispatcher, DispatchSettings
from watcher.service.metrics import Metrics
from watcher.storage.interface import CheckOutcome, WatchDecision
from watcher.storage.sqlite.repository import SQLiteRepository

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
LEASE = timedelta(minutes=2)
URL = "https://www.amazon.co.jp/dp/B0DX000000"

Script = Callable[[Notice], SendResult]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeNotifier(Notifier):
    """Records every notice it is handed and answers from `script` (sent by default)."""

    name = "fake"

    def __init__(self, channel: str, script: Script | None = None) -> None:
        self.name = channel  # type: ignore[misc]  # one fake class serves every channel
        self.script = script or (lambda notice: SendResult.sent())
        self.notices: list[Notice] = []

    async def send(self, notice: Notice) -> SendResult:
        self.notices.append(notice)
        return self.script(notice)

    @property
    def recipients(self) -> list[str]:
        return [n.recipient for n in self.notices]


def on_first_try(result: SendResult) -> Script:
    """Answers `result` to a first attempt and sends every later one."""
    return lambda notice: result if notice.attempt == 1 else SendResult.sent()


class RaisingNotifier(FakeNotifier):
    """Breaks its promise never to raise, for the first `failures` batches."""

    def __init__(self, channel: str, failures: int) -> None:
        super().__init__(channel)
        self.failures = failures

    async def send_batch(self, notices: Sequence[Notice]) -> list[SendResult]:
        if self.failures > 0:
            self.failures -= 1
            self.notices.extend(notices)
            raise RuntimeError("library bug")
        return await super().send_batch(notices)


class GatedNotifier(FakeNotifier):
    """A slow channel: each send waits until the test opens the gate."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def send(self, notice: Notice) -> SendResult:
        self.entered.set()
        await self.gate.wait()
        return await super().send(notice)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def switch_watch(notify: Notify) -> Watch:
    return Watch(key="switch", name="Switch 2", url=URL, notify=notify)


def restock_event(observed_at: datetime = NOW) -> Event:
    return Event(
        kind=EventKind.RESTOCK,
        watch_key="switch",
        watch_name="Switch 2",
        state=Availability.IN_STOCK,
        observed_at=observed_at,
        url=URL,
        store="amazon_jp",
        price=49980,
        title="Nintendo Switch 2",
        seller="Amazon.co.jp",
    )


async def fire(repo: SQLiteRepository, now: datetime = NOW) -> Event:
    """Check the watched product once, as the engine does, with the detector firing a restock."""
    [product] = await repo.claim_due_products("engine", now, 10, LEASE)
    [stored] = await repo.load_watches(product.id)
    decision = WatchDecision(stored.id, {"phase": "fired"}, [restock_event(now)])
    observation = Observation(state=Availability.IN_STOCK, reason="test", price=49980)
    # Due again at once, so a test may fire the same product again.
    outcome = CheckOutcome(next_due_at=now)
    recorded = await repo.record_check(product.id, observation, [decision], outcome, now)
    [event] = recorded.events
    return event


async def setup(repo: SQLiteRepository, notify: Notify) -> Event:
    await repo.sync_yaml_watches([switch_watch(notify)], NOW)
    return await fire(repo)


def dispatcher(
    repo: SQLiteRepository,
    notifiers: Sequence[Notifier],
    clock: Clock,
    *,
    owner: str = "dispatcher-1",
    **settings: object,
) -> Dispatcher:
    defaults: dict[str, object] = {"max_attempts": 3, "idle_poll": 0.01}
    return Dispatcher(
        repo,
        {n.name: n for n in notifiers},
        owner=owner,
        settings=DispatchSettings(**{**defaults, **settings}),  # type: ignore[arg-type]
        metrics=Metrics(),
        clock=clock,
        rng=random.Random(7),
    )


async def statuses(repo: SQLiteRepository) -> dict[str, int]:
    return {k: v for k, v in (await repo.outbox_depth()).items() if v}


# --- results ----------------------------------------------------------------------------------


async def test_a_sent_delivery_is_marked_sent_and_never_sent_again(
    repo: SQLiteRepository, clock: Clock
) -> None:
    event = await setup(repo, Notify(telegram=(111, 222), console=True))
    telegram, console = FakeNotifier("telegram"), FakeNotifier("console")
    d = dispatcher(repo, [telegram, console], clock)

    assert await d.drain_once() == 3
    assert sorted(telegram.recipients) == ["111", "222"]
    assert console.recipients == ["-"]
    assert all(n.event == event and n.attempt == 1 for n in telegram.notices + console.notices)
    assert await statuses(repo) == {"sent": 3}

    clock.advance(timedelta(days=1))  # long past every lease
    assert await d.drain_once() == 0
    assert len(telegram.notices) == 2 and len(console.notices) == 1
    assert d.metrics.deliveries.get(channel="telegram", result="sent") == 2


async def test_a_retry_waits_for_its_backoff_then_goes_dead_and_is_listed(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await setup(repo, Notify(webhook=True))
    webhook = FakeNotifier("webhook", lambda n: SendResult(Outcome.RETRY, "HTTP 503"))
    d = dispatcher(repo, [webhook], clock, retry_base=timedelta(seconds=10))

    await d.drain_once()
    assert len(webhook.notices) == 1
    assert await d.drain_once() == 0  # not before its backoff
    assert await statuses(repo) == {"pending": 1}

    # Backoff is at most base * 2**(attempt-1): 10 s after the first try, 20 s after the second.
    clock.advance(timedelta(seconds=10))
    await d.drain_once()
    clock.advance(timedelta(seconds=20))
    await d.drain_once()
    assert [n.attempt for n in webhook.notices] == [1, 2, 3]
    assert await statuses(repo) == {"dead": 1}

    clock.advance(timedelta(hours=1))
    assert await d.drain_once() == 0
    [dead] = await repo.dead_letters()
    assert (dead.channel, dead.status, dead.attempts, dead.last_error) == (
        "webhook",
        "dead",
        3,
        "HTTP 503",
    )


async def test_the_notifiers_retry_time_is_kept(repo: SQLiteRepository, clock: Clock) -> None:
    await setup(repo, Notify(x=True))
    reset = NOW + timedelta(minutes=15)
    x = FakeNotifier("x", on_first_try(SendResult.retry(reset, "429")))
    d = dispatcher(repo, [x], clock)

    await d.drain_once()
    clock.advance(timedelta(minutes=14, seconds=59))
    assert await d.drain_once() == 0
    clock.advance(timedelta(seconds=1))
    assert await d.drain_once() == 1
    assert await statuses(repo) == {"sent": 1}


async def test_a_retry_due_now_still_waits_a_moment(repo: SQLiteRepository, clock: Clock) -> None:
    """A retry "at once" would be claimed again in the same breath and burn every attempt."""
    await setup(repo, Notify(x=True))
    x = FakeNotifier("x", lambda n: SendResult.retry(NOW - timedelta(hours=1), "stale reset"))
    d = dispatcher(repo, [x], clock)

    await d.drain_once()
    assert await d.drain_once() == 0
    assert len(x.notices) == 1


async def test_a_permanent_failure_is_never_retried(repo: SQLiteRepository, clock: Clock) -> None:
    await setup(repo, Notify(email=("me@example.com",)))
    email = FakeNotifier("email", lambda n: SendResult.failed("recipient refused: 550", 550))
    d = dispatcher(repo, [email], clock)

    await d.drain_once()
    clock.advance(timedelta(days=1))
    assert await d.drain_once() == 0
    assert len(email.notices) == 1
    [failed] = await repo.dead_letters()
    assert (failed.status, failed.recipient, failed.last_error) == (
        "failed",
        "me@example.com",
        "recipient refused: 550",
    )


async def test_a_skipped_delivery_is_done(repo: SQLiteRepository, clock: Clock) -> None:
    await setup(repo, Notify(x=True))
    x = FakeNotifier("x", lambda n: SendResult.skipped("duplicate content"))
    d = dispatcher(repo, [x], clock)

    await d.drain_once()
    clock.advance(timedelta(days=1))
    assert await d.drain_once() == 0
    assert await statuses(repo) == {"skipped": 1}
    assert await repo.dead_letters() == []


# --- one write per batch -------------------------------------------------------------------

RESULT_WRITES = ("record_results", "mark_sent", "mark_retry", "mark_failed", "mark_skipped")


def spy_on_result_writes(
    repo: SQLiteRepository, monkeypatch: pytest.MonkeyPatch, *, batch_fails: bool = False
) -> list[str]:
    """The names of the result-writing repository calls, in order; the batch write may fail."""
    calls: list[str] = []

    def spy(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if batch_fails and name == "record_results":
                raise StorageError("database is locked")
            return await method(*args, **kwargs)

        return call

    for name in RESULT_WRITES:
        monkeypatch.setattr(repo, name, spy(name, getattr(repo, name)))
    return calls


def by_recipient(notice: Notice) -> SendResult:
    """Chat 1 gets it, chat 2 is rate-limited, chat 3 is refused, chat 4 is a duplicate."""
    return {
        "1": SendResult.sent(),
        "2": SendResult(Outcome.RETRY, "HTTP 429"),
        "3": SendResult.failed("chat not found", 400),
        "4": SendResult.skipped("duplicate"),
    }[notice.recipient]


async def test_a_fanned_out_batch_is_recorded_in_one_write(
    repo: SQLiteRepository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup(repo, Notify(telegram=(1, 2, 3, 4)))
    calls = spy_on_result_writes(repo, monkeypatch)
    d = dispatcher(repo, [FakeNotifier("telegram", by_recipient)], clock)

    assert await d.drain_once() == 4
    assert calls == ["record_results"]
    assert await statuses(repo) == {"sent": 1, "pending": 1, "failed": 1, "skipped": 1}
    [failed] = await repo.dead_letters()
    assert (failed.recipient, failed.last_error) == ("3", "chat not found")
    for result in ("sent", "retry", "failed", "skipped"):
        assert d.metrics.deliveries.get(channel="telegram", result=result) == 1


async def test_a_batch_retry_dead_letters_at_max_attempts(
    repo: SQLiteRepository,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await setup(repo, Notify(webhook=True))
    calls = spy_on_result_writes(repo, monkeypatch)
    webhook = FakeNotifier("webhook", lambda n: SendResult(Outcome.RETRY, "HTTP 503"))
    d = dispatcher(repo, [webhook], clock, max_attempts=2)

    await d.drain_once()
    assert await statuses(repo) == {"pending": 1}
    clock.advance(timedelta(minutes=1))
    with caplog.at_level("WARNING", logger="restock.dispatch"):
        await d.drain_once()
    assert calls == ["record_results", "record_results"]
    assert await statuses(repo) == {"dead": 1}
    assert "dead-lettered: HTTP 503" in caplog.text
    clock.advance(timedelta(hours=1))
    assert await d.drain_once() == 0


async def test_a_failed_batch_write_records_each_result_on_its_own(
    repo: SQLiteRepository,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await setup(repo, Notify(telegram=(1, 2, 3, 4)))
    calls = spy_on_result_writes(repo, monkeypatch, batch_fails=True)
    d = dispatcher(repo, [FakeNotifier("telegram", by_recipient)], clock)

    with caplog.at_level("ERROR", logger="restock.dispatch"):
        assert await d.drain_once() == 4
    assert "recording 4 results failed" in caplog.text
    assert calls == ["record_results", "mark_sent", "mark_retry", "mark_failed", "mark_skipped"]
    assert await statuses(repo) == {"sent": 1, "pending": 1, "failed": 1, "skipped": 1}
    for result in ("sent", "retry", "failed", "skipped"):  # counted once, not twice
        assert d.metrics.deliveries.get(channel="telegram", result=result) == 1
    # Nothing stays leased: the retry comes back after its backoff, well before the lease ends.
    clock.advance(timedelta(seconds=20))
    assert await d.drain_once() == 1
    assert await statuses(repo) == {"sent": 1, "pending": 1, "failed": 1, "skipped": 1}


async def test_a_recipient_going_away_is_recorded_after_the_batch(
    repo: SQLiteRepository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup(repo, Notify(telegram=(1, 2)))

    def blocked_1(notice: Notice) -> SendResult:
        if notice.recipient == "1":
            return SendResult.failed("Forbidden: bot was blocked", 403, deactivate_recipient=True)
        return SendResult.sent()

    calls = spy_on_result_writes(repo, monkeypatch)
    d = dispatcher(repo, [FakeNotifier("telegram", blocked_1)], clock)
    await d.drain_once()
    assert calls == ["record_results", "mark_failed"]
    assert await statuses(repo) == {"sent": 1, "failed": 1}


# --- recipients that went away or moved -------------------------------------------------------


async def test_a_blocked_chat_is_deactivated_and_gets_nothing_more(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await setup(repo, Notify(telegram=(111, 222)))

    def blocked_111(notice: Notice) -> SendResult:
        if notice.recipient == "111":
            return SendResult.failed("Forbidden: bot was blocked", 403, deactivate_recipient=True)
        return SendResult.sent()

    telegram = FakeNotifier("telegram", blocked_111)
    d = dispatcher(repo, [telegram], clock)
    await d.drain_once()

    await fire(repo)  # the next restock reaches only the chat that is still there
    await d.drain_once()
    assert telegram.recipients.count("111") == 1
    assert telegram.recipients.count("222") == 2
    [failed] = await repo.dead_letters()
    assert (failed.recipient, failed.status) == ("111", "failed")


async def test_a_migrated_chat_is_followed(repo: SQLiteRepository, clock: Clock) -> None:
    await setup(repo, Notify(telegram=(-100,)))

    def migrated(notice: Notice) -> SendResult:
        if notice.recipient == "-100":
            return SendResult(Outcome.SENT, new_recipient="-1001234")
        return SendResult.sent()

    telegram = FakeNotifier("telegram", migrated)
    d = dispatcher(repo, [telegram], clock)
    await d.drain_once()
    await fire(repo)
    await d.drain_once()

    assert telegram.recipients == ["-100", "-1001234"]
    assert await statuses(repo) == {"sent": 2}


# --- quiet hours ------------------------------------------------------------------------------


async def test_quiet_hours_hold_a_delivery_until_they_end_without_spending_an_attempt(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111,)))], NOW)
    await repo.set_quiet(111, QuietHours(time(20, 0), time(7, 0), QuietMode.HOLD))
    await fire(repo)
    telegram = FakeNotifier("telegram")
    d = dispatcher(repo, [telegram], clock, max_attempts=1)

    await d.drain_once()  # 21:00 in Tokyo: quiet
    assert telegram.notices == []
    clock.now = datetime(2025, 3, 1, 21, 59, tzinfo=UTC)  # 06:59 in Tokyo
    assert await d.drain_once() == 0
    clock.now = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)  # 07:00 in Tokyo: the quiet ends
    await d.drain_once()

    # With max_attempts=1 a held try that counted would have left no attempt to send with.
    assert [(n.recipient, n.attempt) for n in telegram.notices] == [("111", 1)]
    assert await statuses(repo) == {"sent": 1}


async def test_quiet_hours_in_drop_mode_skip_the_delivery(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111, 222)))], NOW)
    await repo.set_quiet(111, QuietHours(time(20, 0), time(7, 0), QuietMode.DROP))
    await fire(repo)
    telegram = FakeNotifier("telegram")
    d = dispatcher(repo, [telegram], clock)

    await d.drain_once()
    clock.advance(timedelta(days=1))
    await d.drain_once()
    assert telegram.recipients == ["222"]
    assert await statuses(repo) == {"sent": 1, "skipped": 1}


async def test_outside_quiet_hours_a_delivery_goes_at_once(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111,)))], NOW)
    await repo.set_quiet(111, QuietHours(time(1, 0), time(6, 0), QuietMode.HOLD))
    await fire(repo)
    telegram = FakeNotifier("telegram")
    await dispatcher(repo, [telegram], clock).drain_once()
    assert telegram.recipients == ["111"]


# --- robustness -------------------------------------------------------------------------------


async def test_a_notifier_that_raises_does_not_lose_its_batch(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await setup(repo, Notify(telegram=(111, 222)))
    telegram = RaisingNotifier("telegram", failures=1)
    d = dispatcher(repo, [telegram], clock)

    await d.drain_once()
    assert await statuses(repo) == {"pending": 2}
    clock.advance(timedelta(minutes=1))
    await d.drain_once()
    assert sorted(telegram.recipients) == ["111", "111", "222", "222"]
    assert await statuses(repo) == {"sent": 2}


async def test_a_slow_channel_does_not_delay_another(repo: SQLiteRepository) -> None:
    await setup(repo, Notify(telegram=(111,), webhook=True))
    slow = GatedNotifier("telegram")
    fast = FakeNotifier("webhook")
    d = dispatcher(repo, [slow, fast], Clock())
    stop = asyncio.Event()
    running = asyncio.create_task(d.run(stop))
    try:
        await asyncio.wait_for(slow.entered.wait(), 5)
        # The telegram send is stuck; a new event still reaches the webhook.
        await fire(repo)
        d.wake()
        async with asyncio.timeout(5):
            while len(fast.notices) < 2:
                await asyncio.sleep(0.01)
        assert slow.notices == []
    finally:
        slow.gate.set()
        stop.set()
        await asyncio.wait_for(running, 5)
    # Stopping let the stuck send finish and be recorded.
    assert len(slow.notices) >= 1
    depth = await repo.outbox_depth()
    assert depth["sent"] >= 3


async def test_deliveries_of_a_dispatcher_that_died_come_back_after_the_lease(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await setup(repo, Notify(telegram=(111, 222)))
    # A dispatcher claims the deliveries, then dies before it sends or marks anything.
    claimed = await repo.claim_deliveries("dead-worker", NOW, 50, LEASE)
    assert len(claimed) == 2

    telegram = FakeNotifier("telegram")
    survivor = dispatcher(repo, [telegram], clock, owner="dispatcher-2")
    assert await survivor.drain_once() == 0  # still leased to the dead one
    clock.advance(LEASE)
    assert await survivor.drain_once() == 2
    clock.advance(timedelta(days=1))
    assert await survivor.drain_once() == 0
    assert sorted(telegram.recipients) == ["111", "222"]
    assert await statuses(repo) == {"sent": 2}


async def test_two_dispatchers_never_send_the_same_delivery(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=tuple(range(1, 41))))], NOW)
    await fire(repo)
    first, second = FakeNotifier("telegram"), FakeNotifier("telegram")
    a = dispatcher(repo, [first], clock, owner="a", batch=7)
    b = dispatcher(repo, [second], clock, owner="b", batch=7)

    for _ in range(4):
        await asyncio.gather(a.drain_once(), b.drain_once())
    sent = first.recipients + second.recipients
    assert len(sent) == 40 and len(set(sent)) == 40
    assert first.notices and second.notices


async def test_hand_off_latency_is_measured_on_the_first_attempt_only(
    repo: SQLiteRepository, clock: Clock
) -> None:
    await setup(repo, Notify(webhook=True))
    webhook = FakeNotifier("webhook", on_first_try(SendResult(Outcome.RETRY, "503")))
    clock.advance(timedelta(seconds=0.2))
    d = dispatcher(repo, [webhook], clock)
    await d.drain_once()
    clock.advance(timedelta(hours=1))
    await d.drain_once()
    assert len(webhook.notices) == 2
    assert d.metrics.handoff_seconds.count(channel="webhook") == 1  # one observation
    assert d.metrics.handoff_seconds.total(channel="webhook") == pytest.approx(0.2)


class WakeDuringClaim:
    """A repository whose first claim finds nothing while the engine writes and wakes the
    dispatcher in the middle of it (the new delivery committed just after the claim's read)."""

    def __init__(self, repo: SQLiteRepository) -> None:
        self.repo = repo
        self.dispatcher: Dispatcher | None = None
        self.claims = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.repo, name)

    async def claim_deliveries(self, *args: object, **kw: object) -> list[object]:
        self.claims += 1
        if self.claims == 1:
            assert self.dispatcher is not None
            self.dispatcher.wake()
            return []
        return await self.repo.claim_deliveries(*args, **kw)  # type: ignore[arg-type]


async def test_a_wake_up_during_a_claim_is_not_lost(repo: SQLiteRepository) -> None:
    await setup(repo, Notify(webhook=True))
    waking = WakeDuringClaim(repo)
    webhook = FakeNotifier("webhook")
    # A poll far longer than the test may run: only the wake-up can bring the send in time.
    d = dispatcher(waking, [webhook], Clock(), idle_poll=60.0)  # type: ignore[arg-type]
    waking.dispatcher = d
    stop = asyncio.Event()
    running = asyncio.create_task(d.run(stop))
    try:
        async with asyncio.timeout(5):
            while not webhook.notices:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    assert webhook.recipients == ["-"]


async def test_a_send_that_raises_mid_batch_keeps_the_results_already_sent() -> None:
    """The default batch send keeps what went out; only the notice that raised is retried."""
    from notifiers.base import Notice, Notifier, Outcome, SendResult

    class Flaky(Notifier):
        name = "flaky"

        def __init__(self) -> None:
            self.sent: list[int] = []

        async def send(self, notice: Notice) -> SendResult:
            if notice.delivery_id == 2:
                raise OverflowError("a library bug")
            self.sent.append(notice.delivery_id)
            return SendResult.sent()

    event = Event(EventKind.RESTOCK, "k", "n", Availability.IN_STOCK, NOW, id=1)
    notifier = Flaky()
    results = await notifier.send_batch([Notice(i, event, "-") for i in (1, 2, 3)])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT]
    assert notifier.sent == [1, 3]
