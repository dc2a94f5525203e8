"""Exceptions of restock-watcher.

    RestockError
    ├── ConfigError        the watchlist is wrong; lists every problem as file:line: path: reason
    ├── UsageError         a command line or chat command that cannot be understood
    ├── InvalidJAN         a JAN code with the wrong length, characters or check digit
    ├── UnsafeURL          an untrusted URL that points somewhere it must not (SSRF guard)
    └── StorageError       the database cannot be opened or migrated

Fetch failures are not exceptions: the fetcher turns them into a `Page` with `error` set and the
adapter into an `unknown` observation, so they never reach the detector as exceptions. Notifier
failures are values too (`notifiers.base.SendResult`).
"""

from __future__ import annotations

from dataclasses import dataclass


class RestockError(Exception):
    """Base of every error restock-watcher raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a watchlist, with where it is."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(RestockError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(RestockError):
    pass


class InvalidJAN(RestockError, ValueError):
    pass


class UnsafeURL(RestockError, ValueError):
    pass


class StorageError(RestockError):
    pass
