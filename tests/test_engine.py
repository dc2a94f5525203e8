"""The real engine against a simulated shop on loopback, with a real database on each backend.

Each test runs `App` (engine + dispatcher) with short timings, flips what the shop shows, and
waits, with a deadline, for a condition on the shop, the database or a recording notifier.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifiers.base import Notice, Notifier, SendResult
from watcher.config.load import load_config
from watcher.core.detector import DebounceSettings
from watcher.core.drift import LayoutDrift, is_layout_miss
from watcher.core.model import Availability, EventKind, Observation
from watcher.core.schedule import HotWindow
from watcher.demo.shop import DemoShop, ShopProduct, Shows
from watcher.net.fetch import Fetcher
from watcher.net.politeness import Backoff, Politeness
from watcher.reading import pool as parsepool
from watcher.reading.read import read_page
from watcher.service import engine as engine_module
from watcher.service.app import App
from watcher.service.engine import (
    STORE_ROW_PREFIX,
    Engine,
    EngineSettings,
)
from watcher.service.wiring import Overrides
from watcher.storage import open_repository
from watcher.storage.interface import DueProduct, ObservationRecord
from watcher.storage.sqlite.repository import SQLiteRepository
from watcher.stores.sources import RAKUTEN_SEARCH_URL

IN, OUT, PRE = Shows.IN_STOCK, Shows.OUT_OF_STOCK, Shows.PREORDER
HOST = "127.0.0.1"
FAST = "{concurrency: 8, min_delay: 0s, min_interval: 0s}"


class Lever:
    """A shop script the test moves by hand; `queue` shows once each before `shows` holds."""

    def __init__(self, shows: Shows = OUT) -> None:
        self.shows = shows
        self.queue: list[Shows] = []

    def __call__(self, _elapsed: float, _count: int) -> Shows:
        return self.queue.pop(0) if self.queue else self.shows


class Recorder(Notifier):
    """Takes every notice at once and remembers when it arrived."""

    name = "console"

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.arrived: list[float] = []

    async def send(self, notice: Notice) -> SendResult:
        self.notices.append(notice)
        self.arrived.append(time.monotonic())
        return SendResult.sent()

    def kinds(self, watch_key: str | None = None) -> list[EventKind]:
        return [n.event.kind for n in self.notices if watch_key in (None, n.event.watch_key)]


@dataclass
class Harness:
    app: App
    repo: SQLiteRepository
    recorder: Recorder
    stop: asyncio.Event
    task: asyncio.Task[None]
    config_path: Path
    shop: DemoShop | None = None
    levers: dict[str, Lever] = field(default_factory=dict)

    @property
    def counters(self) -> engine_module.EngineCounters:
        return self.app.engine.counters

    def requests(self, slug: str) -> int:
        assert self.shop is not None
        return self.shop.products[slug].requests

    async def observations(self, watch_key: str) -> list[ObservationRecord]:
        found = await self.repo.history(watch_key, limit=500)
        assert found is not None
        return list(found.observations)


@dataclass
class Decisions:
    """What the politeness decided, on its own clock: every request slot it granted and every
    block it was told of. Tests assert on these, not on when requests happened to arrive."""

    granted: list[float] = field(default_factory=list)
    blocked: list[tuple[float, float]] = field(default_factory=list)  # (when, backoff until)


def record_decisions(monkeypatch: pytest.MonkeyPatch) -> Decisions:
    decisions = Decisions()
    claim, record_block = Politeness._claim, Politeness._record_block

    def claimed(self: Politeness, state: Any, now: float) -> None:
        decisions.granted.append(now)
        claim(self, state, now)

    def blocked(self: Politeness, state: Any, now: float, retry_after: float | None) -> None:
        record_block(self, state, now, retry_after)
        decisions.blocked.append((now, state.backoff_until))

    monkeypatch.setattr(Politeness, "_claim", claimed)
    monkeypatch.setattr(Politeness, "_record_block", blocked)
    return decisions


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0, what: str = ""
) -> None:
    """Wait until `condition` holds, polling briefly; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.02)


