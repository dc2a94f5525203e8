"""The LINE notifier against a loopback stand-in of the Messaging API."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifiers.base import Notice, Outcome
from notifiers.line import LineNotifier, retry_key
from notifiers.line_api import EndpointPacer, quota_from
from notifiers.line_flex import flex_message
from notifiers.line_quota import Quota, QuotaPolicy, plan_fan_out
from tests.exposition import value
from tests.line_standin import TOKEN, LineStandIn
from watcher.core.model import Availability, Event, EventKind
from watcher.service.metrics import Metrics

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


class FakeClock:
    """Time jumps to whoever sleeps; nothing really waits."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


def event(eid: int = 7, title: str | None = "Nintendo Switch 2", url: str | None = None) -> Event:
    return Event(
        kind=EventKind.RESTOCK,
        watch_key="sw2",
        watch_name="Switch 2",
        state=Availability.IN_STOCK,
        observed_at=T0,
        url=url or "https://www.amazon.co.jp/dp/B0DX000000?tag=aff-22",
        store="amazon_jp",
        price=49980,
        title=title,
        id=eid,
    )


def user(n: int) -> str:
    return f"U{n:032x}"


def notices(count: int, eid: int = 7, first_id: int = 1, **kw: Any) -> list[Notice]:
    return [
        Notice(
            delivery_id=first_id + i,
            event=event(eid),
            recipient=user(first_id + i),
            subscription_id=first_id + i,
            **kw,
        )
        for i in range(count)
    ]


def line_notifier(standin: LineStandIn, clock: FakeClock, **kw: Any) -> LineNotifier:
    return LineNotifier(channel_access_token=TOKEN, api_base_url=standin.url, clock=clock, **kw)


async def test_1200_recipients_go_out_in_three_multicasts_once_each() -> None:
    async with LineStandIn(limit=5000) as line:
        notifier = line_notifier(line, FakeClock())
        batch = notices(1200)
        results = await notifier.send_batch(batch)
        await notifier.aclose()
    sent = line.message_requests()
    assert [r.path for r in sent] == ["/v2/bot/message/multicast"] * 3
    assert [len(r.body["to"]) for r in sent] == [500, 500, 200]
    assert sorted(line.delivered) == sorted(n.recipient for n in batch)
    assert all(r.outcome is Outcome.SENT for r in results)
    keys = {r.headers["x-line-retry-key"] for r in sent}
    assert len(keys) == 3  # one key per request


async def test_one_recipient_is_a_push_with_a_japanese_flex_message() -> None:
    async with LineStandIn(limit=None) as line:
        notifier = line_notifier(line, FakeClock())
        [result] = await notifier.send_batch(notices(1))
        await notifier.aclose()
    [request] = line.message_requests()
    assert request.path == "/v2/bot/message/push"
    assert request.body["to"] == user(1)
    [message] = request.body["messages"]
    assert message["type"] == "flex"
    assert message["altText"].startswith("【再入荷】 Nintendo Switch 2")
    text = json.dumps(message, ensure_ascii=False)
    assert "¥49,980" in text and "在庫あり" in text and "Amazon.co.jp" in text
    button = message["contents"]["footer"]["contents"][0]
    assert button["action"] == {
        "type": "uri",
        "label": "ストアで開く",
        "uri": "https://www.amazon.co.jp/dp/B0DX000000",  # tracking tag dropped
    }
    assert result.outcome is Outcome.SENT


async def test_recipients_language_splits_the_message() -> None:
    async with LineStandIn() as line:
        notifier = line_notifier(line, FakeClock())
        batch = notices(3) + notices(2, first_id=10, language="en")
        await notifier.send_batch(batch)
        await notifier.aclose()
    texts = sorted(r.body["messages"][0]["altText"] for r in line.message_requests())
    assert texts == ["[Restock] Nintendo Switch 2", "【再入荷】 Nintendo Switch 2"]


def test_retry_key_is_a_function_of_the_request() -> None:
    a = retry_key("event:7", "ja", [user(1), user(2)])
    assert a == retry_key("event:7", "ja", [user(2), user(1)])  # order does not matter
    assert a != retry_key("event:8", "ja", [user(1), user(2)])
    assert a != retry_key("event:7", "en", [user(1), user(2)])
    assert a != retry_key("event:7", "ja", [user(1)])
    assert len(a) == 36 and a.count("-") == 4


