"""Block pages (captcha, challenge, rate limit, access denied) are recognised, and only those."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, SHARED_PAGES
from selectolax.lexbor import LexborHTMLParser

from watcher.core.model import Availability, Page
from watcher.stores._blocked import (
    _BLOCK_SENTENCES,
    _WEAK_MARKERS,
    SMALL_PAGE_CHARS,
    blocked_observation,
    detect_block,
)

PAGES = FIXTURES / "pages"
PADDING = "<p>" + "ふつうの商品説明です。" * 5000 + "</p>"  # makes a page clearly product-sized


def _page(text: str, status: int = 200, retry_after: float | None = None) -> Page:
    return Page(url="https://shop.example/item", text=text, status=status, retry_after=retry_after)


@pytest.mark.parametrize(
    "html,reason",
    [
        ('<form action="/errors/validateCaptcha"></form>', "captcha"),
        ('<input id="captchacharacters" name="field-keywords">', "captcha"),
        ('<script>var ue_sn = "opfcaptcha.amazon.co.jp";</script>', "captcha"),
        ("<title>Robot Check</title><p>Type the characters</p>", "captcha"),
        ("<!-- To discuss automated access to Amazon data please contact -->", "captcha"),
        ("<title>Just a moment...</title>", "challenge"),
        ("<script>window._cf_chl_opt={cType:'managed'};</script>", "challenge"),
        ('<a href="/dogsofamazon/ref=cs_503_d">dogs</a>', "service_unavailable"),
        ("<h1>ただいまアクセスが集中しております</h1>", "rate_limited"),
        ("<h1>Access Denied</h1><p>Reference #18.abc</p>", "access_denied"),
        ("<p>アクセスが制限されています</p>", "access_denied"),
    ],
)
def test_block_markers(html: str, reason: str) -> None:
    assert detect_block(_page(f"<html><body>{html}</body></html>")) == reason


@pytest.mark.parametrize(
    "status,reason", [(429, "rate_limited"), (503, "service_unavailable"), (403, "access_denied")]
)
def test_block_statuses(status: int, reason: str) -> None:
    assert detect_block(_page("<html><body>nothing to see</body></html>", status)) == reason


@pytest.mark.parametrize(("phrase", "reason"), [*_BLOCK_SENTENCES, *_WEAK_MARKERS], ids=str)
def test_every_block_phrase_counts_in_a_small_page_body(phrase: str, reason: str) -> None:
    """Each phrase alone, in upper case, in the body of a small page without product signals
    (the one search for any phrase must miss none of them)."""
    html = f"<html><head><title>お知らせ</title></head><body><p>{phrase.upper()}</p></body></html>"
    assert detect_block(_page(html)) == reason


def test_an_ordinary_page_is_not_blocked() -> None:
    assert detect_block(_page("<html><body><h1>木製ブロック</h1>在庫あり</body></html>")) is None


def test_strong_markers_count_on_product_sized_pages() -> None:
    text = f'<html><body>{PADDING}<form action="/errors/validateCaptcha"></form></body></html>'
    assert len(text) > SMALL_PAGE_CHARS
    assert detect_block(_page(text)) == "captcha"


@pytest.mark.parametrize(
    "phrase",
    ["automated access", "Access Denied", "アクセスが集中", "not a robot", "g-recaptcha"],
)
def test_weak_markers_do_not_count_on_product_sized_pages(phrase: str) -> None:
    """A shop's description or contact form may say these; a big page is not a block page."""
    text = f"<html><head><title>商品</title></head><body>{PADDING}<p>{phrase}</p></body></html>"
    assert detect_block(_page(text), LexborHTMLParser(text)) is None


def test_a_padded_page_whose_heading_is_a_block_notice_is_blocked() -> None:
    text = f"<html><body><h1>ただいまアクセスが集中しております</h1>{PADDING}</body></html>"
    assert detect_block(_page(text), LexborHTMLParser(text)) == "rate_limited"


