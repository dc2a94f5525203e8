"""Any shop without its own adapter: read what the page states, most trustworthy source first.

Precedence (the first rule that gives a state decides; `reason` names it):

1. a watch's own `TextRules` (`rules:<phrase>`), applied by `apply_rules` / `parse_with_rules`
   (the registry's `parse_page` applies them over every adapter);
2. a block page (captcha, robot check, 429/503/403) -> unknown, `blocked:<why>`;
3. JSON-LD Product/Offer of the page's main product (`jsonld:InStock`);
4. microdata and OpenGraph, read together, the more orderable wins (`microdata:OutOfStock`,
   `og:instock`); see `_schema_org.Structured.decided`;
5. a page with no product markup that looks like a listing (many buy buttons, or many prices on a
   search/category page) -> unknown, `not a product page`;
6. visible wording of the main product (see "What is read" below), in this order:
   a. stock labels (elements whose id/class says stock/availability/zaiko/soldout), those in the
      product block first, then the text of the main cart form (`text:在庫切れ`);
   b. buy controls of the main cart form, then those in the product block
      (`button:カートに入れる`);
   c. the product block's own text (so "この商品は売り切れました" beside the title beats a cart
      button elsewhere on the page);
   d. every other buy control, in document order;
   e. the whole visible text (`text:<phrase>`);
   a disabled control never counts as buyable, and a page whose first buy control is disabled
   reads out of stock (`button:disabled:<label>`);
7. nothing -> unknown, `no signal`.

When structured data and visible wording disagree about whether the product can be ordered,
structured data still decides and the reason ends with `; conflict: text said <phrase>`.

What is read. Scripts, styles, templates and hidden elements are removed first: the `hidden`
attribute, `aria-hidden="true"`, inline `display: none` / `visibility: hidden` (any spacing or
case), and the hiding classes `hidden`, `d-none`, `is-hidden`, `hide`, `u-hidden`, `invisible`
(unless a responsive class shows the element again, as in `d-none d-md-block`). Screen-reader
text (`visually-hidden`, `sr-only`) is kept: it is written for people who cannot see the page and
states what the page states. Then recommendations are removed: item lists (`ItemList`
microdata), carousels and sliders, elements whose class or id says related / recommend / upsell /
recently viewed, and what follows a heading such as 関連商品, おすすめ, "Recommended" or "You may
also like" in its section. Their cart buttons and sold-out badges are other products'.

The main cart form is the first form whose action (or id/class) says cart, basket, kago or buy.
The product block is the nearest element around the h1 that also holds a price, a cart form or a
buy control (none on a flat page, whose body is the block).

A control is disabled by the `disabled` attribute, `aria-disabled="true"`, or a class holding the
word "disabled" (`disabled`, `is-disabled`, `btn-disabled`, `button--disabled`).

The price, when structured data has none: elements with itemprop=price or an id/class saying
"price" (not points, shipping or a compare-at price), in the product block first; struck text
(<s>, <del>, <strike>) and compare-at / regular / old prices are reference prices, used only when
nothing else is shown; among several amounts `_text.choose_price` decides (points, 送料 and 定価
beside a sale price skipped, 税込 before 税抜, the low end of a range). Without such an element,
the first amount labelled as a price (販売価格, 価格, 特価...) in the product's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Availability, Observation, Page, TextRules
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import blocked_observation, detect_block
from watcher.stores._bounds import MAX_CANDIDATES
from watcher.stores._schema_org import ProductData, Structured, read_structured
from watcher.stores._text import (
    PriceCandidate,
    choose_price,
    classify_wording,
    clean_title,
    normalise,
    parse_amount,
    parse_price,
    price_candidates,
    quantity_hint,
)

NAME = "generic"

_CODE_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object"})
# Candidates for hiding; `_is_hidden` decides (selectors cannot read spacing or responsive classes).
_MAYBE_HIDDEN = (
    "[hidden], [aria-hidden=true i], [style], [class*=hid i], [class*=none i], [class*=invisible i]"
)
_HIDING_STYLE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:!\s*important\s*)?(?:;|$)",
    re.IGNORECASE,
)
_HIDING_CLASSES = frozenset({"hidden", "d-none", "is-hidden", "hide", "u-hidden", "invisible"})
# "d-none d-md-block", "hidden md:block": hidden on small screens only.
_SHOWN_AGAIN = re.compile(
    r"^(?:d-(?:sm|md|lg|xl|xxl)-(?!none)[a-z-]+|(?:sm|md|lg|xl|2xl):(?!hidden)[a-z-]+)$", re.I
)
_NEVER_HIDDEN = frozenset({"html", "body"})
_NOT_TEXT = ", ".join((*sorted(_CODE_TAGS), "input[type=hidden i]", _MAYBE_HIDDEN))
_RECOMMENDATION_ZONES = (
    "[itemtype*=ItemList i], [aria-roledescription=carousel i], [class*=carousel i],"
    " [class*=swiper i], [class*=slider i], [class*=recommend i], [id*=recommend i],"
    " [class*=related i], [id*=related i], [class*=upsell i], [class*=cross-sell i],"
    " [class*=recently i], [class*=osusume i], [class*=kanren i]"
)
_RECOMMENDATION_HEADING = re.compile(
    r"(?:関連商品|関連アイテム|関連する商品|おすすめ商品|おすすめアイテム|おすすめ|オススメ"
    r"|こちらもおすすめ|この商品を(?:見た|買った|チェックした)人は.*|よく一緒に購入.*"
    r"|最近(?:チェック|見た|閲覧)した商品|閲覧履歴|ランキング|人気商品"
    r"|recommended.*|recommendations?|you may also like|you might also like"
    r"|related (?:products?|items)|customers (?:also|who) .*|recently viewed.*"
    r"|frequently bought together|similar (?:products|items))",
    re.IGNORECASE,
)
_HEADINGS = "h2, h3, h4, h5, h6, [role=heading]"
_HEADING_MAX = 40
_STOCK_LABELS = (
    "[id*=stock i], [class*=stock i], [id*=availability i], [class*=availability i],"
    " [id*=zaiko i], [class*=zaiko i], [id*=sold i], [class*=sold i], [itemprop=availability]"
)
_CART_FORMS = (
    "form[action*=cart i], form[action*=basket i], form[action*=kago i], form[action*=buy i],"
    " form[id*=cart i], form[class*=cart i]"
)
_CONTROLS = (
    "button, input[type=submit i], input[type=button i], input[type=image i],"
    " a[class*=cart i], a[id*=cart i], a[class*=buy i], a[id*=buy i], [role=button]"
)
_DISABLED_CLASS = re.compile(r"(?:^|[\s_-])disabled(?:$|[\s_-])", re.IGNORECASE)
_PRICE_ZONES = "[itemprop=price], [id*=price i], [class*=price i]"
_PRICE_REFERENCE_PARTS = "s, del, strike"
# Words in a price element's id/class: not the price (points, shipping), or a reference price.
_PRICE_SKIP_WORDS = frozenset(
    {"point", "points", "pt", "shipping", "postage", "souryo", "delivery"}
)
_PRICE_REFERENCE_WORDS = frozenset(
    {"compare", "regular", "original", "old", "was", "list", "reference", "teika", "msrp", "before"}
)
_CLASS_WORD = re.compile(r"[a-z]+")
_BLOCK_DEPTH = 6  # how far above the h1 the product block may start
_BLOCK_TEXT_MAX = 1_000  # a product block's text read as a statement only up to this size
_LABEL_MAX = 200  # a "label" longer than this is a container, not a stock label
_FORM_MAX = 600
_PRICE_ZONE_MAX = 120
_PRICE_TEXT_MAX = 20_000  # characters of product text searched for a labelled price
_LISTING_CONTROLS = 4  # this many live buy buttons without product markup: a listing
_LISTING_PRICES = 12
_LISTING_HINT = re.compile(
    r"検索|search|一覧|results?|カテゴリ|category|ランキング|[?&](?:q|k|keyword)=", re.I
)
_YEN = re.compile(r"[¥￥]\s*[\d,，０-９]+|[\d,，０-９]+\s*円")


@dataclass(frozen=True, slots=True)
class Signal:
    """A state read from visible wording, where it was read, and the text around it."""

    state: Availability
    reason: str
    phrase: str
    context: str = ""


def parse_product(page: Page) -> Observation:
    """Read any product page (see the module docstring for the precedence)."""
    tree = LexborHTMLParser(without_code(page.text))
    blocked = detect_block(page, tree)
    if blocked:
        return blocked_observation(page, blocked, store=NAME)
    return read_tree(page, tree)


# Scripts (but JSON-LD) and styles are never read as text, and on big shop pages they are most of
# the bytes: cutting them before parsing keeps parse time low. A plain scan, not one regex over
# the whole page, because a lazy regex across megabytes of script is slow.
_CODE_OPEN = re.compile(r"<(script|style)\b", re.IGNORECASE)


def without_code(html: str) -> str:
    """The page without its scripts and styles (JSON-LD scripts stay)."""
    kept: list[str] = []
    pos = 0
    while (found := _CODE_OPEN.search(html, pos)) is not None:
        tag_end = html.find(">", found.end())
        close = _closing_tag(html, found.group(1).lower(), max(tag_end, found.end()))
        if tag_end < 0 or close < 0:
            break
        if "ld+json" in html[found.start() : tag_end].lower():
            kept.append(html[pos:close])
        else:
            kept.append(html[pos : found.start()])
        pos = close
    kept.append(html[pos:])
    return "".join(kept)


def _closing_tag(html: str, name: str, start: int) -> int:
    """Where `</name` (any letter case) starts after `start`, or -1. Found by a plain search
    for "</": lower-casing a megabyte page costs more than parsing it."""
    width = len(name) + 2
    at = html.find("</", start)
    while at >= 0 and html[at + 2 : at + width].lower() != name:
        at = html.find("</", at + 2)
    return at


def parse_with_rules(page: Page, rules: TextRules) -> Observation:
    """`parse_product`, then the watch's own phrases decide the state when one is found."""
    return apply_rules(parse_product(page), page, rules)


