"""Any shop without its own adapter: the page's witnesses, reconciled.

1. A block page (captcha, robot check, access denied, rate limit, アクセス集中) is `unknown`
   (`blocked:<why>`) whatever else it shows; nothing else is read.
2. A page with no product markup that looks like a listing (many buy buttons, or many prices on
   a search/category page) is `unknown` (`not a product page`).
3. Three witnesses are read about the main product:
   - structured data: JSON-LD Product/Offer of the main product, else microdata and OpenGraph
     read together (`_schema_org.Structured.decided`);
   - the wording of the main product area (see "What is read"): its stock labels (elements
     whose id/class says stock/availability/zaiko/soldout; the product block's first, then the
     page's, never a store-pickup widget's or a variation row's), then the cart form's and the
     product block's own text without the buttons' captions; with neither structured data nor
     a buy control, the whole visible text;
   - its buy control: the main cart form's, then the product block's (without structured data,
     the first stating control anywhere); a disabled buy control says out of stock;
     a variation table (`_variations`) takes the control's place: one row per variation,
     the product as orderable as its most orderable row.
4. `_reconcile.reconcile` decides: a buyable state needs a positive buy signal no other
   witness contradicts; on disagreement the state is not buyable and the reason names both sides
   (`conflict: jsonld InStock vs text 売り切れ`), except that visible wording and an enabled buy
   control agreeing that the product can be ordered outvote stale structured data
   (`text:お取り寄せ; jsonld OutOfStock disagreed`). Ship-later wording beside an enabled cart is a
   backorder; lottery wording (抽選受付中, 応募受付中) is `lottery`, with the deadline the page
   states (`_dates`).
5. No witness: `unknown`, `no signal`. A watch's own `TextRules` (`rules:<phrase>`) are applied
   over any adapter's reading by `apply_rules` (the registry's `parse_page` does).

What is read. Scripts, styles, templates and hidden elements are removed first: the `hidden`
attribute, `aria-hidden="true"`, inline `display: none` / `visibility: hidden` (any spacing or
case), and the hiding classes `hidden`, `d-none`, `is-hidden`, `hide`, `u-hidden`, `invisible`
(unless a responsive class shows the element again, as in `d-none d-md-block`). Screen-reader
text (`visually-hidden`, `sr-only`) is kept: it is written for people who cannot see the page and
states what the page states. Recommendations (`_asides`: item lists, carousels, related /
recommend / upsell blocks, what follows 関連商品 or "You may also like") are never read: their
cart buttons, prices and sold-out badges are other products'.

The main cart form is the first form whose action (or id/class) says cart, basket, kago or buy,
outside recommendations.
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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Availability, Observation, Offer, Page, TextRules
from watcher.stores._asides import Asides
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import blocked_observation, detect_block
from watcher.stores._bounds import MAX_CANDIDATES, ascii_lower, bounded_html
from watcher.stores._controls import CONTROLS as _CONTROLS
from watcher.stores._controls import LABEL_MAX as _LABEL_MAX
from watcher.stores._controls import control_label, control_state
from watcher.stores._dates import lottery_deadline
from watcher.stores._reconcile import Evidence, reconcile
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
from watcher.stores._variations import CART_FORMS, Rows, in_row, variation_rows
from watcher.stores._wording import Strength

NAME = "generic"
T = TypeVar("T")

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
_STOCK_LABELS = (
    "[id*=stock i], [class*=stock i], [id*=availability i], [class*=availability i],"
    " [id*=zaiko i], [class*=zaiko i], [id*=sold i], [class*=sold i], [itemprop=availability],"
    " [class*=inventory i]"
)
_CART_FORMS = CART_FORMS
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
# Reference prices named inside one class word: EC-CUBE's price01 (通常価格), "priceRegularPrice",
# "normal_price", "listPrice", and the romanised 定価 / 希望小売 / 参考.
_REFERENCE_CLASS = re.compile(
    r"price0?1(?![0-9])|regular|normal-?_?price|list-?_?price|teika|kibou|sankou|ref-?_?price"
    r"|retail|compare|msrp|strike"
)
_BLOCK_DEPTH = 6  # how far above the h1 the product block may start
_OWN_CHECKS = 20  # candidates looked at when asking whether a container holds its own price
_BLOCK_TEXT_MAX = 1_000  # a product block's text read as a statement only up to this size
_BODY_TEXT_MAX = 4_000  # characters of a flat page's text read from its h1 on
_FORM_MAX = 600
_PRICE_ZONE_MAX = 120
_PRICE_TEXT_MAX = 20_000  # characters of product text searched for a labelled price
_LISTING_CONTROLS = 4  # this many live buy buttons without product markup: a listing
_LISTING_PRICES = 12
_LISTING_HINT = re.compile(
    r"検索|search|一覧|results?|カテゴリ|category|ランキング|[?&](?:q|k|keyword)=", re.I
)
# A stock label about picking up in a shop, not about ordering online (家電量販店の店舗在庫).
_STORE_STOCK = re.compile(r"店舗|店頭|実店舗|受け?取り|pick ?up|in[ -]store|nearby store", re.I)
_STORE_WIDGET = re.compile(
    r"store-?_?stock|shop-?_?stock|stock-?_?store|tenpo|pickup|uketori|store-?_?list|shop-?_?list"
    r"|realshop|real-?_?store|nearby"
)
_STORE_WIDGET_DEPTH = 5
# Option pickers: a select, a fieldset of swatches, a theme's variant picker element.
_OPTION_PICKERS = "select, fieldset, [class*=swatch i], variant-radios, variant-selects"
_SOLD_OUT_CLASS = re.compile(r"sold-?_?out|soldout|out-?_?of-?_?stock|unavailable")
_BADGE_DEPTH = 4
_YEN = re.compile(r"[¥￥]\s*[\d,，０-９]+|[\d,，０-９]+\s*円")


def parse_product(page: Page) -> Observation:
    """Read any product page (see the module docstring for the precedence)."""
    tree = LexborHTMLParser(code_free(page.text))
    blocked = detect_block(page, tree)
    if blocked:
        return blocked_observation(page, blocked, store=NAME)
    return read_tree(page, tree)


# Scripts (but JSON-LD) and styles are never read as text, and on big shop pages they are most of
# the bytes: cutting them before parsing keeps parse time low. A plain scan, not one regex over
# the whole page, because a lazy regex across megabytes of script is slow.
# ASCII letters only, as the tokenizer matches names: Unicode case folding would take "<ſcript"
# (a long s) for a script and cut what the parser shows.
_CODE_OPEN = re.compile(r"<(script|style)(?=[\t\n\f\r />])", re.IGNORECASE | re.ASCII)


def code_free(html: str) -> str:
    """`without_code`, bounded again when anything was cut: the cut finds scripts by a plain scan,
    which a "<script" in an attribute value misleads, and cutting from there can leave markup
    that nests without end (see `watcher.stores._bounds`)."""
    cut = without_code(html)
    return html if len(cut) == len(html) else bounded_html(cut)


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
    while at >= 0 and ascii_lower(html[at + 2 : at + width]) != name:
        at = html.find("</", at + 2)
    return at


def parse_with_rules(page: Page, rules: TextRules) -> Observation:
    """`parse_product`, then the watch's own phrases decide the state when one is found."""
    return apply_rules(parse_product(page), page, rules)


