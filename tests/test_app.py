"""The composition root: watchlist reloads while running, and taking over a dead worker's leases."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from httpserver import LoopbackServer, Reply
from test_engine import (
    IN,
    OUT,
    Harness,
    Lever,
    Start,
    eventually,
    fast_overrides,
    start,
    url_watch,
    watchlist,
)

from watcher import miniserver
from watcher.app import (
    RELOAD_POLL_SECONDS,
    App,
    Overrides,
    fast_transport,
    is_dead_local_worker,
    release_dead_local_leases,
    tuned,
)
from watcher.config import load_config
from watcher.db import open_repository
from watcher.demo_shop import DemoShop, ShopProduct
from watcher.engine import EngineSettings
from watcher.fetch import Fetcher, build_client
from watcher.model import FetchPlan, Watch

__all__ = ["start"]  # the fixture, shared with the engine tests

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def rewrite(h: Harness, watches: list[str]) -> None:
    database = h.app.config.settings.database
    h.config_path.write_text(watchlist(Path(database), watches))


async def statuses(h: Harness) -> dict[str, dict[str, object]]:
    return {w.key: dict(w.state or {}) for w in await h.repo.watch_statuses()}


async def test_a_reload_adds_a_watch_and_keeps_each_watch_state(start: Start) -> None:
    box, mug = Lever(OUT), Lever(OUT)
    shop = await start.shop(box=box, mug=mug)
    h = await start([url_watch("box", shop.url("box"))], shop=shop)
    await eventually(lambda: h.requests("box") >= 1, what="the baseline")
    box.shows = IN
    await eventually(lambda: bool(h.recorder.notices), what="the restock")
    before = (await statuses(h))["box"]
    assert before["phase"] == "buyable" and before["announced"] is True

    rewrite(h, [url_watch("box", shop.url("box")), url_watch("mug", shop.url("mug"))])
    await eventually(lambda: h.requests("mug") >= 1, what="the new watch's first check")
    seen = h.requests("box")
    await eventually(lambda: h.requests("box") >= seen + 1, what="another check of the box")

    after = await statuses(h)
    assert set(after) == {"box", "mug"}
    # Still the same watch: told about this restock, so no second message and no new baseline.
    assert after["box"]["announced"] is True
    assert after["box"]["last_restock_at"] == before["last_restock_at"]
    assert len(h.recorder.notices) == 1
    assert [w.key for w in h.app.config.watches] == ["box", "mug"]


async def test_a_broken_edit_keeps_the_running_watchlist_and_says_why(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    shop = await start.shop(box=Lever(OUT))
    h = await start([url_watch("box", shop.url("box"))], shop=shop)
    await eventually(lambda: h.requests("box") >= 1, what="the first check")
    caplog.set_level(logging.ERROR, logger="restock.app")

    h.config_path.write_text(h.config_path.read_text() + "  - name: broken\n    max_price: lots\n")
    await eventually(lambda: bool(caplog.records), what="the reload error")

    [record] = caplog.records
    message = record.getMessage()
    assert "not reloaded, keeping the running one" in message
    assert str(h.config_path) in message and "max_price" in message
    seen = h.requests("box")
    await eventually(lambda: h.requests("box") >= seen + 1, what="checks going on")
    assert set(await statuses(h)) == {"box"}
    assert [w.key for w in h.app.config.watches] == ["box"]


def test_tuned_timings_replace_only_what_is_given() -> None:
    base = EngineSettings()
    fast = tuned(base, Overrides(idle_poll=0.05, recheck_delay=(timedelta(0), timedelta(1))))
    assert fast.idle_poll == 0.05
    assert fast.recheck_delay == (timedelta(0), timedelta(1))
    assert fast.error_backoff_base == base.error_backoff_base
    assert Overrides().reload_poll == RELOAD_POLL_SECONDS


def test_a_dead_local_worker_is_recognised() -> None:
    host = socket.gethostname()
    me = os.getpid()
    assert not is_dead_local_worker(f"{host}:1:abcd1234", host=host, pid=me)  # pid 1 lives
    assert is_dead_local_worker(f"{host}:{me}:abcd1234", host=host, pid=me)  # an earlier me
    assert is_dead_local_worker(f"{host}:{dead_pid()}:abcd1234", host=host, pid=me)
    assert not is_dead_local_worker(f"elsewhere:{dead_pid()}:abcd1234", host=host, pid=me)
    assert not is_dead_local_worker("not-a-worker-id", host=host, pid=me)


def dead_pid() -> int:
    """A pid with no process behind it."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


async def test_the_leases_of_a_dead_local_worker_are_released(tmp_path: Path) -> None:
    repo = await open_repository(tmp_path / "restock.sqlite3")
    try:
        watches = [Watch(key=k, name=k, url=f"https://shop.example/{k}") for k in ("a", "b")]
        await repo.sync_yaml_watches(watches, NOW)
        host = socket.gethostname()
        dead = f"{host}:{dead_pid()}:deadbeef"
        alive = "other-machine:123:cafe0001"
        assert len(await repo.claim_due_products(dead, NOW, 1, timedelta(minutes=2))) == 1
        assert len(await repo.claim_due_products(alive, NOW, 1, timedelta(minutes=2))) == 1
        assert await repo.lease_owners(NOW) == sorted([dead, alive])
        assert await repo.lease_owners(NOW + timedelta(minutes=3)) == []  # expired

        released = await release_dead_local_leases(repo, f"{host}:{os.getpid()}:me", NOW)

        assert released == [dead]
        assert await repo.lease_owners(NOW) == [alive]
        [again] = await repo.claim_due_products("me", NOW, 5, timedelta(minutes=2))
        assert again.target == "https://shop.example/a"
    finally:
        await repo.close()


