"""No page carrying a block marker is ever buyable, in any adapter, whatever stock wording, buy
buttons or structured data it also carries (found by hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.core.model import Page, WatchConditions
from watcher.stores.parse import parse_page
from watcher.stores.registry import ADAPTERS

URLS = {
    "generic": "https://shop.example/item/1",
    "amazon_jp": "https://www.amazon.co.jp/dp/B0PROP0000",
    "rakuten": "https://item.rakuten.co.jp/shop/item-1/",
    "yahoo_shopping": "https://store.shopping.yahoo.co.jp/shop/item-1.html",
    "base": "https://shop.base.shop/items/12345678",
    "shopify": "https://shop.example/products/item",
}

# Where a block page puts its notice: the markers every adapter must honour.
MARKERS = [
    '<form action="/errors/validateCaptcha"><input id="captchacharacters"></form>',
    '<script>var ue_sn = "opfcaptcha.amazon.co.jp";</script>',
    "<script>window._cf_chl_opt={cType:'managed'};</script>",
    '<div id="challenge-form"></div>',
    '<div class="g-recaptcha" data-sitekey="6Lc0000"></div>',
    '<div class="h-captcha" data-sitekey="10000000-ffff"></div>',
    '<div class="cf-turnstile" data-sitekey="0x4AAA"></div>',
    '<iframe src="https://www.google.com/recaptcha/api2/anchor?k=6Lc"></iframe>',
    '<script src="https://ct.captcha-delivery.com/c.js"></script>',
    '<div id="px-captcha"></div>',
    "<title>Access Denied</title>",
    "<h1>Access Denied</h1>",
    "<title>429 Too Many Requests</title>",
    "<h1>Too Many Requests</h1>",
    "<title>Just a moment...</title>",
    "<h1>アクセスが集中しています</h1>",
    "<p>ただいまアクセスが集中しております。しばらくしてから再度お試しください。</p>",
    "<p>アクセスが制限されています</p>",
    "<p>Please verify you are human to continue.</p>",
    "<title>Robot Check</title>",
    '<a href="/dogsofamazon/ref=cs_503_d">dogs</a>',
]

STOCK = [
    "<p class='stock'>在庫あり</p>",
    "<p class='stock'>残り2点</p>",
    "<span id='availability'>在庫あり。</span>",
    "<p>In stock</p>",
    "<p class='zaiko'>当日出荷</p>",
]
CONTROLS = [
    "<form action='/cart/add'><button type='submit'>カートに入れる</button></form>",
    "<input id='add-to-cart-button' type='submit' value='カートに入れる'>",
    "<button class='cart-button'>買い物かごに入れる</button>",
    "<button>Add to Cart</button>",
    "<a class='buy-now' href='/buy'>今すぐ購入</a>",
    "<div id='purchaseButton' class='purchaseButton'>カートに入れる</div>",
]
STRUCTURED = [
    "",
    '<script type="application/ld+json">'
    + json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": "限定品",
            "offers": {"@type": "Offer", "price": "1980", "availability": "InStock"},
        }
    )
    + "</script>",
    '<meta property="og:type" content="product"><meta property="product:availability"'
    ' content="instock">',
    '<div itemscope itemtype="https://schema.org/Product"><span itemprop="name">限定品</span>'
    '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
    '<link itemprop="availability" href="https://schema.org/InStock"></div></div>',
]


@st.composite
def block_pages(draw: st.DrawFn) -> str:
    marker = draw(st.sampled_from(MARKERS))
    parts = [
        draw(st.sampled_from(STOCK)),
        draw(st.sampled_from(CONTROLS)),
        "<h1>限定スニーカー</h1><p class='price'>¥19,800</p>",
        marker,
    ]
    order = draw(st.permutations(parts))
    head = draw(st.sampled_from(STRUCTURED))
    filler = draw(st.integers(min_value=0, max_value=30))
    body = "".join(order) + "<p>商品説明です。</p>" * filler
    if marker.startswith("<title>"):
        head += marker
        body = body.replace(marker, "")
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize("store", sorted(ADAPTERS))
@settings(max_examples=60, deadline=None)
@given(html=block_pages())
def test_no_page_with_a_block_marker_is_ever_buyable(store: str, html: str) -> None:
    obs = parse_page(Page(url=URLS[store], text=html), store=store)
    assert not obs.state.orderable, (obs.state, obs.reason)
    assert not WatchConditions().is_buyable(obs)
    assert obs.reason.startswith("blocked:"), obs.reason


def test_every_adapter_has_a_url_here() -> None:
    assert set(URLS) == set(ADAPTERS)
