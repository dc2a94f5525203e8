"""A running web UI over a real database (SQLite unless a URL is given) and a real loopback port,
for the web tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from watcher.core.model import Availability, Event, EventKind, Notify, Observation, Watch
from watcher.net.netguard import URLGuard
from watcher.net.politeness import Politeness
from watcher.service.metrics import Metrics
from watcher.storage import open_repository
from watcher.storage.interface import CheckOutcome, WatchDecision
from watcher.storage.postgres.repository import PostgresRepository
from watcher.storage.sqlite.repository import SQLiteRepository
from watcher.subscriptions import SubscriptionRules, Subscriptions
from watcher.web.app import Checker, WebApp, WebSetup
from watcher.web.budgets import ChannelBudget, Period
from watcher.web.channels import ChannelTester
from watcher.web.forms import AddForm
from watcher.web.i18n import Language
from watcher.web.quota import PER_DAY, TOTAL
from watcher.web.security import WebAccess
from watcher.web.server import StatusServer

# The backends that serve the web UI.
WebRepository = SQLiteRepository | PostgresRepository

NOW = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>'
HOSTILE_REASON = "amazon:#availability <img src=x onerror=alert(1)>"
HOSTILE_TITLE = '"><svg onload=alert(2)>限定BOX'
WATCHES = [
    Watch(
        key="box",
        name=f"Card box {HOSTILE}",
        url="https://www.amazon.co.jp/dp/B0BOX00000",
        notify=Notify(console=True, webhook=True),
    ),
    Watch(key="mug", name="Mug", url="https://example.base.shop/items/1", notify=Notify(x=True)),
]

BUDGETS = (
    ChannelBudget("x", Period.DAY, allowance=15, used=3),
    ChannelBudget("line", Period.MONTH, allowance=1000, used=10),
)


@dataclass
class Running:
    repo: WebRepository
    base: str
    client: httpx.AsyncClient
    clock: list[datetime]

    async def csrf(self, path: str = "/add", **headers: str) -> str:
        page = await self.client.get(path, headers=headers)
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found is not None, page.text[:500]
        return found.group(1)


async def observe(
    repo: WebRepository, at: datetime, state: Availability, price: int | None, events: bool
) -> None:
    """One check of every due product, stored as the engine stores it."""
    for product in await repo.claim_due_products("test", at, 10, timedelta(minutes=1)):
        observation = Observation(
            state=state, reason=HOSTILE_REASON, price=price, title=HOSTILE_TITLE
        )
        decisions = [
            WatchDecision(
                w.id,
                {},
                [
                    Event(
                        EventKind.RESTOCK,
                        w.watch.key,
                        w.watch.name,
                        state,
                        at,
                        price=price,
                        title=HOSTILE_TITLE,
                    )
                ]
                if events
                else [],
            )
            for w in await repo.load_watches(product.id)
        ]
        await repo.record_check(
            product.id, observation, decisions, CheckOutcome(next_due_at=at), at
        )


async def seed(repo: WebRepository) -> None:
    """Ten days of readings: sold out, then back on the last day; past restocks on Tuesdays."""
    await repo.sync_yaml_watches(WATCHES, NOW - timedelta(days=10))
    for day in range(10, 0, -1):
        await observe(repo, NOW - timedelta(days=day), Availability.OUT_OF_STOCK, 6400, False)
    await observe(repo, NOW - timedelta(hours=2), Availability.IN_STOCK, 5980, True)
    tuesday_2am_jst = datetime(2026, 5, 4, 17, 30, tzinfo=UTC)  # Tue 02:30 JST
    product_id = (await repo.load_watches_for([1, 2])).keys()
    for week in range(5):
        for pid in product_id:
            await repo.record_restock(pid, None, tuesday_2am_jst - timedelta(weeks=week))


def web_rules(repo: WebRepository, guard: URLGuard, jan_search: bool = True) -> Subscriptions:
    """The chat users' rules an exposed web UI applies to added targets."""
    return Subscriptions(repo, guard, SubscriptionRules(max_per_chat=20, jan_search=jan_search))


def fixed_checker(observation: Observation) -> Checker:
    async def check(form: AddForm) -> Observation:
        return observation

    return check


@asynccontextmanager
async def running_web(
    tmp_path: Path,
    *,
    token: str | None = None,
    guard: URLGuard | None = None,
    checker: Checker | None = None,
    clock: Callable[[], datetime] | None = None,
    tester: ChannelTester | None = None,
    jan_search: bool = True,
    database: str | None = None,
    budgets: Sequence[ChannelBudget] = BUDGETS,
    language: Language = "ja",
    quota: tuple[int, int] = (PER_DAY, TOTAL),  # watches added per 24 hours, at most at once
) -> AsyncIterator[Running]:
    opened = await open_repository(database or f"sqlite:///{tmp_path / 'restock.sqlite3'}")
    assert isinstance(opened, SQLiteRepository | PostgresRepository)
    repo: WebRepository = opened
    await seed(repo)
    now = [NOW]

    async def channel_budgets() -> Sequence[ChannelBudget]:
        return budgets

    setup = WebSetup(
        language=language,
        zone=ZoneInfo("Asia/Tokyo"),
        channels=("console", "webhook"),
        clock=clock or (lambda: now[0]),
        rules=web_rules(repo, guard, jan_search) if guard is not None else None,
        budgets=channel_budgets,
        tester=tester,
        max_added_per_day=quota[0],
        max_web_watches=quota[1],
    )
    check = checker or fixed_checker(
        Observation(state=Availability.IN_STOCK, reason=HOSTILE_REASON, price=5000, title=HOSTILE)
    )
    web = WebApp(repo.web_views(), repo, WebAccess(token), setup, check)
    server = StatusServer(repo, Metrics(), Politeness(), clock=lambda: now[0], web=web.handle)
    await server.start("127.0.0.1:0")
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield Running(repo, base, client, now)
    finally:
        await server.stop()
        await repo.close()
