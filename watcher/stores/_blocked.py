"""Pages that mean "the shop refused us": captcha, robot checks, rate limits, access denied.

Every adapter asks `detect_block` before reading stock, because a block page is never evidence
about the product (it must read `unknown`, and its wait must reach the scheduler).

Markers come in two strengths. Strong markers (a captcha form's action, a challenge script's
options) are specific enough to trust anywhere in a page. Weak markers ("automated access",
アクセスが集中) could also appear in an ordinary product description, so they only count on a small
page: real block pages are a few kilobytes, product pages are hundreds.
"""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from watcher.model import Observation, Page

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

_STATUS_REASONS = {429: RATE_LIMITED, 503: UNAVAILABLE, 403: ACCESS_DENIED}


def detect_block(page: Page, tree: LexborHTMLParser | None = None) -> str | None:
    """Why the shop refused us ("captcha", "rate_limited", ...), or None for an ordinary page.

    `tree` is the parsed page when the caller has one; the title then also counts as a marker.
    """
    reason = _strong_marker(page.text) or _weak_marker(page, tree)
    if reason:
        return reason
    if page.status is not None:
        return _STATUS_REASONS.get(page.status)
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


def _strong_marker(text: str) -> str | None:
    for marker, reason in _STRONG_MARKERS:
        if marker in text:
            return reason
    return None


def _weak_marker(page: Page, tree: LexborHTMLParser | None) -> str | None:
    if len(page.text) > SMALL_PAGE_CHARS and not _title_says_blocked(tree):
        return None
    lowered = page.text.casefold()
    for marker, reason in _WEAK_MARKERS:
        if marker in lowered:
            return reason
    return None


def _title_says_blocked(tree: LexborHTMLParser | None) -> bool:
    """A large page whose own title is a block message (some challenge pages pad themselves)."""
    if tree is None:
        return False
    node = tree.css_first("title")
    if node is None:
        return False
    title = node.text().casefold()
    return any(marker in title for marker, _ in _WEAK_MARKERS)