def apply_rules(observation: Observation, page: Page, rules: TextRules) -> Observation:
    """Let a watch's `TextRules` decide the state of any adapter's reading (blocks stay blocked)."""
    if observation.blocked or not rules.phrases:
        return observation
    tree = LexborHTMLParser(code_free(page.text))
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
    """Read an already parsed, not blocked page. Mutates `tree` (invisible nodes are removed;
    recommendations stay, and are skipped as `Asides`)."""
    structured = read_structured(tree, page.final_url or page.url)
    facts = structured.facts()
    decided = structured.decided()
    stated = decided if decided is not None and decided.state is not None else None
    _strip_invisible(tree)
    title = _title(tree, structured)
    if stated is None and not structured.is_product and looks_like_listing(tree, page.url, title):
        return Observation.unknown("not a product page", store=NAME, title=title)
    view = ProductView.of(tree)
    control = _main_control(view, search_page=stated is None)
    default = control.state if control else (stated.state if stated else None)
    rows = variation_rows(view, default)
    text = _area_text(view, rows, read_body=stated is None and control is None and rows is None)
    if rows is not None:
        control = Evidence("variations", rows.state, rows.summary, f"variations:{rows.summary}")
    verdict = reconcile(_structured_evidence(stated), text, control)
    price = _price(view, facts)
    if verdict is None:
        return Observation.unknown("no signal", store=NAME, title=title, price=price)
    data = stated or facts
    page_price = (stated.price if stated else None) or price
    offers = _row_offers(rows, page.url, title, data.currency if data else None, page_price)
    return Observation(
        state=verdict.state,
        reason=verdict.reason,
        price=_verdict_price(stated, rows, price),
        currency=(data.currency if data else None) or "JPY",
        title=title,
        seller=data.seller if data else None,
        condition=data.condition if data else None,
        quantity=_quantity(view, text) if verdict.state is Availability.IN_STOCK else None,
        offers=offers,
        store=NAME,
        lottery_deadline=_deadline(view, page) if verdict.state is Availability.LOTTERY else None,
    )


