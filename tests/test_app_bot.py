"""The chat bot runs beside the engine; Telegram being unreachable must not stop the watching."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from notifiers.console import ConsoleNotifier
from watcher.config.load import load_config
from watcher.demo.shop import DemoShop, ShopProduct, Shows, timeline
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage import open_repository

TOKEN = "123456:SECRET-token-value"


async def test_engine_keeps_checking_while_telegram_is_unreachable(
    tmp_path: Path, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with DemoShop() as shop:
        shop.add(ShopProduct("mug", "マグカップ", 1980, timeline((0, Shows.OUT_OF_STOCK))))
        watchlist = tmp_path / "w.yaml"
        watchlist.write_text(
            "settings:\n"
            f"  database: '{database}'\n"
            "  default_interval: 1s\n"
            "  hot_windows: []\n"
            "  politeness: {hosts: {127.0.0.1: {min_delay: 0s, min_interval: 0s}}}\n"
            "notifiers:\n"
            "  telegram:\n"
            "    token: ${TOKEN}\n"
            "    api_base_url: http://127.0.0.1:9\n"  # nothing listens there
            "    bot: true\n"
            "watches:\n"
            f"  - {{name: mug, url: '{shop.url('mug')}', notify: {{telegram: [42]}}}}\n",
            encoding="utf-8",
        )
        config = load_config(watchlist, env={"TOKEN": TOKEN})
        repository = await open_repository(config.settings.database)
        stop = asyncio.Event()
        overrides = Overrides(
            notifiers={"console": ConsoleNotifier()}, stop=stop, install_signals=False
        )
        try:
            app = App(config, repository, overrides)
            assert app.bot is not None
            await app.sync_watches(config)
            runner = asyncio.create_task(app.run(stop))
            for _ in range(100):
                if shop.products["mug"].requests >= 2:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(runner, 15)
        finally:
            await repository.close()
    assert shop.products["mug"].requests >= 2
    assert "chat bot not started" in caplog.text
    assert TOKEN not in caplog.text
