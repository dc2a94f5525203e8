"""Reading shop text: prices, stock wording and quantity hints, in Japanese and English.

Every function normalises its input with NFKC first, so full-width digits (１，９８０), the
full-width yen sign (￥) and full-width letters read like their ASCII forms.

Prices are integers. For JPY that is whole yen (yen has no minor unit in practice). For any other
currency the amount is rounded half-up to a whole main unit ($35.99 -> 36): the watcher compares
prices against a watch's integer `max_price`, and cents never decide a restock.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from watcher.model import Availability

TITLE_MAX = 300
_MAX_DIGITS = 10  # a price longer than this is an id or a phone number, not a price

# --- normalising -------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, then every run of whitespace as one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def clean_title(text: str | None, limit: int = TITLE_MAX) -> str | None:
    """A title as shown to people: normalised, capped at `limit` characters, None when empty."""
    if not text:
        return None
    title = normalise(text)
    if len(title) > limit:
        title = title[: limit - 1].rstrip() + "…"
    return title or None


# --- prices ------------------------------------------------------------------------------------

_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
# Yen amounts as shops print them: ¥1,980 / 1,980円 / JPY 1980 / 1980 JPY (after NFKC, ￥ is ¥).
_YEN_PATTERNS = (
    re.compile(r"[¥\\]\s*" + _NUMBER),
    re.compile(_NUMBER + r"\s*円"),
    re.compile(r"JPY\s*" + _NUMBER, re.IGNORECASE),
    re.compile(_NUMBER + r"\s*JPY", re.IGNORECASE),
)
_ANY_NUMBER = re.compile(_NUMBER)


def parse_price(text: str | None, currency: str | None = None) -> int | None:
    """The first price in shop text, as an integer (see the module docstring for the unit).

    Without `currency` (or with "JPY") only yen amounts count: a yen sign, 円 or JPY must stand
    beside the number, so "$35.99" gives None. With another currency the first number is taken
    ("$35.99", currency="USD" -> 36).
    """
    if not text:
        return None
    norm = normalise(text)
    if currency is None or currency.upper() == "JPY":
        return _first_yen(norm)
    match = _ANY_NUMBER.search(norm)
    return _to_int(match.group(1), match.group(2)) if match else None


def parse_amount(value: object, currency: str | None = "JPY") -> int | None:
    """A price from structured data (JSON-LD `price`, microdata `content`): "4516", 4516.0, "1,980".

    Returns None for anything that is not a plain non-negative number.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _round(Decimal(str(value))) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = normalise(value).replace(",", "")
    text = text.lstrip("¥$€£ ").removesuffix("円").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or len(text) > _MAX_DIGITS + 6:
        return None
    return _round(amount)


def _first_yen(text: str) -> int | None:
    best: tuple[int, int] | None = None  # (position, price)
    for pattern in _YEN_PATTERNS:
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            price = _to_int(match.group(1), match.group(2))
            if price is not None:
                best = (match.start(), price)
    return best[1] if best else None


def _to_int(whole: str, fraction: str | None) -> int | None:
    digits = whole.replace(",", "")
    if len(digits) > _MAX_DIGITS:
        return None
    return _round(Decimal(f"{digits}.{fraction}" if fraction else digits))


def _round(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- stock wording -----------------------------------------------------------------------------

_A = Availability
# Stock wording in priority order: the first rule that matches decides. Negative wording comes
# first because a negative phrase often contains a positive one (在庫ありません contains 在庫あり,
# "not in stock" contains "in stock"), and because within one element a sold-out word beside a
# buy word means the buy control is a leftover. Discontinued beats out-of-stock (more specific);
# preorder and backorder beat in-stock (an order button on a preorder page says カートに入れる too).
# Matching is done on NFKC-normalised text, case-insensitively.
WORDING_RULES: tuple[tuple[str, Availability], ...] = (
    # discontinued
    (r"販売終了|販売を終了|生産終了|製造終了|取扱終了", _A.DISCONTINUED),
    (r"取り?扱い?終了|取り扱いを終了|お取り扱いできません|取り扱っておりません", _A.DISCONTINUED),
    (r"掲載終了|\bdiscontinued\b|no longer (?:available|sold|made)", _A.DISCONTINUED),
    # out of stock (negated positives first)
    (r"在庫(?:が|は)?(?:ありません|ございません|無し|なし|無い|ない)", _A.OUT_OF_STOCK),
    (r"在庫切れ|品切れ|品切|売り?切れ|売切|完売|欠品", _A.OUT_OF_STOCK),
    (r"再?入荷待ち|入荷未定|入荷予定(?:は)?(?:未定|なし|ありません)", _A.OUT_OF_STOCK),
    (r"予約受付終了|予約終了", _A.OUT_OF_STOCK),
    (r"sold[ -]?out|out[ -]of[ -]stock|not in stock|no stock", _A.OUT_OF_STOCK),
    (r"currently unavailable|notify me when (?:available|in stock)", _A.OUT_OF_STOCK),
    # preorder
    (r"予約受付中|予約販売|予約注文|予約商品|予約する|予約購入|ご予約", _A.PREORDER),
    (r"pre[ -]?order|pre[ -]?sale", _A.PREORDER),
    # backorder
    (r"お?取り?寄せ", _A.BACKORDER),
    (r"通常\d+\s*[～〜~\-ー]\s*\d+\s*(?:日|週間|か月|ヶ月)(?:以内)?に発送", _A.BACKORDER),
    (r"back[ -]?order|ships in \d+\s*(?:-|to)\s*\d+ (?:days|weeks)", _A.BACKORDER),
    # in stock
    (r"在庫(?:が|は)?(?:あり|有り|ある|ございます)|在庫僅少|在庫わずか|残りわずか", _A.IN_STOCK),
    (r"残り\s*\d+\s*(?:点|個|枚|本|セット)|即納|即日発送", _A.IN_STOCK),
    (r"カートに(?:入れる|追加)|買い物かごに入れる|かごに入れる", _A.IN_STOCK),
    (r"購入手続きへ|今すぐ購入|購入する", _A.IN_STOCK),
    (r"\bin stock\b|add to (?:cart|bag|basket)|buy (?:it )?now|only \d+ left", _A.IN_STOCK),
)
_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), state) for pattern, state in WORDING_RULES)


def classify_wording(text: str | None) -> tuple[Availability, str] | None:
    """The stock state this text states, and the phrase that said it; None when it says nothing.

    Rules are tried in `WORDING_RULES` order, so "在庫ありません" is out of stock and "not in
    stock" is not "in stock".
    """
    if not text:
        return None
    norm = normalise(text)
    for pattern, state in _COMPILED:
        match = pattern.search(norm)
        if match:
            return state, match.group(0)
    return None


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
