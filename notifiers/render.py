"""One place that turns an `Event` into the words each channel sends.

Every channel shows the same facts (headline, title, store, state, price, seller, JST time, the
product's canonical store URL) in Japanese by default or in English. Pure: no I/O, no clock.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from notifiers.x_text import X_MAX_WEIGHT, char_weight, weighted_length
from watcher.core.forecast import describe_forecast
from watcher.core.model import Availability, Event, EventKind

Language = Literal["ja", "en"]
LANGUAGES: tuple[Language, ...] = ("ja", "en")

JST = timezone(timedelta(hours=9), "JST")
ELLIPSIS = "…"

_HEADLINES: dict[Language, dict[EventKind, str]] = {
    "ja": {
        EventKind.RESTOCK: "【再入荷】",
        EventKind.PREORDER_OPEN: "【予約開始】",
        EventKind.OUT_OF_STOCK: "【在庫切れ】",
        EventKind.PRICE_DROP: "【値下げ】",
        EventKind.LOTTERY_OPEN: "【抽選受付開始】",
    },
    "en": {
        EventKind.RESTOCK: "[Restock]",
        EventKind.PREORDER_OPEN: "[Pre-order open]",
        EventKind.OUT_OF_STOCK: "[Sold out]",
        EventKind.PRICE_DROP: "[Price drop]",
        EventKind.LOTTERY_OPEN: "[Lottery open]",
    },
}

_STATES: dict[Language, dict[Availability, str]] = {
    "ja": {
        Availability.IN_STOCK: "在庫あり",
        Availability.BACKORDER: "取り寄せ（注文可）",
        Availability.PREORDER: "予約受付中",
        Availability.OUT_OF_STOCK: "在庫切れ",
        Availability.DISCONTINUED: "販売終了",
        Availability.LOTTERY: "抽選受付中",
        Availability.UNKNOWN: "不明",
    },
    "en": {
        Availability.IN_STOCK: "In stock",
        Availability.BACKORDER: "Orderable (ships later)",
        Availability.PREORDER: "Pre-order",
        Availability.OUT_OF_STOCK: "Out of stock",
        Availability.DISCONTINUED: "Discontinued",
        Availability.LOTTERY: "Lottery open",
        Availability.UNKNOWN: "Unknown",
    },
}

_STORES: dict[str, str] = {
    "amazon_jp": "Amazon.co.jp",
    "rakuten": "楽天市場",
    "yahoo_shopping": "Yahoo!ショッピング",
    "base": "BASE",
    "shopify": "Shopify",
}

_LABELS: dict[Language, dict[str, str]] = {
    "ja": {
        "store": "ストア",
        "state": "状態",
        "price": "価格",
        "seller": "販売元",
        "deadline": "応募締切",
        "time": "確認時刻",
        "forecast": "再入荷予報",
        "open": "ストアで開く",
        "untitled": "（商品名不明）",
        "unknown_price": "不明",
    },
    "en": {
        "store": "Store",
        "state": "State",
        "price": "Price",
        "seller": "Seller",
        "deadline": "Apply by",
        "time": "Checked",
        "forecast": "Forecast",
        "open": "Open in store",
        "untitled": "(untitled product)",
        "unknown_price": "unknown",
    },
}

# Query parameters that only track the click; a canonical store URL carries none of them.
_TRACKING_PARAMS = frozenset(
    {"tag", "ref", "ref_", "linkcode", "camp", "creative", "fbclid", "gclid", "yclid", "_gl"}
)
_TRACKING_PREFIXES = ("utm_", "pf_rd_", "pd_rd_", "sc_", "scid")

# Characters that must never reach a header or a one-line title: C0/C1 controls, line and
# paragraph separators, and bidi overrides that could disguise a title.
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Facts:
    """The displayable facts of one event, already cleaned, in one language."""

    headline: str
    title: str
    store: str | None
    state: str
    price: str | None
    seller: str | None
    time: str
    url: str | None
    labels: dict[str, str]
    deadline: str | None = None  # a lottery's application deadline, when the page states one
    forecast: str | None = None  # the hours restocks usually happen in, when they cluster

    def detail_lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs under the title, in display order; absent facts are left out."""
        rows = [
            ("store", self.store),
            ("state", self.state),
            ("deadline", self.deadline),
            ("price", self.price),
            ("seller", self.seller),
            ("time", self.time),
            ("forecast", self.forecast),
        ]
        return [(self.labels[key], value) for key, value in rows if value]


