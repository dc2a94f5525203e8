"""X notifier: tweepy's requests-based client faked with `responses`; every error-map row."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from notifiers.base import Notice
from notifiers.render import render_x
from notifiers.x import XNotifier
from notifiers.x_text import X_MAX_WEIGHT, weighted_length, x_weight_of_post
from watcher.core.model import Availability, Event, EventKind, Outcome

TWEETS = "https://api.twitter.com/2/tweets"
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.wall = NOW

    def monotonic(self) -> float:
        return (self.wall - NOW).total_seconds()

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        await asyncio.sleep(0)


def event(
    title: str = "ニンテンドースイッチ2 本体", age: timedelta = timedelta(minutes=1)
) -> Event:
    return Event(
        kind=EventKind.RESTOCK,
        watch_key="sw2",
        watch_name="Switch 2",
        state=Availability.IN_STOCK,
        observed_at=NOW - age,
        url="https://www.amazon.co.jp/dp/B0DX000000",
        store="amazon_jp",
        price=49980,
        title=title,
        seller="Amazon.co.jp",
        id=5,
    )


def notice(**kw: Any) -> Notice:
    return Notice(delivery_id=1, event=event(**kw), recipient="public")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **kw: Any) -> XNotifier:
    return XNotifier(
        consumer_key="ck",
        consumer_secret="cs",
        access_token="at",
        access_token_secret="ats",
        clock=clock,
        **kw,
    )


def created() -> dict[str, Any]:
    return {"data": {"id": "1860000000000000000", "text": "..."}}


# --- weighted length -------------------------------------------------------------------------


def test_weights_follow_the_x_rule():
    assert weighted_length("abc") == 3
    assert weighted_length("é") == 1  # U+00E9 is inside U+0000-10FF
    assert weighted_length("在庫") == 4
    assert weighted_length("カナ") == 4
    assert weighted_length("🎮") == 2  # one code point outside the light ranges
    assert weighted_length("\u2014\u2033") == 2  # em dash and double prime count 1 each
    assert weighted_length("", urls=2) == 46


@pytest.mark.parametrize(
    "title",
    ["任天堂" * 200, "🎮🔥" * 150, "Switch " * 80, "ポケモン🎴 card " * 40],
    ids=["kanji", "emoji", "latin", "mixed"],
)
def test_posts_fit_280_by_shortening_only_the_title(title: str):
    post = render_x(event(title=title))
    assert x_weight_of_post(post) <= X_MAX_WEIGHT
    assert "¥49,980" in post and "https://www.amazon.co.jp/dp/B0DX000000" in post
    assert "JST" in post  # the time keeps otherwise identical posts unique
    assert post.splitlines()[0].endswith("…")


def test_short_title_is_kept_whole():
    post = render_x(event(title="スイッチ2"))
    assert post.splitlines()[0] == "【再入荷】 スイッチ2"


# --- sending ---------------------------------------------------------------------------------


async def test_posts_and_spends_budget(api: responses.RequestsMock, clock: FakeClock):
    api.post(TWEETS, json=created(), status=201)
    n = make(clock, daily_budget=3, url_post_cost=2)
    result = await n.send(notice())
    assert result.outcome is Outcome.SENT
    body = json.loads(api.calls[0].request.body)
    assert x_weight_of_post(body["text"]) <= 280
    assert await n.budget_left() == 1
    assert (await n.send(notice())).outcome is Outcome.SKIPPED  # a URL post costs 2
    assert len(api.calls) == 1


async def test_budget_comes_back_after_24_hours(api: responses.RequestsMock, clock: FakeClock):
    api.post(TWEETS, json=created(), status=201)
    n = make(clock, daily_budget=1)
    await n.send(notice())
    clock.wall += timedelta(hours=24, seconds=1)
    fresh = Notice(2, replace(event(), observed_at=clock.wall), "public")
    assert (await n.send(fresh)).outcome is Outcome.SENT
    assert len(api.calls) == 2


async def test_include_url_off_posts_without_link(api: responses.RequestsMock, clock: FakeClock):
    api.post(TWEETS, json=created(), status=201)
    await make(clock, include_url=False).send(notice())
    assert "https://" not in json.loads(api.calls[0].request.body)["text"]


async def test_stale_events_are_skipped_before_any_request(
    api: responses.RequestsMock, clock: FakeClock
):
    result = await make(clock).send(notice(age=timedelta(minutes=16)))
    assert result.outcome is Outcome.SKIPPED
    assert "stale" in result.detail
    assert len(api.calls) == 0


def _error(status: int, message: str = "", headers: dict[str, str] | None = None) -> Any:
    body = {"detail": message, "title": "err", "status": status} if message else {"title": "e"}
    return {"json": body, "status": status, "headers": headers or {}}


async def test_duplicate_content_is_skipped(api: responses.RequestsMock, clock: FakeClock):
    api.post(TWEETS, **_error(403, "You are not allowed to create a Tweet with duplicate content."))
    result = await make(clock).send(notice())
    assert result.outcome is Outcome.SKIPPED
    assert result.detail == "duplicate content"


@pytest.mark.parametrize("status", [401, 403])
async def test_other_auth_errors_fail(api: responses.RequestsMock, clock: FakeClock, status: int):
    api.post(TWEETS, **_error(status, "You are not permitted to perform this action."))
    result = await make(clock).send(notice())
    assert result.outcome is Outcome.FAILED
    assert result.http_status == status


async def test_429_retries_at_rate_limit_reset(api: responses.RequestsMock, clock: FakeClock):
    reset = int((NOW + timedelta(minutes=7)).timestamp())
    api.post(TWEETS, **_error(429, "Too Many Requests", {"x-rate-limit-reset": str(reset)}))
    result = await make(clock).send(notice())
    assert result.outcome is Outcome.RETRY
    assert result.retry_at == datetime.fromtimestamp(reset, UTC)


async def test_429_with_daily_cap_spent_uses_24h_reset(
    api: responses.RequestsMock, clock: FakeClock
):
    short = int((NOW + timedelta(minutes=7)).timestamp())
    daily = int((NOW + timedelta(hours=9)).timestamp())
    headers = {
        "x-rate-limit-reset": str(short),
        "x-user-limit-24hour-remaining": "0",
        "x-user-limit-24hour-reset": str(daily),
    }
    api.post(TWEETS, **_error(429, "Too Many Requests", headers))
    result = await make(clock).send(notice())
    assert result.retry_at == datetime.fromtimestamp(daily, UTC)


async def test_5xx_backs_off(api: responses.RequestsMock, clock: FakeClock):
    api.post(TWEETS, **_error(503, "Service Unavailable"))
    result = await make(clock).send(notice())
    assert result.outcome is Outcome.RETRY
    assert result.http_status == 503
    assert result.retry_at is not None and result.retry_at > NOW


async def test_connection_error_is_a_retry(api: responses.RequestsMock, clock: FakeClock):
    api.post(TWEETS, body=requests.ConnectionError("refused"))
    result = await make(clock).send(notice())
    assert result.outcome is Outcome.RETRY


# --- stalled connections -----------------------------------------------------------------------


@pytest.fixture
async def silent_proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[int]]:
    """A loopback HTTPS proxy that accepts connections and never answers; yields the accepts."""
    accepted: list[int] = []
    stop = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await stop.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield accepted
    stop.set()
    server.close()
    await server.wait_closed()


async def test_a_stalled_connection_times_out_into_a_retry(silent_proxy: list[int]):
    clock = FakeClock()
    n = make(clock, request_timeout=(0.5, 0.5))
    # The proxy never answers: a send that returns at all was cut short by its own timeout.
    result = await n.send(notice())
    assert silent_proxy, "the request never reached the loopback proxy"
    assert result.outcome is Outcome.RETRY
    assert result.retry_at is not None and result.retry_at > NOW
    assert await n.budget_left() == 17  # nothing was spent on a post that did not go


async def test_a_send_that_never_returns_is_bounded_and_retried():
    release = threading.Event()

    returned = threading.Event()

    class StuckClient:
        def create_tweet(self, **_: Any) -> None:
            release.wait(10)  # a worker thread stuck inside the HTTP library
            returned.set()

    clock = FakeClock()
    n = make(clock, client=StuckClient(), send_timeout=0.3)
    try:
        result = await n.send(notice())
        # Answered while the library call is still stuck: the send did not wait for it.
        assert not returned.is_set()
    finally:
        release.set()
    assert result.outcome is Outcome.RETRY
    assert "timed out" in result.detail
