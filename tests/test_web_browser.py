"""The web UI in a real headless Chromium (Debian's), driven by Playwright over loopback.

Runs wherever /usr/bin/chromium (or `chromium` on PATH) exists; `.ci/run` installs it. Without it
the tests skip, saying how to run them, except in CI, where they must run.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from notifiers.console import ConsoleNotifier
from tests.webkit import running_web
from watcher.config.load import load_config
from watcher.demo.shop import DemoShop, Script, ShopProduct, Shows, timeline
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage.sqlite.repository import open_repository

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = os.environ.get("RESTOCK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# In CI (`CI=true`, where `.ci/run` installs Chromium) a missing browser fails instead.
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="no Chromium: `apt-get install -y chromium` (or set RESTOCK_CHROMIUM) to run it",
)


async def test_a_self_hoster_browses_adds_a_watch_and_opens_its_timeline(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with running_web(tmp_path) as web, async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))

            await page.goto(web.base + "/")
            assert await page.locator("h1").inner_text() == "ウォッチ一覧"
            box = page.locator('tr[data-key="box"]')
            assert await box.locator(".badge").inner_text() == "在庫あり"
            assert "<script>" in await box.locator("td a").inner_text()  # shown as text
            assert await box.locator("svg.strip rect").count() == 7

            await page.click("text=English")
            assert await page.locator("h1").inner_text() == "Watches"

            await page.click('tr[data-key="box"] td a')
            assert await page.locator("svg.timeline rect").count() >= 2
            assert await page.locator("polyline.price-line").count() == 1
            forecast = await page.locator(".forecast").inner_text()
            assert "usually back on Tue 02:00–03:00 JST (5 of 6 restocks)" in forecast
            async with page.expect_navigation():
                await page.click("text=Check now")
            assert page.url.endswith("/watch/box"), await page.content()

            await page.goto(web.base + "/add")
            await page.fill('input[name="target"]', "https://www.amazon.co.jp/dp/B0BROWSER0")
            await page.fill('input[name="name"]', "From the browser")
            await page.fill('input[name="max_price"]', "5500")
            await page.check('input[name="channel"][value="console"]')
            async with page.expect_navigation():
                await page.click('button[value="check"]')
            assert await page.locator(".verdict .badge").inner_text() == "In stock"
            async with page.expect_navigation():
                await page.click('button[value="save"]')
            assert "/watch/web%3A" in page.url
            assert await page.locator("h1").inner_text() == "From the browser"

            await page.goto(web.base + "/")
            assert await page.locator("text=From the browser").count() == 1
            assert problems == []  # no script error, no CSP violation, no injected dialog
        finally:
            await browser.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sold_out_for(requests: int) -> Script:
    """Sold out for the first `requests` requests, in stock after: a restock staged by count."""

    def script(_elapsed: float, count: int) -> Shows:
        return Shows.OUT_OF_STOCK if count < requests else Shows.IN_STOCK

    return script


async def reload_until(page: Page, selector: str, text: str, tries: int = 120) -> str:
    """Reload until `selector` shows `text` (the engine works on its own time); the last text."""
    seen = ""
    for _ in range(tries):
        await page.reload()
        seen = await page.locator(selector).first.inner_text()
        if seen == text:
            break
        await asyncio.sleep(0.25)
    return seen


async def test_the_real_service_checks_a_watch_added_in_the_browser(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    shop = DemoShop()
    shop.add(ShopProduct("listed", "棚の商品", 3000, timeline((0, Shows.OUT_OF_STOCK))))
    shop.add(ShopProduct("comes-back", "再入荷する限定品", 4200, sold_out_for(4)))
    port = free_port()
    async with shop:
        path = tmp_path / "watchlist.yaml"
        path.write_text(
            f"""
settings:
  database: {tmp_path / "restock.sqlite3"}
  default_interval: 1s
  hot_windows: []
  debounce: {{confirm: 2, rearm: 2, cooldown: 5s}}
  politeness: {{hosts: {{127.0.0.1: {{concurrency: 4, min_delay: 0s, min_interval: 0s}}}}}}
  server: {{listen: "127.0.0.1:{port}", web: true}}
  language: en
notifiers:
  console: {{}}
watches:
  - name: Listed
    url: {shop.url("listed")}
    notify: {{console: true}}
""",
            encoding="utf-8",
        )
        config = load_config(path)
        stop = asyncio.Event()
        out = io.StringIO()
        overrides = Overrides(
            notifiers={"console": ConsoleNotifier(stream=out)},
            stop=stop,
            install_signals=False,
            recheck_delay=(timedelta(milliseconds=100), timedelta(milliseconds=200)),
            idle_poll=0.05,
            parse_workers=0,
        )
        repository = await open_repository(config.settings.database)
        app = App(config, repository, overrides)
        await app.sync_watches(config)
        service = asyncio.create_task(app.run(stop))
        base = f"http://127.0.0.1:{port}"
        try:
            async with async_playwright() as driver:
                browser = await driver.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
                try:
                    page = await browser.new_page()
                    # The watches page over the shop: the listed watch is read and shown.
                    await page.goto(base + "/")
                    listed = 'tr:has-text("Listed") .badge'
                    assert await reload_until(page, listed, "Out of stock") == "Out of stock"

                    await page.goto(base + "/add")
                    await page.fill('input[name="target"]', shop.url("comes-back"))
                    await page.fill('input[name="name"]', "Comes back")
                    await page.check('input[name="channel"][value="console"]')
                    async with page.expect_navigation():
                        await page.click('button[value="check"]')
                    assert await page.locator(".verdict .badge").inner_text() == "Out of stock"
                    async with page.expect_navigation():
                        await page.click('button[value="save"]')
                    assert await page.locator("h1").inner_text() == "Comes back"
                    badge = await reload_until(page, "main p .badge", "In stock")
                    assert badge == "In stock"
                    assert await page.locator("svg.timeline rect.s-in_stock").count() >= 1
                    events = await reload_until(page, "h2 + table td:nth-child(2)", "restock")
                    assert events == "restock"
                    await page.goto(base + "/")
                    top = page.locator("tbody tr").first
                    assert await top.locator("a").inner_text() == "Comes back"  # back: on top

                    # A test message from the browser, with the channel's own answer.
                    await page.goto(base + "/channels")
                    async with page.expect_navigation():
                        await page.click('tr:has-text("console") button')
                    assert await page.locator(".tested .outcome").all_inner_texts() == ["sent"]
                finally:
                    await browser.close()
        finally:
            stop.set()
            await service
            await repository.close()
    assert "再入荷する限定品" in out.getvalue()  # the restock message went out on the console
    assert "example.com/restock-watcher/notify-test" in out.getvalue()  # and the test message