async def test_a_reload_that_adds_a_channel_starts_sending_on_it(tmp_path: Path) -> None:
    """A webhook added to a running watchlist gets the next restock (nothing left pending)."""
    posts: list[bytes] = []

    async def receive(request: miniserver.Request) -> miniserver.Response:
        posts.append(request.body)
        return miniserver.Response(200, b"ok")

    hook = await miniserver.start(receive)
    hook_url = f"http://127.0.0.1:{hook.sockets[0].getsockname()[1]}/hook"
    lever = Lever(OUT)
    shop = DemoShop()
    shop.add(ShopProduct("box", "箱", 5400, lever))
    await shop.start()
    path = tmp_path / "w.yaml"
    plain = watchlist(tmp_path / "db.sqlite3", [url_watch("box", shop.url("box"))])
    path.write_text(plain)
    config = load_config(path)
    repo = await open_repository(config.settings.database)
    stop = asyncio.Event()
    overrides = fast_overrides(None, stop)  # type: ignore[arg-type]
    overrides.notifiers = None  # the real notifiers, built from the watchlist
    app = App(config, repo, overrides)
    await app.sync_watches(config)
    task = asyncio.create_task(app.run(stop))
    try:
        await eventually(lambda: shop.products["box"].requests >= 1, what="the baseline")
        path.write_text(
            plain.replace(
                "notifiers:\n", f"notifiers:\n  webhook: {{url: '{hook_url}'}}\n"
            ).replace("notify: {console: true}", "notify: {console: true, webhook: true}")
        )
        await eventually(lambda: "webhook" in app.dispatcher.notifiers, what="the new channel")
        lever.shows = IN
        await eventually(lambda: bool(posts), what="the webhook post")
        assert b'"event": "restock"' in posts[0] or b'"event":"restock"' in posts[0]

        async def outbox_empty() -> bool:
            return (await repo.outbox_depth()).get("pending", 0) == 0

        await eventually(outbox_empty, what="the delivery marked sent")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await repo.close()
        await shop.stop()
        hook.close()


@pytest.mark.parametrize("bot", [True, False])
async def test_chat_users_urls_stay_guarded_whether_or_not_the_bot_runs(
    tmp_path: Path, bot: bool
) -> None:
    """A chat subscription outlives the bot; its redirects to private addresses stay refused."""
    import httpx

    from notifiers.console import ConsoleNotifier
    from watcher.model import WatchConditions

    repo = await open_repository(tmp_path / "db.sqlite3")
    url = "https://www.amazon.co.jp/dp/B0DX000000"
    await repo.add_chat_subscription(42, url, "amazon_jp", WatchConditions(), datetime.now(UTC))
    path = tmp_path / "w.yaml"
    path.write_text(
        f"settings:\n  database: {tmp_path / 'db.sqlite3'}\n  hot_windows: []\n"
        "notifiers:\n  telegram:\n    token: '1:x'\n    api_base_url: http://127.0.0.1:9\n"
        f"    bot: {str(bot).lower()}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    seen: list[str] = []

    def shop(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "www.amazon.co.jp":
            metadata = "http://169.254.169.254/latest/meta-data/iam/"
            return httpx.Response(302, headers={"location": metadata})
        return httpx.Response(200, text="<html>secret-role</html>")

    async def public_dns(host: str) -> list[str]:
        return ["52.119.168.48"]

    stop = asyncio.Event()
    overrides = Overrides(
        transport=httpx.MockTransport(shop),
        notifiers={"console": ConsoleNotifier()},
        stop=stop,
        install_signals=False,
    )
    app = App(config, repo, overrides)
    app.guard._resolver = public_dns  # type: ignore[assignment]
    await app.sync_watches(config)
    task = asyncio.create_task(app.run(stop))
    try:
        await eventually(lambda: bool(seen), what="the chat product's check")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await repo.close()
    assert seen == [url]


async def test_the_fast_transport_keeps_no_cookies_between_checks() -> None:
    """A shop's session cookie must not follow later checks (a jar would keep a host's)."""
    transport = fast_transport(Overrides())
    assert transport is not None
    client = build_client(transport=transport)
    fetcher = Fetcher(client)
    with LoopbackServer() as server:
        server.add("/item", Reply(body=b"ok", headers={"set-cookie": "session=abc; Path=/"}))
        url = server.url("/item").replace("127.0.0.1", "localhost")
        first = await fetcher.fetch(FetchPlan(url))
        second = await fetcher.fetch(FetchPlan(url))
    await client.aclose()
    assert first.status == second.status == 200
    assert [r.headers.get("cookie") for r in server.requests] == [None, None]
