"""The Discord notifier against a loopback webhook stand-in.

The stand-in answers like Discord's webhook execution endpoint (discord.com/developers/docs,
"Execute Webhook" and "Rate Limits"): 200 with the message when `wait=true`, 429 with a JSON
`retry_after` in seconds, `X-RateLimit-Remaining` / `X-RateLimit-Reset-After` headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifiers.base import Notice, Outcome
from notifiers.discord import DiscordNotifier, escape_discord, wait_url
from watcher.core.model import Availability, Event, EventKind
from watcher.web.listener import Request, Response, serve

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
HOOK_PATH = "/api/webhooks/1234567890/hook-token-abcdefghijklmnop"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class Hook:
    script: list[Response] = field(default_factory=list)
    seen: list[tuple[str, Any]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.seen.append((request.path, json.loads(request.body)))
        if self.script:
            return self.script.pop(0)
        return Response(200, b'{"id": "1"}', {"Content-Type": "application/json"})


@asynccontextmanager
async def hook_server(hook: Hook) -> AsyncIterator[str]:
    server = await serve(hook.handle)
    try:
        yield f"http://127.0.0.1:{server.port}{HOOK_PATH}"
    finally:
        await server.close()


def notice(n: int = 1, title: str = "ポケモンカード 151 BOX", **kw: Any) -> Notice:
    event = Event(
        kind=EventKind.RESTOCK,
        watch_key="box",
        watch_name="box",
        state=Availability.IN_STOCK,
        observed_at=T0,
        url="https://item.rakuten.co.jp/shop/box/",
        store="rakuten",
        price=5980,
        title=title,
        id=n,
    )
    return Notice(delivery_id=n, event=event, recipient="-", **kw)


def limited(retry_after: float) -> Response:
    body = json.dumps({"message": "You are being rate limited.", "retry_after": retry_after})
    return Response(429, body.encode(), {"Content-Type": "application/json"})


async def send(hook: Hook, batch: list[Notice], clock: FakeClock | None = None) -> list[Any]:
    async with hook_server(hook) as url:
        notifier = DiscordNotifier(webhook_url=url, clock=clock or FakeClock())
        try:
            return await notifier.send_batch(batch)
        finally:
            await notifier.aclose()


async def test_one_embed_per_event_with_no_mentions_and_wait() -> None:
    hook = Hook()
    [result] = await send(hook, [notice()])
    [(path, body)] = hook.seen
    assert path == HOOK_PATH + "?wait=true"
    assert body["allowed_mentions"] == {"parse": []}
    assert "content" not in body
    [embed] = body["embeds"]
    assert embed["url"] == "https://item.rakuten.co.jp/shop/box/"
    assert embed["title"].startswith("【再入荷】 ポケモンカード 151 BOX")
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["価格"] == "¥5,980" and fields["ストア"] == "楽天市場"
    assert result.outcome is Outcome.SENT


async def test_queued_events_merge_into_messages_of_ten_embeds() -> None:
    hook = Hook()
    results = await send(hook, [notice(n) for n in range(1, 13)])
    assert [len(body["embeds"]) for _, body in hook.seen] == [10, 2]
    assert {r.outcome for r in results} == {Outcome.SENT} and len(results) == 12


async def test_hostile_title_neither_pings_nor_formats() -> None:
    hook = Hook()
    hostile = "@everyone **FREE** [click](https://evil.example) <@123> `x` ||s|| # h"
    await send(hook, [notice(title=hostile)])
    [(_, body)] = hook.seen
    title = body["embeds"][0]["title"]
    assert "@everyone" not in title and "@\u200beveryone" in title
    assert "**" not in title.replace("\\*", "")
    assert "](" not in title.replace("\\]\\(", "")
    assert "<@123>" not in title and "\\<@\u200b123\\>" in title
    assert body["allowed_mentions"] == {"parse": []}


def test_escape_leaves_no_live_markdown() -> None:
    assert escape_discord("a*b_c~d`e|f>g") == "a\\*b\\_c\\~d\\`e\\|f\\>g"
    assert escape_discord("@here") == "@\u200bhere"
    assert escape_discord("\\*") == "\\\\\\*"  # a backslash cannot un-escape what follows


def test_wait_is_added_and_thread_kept() -> None:
    assert wait_url("https://discord.com/api/webhooks/1/t?thread_id=9&wait=false") == (
        "https://discord.com/api/webhooks/1/t?thread_id=9&wait=true"
    )


async def test_429_waits_retry_after_then_resends() -> None:
    clock = FakeClock()
    hook = Hook(script=[limited(1.5)])
    [result] = await send(hook, [notice()], clock)
    assert len(hook.seen) == 2 and hook.seen[0][1] == hook.seen[1][1]
    assert 1.5 in clock.sleeps
    assert result.outcome is Outcome.SENT


async def test_429_that_persists_goes_back_to_the_outbox() -> None:
    clock = FakeClock()
    hook = Hook(script=[limited(0.5)] * 10)
    [result] = await send(hook, [notice()], clock)
    assert len(hook.seen) == 4  # the first try and three waits
    assert result.outcome is Outcome.RETRY and result.http_status == 429
    assert result.retry_at is not None and result.retry_at >= clock.now()


async def test_long_retry_after_is_not_waited_in_process() -> None:
    clock = FakeClock()
    hook = Hook(script=[limited(600.0)])
    [result] = await send(hook, [notice()], clock)
    assert len(hook.seen) == 1 and 600.0 not in clock.sleeps
    assert result.outcome is Outcome.RETRY
    assert result.retry_at == clock.now() + timedelta(seconds=600)


async def test_empty_bucket_waits_for_its_reset() -> None:
    clock = FakeClock()
    empty = Response(200, b"{}", {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.25"})
    hook = Hook(script=[empty])
    batch = [notice(n) for n in range(1, 12)]  # two messages
    await send(hook, batch, clock)
    assert clock.sleeps == [1.25]


async def test_sixth_request_in_two_seconds_waits() -> None:
    clock = FakeClock()
    hook = Hook()
    async with hook_server(hook) as url:
        notifier = DiscordNotifier(webhook_url=url, clock=clock)
        for n in range(6):
            await notifier.send(notice(n + 1))
        await notifier.aclose()
    assert clock.sleeps == [2.0]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(404, Outcome.FAILED), (400, Outcome.FAILED), (500, Outcome.RETRY), (502, Outcome.RETRY)],
)
async def test_errors(status: int, outcome: Outcome) -> None:
    hook = Hook(script=[Response(status, b'{"message": "x"}')])
    [result] = await send(hook, [notice()])
    assert result.outcome is outcome and result.http_status == status


async def test_webhook_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook = Hook(script=[Response(400, b'{"message": "bad"}')])
    async with hook_server(hook) as url:
        notifier = DiscordNotifier(webhook_url=url, clock=FakeClock())
        await notifier.send(notice())
        logging.getLogger("httpx").info("POST %s", url)
        await notifier.aclose()
    assert caplog.records
    assert "hook-token-abcdefghijklmnop" not in caplog.text
