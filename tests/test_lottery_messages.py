"""A `lottery_open` event on every channel: the webhook payload and the ja/en texts."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from notifiers.base import Notice, Outcome
from notifiers.console import ConsoleNotifier
from notifiers.render import (
    email_subject,
    render_email_html,
    render_telegram,
    render_text,
    render_x,
)
from notifiers.webhook import WebhookNotifier
from notifiers.x_text import weighted_length
from watcher.core.model import Availability, Event, EventKind, Observation
from watcher.storage.codec import event_from_json, event_to_json

JST = timezone(timedelta(hours=9))
DEADLINE = datetime(2026, 12, 10, 23, 59, tzinfo=JST)
LOTTERY = Event(
    kind=EventKind.LOTTERY_OPEN,
    watch_key="switch-2",
    watch_name="Switch 2",
    state=Availability.LOTTERY,
    observed_at=datetime(2026, 12, 1, 1, 0, 5, tzinfo=UTC),
    url="https://www.example-shop.jp/lottery/switch2?utm_source=mail",
    store="generic",
    price=49980,
    title="Nintendo Switch 2 <限定>",
    lottery_deadline=DEADLINE,
    id=7,
)
NO_DEADLINE = replace(LOTTERY, lottery_deadline=None)


def test_webhook_payload_names_the_event_and_the_deadline_with_its_offset() -> None:
    payload = LOTTERY.to_webhook_json()
    assert payload["event"] == "lottery_open"
    assert payload["state"] == "lottery"
    assert payload["lottery_deadline"] == "2026-12-10T23:59:00+09:00"
    assert payload["observed_at"] == "2026-12-01T01:00:05+00:00"
    assert NO_DEADLINE.to_webhook_json()["lottery_deadline"] is None
    restock = replace(LOTTERY, kind=EventKind.RESTOCK, state=Availability.IN_STOCK)
    assert "lottery_deadline" not in restock.to_webhook_json()  # other payloads unchanged


async def test_webhook_posts_the_lottery_payload() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    notifier = WebhookNotifier(url="https://hooks.example/restock", client=client)
    result = await notifier.send(Notice(delivery_id=1, event=LOTTERY, recipient="-", attempt=1))
    await notifier.aclose()
    await client.aclose()
    assert result.outcome is Outcome.SENT
    body = json.loads(seen[0].content)
    assert body["event"] == "lottery_open"
    assert body["lottery_deadline"] == "2026-12-10T23:59:00+09:00"


def test_stored_event_keeps_its_deadline() -> None:
    again = event_from_json(7, event_to_json(LOTTERY))
    assert again == LOTTERY
    assert again.lottery_deadline is not None and again.lottery_deadline.utcoffset() == timedelta(
        hours=9
    )
    assert event_from_json(7, event_to_json(NO_DEADLINE)).lottery_deadline is None


def test_japanese_text_says_lottery_and_the_deadline_in_jst() -> None:
    text = render_text(LOTTERY)
    lines = text.splitlines()
    assert lines[0] == "【抽選受付開始】 Nintendo Switch 2 <限定>"
    assert "状態: 抽選受付中" in lines
    assert "応募締切: 2026-12-10 23:59 JST" in lines
    assert lines.index("状態: 抽選受付中") < lines.index("応募締切: 2026-12-10 23:59 JST")
    assert lines[-1] == "https://www.example-shop.jp/lottery/switch2"


def test_english_text_says_lottery_and_the_deadline() -> None:
    text = render_text(LOTTERY, "en")
    assert text.startswith("[Lottery open] Nintendo Switch 2")
    assert "State: Lottery open" in text
    assert "Apply by: 2026-12-10 23:59 JST" in text


def test_deadline_in_another_zone_is_shown_in_jst() -> None:
    utc_deadline = replace(LOTTERY, lottery_deadline=datetime(2026, 12, 10, 14, 59, tzinfo=UTC))
    assert "応募締切: 2026-12-10 23:59 JST" in render_text(utc_deadline)


@pytest.mark.parametrize("language", ["ja", "en"])
def test_no_deadline_no_deadline_line(language: str) -> None:
    text = render_text(NO_DEADLINE, language)  # type: ignore[arg-type]
    assert "応募締切" not in text and "Apply by" not in text
    naive = replace(LOTTERY, lottery_deadline=datetime(2026, 12, 10, 23, 59))
    assert "応募締切" not in render_text(naive)


def test_telegram_and_email_escape_the_title_and_carry_the_deadline() -> None:
    telegram = render_telegram(LOTTERY)
    assert telegram.startswith("<b>【抽選受付開始】 Nintendo Switch 2 &lt;限定&gt;</b>")
    assert "応募締切: 2026-12-10 23:59 JST" in telegram
    html = render_email_html(LOTTERY, "en")
    assert "<th align=left>Apply by</th><td>2026-12-10 23:59 JST</td>" in html
    assert "&lt;限定&gt;" in html and "<限定>" not in html
    assert email_subject(LOTTERY) == "【抽選受付開始】Nintendo Switch 2 <限定>"
    assert email_subject(LOTTERY, "en") == "[Lottery open] Nintendo Switch 2 <限定>"


def test_x_post_fits_with_the_deadline_even_with_a_long_title() -> None:
    long = replace(LOTTERY, title="抽選販売 " + "とても長い商品名" * 60)
    for language in ("ja", "en"):
        post = render_x(long, language)  # type: ignore[arg-type]
        assert weighted_length(post) <= 280
        assert "2026-12-10 23:59 JST" in post


async def test_console_prints_the_lottery_message() -> None:
    out = io.StringIO()
    result = await ConsoleNotifier(stream=out).send(
        Notice(delivery_id=1, event=LOTTERY, recipient="-", attempt=1)
    )
    assert result.outcome is Outcome.SENT
    assert "【抽選受付開始】" in out.getvalue()
    assert "応募締切: 2026-12-10 23:59 JST" in out.getvalue()


def test_check_json_carries_the_lottery_deadline_as_iso_text() -> None:
    observation = Observation(Availability.LOTTERY, "text:抽選受付中", lottery_deadline=DEADLINE)
    data = json.loads(json.dumps(observation.to_json()))
    assert data["state"] == "lottery"
    assert data["lottery_deadline"] == "2026-12-10T23:59:00+09:00"
    assert Observation(Availability.IN_STOCK, "x").to_json()["lottery_deadline"] is None