def apply_rules(observation: Observation, page: Page, rules: TextRules) -> Observation:
    """Let a watch's `TextRules` decide the state of any adapter's reading (blocks stay blocked)."""
    if observation.blocked or not rules.phrases:
        return observation
    tree = LexborHTMLParser(without_code(page.text))
    _strip_invisible(tree)
    found = rules_signal(tree, rules)
    if found is None:
        return observation
    state, phrase = found
    return replace(observation, state=state, reason=f"rules:{phrase}")


def rules_signal(tree: LexborHTMLParser, rules: TextRules) -> tuple[Availability, str] | None:
    """The first of the watch's phrases found in the selected text (case-insensitive, NFKC)."""
    if rules.selector:
        text = " ".join(node.text(separator=" ") for node in tree.css(rules.selector))
    else:
        text = _body_text(tree)
    haystack = normalise(text).casefold()
    for phrase, state in rules.phrases:
        if phrase and normalise(phrase).casefold() in haystack:
            return state, phrase
    return None


def read_tree(page: Page, tree: LexborHTMLParser) -> Observation:
    """Read an already parsed, not blocked page. Mutates `tree` (invisible nodes and
    recommendations are removed)."""
    structured = read_structured(tree, page.final_url or page.url)
    facts = structured.facts()
    decided = structured.decided()
    _strip_invisible(tree)
    title = _title(tree, structured)
    undecided = decided is None or decided.state is None
    if undecided and not structured.is_product and looks_like_listing(tree, page.url, title):
        return Observation.unknown("not a product page", store=NAME, title=title)
    if decided is not None and decided.state is not None:
        # Only the product's own labels and controls are worth a conflict note: the whole text
        # is not read, and neither are recommendations (so they need not be removed).
        view = ProductView.of(tree)
        near = _label_signal(view, block_only=True) or _control_signal(view, first_only=True)
        return _from_structured(decided, near, title)
    _strip_recommendations(tree)
    view = ProductView.of(tree)
    signal = visible_signal(tree, view)
    price = _price(view, facts)
    if signal is None:
        return Observation.unknown("no signal", store=NAME, title=title, price=price)
    return Observation(
        state=signal.state,
        reason=signal.reason,
        price=price,
        currency=(facts.currency if facts else None) or "JPY",
        title=title,
        seller=facts.seller if facts else None,
        condition=facts.condition if facts else None,
        quantity=quantity_hint(signal.context),
        store=NAME,
    )


