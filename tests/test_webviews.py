"""The web UI's read model (`storage.views.WebViews`) on every backend that serves the UI."""

from __future__ import annotations

from datetime import timedelta

from webkit import NOW, WebRepository, observe, seed

from watcher.core.model import Availability, Origin, WatchConditions
from watcher.storage.interface import Repository
from watcher.storage.postgres.repository import PostgresRepository
from watcher.storage.sqlite.repository import SQLiteRepository
from watcher.storage.views import WebViews

TARGET = "https://www.amazon.co.jp/dp/B0WEB00000"


async def seeded(repo: Repository) -> tuple[WebRepository, WebViews]:
    assert isinstance(repo, SQLiteRepository | PostgresRepository)
    await seed(repo)
    return repo, repo.web_views()


async def test_readings_start_with_the_state_held_when_the_window_opens(repo: Repository) -> None:
    _, views = await seeded(repo)
    watches = await views.watches()
    assert [w.key for w in watches] == ["box", "mug"]
    found = await views.readings([w.product_id for w in watches], NOW - timedelta(days=3))
    for watch in watches:
        readings = found[watch.product_id]
        # The reading of ten days back (held when the window opened: the daily ones since
        # read the same, so they repeat it), then the restock two hours ago.
        assert [r.at for r in readings] == [NOW - timedelta(days=10), NOW - timedelta(hours=2)]
        assert [r.state for r in readings][-2:] == [
            Availability.OUT_OF_STOCK,
            Availability.IN_STOCK,
        ]
        assert readings[-1].price == 5980
    assert await views.readings([], NOW) == {}


async def test_transitions_carry_the_last_event_before_the_window(repo: Repository) -> None:
    _, views = await seeded(repo)
    box = await views.watch("box")
    assert box is not None and box.state is Availability.IN_STOCK and box.subscriptions == 2
    assert box.last_restock_at is not None and box.reason is not None
    carried = await views.transitions([box.id], NOW - timedelta(hours=1))
    assert [(r.at, r.state) for r in carried[box.id]] == [
        (NOW - timedelta(hours=2), Availability.IN_STOCK)
    ]
    assert await views.transitions([box.id], NOW + timedelta(hours=1)) == carried


async def test_store_readings_count_each_store_and_its_unknowns(repo: Repository) -> None:
    backend, views = await seeded(repo)
    await observe(backend, NOW - timedelta(hours=1), Availability.UNKNOWN, None, False)
    # The YAML watches name no store: their readings count under "-". Per product, the restock,
    # the unknown one and the daily readings since the window opened: they repeat the one ten
    # days back, so they count as the window's part of that run (9 repeats over the 238 hours
    # to the restock, 70 of them in the window: 2.65 of the 3).
    [counted] = await views.store_readings(NOW - timedelta(days=3))
    assert (counted.store, counted.total, counted.unknown) == ("-", 9, 2)
    assert counted.unknown_share == 2 / 9
    assert await views.store_readings(NOW) == []


async def test_web_watches_are_added_paused_checked_and_removed(repo: Repository) -> None:
    _, views = await seeded(repo)
    conditions = WatchConditions(max_price=5500)
    recipients = [("console", "-"), ("webhook", "-")]
    key = await views.add_watch(TARGET, "amazon", conditions, recipients, NOW, name="New")
    again = await views.add_watch(TARGET, "amazon", conditions, recipients, NOW, name="Renamed")
    assert again == key
    added = await views.watch(key)
    assert added is not None and added.origin is Origin.WEB and added.name == "Renamed"
    assert added.subscriptions == 2 and added.conditions.max_price == 5500
    assert await views.subscribers_per_channel(added.id) == {"console": 1, "webhook": 1}

    assert await views.set_paused(key, True)
    paused = await views.watch(key)
    assert paused is not None and paused.paused
    assert await views.set_paused(key, False)

    assert await views.check_now(key, NOW - timedelta(days=400))
    due = await views.watch(key)
    assert due is not None and due.next_check_at == NOW - timedelta(days=400)

    assert not await views.remove("box", NOW)  # the YAML's, not the web's
    assert await views.remove(key, NOW)
    assert await views.watch(key) is None
    assert not await views.remove(key, NOW)
    assert await views.watch("box") is not None


async def test_hostile_keys_name_no_watch(repo: Repository) -> None:
    _, views = await seeded(repo)
    for key in ("\x00", "box\x00", "' OR 1=1 --", "web:" + "f" * 24):
        assert await views.watch(key) is None
        assert not await views.check_now(key, NOW)
        assert not await views.set_paused(key, True)
        assert not await views.remove(key, NOW)


async def test_only_dead_or_failed_deliveries_are_retried(repo: Repository) -> None:
    backend, views = await seeded(repo)
    [claimed, *_] = await backend.claim_deliveries("test", NOW, 10, timedelta(minutes=1))
    assert not await views.retry_delivery(claimed.id, NOW)  # leased, not failed
    await backend.mark_failed(claimed.id, "HTTP 400", NOW)
    assert [d.id for d in await backend.dead_letters()] == [claimed.id]
    assert await views.retry_delivery(claimed.id, NOW)
    assert await backend.dead_letters() == []
    assert not await views.retry_delivery(claimed.id, NOW)
    assert not await views.retry_delivery(10**9, NOW)
