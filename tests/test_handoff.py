"""A check's new deliveries claimed in its own transaction and handed to the dispatcher in memory.

A real database on each backend; the dispatcher with scripted notifiers and a fake clock; the whole
app against a loopback shop at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from datetime import datetime, time
from pathlib import Path

from test_dispatch import (
    LEASE,
    NOW,
    URL,
    Clock,
    FakeNotifier,
    GatedNotifier,
    dispatcher,
    restock_event,
    statuses,
    switch_watch,
)
from test_engine import IN, OUT, Lever, Recorder, eventually, fast_overrides, url_watch, watchlist

from tests import dbrows
from watcher.config.load import load_config
from watcher.core.model import Availability, Notify, Observation, QuietHours, QuietMode, Watch
from watcher.demo.shop import DemoShop, ShopProduct
from watcher.errors import StorageError
from watcher.service.app import App
from watcher.storage import open_repository
from watcher.storage.interface import (
    CheckOutcome,
    ClaimedDelivery,
    DeliveryClaim,
    RecordedCheck,
    Repository,
    WatchDecision,
)

TELEGRAM_ONLY = frozenset({"telegram"})


def claim_for(
    owner: str = "dispatcher-1",
    channels: Sequence[str] = ("telegram",),
) -> DeliveryClaim:
    return DeliveryClaim(owner, LEASE, frozenset(channels))


async def check(
    repo: Repository, claim: DeliveryClaim | None, now: datetime = NOW
) -> RecordedCheck:
    """Check the watched product once, as the engine does, with the detector firing a restock."""
    [product] = await repo.claim_due_products("engine", now, 10, LEASE)
    [stored] = await repo.load_watches(product.id)
    decision = WatchDecision(stored.id, {"phase": "fired"}, [restock_event(now)])
    observation = Observation(state=Availability.IN_STOCK, reason="test", price=49980)
    # Due again at once, so a test may check the same product again.
    outcome = CheckOutcome(next_due_at=now, lease_owner="engine", claim_for=claim)
    return await repo.record_check(product.id, observation, [decision], outcome, now)


async def leases(database: str, ids: Sequence[int]) -> dict[int, tuple[str | None, int]]:
    """Each delivery's lease owner and attempts, read straight from the database."""
    marks = ",".join("?" * len(ids))
    rows = await dbrows.fetch(
        database, f"SELECT id, lease_owner, attempts FROM deliveries WHERE id IN ({marks})", *ids
    )
    return {row["id"]: (row["lease_owner"], row["attempts"]) for row in rows}


def ids(claimed: Sequence[ClaimedDelivery]) -> list[int]:
    return [item.id for item in claimed]


# --- the claim in the check's transaction -----------------------------------------------------


async def test_a_check_leases_its_new_deliveries_to_the_dispatcher(
    repo: Repository, database: str
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111, 222), webhook=True))], NOW)
    recorded = await check(repo, claim_for(channels=("telegram", "webhook")))

    assert recorded.deliveries == 3
    assert sorted((c.channel, c.recipient) for c in recorded.claimed) == [
        ("telegram", "111"),
        ("telegram", "222"),
        ("webhook", "-"),
    ]
    [event] = recorded.events
    for item in recorded.claimed:
        assert item.event == event and item.attempts == 1 and item.lease_until == NOW + LEASE
    # The attempt is counted once: by the claim, not again by anything else in the check.
    assert set((await leases(database, ids(recorded.claimed))).values()) == {("dispatcher-1", 1)}
    assert await repo.lease_owners(NOW) == ["dispatcher-1"]


async def test_only_the_dispatchers_channels_are_claimed(repo: Repository, database: str) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111,), console=True))], NOW)
    recorded = await check(repo, claim_for(channels=TELEGRAM_ONLY))

    assert recorded.deliveries == 2
    assert [(c.channel, c.recipient) for c in recorded.claimed] == [("telegram", "111")]
    # The console delivery waits in the outbox, unclaimed, for whoever sends on that channel.
    [console] = await repo.claim_deliveries("other", NOW, 50, LEASE)
    assert (console.channel, console.attempts) == ("console", 1)


