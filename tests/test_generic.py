"""The generic adapter, the shared extraction helpers it is built from, and the registry."""

from __future__ import annotations

import pytest
from selectolax.lexbor import LexborHTMLParser

from watcher.core.model import Availability, ItemCondition, Observation, Page, TextRules
from watcher.errors import UsageError
from watcher.stores._base import StoreAdapter
from watcher.stores._schema_org import (
    best_state,
    og_availability,
    read_jsonld,
    read_microdata,
    read_opengraph,
    read_structured,
    schema_availability,
)
from watcher.stores._text import (
    classify_wording,
    clean_title,
    parse_amount,
    parse_price,
    quantity_hint,
)
from watcher.stores._wording import STATE_ORDER
from watcher.stores.generic import parse_product, parse_with_rules
from watcher.stores.parse import failed_fetch, parse_page
from watcher.stores.registry import ADAPTERS, adapter_for

A = Availability


def tree(html: str) -> LexborHTMLParser:
    return LexborHTMLParser(html)


def page(html: str, **kw: object) -> Page:
    return Page(url=str(kw.pop("url", "https://shop.example/item/1")), text=html, **kw)  # type: ignore[arg-type]


# --- prices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,price",
    [
        ("￥1,980", 1980),
        ("¥1,980", 1980),
        ("1,980円", 1980),
        ("1980円(税込)", 1980),
        ("税込 1,980円", 1980),
        ("１，９８０円", 1980),
        ("JPY 1980", 1980),
        ("価格 12,800円 (送料 500円)", 12800),
        ("$35.99", None),
        ("在庫あり", None),
        ("", None),
        ("123456789012円", None),
        ("獲得ポイント 298pt 価格 29,800円", 29800),
        ("298円相当ポイント 29,800円", 29800),
        ("ポイント10倍 価格 ¥980", 980),
        ("27,091円（税抜） 29,800円（税込）", 29800),
        ("本体価格 27,091円 + 税", 27091),
        ("送料 800円 / 本体 29,800円", 29800),
        ("送料無料 29,800円", 29800),
        ("¥1,980〜¥3,980", 1980),
        ("1,980円～2,980円", 1980),
        ("¥1,980〜", 1980),
        ("定価 5,000円 特価 3,980円", 3980),
        ("通常価格 5,000円 のところ 3,980円", 3980),
        ("メーカー希望小売価格 5,000円 販売価格 3,980円(税込)", 3980),
        ("定価 1,980円", 1980),  # a bookshop's fixed price is what one pays
        ("29.800円", 29800),  # yen have no decimals: a dotted thousands group
        ("1980.00円", 1980),
    ],
)
def test_parse_price_reads_yen(text: str, price: int | None) -> None:
    assert parse_price(text) == price


def test_parse_price_other_currency_rounds_to_main_unit() -> None:
    assert parse_price("$35.99", currency="USD") == 36
    assert parse_price("US $349.49", currency="USD") == 349


@pytest.mark.parametrize(
    "value,price",
    [
        ("4516", 4516),
        (4516, 4516),
        (80.0, 80),
        ("1,980", 1980),
        ("abc", None),
        (-5, None),
        (True, None),
        (None, None),
        ("NaN", None),
        ("29.800", 29800),
        ("29,800円(税込)", 29800),
        ("¥29,800", 29800),
        ("4980.00", 4980),
    ],
)
def test_parse_amount_reads_structured_numbers(value: object, price: int | None) -> None:
    assert parse_amount(value) == price


def test_parse_amount_reads_dots_as_decimals_outside_yen() -> None:
    assert parse_amount("29.800", "USD") == 30
    assert parse_amount("29.800", "JPY") == 29800


