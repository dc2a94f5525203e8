"""One real `restock run` from shop to shopper, on each backend: the simulated shop restocks a
product, the message reaches LINE (a loopback stand-in) and the run's own web UI shows the watch
in stock.

The shop, the LINE stand-in and the test's HTTP client run in the test's event loop on loopback;
the watcher runs as `python -m watcher run --config FILE` in a child process.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from test_cli_run import start_watcher
from test_engine import IN, OUT, Lever, eventually

from tests import dbrows
from tests.line_standin import TOKEN, LineStandIn
from watcher.demo.run import free_port
from watcher.demo.shop import DemoShop, ShopProduct

pytestmark = pytest.mark.timeout(60)
USER = "U" + "e2" * 16
TITLE = "ゲーム機 本体 限定セット"


def write_watchlist(folder: Path, database: str, shop: DemoShop, line: str, port: int) -> Path:
    path = folder / "watchlist.yaml"
    path.write_text(
        f"""settings:
  database: '{database}'
  default_interval: 1s
  hot_windows: []
  debounce: {{confirm: 2, rearm: 2, cooldown: 0s}}
  politeness:
    hosts:
      127.0.0.1: {{concurrency: 8, min_delay: 0s, min_interval: 0s}}
  server: {{listen: '127.0.0.1:{port}', web: true}}
notifiers:
  line: {{channel_access_token: {TOKEN}, api_base_url: '{line}'}}
watches:
  - name: Console
    url: {shop.url("console")}
    notify: {{line: [{USER}]}}
""",
        encoding="utf-8",
    )
    return path


async def shown_state(web: httpx.AsyncClient) -> str | None:
    """The watch's state as the run's web UI gives it (None while the UI is not up yet)."""
    try:
        answer = await web.get("/api/watches/console")
    except httpx.TransportError:
        return None
    return str(answer.json().get("state")) if answer.status_code == 200 else None


async def shows(web: httpx.AsyncClient, state: str) -> bool:
    return await shown_state(web) == state


async def line_deliveries(database: str) -> list[str]:
    rows = await dbrows.fetch(database, "SELECT status FROM deliveries WHERE channel = 'line'")
    return [row["status"] for row in rows]


async def test_a_restock_reaches_line_and_the_web_ui(tmp_path: Path, database: str) -> None:
    lever = Lever(OUT)
    port = free_port()
    log = tmp_path / "run.log"
    async with DemoShop() as shop, LineStandIn() as line:
        shop.add(ShopProduct("console", TITLE, 49980, lever))
        config = write_watchlist(tmp_path, database, shop, line.url, port)
        process = await start_watcher(config, log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as web:
                await eventually(
                    lambda: shows(web, "out_of_stock"), timeout=20, what="the sold-out baseline"
                )
                assert line.message_requests() == []
                lever.shows = IN
                await eventually(lambda: bool(line.delivered), timeout=20, what="the LINE push")
                await eventually(lambda: shows(web, "in_stock"), timeout=10, what="the web UI")
                page = (await web.get("/", params={"lang": "en"})).text
            await eventually(
                lambda: _all_sent(database), timeout=10, what="the delivery marked sent"
            )
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 20) == 0, log.read_text()[-3000:]
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert line.delivered == [USER]  # one message, to the watch's LINE user
    [push] = line.message_requests()
    text = str(push.body["messages"])
    assert TITLE in text and shop.url("console") in text
    assert "Console" in page and "In stock" in page


async def _all_sent(database: str) -> bool:
    return await line_deliveries(database) == ["sent"]
