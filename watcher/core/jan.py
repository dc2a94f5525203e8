"""JAN codes (the Japanese EAN-13 barcode): parsing and the check digit."""

from __future__ import annotations

import unicodedata

from watcher.errors import InvalidJAN


def check_digit(first12: str) -> int:
    """The EAN-13 check digit of the first twelve digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - total % 10) % 10


def parse_jan(text: str) -> str:
    """Return the 13-digit JAN in `text` (full-width digits, spaces and hyphens allowed).

    Raises InvalidJAN with a message a user can act on.
    """
    digits = unicodedata.normalize("NFKC", text).replace("-", "").replace(" ", "").strip()
    if not digits.isascii() or not digits.isdigit():
        raise InvalidJAN(f"a JAN code has only digits, got {text!r}")
    if len(digits) == 8:
        raise InvalidJAN("8-digit JAN (short JAN) codes are not supported; use the 13-digit code")
    if len(digits) != 13:
        raise InvalidJAN(f"a JAN code has 13 digits, got {len(digits)}")
    expected = check_digit(digits[:12])
    if int(digits[12]) != expected:
        raise InvalidJAN(f"check digit of {digits} should be {expected}, got {digits[12]}")
    return digits


def looks_like_jan(text: str) -> bool:
    """True when `text` is meant as a JAN code (all digits), whether or not it is valid."""
    digits = unicodedata.normalize("NFKC", text).replace("-", "").replace(" ", "").strip()
    return digits.isascii() and digits.isdigit() and len(digits) >= 8
