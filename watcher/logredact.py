"""Secrets masked in every log record, whichever library wrote it.

Masking happens where records are made (the logging module's record factory), so every handler
sees masked text: the ones `restock run` installs, pytest's, and any a library adds. A record's
message (with its arguments), exception text, traceback and stack are masked; records from
telegram.ext, httpx or aiohttp are no different from ours. The secrets are every `Secret` the
loaded watchlist holds (and the credentials inside its URLs), replaced on each reload.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import AnyUrl, BaseModel

from watcher.secret import MASK, Secret

MIN_SECRET = 4  # a shorter value would mask ordinary words; no real credential is that short
MIN_PART = 8  # the part of a bot token after `<bot id>:`, masked on its own (percent-encoded `:`)
MIN_URL_PART = 8  # a webhook URL's path or query: where services put their tokens


class SecretMask:
    """Every secret known now, by source; `mask` replaces any of them, in any letter case."""

    def __init__(self) -> None:
        self._sources: dict[str, frozenset[str]] = {}
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def set(self, source: str, secrets: Iterable[str]) -> None:
        """Mask `secrets` on behalf of `source`, replacing what it gave before."""
        with self._lock:
            self._sources[source] = frozenset(s for s in secrets if len(s) >= MIN_SECRET)
            self._pattern = _pattern(set().union(*self._sources.values()))

    def forget(self, source: str) -> None:
        with self._lock:
            self._sources.pop(source, None)
            self._pattern = _pattern(set().union(*self._sources.values()))

    def mask(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

    def found_in(self, text: str) -> bool:
        pattern = self._pattern
        return pattern is not None and pattern.search(text) is not None

    def mask_record(self, record: logging.LogRecord) -> None:
        """Mask a record in place: message and arguments, exception text, stack."""
        if self._pattern is None:
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself, unmasked args aside
            record.args = None
            message = str(record.msg)
        if self.found_in(message):
            record.msg = self.mask(message)
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.found_in(record.exc_text):
            record.exc_text = self.mask(record.exc_text)
            record.exc_info = None  # a handler would format the unmasked traceback again
        if record.stack_info and self.found_in(record.stack_info):
            record.stack_info = self.mask(record.stack_info)


def _pattern(secrets: set[str]) -> re.Pattern[str] | None:
    variants = set()
    for secret in secrets:
        variants |= {secret, quote(secret, safe="")}
        _, colon, part = secret.partition(":")
        if colon and len(part) >= MIN_PART:
            variants |= {part, quote(part, safe="")}
    if not variants:
        return None
    # Longest first, so a whole token is masked as one rather than around its secret part.
    ordered = sorted(variants, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


MASKED = SecretMask()
_installed = False


class SecretScope:
    """The secrets one component holds (a bot token, a webhook URL): masked in every log record
    while the component lives, and by `mask` in text it builds itself (an error's detail)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        held = [s for s in secrets if s]
        self._own = SecretMask()
        self._own.set("own", held)
        self._source = f"scope:{id(self)}"
        # Before the component logs anything: its libraries log URLs that hold the secret.
        MASKED.set(self._source, held)
        install()

    def mask(self, text: str) -> str:
        return self._own.mask(text)

    def close(self) -> None:
        """Stop masking this component's secrets in log records (it is gone)."""
        MASKED.forget(self._source)


def install(mask: SecretMask = MASKED) -> None:
    """Mask every log record made from now on, and tracebacks printed for uncaught errors."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        mask.mask_record(record)
        return record

    logging.setLogRecordFactory(masked_record)
    print_uncaught = sys.excepthook

    def masked_excepthook(
        kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        if not mask.found_in(f"{error!r} {error}"):
            print_uncaught(kind, error, tb)
            return
        text = logging.Formatter().formatException((kind, error, tb))
        print(mask.mask(text), file=sys.stderr)

    sys.excepthook = masked_excepthook


# Secrets `restock run` reads from the environment besides the watchlist's `${VAR}`s.
SECRET_ENV = ("RESTOCK_UNSUBSCRIBE_SECRET", "RESTOCK_WEB_TOKEN")


def config_secrets(config: Any, env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret a loaded watchlist holds: its `Secret` values, the credentials inside its
    channels' URLs (webhooks), and the secrets the process reads from the environment."""
    found = set(_secrets_in(config.notifiers, urls=True))
    found.update(_secrets_in(config.sources, urls=False))
    found.update(_secrets_in(config.settings, urls=False))
    environ = os.environ if env is None else env
    found.update(environ[name] for name in SECRET_ENV if environ.get(name))
    return found


def _secrets_in(value: object, *, urls: bool, depth: int = 0) -> Iterator[str]:
    if depth > 12:  # configuration models nest a few levels; nothing else is walked
        return
    if isinstance(value, Secret):
        yield value.reveal()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name), urls=urls, depth=depth + 1)
    elif isinstance(value, dict | list | tuple):
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            yield from _secrets_in(item, urls=urls, depth=depth + 1)
    elif isinstance(value, str | AnyUrl) and "://" in str(value):
        parts = urlsplit(str(value))
        if parts.password:  # a database or relay URL with its credentials, in any section
            yield parts.password
        if urls and parts.scheme in ("http", "https"):
            yield from url_secrets(str(value))


def url_secrets(url: str) -> Iterator[str]:
    """A URL's password, and its path and query when long enough to hold a token
    (Discord and Slack webhooks, `?token=` endpoints)."""
    parts = urlsplit(url)
    if parts.password:
        yield parts.password
    path = parts.path.rstrip("/")
    if len(path) >= MIN_URL_PART:
        yield path
    if len(parts.query) >= MIN_URL_PART:
        yield parts.query
