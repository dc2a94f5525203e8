"""What a database setting names: a SQLite path, or a URL whose scheme names the backend."""

from __future__ import annotations

from pathlib import Path

SCHEME_ALIASES = {"postgres": "postgresql"}
SQLITE_URL_PREFIX = "sqlite:///"
IN_MEMORY = ":memory:"


def is_url(path_or_url: str | Path) -> bool:
    return "://" in str(path_or_url)


def database_scheme(path_or_url: str | Path) -> str:
    """The backend a database setting names: its URL scheme, or "sqlite" for a plain path."""
    text = str(path_or_url)
    if not is_url(text):
        return "sqlite"
    scheme = text.split("://", 1)[0].lower().split("+", 1)[0]
    return SCHEME_ALIASES.get(scheme, scheme)


def resolve_database(path_or_url: str | Path, directory: Path) -> str:
    """The setting with a relative SQLite path made relative to `directory` (the watchlist's
    folder); a `sqlite:///relative` URL likewise; other URLs unchanged."""
    text = str(path_or_url)
    if text.startswith(SQLITE_URL_PREFIX):
        path = text.removeprefix(SQLITE_URL_PREFIX)
        return SQLITE_URL_PREFIX + _under(path, directory) if path else text
    if is_url(text):
        return text
    return _under(text, directory)


def local_file(path_or_url: str | Path) -> Path | None:
    """The file a SQLite setting points at (None for a server URL or an in-memory database)."""
    text = str(path_or_url)
    if text.startswith(SQLITE_URL_PREFIX):
        text = text.removeprefix(SQLITE_URL_PREFIX)
    if is_url(text) or text in ("", IN_MEMORY):
        return None
    return Path(text)


def _under(path: str, directory: Path) -> str:
    if path == IN_MEMORY or Path(path).is_absolute():
        return path
    return str(directory / path)