# --- wording -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,state",
    [
        ("在庫あり", A.IN_STOCK),
        ("在庫有り", A.IN_STOCK),
        ("在庫あります", A.IN_STOCK),
        ("残りわずか", A.IN_STOCK),
        ("残り3点", A.IN_STOCK),
        ("在庫僅少", A.IN_STOCK),
        ("即納", A.IN_STOCK),
        ("カートに入れる", A.IN_STOCK),
        ("買い物かごに入れる", A.IN_STOCK),
        ("購入手続きへ", A.IN_STOCK),
        ("Add to cart", A.IN_STOCK),
        ("Add to bag", A.IN_STOCK),
        ("Buy now", A.IN_STOCK),
        ("In stock", A.IN_STOCK),
        ("在庫切れ", A.OUT_OF_STOCK),
        ("在庫なし", A.OUT_OF_STOCK),
        ("在庫無し", A.OUT_OF_STOCK),
        ("売り切れ", A.OUT_OF_STOCK),
        ("売切れ", A.OUT_OF_STOCK),
        ("完売", A.OUT_OF_STOCK),
        ("品切れ", A.OUT_OF_STOCK),
        ("SOLD OUT", A.OUT_OF_STOCK),
        ("Sold out", A.OUT_OF_STOCK),
        ("Out of stock", A.OUT_OF_STOCK),
        ("入荷待ち", A.OUT_OF_STOCK),
        ("再入荷待ち", A.OUT_OF_STOCK),
        ("入荷未定", A.OUT_OF_STOCK),
        ("在庫ありません", A.OUT_OF_STOCK),
        ("現在在庫がありません", A.OUT_OF_STOCK),
        ("This item is not in stock", A.OUT_OF_STOCK),
        ("在庫あり / 在庫なし", A.OUT_OF_STOCK),
        ("取り寄せ", A.BACKORDER),
        ("お取り寄せ", A.BACKORDER),
        ("通常2～3日以内に発送", A.BACKORDER),
        ("Backorder", A.BACKORDER),
        ("予約受付中", A.PREORDER),
        ("予約販売", A.PREORDER),
        ("予約注文", A.PREORDER),
        ("予約商品", A.PREORDER),
        ("Pre-order", A.PREORDER),
        ("販売終了", A.DISCONTINUED),
        ("生産終了", A.DISCONTINUED),
        ("取扱終了", A.DISCONTINUED),
        ("取り扱いを終了しました", A.DISCONTINUED),
        ("Discontinued", A.DISCONTINUED),
        ("ＳＯＬＤ　ＯＵＴ", A.OUT_OF_STOCK),
    ],
)
def test_classify_wording(text: str, state: Availability) -> None:
    found = classify_wording(text)
    assert found is not None and found[0] is state


@pytest.mark.parametrize("text", ["", "送料無料", "在庫有無", "商品説明", "instockings"])
def test_classify_wording_says_nothing_for_other_text(text: str) -> None:
    assert classify_wording(text) is None


def test_wording_rules_put_every_negative_before_every_positive() -> None:
    states = list(STATE_ORDER)
    last_negative = max(i for i, s in enumerate(states) if not s.orderable)
    first_positive = min(i for i, s in enumerate(states) if s.orderable)
    assert last_negative < first_positive


@pytest.mark.parametrize(
    "text,qty",
    [
        ("残り3点", 3),
        ("残り１点", 1),
        ("Only 2 left in stock", 2),
        ("残りわずか", None),
        ("", None),
    ],
)
def test_quantity_hint(text: str, qty: int | None) -> None:
    assert quantity_hint(text) == qty


def test_clean_title_caps_length_and_normalises() -> None:
    assert clean_title("  Ａ　B \n C ") == "A B C"
    capped = clean_title("x" * 1000)
    assert capped is not None and len(capped) == 300
    assert clean_title("   ") is None


# --- schema.org --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,state",
    [
        ("InStock", A.IN_STOCK),
        ("https://schema.org/InStock", A.IN_STOCK),
        ("http://schema.org/LimitedAvailability", A.IN_STOCK),
        ("schema:InStoreOnly", A.IN_STOCK),
        ("OnlineOnly", A.IN_STOCK),
        ("instock", A.IN_STOCK),
        ("https://schema.org/BackOrder", A.BACKORDER),
        ("PreOrder", A.PREORDER),
        ("PreSale", A.PREORDER),
        ("OutOfStock", A.OUT_OF_STOCK),
        ("SoldOut", A.OUT_OF_STOCK),
        ("Discontinued", A.DISCONTINUED),
    ],
)
def test_schema_availability(value: str, state: Availability) -> None:
    found = schema_availability(value)
    assert found is not None and found[0] is state


