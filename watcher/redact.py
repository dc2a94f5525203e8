"""Secrets out of logs: a logging filter that masks known secrets (whole, or long parts of them)
in every record of the loggers it is installed on, and a short stable hash for recipients."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable


def recipient_hash(recipient: str) -> str:
    """A stable, short stand-in for a recipient in logs (chat ids and addresses are personal)."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:12]


class SecretRedactor(logging.Filter):
    """Replaces secrets in log records (PTB and httpx put the bot token in request URLs).

    Matching ignores case, since a proxy or library may echo a request path lower-cased, and a
    bot token's secret part (after `<bot id>:`) is masked on its own too: it is all that matters,
    and it also appears with the colon percent-encoded.
    """

    MIN_PART = 8  # a shorter secret part would mask ordinary words

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]
        self._pattern = _secrets_pattern(self.secrets, self.MIN_PART)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        message = record.getMessage()
        if self._pattern.search(message):
            record.msg = self.redact(message)
            record.args = None
        traceback = record.exc_text or (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        if traceback and self._pattern.search(traceback):
            record.exc_text = self.redact(traceback)
            record.exc_info = None  # a handler would format the unmasked traceback again
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def redact(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern else text


def _secrets_pattern(secrets: list[str], min_part: int) -> re.Pattern[str] | None:
    """One case-insensitive pattern for every secret and every token's secret part."""
    variants = set(secrets)
    for secret in secrets:
        _, colon, part = secret.partition(":")
        if colon and len(part) >= min_part:
            variants.add(part)
    if not variants:
        return None
    # Longest first, so a whole token is masked as one rather than around its secret part.
    ordered = sorted(variants, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


# Loggers of the libraries that see our request URLs; each needs the filter on itself, since
# a logger's filters do not apply to records passed up from its children.
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "telegram",
    "telegram.Bot",
    "telegram.ext.ExtBot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "restock.notify",
)


def install_redactor(redactor: SecretRedactor, loggers: Iterable[str] = LIBRARY_LOGGERS) -> None:
    for name in loggers:
        logging.getLogger(name).addFilter(redactor)


def remove_redactor(redactor: SecretRedactor, loggers: Iterable[str] = LIBRARY_LOGGERS) -> None:
    for name in loggers:
        logging.getLogger(name).removeFilter(redactor)
