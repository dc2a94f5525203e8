"""The SQLite repository: schema, watchlist sync, product claims, chat subscriptions, status."""

from __future__ import annotations

import asyncio
import sqlite3
import tomllib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import aiosqlite
import pytest

from tests import dbrows
from watcher import storage
from watcher.core.model import (
    Availability,
    ConditionFilter,
    Event,
    EventKind,
    FetchFacts,
    Notify,
    Observation,
    Origin,
    QuietHours,
    QuietMode,
    TextRules,
    Watch,
    WatchConditions,
)
from watcher.errors import StorageError
from watcher.storage import open_repository
from watcher.storage.interface import CheckOutcome, HostState, WatchDecision
from watcher.storage.roles import checks as shared_checks
from watcher.storage.sqlite.connection import SQLiteConnector
from watcher.storage.sqlite.migrations import LATEST_VERSION
from watcher.storage.sqlite.repository import SQLiteRepository

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
SWITCH = "https://www.amazon.co.jp/dp/B0DX000000"
MUG = "https://example.base.shop/items/12345678"
CARDS = "jan:4521329400006"


def yaml_watch(key: str, url: str | None = SWITCH, **kw: object) -> Watch:
    fields: dict[str, object] = {"key": key, "name": key.title(), "url": url}
    fields.update(kw)
    return Watch(**fields)  # type: ignore[arg-type]


def observation(state: Availability = Availability.IN_STOCK, **kw: object) -> Observation:
    facts = FetchFacts(status=200, bytes=1000, elapsed_ms=12.5)
    return Observation(state=state, reason="test", fetch=facts, **kw)  # type: ignore[arg-type]


def restock(watch: Watch, at: datetime = NOW, price: int = 49980) -> Event:
    return Event(EventKind.RESTOCK, watch.key, watch.name, Availability.IN_STOCK, at, price=price)


async def product_of(repo: SQLiteRepository, target: str) -> int:
    return await repo.ensure_product(target, None, NOW)


async def check(
    repo: SQLiteRepository,
    target: str,
    decisions: list[WatchDecision] | None = None,
    obs: Observation | None = None,
    now: datetime = NOW,
    next_due: timedelta = timedelta(minutes=5),
) -> None:
    product_id = await product_of(repo, target)
    outcome = CheckOutcome(next_due_at=now + next_due, etag='"v1"')
    await repo.record_check(product_id, obs or observation(), decisions or [], outcome, now)


def schema_versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY 1")]


# --- opening and migrations ---------------------------------------------------------------------


# SQLite only: the file's own schema versions and journal mode.
async def test_migrations_create_the_schema_and_reopening_changes_nothing(db_path: Path) -> None:
    repo = await open_repository(db_path)
    await repo.close()
    await repo.close()  # closing twice is harmless
    assert schema_versions(db_path) == list(range(1, LATEST_VERSION + 1))

    again = await open_repository(f"sqlite:///{db_path}")
    await again.ensure_product(SWITCH, None, NOW)
    await again.close()
    assert schema_versions(db_path) == list(range(1, LATEST_VERSION + 1))
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT target FROM products").fetchall() == [(SWITCH,)]


async def test_a_database_newer_than_the_code_is_refused(database: str) -> None:
    await (await open_repository(database)).close()
    await dbrows.execute(
        database,
        "INSERT INTO schema_version (version, applied_at)"
        " SELECT MAX(version) + 1, 0 FROM schema_version",
    )
    with pytest.raises(StorageError, match=r"schema version \d+.*upgrade restock-watcher"):
        await open_repository(database)


async def test_unsupported_urls_and_unreadable_files_are_storage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StorageError, match="unsupported database URL scheme 'mysql'"):
        await open_repository("mysql://localhost/restock")
    # A scheme with a registered backend that this build does not have: said plainly.
    monkeypatch.setitem(storage.BACKENDS, "cockroachdb", "watcher.storage.cockroachdb.repository")
    with pytest.raises(StorageError, match="cockroachdb database backend is not part of"):
        await open_repository("cockroachdb://localhost/restock")
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError):
        await open_repository(junk)


async def test_naive_datetimes_are_refused(repo: SQLiteRepository) -> None:
    with pytest.raises(ValueError, match="naive"):
        await repo.claim_due_products("w1", datetime(2025, 1, 1), 10, LEASE)


# --- the watchlist ------------------------------------------------------------------------------


