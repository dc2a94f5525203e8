"""The shared vocabulary: every part of restock-watcher speaks in these types.

Adapters turn a `Page` into an `Observation`; the detector turns observations into `Event`s for a
`Watch`; the outbox turns events into deliveries that notifiers send. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any

from watcher.core.forecast import RestockForecast, forecast_payload


class Availability(enum.StrEnum):
    """One availability state, used everywhere (adapters, detector, database, messages)."""

    IN_STOCK = "in_stock"
    BACKORDER = "backorder"
    PREORDER = "preorder"
    OUT_OF_STOCK = "out_of_stock"
    DISCONTINUED = "discontinued"
    # A lottery (抽選販売) application window is open: not orderable, but worth telling.
    LOTTERY = "lottery"
    UNKNOWN = "unknown"

    @property
    def orderable(self) -> bool:
        """True for states a shopper can order now (what a watch's buyable set may hold)."""
        return self in ORDERABLE_STATES


ORDERABLE_STATES = frozenset({Availability.IN_STOCK, Availability.BACKORDER, Availability.PREORDER})
# An observation that stands for an unchanged page (not read again) has its reason so prefixed.
UNCHANGED_PREFIX = "unchanged: "


class ItemCondition(enum.StrEnum):
    """The condition of the item offered."""

    NEW = "new"
    USED = "used"
    REFURBISHED = "refurbished"


class ConditionFilter(enum.StrEnum):
    """A watch's wish about the item's condition."""

    NEW = "new"
    USED = "used"
    ANY = "any"


class SellerFilter(enum.StrEnum):
    """A watch's wish about who sells: the store itself or the maker's official shop, or anyone."""

    OFFICIAL = "official"
    ANY = "any"


class EventKind(enum.StrEnum):
    RESTOCK = "restock"
    PREORDER_OPEN = "preorder_open"
    OUT_OF_STOCK = "out_of_stock"
    PRICE_DROP = "price_drop"
    LOTTERY_OPEN = "lottery_open"  # a lottery sale opened: only for watches that ask for it


# What a watch sends unless its `events` say otherwise: the restock-like events.
DEFAULT_EVENTS = frozenset(
    {EventKind.RESTOCK, EventKind.PREORDER_OPEN, EventKind.OUT_OF_STOCK, EventKind.PRICE_DROP}
)


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """A request an adapter wants sent; the fetcher sends it (adapters never do I/O)."""

    url: str
    method: str = "GET"
    # Left out of the repr: credentials travel in these.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    params: Mapping[str, str] = field(default_factory=dict)
    # Query parameters that carry a credential (an API's key): sent, but left out of the repr
    # and of every URL the fetch records (a page's final URL, an observation, a log line).
    secret_params: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched response, decoded: what an adapter parses.

    `status` is None when no response arrived (`error` then says why). `not_modified` is True for a
    304 answer to a conditional request: the body is empty and the previous content still holds.
    """

    url: str
    text: str = ""
    status: int | None = 200
    final_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    content_type: str | None = None
    encoding: str | None = None
    bytes: int = 0
    elapsed_ms: float = 0.0
    error: str | None = None
    not_modified: bool = False
    truncated: bool = False
    retry_after: float | None = None  # seconds the server asked us to wait (Retry-After)
    etag: str | None = None
    last_modified: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class FetchFacts:
    """What the fetch itself was like; carried on every observation for status and metrics."""

    status: int | None = None
    bytes: int = 0
    elapsed_ms: float = 0.0
    error: str | None = None
    not_modified: bool = False
    final_url: str | None = None

    @classmethod
    def of(cls, page: Page) -> FetchFacts:
        return cls(
            status=page.status,
            bytes=page.bytes,
            elapsed_ms=page.elapsed_ms,
            error=page.error,
            not_modified=page.not_modified,
            final_url=page.final_url,
        )


@dataclass(frozen=True, slots=True)
class Offer:
    """One seller's offer of a product in one store (from a product page or a JAN search)."""

    store: str
    url: str
    state: Availability
    price: int | None = None  # integer yen (or the page currency's smallest whole unit)
    currency: str | None = "JPY"
    title: str | None = None
    shop: str | None = None  # the shop inside a mall (Rakuten / Yahoo shop name)
    seller: str | None = None
    official: bool | None = None  # sold by the store itself or the maker's official shop
    condition: ItemCondition | None = None
    jan: str | None = None
    # A "from ¥N" summary of other sellers (Amazon's 新品 (5)点：￥89,800より): shown, never bought.
    summary: bool = False
    sku: str | None = None  # a variation row's SKU / item code (what a watch's `variant` may name)
    variant: str | None = None  # a variation row's own name or option text (ブルー / M)


@dataclass(frozen=True, slots=True)
class Observation:
    """One reading of one product: its availability and the facts that came with it.

    `reason` names the rule that decided the state (e.g. ``jsonld:InStock``,
    ``amazon:#availability 在庫あり``, ``blocked:captcha``) so a wrong verdict can be traced.
    """

    state: Availability
    reason: str
    price: int | None = None
    currency: str | None = "JPY"
    title: str | None = None
    seller: str | None = None
    ships_from: str | None = None
    official: bool | None = None
    condition: ItemCondition | None = None
    quantity: int | None = None  # 残り3点 -> 3
    offers: tuple[Offer, ...] = ()
    store: str | None = None
    url: str | None = None
    jan: str | None = None
    blocked: bool = False  # captcha / robot check / 429 / 503: the shop refused us
    # Some sources of a JAN search failed: what the others said may not be the whole truth, so a
    # not-buyable verdict from it is no evidence (a buyable one still is).
    partial: bool = False
    retry_after: float | None = None  # seconds the shop asked us to wait
    fetch: FetchFacts | None = None
    # A lottery's application deadline when the page shows one (aware; Asia/Tokyo for JST pages).
    lottery_deadline: datetime | None = None

    @classmethod
    def unknown(cls, reason: str, **facts: Any) -> Observation:
        return cls(state=Availability.UNKNOWN, reason=reason, **facts)

    def reading(self) -> str | None:
        """What a stored observation says, as one text (None for `unknown`): two checks with the
        same reading record the same row but for the fetch's facts. An unchanged page's reading
        is its last one's."""
        if self.state is Availability.UNKNOWN:
            return None
        reason = self.reason.removeprefix(UNCHANGED_PREFIX)
        return f"{self.state.value}\x1f{self.price}\x1f{int(self.blocked)}\x1f{reason}"

    def with_fetch(self, page: Page) -> Observation:
        return replace(self, fetch=FetchFacts.of(page), url=self.url or page.url)

    def to_json(self) -> dict[str, Any]:
        """The `restock check --json` object (a contract: see DESIGN.md)."""
        data = asdict(self)
        data["state"] = self.state.value
        data["condition"] = self.condition.value if self.condition else None
        data["offers"] = [_offer_json(o) for o in self.offers]
        deadline = self.lottery_deadline
        data["lottery_deadline"] = deadline.isoformat() if deadline is not None else None
        return data


def _offer_json(offer: Offer) -> dict[str, Any]:
    data = asdict(offer)
    data["state"] = offer.state.value
    data["condition"] = offer.condition.value if offer.condition else None
    return data


@dataclass(frozen=True, slots=True)
class WatchConditions:
    """A buyer's conditions: which observations count as buyable for this watch, and which
    events the buyer wants to hear (`events`).

    With `max_price` set, an offer whose price could not be read does not count: a scalper's
    price must not get through because a page hid it.
    """

    max_price: int | None = None
    condition: ConditionFilter = ConditionFilter.ANY
    seller: SellerFilter = SellerFilter.ANY
    exclude_sellers: tuple[str, ...] = ()
    buyable: frozenset[Availability] = frozenset({Availability.IN_STOCK})
    events: frozenset[EventKind] = DEFAULT_EVENTS  # what the watch sends (see EventKind)
    stores: frozenset[str] = frozenset()  # JAN watches: only offers from these stores (empty: any)
    # One variation of a product page (a colour, a size, a SKU): see `variant_matches`.
    variant: str | None = None

    def accepts_offer(self, offer: Offer) -> bool:
        """True when this offer alone would satisfy the watch."""
        if offer.summary or offer.state not in self.buyable:
            return False
        name = offer.variant if offer.variant is not None else offer.title
        if self.variant and not variant_matches(self.variant, name, offer.sku):
            return False
        if self.stores and offer.store not in self.stores:
            return False
        seller = offer.seller or offer.shop
        return self._accepts(offer.price, offer.condition, seller, offer.official)

    def buyable_offers(self, obs: Observation) -> list[Offer]:
        """Matching offers, cheapest first (unpriced last)."""
        hits = [o for o in obs.offers if self.accepts_offer(o)]
        return sorted(hits, key=lambda o: (o.price is None, o.price or 0))

    def is_buyable(self, obs: Observation) -> bool:
        """The verdict the detector debounces. An observation whose own state cannot be ordered
        (`unknown` included) is never buyable, whatever its offers say: a page whose product
        reads sold out overall does not turn buyable through one of its rows."""
        if not obs.state.orderable:
            return False
        if any(not offer.summary for offer in obs.offers):
            return bool(self.buyable_offers(obs))
        if self.variant and not variant_matches(self.variant, obs.title, None):
            return False  # a page without variation rows: only a title naming the variant counts
        return obs.state in self.buyable and self._accepts(
            obs.price, obs.condition, obs.seller, obs.official
        )

    def _accepts(
        self,
        price: int | None,
        condition: ItemCondition | None,
        seller: str | None,
        official: bool | None,
    ) -> bool:
        if self.max_price is not None and (price is None or price > self.max_price):
            return False
        if not _condition_ok(self.condition, condition):
            return False
        if self.seller is SellerFilter.OFFICIAL and official is not True:
            return False
        return not (seller and _seller_excluded(seller, self.exclude_sellers))


def variant_matches(variant: str, *texts: str | None) -> bool:
    """True when a row's name, option text or SKU holds the watch's `variant`, compared after
    NFKC (full-width and half-width alike), case-insensitively and ignoring spaces."""
    wanted = _folded(variant)
    return bool(wanted) and any(wanted in _folded(text) for text in texts if text)


def _folded(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _condition_ok(wanted: ConditionFilter, actual: ItemCondition | None) -> bool:
    if wanted is ConditionFilter.ANY:
        return True
    # An item whose page states no condition is new: shops only say so for used goods.
    actual = actual or ItemCondition.NEW
    if wanted is ConditionFilter.NEW:
        return actual is ItemCondition.NEW
    return actual is not ItemCondition.NEW


def _seller_excluded(seller: str, excluded: Iterable[str]) -> bool:
    folded = seller.casefold()
    return any(name.casefold() in folded for name in excluded if name)


@dataclass(frozen=True, slots=True)
class TextRules:
    """A watch's own reading rules for a page the built-in rules misread (trusted YAML only).

    `selector` narrows the page to the CSS-selected elements' text; `phrases` are tried in order
    against that text and the first one found decides the state.
    """

    selector: str | None = None
    phrases: tuple[tuple[str, Availability], ...] = ()


@dataclass(frozen=True, slots=True)
class Notify:
    """Who hears about a watch's events, per channel."""

    telegram: tuple[int, ...] = ()
    email: tuple[str, ...] = ()
    x: bool = False
    console: bool = False
    webhook: bool = False
    line: tuple[str, ...] = ()
    discord: bool = False


@dataclass(frozen=True, slots=True)
class Watch:
    """A product plus one buyer's conditions. `key` (the watch's identity) survives reloads."""

    key: str
    name: str
    url: str | None = None
    jan: str | None = None
    store: str | None = None
    stores: tuple[str, ...] = ()
    interval: timedelta | None = None
    conditions: WatchConditions = field(default_factory=WatchConditions)
    notify: Notify = field(default_factory=Notify)
    once: bool = False
    notify_on_first: bool = False
    rules: TextRules | None = None

    @property
    def target(self) -> str:
        """What is fetched: the URL or ``jan:<code>``; one fetch serves every watch on it."""
        if self.url:
            return self.url
        return f"jan:{self.jan}"


@dataclass(frozen=True, slots=True)
class Event:
    """Something a watch's subscribers should hear about."""

    kind: EventKind
    watch_key: str
    watch_name: str
    state: Availability
    observed_at: datetime  # timezone-aware
    url: str | None = None
    store: str | None = None
    price: int | None = None
    currency: str | None = "JPY"
    title: str | None = None
    seller: str | None = None
    shop: str | None = None  # the shop inside a mall (Rakuten / Yahoo! Shopping)
    previous_price: int | None = None
    lottery_deadline: datetime | None = None  # timezone-aware, when the page states one
    forecast: RestockForecast | None = None  # when restocks usually happen, for a restock
    id: int | None = None  # set once stored

    def to_webhook_json(self) -> dict[str, Any]:
        """The webhook payload (a contract: see DESIGN.md); a `lottery_open` event also carries
        `lottery_deadline` (ISO 8601 with offset, or null when the page states none)."""
        payload: dict[str, Any] = {
            "event": self.kind.value,
            "id": self.id,
            "watch": self.watch_name,
            "url": self.url,
            "store": self.store,
            "state": self.state.value,
            "price": self.price,
            "currency": self.currency,
            "previous_price": self.previous_price,
            "title": self.title,
            "seller": self.seller,
            "shop": self.shop,
            "observed_at": self.observed_at.isoformat(),
        }
        if self.kind is EventKind.LOTTERY_OPEN:
            deadline = self.lottery_deadline
            payload["lottery_deadline"] = deadline.isoformat() if deadline else None
        payload["forecast"] = forecast_payload(self.forecast)
        return payload


class Outcome(enum.StrEnum):
    """What became of one delivery: what a notifier reports and the outbox records."""

    SENT = "sent"
    RETRY = "retry"  # try again at `retry_at`
    FAILED = "failed"  # permanent: never retried
    SKIPPED = "skipped"  # deliberately not sent (duplicate, budget, stale, quiet hours...)


# Event kinds after which a one-shot subscription has had its message ("it is back").
ENDING_EVENT_KINDS = frozenset({EventKind.RESTOCK, EventKind.PREORDER_OPEN})


class Origin(enum.StrEnum):
    """Where a watch or subscription came from: the operator's YAML, a chat user, the web UI."""

    YAML = "yaml"
    CHAT = "chat"
    WEB = "web"


class QuietMode(enum.StrEnum):
    HOLD = "hold"  # keep messages and send them when the quiet hours end
    DROP = "drop"  # skip messages that fall into the quiet hours


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A recipient's quiet hours, in the recipient's local time (`start` may be after `end`)."""

    start: time
    end: time
    mode: QuietMode = QuietMode.HOLD