def _from_structured(data: ProductData, signal: Signal | None, title: str | None) -> Observation:
    assert data.state is not None
    reason = data.reason
    if signal is not None and signal.state.orderable != data.state.orderable:
        reason += f"; conflict: text said {signal.phrase}"
    return Observation(
        state=data.state,
        reason=reason,
        price=data.price,
        currency=data.currency or "JPY",
        title=title,
        seller=data.seller,
        condition=data.condition,
        quantity=quantity_hint(signal.context) if signal else None,
        store=NAME,
    )


# --- what is read ------------------------------------------------------------------------------


def _strip_invisible(tree: LexborHTMLParser) -> None:
    for node in tree.css(_NOT_TEXT):  # one pass: each selector pass costs ~0.1 ms per MB
        if node.tag in _CODE_TAGS or node.tag == "input" or _is_hidden(node):
            node.decompose()


def _is_hidden(node: LexborNode) -> bool:
    """Hidden from every reader (see the module docstring); html and body never are."""
    if node.tag in _NEVER_HIDDEN:
        return False
    attrs = node.attributes
    if "hidden" in attrs or _HIDING_STYLE.search(attrs.get("style") or ""):
        return True
    if (attrs.get("aria-hidden") or "").strip().lower() == "true" and node.tag != "main":
        return True
    classes = (attrs.get("class") or "").split()
    if not any(c.lower() in _HIDING_CLASSES for c in classes):
        return False
    return not any(_SHOWN_AGAIN.match(c) for c in classes)