async def test_sync_keeps_detector_state_across_reloads_and_restarts(database: str) -> None:
    switch, mug = yaml_watch("switch"), yaml_watch("mug", MUG, once=True)
    repo = await open_repository(database)
    await repo.sync_yaml_watches([switch, mug], NOW)
    for target in (SWITCH, MUG):
        [stored] = await repo.load_watches(await product_of(repo, target))
        await check(repo, target, [WatchDecision(stored.id, {"phase": "armed", "seen": 3})])
    await repo.close()

    repo = await open_repository(database)
    renamed = yaml_watch("switch", name="Switch 2 (renamed)", interval=timedelta(minutes=1))
    moved = yaml_watch("mug", "https://example.base.shop/items/999")
    await repo.sync_yaml_watches([renamed, moved], NOW)

    [kept] = await repo.load_watches(await product_of(repo, SWITCH))
    assert kept.state == {"phase": "armed", "seen": 3}
    assert kept.watch.name == "Switch 2 (renamed)"
    assert kept.watch.interval == timedelta(minutes=1)
    [fresh] = await repo.load_watches(await product_of(repo, moved.target))
    assert fresh.watch.key == "mug" and fresh.state is None
    assert await repo.load_watches(await product_of(repo, MUG)) == []
    await repo.close()


async def test_watches_removed_from_yaml_become_inactive_not_deleted(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([yaml_watch("switch"), yaml_watch("mug", MUG)], NOW)
    await repo.sync_yaml_watches([yaml_watch("switch")], NOW)

    assert [s.key for s in await repo.watch_statuses()] == ["switch"]
    history = await repo.history("mug")
    assert history is not None and not history.status.active
    assert history.status.next_check_at is None  # its product is no longer polled
    assert [p.target for p in await repo.claim_due_products("w", NOW, 10, LEASE)] == [SWITCH]

    await repo.sync_yaml_watches([yaml_watch("switch"), yaml_watch("mug", MUG)], NOW)
    assert [s.key for s in await repo.watch_statuses()] == ["switch", "mug"]


async def test_stored_watches_round_trip_the_model(repo: SQLiteRepository) -> None:
    conditions = WatchConditions(
        max_price=6000,
        condition=ConditionFilter.NEW,
        exclude_sellers=("転売屋",),
        buyable=frozenset({Availability.IN_STOCK, Availability.PREORDER}),
    )
    rules = TextRules(selector="#stock", phrases=(("在庫あり", Availability.IN_STOCK),))
    watch = Watch(
        key="cards",
        name="Pokémon card box",
        jan="4521329400006",
        stores=("rakuten", "yahoo_shopping"),
        conditions=conditions,
        notify_on_first=True,
        rules=rules,
    )
    await repo.sync_yaml_watches([watch], NOW)
    [stored] = await repo.load_watches(await product_of(repo, CARDS))
    assert stored.origin is Origin.YAML
    assert stored.watch == watch  # notify lives in subscriptions; the default compares equal


async def test_first_due_spreads_new_products(repo: SQLiteRepository) -> None:
    offsets = {SWITCH: timedelta(seconds=30), MUG: timedelta(seconds=90)}
    await repo.sync_yaml_watches(
        [yaml_watch("switch"), yaml_watch("mug", MUG)], NOW, first_due=lambda t: NOW + offsets[t]
    )
    assert await repo.claim_due_products("w", NOW, 10, LEASE) == []
    [due] = await repo.claim_due_products("w", NOW + timedelta(seconds=60), 10, LEASE)
    assert due.target == SWITCH and due.due_at == NOW + timedelta(seconds=30)


# --- claims and leases --------------------------------------------------------------------------


async def test_claims_follow_priority_then_leases_expire(repo: SQLiteRepository) -> None:
    crowd = Notify(telegram=(1, 2, 3), console=True)
    await repo.sync_yaml_watches(
        [
            yaml_watch("mug", MUG),
            yaml_watch("switch", notify=crowd),
            yaml_watch("cards", None, jan="4521329400006", notify=Notify(email=("a@example.com",))),
        ],
        NOW,
    )
    first = await repo.claim_due_products("w1", NOW, 2, LEASE)
    assert [(p.target, p.subscribers) for p in first] == [(SWITCH, 4), (CARDS, 1)]
    assert all(p.lease_until == NOW + LEASE for p in first)
    [last] = await repo.claim_due_products("w2", NOW, 5, LEASE)
    assert last.target == MUG
    assert await repo.claim_due_products("w2", NOW + LEASE - timedelta(seconds=1), 5, LEASE) == []
    expired = await repo.claim_due_products("w2", NOW + LEASE, 5, LEASE)
    assert len(expired) == 3


async def test_a_checked_product_is_due_again_at_its_next_time(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([yaml_watch("switch")], NOW)
    [due] = await repo.claim_due_products("w1", NOW, 5, LEASE)
    await check(repo, SWITCH, next_due=timedelta(minutes=5))
    assert await repo.claim_due_products("w1", NOW + timedelta(minutes=4), 5, LEASE) == []
    [again] = await repo.claim_due_products("w1", NOW + timedelta(minutes=5), 5, LEASE)
    assert again.id == due.id and again.etag == '"v1"'
    assert again.last_state is Availability.IN_STOCK and again.last_checked_at == NOW


async def test_release_product_and_release_leases(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([yaml_watch("switch"), yaml_watch("mug", MUG)], NOW)
    claimed = await repo.claim_due_products("w1", NOW, 5, LEASE)
    await repo.release_product(claimed[0].id, NOW + timedelta(seconds=30))
    await repo.release_leases("w1")
    [free] = await repo.claim_due_products("w2", NOW, 5, LEASE)
    assert free.id == claimed[1].id
    [later] = await repo.claim_due_products("w2", NOW + timedelta(seconds=30), 5, LEASE)
    assert later.id == claimed[0].id


async def test_two_repositories_on_one_file_never_claim_the_same_product(database: str) -> None:
    first, second = await open_repository(database), await open_repository(database)
    try:
        watches = [yaml_watch(f"w{i}", f"https://shop.example/items/{i}") for i in range(150)]
        await first.sync_yaml_watches(watches, NOW)

        async def drain(repo: SQLiteRepository, owner: str) -> list[int]:
            taken: list[int] = []
            while batch := await repo.claim_due_products(owner, NOW, 7, LEASE):
                taken += [p.id for p in batch]
                await asyncio.sleep(0)
            return taken

        results = await asyncio.gather(
            drain(first, "a"), drain(second, "b"), drain(first, "c"), drain(second, "d")
        )
    finally:
        await first.close()
        await second.close()
    everything = [pid for taken in results for pid in taken]
    assert len(everything) == len(set(everything)) == 150
    assert sum(1 for taken in results if taken) >= 2  # both really competed


# --- chat subscriptions -------------------------------------------------------------------------


async def test_chat_subscriptions_reuse_the_product_and_identical_watches(
    repo: SQLiteRepository,
) -> None:
    await repo.sync_yaml_watches([yaml_watch("switch")], NOW)
    under_50k = WatchConditions(max_price=50000)
    a = await repo.add_chat_subscription(1, SWITCH, "amazon_jp", under_50k, NOW, name="Switch 2")
    b = await repo.add_chat_subscription(2, SWITCH, None, WatchConditions(max_price=50000), NOW)
    c = await repo.add_chat_subscription(3, SWITCH, None, WatchConditions(max_price=45000), NOW)

    assert a.watch_id == b.watch_id != c.watch_id
    assert a.origin is Origin.CHAT and a.one_shot and a.recipient == "1"
    assert a.watch_name == "Switch 2" and a.conditions == under_50k
    product_id = await product_of(repo, SWITCH)
    watches = await repo.load_watches(product_id)
    assert sorted(w.origin for w in watches) == [Origin.CHAT, Origin.CHAT, Origin.YAML]
    assert {w.product_id for w in watches} == {product_id}
    [due] = await repo.claim_due_products("w", NOW, 5, LEASE)
    assert due.id == product_id and due.subscribers == 3 and due.store == "amazon_jp"


async def test_deep_link_subscribes_to_an_operator_watch(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([yaml_watch("switch")], NOW)
    sub = await repo.subscribe_to_watch(7, "switch", NOW, one_shot=False)
    assert sub is not None and sub.watch_key == "switch" and not sub.one_shot
    assert await repo.subscribe_to_watch(7, "no-such-watch", NOW) is None
    await repo.sync_yaml_watches([yaml_watch("switch")], NOW)  # a reload keeps chat subscriptions
    assert [s.id for s in await repo.list_subscriptions(7)] == [sub.id]


async def test_quota_counts_active_subscriptions(repo: SQLiteRepository) -> None:
    first = await repo.add_chat_subscription(5, SWITCH, None, WatchConditions(), NOW)
    await repo.add_chat_subscription(5, MUG, None, WatchConditions(), NOW)
    await repo.add_chat_subscription(5, MUG, None, WatchConditions(), NOW, one_shot=False)
    await repo.add_chat_subscription(6, MUG, None, WatchConditions(), NOW)
    assert await repo.count_active(5) == 2  # subscribing twice reactivates, not duplicates

    assert await repo.set_paused(first.id, 5, True)
    assert await repo.count_active(5) == 2  # paused subscriptions still hold a place
    assert await repo.remove_subscription(first.id, 5, NOW)
    assert await repo.count_active(5) == 1
    assert not await repo.remove_subscription(first.id, 5, NOW)


async def test_subscriptions_belong_to_their_chat(repo: SQLiteRepository) -> None:
    sub = await repo.add_chat_subscription(5, SWITCH, None, WatchConditions(), NOW)
    assert not await repo.set_paused(sub.id, 6, True)
    assert not await repo.remove_subscription(sub.id, 6, NOW)
    assert await repo.set_paused(sub.id, 5, True)
    [listed] = await repo.list_subscriptions(5)
    assert listed.paused and listed.active
    assert await repo.list_subscriptions(6) == []


async def test_a_chat_watch_without_subscribers_stops_being_polled(repo: SQLiteRepository) -> None:
    sub = await repo.add_chat_subscription(5, MUG, None, WatchConditions(), NOW)
    [stored] = await repo.load_watches(await product_of(repo, MUG))
    await check(repo, MUG, [WatchDecision(stored.id, {"phase": "armed"})])
    await repo.remove_subscription(sub.id, 5, NOW)
    assert await repo.claim_due_products("w", NOW + timedelta(hours=1), 5, LEASE) == []

    again = await repo.add_chat_subscription(8, MUG, None, WatchConditions(), NOW)
    assert again.watch_id == sub.watch_id
    [revived] = await repo.load_watches(await product_of(repo, MUG))
    assert revived.state is None  # a revived watch starts from a fresh baseline


async def test_stop_deactivates_a_chat_and_quiet_hours_follow_it(repo: SQLiteRepository) -> None:
    await repo.ensure_chat_user(5, NOW, user_id=50, language="ja")
    await repo.add_chat_subscription(5, SWITCH, None, WatchConditions(), NOW)
    quiet = QuietHours(time(23, 0), time(7, 0), QuietMode.DROP)
    await repo.set_quiet(5, quiet)
    later = await repo.add_chat_subscription(5, MUG, None, WatchConditions(), NOW)
    assert later.quiet == quiet and later.language == "ja"
    assert [s.quiet for s in await repo.list_subscriptions(5)] == [quiet, quiet]
    assert await repo.chat_ids() == [5]

    assert await repo.deactivate_chat(5, NOW) == 2
    assert await repo.list_subscriptions(5) == []
    assert await repo.chat_ids() == []
    user = await repo.ensure_chat_user(5, NOW)
    assert user.language == "ja" and user.user_id == 50 and user.quiet == quiet


# --- status, history, stats, hosts --------------------------------------------------------------


async def test_history_is_newest_first_and_observations_are_pruned(
    repo: SQLiteRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_checks, "OBSERVATIONS_KEPT", 3)
    monkeypatch.setattr(shared_checks, "PRUNE_EVERY", 5)
    watch = yaml_watch("switch")
    await repo.sync_yaml_watches([watch], NOW)
    [stored] = await repo.load_watches(await product_of(repo, SWITCH))
    for minute, price in enumerate([100, 90, 80, 70, 60]):
        at = NOW + timedelta(minutes=minute)
        decision = WatchDecision(stored.id, {"n": minute}, [restock(watch, at, price)])
        await check(repo, SWITCH, [decision], observation(price=price), now=at)

    history = await repo.history("switch", limit=10)
    assert history is not None
    assert [o.price for o in history.observations] == [60, 70, 80]
    assert history.observations[0].at == NOW + timedelta(minutes=4)
    assert history.observations[0].status == 200 and history.observations[0].ms == 12.5
    assert [e.price for e in history.events] == [60, 70, 80, 90, 100]
    [status] = await repo.watch_statuses(events_per_watch=2)
    assert [e.price for e in status.last_events] == [60, 70]
    assert status.state == {"n": 4} and status.last_price == 60
    assert status.next_check_at == NOW + timedelta(minutes=9)
    assert await repo.history("unknown") is None


async def test_restock_times_are_recorded_per_product_and_store(repo: SQLiteRepository) -> None:
    watch = yaml_watch("switch", store="amazon_jp")
    await repo.sync_yaml_watches([watch], NOW)
    [stored] = await repo.load_watches(await product_of(repo, SWITCH))
    await check(repo, SWITCH, [WatchDecision(stored.id, {}, [restock(watch)])])
    await repo.record_restock(await product_of(repo, SWITCH), None, NOW + timedelta(hours=3))
    product_id = await product_of(repo, SWITCH)
    times = await repo.restock_times(product_id=product_id)
    assert times == [NOW + timedelta(hours=3), NOW]
    assert await repo.restock_times(store="amazon_jp") == times
    assert await repo.restock_times(store="rakuten") == []


async def test_stats_count_users_watches_checks_blocks_and_demand(repo: SQLiteRepository) -> None:
    await repo.sync_yaml_watches([yaml_watch("switch", store="amazon_jp")], NOW)
    for chat in (1, 2, 3):
        await repo.add_chat_subscription(chat, MUG, "base", WatchConditions(), NOW)
    await repo.add_chat_subscription(1, SWITCH, None, WatchConditions(), NOW)
    await repo.deactivate_chat(3, NOW, blocked=True)
    await check(repo, SWITCH)
    blocked = Observation.unknown("blocked:captcha", blocked=True)
    await check(repo, SWITCH, obs=blocked)
    await check(repo, MUG, obs=observation(title="Handmade mug"))

    stats = await repo.stats(top=5)
    assert (stats.users, stats.active_users, stats.blocked_users) == (3, 2, 1)
    assert dict(stats.watches) == {"yaml": 1, "chat": 2}
    assert stats.subscriptions == 3
    assert dict(stats.checks_by_store) == {"amazon_jp": 2, "base": 1}
    assert dict(stats.blocks_by_store) == {"amazon_jp": 1, "base": 0}
    assert [(p.target, p.title, p.waiting) for p in stats.most_awaited] == [
        (MUG, "Handmade mug", 2),
        (SWITCH, None, 1),
    ]


async def test_host_states_are_shared_between_workers(database: str) -> None:
    first, second = await open_repository(database), await open_repository(database)
    try:
        backoff = NOW + timedelta(minutes=10)
        await first.save_host_state(HostState("item.rakuten.co.jp", next_allowed_at=NOW))
        await second.save_host_state(
            HostState(
                "www.amazon.co.jp",
                backoff_until=backoff,
                consecutive_blocks=2,
                last_reason="captcha",
            )
        )
        states = {s.host: s for s in await first.host_states()}
        amazon, rakuten = states["www.amazon.co.jp"], states["item.rakuten.co.jp"]
        assert (amazon.consecutive_blocks, amazon.last_reason) == (2, "captcha")
        assert amazon.backoff_until == backoff and amazon.next_allowed_at is None
        assert rakuten.next_allowed_at == NOW and rakuten.backoff_until is None
    finally:
        await first.close()
        await second.close()


async def test_a_yaml_chat_that_stops_stays_stopped_and_deep_links_keep_it_standing(
    repo: SQLiteRepository,
) -> None:
    watch = yaml_watch("switch", notify=Notify(telegram=(1001,)))
    await repo.sync_yaml_watches([watch], NOW)

    # Tapping the operator's shared link from a chat the YAML lists keeps it a standing one.
    sub = await repo.subscribe_to_watch(1001, "switch", NOW, one_shot=True)
    assert sub is not None and sub.origin is Origin.YAML and not sub.one_shot

    # /stop is the chat's own word: a reload of the watchlist does not bring it back.
    assert await repo.deactivate_chat(1001, NOW) == 1
    await repo.sync_yaml_watches([watch], NOW + timedelta(minutes=1))
    assert await repo.list_subscriptions(1001) == []

    # Asking again does.
    again = await repo.subscribe_to_watch(1001, "switch", NOW + timedelta(minutes=2))
    assert again is not None and again.active
    await repo.sync_yaml_watches([watch], NOW + timedelta(minutes=3))
    assert [s.id for s in await repo.list_subscriptions(1001)] == [again.id]


async def test_an_aiosqlite_without_what_the_backend_runs_transactions_through_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    (wanted,) = [d for d in project["project"]["dependencies"] if d.startswith("aiosqlite")]
    async with aiosqlite.connect(tmp_path / "x.sqlite3") as conn:
        SQLiteConnector(conn, "x.sqlite3")  # the installed release has what it needs
        with monkeypatch.context() as patched:
            patched.delattr(aiosqlite.Connection, "_execute")
            with pytest.raises(StorageError) as refused:
                SQLiteConnector(conn, "x.sqlite3")
    assert "has no _execute" in str(refused.value)
    assert f"pip install '{wanted}'" in str(refused.value)
