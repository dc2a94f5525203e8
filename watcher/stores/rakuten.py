"""Rakuten Ichiba item pages (item.rakuten.co.jp/<shop>/<item>/).

Today's item page draws its purchase box in the browser from a JSON island
(`#item-page-app-data`: stock quantity, sell type, sold-out flag, shop name) and states price and
availability in schema.org microdata, not JSON-LD. Older pages (often EUC-JP) print the purchase
box as HTML: 売り切れました, ご注文できない商品, a 買い物かごに入れる button. The page reads in
that order. Shop policy and description text are never read for wording: shops write 予約 and
売り切れ there about other items.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Availability, FetchPlan, ItemCondition, Observation, Page
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import screened
from watcher.stores._bounds import MAX_CANDIDATES
from watcher.stores._schema_org import ProductData, read_microdata, read_opengraph
from watcher.stores._text import (
    classify_wording,
    clean_title,
    normalise,
    parse_amount,
    parse_price,
)

NAME = "rakuten"
HOSTS = ("item.rakuten.co.jp",)

_A = Availability
_KEEP_PARAMS = frozenset({"variantId"})  # everything else on an item URL is tracking

# Where the old layout prints its purchase box; wording is read here only.
_PURCHASE_AREAS = (
    ".soldout_msg, .item_soldout, [class*=soldout i], [id*=soldout i],"
    " form[action*=cartadd i], form[action*=basket i], #rakutenLimitedId_cart,"
    " .cart-button-container, [class*=purchase i], .normal_reserve_item_name"
)
_CART_CONTROLS = (
    'form[action*="cartadd" i] input[type=submit i], form[action*="cartadd" i] button,'
    " button.cart-button, input.cart-button, [class*=new_addToCart i]"
)
_RAKUTEN_RULES: tuple[tuple[re.Pattern[str], Availability], ...] = (
    (re.compile(r"ご注文できない商品|販売期間外|販売開始前|販売期間前"), _A.OUT_OF_STOCK),
)
# Wording that only Rakuten's system prints (shops write 売り切れ, not these exact sentences).
_SYSTEM_MESSAGES = ("売り切れました", "ご注文できない商品")
_AREA_TEXT_MAX = 2_000  # a purchase box states itself in far less; more would be the page
_OFFICIAL_SHOP = re.compile(r"公式|オフィシャル|official|楽天ブックス|楽天24", re.IGNORECASE)
_RESERVE_TITLE = re.compile(r"^\s*[【\[]\s*(?:予約|予約商品|予約販売|ご予約)")
_USED_TITLE = re.compile(r"[【\[(（]\s*中古")


@dataclass(frozen=True, slots=True)
class AppData:
    """The facts of `#item-page-app-data` this adapter uses."""

    title: str | None = None
    shop: str | None = None
    price: int | None = None
    quantity: int | None = None
    quantity_shown: bool = False
    sold_out: bool | None = None
    purchase_enabled: bool | None = None
    sell_type: str | None = None
    jan: str | None = None


def product_request(url: str) -> FetchPlan:
    """The item URL without tracking parameters or fragment (the variant id is kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k in _KEEP_PARAMS]
    return FetchPlan(url=urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), "")))


def parse_product(page: Page) -> Observation:
    """Read a Rakuten item page into an observation."""
    tree, early = screened(page, NAME)
    if early is not None:
        return early
    app = read_app_data(tree)
    micro = read_microdata(tree)
    state, reason = _decide(tree, app, micro)
    title = _title(tree, app, micro)
    shop = app.shop or _shop_from_title(tree)
    if state in (_A.IN_STOCK, _A.BACKORDER) and _is_reserve(app, title):
        state, reason = _A.PREORDER, f"{reason}; reserve item"
    return Observation(
        state=state,
        reason=reason,
        price=_price(tree, app, micro),
        currency="JPY",
        title=title,
        seller=shop,
        official=bool(_OFFICIAL_SHOP.search(shop)) if shop else None,
        condition=ItemCondition.USED if title and _USED_TITLE.search(title) else None,
        quantity=app.quantity if app.quantity_shown and state is _A.IN_STOCK else None,
        store=NAME,
        url=page.url,
        jan=app.jan or (micro.gtin if micro else None) or _gtin13(tree),
    )


def _decide(
    tree: LexborHTMLParser, app: AppData, micro: ProductData | None
) -> tuple[Availability, str]:
    from_app = _app_state(app)
    if from_app is not None:
        return from_app
    if micro is not None and micro.state is not None:
        return micro.state, f"rakuten:{micro.reason}"
    worded = _purchase_wording(tree) or _system_message(tree)
    if worded is not None:
        return worded
    if tree.css_first(_CART_CONTROLS) is not None:
        return _A.IN_STOCK, "rakuten:cart button"
    og = read_opengraph(tree)
    if og is not None and og.state is not None:
        return og.state, f"rakuten:{og.reason}"
    return _A.UNKNOWN, "rakuten:no signal"


def _app_state(app: AppData) -> tuple[Availability, str] | None:
    if app.sold_out:
        return _A.OUT_OF_STOCK, "rakuten:app-data soldout"
    if app.purchase_enabled is False:
        return _A.OUT_OF_STOCK, "rakuten:app-data purchase disabled"
    if app.quantity is not None:
        if app.quantity <= 0:
            return _A.OUT_OF_STOCK, "rakuten:app-data quantity 0"
        return _A.IN_STOCK, f"rakuten:app-data quantity {app.quantity}"
    return None


