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
    render_x,
)
from notifiers.x_text import weighted_length
from watcher.core.model import Availability, Event, EventKind


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


def test_a_shop_without_an_adapter_is_named_by_its_host():
    generic = event(store="generic", url="https://www.toy-shop.example.jp/items/7?ref=x")
    assert "ストア: toy-shop.example.jp" in render_text(generic)
    assert "generic" not in render_text(generic)
    assert "Store: toy-shop.example.jp" in render_text(generic, "en")
    no_page = render_text(event(store="generic", url=None))
    assert "ストア:" not in no_page and "generic" not in no_page


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


# --- X's weighted length ---------------------------------------------------------------------

# Every expected value below is what twitter-text 3.1.0 (the library X counts posts with) gives
# for the same string: `twitterText.parseTweet(text).weightedLength`.
TWITTER_TEXT_COUNTS = [
    ("【Amazon.co.jp限定】ニンテンドースイッチ２ マリオカート ワールド セット", 82),
    ("販売元: Amazon.co.jp", 31),
    ("item.rakuten.co.jp で予約受付中", 36),
    ("公式 example.com 限定", 33),
    ("ポケモンカード 151 BOX シュリンク付き 🎮🔥", 42),
    ("ストア: Amazon", 14),
    ("https://www.amazon.co.jp/dp/B0DX000000", 23),
    ("https://item.rakuten.co.jp/shop/item/?variant=1", 23),
    ("example.com/abc のセール", 32),  # a bare domain keeps its path
    ("example.com:8080", 28),  # ... but not a port or query without a path
    ("a.co", 23),  # a link weighs 23 even when shorter
    ("限定.abc.com", 28),
    ("x_amazon.co.jp", 25),
    ("Nintendo.Style.Lite", 28),  # "style" is a TLD, "lite" is not
    ("https://t.co/abc-def", 27),  # X's own short links keep only the slug
    ("/abc.com", 8),  # not linked after a slash
    ("Ver.2 No.1 ¥5,980", 17),
    ("©2026 Nintendo ®", 16),
    ("販売元: " + "楽天ブックス" * 3, 44),
    ("https://" + "a" * 64 + ".com", 76),  # a label over 63 characters is not a host
    (
        "【再入荷】 【Amazon.co.jp限定】ニンテンドースイッチ２ マリオカート ワールド セット "
        "日本語・国内専用ニンテンドースイッチ２ マリオカート ワールド セット…\n"
        "ストア: Amazon.co.jp\n状態: 在庫あり\n価格: ¥5,980\n販売元: Amazon.co.jp\n"
        "確認時刻: 2026-01-01 09:00:00 JST\nhttps://www.amazon.co.jp/dp/B0DX000000",
        313,
    ),
    (
        "【再入荷】 " + "ポケモンカード 151 BOX " * 6 + "ポケモンカード 151 BOX…\n"
        "ストア: Amazon.co.jp\n状態: 在庫あり\n価格: ¥5,980\n"
        "確認時刻: 2026-01-01 09:00:00 JST\nhttps://www.amazon.co.jp/dp/B0DX000000",
        291,
    ),
]


@pytest.mark.parametrize(("text", "expected"), TWITTER_TEXT_COUNTS)
def test_weighted_length_agrees_with_twitter_text(text: str, expected: int):
    assert weighted_length(text) == expected


# Where a reading is not certain the count errs high, never low: (text, twitter-text 3.1.0, ours).
COUNTED_HIGH = [
    ("shop.ストアで買う", 29, 33),  # X links "shop.ストア"; any letters may be a TLD here
    ("feat.初音ミク", 13, 29),
    ("メール info@shop.co.jp まで", 27, 40),  # X does not link after "@"
    ("(https://" + "y" * 40 + ".com)", 25, 54),  # "(" could close an earlier link's path
    ("🇯🇵👨\u200d👩\u200d👧", 4, 12),  # X weighs an emoji sequence 2, here 2 a code point
]


@pytest.mark.parametrize(("text", "twitter_text", "ours"), COUNTED_HIGH)
def test_uncertain_readings_are_counted_high(text: str, twitter_text: int, ours: int):
    assert weighted_length(text) == ours >= twitter_text


def test_a_cut_never_leaves_a_domain_over_budget():
    # Counted by character the cut could keep "Amazon.co.jp いい", but the domain weighs 23.
    cut = cut_to_weight("あ" * 5 + " Amazon.co.jp " + "い" * 20, 30)
    assert cut == "あああああ Amazon.c…"  # "Amazon.co" would still be a link (co is a TLD)
    assert weighted_length(cut) == 21
    assert cut_to_weight("example.com" + "x" * 40, 24) == "example.c…"


def x_event(store: str, url: str, title: str, seller: str | None) -> Event:
    return event(
        store=store,
        url=url,
        title=title,
        seller=seller,
        price=5980,
        observed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


X_EVENTS = [
    x_event(
        "amazon_jp",
        "https://www.amazon.co.jp/dp/B0DX000000",
        "【Amazon.co.jp限定】"
        + "ニンテンドースイッチ２ マリオカート ワールド セット 日本語・国内専用" * 3,
        "Amazon.co.jp",
    ),
    x_event(
        "rakuten",
        "https://item.rakuten.co.jp/shop/item/",
        "ポケモンカード 151 BOX シュリンク付き " * 10,
        None,
    ),
    x_event(
        "amazon_jp", "https://www.amazon.co.jp/dp/B0DX000000", "ポケモンカード 151 BOX " * 10, None
    ),
    x_event(
        "rakuten",
        "https://item.rakuten.co.jp/shop/item/",
        "item.rakuten.co.jp example.com a.co 🎮 " * 20,
        "shop.example.com",
    ),
]


@pytest.mark.parametrize("ev", X_EVENTS)
def test_x_posts_fit_by_x_count_with_domains_in_title_and_seller(ev: Event):
    post = render_x(ev)
    assert weighted_length(post) <= 280
    assert post.splitlines()[0].endswith("…")


def test_x_post_names_amazon_without_a_domain():
    post = render_x(X_EVENTS[2])
    assert "\nストア: Amazon\n" in post
    # twitter-text 3.1.0 weighs this post 279: a bare "Amazon.co.jp" store line would add 11
    assert weighted_length(post) == 279
    assert "Store: Amazon\n" in render_x(X_EVENTS[2], "en")