@pytest.mark.parametrize("value", ["", "maybe", None, 3])
def test_schema_availability_rejects_other_values(value: object) -> None:
    assert schema_availability(value) is None


@pytest.mark.parametrize(
    "value,state",
    [
        ("instock", A.IN_STOCK),
        ("in stock", A.IN_STOCK),
        ("oos", A.OUT_OF_STOCK),
        ("out of stock", A.OUT_OF_STOCK),
        ("preorder", A.PREORDER),
        ("InStock", A.IN_STOCK),
        ("available for order", A.BACKORDER),
    ],
)
def test_og_availability(value: str, state: Availability) -> None:
    found = og_availability(value)
    assert found is not None and found[0] is state


def test_og_pending_is_no_signal() -> None:
    assert og_availability("pending") is None


def test_best_state_prefers_orderable() -> None:
    assert best_state([A.OUT_OF_STOCK, A.PREORDER, A.BACKORDER]) is A.BACKORDER
    assert best_state([A.DISCONTINUED, A.OUT_OF_STOCK]) is A.OUT_OF_STOCK
    assert best_state([None]) is None


def _ld(body: str) -> str:
    return f'<script type="application/ld+json">{body}</script>'


def test_jsonld_skips_a_broken_script_and_reads_the_next() -> None:
    html = _ld('{"@type": "Product",') + _ld(
        '{"@type": "Product", "name": "B", "offers": {"availability": "OutOfStock", "price": 5}}'
    )
    data = read_jsonld(tree(html))
    assert data is not None and data.state is A.OUT_OF_STOCK and data.title == "B"


def test_jsonld_cdata_wrapped() -> None:
    html = _ld('//<![CDATA[\n{"@type": "Product", "offers": {"availability": "InStock"}}\n//]]>')
    data = read_jsonld(tree(html))
    assert data is not None and data.state is A.IN_STOCK


def test_jsonld_type_list_and_refurbished_condition() -> None:
    html = _ld(
        '{"@type": ["Product", "Thing"], "offers": {"@type": "Offer", "availability": "InStock",'
        ' "itemCondition": "RefurbishedCondition", "priceSpecification": {"price": "1200",'
        ' "priceCurrency": "jpy"}}}'
    )
    data = read_jsonld(tree(html))
    assert data is not None
    assert (data.condition, data.price, data.currency) == (ItemCondition.REFURBISHED, 1200, "JPY")


def test_jsonld_the_first_top_level_product_is_the_main_one() -> None:
    html = _ld('{"@type": "Product", "name": "Main"}') + _ld(
        '{"@type": "Product", "name": "Other", "offers": {"availability": "PreOrder"}}'
    )
    data = read_jsonld(tree(html))
    assert data is not None and data.title == "Main" and data.state is None


def test_jsonld_the_product_named_by_the_h1_is_the_main_one() -> None:
    html = (
        "<h1>Main</h1>"
        + _ld('{"@type": "Product", "name": "Other", "offers": {"availability": "InStock"}}')
        + _ld('{"@type": "Product", "name": "Main", "offers": {"availability": "PreOrder"}}')
    )
    data = read_jsonld(tree(html))
    assert data is not None and data.title == "Main" and data.state is A.PREORDER


def test_jsonld_the_product_at_the_canonical_url_is_the_main_one() -> None:
    html = '<link rel="canonical" href="https://shop.example/items/2">' + _ld(
        '[{"@type": "Product", "name": "One", "url": "https://shop.example/items/1",'
        ' "offers": {"availability": "InStock", "price": 500}},'
        ' {"@type": "Product", "name": "Two", "url": "/items/2/",'
        ' "offers": {"availability": "OutOfStock", "price": 9800}}]'
    )
    data = read_jsonld(tree(html))
    assert data is not None and (data.title, data.state, data.price) == (
        "Two",
        A.OUT_OF_STOCK,
        9800,
    )


