"""Amazon's element lookups: "does the page hold any of these elements" is one search of the tree
and answers as a search per element does; the buy box's parts are found and read once for both
of its phrase searches, which find what a reading per search finds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import FIXTURES, SHARED_PAGES
from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Page
from watcher.stores import amazon_jp

PAGES = sorted((FIXTURES / "pages" / "amazon_jp").glob("*.html")) + sorted(
    (SHARED_PAGES / "amazon").glob("*.html")
)
LOOKUPS = (
    amazon_jp._PRODUCT_MARKERS,
    amazon_jp._SEARCH_MARKERS,
    amazon_jp._CART_BUTTONS,
    amazon_jp._BUY_NOW_BUTTONS,
    amazon_jp._BUY_BOX,
    ("#usedOnlyBuybox", "#usedBuySection"),
    ("#add-to-cart-button", "#newAccordionRow", "#newBuyBoxPrice"),
    ("#no-such-element", "#neither"),
)


def _tree(path: Path) -> LexborHTMLParser:
    return LexborHTMLParser(path.read_text("utf-8", errors="replace"))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_one_search_for_any_element(path: Path) -> None:
    tree = _tree(path)
    for selectors in LOOKUPS:
        each = any(tree.css_first(selector) is not None for selector in selectors)
        assert amazon_jp._has_any(tree, selectors) == each, selectors


def test_one_search_finds_an_element_late_in_the_page() -> None:
    tree = LexborHTMLParser("<div id=a></div>" * 500 + "<input name='submit.add-to-cart'>")
    assert amazon_jp._has_any(tree, amazon_jp._CART_BUTTONS)
    assert not amazon_jp._has_any(tree, amazon_jp._BUY_NOW_BUTTONS)


def _phrase_per_search(tree: LexborHTMLParser, phrase: re.Pattern[str]) -> str | None:
    """The buy box phrase as read before: each search finding and reading every part."""
    for selector in amazon_jp._BUY_BOX:
        node = tree.css_first(selector)
        if node is None:
            continue
        found = phrase.search(amazon_jp._clean(node)[: amazon_jp._BUY_BOX_MAX])
        if found is not None:
            return found.group(0)
    return None


@pytest.mark.parametrize("path", PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_buy_box_phrases_read_once_find_the_same(path: Path) -> None:
    before, after = _tree(path), _tree(path)
    expected = [
        _phrase_per_search(before, p) for p in (amazon_jp._NO_FEATURED, amazon_jp._INVITATION)
    ]
    buy_box = amazon_jp._BuyBoxText(after)
    found = [
        amazon_jp._buy_box_phrase(buy_box, p)
        for p in (amazon_jp._NO_FEATURED, amazon_jp._INVITATION)
    ]
    assert found == expected
    assert after.html == before.html  # the same parts cleaned of their scripts


def test_buy_box_parts_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = LexborHTMLParser(
        '<div id="buybox"><script>x()</script>在庫あり</div>'
        '<div id="desktop_buybox">すべての出品を見る</div>'
    )
    reads: list[str] = []
    clean = amazon_jp._clean

    def counted(node: LexborNode) -> str:
        reads.append(node.attributes.get("id") or "")
        return clean(node)

    monkeypatch.setattr(amazon_jp, "_clean", counted)
    buy_box = amazon_jp._BuyBoxText(tree)
    assert amazon_jp._buy_box_phrase(buy_box, amazon_jp._NO_FEATURED) == "すべての出品を見る"
    assert amazon_jp._buy_box_phrase(buy_box, amazon_jp._INVITATION) is None
    assert reads == ["buybox", "desktop_buybox"]


def _recognised_per_host(text: str) -> bool:
    """Recognising as before: each asset host searched for on its own."""
    within = amazon_jp._ASSETS_WITHIN
    in_head = any(text.find(m, 0, within) >= 0 for m in amazon_jp._ASSET_HOSTS)
    return in_head and any(m in text for m in amazon_jp._LAYOUT_MARKUP)


def test_every_asset_host_holds_the_part_searched_first() -> None:
    for host in amazon_jp._ASSET_HOSTS:
        assert amazon_jp._ASSET_HOSTS_HOLD in host


_LAYOUT = '<div id="dp-container"></div>'
_NEAR_THE_EDGE = amazon_jp._ASSETS_WITHIN - len("m.media-amazon.com")
RECOGNISED = {
    "asset host in the head": f'<img src="https://m.media-amazon.com/x.jpg">{_LAYOUT}',
    "older asset host": f'<img src="https://images-fe.ssl-images-amazon.com/x">{_LAYOUT}',
    "no layout": '<img src="https://m.media-amazon.com/x.jpg">',
    "another amazon host": f'<img src="https://www.some-amazon.com/x.jpg">{_LAYOUT}',
    "host ends at the edge": "x" * _NEAR_THE_EDGE + "m.media-amazon.com" + _LAYOUT,
    "host crosses the edge": "x" * (_NEAR_THE_EDGE + 1) + "m.media-amazon.com" + _LAYOUT,
    "nothing": "<p>商品</p>",
}


@pytest.mark.parametrize("text", RECOGNISED.values(), ids=RECOGNISED.keys())
def test_recognising_as_before(text: str) -> None:
    page = Page(url="https://shop.example/p", text=text, status=200)
    assert amazon_jp.recognise(page) == _recognised_per_host(text)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recognising_saved_pages_as_before(path: Path) -> None:
    text = path.read_text("utf-8", errors="replace")
    page = Page(url="https://shop.example/p", text=text, status=200)
    assert amazon_jp.recognise(page) == _recognised_per_host(text)
