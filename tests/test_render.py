"""Rendering: the same facts on every channel, escaped and cleaned where they must be."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifiers.render import (
    canonical_url,
    clean_text,
    cut_to_weight,
    email_subject,
    escape_html,
    format_jst,
    format_price,
    render_email_html,
    render_telegram,
    render_text,
    weighted_length,
)
from watcher.model import Availability, Event, EventKind


def event(**kw: object) -> Event:
    base: dict[str, object] = {
        "kind": EventKind.RESTOCK,
        "watch_key": "k",
        "watch_name": "Watch name",
        "state": Availability.IN_STOCK,
        "observed_at": datetime(2026, 11, 22, 16, 5, 9, tzinfo=UTC),
        "url": "https://store.shopping.yahoo.co.jp/shop/item.html?sc_e=x&utm_medium=y&id=3#rev",
        "store": "yahoo_shopping",
        "price": 1980,
        "title": "テスト商品",
        "seller": "公式ストア",
    }
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


def test_plain_text_has_every_fact_in_japanese():
    text = render_text(event())
    assert text.splitlines()[0] == "【再入荷】 テスト商品"
    for part in (
        "ストア: Yahoo!ショッピング",
        "状態: 在庫あり",
        "価格: ¥1,980",
        "販売元: 公式ストア",
        "確認時刻: 2026-11-23 01:05:09 JST",
    ):
        assert part in text
    assert text.splitlines()[-1] == "https://store.shopping.yahoo.co.jp/shop/item.html?id=3"


def test_english_is_selectable():
    text = render_text(event(kind=EventKind.PREORDER_OPEN, state=Availability.PREORDER), "en")
    assert text.startswith("[Pre-order open] テスト商品")
    assert "State: Pre-order" in text and "Price: ¥1,980" in text


def test_price_drop_shows_before_and_after():
    text = render_text(event(kind=EventKind.PRICE_DROP, previous_price=2480))
    assert "【値下げ】" in text and "¥2,480 → ¥1,980" in text


def test_missing_facts_are_left_out():
    text = render_text(event(price=None, seller=None, title=None, store=None, url=None))
    assert "価格" not in text and "販売元" not in text and "http" not in text
    assert "Watch name" in text  # the watch's name stands in for a missing title


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://www.amazon.co.jp/dp/B0X?tag=aff-22&ref_=nav&th=1",
            "https://www.amazon.co.jp/dp/B0X?th=1",
        ),
        (
            "https://item.rakuten.co.jp/a/b/?utm_source=t&utm_campaign=c",
            "https://item.rakuten.co.jp/a/b/",
        ),
        ("javascript:alert(1)", None),
        ("ftp://example.com/x", None),
        ("", None),
    ],
)
def test_canonical_url(url: str, expected: str | None):
    assert canonical_url(url) == expected


def test_clean_text_removes_controls_and_line_breaks():
    assert clean_text("a\r\nBcc: x\x00\x1b[31m\u2028b\u202e") == "a Bcc: x [31m b"
    assert clean_text("  many   spaces ") == "many spaces"
    assert clean_text("x" * 50, 10) == "x" * 9 + "…"


def test_telegram_and_email_html_escape_everything_dynamic():
    hostile = event(
        title='<i>x</i> & "q"', seller="<b>s</b>", url='https://e.example/a?q="><script>'
    )
    for html in (render_telegram(hostile), render_email_html(hostile)):
        assert "<i>" not in html and "<b>s</b>" not in html and "<script>" not in html
        assert "&lt;i&gt;x&lt;/i&gt; &amp; &quot;q&quot;" in html


def test_subject_is_one_line():
    assert email_subject(event(title="A\r\nBcc: e@x")) == "【再入荷】A Bcc: e@x"
    assert email_subject(event(title="Mug"), "en") == "[Restock] Mug"
    assert email_subject(event(kind=EventKind.OUT_OF_STOCK)) == "【在庫切れ】テスト商品"


def test_small_helpers():
    assert format_price(1980) == "¥1,980"
    assert format_price(12, "USD") == "12 USD"
    assert format_price(None) is None
    assert escape_html("<&>") == "&lt;&amp;&gt;"
    assert format_jst(datetime(2026, 1, 1, 15, 0, tzinfo=UTC)) == "2026-01-02 00:00:00 JST"


def test_cut_to_weight():
    assert cut_to_weight("abc", 3) == "abc"
    cut = cut_to_weight("あいうえお", 7)
    assert cut == "あい…" and weighted_length(cut) <= 7
    assert weighted_length(cut_to_weight("🎮" * 100, 51)) <= 51