_MAIN_WITHOUT_AVAILABILITY = _ld(
    '{"@context": "https://schema.org", "@type": "Product", "name": "限定版A",'
    ' "offers": {"@type": "Offer", "price": "9800", "priceCurrency": "JPY"}}'
)


@pytest.mark.parametrize(
    "related",
    [
        '{"@type": "ItemList", "itemListElement": [{"@type": "ListItem", "position": 1,'
        ' "item": {"@type": "Product", "name": "関連商品B", "offers": {"@type": "Offer",'
        ' "price": "500", "availability": "https://schema.org/InStock"}}}]}',
        '{"@graph": [{"@type": "ItemList", "itemListElement": [{"@type": "Product",'
        ' "name": "B", "offers": {"price": 500, "availability": "InStock"}}]}]}',
        '{"@type": "WebPage", "relatedLink": {"@type": "Product", "name": "B",'
        ' "offers": {"price": 500, "availability": "InStock"}}}',
    ],
)
def test_jsonld_main_product_never_borrows_a_related_products_state(related: str) -> None:
    html = (
        f"<h1>限定版A</h1>{_MAIN_WITHOUT_AVAILABILITY}{_ld(related)}<p class='stock'>在庫切れ</p>"
    )
    data = read_jsonld(tree(html))
    assert data is not None and (data.title, data.state, data.price) == ("限定版A", None, 9800)
    obs = parse_product(page(html))
    assert (obs.state, obs.price, obs.title) == (A.OUT_OF_STOCK, 9800, "限定版A")


def test_jsonld_a_second_copy_of_the_main_product_fills_in_its_state() -> None:
    html = _ld('{"@type": "Product", "name": "Main", "sku": "A1"}') + _ld(
        '{"@type": "Product", "name": "Main", "offers": {"availability": "InStock", "price": 980}}'
    )
    data = read_jsonld(tree(html))
    assert data is not None and (data.state, data.price) == (A.IN_STOCK, 980)


def test_jsonld_a_product_inside_a_web_page_is_the_main_one() -> None:
    html = _ld(
        '{"@type": "WebPage", "mainEntity": {"@type": "Product", "name": "Main",'
        ' "offers": {"availability": "OutOfStock"}}}'
    )
    data = read_jsonld(tree(html))
    assert data is not None and data.state is A.OUT_OF_STOCK


def test_jsonld_a_zero_price_is_no_price() -> None:
    html = _ld('{"@type": "Product", "offers": {"price": 0, "availability": "InStock"}}')
    data = read_jsonld(tree(html))
    assert data is not None and data.state is A.IN_STOCK and data.price is None


_MICRO_MAIN_OOS = (
    '<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">限定版A</h1>'
    '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
    '<meta itemprop="price" content="9800">'
    '<link itemprop="availability" href="https://schema.org/OutOfStock"></div>%s</div>'
)
_MICRO_RELATED = (
    '<div itemprop="isRelatedTo" itemscope itemtype="https://schema.org/Product">'
    '<span itemprop="name">関連B</span>'
    '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
    '<meta itemprop="price" content="500">'
    '<link itemprop="availability" href="https://schema.org/InStock"></div></div>'
)


@pytest.mark.parametrize(
    "html",
    [
        (_MICRO_MAIN_OOS % "") + f'<section class="related">{_MICRO_RELATED}</section>',
        _MICRO_MAIN_OOS % _MICRO_RELATED,  # nested inside the main scope
        (_MICRO_MAIN_OOS % "")
        + '<ul itemscope itemtype="https://schema.org/ItemList"><li itemprop="itemListElement">'
        + _MICRO_RELATED
        + "</li></ul>",
    ],
)
def test_microdata_only_the_main_products_offers_count(html: str) -> None:
    data = read_microdata(tree(html))
    assert data is not None
    assert (data.state, data.price, data.title) == (A.OUT_OF_STOCK, 9800, "限定版A")
    assert len(data.offers) == 1


