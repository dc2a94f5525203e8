"""`restock demo`: the real engine against the scripted shop tells its whole story, offline."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from watcher.cli import main
from watcher.demo.run import free_port, run_demo

DEMO_SECONDS = 18.0  # the story scales with the length; 12 s tells it all on an idle machine
WEB_DEMO_SECONDS = 6.0  # long enough for the page to answer once


async def test_the_demo_reports_real_restocks_and_nothing_false() -> None:
    out = io.StringIO()
    summary = await run_demo(DEMO_SECONDS, out=out)
    text = out.getvalue()

    intro, _, rest = text.partition("\n\n")
    messages, _, printed_summary = rest.partition("demo summary:")
    assert "Nintendo Switch 2" in intro  # every product is introduced...
    assert "LINE" in intro and "Discord" in intro  # and where alerts can go
    assert "【再入荷】 ポケモンカード 強化拡張パック 151 BOX" in messages
    assert "【再入荷】 ワイヤレスイヤホン 限定カラー" in messages
    assert "【予約開始】 新作ゲームソフト 初回限定版" in messages
    assert "Nintendo Switch 2" not in messages  # ...but the ghost stock never fires
    assert "限定フィギュア" not in messages  # nor does the captcha that says 在庫あり

    assert summary["flaps_suppressed"] >= 1
    assert summary["blocks_survived"] >= 1
    assert summary["messages_sent"] >= 3
    assert f"flaps suppressed: {summary['flaps_suppressed']}" in printed_summary
    assert f"blocks survived: {summary['blocks_survived']}" in printed_summary


async def test_the_demo_prints_its_web_address_and_serves_the_watches_there() -> None:
    out = io.StringIO()
    port = free_port()
    demo = asyncio.create_task(run_demo(WEB_DEMO_SECONDS, out=out, web_port=port))
    page = None
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(200):
                if demo.done():
                    break
                try:
                    page = await client.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # the service is still starting
    finally:
        await demo
    intro = out.getvalue().partition("\n\n")[0]
    assert f"web UI: http://127.0.0.1:{port}/" in intro
    assert page is not None and page.status_code == 200
    # Every demo watch, as the browser shows them.
    assert all(slug in page.text for slug in ("pokemon-151-box", "switch-2", "earbuds"))


def test_the_demo_command_serves_the_web_ui_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports: list[int | None] = []

    async def fake_demo(seconds: float, web_port: int | None = None) -> dict[str, int]:
        ports.append(web_port)
        return {}

    monkeypatch.setattr("watcher.demo.run.run_demo", fake_demo)
    assert main(["demo", "--seconds", "5"]) == 0
    assert main(["demo", "--seconds", "5", "--web", "8799"]) == 0
    assert main(["demo", "--seconds", "5", "--no-web"]) == 0
    assert ports[0] is not None and 0 < ports[0] < 65536  # a free port by default
    assert ports[1:] == [8799, None]