def _quantity(view: ProductView, text: Evidence | None) -> int | None:
    """残りN点 / "Only N left" in the stock wording read, else in the product block."""
    found = quantity_hint(text.context) if text is not None else None
    if found is None and view.block is not None:
        found = quantity_hint(view.block.text(separator=" ")[: _BLOCK_TEXT_MAX * 4])
    return found


def _structured_evidence(data: ProductData | None) -> Evidence | None:
    if data is None or data.state is None:
        return None
    return Evidence(data.source, data.state, data.token or "", data.reason)


def _verdict_price(stated: ProductData | None, rows: Rows | None, price: int | None) -> int | None:
    """The cheapest orderable variation row's price, else the structured price, else the
    page's."""
    if rows is not None:
        priced = [r.price for r in rows.rows if r.state.orderable and r.price is not None]
        if priced:
            return min(priced)
    if stated is not None and stated.price is not None:
        return stated.price
    return price


def _row_offers(
    rows: Rows | None, url: str, title: str | None, currency: str | None, price: int | None
) -> tuple[Offer, ...]:
    """One offer per variation row; a row that shows no price of its own has the page's."""
    if rows is None:
        return ()
    return tuple(
        Offer(
            store=NAME,
            url=url,
            state=row.state,
            price=row.price if row.price is not None else price,
            currency=currency or "JPY",
            title=f"{title} {row.name}" if title and row.name else row.name or title,
            sku=row.sku,
            variant=row.name or "",
        )
        for row in rows.rows
    )


def _deadline(view: ProductView, page: Page) -> datetime | None:
    scope = view.area()
    return lottery_deadline(scope.text(separator=" ")[:_PRICE_TEXT_MAX], page.headers)


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


@dataclass(frozen=True, slots=True)
class ProductView:
    """Where the main product is stated: its cart form and the block around its h1 (None when
    the page has no such thing; see the module docstring)."""

    tree: LexborHTMLParser
    form: LexborNode | None
    block: LexborNode | None
    asides: Asides  # other products' blocks: nothing in them is read
    forms: tuple[LexborNode, ...] = ()  # every cart form of the page

    @classmethod
    def of(cls, tree: LexborHTMLParser) -> ProductView:
        asides = Asides.of(tree)
        first = tree.css_first(_CART_FORMS)
        # Every cart form is looked up only when the first could be one row's of a SKU table
        # (a page's one cart form, the usual case, spares a second search of the whole page).
        many = first is not None and (asides.holds(first) or in_row(first))
        forms = tuple(tree.css(_CART_FORMS)) if many else (first,) if first is not None else ()
        form = next((f for f in forms if not asides.holds(f)), None)
        return cls(tree, form, _product_block(tree, asides), asides, forms)

    def scopes(self) -> list[LexborNode]:
        """The block (when there is one), then the whole page."""
        root = self.tree.body or self.tree.root
        found = [n for n in (self.block, root) if n is not None]
        return found

    def page(self) -> LexborNode:
        """The whole page (recommendations already removed)."""
        root = self.tree.body or self.tree.root
        assert root is not None  # a parsed document always has a root
        return root

    def area(self) -> LexborNode:
        """The main product area: the block, else the whole page."""
        return self.block if self.block is not None else self.page()

    def aside(self, node: LexborNode) -> bool:
        return self.asides.holds(node)


def _product_block(tree: LexborHTMLParser, asides: Asides) -> LexborNode | None:
    heading = tree.css_first("h1")
    node = heading.parent if heading is not None else None
    for _ in range(_BLOCK_DEPTH):
        if node is None or node.tag in _NEVER_HIDDEN:
            return None
        if _holds_own(node, f"{_PRICE_ZONES}, {_CART_FORMS}", asides):
            return node
        controls = node.css(_CONTROLS)[:MAX_CANDIDATES]
        if any(_stock_control(c) and not asides.holds(c) for c in controls):
            return node
        node = node.parent
    return None