def clean_text(text: str | None, max_chars: int | None = None) -> str:
    """One line of text from a shop page: no control characters, no line breaks, trimmed."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE_CHARS.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    return shorten(text, max_chars) if max_chars is not None else text


def shorten(text: str, max_chars: int) -> str:
    """Cut to at most `max_chars` characters, marking the cut with an ellipsis."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 0:
        return ""
    return text[: max_chars - 1].rstrip() + ELLIPSIS


def escape_html(text: str | None) -> str:
    """The one escape for Telegram's HTML parse mode (also safe inside quoted attributes)."""
    return html.escape(text or "", quote=True)


def format_price(price: int | None, currency: str | None = "JPY") -> str | None:
    """¥1,980 for yen; other currencies keep their code."""
    if price is None:
        return None
    if currency in (None, "JPY"):
        return f"¥{price:,}"
    return f"{price:,} {currency}"


def format_jst(when: datetime) -> str:
    """Wall time in Japan, to the second (it also keeps otherwise identical posts unique)."""
    return when.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S JST")


def format_deadline(when: datetime | None) -> str | None:
    """A deadline in Japan's wall time, to the minute (shops state them so); None if unknown."""
    if when is None or when.utcoffset() is None:
        return None  # a naive time could be any zone: better unsaid than wrong
    return when.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")


def store_name(store: str | None) -> str | None:
    if not store:
        return None
    return _STORES.get(store, store)


# The reader of any shop's page (`watcher.stores.generic.NAME`, not imported here: that module
# loads the HTML parser): a name for how the page was read, not for the shop.
_ANY_SHOP = "generic"


def shop_label(store: str | None, url: str | None) -> str | None:
    """What a message calls the shop: a known store's name, else the product page's host."""
    if store and store != _ANY_SHOP:
        return store_name(store)
    host = urlsplit(url or "").hostname
    return host.removeprefix("www.") if host else None


