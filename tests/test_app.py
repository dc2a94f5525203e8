"""The composition root: watchlist reloads while running, and taking over a dead worker's leases."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from httpserver import LoopbackServer, Reply
from test_engine import (
    HOST,
    IN,
    OUT,
    Harness,
    Lever,
    Start,
    eventually,
    fast_overrides,
    record_decisions,
    start,
    url_watch,
    watchlist,
)

from watcher.config.load import load_config
from watcher.config.schema import Server, Settings
from watcher.core.model import EventKind, FetchPlan, Watch
from watcher.demo.shop import DemoShop, ShopProduct, Shows
from watcher.net.fetch import Fetcher
from watcher.net.transport import build_client, fast_transport
from watcher.service.app import App
from watcher.service.engine import EngineSettings
from watcher.service.leases import is_dead_local_worker, release_dead_local_leases
from watcher.service.reload import (
    CHANNEL_SETTINGS,
    LIVE_SETTINGS,
    RESTART_SETTINGS,
    held_for_restart,
)
from watcher.service.wiring import RELOAD_POLL_SECONDS, Overrides, tuned
from watcher.storage import open_repository
from watcher.web.listener import Request, Response, serve

__all__ = ["start"]  # the fixture, shared with the engine tests

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def rewrite(
    h: Harness,
    watches: list[str],
    *,
    hosts: dict[str, str] | None = None,
    settings: dict[str, str] | None = None,
) -> None:
    database = h.app.config.settings.database
    h.config_path.write_text(watchlist(Path(database), watches, hosts=hosts, settings=settings))


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


async def test_the_leases_of_a_dead_local_worker_are_released(database: str) -> None:
    repo = await open_repository(database)
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


async def test_a_reload_that_adds_a_channel_starts_sending_on_it(
    tmp_path: Path, database: str
) -> None:
    """A webhook added to a running watchlist gets the next restock (nothing left pending)."""
    posts: list[bytes] = []

    async def receive(request: Request) -> Response:
        posts.append(request.body)
        return Response(200, b"ok")

    hook = await serve(receive)
    hook_url = f"http://127.0.0.1:{hook.port}/hook"
    lever = Lever(OUT)
    shop = DemoShop()
    shop.add(ShopProduct("box", "箱", 5400, lever))
    await shop.start()
    path = tmp_path / "w.yaml"
    plain = watchlist(database, [url_watch("box", shop.url("box"))])
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
        await hook.close()


@pytest.mark.parametrize("bot", [True, False])
async def test_chat_users_urls_stay_guarded_whether_or_not_the_bot_runs(
    tmp_path: Path, database: str, bot: bool
) -> None:
    """A chat subscription outlives the bot; its redirects to private addresses stay refused."""
    import httpx

    from notifiers.console import ConsoleNotifier
    from watcher.core.model import WatchConditions

    repo = await open_repository(database)
    url = "https://www.amazon.co.jp/dp/B0DX000000"
    await repo.add_chat_subscription(42, url, "amazon_jp", WatchConditions(), datetime.now(UTC))
    path = tmp_path / "w.yaml"
    path.write_text(
        f"settings:\n  database: '{database}'\n  hot_windows: []\n"
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
    # Only the shop's own page was asked for (a refused check may be retried in the meantime):
    # the redirect to the metadata address never was.
    assert set(seen) == {url}


async def test_the_fast_transport_keeps_no_cookies_between_checks() -> None:
    """A shop's session cookie must not follow later checks (a jar would keep a host's)."""
    transport = fast_transport()
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


# --- settings on reload -----------------------------------------------------------------------

ALL_DAY = (
    "[{days: mon-sun, from: '00:00', to: '12:00', interval: 1s},"
    " {days: mon-sun, from: '12:00', to: '24:00', interval: 1s}]"
)


def reload_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "restock.app" and r.levelno == level
    ]


async def settings_reloaded(caplog: pytest.LogCaptureFixture) -> str:
    await eventually(
        lambda: any(m.startswith("settings reloaded") for m in reload_lines(caplog, logging.INFO)),
        what="the settings reload",
    )
    [line] = [m for m in reload_lines(caplog, logging.INFO) if m.startswith("settings reloaded")]
    return line


async def test_a_new_host_delay_spaces_the_shops_requests_without_a_restart(
    start: Start, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    levers = {f"p{i}": Lever(OUT) for i in range(3)}
    shop = await start.shop(**levers)
    watches = [url_watch(slug, shop.url(slug)) for slug in levers]
    h = await start(watches, shop=shop)  # no delay: three products at 1 s come ~3 a second
    await eventually(lambda: shop.total_requests >= 3, what="the first checks")

    decisions = record_decisions(monkeypatch)
    rewrite(h, watches, hosts={HOST: "{concurrency: 4, min_delay: 1s, min_interval: 0s}"})
    assert await settings_reloaded(caplog) == "settings reloaded: politeness"
    granted = len(decisions.granted)
    await eventually(lambda: len(decisions.granted) >= granted + 3, what="three requests")

    times = decisions.granted[granted:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0, gaps  # let out a second apart, as the edited watchlist asks
    assert h.app.politeness.policy(HOST).min_delay == 1.0


async def test_a_raised_global_concurrency_lets_more_checks_run_at_once(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    levers = {f"p{i}": Lever(OUT) for i in range(8)}
    shop = await start.shop(**levers)
    # Eight products every second, each check 0.4 s: one at a time, they fall behind.
    shop.latency = 0.4
    watches = [url_watch(slug, shop.url(slug)) for slug in levers]
    h = await start(watches, shop=shop, settings={"global_concurrency": "1"})
    await eventually(lambda: shop.total_requests >= 3, what="the first checks")
    assert shop.max_in_flight == 1

    rewrite(h, watches, settings={"global_concurrency": "4"})
    assert await settings_reloaded(caplog) == "settings reloaded: global_concurrency"
    await eventually(lambda: shop.max_in_flight >= 2, what="checks side by side")
    assert h.app.engine.settings.concurrency == 4


async def test_a_lowered_global_concurrency_lets_running_checks_finish_and_claims_no_more(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    levers = {f"p{i}": Lever(OUT) for i in range(12)}
    shop = await start.shop(**levers)
    shop.latency = 0.5  # twelve checks a second of half a second each: products wait their turn
    watches = [url_watch(slug, shop.url(slug)) for slug in levers]
    h = await start(watches, shop=shop, settings={"global_concurrency": "4"})
    checking = h.app.engine._in_flight  # products this engine has claimed and is checking
    await eventually(lambda: shop.in_flight >= 3, what="checks side by side")

    rewrite(h, watches, settings={"global_concurrency": "1"})
    assert await settings_reloaded(caplog) == "settings reloaded: global_concurrency"
    most = 0
    for _ in range(60):  # 1.2 s: the checks in flight end, and one at a time follow
        most = max(most, len(checking))
        await asyncio.sleep(0.02)
    assert most <= 4  # nothing more was claimed while the old checks ran
    assert len(checking) <= 1 and shop.in_flight <= 1


async def test_a_stricter_confirm_applies_to_the_next_restock(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    box = Lever(OUT)
    shop = await start.shop(box=box)
    watches = [url_watch("box", shop.url("box"))]
    h = await start(watches, shop=shop)  # confirm: 2
    await eventually(lambda: h.requests("box") >= 1, what="the baseline")

    rewrite(h, watches, settings={"debounce": "{confirm: 3, rearm: 2, cooldown: 0s}"})
    assert await settings_reloaded(caplog) == "settings reloaded: debounce"
    seen = h.requests("box")
    box.shows = IN
    await eventually(lambda: bool(h.recorder.notices), what="the restock")

    # Three buyable answers in a row (two confirming re-checks), not two.
    assert h.requests("box") - seen == 3
    assert h.recorder.kinds("box") == [EventKind.RESTOCK]


async def test_new_hot_windows_and_default_interval_set_the_next_due_times(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    shop = await start.shop(box=Lever(OUT))
    watches = [url_watch("box", shop.url("box"), "interval: 1h")]
    h = await start(watches, shop=shop, settings={"hot_windows": ALL_DAY})
    # The all-day window polls the hourly watch every second.
    await eventually(lambda: h.requests("box") >= 2, what="two checks inside the hot window")

    rewrite(h, watches, settings={"hot_windows": "[]", "default_interval": "2s"})
    line = await settings_reloaded(caplog)
    assert line == "settings reloaded: default_interval, hot_windows"
    assert h.app.engine.settings.default_interval == timedelta(seconds=2)
    seen = h.requests("box")
    await eventually(lambda: h.requests("box") > seen, what="the check due before the reload")

    async def due_in_an_hour() -> bool:
        [status] = await h.repo.watch_statuses()
        due = status.next_check_at
        return due is not None and due - datetime.now(UTC) > timedelta(minutes=50)

    await eventually(due_in_an_hour, what="the next check an hour away")
    # The quick re-check interval did not come back through the tuned test timings.
    assert h.app.engine.settings.idle_poll == 0.05


async def test_a_new_user_agent_goes_out_with_the_next_checks(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    page = Reply(body="<p>在庫あり</p>".encode(), headers={"content-type": "text/html"})
    with LoopbackServer() as server:
        server.add("/item", page)
        watches = [url_watch("item", server.url("/item"))]
        h = await start(watches, settings={"user_agent": "restock-test/1"})
        await eventually(lambda: bool(server.requests), what="the first check")

        rewrite(h, watches, settings={"user_agent": "restock-test/2"})
        assert await settings_reloaded(caplog) == "settings reloaded: user_agent"
        await eventually(
            lambda: server.requests[-1].headers.get("user-agent") == "restock-test/2",
            what="a check with the new User-Agent",
        )
    agents = [r.headers.get("user-agent") for r in server.requests]
    assert agents[0] == "restock-test/1"


async def test_restart_only_settings_say_so_and_keep_their_running_value(
    start: Start, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    shop = await start.shop(box=Lever(OUT))
    watches = [url_watch("box", shop.url("box"))]
    h = await start(watches, shop=shop)
    await eventually(lambda: h.requests("box") >= 1, what="the first check")
    running_database = h.app.config.settings.database
    moved = tmp_path / "elsewhere.sqlite3"

    edited = {
        "database": str(moved),
        "parse_workers": "1",
        "debounce": "{confirm: 3, rearm: 2, cooldown: 0s}",
    }
    h.config_path.write_text(watchlist(moved, watches, settings=edited))
    assert await settings_reloaded(caplog) == "settings reloaded: debounce"

    assert reload_lines(caplog, logging.ERROR) == [
        "settings.database, settings.parse_workers changed: restart `restock run` to apply them"
    ]
    assert h.app.config.settings.database == running_database
    assert h.app.config.settings.parse_workers == "auto"
    assert h.app.engine.detector.settings.confirm == 3  # the live one in the same edit applies
    seen = h.requests("box")
    await eventually(lambda: h.requests("box") > seen, what="checks going on")
    assert not moved.exists()
    assert [s.key for s in await h.repo.watch_statuses()] == ["box"]


async def test_a_hosts_backoff_survives_a_politeness_reload(
    start: Start, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="restock.app")
    sick = Lever(OUT)
    shop = await start.shop(sick=sick)
    shop.retry_after = "2"
    watches = [url_watch("sick", shop.url("sick"))]
    h = await start(watches, shop=shop)
    await eventually(lambda: h.requests("sick") >= 1, what="the baseline")
    decisions = record_decisions(monkeypatch)
    sick.queue = [Shows.UNAVAILABLE]  # one 503 with Retry-After: 2
    await eventually(lambda: h.app.politeness.retry_in(HOST) > 0, what="the host backing off")
    politeness = h.app.politeness
    [(blocked_at, backoff_until)] = decisions.blocked
    assert backoff_until >= blocked_at + 2.0

    rewrite(h, watches, hosts={HOST: "{concurrency: 2, min_delay: 0s, min_interval: 0s}"})
    assert await settings_reloaded(caplog) == "settings reloaded: politeness"

    assert h.app.politeness is politeness
    state = politeness.snapshot()[HOST]
    assert state.concurrency == 2 and state.consecutive_blocks == 1
    assert state.backoff_remaining > 0
    await eventually(lambda: h.requests("sick") >= 3, what="checks after the backoff")
    after = [t for t in decisions.granted if t > blocked_at]
    assert after[0] >= backoff_until  # the shop was left alone for its Retry-After


def test_every_setting_is_live_a_channels_or_restart_only() -> None:
    groups = [*LIVE_SETTINGS, *CHANNEL_SETTINGS, *RESTART_SETTINGS]
    assert sorted(groups) == sorted(Settings.model_fields)
    assert len(groups) == len(set(groups))


def test_a_new_public_url_applies_but_a_moved_endpoint_waits() -> None:
    running = Settings(server=Server(listen="127.0.0.1:8787"))
    new = Settings(server=Server(listen="0.0.0.0:9000", public_url="https://shop.example/"))
    held, kept = held_for_restart(running, new)
    assert held == ["server"]
    assert kept.server is not None and kept.server.listen == running.server.listen
    assert str(kept.server.public_url) == "https://shop.example/"
    assert held_for_restart(Settings(), new)[1].server is None  # no endpoint until a restart
    assert held_for_restart(running, running) == ([], running)
