"""SIGKILL of `restock run` in the middle of one restock's fan-out to 200 Telegram chats.

The shop and a Bot API stand-in run in the test's event loop on loopback; the watcher runs as a
real process. The stand-in kills it as the 45th message arrives (inside the dispatcher's first
batch of 50); a restart sends the rest. Every chat must get the message, and only the sends in
flight at the kill (and the results of the dispatcher's last linger) may go out twice.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from test_cli_run import start_watcher, stop_with_sigterm
from test_engine import IN, OUT, Lever, eventually

from watcher.demo.shop import DemoShop, ShopProduct
from watcher.service.dispatch import DispatchSettings
from watcher.web.listener import Listener, Request, Response, serve

TOKEN = "7100200300:AAFanOutCrashTestToken_abcdefghijk"
CHATS = [str(5_000 + i) for i in range(200)]
KILL_AT = 45
# What a kill may repeat: the sends in flight (Telegram's pacer lets out one at a time at most
# 30 a second, and the stand-in answers at once) and the results reported in the dispatcher's
# last `record_linger` (0.25 s: 8 at 30/s), with room for a slow write on a loaded machine.
REPEAT_BOUND = 16


@dataclass
class BotApi:
    """getMe and sendMessage; counts messages per chat and runs `on_message` for each."""

    received: list[str] = field(default_factory=list)  # chat ids, in arrival order
    on_message: list[object] = field(default_factory=list)
    server: Listener | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def handle(self, request: Request) -> Response:
        method = request.path.rsplit("/", 1)[-1]
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if method == "getMe":
            result: object = {"id": 7100200300, "is_bot": True, "first_name": "R", "username": "r"}
        elif method == "sendMessage":
            self.received.append(form["chat_id"])
            for hook in self.on_message:
                hook(len(self.received))  # type: ignore[operator]
            result = {
                "message_id": next(self._ids),
                "date": 1_700_000_000,
                "chat": {"id": int(form["chat_id"]), "type": "private"},
                "text": form.get("text", ""),
            }
        else:
            result = True
        body = json.dumps({"ok": True, "result": result}).encode()
        return Response(200, body, {"Content-Type": "application/json"})

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApi]:
    api = BotApi()
    api.server = await serve(api.handle)
    yield api
    await api.server.close()


@pytest.fixture
async def shop() -> AsyncIterator[DemoShop]:
    async with DemoShop() as running:
        yield running


def watchlist(folder: Path, database: str, product_url: str, api: str) -> Path:
    path = folder / "watchlist.yaml"
    path.write_text(
        "settings:\n"
        f"  database: '{database}'\n"
        "  default_interval: 1s\n"
        "  hot_windows: []\n"
        "  debounce: {confirm: 2, rearm: 2, cooldown: 0s}\n"
        "  politeness:\n"
        "    hosts:\n"
        "      127.0.0.1: {concurrency: 8, min_delay: 0s, min_interval: 0s}\n"
        "notifiers:\n"
        "  telegram:\n"
        "    token: ${TG_TOKEN}\n"
        f"    api_base_url: {api}\n"
        "watches:\n"
        "  - name: mug\n"
        f"    url: {product_url}\n"
        f"    notify: {{telegram: [{', '.join(CHATS)}]}}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.timeout(180)
async def test_a_kill_mid_fan_out_repeats_only_the_sends_in_flight(
    tmp_path: Path, database: str, shop: DemoShop, bot_api: BotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DispatchSettings().record_linger <= 0.25  # the bound above counts on it
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    lever = Lever(OUT)
    shop.add(ShopProduct("mug", "マグカップ", 1980, lever))
    config = watchlist(tmp_path, database, shop.url("mug"), bot_api.url)
    log = tmp_path / "run.log"

    first = await start_watcher(config, log)

    def kill_at(count: int) -> None:
        if count == KILL_AT and first.returncode is None:
            os.kill(first.pid, signal.SIGKILL)

    bot_api.on_message.append(kill_at)
    try:
        await eventually(lambda: shop.products["mug"].requests >= 1, timeout=20, what="baseline")
        lever.shows = IN
        await asyncio.wait_for(first.wait(), 30)
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert first.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    sent_before = len(bot_api.received)
    assert KILL_AT <= sent_before < len(CHATS)

    second = await start_watcher(config, log)
    try:
        await eventually(
            lambda: set(bot_api.received) == set(CHATS), timeout=90, what="every chat reached"
        )
        await asyncio.sleep(0.5)  # anything sent twice would arrive by now
        await stop_with_sigterm(second)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()

    counts = collections.Counter(bot_api.received)
    repeated = sum(n - 1 for n in counts.values())
    assert set(counts) == set(CHATS)  # none lost
    assert max(counts.values()) <= 2
    print(f"fan-out crash: {sent_before} sent before the kill, {repeated} repeated")
    assert repeated <= REPEAT_BOUND, (sent_before, repeated, log.read_text()[-3000:])
