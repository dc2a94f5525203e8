"""Rakuten item pages: the JSON island, microdata, old HTML layouts and their encodings."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from watcher.core.model import Availability, ItemCondition, Page, WatchConditions
from watcher.stores.parse import parse_page
from watcher.stores.rakuten import parse_product, product_request
from watcher.stores.registry import ADAPTERS, adapter_for

PAGES = FIXTURES / "pages" / "rakuten"
_A = Availability
URL = "https://item.rakuten.co.jp/shop/item/"


def _app_page(item: dict[str, object], custom: str = "{'soldout':[0]}", extra: str = "") -> Page:
    data = {
        "api": {"data": {"itemInfoSku": item}},
        "shop": {"shopName": "テスト商店"},
        "rat": {"customParameter": custom},
    }
    html = (
        f"<html><head><title>【楽天市場】テスト：テスト商店</title></head><body>{extra}"
        f'<script id="item-page-app-data" type="application/json">{json.dumps(data)}</script>'
        "</body></html>"
    )
    return Page(url=URL, text=html)


def _purchase(quantity: int, condition: str = "enabled") -> dict[str, object]:
    return {
        "purchaseBySellType": {
            "purchaseCondition": condition,
            "normalPurchase": {"price": {"minPrice": 1980.0}},
        },
        "newPurchaseSku": {"quantity": quantity},
    }


def test_product_request_drops_tracking_but_keeps_the_variant() -> None:
    plan = product_request(f"{URL}?iasid=07rpp_1&variantId=red-m&scid=af_pc#reviews")
    assert plan.url == f"{URL}?variantId=red-m"


def test_rakuten_serves_item_pages_only() -> None:
    assert adapter_for(URL) is ADAPTERS["rakuten"]
    assert adapter_for("https://search.rakuten.co.jp/search/mall/4521329400006/").name != "rakuten"


def test_quantity_zero_without_a_sold_out_flag_is_out_of_stock() -> None:
    obs = parse_product(_app_page({"title": "テスト", "purchaseInfo": _purchase(0)}, "{}"))
    assert obs.state is _A.OUT_OF_STOCK
    assert obs.reason == "rakuten:app-data quantity 0"
    assert obs.price == 1980


def test_purchase_disabled_is_out_of_stock_even_with_units() -> None:
    item = {"title": "テスト", "purchaseInfo": _purchase(5, condition="outOfPeriod")}
    assert parse_product(_app_page(item)).state is _A.OUT_OF_STOCK


def test_shown_stock_gives_a_quantity_hint() -> None:
    item = {
        "title": "テスト",
        "purchaseInfo": _purchase(2),
        "features": {"inventoryDisplay": "DISPLAY_STOCK"},
    }
    obs = parse_product(_app_page(item))
    assert (obs.state, obs.quantity) == (_A.IN_STOCK, 2)


def test_the_shop_policy_mentioning_reserve_does_not_make_a_preorder() -> None:
    text = (PAGES / "modern-in-stock-hidden-stock.html").read_text("utf-8")
    assert "予約商品" in text
    obs = parse_product(Page(url=URL, text=text))
    assert obs.state is _A.IN_STOCK
    assert obs.quantity is None  # the shop hides its stock count


def test_microdata_decides_when_there_is_no_json_island() -> None:
    html = (
        '<div itemscope itemtype="http://schema.org/Product"><meta itemprop="name" content="X">'
        '<div itemprop="offers" itemscope itemtype="http://schema.org/Offer">'
        '<meta itemprop="price" content="4516"><meta itemprop="availability" '
        'content="http://schema.org/OutOfStock"></div></div><p>予約受付中の商品もございます</p>'
    )
    obs = parse_product(Page(url=URL, text=html))
    assert (obs.state, obs.price) == (_A.OUT_OF_STOCK, 4516)
    assert obs.reason == "rakuten:microdata:OutOfStock"


@pytest.mark.parametrize(
    "case,title",
    [
        ("legacy-euc-jp-sold-out", "南部鉄器 急須 あられ 0.6L 黒"),
        ("legacy-shift-jis-in-stock", "有田焼 マグカップ 藍染 ペア ギフト箱入り"),
    ],
)
def test_old_encodings_decode_like_the_fetcher_does(case: str, title: str) -> None:
    from watcher.net.decode import decode_body

    raw = (PAGES / f"{case}.html").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text, _ = decode_body(raw, "text/html")
    assert parse_page(Page(url=URL, text=text), store="rakuten").title == title


def test_official_shop_and_used_items() -> None:
    sold_out = (PAGES / "modern-sold-out.html").read_text("utf-8")
    assert parse_product(Page(url=URL, text=sold_out)).official is True
    used = _app_page({"title": "【中古】ニンテンドースイッチ 本体", "purchaseInfo": _purchase(1)})
    obs = parse_product(used)
    assert obs.condition is ItemCondition.USED
    assert obs.official is False


def test_the_item_jan_is_read() -> None:
    text = (PAGES / "modern-sold-out.html").read_text("utf-8")
    assert parse_product(Page(url=URL, text=text)).jan == "4521329400006"


def test_a_page_without_any_signal_is_unknown_and_not_buyable() -> None:
    obs = parse_product(Page(url=URL, text="<html><body><h1>楽天市場</h1></body></html>"))
    assert obs.state is _A.UNKNOWN
    assert not WatchConditions().is_buyable(obs)
