"""The add-a-watch form, read into typed values with a clear error for anything wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from watcher.core.jan import looks_like_jan, parse_jan
from watcher.core.model import Availability, ConditionFilter, SellerFilter, WatchConditions
from watcher.errors import InvalidJAN

MAX_TARGET = 2048
MAX_NAME = 200
MAX_PRICE = 100_000_000
ORDERABLE = (Availability.IN_STOCK, Availability.BACKORDER, Availability.PREORDER)
# Channels a web watch may use, with the recipient each one's messages go to.
BROADCAST_RECIPIENTS = {"console": "-", "webhook": "-", "x": "public", "discord": "-"}

_F = TypeVar("_F", ConditionFilter, SellerFilter)


class FormError(ValueError):
    """A field the form cannot take, said in words the page shows."""


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
        raise FormError(f"name: at most {MAX_NAME} characters")
    chosen = tuple(dict.fromkeys(v for k, v in fields if k == "channel"))
    unknown = [c for c in chosen if c not in channels]
    if unknown:
        raise FormError(f"channel: {unknown[0]!r} is not available here")
    conditions = WatchConditions(
        max_price=_price(values.get("max_price", "")),
        condition=_choice(ConditionFilter, values.get("condition") or "any", "condition"),
        seller=_choice(SellerFilter, values.get("seller") or "any", "seller"),
        buyable=_buyable([v for k, v in fields if k == "buyable"]),
    )
    return AddForm(typed, target, name, conditions, chosen)


def _target(typed: str) -> str:
    if not typed:
        raise FormError("target: give a product URL or a 13-digit JAN code")
    if len(typed) > MAX_TARGET:
        raise FormError(f"target: at most {MAX_TARGET} characters")
    if looks_like_jan(typed):
        try:
            return f"jan:{parse_jan(typed)}"
        except InvalidJAN as exc:
            raise FormError(f"target: {exc}") from None
    if not typed.lower().startswith(("http://", "https://")):
        raise FormError("target: a URL starts with http:// or https://")
    return typed


def _price(text: str) -> int | None:
    cleaned = text.strip().replace(",", "").replace("円", "").replace("¥", "")
    if not cleaned:
        return None
    if not cleaned.isascii() or not cleaned.isdigit() or not 0 < int(cleaned) <= MAX_PRICE:
        raise FormError(f"max_price: whole yen between 1 and {MAX_PRICE:,}, got {text!r}")
    return int(cleaned)


def _choice(kind: type[_F], text: str, field: str) -> _F:
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise FormError(f"{field}: one of {allowed}, got {text!r}") from None


def _buyable(values: Sequence[str]) -> frozenset[Availability]:
    if not values:
        return frozenset({Availability.IN_STOCK})
    by_value = {state.value: state for state in ORDERABLE}
    unknown = [value for value in values if value not in by_value]
    if unknown:
        raise FormError(f"buyable: {unknown[0]!r} is not an orderable state")
    return frozenset(by_value[value] for value in values)