def _holds_own(node: LexborNode, selector: str, asides: Asides) -> bool:
    """`node` holds an element matching `selector` that is not another product's."""
    return any(not asides.holds(found) for found in node.css(selector)[:_OWN_CHECKS])


def _stock_control(node: LexborNode) -> bool:
    label = control_label(node)
    return len(label) <= _LABEL_MAX * 4 and classify_wording(label) is not None


def _body_text(tree: LexborHTMLParser) -> str:
    root = tree.body or tree.root
    return root.text(separator=" ") if root is not None else ""


# --- visible wording ---------------------------------------------------------------------------


def _main_control(view: ProductView, search_page: bool) -> Evidence | None:
    """The main product's buy control: the cart form's, then the product block's; with
    `search_page` (no structured state to go by) the first stating control anywhere. An
    enabled control's caption states the state; a disabled buy control says out of stock."""
    scopes: list[LexborNode | None] = [view.form, view.block]
    if search_page:
        scopes.append(view.page())
    for scope in scopes:
        if scope is None:
            continue
        first = scope.css_first(_CONTROLS)  # a search that stops there: the usual answer
        if first is None:
            continue
        found = _enabled_control(first, view.asides)
        if found is None:
            found = _first_control(scope.css(_CONTROLS)[:MAX_CANDIDATES], view.asides)
        if found is not None:
            return found
    return None


def first_read(
    scope: LexborNode, selector: str, read: Callable[[LexborNode], T | None]
) -> T | None:
    """`read` of the first element matching `selector` in `scope` (at most `MAX_CANDIDATES` of
    them) that gives something. The first element is looked up alone, by a search that stops
    there: most pages answer with it, which spares a search of the whole page."""
    first = scope.css_first(selector)
    if first is None:
        return None
    found = read(first)
    if found is not None:
        return found
    for node in scope.css(selector)[1:MAX_CANDIDATES]:
        found = read(node)
        if found is not None:
            return found
    return None


def _enabled_control(node: LexborNode, asides: Asides) -> Evidence | None:
    """The evidence of an enabled control stating a state (not another product's), or None."""
    found = control_state(node)
    if found is None or found[1].startswith("disabled:") or asides.holds(node):
        return None
    return Evidence("button", found[0], found[1], f"button:{found[1]}")


def _first_control(nodes: list[LexborNode], asides: Asides) -> Evidence | None:
    """The first enabled control stating a state; else the first disabled buy control (other
    products' controls left out)."""
    disabled_buy: Evidence | None = None
    for node in nodes:
        found = control_state(node)
        if found is None or asides.holds(node):
            continue
        state, phrase = found
        if not phrase.startswith("disabled:"):
            return Evidence("button", state, phrase, f"button:{phrase}")
        if disabled_buy is None:
            disabled_buy = Evidence("button", state, phrase, f"button:{phrase}")
    return disabled_buy


def _area_text(view: ProductView, rows: Rows | None, read_body: bool) -> Evidence | None:
    """What the main product area's wording states: its stock labels (the block's, then the
    page's; not a variation row's, not a store-pickup widget's), then the own text (without the
    controls' captions) of the cart form, of the element around it, and of the product block;
    with `read_body`, the page's text from its h1 on."""
    skip = rows.zone if rows is not None else None

    def label(node: LexborNode) -> Evidence | None:
        found = _label_evidence(node, skip)
        return found if found is not None and not view.asides.holds(node) else None

    for scope in view.scopes():
        found = first_read(scope, _STOCK_LABELS, label)
        if found is not None:
            return found
    around_form = view.form.parent if view.form is not None else None
    for zone in (view.form, around_form, view.block):
        if zone is None or zone.tag in _NEVER_HIDDEN or (skip is not None and _within(zone, skip)):
            continue  # a form inside the variation table is one row's
        text = zone.text(separator=" ")
        if len(text) <= _BLOCK_TEXT_MAX * 4 and len(normalise(text)) <= _BLOCK_TEXT_MAX:
            own = _without_asides(zone, normalise(text), skip, view.asides)
            found = _text_evidence(_without_captions(zone, own), Strength.STRONG)
            if found is not None:
                return found
    if read_body:
        return _text_evidence(_text_from_h1(view.tree), Strength.STRONG)
    return None


