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

from watcher.model import Availability, Event, EventKind

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

    def detail_lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs under the title, in display order; absent facts are left out."""
        rows = [
            ("store", self.store),
            ("state", self.state),
            ("deadline", self.deadline),
            ("price", self.price),
            ("seller", self.seller),
            ("time", self.time),
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
        store=clean_text(store_name(event.store), 60) or None,
        state=_STATES[language][event.state],
        price=price,
        seller=clean_text(event.seller, 80) or None,
        time=format_jst(event.observed_at),
        url=canonical_url(event.url),
        labels=labels,
        deadline=format_deadline(event.lottery_deadline),
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


# --- X weighted length -----------------------------------------------------------------------
#
# X counts a post the way its open-source twitter-text library does: code points in a few light
# ranges weigh 1, all others 2, and every link weighs exactly 23 however long it is. X links more
# than written-out URLs: a bare domain in running text (`Amazon.co.jp`, `item.rakuten.co.jp`,
# `example.com`) becomes a link too, so it weighs 23, not its 12 or so characters.
#
# The code below follows twitter-text's link grammar (where a link may start, which characters a
# host, path and query may hold, where a path may end) with one deliberate widening, so that the
# count can only ever be too high, never too low:
#
# - X links a domain only when its last label is on its list of top-level domains. Here any
#   alphabetic last label counts as one (two letters or more in ASCII, one or more in other
#   scripts, or `xn--` punycode): a domain X does not link then weighs max(23, its own weight),
#   and a TLD created after this was written is still seen.
# - Where the reading is not certain (an unknown TLD, a link not preceded by a space, a host X
#   might reject), every reading is weighed and the heaviest one is the count (`_x_weight`).
# - An emoji sequence (a flag, a family joined by U+200D) weighs 2 per code point here; X weighs
#   2 per sequence.

X_MAX_WEIGHT = 280
X_URL_WEIGHT = 23
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

# Top-level domains that X certainly links (checked against twitter-text 3.1.0): a host ending in
# one of these is a link whatever longer reading might also exist.
_KNOWN_TLDS = frozenset(
    {"com", "net", "org", "info", "biz", "jp", "co", "io", "me", "tv", "shop", "store", "app"}
    | {"dev", "xyz", "online", "site", "tokyo", "in", "us", "uk", "de", "fr", "cn", "kr", "tw"}
    | {"hk", "ec"}
)
_LATIN_ACCENTS = (
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b"
    "\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
_CYRILLIC = "\u0400-\u04ff"
# X's white space, and the characters it never lets into a host name under a scheme.
_X_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u180e\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_HOST_STOPS = (
    frozenset("!'#%&()*+,\\-./:;<=>?@[]^_{|}~$")
    | _X_SPACES
    | frozenset("\ufffe\ufeff\uffff\u202a\u202b\u202c\u202d\u202e\u061c\u200e\u200f")
    | frozenset("\u2066\u2067\u2068\u2069")
)
_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_BARE_LABEL = re.compile(f"[-a-z0-9{_LATIN_ACCENTS}]+", re.IGNORECASE)
_ASCII_HOST = re.compile(r"[a-z0-9.-]+", re.IGNORECASE)
_TLD_BLOCKER = re.compile(r"[0-9a-zA-Z@+-]")
_PUNYCODE = re.compile(r"xn--[-0-9a-z]+", re.IGNORECASE)
_PATH_CHAR = rf"[a-z{_CYRILLIC}0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&{_LATIN_ACCENTS}]"
_PATH_END = rf"[+\-a-z{_CYRILLIC}0-9=_#/{_LATIN_ACCENTS}]"
_PARENS = rf"\((?:{_PATH_CHAR}+|{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*)\)"
_PATH_PART = (
    rf"(?:{_PATH_CHAR}*(?:{_PARENS}{_PATH_CHAR}*)*(?:{_PATH_END}|{_PARENS})|@{_PATH_CHAR}+/)"
)
_QUERY = r"\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/]"
# What may follow a host inside one link: a port, a path (ending on a letter, digit, slash...
# so "example.com/a." leaves the full stop out), a query. A bare domain keeps them only when it
# has a path: X links "example.com" alone in "example.com:8080" or "example.com?q=1".
_AFTER_HOST = re.compile(rf"(?::[0-9]+)?(/{_PATH_PART}*)?(?:{_QUERY})?", re.IGNORECASE)
# X's own short links keep only their slug.
_TCO = re.compile(rf"https?://t\.co/([a-z0-9]+)(?:{_QUERY})?", re.IGNORECASE)
_TCO_MAX_SLUG = 40
_IN_PATH_OR_QUERY = re.compile(rf"{_PATH_CHAR}|[?()]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Link:
    """Where a possible link starting at some index may end, and whether X surely links it."""

    ends: tuple[int, ...]
    certain: bool


def char_weight(char: str) -> int:
    """1 for the ranges X counts light, 2 for everything else (kana, kanji, emoji...)."""
    code = ord(char)
    return 1 if any(lo <= code <= hi for lo, hi in _LIGHT_RANGES) else 2


def weighted_length(text: str, urls: int = 0) -> int:
    """X's weighted length of `text` (its links, bare domains too, weigh 23 each) plus `urls`
    further links."""
    # X weighs NFC-normalised text; a combining sequence written decomposed would count more.
    return _x_weight(unicodedata.normalize("NFC", text)) + urls * X_URL_WEIGHT


def x_weight_of_post(text: str) -> int:
    """Weighted length of a rendered post, as X counts it."""
    return weighted_length(text)


def _x_weight(text: str) -> int:
    """The heaviest reading of `text`: each possible link either linked or left as text."""
    weights = [char_weight(c) for c in text]
    links = _possible_links(text)
    if not links:
        return sum(weights)
    before = [0]
    for weight in weights:
        before.append(before[-1] + weight)
    # best[i]: the weight of text[i:]; X reads left to right and resumes after each link.
    best = [0] * (len(text) + 1)
    for i in range(len(text) - 1, -1, -1):
        best[i] = weights[i] + best[i + 1]
        link = links.get(i)
        if link is None:
            continue
        linked = max(
            (X_URL_WEIGHT if link.certain else max(X_URL_WEIGHT, before[end] - before[i]))
            + best[end]
            for end in link.ends
        )
        best[i] = linked if link.certain else max(best[i], linked)
    return best[0]


def _possible_links(text: str) -> dict[int, _Link]:
    """Every index where X might start a link, with that link's possible ends."""
    links: dict[int, _Link] = {}
    for scheme in _SCHEME.finditer(text):
        found = _link_at(text, scheme.start(), _scheme_hosts(text, scheme.end()), scheme=True)
        if found:
            links[scheme.start()] = found
    for run in _BARE_LABEL.finditer(text):
        for start in _bare_starts(text, run.start(), run.end()):
            found = _link_at(text, start, _bare_hosts(text, start), scheme=False)
            if found:
                links.setdefault(start, found)
    return links


