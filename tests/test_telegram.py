"""Telegram notifier against a Bot API faked with respx (form-encoded requests, getMe mocked)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from notifiers.base import Notice
from notifiers.pacing import Pacer
from notifiers.telegram import TelegramNotifier
from watcher.core.model import Availability, Event, EventKind, Outcome

TOKEN = "123456:AAH-very-secret-token_value"
API = "https://tg.example.test"
BOT = f"{API}/bot{TOKEN}"
T0 = datetime(2026, 11, 23, 3, 12, 5, tzinfo=UTC)


class FakeClock:
    """Time jumps to whoever sleeps; sleeps are recorded, nothing really waits."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t = max(self.t, self.t + seconds)
        await asyncio.sleep(0)


def event(title: str = "Nintendo Switch 2", url: str | None = None, eid: int = 7) -> Event:
    return Event(
        kind=EventKind.RESTOCK,
        watch_key="sw2",
        watch_name="Switch 2",
        state=Availability.IN_STOCK,
        observed_at=T0,
        url=url or "https://www.amazon.co.jp/dp/B0DX000000?tag=aff-22&th=1",
        store="amazon_jp",
        price=49980,
        title=title,
        seller="Amazon.co.jp",
        id=eid,
    )


def notice(chat: str = "111", title: str = "Nintendo Switch 2", eid: int = 7) -> Notice:
    return Notice(delivery_id=eid, event=event(title, eid=eid), recipient=chat)


def ok_message(chat_id: Any = 111) -> dict[str, Any]:
    return {
        "ok": True,
        "result": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": int(chat_id), "type": "private"},
            "text": "x",
        },
    }


class FakeBotApi:
    """Records sendMessage calls; answers from a script of (status, json) or OK."""

    def __init__(self, router: respx.MockRouter, clock: FakeClock | None = None) -> None:
        self.calls: list[dict[str, str]] = []
        self.times: list[float] = []
        self.script: list[tuple[int, dict[str, Any]] | Exception] = []
        self.clock = clock
        router.post(f"{BOT}/getMe").respond(
            json={
                "ok": True,
                "result": {"id": 123456, "is_bot": True, "first_name": "Restock", "username": "rb"},
            }
        )
        router.post(f"{BOT}/sendMessage").mock(side_effect=self.send_message)

    def send_message(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.calls.append(form)
        if self.clock:
            self.times.append(self.clock.t)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            status, body = step
            return httpx.Response(status, json=body)
        return httpx.Response(200, json=ok_message(form["chat_id"]))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield FakeBotApi(router, clock)


@pytest.fixture
async def notifier(clock: FakeClock, api: FakeBotApi) -> Any:
    n = TelegramNotifier(token=TOKEN, api_base_url=API, clock=clock)
    await n.start()
    yield n
    await n.aclose()


async def test_sends_html_with_button_and_preview(notifier: TelegramNotifier, api: FakeBotApi):
    result = await notifier.send(notice())
    assert result.outcome is Outcome.SENT
    call = api.calls[0]
    assert call["parse_mode"] == "HTML"
    assert call["chat_id"] == "111"
    assert "【再入荷】 Nintendo Switch 2" in call["text"]
    assert "¥49,980" in call["text"]
    assert "2026-11-23 12:12:05 JST" in call["text"]
    canonical = "https://www.amazon.co.jp/dp/B0DX000000?th=1"
    markup = json.loads(call["reply_markup"])
    assert markup["inline_keyboard"][0][0] == {"text": "ストアで開く", "url": canonical}
    assert json.loads(call["link_preview_options"])["url"] == canonical
    assert "tag=aff" not in call["text"]


async def test_hostile_title_renders_literally(notifier: TelegramNotifier, api: FakeBotApi):
    hostile = '<b>FREE</b> <a href="https://evil.example">click</a> & <script>'
    await notifier.send(notice(title=hostile))
    text = api.calls[0]["text"]
    assert "&lt;b&gt;FREE&lt;/b&gt;" in text
    assert '<a href="https://evil' not in text
    assert "&amp; &lt;script&gt;" in text


async def test_429_pauses_then_resends_same_message_once(
    notifier: TelegramNotifier, api: FakeBotApi, clock: FakeClock
):
    api.script = [(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 7}})]
    start = clock.t
    result = await notifier.send(notice())
    assert result.outcome is Outcome.SENT
    assert len(api.calls) == 2
    assert api.calls[0]["text"] == api.calls[1]["text"]
    assert api.times[1] - start >= 7


async def test_429_that_persists_becomes_retry_at(clock: FakeClock, api: FakeBotApi):
    n = TelegramNotifier(token=TOKEN, api_base_url=API, clock=clock, max_flood_waits=1)
    flood = (429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 30}})
    api.script = [flood, flood]
    result = await n.send(notice())
    await n.aclose()
    assert result.outcome is Outcome.RETRY
    assert result.http_status == 429
    assert result.retry_at is not None and result.retry_at >= clock.now() + timedelta(seconds=29)
    assert len(api.calls) == 2