def _strip_recommendations(tree: LexborHTMLParser) -> None:
    """Remove other products' blocks (see the module docstring); never the one holding the h1."""
    for node in tree.css(_RECOMMENDATION_ZONES):
        if node.tag not in _NEVER_HIDDEN and node.css_first("h1") is None:
            node.decompose()
    for heading in tree.css(_HEADINGS):
        text = heading.text(separator=" ")
        if len(text) <= _HEADING_MAX * 4 and _is_recommendation_heading(text):
            _strip_section_after(heading)


def _is_recommendation_heading(text: str) -> bool:
    words = normalise(text).strip(" :：・-■□●◆◇★☆【】[]「」")
    return len(words) <= _HEADING_MAX and _RECOMMENDATION_HEADING.fullmatch(words) is not None


def _strip_section_after(heading: LexborNode) -> None:
    """Remove a recommendation heading and what follows it in its section, stopping at the h1."""
    start = heading
    while start.next is None or _next_element(start) is None:
        parent = start.parent
        if parent is None or parent.tag in _NEVER_HIDDEN:
            break
        start = parent
    doomed = [start]
    sibling = _next_element(start)
    while sibling is not None:
        if sibling.tag == "h1" or sibling.css_first("h1") is not None:
            break
        doomed.append(sibling)
        sibling = _next_element(sibling)
    for node in doomed:
        node.decompose()


def _next_element(node: LexborNode) -> LexborNode | None:
    sibling = node.next
    while sibling is not None and not sibling.is_element_node:
        sibling = sibling.next
    return sibling


@dataclass(frozen=True, slots=True)
class ProductView:
    """Where the main product is stated: its cart form and the block around its h1 (None when
    the page has no such thing; see the module docstring)."""

    tree: LexborHTMLParser
    form: LexborNode | None
    block: LexborNode | None

    @classmethod
    def of(cls, tree: LexborHTMLParser) -> ProductView:
        return cls(tree, tree.css_first(_CART_FORMS), _product_block(tree))

    def scopes(self) -> list[LexborNode]:
        """The block (when there is one), then the whole page."""
        root = self.tree.body or self.tree.root
        found = [n for n in (self.block, root) if n is not None]
        return found


def _product_block(tree: LexborHTMLParser) -> LexborNode | None:
    heading = tree.css_first("h1")
    node = heading.parent if heading is not None else None
    for _ in range(_BLOCK_DEPTH):
        if node is None or node.tag in _NEVER_HIDDEN:
            return None
        if node.css_first(_PRICE_ZONES) is not None or node.css_first(_CART_FORMS) is not None:
            return node
        if any(_stock_control(c) for c in node.css(_CONTROLS)[:MAX_CANDIDATES]):
            return node
        node = node.parent
    return None


def _stock_control(node: LexborNode) -> bool:
    label = _control_label(node)
    return len(label) <= _LABEL_MAX * 4 and classify_wording(label) is not None


def _body_text(tree: LexborHTMLParser) -> str:
    root = tree.body or tree.root
    return root.text(separator=" ") if root is not None else ""


