"""Reading shop text: prices, stock wording and quantity hints, in Japanese and English.

Every function normalises its input with NFKC first, so full-width digits (１，９８０), the
full-width yen sign (￥) and full-width letters read like their ASCII forms.

Prices are integers. For JPY that is whole yen: yen have no minor unit, so "29.800" is a thousands
group (29800), never 29.8. Which of several amounts in one text is the price is `choose_price`'s
rule (points, shipping and reference prices skipped, 税込 before 税抜). For any other
currency the amount is rounded half-up to a whole main unit ($35.99 -> 36): the watcher compares
prices against a watch's integer `max_price`, and cents never decide a restock.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from watcher.core.model import Availability
from watcher.stores._wording import Strength, read_wording

TITLE_MAX = 300
_MAX_DIGITS = 10  # a price longer than this is an id or a phone number, not a price
# Above this no shop price is real (¥100,000,000): a placeholder, an id or a hostile value.
MAX_PRICE = 100_000_000
# Characters of one text searched for prices: a price element or a labelled price is short, and a
# megabyte of "¥1 ¥1 ..." must not become a million candidates.
PRICE_SCAN_MAX = 20_000

# --- normalising -------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, then every run of whitespace as one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


_FIRST_SHOWN = re.compile(r"\s*+(.)", re.DOTALL)


def first_character(text: str) -> str:
    """`text.lstrip()[:1]` without copying the text: its first character that is not
    whitespace, or ""."""
    found = _FIRST_SHOWN.match(text)
    return found.group(1) if found is not None else ""


def clean_title(text: str | None, limit: int = TITLE_MAX) -> str | None:
    """A title as shown to people: normalised, capped at `limit` characters, None when empty."""
    if not text:
        return None
    title = normalise(text)
    if len(title) > limit:
        title = title[: limit - 1].rstrip() + "…"
    return title or None


# --- prices ------------------------------------------------------------------------------------

# 1,980 / 1980 / 1980.5; in yen also "29.800", a thousands group written with dots. The digit
# runs are possessive and a yen amount starts where a digit run does, so a long run of digits
# with no yen sign is given up at once instead of being retried from every digit in it.
_PLAIN_NUMBER = r"(\d{1,3}(?:,\d{3})++|\d++)(?:\.(\d++))?"
_YEN_NUMBER = r"(?<!\d)(\d{1,3}(?:,\d{3})++|\d{1,3}(?:\.\d{3})++(?![\d,])|\d++)(?:\.(\d++))?"
# Runs of digits, commas and dots longer than any price are blanked before amounts are looked
# for: they are ids, codes or garbage, and each place inside them could start a match.
_LONG_NUMBER = re.compile(r"(?<![\d,.])[\d,.]{40,}+")
# Yen amounts as shops print them: ¥1,980 / 1,980円 / JPY 1980 / 1980 JPY (after NFKC, ￥ is ¥).
_YEN_AMOUNT = re.compile(
    r"(?:[¥\\]|JPY)\s*" + _YEN_NUMBER + r"|" + _YEN_NUMBER + r"\s*(?:円|JPY)", re.IGNORECASE
)
_ANY_NUMBER = re.compile(_PLAIN_NUMBER)
_DOT_GROUPED = re.compile(r"\d{1,3}(?:\.\d{3})+")

# The word just before an amount that says what it is; the last one within reach decides.
# Longer words first, so 通常価格 is a reference price and not the plain 価格.
_PRICE_LABELS = re.compile(
    r"(?P<reference>メーカー希望小売価格|希望小売価格|参考小売価格|参考基準価格|参考上代|参考価格"
    r"|当店通常価格|通常販売価格|通常価格|標準価格|定価|元値|旧価格|市場価格|list price"
    r"|regular price|reference price|\bmsrp\b|\brrp\b|\bwas\b)"
    r"|(?P<points>ポイント|\bpoints?\b|\bpt\b)"
    r"|(?P<shipping>配送料|送料(?!無料|込|別)|shipping|postage|delivery)"
    r"|(?P<sale>販売価格|特価|セール価格|価格|本体|売価|\bprice\b|\bsale\b|\bnow\b)",
    re.IGNORECASE,
)
_LABEL_WINDOW = 30
_LABEL_REACH = 12  # at most this many characters between a label and its amount
_POINTS_REACH = 3  # "ポイント 298円" only right before: "ポイント10倍 価格 ¥980" is a price
# The words right after an amount: points ("298pt", "298円相当") or a tax note.
_AFTER_POINTS = re.compile(r"\s*(?:pt\b|ポイント|p\b|相当(?:ポイント|分)?)", re.IGNORECASE)
_AFTER_TAX = re.compile(
    r"\s*[(（]?\s*(?:(?P<tax_in>税込|内税|tax incl|incl\.? tax)"
    r"|(?P<tax_ex>税抜|税別|外税|\+\s*税|\+\s*tax|tax excl|excl\.? tax))",
    re.IGNORECASE,
)
_BEFORE_TAX = re.compile(r"(?P<tax_in>税込)|(?P<tax_ex>税抜|税別)")
_RANGE_SEP = re.compile(r"^\s*[~〜\-–ー]\s*$")


@dataclass(frozen=True, slots=True)
class PriceCandidate:
    """One yen amount found in shop text, and what the words around it say it is.

    `kind` is "sale" (the price to pay; also any unlabelled amount), "reference" (定価, 参考価格,
    a struck-out price), "points", "shipping" or "range_high" (the top of "1,980円～2,980円").
    `tax` is "in", "ex" or None when the text does not say; `labelled` is True when a word
    before the amount said what it is (価格, 販売価格, 定価, 送料...).
    """

    value: int
    kind: str = "sale"
    tax: str | None = None
    labelled: bool = False


def parse_price(text: str | None, currency: str | None = None) -> int | None:
    """The price a buyer pays, read from shop text, as an integer (unit: see the module docstring).

    Without `currency` (or with "JPY") only yen amounts count: a yen sign, 円 or JPY must stand
    beside the number, so "$35.99" gives None; several yen amounts are labelled by
    `price_candidates` and `choose_price` picks one. With another currency the first number is
    taken ("$35.99", currency="USD" -> 36).
    """
    if not text:
        return None
    norm = _without_long_numbers(normalise(text[:PRICE_SCAN_MAX]))
    if _is_yen(currency):
        return choose_price(price_candidates(norm))
    match = _ANY_NUMBER.search(norm)
    return _to_int(match.group(1), match.group(2)) if match else None


def price_candidates(text: str, reference: bool = False) -> list[PriceCandidate]:
    """Every yen amount in normalised `text`, labelled by the words before and after it.

    `reference=True` marks them all as reference prices (text the page struck out).
    """
    found: list[PriceCandidate] = []
    previous_end = 0
    text = _without_long_numbers(text[:PRICE_SCAN_MAX])
    for match in _YEN_AMOUNT.finditer(text):
        whole, fraction = match.group(1, 2) if match.group(1) else match.group(3, 4)
        value = _to_int(whole, fraction)
        if value is None:
            continue
        before = text[previous_end : match.start()]
        after = text[match.end() : match.end() + 20]
        points = _AFTER_POINTS.match(after)
        tax = _AFTER_TAX.match(after)
        label = _label_kind(before)
        if points is not None:
            kind = "points"
        elif found and _RANGE_SEP.match(before):
            kind = "range_high"
        else:
            kind = "reference" if reference else label or "sale"
        found.append(PriceCandidate(value, kind, _tax_note(tax, before), label is not None))
        suffix = points or tax
        previous_end = match.end() + (suffix.end() if suffix else 0)
    return found


def _without_long_numbers(text: str) -> str:
    return _LONG_NUMBER.sub(" ", text) if len(text) >= 40 else text


def choose_price(candidates: list[PriceCandidate]) -> int | None:
    """The amount a buyer pays among labelled candidates.

    Points, shipping and the top of a range never count. Reference prices (定価, 参考価格, struck
    out) count only when nothing else is shown: a bookshop's lone "定価 1,980円" is what one pays.
    Of the rest the first tax-included amount wins, then the first without a tax note, then the
    first tax-excluded one (Japanese shops must show the tax-included total, so an unmarked amount
    beside a 税抜 one is that total). A range ("¥1,980〜", "1,980円～2,980円") gives its low end,
    as schema.org's AggregateOffer lowPrice does: the cheapest way to buy the product.
    """
    usable = [c for c in candidates if c.kind in ("sale", "reference")]
    selling = [c for c in usable if c.kind == "sale"] or usable
    for wanted in ("in", None, "ex"):
        hit = next((c for c in selling if c.tax == wanted), None)
        if hit is not None:
            return hit.value
    return None


def _label_kind(before: str) -> str | None:
    """The kind the nearest label within reach before an amount names, None without one."""
    window = before[-_LABEL_WINDOW:]
    label = _last(_PRICE_LABELS, window)
    if label is None or label.lastgroup is None:
        return None
    gap = len(window) - label.end()
    reach = _POINTS_REACH if label.lastgroup == "points" else _LABEL_REACH
    return label.lastgroup if gap <= reach else None


def _tax_note(after: re.Match[str] | None, before: str) -> str | None:
    if after is not None:
        return "in" if after.group("tax_in") else "ex"
    note = _last(_BEFORE_TAX, before[-_LABEL_REACH:])
    if note is None:
        return None
    return "in" if note.group("tax_in") else "ex"


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(text):  # noqa: B007 - the last match is wanted
        continue
    return found


# A tax note after a structured price: "29,800円(税込)", "29800 (tax incl.)".
_STRUCTURED_NOTE = re.compile(
    r"\s*[(（]?\s*(?:税込|税抜|税別|内税|tax incl\.?|incl\.? tax)\s*[)）]?\s*$", re.IGNORECASE
)


def parse_amount(value: object, currency: str | None = "JPY") -> int | None:
    """A price from structured data (JSON-LD `price`, microdata `content`): "4516", 4516.0,
    "1,980", "¥29,800", "29,800円(税込)"; in yen (or with no currency) "29.800" is 29800, since
    yen have no decimals.

    Returns None for anything that is not a plain non-negative amount.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        amount = Decimal(str(value))
        return _round(amount) if amount.is_finite() and 0 <= amount <= MAX_PRICE else None
    if not isinstance(value, str):
        return None
    text = _STRUCTURED_NOTE.sub("", normalise(value))
    text = text.lstrip("¥$€£ ").removesuffix("円").removesuffix("JPY").strip()
    if _is_yen(currency) and _DOT_GROUPED.fullmatch(text):
        text = text.replace(".", "")
    text = text.replace(",", "")
    if len(text) > _MAX_DIGITS + 6:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
        return None
    return _round(amount)