def _purchase_wording(tree: LexborHTMLParser) -> tuple[Availability, str] | None:
    for node in tree.css(_PURCHASE_AREAS)[:MAX_CANDIDATES]:
        text = _visible_text(node)[:_AREA_TEXT_MAX]
        for pattern, state in _RAKUTEN_RULES:
            match = pattern.search(text)
            if match:
                return state, f"rakuten:text {match.group(0)}"
        shared = classify_wording(text)
        if shared is not None:
            return shared[0], f"rakuten:text {shared[1]}"
    return None


def _system_message(tree: LexborHTMLParser) -> tuple[Availability, str] | None:
    """Rakuten's own fixed messages, wherever an old template put them."""
    body = tree.body
    if body is None:
        return None
    text = _visible_text(body)
    for message in _SYSTEM_MESSAGES:
        if message in text:
            return _A.OUT_OF_STOCK, f"rakuten:text {message}"
    return None


def _is_reserve(app: AppData, title: str | None) -> bool:
    """A 予約 item: by its sell type, or by the 【予約】 mark shops put first in the name."""
    if app.sell_type is not None:
        return app.sell_type.upper() == "RESERVE"
    return bool(title and _RESERVE_TITLE.search(title))


def read_app_data(tree: LexborHTMLParser) -> AppData:
    """The JSON island of today's item page; an empty AppData for older pages."""
    script = tree.css_first("script#item-page-app-data")
    if script is None:
        return AppData()
    try:
        data = json.loads(script.text(deep=True))
    except ValueError:
        return AppData()
    if not isinstance(data, dict):
        return AppData()
    item = _dig(data, "api", "data", "itemInfoSku")
    item = item if isinstance(item, dict) else {}
    purchase = _dict(item.get("purchaseInfo"))
    features = _dict(item.get("features"))
    quantity = _quantity(purchase, item)
    condition = _dig(purchase, "purchaseBySellType", "purchaseCondition")
    return AppData(
        title=clean_title(_str(item.get("title"))),
        shop=clean_title(_str(_dig(data, "shop", "shopName"))),
        price=parse_amount(
            _dig(purchase, "purchaseBySellType", "normalPurchase", "price", "minPrice")
        ),
        quantity=quantity,
        quantity_shown=features.get("inventoryDisplay") not in (None, "HIDDEN_STOCK"),
        sold_out=_sold_out_flag(data),
        purchase_enabled=None if condition is None else str(condition).lower() == "enabled",
        sell_type=_str(item.get("sellType")),
        jan=_str(_dig(item, "articleNumber", "value")),
    )


def _quantity(purchase: dict[str, Any], item: dict[str, Any]) -> int | None:
    """Units left: the sum over the item's variants (None when unlimited or not stated)."""
    if item.get("unlimitedInventoryFlag") is True:
        return None
    inventories = purchase.get("variantMappedInventories")
    if isinstance(inventories, list) and inventories:
        counts = [i.get("quantity") for i in inventories if isinstance(i, dict)]
        numbers = [c for c in counts if isinstance(c, int) and not isinstance(c, bool)]
        if numbers:
            return sum(max(n, 0) for n in numbers)
    single = _dig(purchase, "newPurchaseSku", "quantity")
    return single if isinstance(single, int) and not isinstance(single, bool) else None


def _sold_out_flag(data: dict[str, Any]) -> bool | None:
    """The analytics parameter `'soldout':[1]` Rakuten sets on sold-out items."""
    custom = _dig(data, "rat", "customParameter")
    if not isinstance(custom, str):
        return None
    match = re.search(r"'soldout'\s*:\s*\[\s*(\d)\s*\]", custom)
    return match.group(1) == "1" if match else None


def _price(tree: LexborHTMLParser, app: AppData, micro: ProductData | None) -> int | None:
    if micro is not None and micro.price is not None:
        return micro.price
    if app.price is not None:
        return app.price
    for node in tree.css(".price2, .important_price, #priceCalculationConfig, [class*=price i]")[
        :MAX_CANDIDATES
    ]:
        price = parse_price(_visible_text(node))
        if price is not None:
            return price
    return None


def _title(tree: LexborHTMLParser, app: AppData, micro: ProductData | None) -> str | None:
    if app.title:
        return app.title
    for selector in (".item_name", "span.item_name", ".normal_reserve_item_name"):
        node = tree.css_first(selector)
        if node is not None and _visible_text(node):
            return clean_title(_visible_text(node))
    if micro is not None and micro.title:
        return clean_title(micro.title.split("｜")[0].split("|")[0])
    return _page_title(tree)[0]


def _page_title(tree: LexborHTMLParser) -> tuple[str | None, str | None]:
    """(item, shop) from "【楽天市場】<item>：<shop>"."""
    node = tree.css_first("title")
    text = normalise(node.text()) if node is not None else ""
    text = re.sub(r"^【楽天市場】", "", text)
    item, sep, shop = text.rpartition(":")
    if not sep:
        return clean_title(text), None
    return clean_title(item), clean_title(shop)


def _shop_from_title(tree: LexborHTMLParser) -> str | None:
    return _page_title(tree)[1]


def _gtin13(tree: LexborHTMLParser) -> str | None:
    node = tree.css_first('[itemprop="gtin13"]')
    value = node.attributes.get("content") if node is not None else None
    return value if value and value.isdigit() else None


def _visible_text(node: LexborNode) -> str:
    """The node's text without scripts and styles (dropped from this page's own tree)."""
    for hidden in node.css("script, style, noscript, template"):
        hidden.decompose()
    return normalise(node.text(separator=" "))


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


ADAPTER = StoreAdapter(
    name=NAME,
    parse_product=parse_product,
    hosts=HOSTS,
    product_request=product_request,
)
