"""Amazon: only the buy box decides; sellers, prices and conditions feed the watch's conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, SHARED_PAGES

from watcher.core.model import (
    Availability,
    ConditionFilter,
    ItemCondition,
    Page,
    SellerFilter,
    WatchConditions,
)
from watcher.stores.amazon_jp import BuyBox, decide, parse_product, product_request
from watcher.stores.parse import parse_page
from watcher.stores.registry import ADAPTERS, adapter_for

PAGES = FIXTURES / "pages" / "amazon_jp"
_A = Availability


def _read(case: str, url: str = "https://www.amazon.co.jp/dp/B0TEST0000", status: int = 200) -> Any:
    text = (PAGES / f"{case}.html").read_text("utf-8")
    return parse_product(Page(url=url, text=text, status=status))


def _box(text: str, cart: bool = False, buy_now: bool = False, oos_box: bool = False) -> BuyBox:
    return BuyBox(
        availability=text,
        has_cart=cart,
        has_buy_now=buy_now,
        out_of_stock_box=oos_box,
        used_only=False,
    )


@pytest.mark.parametrize(
    "text,cart,expected",
    [
        ("在庫あり。", True, _A.IN_STOCK),
        ("残り1点 ご注文はお早めに", True, _A.IN_STOCK),
        ("通常2～3日以内に発送します。", True, _A.BACKORDER),
        ("通常1～2営業日以内に発送します。", True, _A.BACKORDER),
        ("一時的に在庫切れ；入荷時期は未定です。", True, _A.BACKORDER),
        ("一時的に在庫切れ；入荷時期は未定です。", False, _A.OUT_OF_STOCK),
        ("現在在庫切れです。この商品の再入荷予定は立っておりません。", False, _A.OUT_OF_STOCK),
        ("この商品は現在お取り扱いできません。", False, _A.DISCONTINUED),
        ("予約受付中です。", True, _A.PREORDER),
        ("この商品の発売予定日は2026年11月4日です。", True, _A.PREORDER),
        ("In Stock", True, _A.IN_STOCK),
        ("Only 11 left in stock - order soon.", True, _A.IN_STOCK),
        (
            "Currently unavailable. We don't know when or if this item will be back in stock.",
            False,
            _A.OUT_OF_STOCK,
        ),
        (
            "Temporarily out of stock. Order now and we'll deliver when available.",
            True,
            _A.BACKORDER,
        ),
        ("Usually ships within 6 to 10 days.", True, _A.BACKORDER),
        ("In stock on December 3, 2026.", True, _A.BACKORDER),
        ("This item will be released on March 1, 2027.", True, _A.PREORDER),
        ("Em estoque", True, _A.IN_STOCK),
        ("Não disponível.", False, _A.OUT_OF_STOCK),
        ("Auf Lager", True, _A.IN_STOCK),
        ("Derzeit nicht verfügbar.", False, _A.OUT_OF_STOCK),
        ("متوفر", True, _A.IN_STOCK),
        ("غير متوفر حاليًا", False, _A.OUT_OF_STOCK),
        ("Available from these sellers.", False, _A.OUT_OF_STOCK),
    ],
)
def test_buy_box_wording(text: str, cart: bool, expected: Availability) -> None:
    assert decide(_box(text, cart=cart))[0] is expected


@pytest.mark.parametrize(
    "box,expected",
    [
        (_box("", cart=True), (_A.IN_STOCK, "amazon:#add-to-cart-button")),
        (_box("", buy_now=True), (_A.IN_STOCK, "amazon:#buy-now-button")),
        (_box("", oos_box=True), (_A.OUT_OF_STOCK, "amazon:#outOfStock")),
        (_box(""), (_A.UNKNOWN, "amazon:no signal")),
    ],
)
def test_buttons_decide_when_the_buy_box_says_nothing(
    box: BuyBox, expected: tuple[Availability, str]
) -> None:
    assert decide(box) == expected


@pytest.mark.parametrize(
    "url,canonical",
    [
        (
            "https://www.amazon.co.jp/Nintendo-Switch-2/dp/B0DX000000/ref=sr_1_1?th=1&psc=1",
            "https://www.amazon.co.jp/dp/B0DX000000",
        ),
        (
            "https://www.amazon.co.jp/gp/product/b0dx000000?tag=aff-22",
            "https://www.amazon.co.jp/dp/B0DX000000",
        ),
        ("https://www.amazon.co.jp/gp/aw/d/4088843657", "https://www.amazon.co.jp/dp/4088843657"),
        ("https://www.amazon.com/dp/B0TEST0012", "https://www.amazon.com/dp/B0TEST0012"),
    ],
)
def test_product_request_uses_the_canonical_dp_url(url: str, canonical: str) -> None:
    assert product_request(url).url == canonical


def test_product_request_asks_for_japanese_on_amazon_co_jp_only() -> None:
    assert product_request("https://www.amazon.co.jp/dp/B0DX000000").headers["Accept-Language"]
    assert "Accept-Language" not in product_request("https://www.amazon.com/dp/B0DX000000").headers


def test_an_unrecognised_amazon_url_is_fetched_as_given() -> None:
    url = "https://www.amazon.co.jp/s?k=switch"
    assert product_request(url).url == url


def test_amazon_hosts_and_gentle_limits() -> None:
    adapter = ADAPTERS["amazon_jp"]
    assert adapter_for("https://www.amazon.co.jp/dp/B0DX000000") is adapter
    assert adapter_for("https://amazon.co.jp/dp/B0DX000000") is adapter
    assert adapter_for("https://www.amazon.com.br/dp/B0DKLQT9XR") is adapter
    assert adapter.limits.concurrency == 1
    assert adapter.limits.min_delay.total_seconds() == 3
    assert adapter.limits.min_interval.total_seconds() == 60


def test_amazon_co_jp_as_seller_is_official() -> None:
    obs = _read("in-stock-sold-by-amazon")
    assert obs.seller == "Amazon.co.jp"
    assert obs.ships_from == "Amazon.co.jp"
    assert obs.official is True
    assert obs.condition is ItemCondition.NEW


def test_a_marketplace_seller_shipped_by_amazon_is_not_official() -> None:
    obs = _read("low-stock-3-left-third-party")
    assert obs.ships_from == "Amazon"
    assert obs.official is False
    assert obs.quantity == 3


def test_the_oldest_merchant_sentence_names_the_seller() -> None:
    obs = _read("real-size-variation-traps")
    assert obs.seller == "Amazon.co.jp"
    assert obs.ships_from == "Amazon.co.jp"
    assert obs.official is True


def test_a_marketplace_seller_over_max_price_is_not_buyable() -> None:
    obs = _read("third-party-over-max-price")
    assert obs.state is _A.IN_STOCK
    assert obs.price == 98000
    assert not WatchConditions(max_price=49980, condition=ConditionFilter.NEW).is_buyable(obs)
    assert not WatchConditions(seller=SellerFilter.OFFICIAL).is_buyable(obs)
    assert not WatchConditions(exclude_sellers=("転売屋",)).accepts_offer(obs.offers[0])
    assert WatchConditions().is_buyable(obs)


def test_the_other_sellers_summary_is_shown_but_never_bought() -> None:
    obs = _read("third-party-over-max-price")
    assert [(o.price, o.condition, o.summary) for o in obs.offers] == [
        (98000, ItemCondition.NEW, False),
        (89800, ItemCondition.NEW, True),  # "新品 (n)点：￥89,800より": a from-price, not an offer
    ]
    assert not WatchConditions(max_price=90000).is_buyable(obs)  # the buy box asks ¥98,000
    assert WatchConditions(max_price=98000).is_buyable(obs)


def test_other_sellers_only_reads_out_of_stock_and_is_never_buyable() -> None:
    obs = _read("other-sellers-only")
    assert obs.state is _A.OUT_OF_STOCK
    assert (obs.price, obs.seller) == (None, None)  # the buy box's, and it has none
    assert obs.offers[0].summary is False and obs.offers[0].state is _A.OUT_OF_STOCK
    assert {(o.condition, o.price, o.summary) for o in obs.offers[1:]} == {
        (ItemCondition.NEW, 38800, True),
        (ItemCondition.USED, 24000, True),
    }
    for conditions in (
        WatchConditions(),
        PERMISSIVE,
        WatchConditions(max_price=30000, condition=ConditionFilter.USED),
        WatchConditions(max_price=50000, condition=ConditionFilter.NEW),
    ):
        assert not conditions.is_buyable(obs)
        assert not conditions.buyable_offers(obs)


_SOLD_OUT_WITH_SUMMARY_IN_BUY_BOX = """
<div id="dp"><span id="productTitle">テスト加湿器</span>
<div id="buybox">
  <div id="outOfStock"><div id="availability"><span>現在在庫切れです。</span></div></div>
  <div id="olp_feature_div"><div id="olp"><a href="/gp/offer-listing/B0TEST0000">
    <span>新品 (5)点：</span><span class="a-price"><span class="a-offscreen">￥89,800</span></span>
    <span>より</span></a></div></div>
