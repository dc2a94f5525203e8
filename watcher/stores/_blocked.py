"""Pages that mean "the shop refused us": captcha, robot checks, rate limits, access denied.

Every adapter asks `detect_block` before reading stock, because a block page is never evidence
about the product (it must read `unknown`, and its wait must reach the scheduler).

Markers come in two strengths. Strong markers (a captcha form's action, Amazon's captcha field,
a challenge script's options, Amazon's dogs page) are specific enough to trust anywhere in a
page. Weak markers ("automated access", アクセスが集中, "access denied") are ordinary words a
product description may use ("発売日はアクセスが集中します"; "orders placed by automated access
will be cancelled"), so they count only

- never in a JSON body (Shopify's `.js`, APIs): JSON is data about the product, not a notice;
- in an HTML page's <title> or <h1>, or anywhere in a small page (block pages are a few
  kilobytes, product pages hundreds),
- and only when the page carries no product signal at all (product markup, a price property, a
  cart form, a control saying カートに入れる or 売り切れ): a page that sells something is not a
  block page, whatever its notice says.
"""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from watcher.core.model import Observation, Page
from watcher.stores._bounds import MAX_CANDIDATES
from watcher.stores._text import classify_wording

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

# (marker, reason): only on small pages, compared case-insensitively.
_WEAK_MARKERS: tuple[tuple[str, str], ...] = (
    ("robot check", CAPTCHA),
    ("to discuss automated access", CAPTCHA),
    ("automated access", CAPTCHA),
    ("not a robot", CAPTCHA),
    ("g-recaptcha", CAPTCHA),  # also used on ordinary contact forms, so weak
    ("h-captcha", CAPTCHA),
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

# Statuses that mean a block whatever the body says (the engine backs off on them at once).
STATUS_BLOCKS = {429: RATE_LIMITED, 503: UNAVAILABLE, 403: ACCESS_DENIED}


def detect_block(page: Page, tree: LexborHTMLParser | None = None) -> str | None:
    """Why the shop refused us ("captcha", "rate_limited", ...), or None for an ordinary page.

    `tree` is the parsed page when the caller has one; the title then also counts as a marker.
    """
    reason = _strong_marker(page.text) or _weak_marker(page, tree)
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


def _strong_marker(text: str) -> str | None:
    # Three markers share "aptcha": one scan of a big page rules them all out.
    captcha_possible = "aptcha" in text
    for marker, reason in _STRONG_MARKERS:
        if (reason != CAPTCHA or captcha_possible) and marker in text:
            return reason
    return None


def _weak_marker(page: Page, tree: LexborHTMLParser | None) -> str | None:
    if _is_json(page):
        return None
    small = len(page.text) <= SMALL_PAGE_CHARS
    if tree is None:
        if not small:
            return None
        tree = LexborHTMLParser(page.text)
    found = _weak_in(_heading_text(tree))
    if found is None and small:
        found = _weak_in(page.text.casefold())
    if found is None or has_product_signal(tree):
        return None
    return found


def _is_json(page: Page) -> bool:
    if page.content_type and "json" in page.content_type.lower():
        return True
    return page.text.lstrip()[:1] in ("{", "[")


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
