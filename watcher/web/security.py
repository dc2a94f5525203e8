"""Who may use the web UI, and the guards every page carries.

Off loopback the UI and API need `RESTOCK_WEB_TOKEN`: as a bearer token, or through the login
form, which sets an HttpOnly, SameSite=Strict cookie holding a digest of the token (never the
token). Every state-changing request is a POST carrying a CSRF token tied to the session, and a
cross-origin `Origin` header is refused. Pages load nothing from elsewhere and run no script.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from watcher.errors import RestockError

WEB_TOKEN_ENV = "RESTOCK_WEB_TOKEN"
SESSION_COOKIE = "restock_session"
LANGUAGE_COOKIE = "restock_lang"
CSRF_FIELD = "csrf"
# Wrong tokens tolerated in a window before logins pause: guessing stays hopeless.
LOGIN_FAILURES = 10
LOGIN_WINDOW = timedelta(minutes=5)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on our own
    # forms, and the Origin check could not tell them from a sandboxed foreign page.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class WebTokenMissing(RestockError):
    """The UI would listen off loopback with no token to guard it."""


def web_token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(WEB_TOKEN_ENV, "").strip()
    return value or None


def is_loopback(host: str) -> bool:
    """True for a listen host only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cookies_of(headers: Mapping[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _equal(given: str, expected: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII text, and what a client sends is anyone's input.
    return hmac.compare_digest(given.encode(), expected.encode())


class WebAccess:
    """Token checks and CSRF tokens for one running server."""

    def __init__(self, token: str | None, *, secret: bytes | None = None) -> None:
        self._token = token
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._failures: list[datetime] = []

    @classmethod
    def for_listen(cls, host: str, token: str | None) -> WebAccess:
        """The access rules for a server on `host`: off loopback a token is required."""
        if token is None and not is_loopback(host):
            raise WebTokenMissing(
                f"the web UI listens on {host}, which is not loopback: set {WEB_TOKEN_ENV}"
                " (or listen on 127.0.0.1 behind a reverse proxy that authenticates)"
            )
        return cls(token)

    @property
    def needs_login(self) -> bool:
        return self._token is not None

    def session_value(self) -> str:
        """The cookie a successful login sets: a digest of the token, not the token."""
        assert self._token is not None
        return hmac.new(self._token.encode(), b"restock-web-session", hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        return self._token is not None and _equal(given, self._token)

    def login_paused(self, now: datetime) -> bool:
        """True while too many wrong tokens came in lately (from anyone: no per-client state)."""
        self._failures = [t for t in self._failures if now - t < LOGIN_WINDOW]
        return len(self._failures) >= LOGIN_FAILURES

    def login_failed(self, now: datetime) -> None:
        self._failures.append(now)

    def authorized(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return self.token_matches(credentials.strip())
        session = cookies_of(headers).get(SESSION_COOKIE, "")
        return bool(session) and _equal(session, self.session_value())

    def csrf_token(self, headers: Mapping[str, str]) -> str:
        """The form token for this client: tied to its session (or to this server on loopback)."""
        session = cookies_of(headers).get(SESSION_COOKIE, "") if self._token else ""
        return hmac.new(self._secret, f"csrf:{session}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, headers: Mapping[str, str], given: str) -> bool:
        return bool(given) and same_origin(headers) and _equal(given, self.csrf_token(headers))


def proxied(headers: Mapping[str, str]) -> bool:
    """True when a reverse proxy says it forwarded the request (RFC 7239 or X-Forwarded-*)."""
    return any(name in headers for name in ("forwarded", "x-forwarded-for", "x-real-ip"))


def same_origin(headers: Mapping[str, str]) -> bool:
    """False when the browser says the request came from another site's page."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def session_cookie(value: str, *, secure: bool = False) -> str:
    flags = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/{flags}"


def language_cookie(language: str) -> str:
    return f"{LANGUAGE_COOKIE}={language}; SameSite=Strict; Path=/; Max-Age=31536000"