def _text_from_h1(tree: LexborHTMLParser) -> str:
    """The page's visible text from its h1 on, `_BODY_TEXT_MAX` characters of it: the product
    states itself beside its name, and reading a whole megabyte of text costs more than the
    parse (and mostly reads other things)."""
    text = normalise(_body_text(tree))
    heading = tree.css_first("h1")
    start = text.find(normalise(heading.text(separator=" "))) if heading is not None else -1
    start = max(start, 0)
    return text[start : start + _BODY_TEXT_MAX]


def _label_evidence(node: LexborNode, skip: LexborNode | None) -> Evidence | None:
    text = node.text(separator=" ")
    if len(text) > _LABEL_MAX * 4 or len(normalise(text)) > _LABEL_MAX:
        return None
    if _STORE_STOCK.search(text) or (skip is not None and _within(node, skip)):
        return None
    if _in_store_widget(node) or _template_badge(node):
        return None
    return _text_evidence(text, Strength.WEAK)


def _without_asides(
    zone: LexborNode, text: str, rows: LexborNode | None, view_asides: Asides
) -> str:
    """A zone's text without what is not about ordering the product online: the variation rows
    and option pickers (their wording is one option's: "M - Sold out"), store-pickup widgets,
    template badges and other products' blocks."""
    asides = [
        n
        for n in zone.css("[class], [id]")
        if _STORE_WIDGET.search(_class_and_id(n)) or _template_badge(n) or view_asides.starts(n)
    ]
    asides.extend(zone.css(_OPTION_PICKERS))
    if rows is not None:
        asides.append(rows)
    for node in asides:
        text = text.replace(normalise(node.text(separator=" ")), " ", 1)
    return text


def _template_badge(node: LexborNode) -> bool:
    """A sold-out badge that shop themes print on every page and show by a class on its
    container (Shopify's `price__badge-sold-out` inside `price--sold-out`): it counts only when
    a container says sold out too."""
    own = _class_and_id(node)
    if "badge" not in own or not _SOLD_OUT_CLASS.search(own):
        return False
    current = node.parent
    for _ in range(_BADGE_DEPTH):
        if current is None or current.tag in _NEVER_HIDDEN:
            return True
        if _SOLD_OUT_CLASS.search(_class_and_id(current)):
            return False
        current = current.parent
    return True


def _in_store_widget(node: LexborNode) -> bool:
    """Inside a store-pickup / shop-stock widget (stock in a physical shop, not online)."""
    current: LexborNode | None = node
    for _ in range(_STORE_WIDGET_DEPTH):
        if current is None or current.tag in _NEVER_HIDDEN:
            return False
        if _STORE_WIDGET.search(_class_and_id(current)):
            return True
        current = current.parent
    return False


def _within(node: LexborNode, outer: LexborNode) -> bool:
    current: LexborNode | None = node
    while current is not None:
        if current.mem_id == outer.mem_id:
            return True
        current = current.parent
    return False


def _text_evidence(text: str, strength: Strength) -> Evidence | None:
    found = classify_wording(text, strength)
    if found is None:
        return None
    state, phrase = found
    return Evidence("text", state, phrase, f"text:{phrase}", normalise(text[: _LABEL_MAX * 4]))


def _without_captions(scope: LexborNode, text: str) -> str:
    """`text` without the captions of the controls inside `scope` (a button is a control, not
    wording about the product)."""
    norm = normalise(text)
    for node in scope.css(_CONTROLS)[:MAX_CANDIDATES]:
        caption = normalise(control_label(node))
        if caption:
            norm = norm.replace(caption, " ", 1)
    return norm


def _live_buy_controls(tree: LexborHTMLParser) -> int:
    count = 0
    for node in tree.css(_CONTROLS)[:MAX_CANDIDATES]:
        found = control_state(node)
        if found and found[0] is Availability.IN_STOCK:
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
            if candidates is None or view.asides.holds(node):
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
    if _REFERENCE_CLASS.search(_class_and_id(node)):
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
            if _price_zone_kind(node) != "sale" or view.asides.holds(node):
                continue
            text = node.text(separator=" ")
            if len(text) <= _PRICE_ZONE_MAX * 4 and len(normalise(text)) <= _PRICE_ZONE_MAX:
                price = parse_price(text, currency)
                if price is not None:
                    return price
    return None


ADAPTER = StoreAdapter(name=NAME, parse_product=parse_product)