def _is_yen(currency: str | None) -> bool:
    return currency is None or currency.strip().upper() == "JPY"


def _to_int(whole: str, fraction: str | None) -> int | None:
    digits = whole.replace(",", "").replace(".", "")  # dots in `whole` only in a yen group
    if len(digits) > _MAX_DIGITS:
        return None
    amount = Decimal(f"{digits}.{fraction}" if fraction else digits)
    return _round(amount) if amount <= MAX_PRICE else None


def _round(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- stock wording -----------------------------------------------------------------------------

# Characters of one text read for stock wording: far more than a product page shows, and a bound
# on the cost of a hostile page's megabytes of text.
WORDING_SCAN_MAX = 200_000


def classify_wording(
    text: str | None, strength: Strength = Strength.WEAK
) -> tuple[Availability, str] | None:
    """The stock state this text states, and the phrase that said it; None when it says nothing.

    The phrases are the tables of `_wording` (`strength=STRONG` for running text: weak phrases
    such as a bare 予約する count on labels and buttons only). "在庫ありません" is out of stock
    and "not in stock" is not "in stock": negative wording is tried first.
    """
    if not text:
        return None
    return read_wording(normalise(text[:WORDING_SCAN_MAX]), strength)


_QUANTITY = (
    re.compile(r"残り\s*(?:あと)?\s*(\d{1,5})\s*(?:点|個|枚|本|セット|台|着)"),
    re.compile(r"在庫\s*(?:数)?\s*[:：]?\s*(\d{1,5})\s*(?:点|個|枚|本|セット|台|着)"),
    re.compile(r"only (\d{1,5}) left", re.IGNORECASE),
    re.compile(r"(\d{1,5}) (?:left|remaining) in stock", re.IGNORECASE),
)


def quantity_hint(text: str | None) -> int | None:
    """How many are left, when the text says so (残り3点 -> 3, "Only 2 left in stock" -> 2)."""
    if not text:
        return None
    norm = normalise(text)
    for pattern in _QUANTITY:
        match = pattern.search(norm)
        if match:
            return int(match.group(1))
    return None
