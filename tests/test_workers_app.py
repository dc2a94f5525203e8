"""Two `App`s on one PostgreSQL database: the chat bot polls from one of them at a time.

Telegram is unreachable here (nothing listens at the bot API address), which is enough: the
bot's task runs (retrying) exactly where the duty is held. A worker that loses its database link
cut off from the database stops its bot at its next beat, and the other takes the bot over at
its own.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from test_engine import eventually

from watcher.config.load import load_config
from watcher.demo.shop import DemoShop, ShopProduct, Shows, timeline
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage import open_repository

TOKEN = "123456:SECRET-token-value"
# PostgreSQL only: duties change hands through a server database; one process on SQLite has none.
pytestmark = pytest.mark.timeout(90)


async def start_app(watchlist: Path) -> tuple[App, asyncio.Event, asyncio.Task[None]]:
    config = load_config(watchlist)
    repo = await open_repository(config.settings.database)
    stop = asyncio.Event()
    app = App(config, repo, Overrides(stop=stop, install_signals=False, reload_poll=60))
    await app.sync_watches(config)

    async def run() -> None:
        try:
            await app.run(stop)
        finally:
            await repo.close()

    return app, stop, asyncio.create_task(run())


def polling(app: App) -> bool:
    return app._bot_run is not None


async def test_the_bot_polls_from_one_worker_and_moves_when_its_link_is_lost(
    tmp_path: Path,
    postgresql_database: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    monkeypatch.setenv("TOKEN", TOKEN)
    async with DemoShop() as shop:
        shop.add(ShopProduct("mug", "マグカップ", 1980, timeline((0, Shows.OUT_OF_STOCK))))
        watchlist = tmp_path / "w.yaml"
        watchlist.write_text(
            "settings:\n"
            f"  database: '{postgresql_database}'\n"
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
        first, second = await start_app(watchlist), await start_app(watchlist)
        apps = [first[0], second[0]]
        try:
            await eventually(
                lambda: sum(polling(a) for a in apps) == 1, timeout=20, what="one bot poller"
            )
            holder = next(a for a in apps if polling(a))
            other = next(a for a in apps if a is not holder)
            assert holder.membership is not None
            coordinator = holder.membership.coordinator

            async def unreachable(*_: object) -> None:
                raise OSError("the database is unreachable from this worker")

            # Its link is gone, and it cannot connect again (cut off from the database).
            monkeypatch.setattr(coordinator, "start", unreachable)
            coordinator._conn.terminate()  # type: ignore[attr-defined]
            await eventually(
                lambda: polling(other) and not polling(holder), timeout=20, what="the takeover"
            )
            assert shop.total_requests >= 1  # both kept checking meanwhile
        finally:
            for _, stop, _ in (first, second):
                stop.set()
            await asyncio.wait_for(asyncio.gather(first[2], second[2]), 30)
    assert not polling(apps[0]) and not polling(apps[1])  # a stop stops the bot too