# --- visible wording ---------------------------------------------------------------------------


def visible_signal(tree: LexborHTMLParser, view: ProductView | None = None) -> Signal | None:
    """Stock wording from the visible page, in the order the module docstring states."""
    view = view or ProductView.of(tree)
    return _label_signal(view) or _control_signal(view) or _text_signal(_body_text(tree), "text")


def _label_signal(view: ProductView, block_only: bool = False) -> Signal | None:
    """Stock labels, the product block's first; `block_only`: not the rest of the page when
    there is a block."""
    for node, limit in _labels(view, block_only):
        text = node.text(separator=" ")
        if len(text) > limit * 4 or len(normalise(text)) > limit:
            continue
        found = _text_signal(text, "text")
        if found:
            return found
    return None


def _labels(view: ProductView, block_only: bool) -> Iterator[tuple[LexborNode, int]]:
    scopes = view.scopes()
    for scope in scopes[:1] if block_only else scopes:
        for node in scope.css(_STOCK_LABELS)[:MAX_CANDIDATES]:
            yield node, _LABEL_MAX
    if view.form is not None:
        yield view.form, _FORM_MAX


def _text_signal(text: str, kind: str) -> Signal | None:
    found = classify_wording(text)
    if found is None:
        return None
    state, phrase = found
    return Signal(state, f"{kind}:{phrase}", phrase, normalise(text[:2000])[:500])


def _control_label(node: LexborNode) -> str:
    attrs = node.attributes
    if node.tag == "input":
        return attrs.get("value") or attrs.get("alt") or ""
    return node.text(separator=" ") or attrs.get("aria-label") or attrs.get("title") or ""


def _disabled(node: LexborNode) -> bool:
    attrs = node.attributes
    return (
        "disabled" in attrs
        or (attrs.get("aria-disabled") or "").strip().lower() == "true"
        or _DISABLED_CLASS.search(attrs.get("class") or "") is not None
    )


def _control_signal(view: ProductView, first_only: bool = False) -> Signal | None:
    """Buy controls: the main cart form's, the product block's, the block's own text, then every
    other control (`first_only`: the first two steps only, for a conflict note)."""
    for scope in (view.form, view.block):
        if scope is not None and (found := _first_control(scope.css(_CONTROLS)[:MAX_CANDIDATES])):
            return found
    if first_only:
        return None
    if view.block is not None:
        text = view.block.text(separator=" ")
        if len(text) <= _BLOCK_TEXT_MAX * 4 and len(normalise(text)) <= _BLOCK_TEXT_MAX:
            found = _text_signal(text, "text")
            if found is not None:
                return found
    return _first_control(view.tree.css(_CONTROLS)[:MAX_CANDIDATES])


def _first_control(nodes: list[LexborNode]) -> Signal | None:
    disabled_buy: Signal | None = None
    for node in nodes:
        label = _control_label(node)
        if len(label) > _LABEL_MAX * 4:
            continue
        found = _text_signal(label, "button")
        if found is None:
            continue
        if not _disabled(node) or not found.state.orderable:
            return found
        if disabled_buy is None:
            why = f"button:disabled:{found.phrase}"
            disabled_buy = Signal(Availability.OUT_OF_STOCK, why, found.phrase, found.context)
    return disabled_buy


def _live_buy_controls(tree: LexborHTMLParser) -> int:
    count = 0
    for node in tree.css(_CONTROLS)[:MAX_CANDIDATES]:
        found = classify_wording(_control_label(node)[: _LABEL_MAX * 4])
        if found and found[0] is Availability.IN_STOCK and not _disabled(node):
            count += 1
    return count


def looks_like_listing(tree: LexborHTMLParser, url: str, title: str | None) -> bool:
    """A search or category page: many live buy buttons, or many prices on a page whose URL or
    title says search / list / category."""
    if _live_buy_controls(tree) >= _LISTING_CONTROLS:
        return True
    if not _LISTING_HINT.search(f"{url} {title or ''}"):
        return False
    return len(_YEN.findall(_body_text(tree))) >= _LISTING_PRICES


# --- facts -------------------------------------------------------------------------------------


def _title(tree: LexborHTMLParser, structured: Structured) -> str | None:
    if structured.jsonld and structured.jsonld.title:
        return structured.jsonld.title
    if structured.og and structured.og.title:
        return structured.og.title
    for selector in ("h1", "title"):
        node = tree.css_first(selector)
        if node is not None:
            title = clean_title(node.text(separator=" "))
            if title:
                return title
    return None


