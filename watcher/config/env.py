"""`${VAR}` and `${VAR:-default}` in watchlist strings, filled from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# `$${` stays a literal `${`; `${NAME}` or `${NAME:-default}` is a reference; any other `${` is bad.
_REFERENCE = re.compile(
    r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bad>\$\{)"
)


@dataclass(frozen=True, slots=True)
class Expansion:
    """A string with its references filled in, and what could not be filled."""

    text: str
    missing: tuple[str, ...] = ()  # variables that are not set (and have no default)
    malformed: bool = False  # a `${` that is not a valid reference


def has_reference(text: str) -> bool:
    return "${" in text


def expand(text: str, env: Mapping[str, str]) -> Expansion:
    """Fill every reference in `text`. A missing variable becomes "" and is listed in `missing`."""
    missing: list[str] = []
    malformed = False

    def fill(match: re.Match[str]) -> str:
        nonlocal malformed
        if match.group("bad") is not None:
            malformed = True
            return match.group(0)
        name = match.group("name")
        if name is None:
            return "${"
        value = env.get(name)
        default = match.group("default")
        if default is not None and not value:
            return default
        if value is None:
            missing.append(name)
            return ""
        return value

    result = _REFERENCE.sub(fill, text)
    return Expansion(result, tuple(missing), malformed)
