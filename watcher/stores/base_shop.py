"""BASE shops (https://<shop>.base.shop/items/<id>, and shops on their own domains).

BASE shops often sell one-off handmade items, so SOLD OUT and カートに入れる swap often. The
purchase box is BASE's own markup (a purchase button, a SOLD OUT mark, 在庫なし in the variation
list) and decides, reconciled with the page's own reading (structured data and visible wording,
as the generic adapter reads them): a live purchase button on a page that otherwise reads sold
out is a conflict and not buyable. A page without the purchase box reads like any shop's.
A shop on its own domain is recognised by BASE's asset hosts and the /items/<id> path.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Availability, Observation, Page
from watcher.stores import generic
from watcher.stores._asides import strip_recommendations
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import screened
from watcher.stores._bounds import MAX_CANDIDATES
from watcher.stores._text import classify_wording, clean_title, normalise

NAME = "base"
HOSTS = (
    "*.base.shop",
    "*.thebase.in",
    "*.base.ec",
    "*.buyshop.jp",
    "*.theshop.jp",
    "*.shopselect.net",
    "*.storeinfo.jp",
    "*.official.ec",
)

_A = Availability
_LABEL_MAX = 200
_ASSET_MARKERS = ("static.thebase.in", "baseec-img-mng.akamaized.net", "thebase.in/js/")
_ITEM_PATH = re.compile(r"/items/\d+")
_SOLD_OUT_MARKS = "#soldOut, .soldOut, [class*=soldOut], [class*=sold-out i], [class*=sold_out i]"
_PURCHASE_BUTTONS = "#purchaseButton, .purchaseButton, [class*=purchaseButton], [class*=cartButton]"
_VARIATION_OPTIONS = "select#itemAttribute option, select[name*=attribute i] option"
_SOLD_OUT_WORDS = re.compile(r"sold\s*out|売り?切れ|在庫なし|在庫切れ", re.IGNORECASE)


def recognise(page: Page) -> bool:
    """A BASE item page on any domain: BASE's asset hosts and an /items/<id> path."""
    path = urlsplit(page.final_url or page.url).path
    return bool(_ITEM_PATH.search(path)) and any(m in page.text for m in _ASSET_MARKERS)


def parse_product(page: Page) -> Observation:
    """Read a BASE item page into an observation."""
    tree, early = screened(page, NAME)
    if early is not None:
        return early
    shop = _shop_name(tree)
    observation = generic.read_tree(page, tree)  # also drops hidden elements from the tree
    strip_recommendations(tree)  # other products' sold-out marks are not this item's
    decided = _purchase_box(tree)
    if decided is not None:
        state, reason = _reconciled(decided, observation)
        observation = replace(observation, state=state, reason=reason)
    return replace(observation, store=NAME, url=page.url, seller=observation.seller or shop)


def _reconciled(box: tuple[Availability, str], page: Observation) -> tuple[Availability, str]:
    """The purchase box decides, but a live button never outvotes the page's own not-orderable
    reading (wording or structured data saying sold out): then the state is not buyable and the
    reason names both sides."""
    state, reason = box
    if state.orderable and page.state is not _A.UNKNOWN and not page.state.orderable:
        return page.state, f"conflict: {reason} vs {page.reason}"
    return state, reason


def _purchase_box(tree: LexborHTMLParser) -> tuple[Availability, str] | None:
    """BASE's own purchase box: a live button, a SOLD OUT mark, or every variation sold out."""
    button = _live_purchase_button(tree)
    if button is not None:
        label = _label(button)
        if _every_variation_sold_out(tree):
            return _A.OUT_OF_STOCK, "base:every variation 在庫なし"
        worded = classify_wording(label)
        if worded is not None:
            return worded[0], f"base:purchase button {worded[1]}"
        return _A.IN_STOCK, f"base:purchase button {label[:40]}".rstrip()
    marks = [*tree.css(_SOLD_OUT_MARKS), *tree.css(_PURCHASE_BUTTONS)]
    for mark in marks[:MAX_CANDIDATES]:
        found = _SOLD_OUT_WORDS.search(_label(mark))
        if found:
            return _A.OUT_OF_STOCK, f"base:{found.group(0)}"
    return None


def _live_purchase_button(tree: LexborHTMLParser) -> LexborNode | None:
    for node in tree.css(_PURCHASE_BUTTONS)[:MAX_CANDIDATES]:
        label = _label(node)
        if not label or _SOLD_OUT_WORDS.search(label) or _disabled(node):
            continue
        return node
    return None


def _every_variation_sold_out(tree: LexborHTMLParser) -> bool:
    options = [
        o for o in tree.css(_VARIATION_OPTIONS)[:MAX_CANDIDATES] if o.attributes.get("value")
    ]
    return bool(options) and all(_disabled(o) or _SOLD_OUT_WORDS.search(_label(o)) for o in options)


def _disabled(node: LexborNode) -> bool:
    attrs = node.attributes
    classes = (attrs.get("class") or "").lower()
    return (
        "disabled" in attrs or "disabled" in classes.split() or attrs.get("aria-disabled") == "true"
    )


def _label(node: LexborNode) -> str:
    """A control's or mark's words (at most `_LABEL_MAX` characters: a caption is short)."""
    text = normalise(node.text(separator=" ")[: _LABEL_MAX * 4])
    return (text or normalise(node.attributes.get("value") or ""))[:_LABEL_MAX]


def _shop_name(tree: LexborHTMLParser) -> str | None:
    meta = tree.css_first('meta[property="og:site_name"]')
    return clean_title(meta.attributes.get("content")) if meta is not None else None


ADAPTER = StoreAdapter(
    name=NAME,
    parse_product=parse_product,
    hosts=HOSTS,
    recognise=recognise,
)
