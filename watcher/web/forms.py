"""The add-a-watch form, read into typed values with a clear error for anything wrong."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from watcher.core.jan import check_digit, looks_like_jan, parse_jan
from watcher.core.model import Availability, ConditionFilter, SellerFilter, WatchConditions
from watcher.errors import InvalidJAN
from watcher.web.i18n import Language, form_error

MAX_TARGET = 2048
MAX_NAME = 200
MAX_PRICE = 100_000_000
ORDERABLE = (Availability.IN_STOCK, Availability.BACKORDER, Availability.PREORDER)
# Channels a web watch may use, with the recipient each one's messages go to.
BROADCAST_RECIPIENTS = {"console": "-", "webhook": "-", "x": "public", "discord": "-"}

_F = TypeVar("_F", ConditionFilter, SellerFilter)


class FormError(ValueError):
    """A field the form cannot take: a key of `i18n.FORM_ERRORS` and the values it names."""

    def __init__(self, key: str, **values: str | int) -> None:
        self.key = key
        self.values = values
        super().__init__(form_error("en", key, values))

    def said_in(self, language: Language) -> str:
        return form_error(language, self.key, self.values)


@dataclass(frozen=True, slots=True)
class AddForm:
    typed: str  # the URL or JAN as typed (stripped)
    target: str  # a URL or "jan:<code>"
    name: str
    conditions: WatchConditions
    channels: tuple[str, ...]
    store: str | None = None

    @property
    def url(self) -> str | None:
        return None if self.target.startswith("jan:") else self.target

    @property
    def recipients(self) -> list[tuple[str, str]]:
        return [(channel, BROADCAST_RECIPIENTS[channel]) for channel in self.channels]


def web_channels(configured: Sequence[str]) -> list[str]:
    """The configured channels a web watch can notify (those with one, shared recipient)."""
    return [name for name in configured if name in BROADCAST_RECIPIENTS]


def parse_add_form(fields: Sequence[tuple[str, str]], channels: Sequence[str]) -> AddForm:
    values = dict(fields)
    typed = values.get("target", "").strip()
    target = _target(typed)
    name = values.get("name", "").strip() or typed
    if len(name) > MAX_NAME:
        raise FormError("name_long", max=MAX_NAME)
    chosen = tuple(dict.fromkeys(v for k, v in fields if k == "channel"))
    unknown = [c for c in chosen if c not in channels]
    if unknown:
        raise FormError("channel_unknown", value=unknown[0])
    conditions = WatchConditions(
        max_price=_price(values.get("max_price", "")),
        condition=_choice(ConditionFilter, values.get("condition") or "any", "condition"),
        seller=_choice(SellerFilter, values.get("seller") or "any", "seller"),
        buyable=_buyable([v for k, v in fields if k == "buyable"]),
    )
    return AddForm(typed, target, name, conditions, chosen)


def _target(typed: str) -> str:
    if not typed:
        raise FormError("target_missing")
    if len(typed) > MAX_TARGET:
        raise FormError("target_long", max=MAX_TARGET)
    if looks_like_jan(typed):
        return _jan(typed)
    if not typed.lower().startswith(("http://", "https://")):
        raise FormError("target_scheme")
    return typed


def _jan(typed: str) -> str:
    try:
        return f"jan:{parse_jan(typed)}"
    except InvalidJAN:
        digits = "".join(c for c in unicodedata.normalize("NFKC", typed) if c.isdigit())
    if len(digits) == 8:
        raise FormError("jan_short")
    if len(digits) != 13:
        raise FormError("jan_length", count=len(digits))
    raise FormError("jan_check_digit", expected=check_digit(digits[:12]), got=digits[12])


def _price(text: str) -> int | None:
    cleaned = text.strip().replace(",", "").replace("円", "").replace("¥", "")
    if not cleaned:
        return None
    if not cleaned.isascii() or not cleaned.isdigit() or not 0 < int(cleaned) <= MAX_PRICE:
        raise FormError("max_price", max=f"{MAX_PRICE:,}", value=text)
    return int(cleaned)


def _choice(kind: type[_F], text: str, field: str) -> _F:
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise FormError("choice", field=field, allowed=allowed, value=text) from None


def _buyable(values: Sequence[str]) -> frozenset[Availability]:
    if not values:
        return frozenset({Availability.IN_STOCK})
    by_value = {state.value: state for state in ORDERABLE}
    unknown = [value for value in values if value not in by_value]
    if unknown:
        raise FormError("buyable", value=unknown[0])
    return frozenset(by_value[value] for value in values)
