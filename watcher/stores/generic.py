"""Any shop without its own adapter: read what the page states, most trustworthy source first.

Precedence (the first rule that gives a state decides; `reason` names it):

1. a watch's own `TextRules` (`rules:<phrase>`), applied by `apply_rules` / `parse_with_rules`
   (the registry's `parse_page` applies them over every adapter);
2. a block page (captcha, robot check, 429/503/403) -> unknown, `blocked:<why>`;
3. JSON-LD Product/Offer (`jsonld:InStock`);
4. microdata and OpenGraph, read together, the more orderable wins (`microdata:OutOfStock`,
   `og:instock`); see `_schema_org.Structured.decided`;
5. a page with no product markup that looks like a listing (many buy buttons, or many prices on a
   search/category page) -> unknown, `not a product page`;
6. visible wording, scripts, styles, templates and hidden elements ignored, in this order:
   stock labels (elements whose id/class says stock/availability/zaiko/soldout) and the text of a
   cart form (`text:在庫切れ`); then buy controls in document order (`button:カートに入れる`;
   a disabled control never counts as buyable, and a page whose only buy control is disabled
   reads out of stock, `button:disabled:<label>`); then the whole visible text (`text:<phrase>`);
7. nothing -> unknown, `no signal`.

When structured data and visible wording disagree about whether the product can be ordered,
structured data still decides and the reason ends with `; conflict: text said <phrase>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.model import Availability, Observation, Page, TextRules
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import blocked_observation, detect_block
from watcher.stores._schema_org import ProductData, Structured, read_structured
from watcher.stores._text import (
    classify_wording,
    clean_title,
    normalise,
    parse_price,
    quantity_hint,
)

NAME = "generic"

_INVISIBLE = (
    "script, style, noscript, template, svg, iframe, object, [hidden], input[type=hidden i],"
    ' [style*="display:none" i], [style*="display: none" i]'
)
_STOCK_LABELS = (
    "[id*=stock i], [class*=stock i], [id*=availability i], [class*=availability i],"
    " [id*=zaiko i], [class*=zaiko i], [id*=soldout i], [class*=soldout i],"
    " [class*=sold-out i], [class*=sold_out i], [itemprop=availability]"
)
_CART_FORMS = "form[action*=cart i], form[action*=basket i], form[id*=cart i], form[class*=cart i]"
_CONTROLS = (
    "button, input[type=submit i], input[type=button i], input[type=image i],"
    " a[class*=cart i], a[id*=cart i], a[class*=buy i], a[id*=buy i], [role=button]"
)
_PRICE_ZONES = "[itemprop=price], [id*=price i], [class*=price i]"
_LABEL_MAX = 200  # a "label" longer than this is a container, not a stock label
_FORM_MAX = 600
_PRICE_ZONE_MAX = 120
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
    lower = html.lower()
    kept: list[str] = []
    pos = 0
    while (found := _CODE_OPEN.search(html, pos)) is not None:
        tag_end = html.find(">", found.end())
        close = lower.find(f"</{found.group(1).lower()}", max(tag_end, found.end()))
        if tag_end < 0 or close < 0:
            break
        if "ld+json" in lower[found.start() : tag_end]:
            kept.append(html[pos:close])
        else:
            kept.append(html[pos : found.start()])
        pos = close
    kept.append(html[pos:])
    return "".join(kept)


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
    """Read an already parsed, not blocked page. Mutates `tree` (invisible nodes are removed)."""
    structured = read_structured(tree)
    facts = structured.facts()
    decided = structured.decided()
    _strip_invisible(tree)
    title = _title(tree, structured)
    if decided is not None and decided.state is not None:
        # Only the specific signals are worth a conflict note; the whole text is not read.
        near = _label_signal(tree) or _control_signal(tree)
        return _from_structured(decided, near, title)
    signal = visible_signal(tree)
    if not structured.is_product and looks_like_listing(tree, page.url, title):
        return Observation.unknown("not a product page", store=NAME, title=title)
    if signal is None:
        return Observation.unknown("no signal", store=NAME, title=title, price=_price(tree, facts))
    return Observation(
        state=signal.state,
        reason=signal.reason,
        price=_price(tree, facts),
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


# --- visible wording ---------------------------------------------------------------------------


def _strip_invisible(tree: LexborHTMLParser) -> None:
    for node in tree.css(_INVISIBLE):
        node.decompose()


def _body_text(tree: LexborHTMLParser) -> str:
    root = tree.body or tree.root
    return root.text(separator=" ") if root is not None else ""


def visible_signal(tree: LexborHTMLParser) -> Signal | None:
    """Stock wording from the visible page, in the order the module docstring states."""
    return _label_signal(tree) or _control_signal(tree) or _text_signal(_body_text(tree), "text")


def _label_signal(tree: LexborHTMLParser) -> Signal | None:
    for node, limit in _labels(tree):
        text = node.text(separator=" ")
        if len(text) > limit * 4 or len(normalise(text)) > limit:
            continue
        found = _text_signal(text, "text")
        if found:
            return found
    return None


def _labels(tree: LexborHTMLParser) -> Iterator[tuple[LexborNode, int]]:
    for node in tree.css(_STOCK_LABELS):
        yield node, _LABEL_MAX
    for node in tree.css(_CART_FORMS):
        yield node, _FORM_MAX


def _text_signal(text: str, kind: str) -> Signal | None:
    found = classify_wording(text)
    if found is None:
        return None
    state, phrase = found
    return Signal(state, f"{kind}:{phrase}", phrase, normalise(text)[:500])


def _control_label(node: LexborNode) -> str:
    attrs = node.attributes
    if node.tag == "input":
        return attrs.get("value") or attrs.get("alt") or ""
    return node.text(separator=" ") or attrs.get("aria-label") or attrs.get("title") or ""


def _disabled(node: LexborNode) -> bool:
    attrs = node.attributes
    classes = (attrs.get("class") or "").lower()
    return (
        "disabled" in attrs
        or (attrs.get("aria-disabled") or "").lower() == "true"
        or "disabled" in classes.split()
    )


def _control_signal(tree: LexborHTMLParser) -> Signal | None:
    disabled_buy: Signal | None = None
    for node in tree.css(_CONTROLS):
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
    for node in tree.css(_CONTROLS):
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


def _price(tree: LexborHTMLParser, facts: ProductData | None) -> int | None:
    if facts is not None and facts.price is not None:
        return facts.price
    currency = facts.currency if facts else None
    for node in tree.css(_PRICE_ZONES):
        text = node.text(separator=" ")
        if len(text) > _PRICE_ZONE_MAX * 4 or len(normalise(text)) > _PRICE_ZONE_MAX:
            continue
        price = parse_price(text, currency)
        if price is not None:
            return price
    return None


ADAPTER = StoreAdapter(name=NAME, parse_product=parse_product)
