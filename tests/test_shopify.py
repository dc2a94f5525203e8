"""Shopify: /products/<handle>.js JSON (variant availability), product pages, own domains."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from watcher.core.model import Availability, Page, WatchConditions
from watcher.stores.parse import parse_page
from watcher.stores.registry import ADAPTERS, adapter_for
from watcher.stores.shopify import parse_product, product_request, recognise

API = FIXTURES / "api"
PAGES = FIXTURES / "pages" / "shopify"
JS_URL = "https://shop.hiraku.jp/products/organic-tee.js"


def _json_page(name: str, url: str = JS_URL) -> Page:
    return Page(
        url=url, text=(API / name).read_text("utf-8"), content_type="application/javascript"
    )


@pytest.mark.parametrize(
    "url,planned",
    [
        ("https://shop.hiraku.jp/products/organic-tee", JS_URL),
        ("https://shop.hiraku.jp/collections/new/products/organic-tee?ref=x", JS_URL),
        (
            "https://shop.hiraku.jp/en/products/organic-tee",
            "https://shop.hiraku.jp/en/products/organic-tee.js",
        ),
        (
            "https://shop.hiraku.jp/products/organic-tee?variant=45000000000002",
            f"{JS_URL}?variant=45000000000002",
        ),
        ("https://shop.hiraku.jp/products/organic-tee.js", JS_URL),
        ("https://shop.hiraku.jp/pages/about", "https://shop.hiraku.jp/pages/about"),
    ],
)
def test_product_request_asks_for_the_product_js(url: str, planned: str) -> None:
    assert product_request(url).url == planned


def test_product_js_with_some_variants_available_is_in_stock_at_the_cheapest_available() -> None:
    obs = parse_product(_json_page("shopify-product-some-available.js"))
    assert obs.state is Availability.IN_STOCK
    assert obs.price == 4980  # 498000 hundredths of a yen
    assert obs.currency == "JPY"
    assert obs.seller == "HIRAKU Apparel"
    assert obs.reason == "shopify:product.js product available"


def test_product_js_with_every_variant_sold_out_is_out_of_stock() -> None:
    obs = parse_product(
        _json_page(
            "shopify-product-sold-out.js", "https://shop.hiraku.jp/products/limited-hoodie.js"
        )
    )
    assert obs.state is Availability.OUT_OF_STOCK
    assert obs.price == 12800
    assert not WatchConditions().is_buyable(obs)


@pytest.mark.parametrize(
    "variant,state",
    [("45000000000001", Availability.OUT_OF_STOCK), ("45000000000003", Availability.IN_STOCK)],
)
def test_a_watched_variant_is_read_alone(variant: str, state: Availability) -> None:
    obs = parse_product(
        _json_page("shopify-product-some-available.js", f"{JS_URL}?variant={variant}")
    )
    assert obs.state is state
    assert obs.reason.endswith(
        f"variant {variant} {'available' if state is Availability.IN_STOCK else 'sold out'}"
    )


def test_a_shop_outside_japan_has_no_assumed_currency() -> None:
    obs = parse_product(
        _json_page("shopify-product-some-available.js", "https://shop.example.com/products/t.js")
    )
    assert obs.currency is None


def test_broken_or_foreign_json_is_unknown() -> None:
    assert parse_product(Page(url=JS_URL, text="{not json")).state is Availability.UNKNOWN
    assert (
        parse_product(Page(url=JS_URL, text='{"product": {"title": "x"}}')).state
        is Availability.UNKNOWN
    )


def test_own_domain_shops_are_recognised_from_the_page_or_the_json() -> None:
    html = (PAGES / "product-page-some-sizes-left.html").read_text("utf-8")
    page = Page(url="https://shop.hiraku.jp/products/organic-tee", text=html)
    assert recognise(page)
    assert adapter_for(page.url, page=page) is ADAPTERS["shopify"]
    assert recognise(_json_page("shopify-product-some-available.js"))
    assert not recognise(Page(url="https://shop.example/", text="<h1>cdn.shopify.com</h1>"))
    obs = parse_page(_json_page("shopify-product-some-available.js"))
    assert (obs.store, obs.state) == ("shopify", Availability.IN_STOCK)


def test_myshopify_hosts() -> None:
    assert adapter_for("https://hiraku-apparel.myshopify.com/products/x") is ADAPTERS["shopify"]


@pytest.mark.parametrize(
    "description",
    [
        "<p>発売日は大変アクセスが集中することが予想されます。お一人様1点限り。</p>",
        "<p>Bot purchases: orders placed by automated access will be cancelled.</p>",
        "<p>Access denied to resellers.</p>",
    ],
)
def test_a_product_description_that_mentions_blocking_words_is_not_a_block(
    description: str,
) -> None:
    product = {
        "id": 1,
        "title": "限定スニーカー",
        "handle": "sneaker",
        "available": True,
        "body_html": description,
        "variants": [{"id": 11, "title": "26cm", "available": True, "price": 1980000}],
    }
    page = Page(url=JS_URL, text=json.dumps(product, ensure_ascii=False))
    obs = parse_page(page, store="shopify")
    assert (obs.state, obs.blocked, obs.price) == (Availability.IN_STOCK, False, 19800)
