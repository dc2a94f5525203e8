"""Variation (SKU) tables: pages that list a product's colours, sizes or editions as rows, each
with its own state, price and buy button.

One sold-out row must not decide for the product: each row becomes an `Offer` (title, SKU,
price, state) and the product is orderable when any row is (a watch's `variant`, `max_price` and
other conditions then pick among the rows). A table of rows is found in the main product area:

- rows (`tr`, `li`, or children whose class says item/row/sku) of a container whose class or id
  says sku, variation, variant, option, lineup, type, kind, size, color (or any table inside the
  main cart form), when at least two rows state something (wording or a buy control);
- or the options of a select in the cart form when at least one option states a state
  (レッド（在庫なし）): the others are orderable when the page's main buy control is.

A row's state is its buy control's (a disabled one is out of stock) reconciled with its own
wording (the short row text: weak phrases count), so "在庫なし" beside a leftover button is out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from selectolax.lexbor import LexborNode

from watcher.core.model import Availability
from watcher.stores._controls import CONTROLS, control_state, disabled
from watcher.stores._schema_org import best_state
from watcher.stores._text import (
    choose_price,
    classify_wording,
    clean_title,
    normalise,
    price_candidates,
)

# Class or id words naming a variation table (a list or table, or its wrapper).
_ZONE_WORDS = re.compile(
    r"sku|variation|variant|bariation|option|lineup|line-up|type-?list|kind|size|colou?r"
    r"|model-?list|edition|shurui",
    re.IGNORECASE,
)
_LIST_TAGS = "table, ul, ol, dl"
CART_FORMS = (
    "form[action*=cart i], form[action*=basket i], form[action*=kago i], form[action*=buy i],"
    " form[id*=cart i], form[class*=cart i]"
)
_ROW_DEPTH = 4  # a row's cart form sits at most this deep inside it
# Rows drawn as divs: only under a container whose class says so plainly.
_NAMED_DIVS = (
    "div[class*=sku i], div[id*=sku i], div[class*=variation i], div[id*=variation i],"
    " div[class*=variant i], div[id*=variant i]"
)
_ZONE_SCAN = 250
_LISTS = "table, ul, ol"
# Controls whose caption is not part of the row's text (an input's value, an image's alt).
_SILENT_CONTROLS = (
    "input, img[alt]"  # unnamed: rows count only when each states a state beside a price
)
_ROWS = "[class*=row i], [class*=item i], [class*=sku i]"
_ROW_TEXT_MAX = 300
_ROW_LIMIT = 200  # rows read per table: a hostile page cannot make this slow
_ZONE_LIMIT = 60
_SKU = re.compile(
    r"(?:品番|型番|SKU|JAN|商品コード|商品番号|品目コード|item (?:no|code)\.?)\s*[:：]?\s*"
    r"([A-Za-z0-9][A-Za-z0-9\-_./]{2,29})",
    re.IGNORECASE,
)
_PROMPT = re.compile(
    r"[-=\s]*(?:選択(?:して(?:ください|下さい))?|お選びください|選んでください|choose.*|select.*"
    r"|please (?:choose|select).*)[-=\s]*",
    re.IGNORECASE,
)
_NAME_NOISE = re.compile(r"[¥￥]\s*[\d,]+|[\d,]+\s*円|\(?税込\)?|\(?税抜\)?")


@dataclass(frozen=True, slots=True)
class Row:
    """One variation: its name (option text), SKU, price and state."""

    name: str | None
    sku: str | None
    price: int | None
    state: Availability
    phrase: str


@dataclass(frozen=True, slots=True)
class Rows:
    rows: tuple[Row, ...]
    zone: (
        LexborNode  # where the rows were read: stock labels in it are the rows', not the product's
    )

    @property
    def state(self) -> Availability:
        return best_state(r.state for r in self.rows) or Availability.UNKNOWN

    @property
    def summary(self) -> str:
        orderable = [r for r in self.rows if r.state.orderable]
        return f"{len(orderable)} of {len(self.rows)} orderable"


class RowsPlace(Protocol):
    """Where a page's variation tables may be: what `generic.ProductView` knows."""

    @property
    def form(self) -> LexborNode | None: ...

    @property
    def block(self) -> LexborNode | None: ...

    @property
    def forms(self) -> tuple[LexborNode, ...]: ...

    def page(self) -> LexborNode: ...

    def aside(self, node: LexborNode) -> bool: ...