def _price(view: ProductView, facts: ProductData | None) -> int | None:
    """The product's price (see the module docstring)."""
    if facts is not None and facts.price is not None:
        return facts.price
    currency = facts.currency if facts else None
    if currency is not None and currency.upper() != "JPY":
        return _foreign_price(view, currency)
    reference: int | None = None
    for scope in view.scopes():
        for node in scope.css(_PRICE_ZONES)[:MAX_CANDIDATES]:
            candidates = _zone_candidates(node)
            if candidates is None:
                continue
            price = choose_price(candidates)
            if any(c.kind == "sale" for c in candidates):
                return price
            reference = reference if reference is not None else price
    return reference if reference is not None else _labelled_price(view)


def _zone_candidates(node: LexborNode) -> list[PriceCandidate] | None:
    """The amounts of one price element, struck or compare-at parts as reference prices; None
    for an element that is not a price (points, shipping) or too long to be one."""
    kind = _price_zone_kind(node)
    if kind == "skip":
        return None
    content = node.attributes.get("content")
    if node.attributes.get("itemprop") == "price" and content:
        amount = parse_amount(content)
        return [PriceCandidate(amount, kind)] if amount else None
    text = node.text(separator=" ")
    if len(text) > _PRICE_ZONE_MAX * 4 or len(normalise(text)) > _PRICE_ZONE_MAX:
        return None
    plain, struck = _split_struck(node)
    found = price_candidates(normalise(plain), reference=kind == "reference")
    return found + price_candidates(normalise(struck), reference=True)


def _price_zone_kind(node: LexborNode) -> str:
    words = set(_CLASS_WORD.findall(_class_and_id(node)))
    if words & _PRICE_SKIP_WORDS:
        return "skip"
    if words & _PRICE_REFERENCE_WORDS or node.tag in ("s", "del", "strike"):
        return "reference"
    return "sale"


def _class_and_id(node: LexborNode) -> str:
    attrs = node.attributes
    return f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()


def _split_struck(zone: LexborNode) -> tuple[str, str]:
    """A price element's text, and apart from it the text of its struck or compare-at parts
    (points and shipping parts dropped)."""
    aside: dict[int, str] = {}
    for node in zone.css(f"{_PRICE_REFERENCE_PARTS}, [class], [id]"):
        kind = _price_zone_kind(node)
        if node.tag in ("s", "del", "strike") or kind != "sale":
            aside[node.mem_id] = kind
    if not aside:
        return zone.text(separator=" "), ""
    plain: list[str] = []
    struck: list[str] = []
    for node in zone.traverse(include_text=True):
        if not node.is_text_node:
            continue
        part = _aside_kind(node, zone, aside)
        target = plain if part is None else struck if part == "reference" else None
        if target is not None:
            target.append(node.text_content or "")
    return " ".join(plain), " ".join(struck)


def _aside_kind(node: LexborNode, zone: LexborNode, aside: dict[int, str]) -> str | None:
    parent = node.parent
    while parent is not None and parent.mem_id != zone.mem_id:  # `!=` serialises both
        if parent.mem_id in aside:
            return aside[parent.mem_id]
        parent = parent.parent
    return None


def _labelled_price(view: ProductView) -> int | None:
    """The first amount a word names as a price (販売価格 29,800円) in the product's text."""
    scope = view.block or view.tree.body or view.tree.root
    if scope is None:
        return None
    text = normalise(scope.text(separator=" ")[:_PRICE_TEXT_MAX])
    labelled = [c for c in price_candidates(text) if c.labelled]
    return choose_price(labelled)


def _foreign_price(view: ProductView, currency: str) -> int | None:
    for scope in view.scopes():
        for node in scope.css(_PRICE_ZONES)[:MAX_CANDIDATES]:
            if _price_zone_kind(node) != "sale":
                continue
            text = node.text(separator=" ")
            if len(text) <= _PRICE_ZONE_MAX * 4 and len(normalise(text)) <= _PRICE_ZONE_MAX:
                price = parse_price(text, currency)
                if price is not None:
                    return price
    return None


ADAPTER = StoreAdapter(name=NAME, parse_product=parse_product)