def watchlist(
    database: Path | str,
    watches: list[str],
    *,
    hosts: dict[str, str] | None = None,
    sources: str = "",
    settings: dict[str, str] | None = None,
) -> str:
    """A watchlist for the loopback shop; `settings` replaces or adds `settings` keys."""
    hosts = hosts or {HOST: FAST}
    given = {
        "database": str(database),
        "default_interval": "1s",
        "hot_windows": "[]",
        "debounce": "{confirm: 2, rearm: 2, cooldown: 0s}",
        **(settings or {}),
    }
    lines = [
        "settings:",
        *(f"  {key}: {value}" for key, value in given.items()),
        "  politeness:",
        "    hosts:",
        *(f"      {host}: {limits}" for host, limits in hosts.items()),
        "notifiers:",
        "  console: {}",
        *([sources] if sources else []),
        "watches:",
        *watches,
    ]
    return "\n".join(lines) + "\n"


def url_watch(name: str, url: str, extra: str = "") -> str:
    text = f"  - name: {name}\n    url: {url}\n    notify: {{console: true}}"
    return text + (f"\n    {extra}" if extra else "")


class Start:
    """Starts the app on a watchlist, and shops; everything is stopped at the end of the test."""

    def __init__(self, folder: Path, database: str) -> None:
        self.folder = folder
        self.database = database  # a fresh database on the test's backend
        self.started: list[Harness] = []
        self.shops: list[DemoShop] = []

    async def __call__(
        self,
        watches: list[str],
        *,
        shop: DemoShop | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        hosts: dict[str, str] | None = None,
        sources: str = "",
        parse_workers: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> Harness:
        path = self.folder / "watchlist.yaml"
        path.write_text(
            watchlist(self.database, watches, hosts=hosts, sources=sources, settings=settings)
        )
        config = load_config(path)
        repo = await open_repository(config.settings.database)
        recorder = Recorder()
        stop = asyncio.Event()
        overrides = fast_overrides(recorder, stop, transport)
        overrides.parse_workers = parse_workers
        app = App(config, repo, overrides)
        await app.sync_watches(config)
        task = asyncio.create_task(app.run(stop))
        harness = Harness(app, repo, recorder, stop, task, path, shop)
        self.started.append(harness)
        return harness

    async def shop(self, retry_after: str = "1", **levers: Lever) -> DemoShop:
        shop = DemoShop(retry_after=retry_after)
        for slug, lever in levers.items():
            shop.add(ShopProduct(slug, f"商品 {slug}", 5400, lever))
        await shop.start()
        self.shops.append(shop)
        return shop

    async def close(self) -> None:
        for harness in self.started:
            harness.stop.set()
            await asyncio.wait_for(harness.task, 15)
            await harness.repo.close()
        for shop in self.shops:
            await shop.stop()


def fast_overrides(
    recorder: Notifier, stop: asyncio.Event, transport: httpx.AsyncBaseTransport | None = None
) -> Overrides:
    """Timings for tests: short backoffs, re-checks within 0.1 s, a look for work every 50 ms."""
    return Overrides(
        transport=transport,
        notifiers={"console": recorder},
        stop=stop,
        install_signals=False,
        host_backoff=Backoff(base=0.5, cap=1.0, jitter=0.0),
        error_backoff=timedelta(milliseconds=300),
        recheck_delay=(timedelta(milliseconds=50), timedelta(milliseconds=100)),
        idle_poll=0.05,
        reload_poll=0.1,
    )


@pytest.fixture
async def start(tmp_path: Path, database: str) -> AsyncIterator[Start]:
    starter = Start(tmp_path, database)
    yield starter
    await starter.close()


async def shop_with(start: Start, **levers: Lever) -> DemoShop:
    return await start.shop(**levers)


async def test_a_restock_is_reported_within_interval_plus_confirmation(
    start: Start, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("a latency bound for the embedded database; bench/workers.py measures others")
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    h = await start([url_watch("box", shop.url("box"))], shop=shop)
    await eventually(lambda: h.requests("box") >= 1, what="the baseline check")
    assert h.recorder.notices == []  # the baseline fires nothing

    checks: list[tuple[Availability, datetime, datetime]] = []  # state, when, next due
    record_check = h.repo.record_check

    async def recorded(
        product_id: int, observation: Observation, decisions: Any, outcome: Any, now: datetime
    ) -> Any:
        checks.append((observation.state, now, outcome.next_due_at))
        return await record_check(product_id, observation, decisions, outcome, now)

    h.repo.record_check = recorded  # type: ignore[method-assign]
    lever.shows = IN
    await eventually(lambda: bool(h.recorder.notices), what="the restock message")

    # What the engine decided, on its own clock: the first buyable observation was due within
    # one interval (1 s, +10 % jitter), and its confirming re-check was set 0.1 s after it, not
    # a full interval; the second buyable observation fired.
    first = next(i for i, (state, _, _) in enumerate(checks) if state is Availability.IN_STOCK)
    _, seen_at, recheck_due = checks[first]
    assert recheck_due - seen_at <= timedelta(milliseconds=100)
    assert [state for state, _, _ in checks[first:]][:2] == [Availability.IN_STOCK] * 2
    if first:
        _, before_at, due_at = checks[first - 1]
        assert due_at - before_at <= timedelta(seconds=1.1)
    [notice] = h.recorder.notices
    assert notice.event.kind is EventKind.RESTOCK
    assert notice.event.state is Availability.IN_STOCK
    assert notice.event.price == 5400
    assert h.counters.rechecks >= 1


async def test_ghost_stock_one_stale_page_never_fires(start: Start) -> None:
    lever = Lever(OUT)
    shop = await shop_with(start, ghost=lever)
    h = await start([url_watch("ghost", shop.url("ghost"))], shop=shop)
    await eventually(lambda: h.requests("ghost") >= 1, what="the baseline check")

    lever.queue = [IN]  # exactly one stale in-stock answer
    await eventually(lambda: h.counters.flaps_suppressed >= 1, what="the flap")
    seen = h.requests("ghost")
    await eventually(lambda: h.requests("ghost") >= seen + 1, what="a later check")

    assert h.recorder.notices == []
    assert h.counters.events == 0


async def test_a_captcha_saying_in_stock_never_fires_and_counts_as_blocked(start: Start) -> None:
    lever = Lever(OUT)
    shop = await shop_with(start, figure=lever)
    h = await start([url_watch("figure", shop.url("figure"))], shop=shop)
    await eventually(lambda: h.requests("figure") >= 1, what="the baseline")

    lever.shows = Shows.CAPTCHA
    # Generous: the backoffs between blocked checks add up on a loaded machine.
    await eventually(lambda: h.counters.blocked >= 2, timeout=30, what="two blocked checks")
    lever.shows = OUT
    seen = h.requests("figure")
    await eventually(
        lambda: h.requests("figure") >= seen + 1, timeout=30, what="a check after the spell"
    )

    assert h.recorder.notices == []
    history = await h.repo.history("figure", limit=100)
    assert history is not None
    blocked = [o for o in history.observations if o.blocked]
    assert len(blocked) >= 2
    assert all(o.state is Availability.UNKNOWN for o in blocked)


async def test_a_503_spell_backs_the_host_off_then_checks_resume(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    decisions = record_decisions(monkeypatch)
    sick, calm = Lever(OUT), Lever(OUT)
    shop = await shop_with(start, sick=sick, calm=calm)
    h = await start(
        [url_watch("sick", shop.url("sick")), url_watch("calm", shop.url("calm"))], shop=shop
    )
    await eventually(lambda: h.requests("sick") >= 1 and h.requests("calm") >= 1)

    sick.queue = [Shows.UNAVAILABLE]  # one 503 with Retry-After: 1

    async def backing_off() -> bool:
        states = {s.host: s for s in await h.repo.host_states()}
        return HOST in states and states[HOST].backoff_until is not None

    await eventually(backing_off, what="the host's backoff in the database")
    [(blocked_at, backoff_until)] = decisions.blocked
    assert backoff_until >= blocked_at + 1.0  # at least the Retry-After
    states = {s.host: s for s in await h.repo.host_states()}
    assert states[HOST].consecutive_blocks == 1
    assert states[HOST].last_reason == "blocked:service_unavailable"

    # Checks resume after the backoff: the product restocks and is reported.
    sick.shows = IN
    # Generous: the restock is confirmed by rechecks, which a loaded machine spreads out.
    await eventually(
        lambda: bool(h.recorder.notices), timeout=30, what="the restock after the spell"
    )
    # No request went to the host during the backoff (Retry-After: 1 s), whatever product.
    during = [t for t in decisions.granted if blocked_at < t < backoff_until]
    assert during == []

    async def cleared() -> bool:
        # The host's row is written after the check that cleared it, not before the message.
        state = {s.host: s for s in await h.repo.host_states()}[HOST]
        return state.backoff_until is None and state.consecutive_blocks == 0

    await eventually(cleared, what="the backoff cleared in the database after a success")


async def test_per_host_concurrency_holds(start: Start) -> None:
    levers = {f"p{i}": Lever(OUT) for i in range(12)}
    shop = await shop_with(start, **levers)
    shop.latency = 0.05  # answers overlap: more than two would be in flight without the limit
    h = await start(
        [url_watch(slug, shop.url(slug)) for slug in levers],
        shop=shop,
        hosts={HOST: "{concurrency: 2, min_delay: 0s, min_interval: 0s}"},
    )
    await eventually(lambda: shop.total_requests >= 30, what="30 requests")
    assert shop.max_in_flight == 2
    assert h.app.politeness.policy(HOST).concurrency == 2


async def test_per_host_min_delay_holds(start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    decisions = record_decisions(monkeypatch)
    levers = {f"p{i}": Lever(OUT) for i in range(4)}
    shop = await shop_with(start, **levers)
    await start(
        [url_watch(slug, shop.url(slug)) for slug in levers],
        shop=shop,
        hosts={HOST: "{concurrency: 4, min_delay: 1s, min_interval: 0s}"},
    )
    await eventually(lambda: shop.total_requests >= 3, what="three requests")
    gaps = [b - a for a, b in itertools.pairwise(decisions.granted)]
    # Four products were due at once; the engine let their requests out a second apart.
    assert len(gaps) >= 2 and min(gaps) >= 1.0, gaps


async def test_one_fetch_serves_every_watch_on_a_product(start: Start) -> None:
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    url = shop.url("box")
    h = await start(
        [
            url_watch("anyone", url),
            url_watch("bargain hunter", url, "max_price: 5000"),
            url_watch("collector", url, "buyable: [in_stock, preorder]"),
        ],
        shop=shop,
    )
    await eventually(lambda: h.requests("box") >= 1, what="the baseline check")
    lever.shows = IN
    await eventually(lambda: len(h.recorder.notices) >= 2, what="two restock messages")
    await asyncio.sleep(0.3)  # a third message, if one were wrongly due, would be out by now

    assert sorted(h.recorder.kinds()) == [EventKind.RESTOCK, EventKind.RESTOCK]
    assert {n.event.watch_key for n in h.recorder.notices} == {"anyone", "collector"}
    h.stop.set()
    await h.task
    # One request per check, whatever the number of watches reading it (a check that read
    # what the last one read records no observation: it is counted as a repeat of it).
    assert h.requests("box") == sum(1 + o.repeats for o in await h.observations("anyone"))


async def test_alike_watches_each_hear_their_own_restock_and_keep_their_own_state(
    start: Start,
) -> None:
    """Watches that decide alike share detector steps; events and `once` stay per watch."""
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    url = shop.url("box")
    h = await start(
        [
            url_watch("fan a", url),
            url_watch("fan b", url),
            url_watch("fan c", url),
            url_watch("just once", url, "once: true"),
        ],
        shop=shop,
    )
    await eventually(lambda: h.requests("box") >= 2, what="baseline checks")
    lever.shows = IN
    await eventually(lambda: len(h.recorder.notices) >= 4, what="four restock messages")
    lever.shows = OUT
    await eventually(lambda: h.counters.events >= 7, what="three out-of-stock events")
    lever.shows = IN
    await eventually(lambda: len(h.recorder.notices) >= 10, what="the second restock")
    await asyncio.sleep(0.3)

    for key in ("fan-a", "fan-b", "fan-c"):
        assert h.recorder.kinds(key) == [
            EventKind.RESTOCK,
            EventKind.OUT_OF_STOCK,
            EventKind.RESTOCK,
        ], key
    assert h.recorder.kinds("just-once") == [EventKind.RESTOCK]


async def test_each_watch_reads_a_shared_page_with_its_own_rules(start: Start) -> None:
    """Two watches on one page: one trusts the page, one's own rule reads 在庫切れ as in stock."""
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    url = shop.url("box")
    h = await start(
        [
            url_watch("plain", url, "notify_on_first: true"),
            url_watch(
                "own rules",
                url,
                "notify_on_first: true\n    rules: {selector: 'p.stock', in_stock: [在庫切れ]}",
            ),
        ],
        shop=shop,
    )
    await eventually(lambda: bool(h.recorder.notices), what="the own-rules watch's message")
    await asyncio.sleep(0.3)
    assert {n.event.watch_key for n in h.recorder.notices} == {"own-rules"}


def rakuten_answer(availability: int) -> dict[str, object]:
    item = {
        "itemName": "テスト BOX",
        "itemCaption": "JAN 4521329400006",
        "itemPrice": 5980,
        "itemUrl": "https://item.rakuten.co.jp/shop/box/",
        "availability": availability,
        "shopName": "テストショップ",
    }
    return {"count": 1, "hits": 1, "Items": [{"Item": item}]}


async def test_a_jan_watch_searches_the_store_api(start: Start) -> None:
    stock = {"availability": 0}
    asked: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if not str(request.url).startswith(RAKUTEN_SEARCH_URL):
            return httpx.Response(404)
        return httpx.Response(200, json=rakuten_answer(stock["availability"]))

    jan_watch = (
        '  - name: card box\n    jan: "4521329400006"\n    stores: [rakuten]\n'
        "    notify: {console: true}"
    )
    h = await start(
        [jan_watch],
        transport=httpx.MockTransport(api),
        hosts={"jan-search": FAST},
        sources="sources:\n  rakuten: {application_id: test-app, access_key: test-key}",
    )
    await eventually(lambda: len(asked) >= 1, what="the baseline search")
    assert h.recorder.notices == []
    stock["availability"] = 1
    await eventually(lambda: bool(h.recorder.notices), what="the restock message")

    [notice] = h.recorder.notices
    assert notice.event.kind is EventKind.RESTOCK
    assert all(r.url.params["accessKey"] == "test-key" for r in asked)
    assert notice.event.store == "rakuten"
    assert notice.event.url == "https://item.rakuten.co.jp/shop/box/"
    assert notice.event.price == 5980
    params = asked[-1].url.params
    assert params["keyword"] == "4521329400006"
    assert params["applicationId"] == "test-app"


@pytest.mark.parametrize("etags", [True, False], ids=["304", "same-hash"])
async def test_unchanged_pages_skip_parsing_but_count(
    start: Start, monkeypatch: pytest.MonkeyPatch, etags: bool
) -> None:
    parsed: list[str] = []
    real_read_page = read_page

    def counting_read_page(page, **kw):  # type: ignore[no-untyped-def]
        parsed.append(page.url)
        return real_read_page(page, **kw)

    monkeypatch.setattr(parsepool, "read_page", counting_read_page)
    shop = await shop_with(start, calm=Lever(OUT))
    shop.etags = etags
    h = await start([url_watch("calm", shop.url("calm"))], shop=shop, parse_workers=0)
    await eventually(lambda: h.counters.checks >= 3, what="three checks")
    h.stop.set()
    await h.task

    observations = await h.observations("calm")
    # Every check counts: the first is recorded, the others repeat it.
    assert len(observations) == 1 and observations[0].repeats == h.counters.checks - 1
    assert len(parsed) == 1  # only the first page was parsed
    assert h.counters.unchanged == h.counters.checks - 1
    assert all(o.state is Availability.OUT_OF_STOCK for o in observations)
    assert (shop.not_modified > 0) is etags


async def test_layout_drift_is_reported_once_and_cleared(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    levers = {f"p{i}": Lever(OUT) for i in range(3)}
    shop = await shop_with(start, **levers)
    h = await start([url_watch(slug, shop.url(slug)) for slug in levers], shop=shop)
    await eventually(lambda: all(h.requests(s) >= 1 for s in levers), what="first checks")

    caplog.set_level(logging.WARNING, logger="restock.engine")
    for lever in levers.values():
        lever.shows = Shows.NO_SIGNAL
    await eventually(lambda: h.counters.layout_misses >= 5, what="layout misses")

    warnings = [r.getMessage() for r in caplog.records if "no longer parse" in r.getMessage()]
    assert len(warnings) == 1
    assert "store generic pages no longer parse" in warnings[0]
    assert "check the adapter" in warnings[0]
    rows = {s.host: s for s in await h.repo.host_states()}
    assert rows[STORE_ROW_PREFIX + "generic"].last_reason == warnings[0]

    for lever in levers.values():
        lever.shows = OUT

    async def cleared() -> bool:
        rows = {s.host: s for s in await h.repo.host_states()}
        return rows[STORE_ROW_PREFIX + "generic"].last_reason is None

    await eventually(cleared, what="the warning cleared")
    assert h.recorder.notices == []


def test_layout_drift_counts_only_products_that_had_a_state() -> None:
    drift = LayoutDrift(threshold=2)
    miss = Observation.unknown("amazon:no signal")
    assert drift.observe("amazon_jp", miss, knew_state=False) is None
    assert drift.observe("amazon_jp", miss, knew_state=False) is None
    assert drift.observe("amazon_jp", Observation.unknown("fetch error: timeout"), True) is None
    assert drift.observe("amazon_jp", miss, knew_state=True) is None
    assert drift.observe("amazon_jp", miss, knew_state=True) == "reported"
    assert drift.observe("amazon_jp", miss, knew_state=True) is None  # reported once
    back = Observation(state=Availability.OUT_OF_STOCK, reason="amazon:#availability 在庫切れ")
    assert drift.observe("amazon_jp", back, knew_state=True) == "recovered"
    assert drift.misses == {}


@pytest.mark.parametrize(
    ("reason", "miss"),
    [
        ("no signal", True),
        ("amazon:no signal", True),
        ("amazon:not a product page", True),
        ("not a product page", True),
        ("blocked:captcha", False),
        ("fetch error: timeout", False),
        ("jsonld:InStock", False),
    ],
)
def test_layout_miss_reasons(reason: str, miss: bool) -> None:
    assert is_layout_miss(reason) is miss


@pytest.mark.parametrize("etags", [True, False], ids=["304", "same-hash"])
async def test_unchanged_pages_are_not_read_again_for_watches_with_their_own_rules(
    start: Start, monkeypatch: pytest.MonkeyPatch, etags: bool
) -> None:
    parsed: list[object] = []
    real_read_page = read_page

    def counting_read_page(page, **kw):  # type: ignore[no-untyped-def]
        parsed.append(kw.get("rules"))
        return real_read_page(page, **kw)

    monkeypatch.setattr(parsepool, "read_page", counting_read_page)
    shop = await shop_with(start, calm=Lever(OUT))
    shop.etags = etags
    own = "rules: {selector: 'p.stock', in_stock: [在庫切れ]}"
    h = await start(
        [url_watch("plain", shop.url("calm")), url_watch("own rules", shop.url("calm"), own)],
        shop=shop,
        parse_workers=0,  # parses are counted in this process
    )
    await eventually(lambda: h.counters.checks >= 4, what="four checks")
    h.stop.set()
    await h.task

    # The first page was read once per distinct rules; later checks re-used both readings.
    assert len(parsed) == 2 and parsed[0] is None and parsed[1] is not None
    assert h.counters.unchanged >= 3
    statuses = {w.key: w for w in await h.repo.watch_statuses()}
    assert statuses["own-rules"].state is not None
    assert statuses["own-rules"].state["last_buyable"] is True  # its own rules, still applied
    assert statuses["plain"].state is not None
    assert statuses["plain"].state["last_buyable"] is False


async def test_applied_settings_set_the_next_intervals(database: str) -> None:
    """A reload's interval settings, time zone and debounce reach the running engine."""
    url = "https://shop.example/item"
    now = datetime(2025, 3, 4, 18, 30, tzinfo=UTC)  # 03:30 in Tokyo, 13:30 in New York
    repo = await open_repository(database)
    client = httpx.AsyncClient()
    try:
        product_id = await repo.ensure_product(url, None, now)
        for days in (1, 2, 3):  # restocks at this hour: adaptive polling speeds up now
            await repo.record_restock(product_id, None, now - timedelta(days=days))
        settings = EngineSettings(default_interval=timedelta(minutes=4), adaptive=True)
        engine = Engine(repo, Fetcher(client), Politeness(), owner="me", settings=settings)
        product = DueProduct(product_id, url, None, now, now, interval=None, subscribers=1)
        tokyo = await engine._interval(product, timedelta(0), now)
        assert tokyo < timedelta(minutes=4)
        detector = engine.detector

        engine.apply_settings(
            replace(settings, timezone="America/New_York", default_interval=timedelta(minutes=10))
        )
        # The restock hours are counted again in New York's hours, where they fell now too.
        new_york = await engine._interval(product, timedelta(0), now)
        assert abs(new_york - tokyo * 10 / 4) < timedelta(milliseconds=1)
        assert engine.detector is detector  # debounce unchanged

        every_minute = HotWindow(frozenset(range(7)), dtime(0), dtime(0), timedelta(minutes=1))
        stricter = DebounceSettings(confirm=3)
        engine.apply_settings(
            replace(engine.settings, hot_windows=(every_minute,), adaptive=False, debounce=stricter)
        )
        assert await engine._interval(product, timedelta(0), now) == timedelta(minutes=1)
        assert engine.detector.settings == stricter
    finally:
        await client.aclose()
        await repo.close()


class GatedReader:
    """Parses inline, but holds every page until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.statuses: list[int | None] = []

    async def read(self, raw, store, rules):  # type: ignore[no-untyped-def]
        self.statuses.append(raw.head.status)
        await self.gate.wait()
        return await parsepool.InlineReader().read(raw, store, rules)

    async def aclose(self) -> None:
        return None


async def test_a_503_backs_the_host_off_before_its_page_is_parsed(start: Start) -> None:
    sick = Lever(OUT)
    shop = await shop_with(start, sick=sick)
    h = await start([url_watch("sick", shop.url("sick"))], shop=shop, parse_workers=0)
    await eventually(lambda: h.counters.checks >= 1, what="the baseline check")
    reader = GatedReader()
    h.app.engine.reader = reader
    sick.queue = [Shows.UNAVAILABLE]
    await eventually(lambda: 503 in reader.statuses, what="the 503 waiting to be parsed")
    # The page is not parsed yet, and the host already waits out its Retry-After.
    assert h.app.politeness.retry_in(HOST) > 0
    reader.gate.set()
    await eventually(lambda: h.counters.blocked >= 1, what="the block counted once parsed")
    assert h.app.politeness.snapshot()[HOST].consecutive_blocks == 1  # reported once, not twice


class HeldReader:
    """Parses inline, but holds the pages of one URL until the test opens the gate."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.gate = asyncio.Event()
        self.holding = 0

    async def read(self, raw, store, rules):  # type: ignore[no-untyped-def]
        if raw.head.url == self.url:
            self.holding += 1
            await self.gate.wait()
        return await parsepool.InlineReader().read(raw, store, rules)

    async def aclose(self) -> None:
        return None


async def test_a_success_sent_before_a_block_leaves_the_hosts_backoff_on_record(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page fetched before the host blocked, answering after the block, proves nothing: the
    backoff stays in the database (for `restock status`) as it stays in the politeness."""
    sick, calm = Lever(OUT), Lever(OUT)
    shop = await start.shop(retry_after="60", sick=sick, calm=calm)
    h = await start(
        [url_watch("sick", shop.url("sick")), url_watch("calm", shop.url("calm"))],
        shop=shop,
        parse_workers=0,
    )
    await eventually(lambda: h.requests("sick") >= 1 and h.requests("calm") >= 1)
    finished: list[str] = []
    after_check = h.app.engine._after_check

    async def noted(product: Any, host: str, observation: Any) -> None:
        await after_check(product, host, observation)
        finished.append(product.target)

    monkeypatch.setattr(h.app.engine, "_after_check", noted)
    reader = HeldReader(shop.url("calm"))
    h.app.engine.reader = reader
    h.app.engine._last.clear()  # forget what the pages read, so calm's next page is read
    await eventually(lambda: reader.holding == 1, what="calm's page fetched, held before its read")

    sick.queue = [Shows.UNAVAILABLE]  # one 503 with Retry-After: 60

    async def host_state() -> Any:
        return {s.host: s for s in await h.repo.host_states()}.get(HOST)

    async def backing_off() -> bool:
        state = await host_state()
        return state is not None and state.backoff_until is not None

    await eventually(backing_off, what="the host's backoff in the database")
    reader.gate.set()
    await eventually(lambda: shop.url("calm") in finished, what="calm's check finished")

    state = await host_state()
    assert state is not None and state.backoff_until is not None
    assert state.consecutive_blocks == 1
    assert h.app.politeness.retry_in(HOST) > 0


class FailingReader:
    """A reader whose every parse fails, as a crashed or hung parse worker's pages do."""

    async def read(self, raw, store, rules):  # type: ignore[no-untyped-def]
        return parsepool.failed(raw.head, store, "worker died", len(rules))

    async def aclose(self) -> None:
        return None


async def test_failed_parses_are_counted_and_never_fire(start: Start) -> None:
    lever = Lever(IN)
    shop = await shop_with(start, box=lever)
    h = await start(
        [url_watch("box", shop.url("box"), "notify_on_first: true")], shop=shop, parse_workers=0
    )
    h.app.engine.reader = FailingReader()
    await eventually(
        lambda: h.app.metrics.parse_failures.get(store="generic") >= 3, what="failed parses"
    )
    assert h.recorder.notices == []  # an unparsed page is no evidence of stock
    assert "restock_parse_failures_total" in h.app.metrics.render()