def variation_rows(place: RowsPlace, default: Availability | None) -> Rows | None:
    """The variation rows of the main product, None when it has no such table.

    Looked for, in order: a table whose rows each hold a cart form; tables and lists named as
    variations (anywhere on the page, the first 250; div rows under a div named sku / variation
    / variant in the product block or cart form); the cart form's tables; unnamed price lists of
    the product block; the options of a select in the cart form or block. Other products'
    blocks (`place.aside`) are never read.
    `default` is what the rest of the page says (the main buy control, else structured data):
    a row that states nothing itself is orderable when `default` is.
    """
    fallback = default if default is not None and default.orderable else None
    return (
        _per_row_forms(place)
        or _named_tables(place, fallback)
        or _price_lists(place)
        or _select_options(place, fallback)
    )


def _per_row_forms(place: RowsPlace) -> Rows | None:
    zone = _cart_form_rows(place.forms)
    if zone is None or place.aside(zone):
        return None
    rows = _table_rows(zone, None)
    return Rows(rows, zone) if rows is not None else None


def _named_tables(place: RowsPlace, fallback: Availability | None) -> Rows | None:
    named = [z for z in place.page().css(_LIST_TAGS)[:_ZONE_SCAN] if _named(z)]
    for holder in (place.block, place.form):
        if holder is not None:
            named.extend(holder.css(_NAMED_DIVS)[:_ZONE_LIMIT])
    if place.form is not None:
        named.extend(place.form.css("table")[:_ZONE_LIMIT])
    for zone in named[:_ZONE_LIMIT]:
        rows = _table_rows(zone, fallback)
        if rows is not None and not place.aside(zone):
            return Rows(rows, zone)
    return None


def _price_lists(place: RowsPlace) -> Rows | None:
    lists = place.block.css(_LISTS)[:_ZONE_LIMIT] if place.block is not None else []
    for zone in lists:
        rows = _table_rows(zone, None, priced=True)
        if rows is not None and not place.aside(zone):
            return Rows(rows, zone)
    return None


def _select_options(place: RowsPlace, fallback: Availability | None) -> Rows | None:
    for holder in (place.form, place.block):
        select = holder.css_first("select") if holder is not None else None
        if select is not None:
            options = _option_rows(select, fallback)
            if options is not None:
                return Rows(options, select)
    return None


def _cart_form_rows(forms: tuple[LexborNode, ...]) -> LexborNode | None:
    """The table or list whose rows each hold their own cart form (a SKU table with a cart
    button per row), None when the page has no such thing."""
    rows: dict[int, LexborNode] = {}
    for form in forms[:_ROW_LIMIT]:
        row = _ancestor(form, ("tr", "li"))
        if row is not None:
            rows.setdefault(row.mem_id, row)
    parents = {r.parent.mem_id: r.parent for r in rows.values() if r.parent is not None}
    if len(rows) < 2 or len(parents) != 1:
        return None
    return next(iter(parents.values()))


def in_row(form: LexborNode) -> bool:
    """The form sits in a table row or list item (as a SKU table's per-row cart forms do)."""
    return _ancestor(form, ("tr", "li")) is not None


def _ancestor(node: LexborNode, tags: tuple[str, ...]) -> LexborNode | None:
    current = node.parent
    for _ in range(_ROW_DEPTH):
        if current is None:
            return None
        if current.tag in tags:
            return current
        current = current.parent
    return None


def _named(node: LexborNode | None) -> bool:
    if node is None:
        return False
    attrs = node.attributes
    return _ZONE_WORDS.search(f"{attrs.get('class') or ''} {attrs.get('id') or ''}") is not None


