"""Shopify storefronts: the product's `/products/<handle>.js` JSON first, product pages too.

Every Shopify shop answers `/products/<handle>.js` with the product and each variant's
`available` flag and price in hundredths of the currency unit, whatever the theme looks like, so
that is what `product_request` asks for. A product page (when a page is saved or the JSON was not
asked for) is read from the theme's product JSON, then JSON-LD and visible wording. A URL naming a
variant (`?variant=<id>`) is about that variant only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser

from watcher.core.model import Availability, FetchPlan, Observation, Page
from watcher.stores import generic
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import screened
from watcher.stores._text import clean_title, first_character, parse_amount

NAME = "shopify"
HOSTS = ("*.myshopify.com",)

_A = Availability
_PRODUCT_PATH = re.compile(
    r"^(?P<prefix>.*?)/products/(?P<handle>[^/?#]+?)(?:\.js|\.json|\.oembed)?/?$"
)
_PRODUCT_JSON = (
    "script[data-product-json], script[id^=ProductJson], script#product-json,"
    " script[type='application/json'][data-product]"
)
_MARKERS = ("cdn.shopify.com", "Shopify.shop", "ShopifyAnalytics", "shopify-digital-wallet")


@dataclass(frozen=True, slots=True)
class Variant:
    id: str
    title: str | None
    available: bool
    price: int | None  # whole currency units


def product_request(url: str) -> FetchPlan:
    """`/products/<handle>.js` on the same shop (keeping a `variant` the URL names)."""
    parts = urlsplit(url)
    match = _PRODUCT_PATH.match(parts.path)
    if not match:
        return FetchPlan(url=url)
    variant = parse_qs(parts.query).get("variant", [""])[0]
    query = f"variant={variant}" if variant.isdigit() else ""
    prefix = re.sub(r"/collections/[^/]+$", "", match.group("prefix"))  # keep a locale prefix
    path = f"{prefix}/products/{match.group('handle')}.js"
    return FetchPlan(
        url=urlunsplit((parts.scheme, parts.netloc, path, query, "")),
        headers={"Accept": "application/json"},
    )


def recognise(page: Page) -> bool:
    """A Shopify storefront on its own domain: Shopify's asset host and storefront globals."""
    if first_character(page.text) == "{":
        return (
            "/products/" in urlsplit(page.final_url or page.url).path and '"variants"' in page.text
        )
    if "hopify" not in page.text:  # every marker holds it: one search rules them all out
        return False
    found = sum(marker in page.text for marker in _MARKERS)
    return found >= 2


def parse_product(page: Page) -> Observation:
    """Read `/products/<handle>.js` JSON or a product page into an observation."""
    tree, early = screened(page, NAME)
    if early is not None:
        return early
    if first_character(page.text) == "{":
        return _from_json_text(page)
    if tree.css_first("form[action$='/password'], form#login_form") is not None:
        return Observation.unknown("shopify:password page (shop closed)", store=NAME, url=page.url)
    product = _theme_product_json(tree)
    shop = _shop_name(tree)
    if product is not None:
        observation = _from_product(product, page, reason_source="theme product JSON")
        return replace(observation, seller=shop)
    observation = generic.read_tree(page, tree)
    return replace(observation, store=NAME, url=page.url, seller=observation.seller or shop)


def _from_json_text(page: Page) -> Observation:
    try:
        data = json.loads(page.text)
    except ValueError:
        return Observation.unknown("shopify:product JSON does not decode", store=NAME, url=page.url)
    product = data.get("product", data) if isinstance(data, dict) else None
    if not isinstance(product, dict) or not isinstance(product.get("variants"), list):
        return Observation.unknown("shopify:not a product JSON", store=NAME, url=page.url)
    return _from_product(product, page, reason_source="product.js")


def _from_product(product: dict[str, Any], page: Page, *, reason_source: str) -> Observation:
    variants = _variants(product)
    wanted = parse_qs(urlsplit(page.url).query).get("variant", [""])[0]
    chosen = [v for v in variants if v.id == wanted] or variants
    available = [v for v in chosen if v.available]
    if not variants:
        return Observation.unknown(
            f"shopify:{reason_source} has no variants", store=NAME, url=page.url
        )
    pool = available or chosen
    priced = [v for v in pool if v.price is not None]
    cheapest = min(priced, key=lambda v: v.price or 0) if priced else None
    which = f"variant {wanted}" if wanted and len(chosen) == 1 else "product"
    if available:
        state, reason = _A.IN_STOCK, f"shopify:{reason_source} {which} available"
    else:
        state, reason = _A.OUT_OF_STOCK, f"shopify:{reason_source} {which} sold out"
    title = clean_title(_str(product.get("title")))
    if which != "product" and chosen[0].title and chosen[0].title != "Default Title":
        title = clean_title(f"{title} - {chosen[0].title}") if title else chosen[0].title
    return Observation(
        state=state,
        reason=reason,
        price=cheapest.price if cheapest else None,
        currency=_currency(page.url),
        title=title,
        seller=clean_title(_str(product.get("vendor"))),
        store=NAME,
        url=page.url,
    )


def _variants(product: dict[str, Any]) -> list[Variant]:
    found: list[Variant] = []
    for raw in product.get("variants", [])[:500]:
        if not isinstance(raw, dict):
            continue
        found.append(
            Variant(
                id=str(raw.get("id", "")),
                title=_str(raw.get("title")),
                available=raw.get("available") is True,
                price=_price(raw.get("price")),
            )
        )
    return found


def _price(value: Any) -> int | None:
    """`.js` and theme JSON give integer hundredths (498000 = ¥4,980); `.json` gives "4980.00"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return parse_amount(value / 100)
    if isinstance(value, str):
        return parse_amount(value)
    return None


def _currency(url: str) -> str | None:
    """Product JSON names no currency; a .jp shop sells in yen, elsewhere it stays unknown."""
    host = (urlsplit(url).hostname or "").lower()
    return "JPY" if host.endswith(".jp") else None


def _theme_product_json(tree: LexborHTMLParser) -> dict[str, Any] | None:
    for script in tree.css(_PRODUCT_JSON):
        try:
            data = json.loads(script.text(deep=True))
        except ValueError:
            continue
        product = data.get("product", data) if isinstance(data, dict) else None
        if isinstance(product, dict) and isinstance(product.get("variants"), list):
            return product
    return None


def _shop_name(tree: LexborHTMLParser) -> str | None:
    meta = tree.css_first('meta[property="og:site_name"]')
    return clean_title(meta.attributes.get("content")) if meta is not None else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


ADAPTER = StoreAdapter(
    name=NAME,
    parse_product=parse_product,
    hosts=HOSTS,
    product_request=product_request,
    recognise=recognise,
)