</div></div>
"""


def test_a_summary_price_inside_the_buy_box_is_not_the_buy_box_price() -> None:
    obs = parse_product(
        Page(url="https://www.amazon.co.jp/dp/B0TEST0000", text=_SOLD_OUT_WITH_SUMMARY_IN_BUY_BOX)
    )
    assert obs.state is _A.OUT_OF_STOCK
    assert obs.price is None
    assert [(o.price, o.summary) for o in obs.offers[1:]] == [(89800, True)]
    assert not PERMISSIVE.is_buyable(obs)


def test_used_only_page_is_used_and_fails_a_new_only_watch() -> None:
    obs = _read("used-only")
    assert obs.condition is ItemCondition.USED
    assert obs.state is _A.IN_STOCK
    assert not WatchConditions(condition=ConditionFilter.NEW).is_buyable(obs)
    assert WatchConditions(condition=ConditionFilter.USED).is_buyable(obs)


def test_english_page_price_in_dollars_is_rounded_to_whole_units() -> None:
    obs = _read("en-only-2-left-us", url="https://www.amazon.com/dp/B0TEST0012")
    assert (obs.price, obs.currency) == (36, "USD")


def test_decimal_comma_prices_read_as_decimals() -> None:
    html = (
        '<div id="dp"><div id="availability"><span>Em estoque</span></div>'
        '<div id="corePrice_feature_div"><span class="a-price">'
        '<span class="a-offscreen">R$2.020,21</span></span></div></div>'
    )
    obs = parse_product(Page(url="https://www.amazon.com.br/dp/B0DKLQT9XR", text=html))
    assert (obs.price, obs.currency) == (2020, "BRL")


def test_the_503_dog_page_is_blocked_with_the_wait_the_shop_asked_for() -> None:
    text = (PAGES / "dogs-503.html").read_text("utf-8")
    page = Page(url="https://www.amazon.co.jp/dp/B0TEST0015", text=text, status=503, retry_after=60)
    obs = parse_page(page, store="amazon_jp")
    assert obs.state is _A.UNKNOWN
    assert obs.blocked is True
    assert obs.retry_after == 60


def test_an_unrelated_page_is_not_a_product() -> None:
    obs = parse_product(
        Page(url="https://www.amazon.co.jp/gp/help", text="<h1>ヘルプ</h1>在庫あり")
    )
    assert obs.state is _A.UNKNOWN
    assert obs.reason == "amazon:not a product page"


PERMISSIVE = WatchConditions(
    buyable=frozenset({_A.IN_STOCK, _A.BACKORDER, _A.PREORDER}), condition=ConditionFilter.ANY
)


@pytest.mark.parametrize(
    "case",
    [
        "captcha-enter-characters",
        "captcha-continue-shopping-newer",
        "dogs-503",
        "search-results-not-a-product",
    ],
)
def test_captcha_and_non_product_pages_are_never_buyable(case: str) -> None:
    obs = _read(case)
    assert obs.state is _A.UNKNOWN
    assert not obs.offers
    assert not PERMISSIVE.is_buyable(obs)


# --- the real pages beside the project ---------------------------------------------------------

_HOSTS = {
    "jp": "www.amazon.co.jp",
    "com": "www.amazon.com",
    "in": "www.amazon.in",
    "sa": "www.amazon.sa",
    "br": "www.amazon.com.br",
}


def _labels() -> list[tuple[str, dict[str, Any]]]:
    labels_file = SHARED_PAGES / "labels.json"
    if not labels_file.is_file():
        return []
    labels: dict[str, dict[str, Any]] = json.loads(labels_file.read_text("utf-8"))
    wanted = {"amazon_jp", "rakuten"}
    return sorted((name, label) for name, label in labels.items() if label["store"] in wanted)


def _url(name: str, store: str) -> str:
    if store == "rakuten":
        return "https://item.rakuten.co.jp/shop/item/"
    prefix = Path(name).name.split("-")[0]
    return f"https://{_HOSTS.get(prefix, 'www.amazon.co.jp')}/dp/B000000000"


@pytest.mark.skipif(not (SHARED_PAGES / "labels.json").is_file(), reason="no shared pages here")
@pytest.mark.parametrize("name,label", _labels(), ids=[n for n, _ in _labels()])
def test_real_pages_read_as_labelled(name: str, label: dict[str, Any]) -> None:
    raw = (SHARED_PAGES / name).read_bytes()
    page = Page(url=_url(name, label["store"]), text=raw.decode("utf-8", "replace"), bytes=len(raw))
    obs = parse_page(page, store=label["store"])
    assert obs.state.value == label["state"], obs.reason
    if label.get("price") is not None:
        assert obs.price == label["price"]
    if obs.state is _A.UNKNOWN:
        assert not PERMISSIVE.is_buyable(obs)


def test_no_featured_offer_keeps_the_other_sellers_summary() -> None:
    html = (FIXTURES / "pages" / "amazon_jp" / "no-featured-offers-jp-buy-box.html").read_text(
        "utf-8"
    )
    obs = parse_product(Page(url="https://www.amazon.co.jp/dp/B0FIXT0000", text=html))
    assert obs.state is Availability.OUT_OF_STOCK
    assert obs.reason == "amazon:no featured offer (おすすめ出品がありません)"
    summaries = [o for o in obs.offers if o.summary]
    assert [(o.price, o.condition) for o in summaries] == [(36980, ItemCondition.NEW)]
