"""The status endpoint on a real loopback port: /healthz, /metrics and one-click unsubscribe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from notifiers.base import Notice
from notifiers.email import EmailNotifier
from tests.exposition import value
from watcher.config.load import parse_config
from watcher.core.model import Availability, Event, EventKind, Notify, Observation, Watch
from watcher.net.politeness import Politeness
from watcher.service.metrics import Metrics
from watcher.service.wiring import build_notifiers
from watcher.storage import open_repository
from watcher.storage.interface import CheckOutcome, Repository, WatchDecision
from watcher.unsubscribe import unsubscribe_secret_from_env, unsubscribe_token
from watcher.web.server import StatusServer

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-for-tests-only"
ME = "Me@Example.com"  # written in mixed case in the watchlist
OTHER = "other@example.com"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
WATCHES = [
    Watch(
        key="switch",
        name="Switch 2",
        url="https://www.amazon.co.jp/dp/B0DX000000",
        notify=Notify(email=(ME, OTHER)),
    ),
    Watch(
        key="mug",
        name="Handmade mug",
        url="https://example.base.shop/items/1",
        notify=Notify(email=(ME,)),
    ),
]


@dataclass
class Running:
    repo: Repository
    metrics: Metrics
    base: str
    client: httpx.AsyncClient

    def link(self, watch: str = "switch", to: str = ME) -> str:
        """The https link the e-mail notifier puts into List-Unsubscribe."""
        notifier = EmailNotifier(
            host="127.0.0.1",
            sender="r@example.com",
            public_url=self.base,
            unsubscribe_secret=SECRET,
        )
        event = Event(EventKind.RESTOCK, watch, watch, Availability.IN_STOCK, NOW, id=1)
        [mailto, https] = notifier.unsubscribe_links(Notice(1, event, to))
        assert mailto.startswith("mailto:")
        return https


async def start(database: str, secret: str | None) -> AsyncIterator[Running]:
    repo = await open_repository(database)
    await repo.sync_yaml_watches(WATCHES, NOW)
    metrics = Metrics()
    server = StatusServer(repo, metrics, Politeness(), unsubscribe_secret=secret, clock=lambda: NOW)
    await server.start("127.0.0.1:0")
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            yield Running(repo, metrics, base, client)
    finally:
        await server.stop()
        await repo.close()


@pytest.fixture
async def running(database: str) -> AsyncIterator[Running]:
    async for ran in start(database, SECRET):
        yield ran


@pytest.fixture
async def without_secret(database: str) -> AsyncIterator[Running]:
    async for ran in start(database, None):
        yield ran


async def fire(repo: Repository) -> None:
    """Every watch fires a restock, as the engine records it: one delivery per subscription."""
    for product in await repo.claim_due_products("engine", NOW, 10, timedelta(minutes=1)):
        decisions = [
            WatchDecision(
                s.id,
                {},
                [Event(EventKind.RESTOCK, s.watch.key, s.watch.name, Availability.IN_STOCK, NOW)],
            )
            for s in await repo.load_watches(product.id)
        ]
        observation = Observation(state=Availability.IN_STOCK, reason="test")
        await repo.record_check(
            product.id, observation, decisions, CheckOutcome(next_due_at=NOW), NOW
        )


async def subscribed(repo: Repository) -> set[tuple[str, str]]:
    """(watch, address) pairs that get the next event's e-mail."""
    await fire(repo)
    claimed = await repo.claim_deliveries("probe", NOW, 100, timedelta(seconds=1), channel="email")
    for item in claimed:
        await repo.mark_sent(item.id, NOW)
    return {(item.event.watch_key, item.recipient) for item in claimed}


EVERYONE = {("switch", ME), ("switch", OTHER), ("mug", ME)}


# --- /healthz and /metrics --------------------------------------------------------------------


async def test_healthz_reports_ok_and_the_outbox(running: Running) -> None:
    await fire(running.repo)
    response = await running.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "outbox": {"pending": 3, "sent": 0, "skipped": 0, "failed": 0, "dead": 0},
    }


async def test_healthz_is_unhealthy_when_the_database_is_gone(running: Running) -> None:
    await running.repo.close()
    response = await running.client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"