async def test_a_check_claims_exactly_what_a_claim_would_at_that_moment(
    database: str, other_database: str
) -> None:
    """Quiet hours, languages, channels: the check's claim and a claim right after it agree."""
    claimed: list[tuple[ClaimedDelivery, ...]] = []
    for url, claim in ((database, claim_for()), (other_database, None)):
        repo = await open_repository(url)
        try:
            notify = Notify(telegram=(111, 222), console=True)
            await repo.sync_yaml_watches([switch_watch(notify)], NOW)
            await repo.ensure_chat_user(111, NOW, language="en")
            await repo.set_quiet(111, QuietHours(time(20, 0), time(7, 0), QuietMode.HOLD))
            recorded = await check(repo, claim)
            if claim is None:
                recorded = replace(
                    recorded,
                    claimed=tuple(
                        await repo.claim_deliveries(
                            "dispatcher-1", NOW, 50, LEASE, channel="telegram"
                        )
                    ),
                )
            claimed.append(recorded.claimed)
        finally:
            await repo.close()

    in_check, after = claimed
    assert in_check == after
    assert [(c.recipient, c.quiet is not None) for c in in_check] == [("111", True), ("222", False)]


async def test_a_check_without_a_claim_request_claims_nothing(
    repo: Repository, database: str
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111,)))], NOW)
    recorded = await check(repo, None)
    assert recorded.deliveries == 1 and recorded.claimed == ()
    assert await repo.lease_owners(NOW) == []


async def test_a_second_dispatcher_waits_for_the_lease_then_gets_them(
    repo: Repository, database: str
) -> None:
    """The process that claimed them died: nothing is lost, they come back once the lease ends."""
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111, 222)))], NOW)
    recorded = await check(repo, claim_for("died"))
    assert len(recorded.claimed) == 2

    assert await repo.claim_deliveries("survivor", NOW + LEASE / 2, 50, LEASE) == []
    again = await repo.claim_deliveries("survivor", NOW + LEASE, 50, LEASE)
    assert ids(again) == ids(recorded.claimed)
    assert [d.attempts for d in again] == [2, 2]


async def test_checks_written_in_one_batch_each_claim_their_own(
    repo: Repository, database: str
) -> None:
    """Checks share a transaction; one that fails sends the others to be written alone, and
    what they claim is what was committed (attempts counted once)."""
    urls = [f"{URL[:-1]}{i}" for i in range(3)]
    watches = [
        Watch(key=f"w{i}", name=f"w{i}", url=u, notify=Notify(telegram=(100 + i,)))
        for i, u in enumerate(urls)
    ]
    await repo.sync_yaml_watches(watches, NOW)
    products = await repo.claim_due_products("engine", NOW, 10, LEASE)
    observation = Observation(state=Availability.IN_STOCK, reason="test", price=100)

    def write(product_id: int) -> Awaitable[RecordedCheck]:
        stored = loaded[product_id]
        fired = replace(restock_event(), watch_key=stored.watch.key)
        decision = WatchDecision(stored.id, {"phase": "fired"}, [fired])
        outcome = CheckOutcome(next_due_at=NOW + LEASE, lease_owner="engine", claim_for=claim_for())
        return repo.record_check(product_id, observation, [decision], outcome, NOW)

    loaded = {p.id: (await repo.load_watches(p.id))[0] for p in products}
    missing = max(loaded) + 1000
    results = await asyncio.gather(
        write(products[0].id),
        repo.record_check(missing, observation, [], CheckOutcome(next_due_at=NOW), NOW),
        write(products[1].id),
        write(products[2].id),
        return_exceptions=True,
    )
    assert isinstance(results[1], StorageError)
    good = [r for r in results if isinstance(r, RecordedCheck)]
    assert [[c.recipient for c in r.claimed] for r in good] == [["100"], ["101"], ["102"]]
    every = [i for r in good for i in ids(r.claimed)]
    assert set((await leases(database, every)).values()) == {("dispatcher-1", 1)}


# --- the dispatcher ---------------------------------------------------------------------------


