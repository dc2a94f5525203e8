"""BASE shops: the purchase box, one-off items, and shops on their own domains."""

from __future__ import annotations

from conftest import FIXTURES

from watcher.core.model import Availability, Page
from watcher.stores.base_shop import parse_product, recognise
from watcher.stores.parse import parse_page
from watcher.stores.registry import ADAPTERS, adapter_for

PAGES = FIXTURES / "pages" / "base"
OWN = "https://www.kotori-pottery.jp/items/81234503"


def _text(case: str) -> str:
    return (PAGES / f"{case}.html").read_text("utf-8")


def test_base_hosts() -> None:
    assert adapter_for("https://example.base.shop/items/81234501") is ADAPTERS["base"]
    assert adapter_for("https://mori.thebase.in/items/1") is ADAPTERS["base"]


def test_a_shop_on_its_own_domain_is_recognised_from_the_markup() -> None:
    page = Page(url=OWN, text=_text("own-domain-variations-some-left"))
    assert adapter_for(OWN) is ADAPTERS["generic"]  # the host alone does not tell
    assert adapter_for(OWN, page=page) is ADAPTERS["base"]
    obs = parse_page(page)
    assert obs.store == "base"
    assert obs.state is Availability.IN_STOCK


def test_recognising_needs_both_base_assets_and_an_item_path() -> None:
    text = _text("in-stock-cart")
    assert recognise(Page(url="https://shop.example/items/42", text=text))
    assert not recognise(Page(url="https://shop.example/about", text=text))
    assert not recognise(Page(url="https://shop.example/items/42", text="<h1>SOLD OUT</h1>"))


def test_a_hidden_sold_out_template_does_not_outvote_a_live_cart_button() -> None:
    html = _text("in-stock-cart").replace(
        '<div id="purchaseButton"',
        '<p class="soldOut" style="display:none">SOLD OUT</p><div id="purchaseButton"',
    )
    obs = parse_product(Page(url="https://example.base.shop/items/81234501", text=html))
    assert obs.state is Availability.IN_STOCK


def test_description_text_about_sold_out_does_not_decide() -> None:
    obs = parse_product(Page(url="https://example.base.shop/items/1", text=_text("in-stock-cart")))
    assert "SOLD OUT" in _text("in-stock-cart")
    assert obs.state is Availability.IN_STOCK
    assert obs.reason.startswith("base:purchase button")