def canonical_url(url: str | None) -> str | None:
    """The product's own store URL: http(s) only, no fragment, no click-tracking parameters."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if _keeps(k)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


def _keeps(param: str) -> bool:
    name = param.lower()
    return name not in _TRACKING_PARAMS and not name.startswith(_TRACKING_PREFIXES)


def pick_language(requested: str | None, default: Language) -> Language:
    """The recipient's language when it is one we write, else the channel's default."""
    for known in LANGUAGES:
        if requested == known:
            return known
    return default


def headline(kind: EventKind, language: Language) -> str:
    return _HEADLINES[language][kind]


def label(key: str, language: Language) -> str:
    return _LABELS[language][key]


def facts(event: Event, language: Language = "ja", title_max: int = 200) -> Facts:
    """Everything a channel shows about `event`, cleaned and formatted."""
    labels = _LABELS[language]
    price = format_price(event.price, event.currency)
    if price and event.kind is EventKind.PRICE_DROP and event.previous_price is not None:
        before = format_price(event.previous_price, event.currency)
        price = f"{before} → {price}"
    return Facts(
        headline=_HEADLINES[language][event.kind],
        title=clean_text(event.title or event.watch_name, title_max) or labels["untitled"],
        store=clean_text(shop_label(event.store, event.url), 60) or None,
        state=_STATES[language][event.state],
        price=price,
        seller=clean_text(event.seller, 80) or None,
        time=format_jst(event.observed_at),
        url=canonical_url(event.url),
        labels=labels,
        deadline=format_deadline(event.lottery_deadline),
        forecast=describe_forecast(event.forecast, language) if event.forecast else None,
    )


def render_text(event: Event, language: Language = "ja", title_max: int = 200) -> str:
    """Plain text: the console and the text part of an e-mail."""
    f = facts(event, language, title_max)
    lines = [f"{f.headline} {f.title}"]
    lines += [f"{name}: {value}" for name, value in f.detail_lines()]
    if f.url:
        lines.append(f.url)
    return "\n".join(lines)


def render_telegram(event: Event, language: Language = "ja", title_max: int = 200) -> str:
    """Telegram HTML: every dynamic text goes through `escape_html`."""
    f = facts(event, language, title_max)
    lines = [f"<b>{escape_html(f.headline)} {escape_html(f.title)}</b>"]
    lines += [f"{escape_html(name)}: {escape_html(value)}" for name, value in f.detail_lines()]
    if f.url:
        lines.append(f'<a href="{escape_html(f.url)}">{escape_html(f.url)}</a>')
    return "\n".join(lines)


def render_email_html(event: Event, language: Language = "ja", title_max: int = 200) -> str:
    """The HTML part of an e-mail; same facts, every dynamic text escaped."""
    f = facts(event, language, title_max)
    rows = "".join(
        f"<tr><th align=left>{escape_html(name)}</th><td>{escape_html(value)}</td></tr>"
        for name, value in f.detail_lines()
    )
    link = ""
    if f.url:
        url = escape_html(f.url)
        link = f'<p><a href="{url}">{escape_html(f.labels["open"])}</a><br>{url}</p>'
    return (
        f'<!doctype html><html lang="{language}"><meta charset="utf-8"><body>'
        f"<h2>{escape_html(f.headline)} {escape_html(f.title)}</h2>"
        f"<table>{rows}</table>{link}</body></html>"
    )


def email_subject(event: Event, language: Language = "ja", title_max: int = 80) -> str:
    """`【再入荷】<title>`: one line, whatever the shop put in its title."""
    f = facts(event, language, title_max)
    return f"{f.headline}{f.title}" if language == "ja" else f"{f.headline} {f.title}"


def cut_to_weight(text: str, budget: int) -> str:
    """The longest prefix of `text` (with an ellipsis if cut) whose weight fits `budget`."""
    text = unicodedata.normalize("NFC", text)
    if weighted_length(text) <= budget:
        return text
    if budget < char_weight(ELLIPSIS):
        return ""
    # Start from what plain character weights allow, then give back characters while a cut
    # that ends in (or creates) a link still weighs too much.
    room = budget - char_weight(ELLIPSIS)
    keep = 0
    for char in text:
        room -= char_weight(char)
        if room < 0:
            break
        keep += 1
    while keep > 0 and weighted_length(text[:keep].rstrip() + ELLIPSIS) > budget:
        keep -= 1
    return text[:keep].rstrip() + ELLIPSIS


# Store names as X posts show them: "Amazon.co.jp" would become a link (and weigh 23).
_X_STORES: dict[str, str] = {"amazon_jp": "Amazon"}
X_MIN_TITLE = 20


def render_x(event: Event, language: Language = "ja", include_url: bool = True) -> str:
    """A post within 280 weighted characters; only the title is shortened to fit."""
    f = facts(event, language, title_max=500)
    if event.store in _X_STORES:
        f = replace(f, store=_X_STORES[event.store])
    url = f.url if include_url else None
    details = [f"{name}: {value}" for name, value in f.detail_lines()]
    room = _x_title_room(f.headline, details, url)
    if room < X_MIN_TITLE and f.forecast:
        # The forecast is a courtesy: it goes before any fact of the event itself.
        details = _without(details, f.labels["forecast"])
        room = _x_title_room(f.headline, details, url)
    if room < X_MIN_TITLE and f.seller:
        # A seller name long enough to crowd out the title is the one fact worth dropping.
        details = _without(details, f.labels["seller"])
        room = _x_title_room(f.headline, details, url)
    post = _x_post(f.headline, cut_to_weight(f.title, room), details, url)
    while weighted_length(post) > X_MAX_WEIGHT and room > 0:
        room -= 1  # not expected: the parts' weights add up; a guard all the same
        post = _x_post(f.headline, cut_to_weight(f.title, room), details, url)
    return post


def _without(details: list[str], name: str) -> list[str]:
    return [d for d in details if not d.startswith(f"{name}: ")]


def _x_post(headline_text: str, title: str, details: list[str], url: str | None) -> str:
    return "\n".join([f"{headline_text} {title}", *details, *([url] if url else [])])


def _x_title_room(headline_text: str, details: list[str], url: str | None) -> int:
    """Weight left for the title once everything else in the post is counted."""
    # Links never span white space, so the title's weight adds to the rest's.
    return X_MAX_WEIGHT - weighted_length(_x_post(headline_text, "", details, url))
