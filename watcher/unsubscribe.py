"""One-click unsubscribe links: signed by the notifier that sends them, checked by the server
that answers them. The secret comes from the environment, like every other secret."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

UNSUBSCRIBE_SECRET_ENV = "RESTOCK_UNSUBSCRIBE_SECRET"


def unsubscribe_secret_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The one-click unsubscribe secret from `RESTOCK_UNSUBSCRIBE_SECRET`; None when unset."""
    value = (os.environ if env is None else env).get(UNSUBSCRIBE_SECRET_ENV, "").strip()
    return value or None


def unsubscribe_token(secret: str, recipient: str, watch_key: str) -> str:
    """HMAC of recipient and watch: the one-click link proves it came from us, for this pair."""
    message = f"{recipient.strip().lower()}\n{watch_key}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class UnsubscribeLink:
    """The fields of a List-Unsubscribe https link: which watch, which address, the proof."""

    watch: str
    to: str
    token: str

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> UnsubscribeLink | None:
        values = [fields.get(name, "").strip() for name in ("watch", "to", "token")]
        return cls(*values) if all(values) else None

    def signed_with(self, secret: str) -> bool:
        expected = unsubscribe_token(secret, self.to, self.watch)
        # Bytes, not str: compare_digest refuses non-ASCII text, and a token is anyone's input.
        return hmac.compare_digest(expected.encode(), self.token.encode())
