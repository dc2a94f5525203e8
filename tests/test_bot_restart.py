"""The chat bot recovers from a failed start: each try starts from scratch, with doubling waits."""

from __future__ import annotations

import asyncio
import logging

import pytest
import respx
from test_bot import API, TOKEN, FakeBotApi

from watcher.bot.telegram import BotSettings, ChatBot
from watcher.secret import Secret
from watcher.service.app import keep_bot_running
from watcher.storage import open_repository

BAD_GATEWAY = (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})


async def until(condition: object, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_a_start_that_fails_half_way_is_retried_with_backoff_until_the_bot_polls(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="restock.app")
    repository = await open_repository(database)
    try:
        with respx.mock(assert_all_called=False) as router:
            api = FakeBotApi(router)
            # getMe fails once; then polling's start (deleteWebhook) fails twice, after PTB has
            # already counted the application as running.
            api.failures["getMe"] = [BAD_GATEWAY]
            api.failures["deleteWebhook"] = [BAD_GATEWAY, BAD_GATEWAY]
            bot = ChatBot(
                repository, BotSettings(token=Secret(TOKEN), api_base_url=API, poll_timeout=0)
            )
            stop = asyncio.Event()
            runner = asyncio.create_task(
                keep_bot_running(bot, stop, first_retry=0.01, retry_cap=0.03)
            )
            await until(lambda: len(api.sent("getUpdates")) >= 2)
            assert bot.application.running
            stop.set()
            await asyncio.wait_for(runner, 10)
    finally:
        await repository.close()
    assert not bot.application.running
    waits = [
        record.args[1]  # type: ignore[index]
        for record in caplog.records
        if record.getMessage().startswith("chat bot not started")
    ]
    assert waits == [0.01, 0.02, 0.03]  # doubling, capped
    assert not any("already running" in r.getMessage() for r in caplog.records)
