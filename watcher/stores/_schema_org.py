"""schema.org Product/Offer data from a page: JSON-LD, microdata and OpenGraph product tags.

Every reader takes a parsed tree (`selectolax.lexbor.LexborHTMLParser`) so a page is parsed once,
and returns a `ProductData` (or None when the page has no such markup). A reader never raises on
bad markup: a script with broken JSON is skipped, the others still count.

Only the page's main product decides. Product pages also describe other products (a related-items
ItemList, `isRelatedTo` / `isSimilarTo`, recommendation widgets with their own microdata); their
offers never count. The main product is the top-level Product whose url / @id is the page's
canonical URL, else the one named like the page's h1, else the first top-level Product; in
microdata only Offer scopes inside the main Product scope are its offers. A main product that
states no availability has none: it never borrows another product's state or price (a second
copy of the same product, same name or same @id, may fill it in).

A product's state is never its first offer's: when any offer is orderable the product is
(`best_state`: in_stock > backorder > preorder > out_of_stock > discontinued), so a shoe whose
small sizes are sold out is still in stock. A price of 0 is read as no price: shops print it as a
placeholder, and a ¥0 reading would pass every watch's `max_price`.

Usage by adapters::

    tree = LexborHTMLParser(page.text)
    data = read_structured(tree, page.url).decided()   # JSON-LD first, then microdata + OG
    if data is not None and data.state is not None:
        Observation(state=data.state, reason=data.reason, price=data.price, ...)
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Availability, ItemCondition
from watcher.stores._bounds import MAX_CANDIDATES
from watcher.stores._text import clean_title, normalise, parse_amount

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
# Lists of other things: a Product inside one is a related or listed item, never the page's own.
_LIST_TYPES = frozenset({"itemlist", "listitem", "breadcrumblist", "offercatalog", "howto"})
_RELATED_KEYS = frozenset(
    {
        "isrelatedto",
        "issimilarto",
        "isaccessoryorsparepartfor",
        "isconsumablefor",
        "itemlistelement",
        "relatedlink",
        "significantlink",
        "haspart",
        "ispartof",
    }
)
_MAX_NODES = 5000  # JSON-LD nodes visited per page: a hostile page cannot make us walk forever
_MAX_DEPTH = 30
_MAX_SCRIPT = 2_000_000  # characters of one JSON-LD script we are willing to decode
_MAX_SCRIPTS = 100  # JSON-LD scripts read per page (shops print a handful)
_MAX_PRODUCTS = 100  # Product nodes or scopes compared per page
_MAX_OFFERS = 500  # offers read per product


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
    for script in tree.css('script[type="application/ld+json" i]')[:_MAX_SCRIPTS]:
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
    """Top-level Product and Offer nodes: lists, @graph and wrappers (a WebPage's mainEntity) are
    looked through; products, item lists and related-product links are not descended into."""
    stack: deque[tuple[Any, int]] = deque([(doc, 0)])
    seen = 0
    while stack and seen < _MAX_NODES:
        node, depth = stack.popleft()
        seen += 1
        if depth > _MAX_DEPTH:
            continue
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node[:_MAX_NODES])
        elif isinstance(node, dict):
            types = _types(node)
            if types & (_PRODUCT_TYPES | _OFFER_TYPES):
                yield node
                continue
            if types & _LIST_TYPES:
                continue
            stack.extend(
                (v, depth + 1)
                for k, v in node.items()
                if isinstance(v, dict | list) and k.lower() not in _RELATED_KEYS
            )


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


def _amount(value: object, currency: str | None = None) -> int | None:
    """A structured price; 0 is a placeholder, not a price (see the module docstring)."""
    price = parse_amount(value, currency)
    return price or None


def _jsonld_price(node: dict[str, Any], currency: str | None) -> int | None:
    for key in ("price", "lowPrice", "highPrice"):
        price = _amount(node.get(key), currency)
        if price is not None:
            return price
    for spec in _as_list(node.get("priceSpecification")):
        if isinstance(spec, dict):
            price = _amount(spec.get("price"), currency)
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


def read_jsonld(tree: LexborHTMLParser, page_url: str | None = None) -> ProductData | None:
    """The page's main product from JSON-LD (see the module docstring for which one), else the
    page's loose top-level Offer nodes; None without either."""
    products: list[dict[str, Any]] = []
    loose: list[SchemaOffer] = []
    for doc in jsonld_documents(tree):
        for node in _walk(doc):
            if _types(node) & _PRODUCT_TYPES:
                products.append(node)
            else:
                loose.extend(_jsonld_offers(node))
    if products:
        return _main_jsonld_product(products[:_MAX_PRODUCTS], tree, page_url)
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


@dataclass(frozen=True, slots=True)
class PageIdentity:
    """What names the page's own product: its canonical URL paths and its h1."""

    paths: frozenset[str]
    heading: str | None

    @classmethod
    def of(cls, tree: LexborHTMLParser, page_url: str | None = None) -> PageIdentity:
        urls = [page_url]
        canonical = tree.css_first('link[rel~="canonical" i]')
        if canonical is not None:
            urls.append(canonical.attributes.get("href"))
        og_url = tree.css_first('meta[property="og:url" i]')
        if og_url is not None:
            urls.append(og_url.attributes.get("content"))
        h1 = tree.css_first("h1")
        heading = _folded(h1.text(separator=" ")) if h1 is not None else None
        return cls(frozenset(p for u in urls if (p := _url_path(u))), heading or None)

    def names(self, url: object, name: str | None) -> tuple[bool, bool]:
        """(the url is this page's, the name is this page's heading)."""
        path = _url_path(url, base=next(iter(self.paths), None))
        by_url = path is not None and path in self.paths
        folded = _folded(name) if name else ""
        heading = self.heading or ""
        by_name = (
            len(folded) >= 2 and len(heading) >= 2 and (folded in heading or heading in folded)
        )
        return by_url, by_name


def _folded(text: str) -> str:
    return normalise(text).casefold()


def _url_path(url: object, base: str | None = None) -> str | None:
    """A URL's path, lower-cased, without its trailing slash: what two spellings of a page share."""
    if not isinstance(url, str) or not url.strip() or url.startswith("_:"):
        return None
    try:
        path = urlsplit(urljoin(f"https://x{base}" if base else "https://x/", url.strip())).path
    except ValueError:
        return None
    path = path.rstrip("/").lower()
    return path or None


def _main_jsonld_product(
    nodes: list[dict[str, Any]], tree: LexborHTMLParser, page_url: str | None
) -> ProductData:
    """The main product: named by the canonical URL, else by the h1, else the first; filled in
    (state included) by other copies of the same product only."""
    main = nodes[0]
    if len(nodes) > 1:
        page = PageIdentity.of(tree, page_url)

        def rank(node: dict[str, Any]) -> int:
            url = node.get("url") or node.get("@id")
            by_url, by_name = page.names(url, _name_of(node.get("name")))
            return 0 if by_url else 1 if by_name else 2

        main = min(nodes, key=rank)  # min keeps the first of equals
    copies = [n for n in nodes if n is not main and _same_product(main, n)]
    data = _from_product(main)
    stated = next((c for c in map(_from_product, copies) if c.state is not None), None)
    if data.state is None and stated is not None:
        data = replace(stated, title=data.title or stated.title, gtin=data.gtin or stated.gtin)
    return data.filled_from(*map(_from_product, copies))


def _same_product(one: dict[str, Any], other: dict[str, Any]) -> bool:
    for key in ("@id", "url", "sku", "productID"):
        if one.get(key) and one.get(key) == other.get(key):
            return True
    name = _name_of(one.get("name"))
    return name is not None and name == _name_of(other.get("name"))


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


def _micro_offer(scope: LexborNode, own: bool = False) -> SchemaOffer:
    """One offer from a scope's properties (`own`: only the scope's own, not nested scopes')."""
    find = _first_own_prop if own else _first_prop
    avail = find(scope, "availability")
    mapped = _micro_availability(avail) if avail is not None else None
    currency_node = find(scope, "priceCurrency")
    currency = _prop_values(currency_node)[0].strip().upper() if currency_node else None
    price_node = find(scope, "price") or find(scope, "lowPrice")
    price = None
    if price_node is not None:
        price = next(
            (p for v in _prop_values(price_node) if (p := _amount(v, currency)) is not None), None
        )
    condition_node = find(scope, "itemCondition")
    seller_node = find(scope, "seller")
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


def read_microdata(tree: LexborHTMLParser, page_url: str | None = None) -> ProductData | None:
    """The main product from microdata (see the module docstring): the Offer scopes inside its
    scope are its offers; without any, its own availability/price properties make one. A page
    with no Product scope at all: every Offer scope (else the page's first availability/price
    properties) is one offer. None without any such property."""
    if tree.css_first("[itemprop]") is None:
        return None
    typed = tree.css("[itemscope][itemtype]")
    products = [n for n in typed if _itemtype(n) in _PRODUCT_TYPES][:_MAX_PRODUCTS]
    if products:
        main = _main_micro_scope(products, tree, page_url)
        if main is None:
            return None  # products only inside lists: a listing, not one product's page
        offers = _micro_offers_of(main, typed)
        title = _micro_name(main)
    else:
        scopes = [scope for scope in typed if _itemtype(scope) in _OFFER_TYPES]
        offers = [_micro_offer(scope) for scope in scopes[:_MAX_OFFERS]]
        if not offers and tree.root is not None:
            offers = [_micro_offer(tree.root)]
        title = None
    offers = [o for o in offers[:500] if o.state is not None or o.price is not None]
    if not offers and not products:
        return None
    winner = decide(offers)
    first = winner or next((o for o in offers if o.price is not None), None)
    return ProductData(
        source="microdata",
        state=winner.state if winner else None,
        token=winner.availability if winner else None,
        price=first.price if first else None,
        currency=first.currency if first else None,
        title=title,
        seller=first.seller if first else None,
        condition=first.condition if first else None,
        offers=tuple(offers),
        is_product=bool(products),
    )


def _same_node(one: LexborNode | None, other: LexborNode) -> bool:
    """Whether two handles name the same element. Not `==`: the parser compares two different
    elements by serialising both, which costs their whole subtrees on every test."""
    return one is not None and one.mem_id == other.mem_id


def _owning_scope(node: LexborNode) -> LexborNode | None:
    """The nearest itemscope around `node` (not `node` itself)."""
    parent = node.parent
    while parent is not None:
        if "itemscope" in parent.attributes:
            return parent
        parent = parent.parent
    return None


def _is_variant(scope: LexborNode) -> bool:
    props = (scope.attributes.get("itemprop") or "").lower().split()
    return "hasvariant" in props or "model" in props


def _product_of(node: LexborNode) -> LexborNode | None:
    """The Product scope `node` belongs to: the nearest enclosing one, looking through
    variants (a ProductGroup's hasVariant products belong to the group)."""
    scope = _owning_scope(node)
    while scope is not None:
        if _itemtype(scope) in _PRODUCT_TYPES and not _is_variant(scope):
            return scope
        scope = _owning_scope(scope)
    return None


def _in_list(scope: LexborNode) -> bool:
    outer = _owning_scope(scope)
    while outer is not None:
        if _itemtype(outer) in _LIST_TYPES or _itemtype(outer) in _PRODUCT_TYPES:
            return True
        outer = _owning_scope(outer)
    return False


def _main_micro_scope(
    products: list[LexborNode], tree: LexborHTMLParser, page_url: str | None
) -> LexborNode | None:
    top = [p for p in products if not _in_list(p)]
    if len(top) <= 1:
        return top[0] if top else None
    page = PageIdentity.of(tree, page_url)

    def rank(scope: LexborNode) -> int:
        url = _first_own_prop(scope, "url")
        by_url, by_name = page.names(
            _prop_values(url)[0] if url is not None and _prop_values(url) else None,
            _micro_name(scope),
        )
        return 0 if by_url else 1 if by_name else 2

    return min(top, key=rank)


def _micro_offers_of(main: LexborNode, typed: list[LexborNode]) -> list[SchemaOffer]:
    owned = (
        n
        for n in main.css("[itemscope][itemtype]")[:MAX_CANDIDATES]
        if _itemtype(n) in _OFFER_TYPES and _same_node(_product_of(n), main)
    )
    scopes = list(islice(owned, _MAX_OFFERS))
    if scopes:
        return [_micro_offer(scope) for scope in scopes[:_MAX_OFFERS]]
    return [_micro_offer(main, own=True)]


def _first_own_prop(scope: LexborNode, prop: str) -> LexborNode | None:
    """The first `prop` property of this scope itself (not of a scope nested inside it)."""
    for node in scope.css(f'[itemprop~="{prop}" i]')[:MAX_CANDIDATES]:
        if _same_node(_owning_scope(node), scope):
            return node
    return None


def _micro_name(scope: LexborNode) -> str | None:
    name = _first_own_prop(scope, "name")
    values = _prop_values(name) if name is not None else []
    return clean_title(values[0]) if values else None


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
        price=_amount(raw_price, currency) if raw_price else None,
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


def read_structured(tree: LexborHTMLParser, page_url: str | None = None) -> Structured:
    """Read JSON-LD, microdata and OpenGraph once each (`page_url` helps find the main product)."""
    return Structured(
        read_jsonld(tree, page_url), read_microdata(tree, page_url), read_opengraph(tree)
    )