def _bare_starts(text: str, start: int, end: int) -> list[int]:
    """Where a domain without a scheme may start within a run of label characters."""
    # X never starts one right after "/" or inside a dotted name ("www.|amazon.co.jp"); it may
    # start after an accented letter ("é|b.com").
    before = text[start - 1] if start else " "
    starts = []
    if before != "/" and not (before == "." and start >= 2 and _BARE_LABEL.match(text[start - 2])):
        starts.append(start)
    starts += [i for i in range(start + 1, end) if not text[i - 1].isascii()]
    return starts


def _bare_hosts(text: str, start: int) -> list[tuple[int, int]]:
    """(TLD start, host end) of each `label.label.tld` reading of an ASCII host at `start`."""
    hosts: list[tuple[int, int]] = []
    at = start
    while (label := _BARE_LABEL.match(text, at)) and text[label.end() : label.end() + 1] == ".":
        # X reads the host inside a wider domain name whose labels neither end with "-" nor
        # (after the first) start with one; such a label ends every reading.
        if label.group().endswith("-") or (at > start and label.group().startswith("-")):
            break
        tld = label.end() + 1
        hosts += [(tld, end) for end in _tld_ends(text, tld)]
        at = tld
    return hosts


def _scheme_hosts(text: str, start: int) -> list[tuple[int, int]]:
    """(TLD start, host end) of each reading of a host after `https://` (IDNs allowed)."""
    hosts: list[tuple[int, int]] = []
    at = start
    while True:
        end = at
        while end < len(text) and (text[end] not in _HOST_STOPS or text[end] in "-_"):
            end += 1
        label = text[at:end]
        if text[end : end + 1] != "." or not label or label[0] in "-_" or label[-1] in "-_":
            return hosts
        if "_" not in label:  # only labels before the domain name may hold "_"
            hosts += [(end + 1, tld_end) for tld_end in _tld_ends(text, end + 1)]
        at = end + 1