def test_microdata_products_only_inside_a_list_are_no_product() -> None:
    html = (
        '<ul itemscope itemtype="https://schema.org/ItemList"><li>' + _MICRO_RELATED + "</li></ul>"
    )
    assert read_microdata(tree(html)) is None


def test_jsonld_hostile_depth_does_not_crash() -> None:
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    assert read_jsonld(tree(_ld(deep))) is None


def test_microdata_availability_in_itemtype_and_text() -> None:
    html = (
        '<div itemscope itemtype="http://schema.org/Offer">'
        '<span itemprop="availability" itemtype="http://schema.org/OutOfStock"></span></div>'
        '<div itemscope itemtype="http://schema.org/Offer">'
        '<span itemprop="availability">InStock</span><span itemprop="price">¥2,000</span></div>'
    )
    data = read_microdata(tree(html))
    assert data is not None and data.state is A.IN_STOCK and data.price == 2000
    assert len(data.offers) == 2


def test_opengraph_reads_facebook_product_tags() -> None:
    html = (
        '<meta property="og:type" content="product"><meta property="og:title" content=" T ">'
        '<meta property="product:availability" content="in stock">'
        '<meta property="product:price:amount" content="3,300">'
    )
    data = read_opengraph(tree(html))
    assert data is not None
    assert (data.state, data.price, data.title, data.reason) == (
        A.IN_STOCK,
        3300,
        "T",
        "og:in stock",
    )


def test_structured_jsonld_beats_opengraph() -> None:
    html = '<meta property="og:availability" content="instock">' + _ld(
        '{"@type": "Product", "offers": {"availability": "OutOfStock"}}'
    )
    decided = read_structured(tree(html)).decided()
    assert decided is not None and decided.reason == "jsonld:OutOfStock"


# --- the generic adapter -----------------------------------------------------------------------


def test_generic_ignores_scripts_and_hidden_text() -> None:
    html = (
        "<h1>X</h1><script>document.write('在庫あり')</script><style>/* 在庫あり */</style>"
        "<div hidden>在庫あり</div><div style='display: none'>在庫あり</div>"
        "<input type='hidden' value='カートに入れる'><template><b>在庫あり</b></template>"
    )
    obs = parse_product(page(html))
    assert (obs.state, obs.reason) == (A.UNKNOWN, "no signal")


def test_generic_stock_label_against_a_cart_button_is_a_conflict() -> None:
    html = "<h1>X</h1><button>カートに入れる</button><p class='zaiko'>在庫切れ</p>"
    obs = parse_product(page(html))
    assert obs.state is A.OUT_OF_STOCK
    assert obs.reason == "conflict: button カートに入れる vs text 在庫切れ"


def test_generic_enabled_buy_button_is_in_stock() -> None:
    obs = parse_product(page("<h1>X</h1><input type='submit' value='買い物かごに入れる'>"))
    assert (obs.state, obs.reason) == (A.IN_STOCK, "button:買い物かごに入れる")


def test_generic_disabled_buy_button_is_never_buyable() -> None:
    html = "<h1>X</h1><button aria-disabled='true'>Add to cart</button>"
    obs = parse_product(page(html))
    assert obs.state is A.OUT_OF_STOCK and obs.reason == "button:disabled:Add to cart"


_BASE = (
    "<html><head><title>テスト商品</title></head><body><h1>テスト商品</h1>"
    "<p class='p'>価格 1,980円</p>%s" + "<p>説明文</p>" * 10 + "</body></html>"
)


