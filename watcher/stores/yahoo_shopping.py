"""Yahoo! Shopping item pages (store.shopping.yahoo.co.jp/<store>/<item>.html).

Item pages state the product in JSON-LD (price, availability, the store as seller), which the
shared schema.org reader decides on; the page's own purchase box (カートに入れる, 在庫切れ, a
入荷お知らせ button in place of the cart) is read when the markup says nothing. Yahoo! Auctions
(auctions.yahoo.co.jp) is a different service and is not served here.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser

from watcher.core.model import Availability, FetchPlan, Observation, Page
from watcher.stores import generic
from watcher.stores._asides import strip_recommendations
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import screened
from watcher.stores._bounds import MAX_CANDIDATES
from watcher.stores._schema_org import read_jsonld
from watcher.stores._text import clean_title, normalise

NAME = "yahoo_shopping"
HOSTS = ("store.shopping.yahoo.co.jp", "shopping.yahoo.co.jp", "paypaymall.yahoo.co.jp")

_A = Availability
_OFFICIAL_STORE = re.compile(r"公式|オフィシャル|official|直営", re.IGNORECASE)
_TITLE_STORE = re.compile(r"[-|｜]\s*([^-|｜]+?)\s*[-|｜]\s*(?:通販\s*[-|｜]\s*)?(?:Yahoo!|PayPay)")
# A restock-notice control where the cart button would be: the item cannot be ordered now.
_RESTOCK_NOTICE = re.compile(r"再?入荷(?:お知らせ|通知)|入荷したらお知らせ")
_CONTROLS = "button, a[role=button], input[type=submit i], [class*=Button], [class*=button]"


def product_request(url: str) -> FetchPlan:
    """The item URL without tracking parameters (sc_i, sc_e, ...) or fragment."""
    parts = urlsplit(url)
    return FetchPlan(url=urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def parse_product(page: Page) -> Observation:
    """Read a Yahoo! Shopping item page into an observation."""
    tree, early = screened(page, NAME)
    if early is not None:
        return early
    jsonld = read_jsonld(tree)
    store_name = _store_name(tree, jsonld.seller if jsonld else None)
    observation = generic.read_tree(page, tree)
    if observation.state is _A.UNKNOWN and _restock_notice_only(tree):
        observation = replace(observation, state=_A.OUT_OF_STOCK, reason="yahoo:restock notice")
    return replace(
        observation,
        store=NAME,
        url=page.url,
        seller=store_name or observation.seller,
        official=bool(_OFFICIAL_STORE.search(store_name)) if store_name else None,
        jan=jsonld.gtin if jsonld else None,
    )


def _store_name(tree: LexborHTMLParser, from_jsonld: str | None) -> str | None:
    """The store: JSON-LD's seller, else "<item> - <store> - 通販 - Yahoo!ショッピング"."""
    if from_jsonld:
        return from_jsonld
    node = tree.css_first("title")
    match = _TITLE_STORE.search(normalise(node.text())) if node is not None else None
    return clean_title(match.group(1)) if match else None


def _restock_notice_only(tree: LexborHTMLParser) -> bool:
    strip_recommendations(tree)  # other products' notice buttons are not this item's
    labels = [normalise(node.text(separator=" ")) for node in tree.css(_CONTROLS)[:MAX_CANDIDATES]]
    return any(_RESTOCK_NOTICE.search(label) for label in labels if len(label) < 60)


ADAPTER = StoreAdapter(
    name=NAME,
    parse_product=parse_product,
    hosts=HOSTS,
    product_request=product_request,
)