@pytest.mark.parametrize(
    "phrase", ["アクセスが集中", "automated access", "Access Denied", "not a robot"]
)
def test_weak_markers_never_count_in_a_json_body(phrase: str) -> None:
    body = json.dumps({"title": "限定スニーカー", "body_html": f"<h1>{phrase}</h1>"})
    assert detect_block(_page(body)) is None
    typed = Page(
        url="https://shop.example/api", text=f'"{phrase}"', content_type="application/json"
    )
    assert detect_block(typed) is None


def test_a_small_product_page_with_a_busy_notice_is_not_blocked() -> None:
    html = (
        "<html><body><h1>限定品</h1><p>※発売直後はアクセスが集中し、つながりにくくなる場合が"
        "あります。</p><span class='stock'>在庫あり</span><button>カートに入れる</button>"
        "</body></html>"
    )
    assert detect_block(_page(html)) is None


def test_a_product_named_like_a_block_page_is_not_blocked() -> None:
    html = (
        "<html><head><title>Access Denied [Blu-ray]</title></head><body>"
        "<h1>Access Denied [Blu-ray]</h1><p class='price'>¥4,180</p>"
        "<form action='/cart/add'><button>カートに入れる</button></form></body></html>"
    )
    assert detect_block(_page(html), LexborHTMLParser(html)) is None


def test_strong_markers_still_count_on_a_page_with_product_signals() -> None:
    html = (
        "<html><body><h1>X</h1><button>カートに入れる</button>"
        '<form action="/errors/validateCaptcha"><input id="captchacharacters"></form></body></html>'
    )
    assert detect_block(_page(html)) == "captcha"


def test_a_padded_page_whose_title_is_a_challenge_is_blocked() -> None:
    text = f"<html><head><title>Just a moment...</title></head><body>{PADDING}</body></html>"
    assert detect_block(_page(text), LexborHTMLParser(text)) == "challenge"


def test_blocked_observation_is_unknown_and_carries_the_wait() -> None:
    obs = blocked_observation(_page("", 429, retry_after=120.0), "rate_limited", store="rakuten")
    assert obs.state is Availability.UNKNOWN
    assert obs.blocked is True
    assert obs.retry_after == 120.0
    assert obs.reason == "blocked:rate_limited"
    assert obs.store == "rakuten"


@pytest.mark.parametrize(
    "case",
    [
        "amazon_jp/captcha-enter-characters",
        "amazon_jp/captcha-continue-shopping-newer",
        "amazon_jp/dogs-503",
        "rakuten/access-concentrated",
        "yahoo_shopping/access-restricted",
        "base/cloudflare-challenge",
    ],
)
def test_saved_block_pages_are_recognised(case: str) -> None:
    text = (PAGES / f"{case}.html").read_text("utf-8")
    assert detect_block(_page(text), LexborHTMLParser(text)) is not None


@pytest.mark.parametrize("case", sorted(p.stem for p in (PAGES / "amazon_jp").glob("*.html")))
def test_no_amazon_product_page_reads_as_blocked_unless_it_is_one(case: str) -> None:
    text = (PAGES / "amazon_jp" / f"{case}.html").read_text("utf-8")
    blocked = detect_block(_page(text), LexborHTMLParser(text)) is not None
    assert blocked == case.startswith(("captcha", "dogs", "block-"))


def _shared(name: str) -> Path:
    path = SHARED_PAGES / name
    if not path.is_file():
        pytest.skip("no shared pages here")
    return path


@pytest.mark.parametrize(
    "name", ["amazon/in-captcha-enter-characters.html", "amazon/br-captcha-enter-characters.html"]
)
def test_real_captcha_pages_are_blocked(name: str) -> None:
    text = _shared(name).read_bytes().decode("utf-8", "replace")
    assert detect_block(_page(text)) == "captcha"


@pytest.mark.parametrize(
    "name",
    [
        "amazon/com-in-stock-apparel-with-variations.html",
        "amazon/jp-in-stock-low-stock-11-left-third-party.html",
        "rakuten/item-in-stock-ships-within-3-days.html",
        "generic/ebay-item-microdata-instock.html",
    ],
)
def test_real_product_pages_are_not_blocked(name: str) -> None:
    text = _shared(name).read_bytes().decode("utf-8", "replace")
    assert detect_block(_page(text), LexborHTMLParser(text)) is None