@pytest.mark.parametrize(
    "hidden",
    [
        "<button class='hidden'>カートに入れる</button>",
        "<button class='btn d-none'>カートに入れる</button>",
        "<button class='is-hidden'>カートに入れる</button>",
        "<button aria-hidden='true'>カートに入れる</button>",
        "<button style='visibility:hidden'>カートに入れる</button>",
        "<button style='display : none'>カートに入れる</button>",
        "<button style='color: red; DISPLAY:NONE !important;'>カートに入れる</button>",
        "<div class='hide'><button>カートに入れる</button></div>",
    ],
)
def test_generic_hidden_buy_buttons_do_not_count(hidden: str) -> None:
    obs = parse_product(page(_BASE % f"<p>SOLD OUT</p>{hidden}"))
    assert (obs.state, obs.reason) == (A.OUT_OF_STOCK, "text:SOLD OUT")


@pytest.mark.parametrize(
    "shown",
    [
        "<button class='d-none d-md-block'>カートに入れる</button>",  # hidden on phones only
        "<button class='overflow-hidden'>カートに入れる</button>",
        "<button>カートに入れる<span class='visually-hidden'>テスト商品</span></button>",
    ],
)
def test_generic_visible_buttons_still_count(shown: str) -> None:
    obs = parse_product(page(_BASE % shown))
    assert obs.state is A.IN_STOCK


def test_generic_screen_reader_text_is_read() -> None:
    obs = parse_product(page(_BASE % "<span class='visually-hidden'>在庫あり</span>"))
    assert (obs.state, obs.reason) == (A.IN_STOCK, "text:在庫あり")


@pytest.mark.parametrize(
    "control",
    [
        "<a class='btn-cart is-disabled'>カートに入れる</a>",
        "<button class='btn btn-disabled'>カートに入れる</button>",
        "<button class='button--disabled'>カートに入れる</button>",
        "<button aria-disabled='TRUE'>カートに入れる</button>",
    ],
)
def test_generic_a_disabled_class_word_disables_a_control(control: str) -> None:
    obs = parse_product(page(_BASE % control))
    assert (obs.state, obs.reason) == (A.OUT_OF_STOCK, "button:disabled:カートに入れる")


def test_generic_a_class_merely_containing_disabled_letters_is_live() -> None:
    obs = parse_product(page(_BASE % "<button class='undisabledish'>カートに入れる</button>"))
    assert obs.state is A.IN_STOCK


_RECOMMENDED = (
    "<div>商品B <button>カートに入れる</button></div>"
    "<div>商品C <button>カートに入れる</button></div>"
)


@pytest.mark.parametrize(
    "recommendations",
    [
        f"<div class='related'><h2>おすすめ</h2>{_RECOMMENDED}</div>",
        f"<section><h2>関連商品</h2>{_RECOMMENDED}</section>",
        f"<section><div class='head'><h3>You may also like</h3></div><ul>{_RECOMMENDED}</ul>"
        "</section>",
        f"<h2>【Recommended】</h2>{_RECOMMENDED}",
        f"<ul itemscope itemtype='https://schema.org/ItemList'>{_RECOMMENDED}</ul>",
        f"<div class='product-carousel'>{_RECOMMENDED}</div>",
        f"<div id='recommend-area'>{_RECOMMENDED}</div>",
    ],
)
def test_generic_recommended_products_cart_buttons_do_not_count(recommendations: str) -> None:
    obs = parse_product(page(_BASE % f"<p>この商品は売り切れました</p>{recommendations}"))
    assert obs.state is A.OUT_OF_STOCK
    assert obs.price == 1980


def test_generic_sold_out_in_the_product_block_beats_buttons_elsewhere() -> None:
    html = (
        "<div class='item-detail'><h1>限定版A</h1><p class='price'>9,800円</p>"
        "<p>SOLD OUT</p></div><ul class='items'><li>商品B <button>カートに入れる</button></li>"
        "<li>商品C <button>カートに入れる</button></li></ul>"
    )
    obs = parse_product(page(html))
    assert (obs.state, obs.price) == (A.OUT_OF_STOCK, 9800)


def test_generic_the_main_forms_button_beats_a_notice_in_the_product_block() -> None:
    html = (
        "<div class='item-detail'><h1>限定版A</h1><p class='price'>9,800円</p>"
        "<p>品切れの際はご容赦ください</p><form action='/cart/add'>"
        "<button>カートに入れる</button></form></div>"
    )
    assert parse_product(page(html)).state is A.IN_STOCK