@pytest.mark.parametrize(
    ("status", "description"),
    [
        (403, "Forbidden: bot was blocked by the user"),
        (403, "Forbidden: bot was kicked from the group chat"),
        (400, "Bad Request: chat not found"),
    ],
)
async def test_gone_chats_deactivate_and_are_not_retried(
    notifier: TelegramNotifier, api: FakeBotApi, status: int, description: str
):
    api.script = [(status, {"ok": False, "error_code": status, "description": description})]
    result = await notifier.send(notice())
    assert result.outcome is Outcome.FAILED
    assert result.deactivate_recipient is True
    assert result.http_status == status
    assert len(api.calls) == 1


async def test_other_bad_request_fails_without_deactivating(
    notifier: TelegramNotifier, api: FakeBotApi
):
    body = {"ok": False, "error_code": 400, "description": "Bad Request: can't parse entities"}
    api.script = [(400, body)]
    result = await notifier.send(notice())
    assert result.outcome is Outcome.FAILED
    assert not result.deactivate_recipient


async def test_migrated_chat_is_resent_to_new_id(notifier: TelegramNotifier, api: FakeBotApi):
    api.script = [
        (
            400,
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -1001234567890},
            },
        )
    ]
    result = await notifier.send(notice(chat="-4242"))
    assert result.outcome is Outcome.SENT
    assert result.new_recipient == "-1001234567890"
    assert [c["chat_id"] for c in api.calls] == ["-4242", "-1001234567890"]


async def test_server_error_is_a_retry(notifier: TelegramNotifier, api: FakeBotApi):
    api.script = [(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})]
    result = await notifier.send(notice())
    assert result.outcome is Outcome.RETRY
    assert result.retry_at is not None


async def test_batch_for_one_chat_is_one_message(notifier: TelegramNotifier, api: FakeBotApi):
    batch = [notice(title=f"商品{i}", eid=i) for i in range(3)] + [notice(chat="222", eid=9)]
    results = await notifier.send_batch(batch)
    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    assert sorted(c["chat_id"] for c in api.calls) == ["111", "222"]
    merged = next(c for c in api.calls if c["chat_id"] == "111")
    assert all(f"商品{i}" in merged["text"] for i in range(3))
    assert len(json.loads(merged["reply_markup"])["inline_keyboard"]) == 3


async def test_long_titles_are_shortened_to_fit_4096(notifier: TelegramNotifier, api: FakeBotApi):
    batch = [notice(title="超" * 3000 + f"#{i}", eid=i) for i in range(10)]
    await notifier.send_batch(batch)
    for call in api.calls:
        assert len(call["text"]) <= 4096
        assert "¥49,980" in call["text"]  # the facts survive; only titles were cut
    assert sum(call["text"].count("【再入荷】") for call in api.calls) == 10


async def test_per_chat_sends_are_a_second_apart(
    notifier: TelegramNotifier, api: FakeBotApi, clock: FakeClock
):
    # Separate batches to one chat cannot merge: the pacer must space them.
    for i in range(3):
        await notifier.send(notice(eid=i))
    assert [b - a >= 1.0 for a, b in zip(api.times, api.times[1:], strict=False)] == [True, True]


async def test_token_never_logged(clock: FakeClock, api: FakeBotApi, caplog: Any):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "telegram", "telegram.Bot", "restock.notify"):
        caplog.set_level(logging.DEBUG, logger=name)
    n = TelegramNotifier(token=TOKEN, api_base_url=API, clock=clock)
    await n.start()
    await n.send(notice())
    api.script = [(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})]
    result = await n.send(notice(eid=8))
    await n.aclose()
    assert result.outcome is Outcome.FAILED
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "sendMessage" in text or "send event=" in text  # something was logged
    assert TOKEN not in text
    assert TOKEN.split(":")[1] not in text


async def test_lower_cased_token_in_an_error_is_masked(
    clock: FakeClock, api: FakeBotApi, caplog: Any
):
    # A proxy that echoes the request path lower-cased puts the token in the error text.
    caplog.set_level(logging.DEBUG)
    n = TelegramNotifier(token=TOKEN, api_base_url=API, clock=clock)
    await n.start()
    echoed = f"proxy: POST /bot{TOKEN.lower()}/sendmessage refused"
    api.script = [httpx.ConnectError(echoed)]
    result = await n.send(notice())
    await n.aclose()
    assert result.outcome is Outcome.RETRY
    assert "***" in result.detail
    secret = TOKEN.split(":")[1].lower()
    assert secret not in result.detail.lower()
    assert secret not in caplog.text.lower()


async def test_shared_pacer_can_be_injected(clock: FakeClock, api: FakeBotApi):
    pacer = Pacer(clock)
    n = TelegramNotifier(token=TOKEN, api_base_url=API, clock=clock, pacer=pacer)
    assert n.pacer is pacer
    await n.aclose()
