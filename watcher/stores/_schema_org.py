"""schema.org Product/Offer data from a page: JSON-LD, microdata and OpenGraph product tags.

Every reader takes a parsed tree (`selectolax.lexbor.LexborHTMLParser`) so a page is parsed once,
and returns a `ProductData` (or None when the page has no such markup). A reader never raises on
bad markup: a script with broken JSON is skipped, the others still count.

A product's state is never its first offer's: when any offer is orderable the product is
(`best_state`: in_stock > backorder > preorder > out_of_stock > discontinued), so a shoe whose
small sizes are sold out is still in stock.

Usage by adapters::

    tree = LexborHTMLParser(page.text)
    data = read_structured(tree)          # JSON-LD first, then microdata + OpenGraph
    if data and data.state:
        Observation(state=data.state, reason=data.reason, price=data.price, ...)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.model import Availability, ItemCondition
from watcher.stores._text import clean_title, parse_amount

_A = Availability

# schema.org ItemAvailability values (compared lower-case, prefix stripped) -> our state.
SCHEMA_AVAILABILITY: dict[str, tuple[Availability, str]] = {
    "instock": (_A.IN_STOCK, "InStock"),
    "limitedavailability": (_A.IN_STOCK, "LimitedAvailability"),
    "instoreonly": (_A.IN_STOCK, "InStoreOnly"),
    "onlineonly": (_A.IN_STOCK, "OnlineOnly"),
    "backorder": (_A.BACKORDER, "BackOrder"),
    "preorder": (_A.PREORDER, "PreOrder"),
    "presale": (_A.PREORDER, "PreSale"),
    "outofstock": (_A.OUT_OF_STOCK, "OutOfStock"),
    "soldout": (_A.OUT_OF_STOCK, "SoldOut"),
    "discontinued": (_A.DISCONTINUED, "Discontinued"),
}

# OpenGraph / Facebook catalogue wording (lower-case, spaces and dashes folded) -> our state.
# "pending" says the shop does not know yet, so it maps to nothing and other signals decide.
OG_AVAILABILITY: dict[str, Availability] = {
    "instock": _A.IN_STOCK,
    "available": _A.IN_STOCK,
    "oos": _A.OUT_OF_STOCK,
    "outofstock": _A.OUT_OF_STOCK,
    "soldout": _A.OUT_OF_STOCK,
    "preorder": _A.PREORDER,
    "availablefororder": _A.BACKORDER,
    "backorder": _A.BACKORDER,
    "discontinued": _A.DISCONTINUED,
}

SCHEMA_CONDITION: dict[str, ItemCondition] = {
    "newcondition": ItemCondition.NEW,
    "usedcondition": ItemCondition.USED,
    "refurbishedcondition": ItemCondition.REFURBISHED,
    "damagedcondition": ItemCondition.USED,
}

# Most orderable first: the product-level state is the best one any offer has.
STATE_RANK: tuple[Availability, ...] = (
    _A.IN_STOCK,
    _A.BACKORDER,
    _A.PREORDER,
    _A.OUT_OF_STOCK,
    _A.DISCONTINUED,
)

_PRODUCT_TYPES = frozenset({"product", "productgroup", "individualproduct", "productmodel"})
_OFFER_TYPES = frozenset({"offer", "aggregateoffer"})
_MAX_NODES = 5000  # JSON-LD nodes visited per page: a hostile page cannot make us walk forever
_MAX_DEPTH = 30
_MAX_SCRIPT = 2_000_000  # characters of one JSON-LD script we are willing to decode


@dataclass(frozen=True, slots=True)
class SchemaOffer:
    """One offer as the markup states it (`availability` is the canonical token, e.g. InStock)."""

    state: Availability | None
    availability: str | None = None
    price: int | None = None
    currency: str | None = None
    seller: str | None = None
    condition: ItemCondition | None = None


@dataclass(frozen=True, slots=True)
class ProductData:
    """What one kind of markup says about the product.

    `source` is "jsonld", "microdata" or "og"; `token` is the availability value that decided
    `state` (e.g. "InStock", "instock"), so `reason` reads like ``jsonld:InStock``.
    """

    source: str
    state: Availability | None = None
    token: str | None = None
    price: int | None = None
    currency: str | None = None
    title: str | None = None
    seller: str | None = None
    condition: ItemCondition | None = None
    gtin: str | None = None
    offers: tuple[SchemaOffer, ...] = ()
    is_product: bool = False  # typed as a Product (not just loose offer or price tags)

    @property
    def reason(self) -> str:
        return f"{self.source}:{self.token}" if self.token else f"{self.source}:none"

    def filled_from(self, *others: ProductData | None) -> ProductData:
        """This reading, with price, currency, title, seller, condition and gtin taken from the
        others where this one has none (the state and its reason stay this one's)."""
        result = self
        for other in others:
            if other is None:
                continue
            result = replace(
                result,
                price=result.price if result.price is not None else other.price,
                currency=result.currency or other.currency,
                title=result.title or other.title,
                seller=result.seller or other.seller,
                condition=result.condition or other.condition,
                gtin=result.gtin or other.gtin,
                is_product=result.is_product or other.is_product,
            )
        return result


# --- value mapping -----------------------------------------------------------------------------


def _strip_vocab(value: str) -> str:
    text = value.strip().rstrip("/")
    for sep in ("/", ":", "#"):
        if sep in text:
            text = text.rsplit(sep, 1)[1]
    return text.strip().lower()


def schema_availability(value: object) -> tuple[Availability, str] | None:
    """A schema.org availability value -> (state, canonical token).

    Accepts bare tokens (`InStock`), `schema:InStock`, http/https URIs, any letter case.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    return SCHEMA_AVAILABILITY.get(_strip_vocab(value))


def og_availability(value: object) -> tuple[Availability, str] | None:
    """An OpenGraph availability value (instock, "in stock", oos, preorder...) -> (state, token)."""
    if not isinstance(value, str):
        return None
    folded = re.sub(r"[\s_\-]+", "", value.strip().lower())
    if folded in OG_AVAILABILITY:
        return OG_AVAILABILITY[folded], value.strip()
    found = schema_availability(value)
    return (found[0], value.strip()) if found else None


def schema_condition(value: object) -> ItemCondition | None:
    """itemCondition (NewCondition, https://schema.org/UsedCondition, ...) -> ItemCondition."""
    if not isinstance(value, str) or not value.strip():
        return None
    return SCHEMA_CONDITION.get(_strip_vocab(value))


def best_state(states: Iterable[Availability | None]) -> Availability | None:
    """The most orderable of these states (None when none is known)."""
    known = {s for s in states if s is not None and s in STATE_RANK}
    return next((s for s in STATE_RANK if s in known), None)


def decide(offers: Iterable[SchemaOffer]) -> SchemaOffer | None:
    """The offer that gives the product its state: the most orderable, then the cheapest."""
    ranked = [o for o in offers if o.state is not None]
    if not ranked:
        return None
    best = best_state(o.state for o in ranked)
    same = [o for o in ranked if o.state is best]
    priced = [o for o in same if o.price is not None]
    return min(priced, key=lambda o: o.price or 0) if priced else same[0]


# --- JSON-LD -----------------------------------------------------------------------------------

# HTML comments and CDATA markers that old templates wrap around the JSON.
_COMMENT_WRAP = re.compile(
    r"^\s*(?:<!--|//\s*<!\[CDATA\[|<!\[CDATA\[)|(?:-->|//\s*\]\]>|\]\]>)\s*$"
)


def jsonld_documents(tree: LexborHTMLParser) -> list[Any]:
    """Every JSON-LD script's decoded JSON; scripts that do not decode are skipped."""
    docs: list[Any] = []
    for script in tree.css('script[type="application/ld+json" i]'):
        raw = script.text(deep=True)
        if not raw or len(raw) > _MAX_SCRIPT:
            continue
        text = _COMMENT_WRAP.sub("", raw.strip())
        try:
            docs.append(json.loads(text, strict=False))
        except (ValueError, RecursionError):
            continue
    return docs


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("@type")
    values = kind if isinstance(kind, list) else [kind]
    return {_strip_vocab(v) for v in values if isinstance(v, str)}


def _walk(doc: Any) -> Iterator[dict[str, Any]]:
    """Top-level typed nodes: lists and @graph are flattened, products are not descended into."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen = 0
    while stack and seen < _MAX_NODES:
        node, depth = stack.pop(0)
        seen += 1
        if depth > _MAX_DEPTH:
            continue
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, dict):
            types = _types(node)
            if types & (_PRODUCT_TYPES | _OFFER_TYPES):
                yield node
                continue
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _name_of(value: Any) -> str | None:
    for item in _as_list(value):
        if isinstance(item, str) and item.strip():
            return clean_title(item)
        if isinstance(item, dict):
            name = item.get("name")
            if isinstance(name, str) and name.strip():
                return clean_title(name)
    return None


def _jsonld_price(node: dict[str, Any], currency: str | None) -> int | None:
    for key in ("price", "lowPrice", "highPrice"):
        price = parse_amount(node.get(key), currency)
        if price is not None:
            return price
    for spec in _as_list(node.get("priceSpecification")):
        if isinstance(spec, dict):
            price = parse_amount(spec.get("price"), currency)
            if price is not None:
                return price
    return None


def _jsonld_currency(node: dict[str, Any]) -> str | None:
    currency = node.get("priceCurrency")
    if not isinstance(currency, str):
        for spec in _as_list(node.get("priceSpecification")):
            if isinstance(spec, dict) and isinstance(spec.get("priceCurrency"), str):
                currency = spec["priceCurrency"]
                break
    return currency.strip().upper() if isinstance(currency, str) and currency.strip() else None


def _jsonld_offers(node: Any, depth: int = 0) -> list[SchemaOffer]:
    """Offers under an offers value: Offer, AggregateOffer (with its own offers), or lists."""
    if depth > 4:
        return []
    found: list[SchemaOffer] = []
    for item in _as_list(node)[:500]:
        if not isinstance(item, dict):
            continue
        nested = _jsonld_offers(item.get("offers"), depth + 1) if "offers" in item else []
        found.extend(nested)
        own = _jsonld_offer(item)
        if own.state is not None or (not nested and own.price is not None):
            found.append(own)
    return found


def _jsonld_offer(item: dict[str, Any]) -> SchemaOffer:
    currency = _jsonld_currency(item)
    mapped = schema_availability(item.get("availability"))
    return SchemaOffer(
        state=mapped[0] if mapped else None,
        availability=mapped[1] if mapped else None,
        price=_jsonld_price(item, currency),
        currency=currency,
        seller=_name_of(item.get("seller")),
        condition=schema_condition(item.get("itemCondition")),
    )


def _product_offers(product: dict[str, Any]) -> list[SchemaOffer]:
    offers = _jsonld_offers(product.get("offers"))
    for variant in _as_list(product.get("hasVariant"))[:500]:
        if isinstance(variant, dict):
            offers.extend(_jsonld_offers(variant.get("offers")))
    return offers


def _gtin(product: dict[str, Any]) -> str | None:
    for key in ("gtin13", "gtin", "gtin12", "gtin14", "gtin8"):
        value = product.get(key)
        if isinstance(value, str | int) and str(value).strip().isdigit():
            return str(value).strip()
    return None


def _first_seller(offers: Iterable[SchemaOffer]) -> str | None:
    return next((o.seller for o in offers if o.seller), None)


def _from_product(product: dict[str, Any]) -> ProductData:
    offers = _product_offers(product)
    winner = decide(offers)
    priced = next((o for o in offers if o.price is not None), None)
    first = winner or priced
    return ProductData(
        source="jsonld",
        state=winner.state if winner else None,
        token=winner.availability if winner else None,
        price=first.price if first else None,
        currency=(first.currency if first else None)
        or next((o.currency for o in offers if o.currency), None),
        title=_name_of(product.get("name")),
        seller=(first.seller if first else None)
        or next((o.seller for o in offers if o.seller), None),
        condition=(first.condition if first else None)
        or schema_condition(product.get("itemCondition")),
        gtin=_gtin(product),
        offers=tuple(offers),
        is_product=True,
    )


def read_jsonld(tree: LexborHTMLParser) -> ProductData | None:
    """The page's product from JSON-LD: the first Product whose offers state an availability
    (else the first Product, else loose Offer nodes); None without any."""
    products: list[ProductData] = []
    loose: list[SchemaOffer] = []
    for doc in jsonld_documents(tree):
        for node in _walk(doc):
            if _types(node) & _PRODUCT_TYPES:
                products.append(_from_product(node))
            else:
                loose.extend(_jsonld_offers(node))
    stated = next((p for p in products if p.state is not None), None)
    if stated or products:
        return stated or products[0]
    winner = decide(loose)
    if winner is None:
        return None
    return ProductData(
        source="jsonld",
        state=winner.state,
        token=winner.availability,
        price=winner.price,
        currency=winner.currency,
        seller=winner.seller,
        condition=winner.condition,
        offers=tuple(loose),
    )


# --- microdata ---------------------------------------------------------------------------------


def _itemtype(node: LexborNode) -> str:
    return _strip_vocab(node.attributes.get("itemtype") or "")


def _prop_values(node: LexborNode) -> list[str]:
    """The candidate values of an itemprop element, most explicit first."""
    attrs = node.attributes
    values = [attrs.get("content"), attrs.get("href"), attrs.get("value")]
    if node.tag != "meta":
        values.append(node.text(deep=True))
    values.append(attrs.get("itemtype"))  # some shops put the state in itemtype
    return [v for v in values if v and v.strip()]


def _micro_availability(node: LexborNode) -> tuple[Availability, str] | None:
    for value in _prop_values(node):
        mapped = schema_availability(value)
        if mapped:
            return mapped
    return None


def _first_prop(scope: LexborNode, prop: str) -> LexborNode | None:
    return scope.css_first(f'[itemprop~="{prop}" i]')


def _micro_price(node: LexborNode) -> int | None:
    amounts = (parse_amount(value) for value in _prop_values(node))
    return next((p for p in amounts if p is not None), None)


def _micro_offer(scope: LexborNode) -> SchemaOffer:
    avail = _first_prop(scope, "availability")
    mapped = _micro_availability(avail) if avail is not None else None
    currency_node = _first_prop(scope, "priceCurrency")
    currency = _prop_values(currency_node)[0].strip().upper() if currency_node else None
    price_node = _first_prop(scope, "price") or _first_prop(scope, "lowPrice")
    price = None
    if price_node is not None:
        price = next(
            (p for v in _prop_values(price_node) if (p := parse_amount(v)) is not None), None
        )
    condition_node = _first_prop(scope, "itemCondition")
    seller_node = _first_prop(scope, "seller")
    return SchemaOffer(
        state=mapped[0] if mapped else None,
        availability=mapped[1] if mapped else None,
        price=price,
        currency=currency if currency and len(currency) <= 5 else None,
        seller=clean_title(seller_node.text(deep=True)) if seller_node else None,
        condition=next(
            (c for v in _prop_values(condition_node) if (c := schema_condition(v))), None
        )
        if condition_node
        else None,
    )


def _micro_title(tree: LexborHTMLParser) -> str | None:
    for scope in tree.css("[itemscope][itemtype]"):
        if _itemtype(scope) in _PRODUCT_TYPES:
            name = _first_prop(scope, "name")
            if name is not None:
                values = _prop_values(name)
                return clean_title(values[0]) if values else None
    return None


def read_microdata(tree: LexborHTMLParser) -> ProductData | None:
    """The product from microdata: every Offer scope is one offer; without Offer scopes, the
    page's first availability/price properties make one. None without any such property."""
    if tree.css_first("[itemprop]") is None:
        return None
    typed = tree.css("[itemscope][itemtype]")
    scopes = [n for n in typed if _itemtype(n) in _OFFER_TYPES]
    offers = [_micro_offer(scope) for scope in scopes[:500]]
    if not offers and tree.root is not None:
        offers = [_micro_offer(tree.root)]
    offers = [o for o in offers if o.state is not None or o.price is not None]
    is_product = any(_itemtype(n) in _PRODUCT_TYPES for n in typed)
    if not offers and not is_product:
        return None
    winner = decide(offers)
    first = winner or next((o for o in offers if o.price is not None), None)
    return ProductData(
        source="microdata",
        state=winner.state if winner else None,
        token=winner.availability if winner else None,
        price=first.price if first else None,
        currency=first.currency if first else None,
        title=_micro_title(tree),
        seller=first.seller if first else None,
        condition=first.condition if first else None,
        offers=tuple(offers),
        is_product=is_product,
    )


# --- OpenGraph ---------------------------------------------------------------------------------


def meta_tags(tree: LexborHTMLParser) -> dict[str, str]:
    """`<meta property|name=... content=...>` as a dict of lower-case key -> first content.

    The head is read first; the whole page only when the head has no product tags (a few shop
    templates print them in the body).
    """
    found: dict[str, str] = {}
    if tree.head is not None:
        _collect_meta(tree.head, found)
    if not any(key.startswith(("og:", "product:")) for key in found) and tree.body is not None:
        _collect_meta(tree.body, found)
    return found


def _collect_meta(scope: LexborNode, found: dict[str, str]) -> None:
    for meta in scope.css("meta[content]"):
        attrs = meta.attributes
        key = attrs.get("property") or attrs.get("name") or attrs.get("itemprop")
        content = attrs.get("content")
        if key and content is not None:
            found.setdefault(key.strip().lower(), content)


def _first_key(tags: dict[str, str], *keys: str) -> str | None:
    return next((tags[k] for k in keys if tags.get(k, "").strip()), None)


def read_opengraph(
    tree: LexborHTMLParser, tags: dict[str, str] | None = None
) -> ProductData | None:
    """The product from OpenGraph / Facebook product tags; None when the page has none."""
    tags = meta_tags(tree) if tags is None else tags
    raw_state = _first_key(tags, "og:availability", "product:availability")
    mapped = og_availability(raw_state) if raw_state else None
    currency = _first_key(tags, "product:price:currency", "og:price:currency")
    currency = currency.strip().upper() if currency else None
    raw_price = _first_key(tags, "product:price:amount", "og:price:amount")
    is_product = (tags.get("og:type") or "").strip().lower() in {"product", "og:product"}
    if not (mapped or raw_price or is_product):
        return None
    return ProductData(
        source="og",
        state=mapped[0] if mapped else None,
        token=mapped[1] if mapped else None,
        price=parse_amount(raw_price, currency) if raw_price else None,
        currency=currency,
        title=clean_title(tags.get("og:title")),
        is_product=is_product,
    )


# --- all together ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Structured:
    """Everything the page's structured markup says, kept per source."""

    jsonld: ProductData | None
    microdata: ProductData | None
    og: ProductData | None

    @property
    def is_product(self) -> bool:
        return any(d is not None and d.is_product for d in (self.jsonld, self.microdata, self.og))

    def decided(self) -> ProductData | None:
        """The reading that decides the state, filled with facts from the others.

        JSON-LD with a stated availability wins. Otherwise microdata and OpenGraph are read
        together and the more orderable of the two wins (per-variant microdata offers that are
        all sold out do not outvote a product-level og:availability of in stock); a tie goes to
        microdata. None when no source states an availability.
        """
        if self.jsonld is not None and self.jsonld.state is not None:
            return self.jsonld.filled_from(self.microdata, self.og)
        weaker = [d for d in (self.microdata, self.og) if d is not None and d.state is not None]
        if not weaker:
            return None
        best = best_state(d.state for d in weaker)
        winner = next(d for d in weaker if d.state is best)
        return winner.filled_from(self.jsonld, self.microdata, self.og)

    def facts(self) -> ProductData | None:
        """Title, price and the rest from whichever source has them (state not considered)."""
        sources = [d for d in (self.jsonld, self.microdata, self.og) if d is not None]
        return sources[0].filled_from(*sources[1:]) if sources else None


def read_structured(tree: LexborHTMLParser) -> Structured:
    """Read JSON-LD, microdata and OpenGraph once each."""
    return Structured(read_jsonld(tree), read_microdata(tree), read_opengraph(tree))
