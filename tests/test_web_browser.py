"""The web UI in a real headless Chromium (Debian's), driven by Playwright over loopback.

Runs wherever /usr/bin/chromium (or `chromium` on PATH) exists; `.ci/run` installs it. Without it
the test skips, saying how to run it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.webkit import running_web

CHROMIUM = os.environ.get("RESTOCK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
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