class CountingClaims:
    """The repository, counting the dispatcher's claims from the outbox."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.claims = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.repo, name)

    async def claim_deliveries(self, *args: object, **kw: object) -> list[ClaimedDelivery]:
        self.claims += 1
        return await self.repo.claim_deliveries(*args, **kw)  # type: ignore[arg-type]


async def test_handed_deliveries_are_sent_without_a_claim_from_the_outbox(
    repo: Repository,
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111, 222)))], NOW)
    counting = CountingClaims(repo)
    telegram = FakeNotifier("telegram")
    # A poll far longer than the test: only the hand-over can bring the send in time.
    d = dispatcher(counting, [telegram], Clock(), idle_poll=60.0)  # type: ignore[arg-type]
    stop = asyncio.Event()
    running = asyncio.create_task(d.run(stop))
    try:
        await eventually(lambda: counting.claims == 1, what="the first look in the outbox")
        recorded = await check(repo, d.claim_request())
        d.hand(recorded.claimed)
        await eventually(lambda: len(telegram.notices) == 2, timeout=5, what="the sends")
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    assert counting.claims == 1
    assert sorted((n.recipient, n.attempt) for n in telegram.notices) == [("111", 1), ("222", 1)]
    assert await statuses(repo) == {"sent": 2}


async def test_a_handed_delivery_in_quiet_hours_is_held_without_spending_an_attempt(
    repo: Repository,
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111, 222)))], NOW)
    await repo.set_quiet(111, QuietHours(time(20, 0), time(7, 0), QuietMode.HOLD))
    telegram = FakeNotifier("telegram")
    clock = Clock()
    d = dispatcher(repo, [telegram], clock, max_attempts=1)
    recorded = await check(repo, d.claim_request())
    d.hand(recorded.claimed)

    assert await d.drain_once() == 2  # both handed; 111 is in its quiet hours (21:00 in Tokyo)
    assert telegram.recipients == ["222"]
    assert await statuses(repo) == {"pending": 1, "sent": 1}
    clock.now = datetime(2025, 3, 1, 22, 0, tzinfo=NOW.tzinfo)  # 07:00 in Tokyo
    await d.drain_once()
    # With max_attempts=1 a held try that counted would have left no attempt to send with.
    assert [(n.recipient, n.attempt) for n in telegram.notices] == [("222", 1), ("111", 1)]
    assert await statuses(repo) == {"sent": 2}


async def test_a_handed_delivery_that_outwaited_its_lease_is_left_to_the_outbox(
    repo: Repository,
) -> None:
    """Its lease ran out in memory, so another dispatcher may hold it now: it is not sent."""
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111,)))], NOW)
    telegram = FakeNotifier("telegram")
    clock = Clock()
    d = dispatcher(repo, [telegram], clock)
    recorded = await check(repo, d.claim_request())
    d.hand(recorded.claimed)
    clock.advance(d.settings.lease)
    other = await repo.claim_deliveries("dispatcher-2", clock.now, 50, LEASE)
    assert ids(other) == ids(recorded.claimed)

    assert await d.drain_once() == 0
    assert telegram.notices == []


async def test_handed_deliveries_not_yet_sent_are_released_on_stop(
    repo: Repository, database: str
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111,)))], NOW)
    telegram = GatedNotifier("telegram")
    d = dispatcher(repo, [telegram], Clock(), idle_poll=60.0)
    stop = asyncio.Event()
    running = asyncio.create_task(d.run(stop))
    try:
        first = await check(repo, d.claim_request())
        d.hand(first.claimed)
        await asyncio.wait_for(telegram.entered.wait(), 5)  # its send is stuck
        second = await check(repo, d.claim_request())
        d.hand(second.claimed)  # waits behind the stuck send
        stop.set()
    finally:
        telegram.gate.set()
        await asyncio.wait_for(running, 5)

    assert [n.delivery_id for n in telegram.notices] == ids(first.claimed)
    # Given back at once, its attempt uncounted: another dispatcher need not wait for the lease.
    assert await leases(database, ids(second.claimed)) == {second.claimed[0].id: (None, 0)}
    [again] = await repo.claim_deliveries("dispatcher-2", NOW, 50, LEASE)
    assert (again.id, again.attempts) == (second.claimed[0].id, 1)


async def test_a_removed_channels_handed_deliveries_are_released(
    repo: Repository, database: str
) -> None:
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(111,), webhook=True))], NOW)
    telegram, webhook = FakeNotifier("telegram"), GatedNotifier("webhook")
    d = dispatcher(repo, [telegram, webhook], Clock(), idle_poll=60.0)
    stop = asyncio.Event()
    running = asyncio.create_task(d.run(stop))
    try:
        before_reload = d.claim_request()
        first = await check(repo, before_reload)
        d.hand(first.claimed)
        await asyncio.wait_for(webhook.entered.wait(), 5)  # the webhook send is stuck
        queued = await check(repo, before_reload)
        d.hand(queued.claimed)  # its webhook delivery waits behind the stuck send

        d.replace_notifiers({"telegram": telegram})  # the reload removes the webhook
        assert d.claim_request().channels == TELEGRAM_ONLY
        # A check that asked before the reload hands over a delivery no worker will send.
        late = await check(repo, before_reload)
        d.hand(late.claimed)

        released = [c.id for r in (queued, late) for c in r.claimed if c.channel == "webhook"]

        async def given_back() -> bool:
            return set((await leases(database, released)).values()) == {(None, 0)}

        await eventually(
            given_back,
            timeout=5,
            what="the webhook deliveries given back",
        )
        await eventually(lambda: len(telegram.notices) == 3, timeout=5, what="telegram sends")
    finally:
        webhook.gate.set()
        stop.set()
        await asyncio.wait_for(running, 5)
    # Pending for the channel's return, like the rest of a removed channel's deliveries.
    waiting = await repo.claim_deliveries("later", NOW, 50, LEASE, channel="webhook")
    assert sorted(ids(waiting)) == sorted(released)


async def test_a_stream_of_handed_deliveries_does_not_starve_the_outbox(
    repo: Repository,
) -> None:
    """Deliveries waiting in the outbox (retries, another process's) take turns with new ones."""
    await repo.sync_yaml_watches([switch_watch(Notify(telegram=(1, 2, 3, 4, 5)))], NOW)
    waiting = await check(repo, None)  # written without a claim: they wait in the outbox
    telegram = FakeNotifier("telegram")
    d = dispatcher(repo, [telegram], Clock(), idle_poll=60.0, batch=1)
    fresh = await check(repo, d.claim_request())
    d.hand(fresh.claimed)
    stop = asyncio.Event()
    running = asyncio.create_task(d.run(stop))
    try:
        await eventually(lambda: len(telegram.notices) == 10, timeout=5, what="every send")
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    [old], [new] = waiting.events, fresh.events
    assert [n.event.id for n in telegram.notices[:4]] == [new.id, old.id, new.id, old.id]


async def test_the_claim_request_follows_the_dispatchers_channels(repo: Repository) -> None:
    telegram, console = FakeNotifier("telegram"), FakeNotifier("console")
    d = dispatcher(repo, [telegram], Clock(), owner="me", lease=LEASE)
    assert d.claim_request() == DeliveryClaim("me", LEASE, TELEGRAM_ONLY)
    d.replace_notifiers({"telegram": telegram, "console": console})
    assert d.claim_request().channels == {"telegram", "console"}


# --- the whole app ----------------------------------------------------------------------------


async def test_the_app_hands_a_restock_to_its_notifier_claimed_by_the_check(
    tmp_path: Path, database: str
) -> None:
    lever = Lever(OUT)
    shop = DemoShop()
    shop.add(ShopProduct("box", "箱", 5400, lever))
    await shop.start()
    path = tmp_path / "w.yaml"
    path.write_text(watchlist(database, [url_watch("box", shop.url("box"))]))
    config = load_config(path)
    repo = await open_repository(config.settings.database)
    claimed: list[int] = []
    record_check = repo.record_check

    async def spying(*args: object, **kw: object) -> RecordedCheck:
        recorded = await record_check(*args, **kw)  # type: ignore[arg-type]
        claimed.extend(ids(recorded.claimed))
        return recorded

    repo.record_check = spying  # type: ignore[method-assign]
    recorder = Recorder()
    stop = asyncio.Event()
    app = App(config, repo, fast_overrides(recorder, stop))
    await app.sync_watches(config)
    task = asyncio.create_task(app.run(stop))
    try:
        await eventually(lambda: shop.products["box"].requests >= 1, what="the baseline")
        lever.shows = IN
        await eventually(lambda: bool(recorder.notices), what="the restock message")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await shop.stop()
    try:
        [notice] = recorder.notices
        assert claimed == [notice.delivery_id] and notice.attempt == 1
        assert (await repo.outbox_depth())["sent"] == 1
    finally:
        await repo.close()