async def test_a_crash_between_send_and_record_repeats_nothing() -> None:
    """The process died after LINE took the multicast; the outbox hands the same deliveries to
    a new process, whose resend carries the same retry key and is refused with 409."""
    async with LineStandIn(limit=5000) as line:
        first = line_notifier(line, FakeClock())
        await first.send_batch(notices(700))  # results never recorded: the process "died"
        await first.aclose()
        second = line_notifier(line, FakeClock())
        results = await second.send_batch(notices(700, attempt=2))
        await second.aclose()
    statuses = [r.http_status for r in results]
    assert set(statuses) == {409}
    assert all(r.outcome is Outcome.SENT for r in results)
    assert len(line.delivered) == 700  # each user got it once
    keys = [r.headers["x-line-retry-key"] for r in line.message_requests()]
    assert keys[:2] == keys[2:]


async def test_5xx_after_acceptance_is_retried_and_not_delivered_twice() -> None:
    async with LineStandIn(script=[500], accept_then_fail=True) as line:
        notifier = line_notifier(line, FakeClock())
        [first] = await notifier.send_batch(notices(1))
        [again] = await notifier.send_batch(notices(1, attempt=2))
        await notifier.aclose()
    assert first.outcome is Outcome.RETRY and first.retry_at is not None
    assert again.outcome is Outcome.SENT and again.http_status == 409
    assert line.delivered == [user(1)]


async def test_429_rate_limit_retries_at_retry_after() -> None:
    clock = FakeClock()
    async with LineStandIn(script=[429], retry_after="30") as line:
        notifier = line_notifier(line, clock)
        result, _ = await notifier.send_batch(notices(2))
        await notifier.aclose()
    assert result.outcome is Outcome.RETRY
    assert result.retry_at == clock.now() + timedelta(seconds=30)


async def test_network_failure_is_a_retry() -> None:
    async with LineStandIn() as line:
        url = line.url
    notifier = LineNotifier(channel_access_token=TOKEN, api_base_url=url, clock=FakeClock())
    [result] = await notifier.send_batch(notices(1))
    await notifier.aclose()
    assert result.outcome is Outcome.RETRY
    assert "unreachable" in result.detail


async def test_bad_request_fails_for_good() -> None:
    async with LineStandIn(script=[400]) as line:
        notifier = line_notifier(line, FakeClock())
        [result] = await notifier.send_batch(notices(1))
        await notifier.aclose()
    assert result.outcome is Outcome.FAILED and result.http_status == 400


@pytest.mark.parametrize(
    ("policy", "sent", "refused"), [("stop", 0, 150), ("oldest_first", 100, 50)]
)
async def test_quota_policy_when_the_fan_out_does_not_fit(
    policy: str, sent: int, refused: int
) -> None:
    async with LineStandIn(limit=1000, used=900) as line:
        notifier = line_notifier(line, FakeClock(), quota_policy=policy)
        batch = list(reversed(notices(150)))  # the oldest subscriptions come last in the batch
        results = await notifier.send_batch(batch)
        await notifier.aclose()
    by_user = {n.recipient: r for n, r in zip(batch, results, strict=True)}
    outcomes = [r.outcome for r in results]
    assert outcomes.count(Outcome.SENT) == sent
    assert outcomes.count(Outcome.FAILED) == refused
    assert all(r.detail.startswith("quota") for r in results if r.outcome is Outcome.FAILED)
    assert sorted(line.delivered) == [user(i) for i in range(1, sent + 1)]  # the oldest ones
    if sent:
        assert by_user[user(1)].outcome is Outcome.SENT
        assert by_user[user(150)].outcome is Outcome.FAILED


async def test_budget_is_counted_down_between_readings() -> None:
    async with LineStandIn(limit=600) as line:
        notifier = line_notifier(line, FakeClock())
        first = await notifier.send_batch(notices(500, eid=1))
        second = await notifier.send_batch(notices(200, eid=2, first_id=1000))
        await notifier.aclose()
    assert {r.outcome for r in first} == {Outcome.SENT}
    assert {r.outcome for r in second} == {Outcome.FAILED}  # 100 left, 200 wanted: stop
    quota_reads = [r for r in line.requests if r.path == "/v2/bot/message/quota"]
    assert len(quota_reads) == 1  # the second event used the counted-down figure
    assert notifier.quota is not None and notifier.quota.left == 100


