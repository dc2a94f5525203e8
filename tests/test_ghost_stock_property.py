"""Ghost stock: a page whose main product says it cannot be ordered is never buyable, whatever
its structured data or a leftover cart button say (found by hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.core.model import Page, WatchConditions
from watcher.stores.parse import parse_page

SOLD_OUT = [
    "売り切れ",
    "SOLD OUT",
    "在庫切れ",
    "品切れ中",
    "完売しました",
    "Out of stock",
    "Notify when available",
    "販売終了",
    "在庫なし",
    "予定数の販売を終了しました",
    "抽選受付中",
]
WHERE = [
    "<p class='stock'>{}</p>",
    "<span class='availability'>{}</span>",
    "<p>{}</p>",
    "<div class='zaiko'><strong>{}</strong></div>",
]
CARTS = [
    "",
    "<form action='/cart/add'><button type='submit'>カートに入れる</button></form>",
    "<button class='add-to-cart'>Add to Cart</button>",
    "<form action='/cart/add'><button disabled>カートに入れる</button></form>",
]
STRUCTURED = [
    "",
    '<script type="application/ld+json">'
    + json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": "限定マグ",
            "offers": {"@type": "Offer", "price": "2200", "availability": "InStock"},
        }
    )
    + "</script>",
    '<meta property="og:type" content="product">'
    '<meta property="product:availability" content="instock">',
]
URLS = {
    "generic": "https://shop.example/item/1",
    "yahoo_shopping": "https://store.shopping.yahoo.co.jp/shop/item-1.html",
    "shopify": "https://shop.example/products/item",
    "base": "https://shop.base.shop/items/1",
}


@st.composite
def ghost_pages(draw: st.DrawFn) -> str:
    said = draw(st.sampled_from(WHERE)).format(draw(st.sampled_from(SOLD_OUT)))
    cart = draw(st.sampled_from(CARTS))
    parts = draw(st.permutations([said, cart, "<p class='price'>¥2,200</p>"]))
    head = draw(st.sampled_from(STRUCTURED))
    description = "<p>手作りのマグカップです。</p>" * draw(st.integers(0, 5))
    body = f"<main><div class='item'><h1>限定マグ</h1>{''.join(parts)}</div>{description}</main>"
    return f"<html><head>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize("store", sorted(URLS))
@settings(max_examples=80, deadline=None)
@given(html=ghost_pages())
def test_a_page_saying_it_cannot_be_ordered_is_never_buyable(store: str, html: str) -> None:
    obs = parse_page(Page(url=URLS[store], text=html), store=store)
    assert not obs.state.orderable, (obs.state, obs.reason)
    assert not WatchConditions().is_buyable(obs)
