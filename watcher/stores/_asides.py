"""Other products' blocks on a product page: recommendations, rankings, recently viewed items.

Their cart buttons, prices and sold-out badges are other products', so nothing in them is read
about the page's product. They are item lists (`ItemList` microdata), carousels and sliders,
elements whose class or id says related / recommend / upsell / recently viewed (never a control
or a form: a cart button's id may say "submitRelated"), never one holding the h1; and what
follows a heading such as 関連商品, おすすめ, "Recommended" or "You may also like" in its section.

`Asides.of(tree)` finds the headed sections once; `holds(node)` then answers for the few nodes a
reading is about to trust, by walking up from them. Searching every node of a megabyte page for
recommendation classes would cost more than parsing it. `strip_recommendations` removes them all,
for adapters that read the page's whole tree afterwards.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.stores._text import normalise

_ZONE_CLASS = re.compile(
    r"carousel|swiper|slider|recommend|related|upsell|cross-sell|recently|osusume|kanren",
    re.IGNORECASE,
)
_ZONE_ID = re.compile(r"recommend|related", re.IGNORECASE)
_ZONES = (
    "[itemtype*=ItemList i], [aria-roledescription=carousel i], [class*=carousel i],"
    " [class*=swiper i], [class*=slider i], [class*=recommend i], [id*=recommend i],"
    " [class*=related i], [id*=related i], [class*=upsell i], [class*=cross-sell i],"
    " [class*=recently i], [class*=osusume i], [class*=kanren i]"
)
_HEADING = re.compile(
    r"(?:関連商品|関連アイテム|関連する商品|おすすめ商品|おすすめアイテム|おすすめ|オススメ"
    r"|こちらもおすすめ|この商品を(?:見た|買った|チェックした)人は.*|よく一緒に購入.*"
    r"|最近(?:チェック|見た|閲覧)した商品|閲覧履歴|ランキング|人気商品"
    r"|recommended.*|recommendations?|you may also like|you might also like"
    r"|related (?:products?|items)|customers (?:also|who) .*|recently viewed.*"
    r"|frequently bought together|similar (?:products|items))",
    re.IGNORECASE,
)
_NOT_ZONES = frozenset({"a", "button", "input", "form", "select", "option", "img", "span"})
_PAGE = frozenset({"html", "body"})
_HEADINGS = "h2, h3, h4"  # recommendation headings (h5, h6 would cost a search for little)
_HEADING_MAX = 40
_DEPTH = 40  # ancestors walked up from a node


class Asides:
    """The recommendation blocks of one parsed page (see the module docstring)."""

    def __init__(self, tree: LexborHTMLParser) -> None:
        self._tree = tree
        self._headed: frozenset[int] | None = None  # found on the first question

    @classmethod
    def of(cls, tree: LexborHTMLParser) -> Asides:
        return cls(tree)

    def _sections(self) -> frozenset[int]:
        if self._headed is None:
            headed: set[int] = set()
            for heading in self._tree.css(_HEADINGS):
                if is_recommendation_heading(heading.text(separator=" ")):
                    headed.update(node.mem_id for node in _section_after(heading))
            self._headed = frozenset(headed)
        return self._headed

    def starts(self, node: LexborNode) -> bool:
        """True when `node` itself is a recommendation block (not merely inside one)."""
        return node.mem_id in self._sections() or _is_zone(node)

    def holds(self, node: LexborNode) -> bool:
        """True when `node` is inside (or is) another product's block."""
        headed = self._sections()
        current: LexborNode | None = node
        for _ in range(_DEPTH):
            if current is None or current.tag in _PAGE:
                return False
            if current.mem_id in headed or _is_zone(current):
                return True
            current = current.parent
        return False


def strip_recommendations(tree: LexborHTMLParser) -> None:
    """Remove every recommendation block from the tree."""
    for node in tree.css(_ZONES):
        if _zone_tag(node) and node.css_first("h1") is None:
            node.decompose()
    for heading in tree.css(_HEADINGS):
        if is_recommendation_heading(heading.text(separator=" ")):
            for node in _section_after(heading):
                node.decompose()


def is_recommendation_heading(text: str) -> bool:
    if len(text) > _HEADING_MAX * 4:
        return False
    words = normalise(text).strip(" :：・-■□●◆◇★☆【】[]「」")
    return len(words) <= _HEADING_MAX and _HEADING.fullmatch(words) is not None


def _zone_tag(node: LexborNode) -> bool:
    return node.tag not in _PAGE and node.tag not in _NOT_ZONES


def _is_zone(node: LexborNode) -> bool:
    if not _zone_tag(node):
        return False
    attrs = node.attributes
    named = (
        _ZONE_CLASS.search(attrs.get("class") or "") is not None
        or _ZONE_ID.search(attrs.get("id") or "") is not None
        or "itemlist" in (attrs.get("itemtype") or "").lower()
        or (attrs.get("aria-roledescription") or "").strip().lower() == "carousel"
    )
    return named and node.css_first("h1") is None


def _section_after(heading: LexborNode) -> list[LexborNode]:
    """A recommendation heading (or the wrapper it ends, never one holding the h1) and what
    follows it in its section, stopping at the h1."""
    start = heading
    while start.next is None or _next_element(start) is None:
        parent = start.parent
        if parent is None or parent.tag in _PAGE or parent.css_first("h1") is not None:
            break
        start = parent
    found = [start]
    sibling = _next_element(start)
    while sibling is not None:
        if sibling.tag == "h1" or sibling.css_first("h1") is not None:
            break
        found.append(sibling)
        sibling = _next_element(sibling)
    return found


def _next_element(node: LexborNode) -> LexborNode | None:
    sibling = node.next
    while sibling is not None and not sibling.is_element_node:
        sibling = sibling.next
    return sibling