def test_generic_a_shop_policy_beside_a_live_cart_button_is_in_stock() -> None:
    html = _BASE % "<p>品切れの際はご容赦ください</p><button>カートに入れる</button>"
    assert parse_product(page(html)).state is A.IN_STOCK


def test_generic_a_recommendation_heading_before_the_product_leaves_the_product() -> None:
    html = (
        "<body><h2>おすすめ</h2><div>商品B <span class='price'>500円</span></div>"
        "<div class='main'><h1>限定版A</h1><p class='price'>9,800円</p>"
        "<p class='stock'>在庫あり</p></div></body>"
    )
    obs = parse_product(page(html))
    assert (obs.state, obs.price, obs.title) == (A.IN_STOCK, 9800, "限定版A")


@pytest.mark.parametrize(
    "zone,price",
    [
        ("<div class='amount'>販売価格 29,800円(税込)</div>", 29800),
        ("<div class='price'>獲得ポイント 298pt 価格 29,800円</div>", 29800),
        ("<div class='price'><span class='point'>298円</span> 29,800円</div>", 29800),
        ("<div class='price'>27,091円（税抜） 29,800円（税込）</div>", 29800),
        ("<p class='shipping-price'>送料 800円</p><p class='price'>29,800円</p>", 29800),
        ("<div class='price'>¥1,980〜¥3,980</div>", 1980),
        ("<div class='price'><s>定価 5,000円</s> 特価 29,800円</div>", 29800),
        ("<div class='price'><del>¥5,000</del> ¥29,800</div>", 29800),
        (
            "<div class='price'><span class='price--compare'>¥5,000</span>"
            "<span class='price--sale'>¥29,800</span></div>",
            29800,
        ),
        ("<div class='price'><s>¥5,000</s></div>", 5000),  # nothing else shown
        ("<div class='price'>29.800円</div>", 29800),
    ],
)
def test_generic_price_pick(zone: str, price: int) -> None:
    html = f"<html><body><h1>限定フィギュア</h1>{zone}<button>カートに入れる</button></body></html>"
    assert parse_product(page(html)).price == price


def test_generic_a_recommended_products_price_is_not_the_price() -> None:
    html = (
        "<h1>限定フィギュア</h1><button>カートに入れる</button>"
        "<h2>関連商品</h2><div><span class='price'>500円</span></div>"
    )
    assert parse_product(page(html)).price is None


def test_generic_title_falls_back_to_h1_then_title() -> None:
    assert parse_product(page("<title> T </title><h1>H</h1>")).title == "H"
    assert parse_product(page("<title> T </title>")).title == "T"


def test_generic_conflict_is_recorded_in_the_reason() -> None:
    html = _ld('{"@type": "Product", "offers": {"availability": "OutOfStock"}}') + (
        "<p class='stock'>在庫あり</p>"
    )
    obs = parse_product(page(html))
    assert obs.state is A.OUT_OF_STOCK
    assert obs.reason == "conflict: text 在庫あり vs jsonld OutOfStock"


def test_generic_reads_a_captcha_page_as_blocked() -> None:
    html = '<form action="/errors/validateCaptcha"><input id="captchacharacters"></form>'
    obs = parse_product(page(html, retry_after=30.0))
    assert obs.blocked and obs.state is A.UNKNOWN and obs.retry_after == 30.0


def test_parse_with_rules_phrase_decides() -> None:
    html = "<h1>X</h1><div class='stock'>在庫あり</div><div id='note'>ただいま準備中</div>"
    rules = TextRules(selector="#note", phrases=(("準備中", A.OUT_OF_STOCK),))
    obs = parse_with_rules(page(html), rules)
    assert (obs.state, obs.reason) == (A.OUT_OF_STOCK, "rules:準備中")


