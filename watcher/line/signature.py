"""LINE's webhook signature: base64 of HMAC-SHA256 over the raw body, keyed by the channel secret.

Checked on the bytes as received, before any parsing, and compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_HEADER = "x-line-signature"


def sign(channel_secret: str, body: bytes) -> str:
    """The signature LINE sends with `body` (tests and stand-ins sign with it too)."""
    digest = hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(channel_secret: str, body: bytes, signature: str | None) -> bool:
    """True only for the exact signature of `body`; a missing or malformed header is False."""
    if not signature or not channel_secret:
        return False
    expected = sign(channel_secret, body).encode("ascii")
    # Bytes, not str: compare_digest refuses non-ASCII text, and the header is anyone's input.
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))
