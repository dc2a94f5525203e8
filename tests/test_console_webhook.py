"""Console and webhook notifiers, the registry, and the send log line."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from notifiers.base import Notice
from notifiers.console import ConsoleNotifier
from notifiers.registry import NOTIFIERS
from notifiers.webhook import WebhookNotifier
from watcher.core.model import Availability, Event, EventKind, Outcome
from watcher.net.headers import parse_retry_after as retry_after_seconds
from watcher.redact import recipient_hash

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


class FakeClock:
    def monotonic(self) -> float:
        return 0.0

    def now(self) -> datetime:
        return NOW

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("nothing here should wait")


def notice(recipient: str = "-") -> Notice:
    e = Event(
        kind=EventKind.RESTOCK,
        watch_key="mug",
        watch_name="Handmade mug",
        state=Availability.IN_STOCK,
        observed_at=datetime(2026, 11, 23, 4, 59, tzinfo=UTC),
        url="https://example.base.shop/items/12345678",
        store="base",
        price=1980,
        title="手作りマグ",
        id=12,
    )
    return Notice(delivery_id=3, event=e, recipient=recipient, attempt=2)


def test_registry_names_match_classes():
    assert set(NOTIFIERS) == {"console", "webhook", "telegram", "x", "email", "line", "discord"}
    assert all(cls.name == name for name, cls in NOTIFIERS.items())


async def test_console_prints_the_message():
    out = io.StringIO()
    result = await ConsoleNotifier(stream=out).send(notice())
    assert result.outcome is Outcome.SENT
    text = out.getvalue()
    assert "【再入荷】 手作りマグ" in text and "¥1,980" in text and "13:59:00 JST" in text


async def test_console_closed_stream_fails_without_raising():
    out = io.StringIO()
    out.close()
    result = await ConsoleNotifier(stream=out).send(notice())
    assert result.outcome is Outcome.FAILED


def webhook(handler: Any) -> WebhookNotifier:
    return WebhookNotifier(
        url="https://hooks.example/restock",
        transport=httpx.MockTransport(handler),
        clock=FakeClock(),
    )


async def test_webhook_posts_the_contract_with_idempotency_key():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    n = webhook(handler)
    result = await n.send(notice())
    await n.aclose()
    assert result.outcome is Outcome.SENT and result.http_status == 204
    body = json.loads(seen[0].content)
    assert body["event"] == "restock" and body["watch"] == "Handmade mug"
    assert body["price"] == 1980 and body["state"] == "in_stock"
    assert body["observed_at"] == "2026-11-23T04:59:00+00:00"
    assert seen[0].headers["Idempotency-Key"] == "12:-"


@pytest.mark.parametrize(
    ("status", "headers", "outcome", "wait"),
    [
        (200, {}, Outcome.SENT, None),
        (429, {"Retry-After": "30"}, Outcome.RETRY, 30),
        (503, {"Retry-After": "Mon, 23 Nov 2026 05:02:00 GMT"}, Outcome.RETRY, 120),
        (500, {}, Outcome.RETRY, None),
        (404, {}, Outcome.FAILED, None),
        (410, {}, Outcome.FAILED, None),
    ],
)
async def test_webhook_status_map(
    status: int, headers: dict[str, str], outcome: Outcome, wait: int | None
):
    n = webhook(lambda request: httpx.Response(status, headers=headers))
    result = await n.send(notice())
    await n.aclose()
    assert result.outcome is outcome
    if wait is not None:
        assert result.retry_at == NOW + timedelta(seconds=wait)
    if outcome is Outcome.RETRY and wait is None:
        # Attempt 2: backoff between 5 and 10 s.
        assert result.retry_at is not None
        assert NOW + timedelta(seconds=5) <= result.retry_at <= NOW + timedelta(seconds=10)


async def test_webhook_connection_error_is_a_retry():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    result = await webhook(handler).send(notice())
    assert result.outcome is Outcome.RETRY and result.http_status is None


def test_retry_after_parsing():
    assert retry_after_seconds("12", NOW) == 12
    assert retry_after_seconds("nonsense", NOW) is None
    assert retry_after_seconds(None, NOW) is None
    assert retry_after_seconds("300000000000", NOW) == 86_400  # a day at most


async def test_every_send_is_logged_with_hashed_recipient(caplog: Any):
    caplog.set_level(logging.DEBUG, logger="restock.notify")
    await ConsoleNotifier(stream=io.StringIO()).send(notice("me@example.com"))
    record = next(r for r in caplog.records if r.name == "restock.notify")
    line = record.getMessage()
    assert "event=12" in line and "channel=console" in line and "outcome=sent" in line
    assert "latency_ms=" in line and "status=-" in line
    assert recipient_hash("me@example.com") in line
    assert "me@example.com" not in caplog.text


async def test_recipient_language_overrides_the_channel_default():
    out = io.StringIO()
    english = Notice(delivery_id=4, event=notice().event, recipient="-", language="en")
    await ConsoleNotifier(stream=out, language="ja").send(english)
    await ConsoleNotifier(stream=out, language="ja").send(notice())
    first, second = out.getvalue().strip().split("\n\n")
    assert first.startswith("[Restock] 手作りマグ") and "Price: ¥1,980" in first
    assert second.startswith("【再入荷】 手作りマグ")