def test_rules_that_find_nothing_leave_the_reading_alone() -> None:
    rules = TextRules(phrases=(("準備中", A.OUT_OF_STOCK),))
    obs = parse_with_rules(page("<div class='stock'>在庫あり</div>"), rules)
    assert (obs.state, obs.reason) == (A.IN_STOCK, "text:在庫あり")


# --- the registry ------------------------------------------------------------------------------


def test_adapter_for_defaults_to_generic() -> None:
    assert adapter_for("https://unknown-shop.example/item/1").name == "generic"
    assert adapter_for("jan:4901234567894").name == "generic"


def test_adapter_for_forced_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UsageError, match="generic"):
        adapter_for("https://x.example/", forced="nope")


def test_adapter_for_forced_name_wins() -> None:
    assert adapter_for("https://x.example/", forced="generic") is ADAPTERS["generic"]


def test_adapter_for_host_then_recognise(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(page: Page) -> Observation:
        raise RuntimeError("x")

    by_host = StoreAdapter(name="hosty", parse_product=boom, hosts=("*.hosty.example",))
    by_markup = StoreAdapter(
        name="marky", parse_product=boom, recognise=lambda p: "marky-shop" in p.text
    )
    crashing = StoreAdapter(name="crashy", parse_product=boom, recognise=lambda p: 1 / 0 > 0)
    registry = {"crashy": crashing, **ADAPTERS, "hosty": by_host, "marky": by_markup}
    monkeypatch.setattr("watcher.stores.registry.ADAPTERS", registry)
    assert adapter_for("https://a.hosty.example/p").name == "hosty"
    marked = Page(url="https://own-domain.example/p", text="<div class=marky-shop>")
    assert adapter_for(marked.url, page=marked).name == "marky"
    assert adapter_for(marked.url).name == "generic"


def test_parse_page_turns_an_adapter_exception_into_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(page: Page) -> Observation:
        raise ValueError("bad markup")

    monkeypatch.setitem(ADAPTERS, "boom", StoreAdapter(name="boom", parse_product=boom))
    obs = parse_page(page("<p>x</p>"), store="boom")
    assert obs.state is A.UNKNOWN and obs.reason.startswith("parse error: boom: ValueError")
    assert obs.fetch is not None and obs.store == "boom"


@pytest.mark.parametrize("status", [403, 429, 503])
def test_refusals_are_blocked_with_retry_after(status: int) -> None:
    obs = parse_page(page("<button>カートに入れる</button>", status=status, retry_after=60.0))
    assert obs.state is A.UNKNOWN and obs.blocked and obs.retry_after == 60.0
    assert obs.fetch is not None and obs.fetch.status == status


@pytest.mark.parametrize("status", [404, 410])
def test_gone_pages_are_unknown_not_discontinued(status: int) -> None:
    obs = parse_page(page("<p class='stock'>販売終了</p>", status=status))
    assert (obs.state, obs.reason, obs.blocked) == (A.UNKNOWN, f"gone: {status}", False)


def test_fetch_errors_and_odd_statuses_are_unknown() -> None:
    assert failed_fetch(page("", status=None, error="timeout")) == Observation.unknown(
        "fetch error: timeout"
    )
    assert failed_fetch(page("", status=500)) == Observation.unknown("http 500")
    assert failed_fetch(page("", status=304, not_modified=True)) == Observation.unknown(
        "not modified"
    )
    assert failed_fetch(page("<p>ok</p>")) is None


def test_parse_page_applies_rules_and_fetch_facts() -> None:
    rules = TextRules(phrases=(("coming soon", A.PREORDER),))
    obs = parse_page(page("<p>Coming Soon!</p>", bytes=20, elapsed_ms=5.0), rules=rules)
    assert (obs.state, obs.reason, obs.store) == (A.PREORDER, "rules:coming soon", "generic")
    assert obs.fetch is not None and obs.fetch.bytes == 20


def test_rules_never_override_a_block() -> None:
    rules = TextRules(phrases=(("characters", A.IN_STOCK),))
    html = '<form action="/errors/validateCaptcha">Type the characters</form>'
    assert parse_page(page(html), rules=rules).blocked
