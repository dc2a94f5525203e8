"""`restock demo`: the real engine against the scripted shop tells its whole story, offline."""

from __future__ import annotations

import io

from watcher.demo.run import run_demo

DEMO_SECONDS = 18.0  # the story scales with the length; 12 s tells it all on an idle machine


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