async def test_metrics_are_in_the_prometheus_text_format(running: Running) -> None:
    running.metrics.deliveries.inc(channel="telegram", result="sent")
    running.metrics.deliveries.inc(channel="telegram", result="sent")
    running.metrics.checks.inc(store="amazon_jp", state="in_stock")
    running.metrics.fetch_seconds.observe(0.3, store="amazon_jp")
    await fire(running.repo)

    response = await running.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE restock_deliveries_total counter" in text.splitlines()
    assert value(text, "restock_deliveries_total", channel="telegram", result="sent") == 2
    assert value(text, "restock_checks_total", state="in_stock", store="amazon_jp") == 1
    assert value(text, "restock_fetch_seconds_bucket", store="amazon_jp", le="0.5") == 1
    assert value(text, "restock_fetch_seconds_bucket", store="amazon_jp", le="0.25") == 0
    assert value(text, "restock_fetch_seconds_count", store="amazon_jp") == 1
    assert value(text, "restock_outbox_deliveries", status="pending") == 3
    assert value(text, "restock_outbox_deliveries", status="dead") == 0


async def test_every_metric_keeps_its_name_and_labels(running: Running) -> None:
    running.metrics.blocks.inc(store="yodobashi")
    running.metrics.events.inc(kind="restock")
    running.metrics.flaps.inc(2)
    running.metrics.parse_failures.inc(store="generic")
    running.metrics.handoff_seconds.observe(0.2, channel="line")
    running.metrics.set_message_quota("line", 1000, 10)

    text = (await running.client.get("/metrics")).text

    assert value(text, "restock_blocks_total", store="yodobashi") == 1
    assert value(text, "restock_events_total", kind="restock") == 1
    assert value(text, "restock_flaps_suppressed_total") == 2
    assert value(text, "restock_parse_failures_total", store="generic") == 1
    assert value(text, "restock_handoff_seconds_bucket", channel="line", le="0.25") == 1
    assert value(text, "restock_message_quota", channel="line", figure="left") == 990
    assert "_created" not in text  # the series the dashboards know, and no others


async def test_two_apps_in_one_process_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.checks.inc(store="amazon_jp", state="in_stock")
    assert first.checks.get(store="amazon_jp", state="in_stock") == 1
    assert second.checks.get(store="amazon_jp", state="in_stock") == 0
    assert (
        value(second.render(), "restock_checks_total", store="amazon_jp", state="in_stock") is None
    )


async def test_unknown_paths_and_methods_are_refused(running: Running) -> None:
    assert (await running.client.get("/admin")).status_code == 404
    assert (await running.client.post("/metrics")).status_code == 405


# --- one-click unsubscribe --------------------------------------------------------------------


async def test_a_one_click_post_ends_that_subscription_only(running: Running) -> None:
    await fire(running.repo)  # a restock mail is still queued for everyone

    response = await running.client.post(running.link("switch", ME), data=ONE_CLICK)

    assert response.status_code == 200
    assert "配信を停止しました" in response.text
    # The queued mail for that subscription is dropped; the others still go out.
    depth = await running.repo.outbox_depth()
    assert (depth["pending"], depth["skipped"]) == (2, 1)
    assert await subscribed(running.repo) == EVERYONE - {("switch", ME)}


async def test_a_second_click_is_answered_the_same(running: Running) -> None:
    link = running.link("mug", ME)
    first = await running.client.post(link, data=ONE_CLICK)
    second = await running.client.post(link, data=ONE_CLICK)
    assert first.status_code == second.status_code == 200
    assert first.text == second.text
    assert await subscribed(running.repo) == EVERYONE - {("mug", ME)}


async def test_a_multipart_one_click_body_is_accepted(running: Running) -> None:
    response = await running.client.post(
        running.link("switch", OTHER), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert response.status_code == 200
    assert await subscribed(running.repo) == EVERYONE - {("switch", OTHER)}


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"token": "0" * 32}, id="wrong-token"),
        pytest.param({"to": OTHER}, id="token-of-another-address"),
        pytest.param({"watch": "mug"}, id="token-of-another-watch"),
        pytest.param({"token": "ｔｏｋｅｎ"}, id="non-ascii-token"),
    ],
)
async def test_a_bad_token_is_forbidden_and_changes_nothing(
    running: Running, tamper: dict[str, str]
) -> None:
    url = urlsplit(running.link("switch", ME))
    params = {k: v[0] for k, v in parse_qs(url.query).items()} | tamper
    response = await running.client.post("/unsubscribe", params=params, data=ONE_CLICK)
    assert response.status_code == 403
    assert await subscribed(running.repo) == EVERYONE


async def test_get_shows_a_confirmation_form_and_unsubscribes_nobody(running: Running) -> None:
    link = running.link("switch", ME)
    page = await running.client.get(link)

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<form method="post">' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert "Switch 2" in page.text and ME in page.text
    assert await subscribed(running.repo) == EVERYONE

    # The button posts the form back to the same URL.
    clicked = await running.client.post(link, data=ONE_CLICK)
    assert clicked.status_code == 200
    assert await subscribed(running.repo) == EVERYONE - {("switch", ME)}


