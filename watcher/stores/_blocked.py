"""Pages that mean "the shop refused us": captcha, robot checks, rate limits, access denied.

Every adapter asks `detect_block` before reading stock, because a block page is never evidence
about the product (it must read `unknown`, and its wait must reach the scheduler).

A block page wins over everything else it shows: shops and bot walls put the product's name,
its 在庫あり badge or a cart button around a captcha, so a marker below makes the page `unknown`
whatever stock wording it carries. Markers come in four kinds, from the most specific:

1. strong markers (a captcha form's action, Amazon's captcha field, a challenge script's
   options, bot-wall vendors' block markup, Amazon's dogs page), trusted anywhere in a page;
2. a captcha widget (reCAPTCHA, hCaptcha, Turnstile) on the page itself, unless it sits in a
   login, sign-up, contact, review or newsletter form or dialog: a product page may load a
   captcha for those (a bare captcha script loads for them too and is no marker);
3. a block notice as the page's title or one of its h1s: the notice alone ("Access Denied",
   "429 Too Many Requests", "アクセスが集中しています"), give or take a site name after a
   separator, so a product named "Access Denied [Blu-ray]" is still a product; and block
   sentences ("you don't have permission to access", "ただいまアクセスが集中しております",
   "verify you are human") in the visible text of a small page (block pages are a few KB);
4. weak markers, ordinary words a product description may use ("発売日はアクセスが集中します";
   "orders placed by automated access will be cancelled"), which count only

- never in a JSON body (Shopify's `.js`, APIs): JSON is data about the product, not a notice;
- in an HTML page's <title> or <h1>, or anywhere in a small page (block pages are a few
  kilobytes, product pages hundreds),
- and only when the page carries no product signal at all (product markup, a price property, a
  cart form, a control saying カートに入れる or 売り切れ): a page that sells something is not a
  block page, whatever its notice says.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Observation, Page
from watcher.stores._bounds import MAX_CANDIDATES
from watcher.stores._folded import FoldedPhrases, ascii_lowered
from watcher.stores._text import classify_wording, first_character, normalise

CAPTCHA = "captcha"
CHALLENGE = "challenge"  # a JavaScript browser check (Cloudflare and the like)
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "service_unavailable"
ACCESS_DENIED = "access_denied"

SMALL_PAGE_CHARS = 40_000  # block pages seen in the wild are 2-10 KB; product pages far larger

# (marker, reason): trusted anywhere in the page; matched as written (case-folding a 2 MB page
# costs more than parsing it).
_STRONG_MARKERS: tuple[tuple[str, str], ...] = (
    ("/errors/validateCaptcha", CAPTCHA),
    ('id="captchacharacters"', CAPTCHA),
    ("opfcaptcha.", CAPTCHA),
    ("_cf_chl_opt", CHALLENGE),
    ("cf-browser-verification", CHALLENGE),
    ('id="challenge-form"', CHALLENGE),
    ("/dogsofamazon", UNAVAILABLE),
)

# Bot-wall vendors' block pages (DataDome, PerimeterX, Incapsula): never on a shop page.
_VENDOR_CAPTCHAS: tuple[tuple[str, str], ...] = (
    ("captcha-delivery.com", CAPTCHA),
    ('id="px-captcha"', CAPTCHA),
)
_INCAPSULA = ("Incapsula incident ID", "_Incapsula_Resource?SWJIYLWA")
# Each ASCII marker lower-cased, as `_holds` looks for it in a page's `ascii_lowered` letters.
_ASCII_KEYS = {
    marker: marker.lower().encode("ascii")
    for marker in (
        "aptcha",
        "turnstile",
        *(marker for marker, _ in (*_STRONG_MARKERS, *_VENDOR_CAPTCHAS)),
        *_INCAPSULA,
    )
}

# A captcha widget's markup, and the words of the containers a shop puts one in for its own
# forms (login, sign-up, contact, reviews, newsletter), where it says nothing about a block.
_CAPTCHA_WIDGETS = (
    ".g-recaptcha, .h-captcha, .cf-turnstile, [data-hcaptcha-widget-id],"
    ' iframe[src*="/recaptcha/api2/anchor"], iframe[src*="/recaptcha/enterprise/anchor"],'
    ' iframe[src*="hcaptcha.com"], iframe[src*="challenges.cloudflare.com"]'
)
_OWN_FORM_WORDS = re.compile(
    r"log-?in|sign-?in|sign-?up|signup|register|regist|member|account|contact|inquiry|enquiry"
    r"|toiawase|otoiawase|review|comment|newsletter|subscribe|mail-?magazine|mailmag|password"
    r"|modal|auth",
    re.IGNORECASE,
)
_WIDGET_REACH = 12  # ancestors looked at for a login/contact container

# A title or h1 that is a block notice: the notice alone, give or take an HTTP status before it
# and a site name after a separator (see the module docstring).
_NOTICE_HEADINGS = re.compile(
    r"^(?:(?:error|エラー)\s*)?(?:\d{3}\s*[:\-]?\s*)?"
    r"(?:access denied|access to this page has been denied|forbidden|too many requests"
    r"|request blocked|request rejected|robot check|are you a robot\??|just a moment\.*"
    r"|attention required!?|security check|one more step|verify you are human"
    r"|service unavailable|site maintenance|pardon our interruption"
    r"|アクセスが(?:集中|制限|拒否|ブロック)[^|｜]{0,24}|アクセス(?:集中|制限|拒否)[^|｜]{0,24}"
    r"|ただいま(?:混雑|アクセス)[^|｜]{0,24}|只今(?:混雑|アクセス)[^|｜]{0,24})"
    r"(?:\s*(?:[|｜:\-–—]|\s-\s)\s*[^|｜]{0,40})?$",
    re.IGNORECASE,
)
_HEADINGS_READ = 5  # h1s looked at: a block page may put the product's name in one first
_NOTICE_HEADINGS_RATE = re.compile(r"too many|集中|混雑", re.IGNORECASE)
_NOTICE_HEADINGS_CHALLENGE = re.compile(
    r"just a moment|attention required|security check|one more step|verify you are human"
    r"|pardon our interruption",
    re.IGNORECASE,
)
_NOTICE_HEADINGS_CAPTCHA = re.compile(r"robot", re.IGNORECASE)
_NOTICE_HEADINGS_UNAVAILABLE = re.compile(r"unavailable|maintenance", re.IGNORECASE)

# Sentences only a block page says, read in a small page's visible text (case-folded).
_BLOCK_SENTENCES: tuple[tuple[str, str], ...] = (
    ("too many requests", RATE_LIMITED),
    ("you have sent too many requests", RATE_LIMITED),
    ("ただいまアクセスが集中しております", RATE_LIMITED),
    ("アクセスが集中しています", RATE_LIMITED),
    ("アクセスが集中しております", RATE_LIMITED),
    ("アクセスが集中しているため", RATE_LIMITED),
    ("アクセス集中のため", RATE_LIMITED),
    ("ただいま混雑しております", RATE_LIMITED),
    ("you don't have permission to access", ACCESS_DENIED),
    ("you do not have permission to access", ACCESS_DENIED),
    ("this request was blocked", ACCESS_DENIED),
    ("アクセスが制限されています", ACCESS_DENIED),
    ("アクセスが拒否されました", ACCESS_DENIED),
    ("verify you are human", CAPTCHA),
    ("verify that you are human", CAPTCHA),
    ("confirm you are a human", CAPTCHA),
    ("are you a robot", CAPTCHA),
    ("unusual traffic from your computer", CAPTCHA),
    ("ロボットではありません", CAPTCHA),
    ("ロボットでないことを確認", CAPTCHA),
    ("画像に表示されている文字を入力", CAPTCHA),
    ("checking if the site connection is secure", CHALLENGE),
    ("enable javascript and cookies to continue", CHALLENGE),
)

# (marker, reason): only on small pages without product signals, compared case-insensitively.
_WEAK_MARKERS: tuple[tuple[str, str], ...] = (
    ("robot check", CAPTCHA),
    ("to discuss automated access", CAPTCHA),
    ("automated access", CAPTCHA),
    ("not a robot", CAPTCHA),
    ("ロボットではありません", CAPTCHA),
    ("画像に表示されている文字を入力", CAPTCHA),
    ("just a moment...", CHALLENGE),
    ("attention required! | cloudflare", CHALLENGE),
    ("checking your browser", CHALLENGE),
    ("sorry! something went wrong", UNAVAILABLE),
    ("何らかの問題が発生しました", UNAVAILABLE),
    ("too many requests", RATE_LIMITED),
    ("アクセスが集中", RATE_LIMITED),
    ("アクセス過多", RATE_LIMITED),
    ("access denied", ACCESS_DENIED),
    ("request blocked", ACCESS_DENIED),
    ("アクセスが制限されています", ACCESS_DENIED),
    ("アクセスが拒否されました", ACCESS_DENIED),
    ("不正なアクセス", ACCESS_DENIED),
    ("ページを表示できません", UNAVAILABLE),
)

# Any block sentence or weak marker, in one search of a small page's case-folded text: most pages
# hold none, and one search of the text costs less than a search per phrase.
_SMALL_PAGE_PHRASES = re.compile(
    "|".join(re.escape(phrase) for phrase, _ in (*_BLOCK_SENTENCES, *_WEAK_MARKERS))
)
# The same phrases, ruled out without case-folding the page (see `_folded`).
_SMALL_PAGE_FILTER = FoldedPhrases(phrase for phrase, _ in (*_BLOCK_SENTENCES, *_WEAK_MARKERS))

# Statuses that mean a block whatever the body says (the engine backs off on them at once).
STATUS_BLOCKS = {429: RATE_LIMITED, 503: UNAVAILABLE, 403: ACCESS_DENIED}


def detect_block(page: Page, tree: LexborHTMLParser | None = None) -> str | None:
    """Why the shop refused us ("captcha", "rate_limited", ...), or None for an ordinary page.

    `tree` is the parsed page when the caller has one; the title then also counts as a marker.
    """
    text = page.text
    small = len(text) <= SMALL_PAGE_CHARS
    # A small page's ASCII characters, lower-cased: every marker and ASCII phrase is searched
    # there first (a Japanese page holds few of them), and in the page only when found there.
    letters = ascii_lowered(text) if small else None
    # Several markers share "aptcha": one scan of a big page rules them all out.
    captcha_possible = _holds(text, letters, "aptcha")
    reason = _strong_marker(text, letters, captcha_possible, small)
    if reason is None and not _is_json(page):
        folded = _phrases_folded(text, letters) if letters is not None else None
        if tree is None and small:
            tree = LexborHTMLParser(text)
        if tree is not None:
            reason = _notice_heading(tree, small)
            # Turnstile's markup says "turnstile"; its challenge pages are small.
            if reason is None and (
                captcha_possible or (small and _holds(text, letters, "turnstile"))
            ):
                reason = _widget(tree)
        if reason is None and folded is not None:
            reason = _block_sentence(page.text, folded)
        if reason is None:
            reason = _weak_marker(page, tree, folded)
    if reason:
        return reason
    if page.status is not None:
        return STATUS_BLOCKS.get(page.status)
    return None


def blocked_observation(page: Page, reason: str, *, store: str | None = None) -> Observation:
    """The `unknown` reading of a block page, carrying the wait the shop asked for."""
    return Observation.unknown(
        f"blocked:{reason}",
        blocked=True,
        retry_after=page.retry_after,
        store=store,
        url=page.url,
    )


def screened(page: Page, store: str) -> tuple[LexborHTMLParser, Observation | None]:
    """Every adapter's first step: the page's parsed markup, and the early answer when it is
    not a product page to read (a block or captcha page, an HTTP error), else None."""
    tree = LexborHTMLParser(page.text)
    block = detect_block(page, tree)
    if block:
        return tree, blocked_observation(page, block, store=store)
    if not page.ok:
        reason = f"http:{page.status}" if page.status else f"fetch:{page.error}"
        return tree, Observation.unknown(reason, store=store, url=page.url)
    return tree, None


def _holds(text: str, letters: bytes | None, marker: str) -> bool:
    """`marker in text` for an ASCII marker; `letters` (the text's `ascii_lowered`, or None)
    holds it lower-cased whenever the text holds it, so its absence there answers first."""
    if letters is not None and _ASCII_KEYS[marker] not in letters:
        return False
    return marker in text


def _strong_marker(
    text: str, letters: bytes | None, captcha_possible: bool, small: bool
) -> str | None:
    for marker, reason in _STRONG_MARKERS:
        if (reason != CAPTCHA or captcha_possible) and _holds(text, letters, marker):
            return reason
    for marker, reason in _VENDOR_CAPTCHAS:
        if captcha_possible and _holds(text, letters, marker):
            return reason
    if small and any(_holds(text, letters, marker) for marker in _INCAPSULA):  # small pages
        return ACCESS_DENIED
    return None


def _widget(tree: LexborHTMLParser) -> str | None:
    """A captcha widget outside the shop's own login/contact forms (see the module docstring)."""
    for node in tree.css(_CAPTCHA_WIDGETS):
        if not _in_own_form(node):
            return CAPTCHA
    return None


def _in_own_form(node: LexborNode) -> bool:
    parent = node.parent
    for _ in range(_WIDGET_REACH):
        if parent is None or parent.tag in ("body", "html"):
            return False
        attrs = parent.attributes
        words = " ".join(
            attrs.get(name) or "" for name in ("id", "class", "action", "name", "aria-label")
        )
        if _OWN_FORM_WORDS.search(words) or parent.tag == "dialog":
            return True
        parent = parent.parent
    return False


def _notice_heading(tree: LexborHTMLParser, small: bool) -> str | None:
    """A title or h1 that is a block notice (see the module docstring). A big page's first h1
    only: block pages are small, and every h1 of a megabyte page costs a search of it."""
    h1s = tree.css("h1")[:_HEADINGS_READ] if small else [tree.css_first("h1")]
    nodes = [tree.css_first("title"), *h1s]
    for node in nodes:
        if node is None:
            continue
        text = normalise(node.text(separator=" "))
        if len(text) <= 120 and _NOTICE_HEADINGS.match(text):
            return _notice_reason(text)
    return None


def _notice_reason(text: str) -> str:
    if _NOTICE_HEADINGS_RATE.search(text):
        return RATE_LIMITED
    if _NOTICE_HEADINGS_CHALLENGE.search(text):
        return CHALLENGE
    if _NOTICE_HEADINGS_CAPTCHA.search(text):
        return CAPTCHA
    if _NOTICE_HEADINGS_UNAVAILABLE.search(text):
        return UNAVAILABLE
    return ACCESS_DENIED


def _phrases_folded(text: str, letters: bytes | None = None) -> str | None:
    """A small page's text case-folded, when it holds a block sentence or a weak marker; else
    None (the usual case: neither needs looking for one by one, nor the text folding).
    `letters` is the text's `ascii_lowered` when the caller has it."""
    if not _SMALL_PAGE_FILTER.may_hold(text, letters):
        return None
    folded = text.casefold()
    return folded if _SMALL_PAGE_PHRASES.search(folded) else None


def _block_sentence(html: str, folded: str) -> str | None:
    """A block sentence in a small page's visible text (scripts are no notice: a shop's script
    may hold an error message it never shows). `folded` is the page's text, case-folded."""
    if not any(sentence in folded for sentence, _ in _BLOCK_SENTENCES):
        return None  # the usual case: no need to read the visible text
    tree = LexborHTMLParser(html)
    tree.strip_tags(["script", "style", "noscript", "template"])
    root = tree.body or tree.root
    head = tree.css_first("title")
    parts = [root.text(separator=" ") if root is not None else ""]
    if head is not None:
        parts.append(head.text())
    visible = normalise(" ".join(parts)).casefold()
    for sentence, reason in _BLOCK_SENTENCES:
        if sentence in visible:
            return reason
    return None


def _weak_marker(page: Page, tree: LexborHTMLParser | None, folded: str | None) -> str | None:
    """A weak marker in the title or first h1, or in a small page's text (`folded`: that text,
    case-folded, or None when it holds no phrase), on a page without product signals."""
    if _is_json(page):
        return None
    small = len(page.text) <= SMALL_PAGE_CHARS
    if tree is None:
        if not small:
            return None
        tree = LexborHTMLParser(page.text)
    found = _weak_in(_heading_text(tree))
    if found is None and folded is not None:
        found = _weak_in(folded)
    if found is None or has_product_signal(tree):
        return None
    return found


def _is_json(page: Page) -> bool:
    if page.content_type and "json" in page.content_type.lower():
        return True
    return first_character(page.text) in ("{", "[")


def _weak_in(lowered: str) -> str | None:
    for marker, reason in _WEAK_MARKERS:
        if marker in lowered:
            return reason
    return None


def _heading_text(tree: LexborHTMLParser) -> str:
    """The page's own title and first h1, case-folded: where a block page names itself."""
    nodes = (tree.css_first("title"), tree.css_first("h1"))
    return " ".join(node.text(separator=" ") for node in nodes if node is not None).casefold()


_PRODUCT_MARKUP = (
    '[itemtype*="product" i], [itemprop="price" i], [itemprop="availability" i],'
    ' meta[property="og:type"][content="product" i], form[action*="cart" i],'
    ' form[action*="basket" i]'
)
_CONTROLS = "button, input[type=submit i], input[type=button i], a[class*=cart i]"


def has_product_signal(tree: LexborHTMLParser) -> bool:
    """True when the page offers a product: product markup, a price property, a cart form, or a
    control whose label states a stock state (カートに入れる, 売り切れ, "Add to cart")."""
    if tree.css_first(_PRODUCT_MARKUP) is not None:
        return True
    for script in tree.css('script[type="application/ld+json" i]')[:MAX_CANDIDATES]:
        if '"product' in script.text(deep=True).casefold():
            return True
    for node in tree.css(_CONTROLS)[:MAX_CANDIDATES]:
        label = node.attributes.get("value") if node.tag == "input" else node.text()
        if label and len(label) < 200 and classify_wording(label) is not None:
            return True
    return False