def _inside(node: LexborNode, outer: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.mem_id == outer.mem_id:
            return True
        parent = parent.parent
    return False


def _table_rows(
    zone: LexborNode, default: Availability | None, priced: bool = False
) -> tuple[Row, ...] | None:
    """Rows of one zone: its table rows (not a header row), else its list items, else its
    innermost row-like children. At least one must state something itself, and at least two
    must have a state (a silent row takes `default`). `priced`: only rows stating a state and a
    price count (a list not named as variations must look like one)."""
    for selector in ("tr", "li", _ROWS):
        if priced and selector == _ROWS:
            return None
        nodes = zone.css(selector)[:_ROW_LIMIT]
        if selector == _ROWS:
            nodes = [n for n in nodes if n.css_first(_ROWS) is None]
        nodes = [n for n in nodes if not (n.tag == "tr" and n.css_first("td") is None)]
        if len(nodes) < 2:
            continue
        stated = [_row(node) for node in nodes]
        if priced:
            stated = [r if r is not None and r.price is not None else None for r in stated]
        if not any(stated):
            return None
        found = [r or _silent_row(n, default) for r, n in zip(stated, nodes, strict=True)]
        rows = tuple(r for r in found if r is not None)
        return rows if len(rows) >= 2 else None
    return None


def _silent_row(node: LexborNode, default: Availability | None) -> Row | None:
    text = normalise(node.text(separator=" "))
    if default is None or not text or len(text) > _ROW_TEXT_MAX:
        return None
    price = choose_price(price_candidates(text))
    return Row(_name(node, text), _sku(node, text), price, default, "row beside the buy button")


def _row(node: LexborNode) -> Row | None:
    raw = node.text(separator=" ")
    if not raw or len(raw) > _ROW_TEXT_MAX * 4:
        return None
    text = normalise(raw)
    if not text or len(text) > _ROW_TEXT_MAX:
        return None
    if classify_wording(text) is None and node.css_first(_SILENT_CONTROLS) is None:
        return None  # says nothing, and no control whose caption is not in its text
    control = next((s for c in node.css(CONTROLS) if (s := control_state(c)) is not None), None)
    worded = classify_wording(_without_controls(node, text))
    decided = _row_state(worded, control)
    if decided is None:
        return None
    state, phrase = decided
    return Row(
        _name(node, text), _sku(node, text), choose_price(price_candidates(text)), state, phrase
    )


def _row_state(
    worded: tuple[Availability, str] | None, control: tuple[Availability, str] | None
) -> tuple[Availability, str] | None:
    """The row's own wording and control; when they disagree the row is not orderable."""
    if worded is None or control is None:
        return worded or control
    if worded[0].orderable and control[0].orderable:
        return worded if worded[0] is not Availability.IN_STOCK else control
    return worded if not worded[0].orderable else control


def _without_controls(node: LexborNode, text: str) -> str:
    for control in node.css(CONTROLS):
        caption = normalise(control.text(separator=" ") or control.attributes.get("value") or "")
        if caption:
            text = text.replace(caption, " ", 1)
    return text


def _name(node: LexborNode, text: str) -> str | None:
    cell = node.css_first("th, td, .name, [class*=name i], label, [class*=option i]")
    source = normalise(cell.text(separator=" ")) if cell is not None else text
    return clean_title(_NAME_NOISE.sub(" ", source), limit=120)


def _sku(node: LexborNode, text: str) -> str | None:
    for attr in ("data-sku", "data-item-code", "data-code", "data-jan"):
        value = node.attributes.get(attr)
        if value and value.strip():
            return value.strip()[:40]
    match = _SKU.search(text)
    return match.group(1) if match else None


def _is_prompt(option: LexborNode) -> bool:
    """ "選択してください" and the like: a prompt, not a variation."""
    value = (option.attributes.get("value") or "").strip()
    if not value or value.startswith("_") or value in ("0", "-1"):
        return True
    return _PROMPT.fullmatch(normalise(option.text(separator=" "))) is not None


def _option_rows(select: LexborNode, default: Availability | None) -> tuple[Row, ...] | None:
    """A select's options as rows (see the module docstring)."""
    options = [o for o in select.css("option")[:_ROW_LIMIT] if not _is_prompt(o)]
    stated = 0
    rows: list[Row] = []
    for option in options:
        text = normalise(option.text(separator=" ")[: _ROW_TEXT_MAX * 4])[:_ROW_TEXT_MAX]
        worded = classify_wording(text)
        if disabled(option):
            worded = (
                worded
                if worded and not worded[0].orderable
                else (
                    Availability.OUT_OF_STOCK,
                    "disabled option",
                )
            )
        if worded is not None:
            stated += 1
            state, phrase = worded
        elif default is not None:
            state, phrase = default, "option beside the buy button"
        else:
            continue
        price = choose_price(price_candidates(text))
        rows.append(
            Row(clean_title(_NAME_NOISE.sub(" ", text), limit=120), None, price, state, phrase)
        )
    return tuple(rows) if stated and len(rows) >= 2 else None