async def test_get_with_a_bad_token_is_forbidden(running: Running) -> None:
    response = await running.client.get(
        "/unsubscribe", params={"watch": "switch", "to": ME, "token": "f" * 32}
    )
    assert response.status_code == 403


async def test_the_page_escapes_what_the_link_carries(running: Running) -> None:
    to = "<script>alert(1)</script>@example.com"
    token = unsubscribe_token(SECRET, to, "switch")
    page = await running.client.get(
        "/unsubscribe", params={"watch": "switch", "to": to, "token": token}
    )
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text


async def test_an_oversized_one_click_body_is_refused_unread(running: Running) -> None:
    body = "List-Unsubscribe=One-Click&pad=" + "x" * 70_000
    response = await running.client.post(
        running.link("switch", ME),
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert await subscribed(running.repo) == EVERYONE


async def test_a_post_without_the_one_click_body_is_refused(running: Running) -> None:
    response = await running.client.post(running.link("switch", ME), data={"x": "y"})
    assert response.status_code == 400
    assert await subscribed(running.repo) == EVERYONE


async def test_an_incomplete_link_is_a_bad_request(running: Running) -> None:
    response = await running.client.get("/unsubscribe", params={"watch": "switch"})
    assert response.status_code == 400


async def test_without_a_secret_there_is_no_unsubscribe_endpoint(without_secret: Running) -> None:
    token = unsubscribe_token(SECRET, ME, "switch")
    params = {"watch": "switch", "to": ME, "token": token}
    client = without_secret.client
    assert (await client.get("/unsubscribe", params=params)).status_code == 404
    assert (await client.post("/unsubscribe", params=params, data=ONE_CLICK)).status_code == 404
    assert await subscribed(without_secret.repo) == EVERYONE


# --- the repository's per-watch unsubscribe ---------------------------------------------------


async def test_end_subscription_is_per_watch_and_ignores_address_case(running: Running) -> None:
    repo = running.repo
    assert await repo.end_subscription("email", "me@EXAMPLE.com", "switch", NOW) is True
    assert await repo.end_subscription("email", ME, "switch", NOW) is False  # already ended
    assert await repo.end_subscription("email", ME, "no-such-watch", NOW) is False
    assert await repo.end_subscription("telegram", ME, "mug", NOW) is False  # wrong channel
    assert await subscribed(repo) == EVERYONE - {("switch", ME)}


async def test_an_unsubscribe_survives_reloading_the_watchlist(running: Running) -> None:
    repo = running.repo
    assert await repo.end_subscription("email", ME, "switch", NOW) is True
    await repo.sync_yaml_watches(WATCHES, NOW + timedelta(minutes=1))
    assert await subscribed(repo) == EVERYONE - {("switch", ME)}


# --- the secret reaches the e-mail links ------------------------------------------------------

WATCHLIST = """
settings:
  server: {listen: "127.0.0.1:8787", public_url: "https://restock.example.com/"}
notifiers:
  email: {host: 127.0.0.1, port: 2525, tls: none, sender: "Restock <r@example.com>"}
watches:
  - {name: Switch 2, url: "https://www.amazon.co.jp/dp/B0DX000000", notify: {email: [a@b.jp]}}
"""


def email_links(text: str, env: dict[str, str]) -> list[str]:
    config = parse_config(text, "watch.yaml", env={})
    notifier = build_notifiers(config, only=["email"], env=env)["email"]
    assert isinstance(notifier, EmailNotifier)
    event = Event(EventKind.RESTOCK, "switch-2", "Switch 2", Availability.IN_STOCK, NOW, id=1)
    return notifier.unsubscribe_links(Notice(1, event, "a@b.jp"))


def test_the_secret_comes_from_the_environment() -> None:
    env = {"RESTOCK_UNSUBSCRIBE_SECRET": SECRET}
    assert unsubscribe_secret_from_env(env) == SECRET
    assert unsubscribe_secret_from_env({"RESTOCK_UNSUBSCRIBE_SECRET": "  "}) is None
    [_, https] = email_links(WATCHLIST, env)
    token = unsubscribe_token(SECRET, "a@b.jp", "switch-2")
    assert https == (
        f"https://restock.example.com/unsubscribe?watch=switch-2&to=a%40b.jp&token={token}"
    )


def test_no_https_link_without_the_secret_or_without_the_server() -> None:
    assert len(email_links(WATCHLIST, {})) == 1
    no_server = WATCHLIST.replace(
        'server: {listen: "127.0.0.1:8787", public_url: "https://restock.example.com/"}',
        "default_interval: 5m",
    )
    assert len(email_links(no_server, {"RESTOCK_UNSUBSCRIBE_SECRET": SECRET})) == 1
