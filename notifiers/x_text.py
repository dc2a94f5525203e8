"""X's weighted length: how X counts a post (its link grammar, the weights of characters).

X counts a post the way its open-source twitter-text library does: code points in a few light
ranges weigh 1, all others 2, and every link weighs exactly 23 however long it is. X links more
than written-out URLs: a bare domain in running text (`Amazon.co.jp`, `item.rakuten.co.jp`,
`example.com`) becomes a link too, so it weighs 23, not its 12 or so characters.

The code below follows twitter-text's link grammar (where a link may start, which characters a
host, path and query may hold, where a path may end) with one deliberate widening, so that the
count can only ever be too high, never too low:

- X links a domain only when its last label is on its list of top-level domains. Here any
  alphabetic last label counts as one (two letters or more in ASCII, one or more in other
  scripts, or `xn--` punycode): a domain X does not link then weighs max(23, its own weight),
  and a TLD created after this was written is still seen.
- Where the reading is not certain (an unknown TLD, a link not preceded by a space, a host X
  might reject), every reading is weighed and the heaviest one is the count (`_x_weight`).
- An emoji sequence (a flag, a family joined by U+200D) weighs 2 per code point here; X weighs
  2 per sequence.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

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