def _tld_ends(text: str, start: int) -> list[int]:
    """Ends of every reading of a top-level label at `start` (widened as described above)."""
    ends: list[int] = []
    if puny := _PUNYCODE.match(text, start):  # any length, and no check of what follows
        ends += range(start + 5, puny.end() + 1)
    end = start
    while end < len(text) and (text[end].isalpha() or unicodedata.category(text[end])[0] == "M"):
        end += 1
        if (end - start >= 2 or not text[end - 1].isascii()) and _tld_may_end(text, end):
            ends.append(end)
    return ends


def _tld_may_end(text: str, end: int) -> bool:
    return end == len(text) or not _TLD_BLOCKER.match(text[end])


def _link_at(text: str, start: int, hosts: list[tuple[int, int]], *, scheme: bool) -> _Link | None:
    """The possible link at `start` given its host readings, or None if there is none."""
    if not hosts:
        return None
    known = [end for tld, end in hosts if text[tld:end].lower() in _KNOWN_TLDS]
    # X takes the longest host it can; a host ending in a known TLD is one it can.
    host_ends = [end for _, end in hosts if not known or end >= max(known)]
    ends, surely = [], bool(known)
    for host_end in host_ends:
        tail = _AFTER_HOST.match(text, host_end)
        end = tail.end() if tail and (scheme or tail.group(1)) else host_end
        if scheme and (tco := _TCO.match(text, start, end)):
            # X keeps only a short link's slug, and does not link an over-long one at all.
            surely = surely and len(tco.group(1)) <= _TCO_MAX_SLUG
            end = tco.end()
        ends.append(end)
        surely = surely and _host_is_plain(text, start, host_end, scheme)
    return _Link(tuple(sorted(set(ends))), surely)


def _host_is_plain(text: str, start: int, host_end: int, scheme: bool) -> bool:
    """True when X surely links this host: after a space, ASCII, every label 1-63 long, and not
    run on into letters of another script (which X would read as more of the host)."""
    host = text[start:host_end]
    if scheme:
        host = host.split("//", 1)[1]
    elif not host[:1].isascii() or not host[:1].isalnum():
        return False
    after = text[host_end : host_end + 1]
    return (
        _starts_cleanly(text, start, scheme)
        and bool(_ASCII_HOST.fullmatch(host))
        and len(host) <= 253
        and all(0 < len(label) <= 63 for label in host.split("."))
        and (not after or after.isascii() or after in _HOST_STOPS)
    )


def _starts_cleanly(text: str, start: int, scheme: bool) -> bool:
    """True when X surely starts reading a link at `start`: after white space, or for a URL
    with a scheme after any character that may precede a link but not sit inside one."""
    before = text[start - 1] if start else " "
    if before in _X_SPACES:
        return True
    inside_link = _IN_PATH_OR_QUERY.match(before) or (before.isascii() and before.isalnum())
    return scheme and not inside_link and before not in "@＠$#＃\ufffe\ufeff\uffff"


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
    if room < X_MIN_TITLE and f.seller:
        # A seller name long enough to crowd out the title is the one fact worth dropping.
        details = [d for d in details if not d.startswith(f.labels["seller"])]
        room = _x_title_room(f.headline, details, url)
    post = _x_post(f.headline, cut_to_weight(f.title, room), details, url)
    while weighted_length(post) > X_MAX_WEIGHT and room > 0:
        room -= 1  # not expected: the parts' weights add up; a guard all the same
        post = _x_post(f.headline, cut_to_weight(f.title, room), details, url)
    return post


def _x_post(headline_text: str, title: str, details: list[str], url: str | None) -> str:
    return "\n".join([f"{headline_text} {title}", *details, *([url] if url else [])])


def _x_title_room(headline_text: str, details: list[str], url: str | None) -> int:
    """Weight left for the title once everything else in the post is counted."""
    # Links never span white space, so the title's weight adds to the rest's.
    return X_MAX_WEIGHT - weighted_length(_x_post(headline_text, "", details, url))