async def test_line_monthly_limit_answer_exhausts_the_budget() -> None:
    clock = FakeClock()
    async with LineStandIn(limit=10) as line:
        notifier = line_notifier(line, clock)
        await notifier.refresh_quota()
        line.used = 10  # spent by someone else since our reading
        result, *_ = await notifier.send_batch(notices(5))
        later = await notifier.send_batch(notices(1, eid=8, first_id=50))
        await notifier.aclose()
    assert result.outcome is Outcome.FAILED and result.detail.startswith("quota")
    assert later[0].outcome is Outcome.FAILED
    assert len(line.message_requests()) == 1  # the later event was not even tried
    assert line.delivered == []


async def test_unreadable_quota_does_not_hold_alerts_back() -> None:
    async with LineStandIn(quota_status=500) as line:
        notifier = line_notifier(line, FakeClock())
        results = await notifier.send_batch(notices(3))
        await notifier.aclose()
    assert {r.outcome for r in results} == {Outcome.SENT}
    assert notifier.quota is None


async def test_quota_figures_reach_metrics() -> None:
    metrics = Metrics()
    async with LineStandIn(limit=1000, used=10) as line:
        notifier = line_notifier(line, FakeClock())
        notifier.on_quota = lambda q: metrics.set_message_quota("line", q.limit, q.used)
        await notifier.send_batch(notices(5))
        await notifier.aclose()
    text = metrics.render()
    assert value(text, "restock_message_quota", channel="line", figure="left") == 985
    assert value(text, "restock_message_quota", channel="line", figure="used") == 15


def test_fresh_reading_never_shrinks_our_count_within_a_month() -> None:
    ours = Quota(1000, 400, T0)
    assert ours.merged_with(Quota(1000, 350, T0 + timedelta(minutes=5))).used == 400
    assert ours.merged_with(Quota(1000, 450, T0 + timedelta(minutes=5))).used == 450
    next_month = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)  # 09:00 JST on January 1st
    assert ours.merged_with(Quota(1000, 3, next_month)).used == 3


def test_plan_without_limit_or_within_it_sends_everyone() -> None:
    batch = notices(4)
    assert plan_fan_out(batch, None, QuotaPolicy.STOP).send == batch
    assert plan_fan_out(batch, 4, QuotaPolicy.STOP).refused == []
    assert plan_fan_out(batch, 0, QuotaPolicy.OLDEST_FIRST).send == []


@pytest.mark.parametrize(
    ("limit", "consumption"),
    [
        ({"type": "limited"}, {"totalUsage": 1}),
        ({"type": "limited", "value": "5"}, {"totalUsage": 1}),
        ({"type": "odd", "value": 5}, {"totalUsage": 1}),
        ({"type": "none"}, {"totalUsage": -1}),
        ({"type": "none"}, {"totalUsage": True}),
        ([], {"totalUsage": 1}),
        ({"type": "none"}, None),
    ],
)
def test_unexpected_quota_answers_are_not_read(limit: Any, consumption: Any) -> None:
    assert quota_from(limit, consumption, FakeClock()) is None


@pytest.mark.parametrize(
    "title",
    [
        "\u202eevil\u202c title\x00 with\ncontrols",
        "",
        None,
        "<b>bold</b> {json} \"quoted\" 'x' \\ back",
        "x" * 5000,
    ],
)
def test_hostile_titles_stay_plain_valid_flex(title: str | None) -> None:
    message = flex_message(event(title=title))
    texts = _texts(message["contents"])
    assert all(texts) and all(len(t) <= 200 for t in texts)
    assert not any(ch in t for t in texts for ch in "\x00\n\u202e\u202c")
    assert len(message["altText"]) <= 400
    assert len(json.dumps(message).encode()) < 30_000


def test_unsafe_link_gets_no_button() -> None:
    message = flex_message(event(url="javascript:alert(1)"))
    assert "footer" not in message["contents"]
    long = flex_message(event(url="https://www.amazon.co.jp/dp/B0?" + "q=" + "x" * 1200))
    assert "footer" not in long["contents"]


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "text" else []
        return own + [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


async def test_multicast_endpoint_is_paced_under_its_limit() -> None:
    clock = FakeClock()
    pacer = EndpointPacer(clock, {"/multicast": 3})
    for _ in range(3):
        await pacer.acquire("/multicast")
    await pacer.acquire("/push")  # another endpoint has its own window
    assert clock.sleeps == []
    await pacer.acquire("/multicast")
    assert clock.sleeps == [1.0]


async def test_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with LineStandIn(script=[400]) as line:
        notifier = line_notifier(line, FakeClock())
        await notifier.send_batch(notices(2))
        logging.getLogger("httpx").info("request with Bearer %s", TOKEN)
        await notifier.aclose()
    assert caplog.records
    assert TOKEN not in caplog.text
