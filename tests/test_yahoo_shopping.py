"""Yahoo! Shopping item pages: JSON-LD first, the purchase box and the store name."""

from __future__ import annotations

from conftest import FIXTURES

from watcher.core.model import Availability, Page, SellerFilter, WatchConditions
from watcher.stores.registry import ADAPTERS, adapter_for
from watcher.stores.yahoo_shopping import parse_product, product_request

PAGES = FIXTURES / "pages" / "yahoo_shopping"
URL = "https://store.shopping.yahoo.co.jp/kaden-shop/wf1000xm5-b.html"


def _read(case: str) -> object:
    return parse_product(Page(url=URL, text=(PAGES / f"{case}.html").read_text("utf-8")))


def test_product_request_drops_tracking_parameters() -> None:
    assert product_request(f"{URL}?sc_i=shp_pc_search&sc_e=slga#review").url == URL


def test_yahoo_shopping_hosts_but_not_auctions() -> None:
    assert adapter_for(URL) is ADAPTERS["yahoo_shopping"]
    assert (
        adapter_for("https://paypaymall.yahoo.co.jp/store/x/item/y/") is ADAPTERS["yahoo_shopping"]
    )
    assert adapter_for("https://page.auctions.yahoo.co.jp/jp/auction/x123").name != "yahoo_shopping"


def test_an_official_store_is_official_and_the_jan_is_read() -> None:
    obs = parse_product(Page(url=URL, text=(PAGES / "jsonld-in-stock.html").read_text("utf-8")))
    assert obs.official is True
    assert obs.jan == "4549995433936"
    assert WatchConditions(seller=SellerFilter.OFFICIAL).is_buyable(obs)


def test_the_store_name_comes_from_the_title_without_markup() -> None:
    page = Page(url=URL, text=(PAGES / "no-markup-cart-button.html").read_text("utf-8"))
    obs = parse_product(page)
    assert obs.seller == "キッチン雑貨 はなや"
    assert obs.official is False


def test_a_restock_notice_in_place_of_the_cart_is_out_of_stock() -> None:
    html = (
        "<html><head><title>X - 店 - 通販 - Yahoo!ショッピング</title></head><body>"
        '<div><button type="button">入荷お知らせを受け取る</button></div></body></html>'
    )
    obs = parse_product(Page(url=URL, text=html))
    assert obs.state is Availability.OUT_OF_STOCK
    assert obs.reason == "button:入荷お知らせ"


def test_recommendations_beside_a_sold_out_item_do_not_make_it_buyable() -> None:
    page = Page(url=URL, text=(PAGES / "jsonld-sold-out-restock-notice.html").read_text("utf-8"))
    obs = parse_product(page)
    assert obs.state is Availability.OUT_OF_STOCK
    assert not WatchConditions().is_buyable(obs)
