"""What a chat user (or a web form) may do with their subscriptions, whatever the front-end.

Every front-end parses its own input into these calls and words the answers its own way: a
refusal is a `Refused` carrying a key (`quota`, `bad_url`, `jan_unavailable`, `link_unknown`,
`not_found`) and the values its message needs. The rules live here once: the quota, the URL
guard (resolved, with a deadline) on every user URL, canonical URLs so one product is fetched
once, and which operator watches may be joined by a shared link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from notifiers.render import canonical_url
from watcher.core.model import DEFAULT_EVENTS, ConditionFilter, EventKind, WatchConditions
from watcher.errors import UnsafeURL, UsageError
from watcher.net.netguard import URLGuard
from watcher.storage.interface import ChatStore, StatusReader, Subscription
from watcher.stores.registry import adapter_for

LOG = logging.getLogger("restock.subscriptions")

RESOLVE_TIMEOUT = 10.0  # seconds a user's URL may take to resolve before it is refused


class Refused(UsageError):
    """A request that cannot be done; `key` names the answer, `values` fill it in."""

    def __init__(self, key: str, **values: str | int) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """A product to watch (a URL or a JAN code), before the URL is checked against the guard."""

    url: str | None = None
    jan: str | None = None
    max_price: int | None = None
    condition: ConditionFilter = ConditionFilter.ANY
    standing: bool = False  # keeps telling after the first restock (else: once)
    lottery: bool = False  # also tell when a lottery sale (抽選販売) opens

    @property
    def target(self) -> str:
        return self.url if self.url is not None else f"jan:{self.jan}"

    @property
    def events(self) -> frozenset[EventKind]:
        return DEFAULT_EVENTS | {EventKind.LOTTERY_OPEN} if self.lottery else DEFAULT_EVENTS


@dataclass(frozen=True, slots=True)
class AcceptedWatch:
    """A request that passed the checks: the product to fetch, its store, the conditions."""

    target: str  # a canonical URL or "jan:<code>"
    store: str | None
    conditions: WatchConditions
    one_shot: bool


class SubscriptionStore(ChatStore, StatusReader, Protocol):
    """What the use cases ask of the storage."""


@dataclass(frozen=True, slots=True)
class SubscriptionRules:
    """The operator's limits on what chats may subscribe to."""

    max_per_chat: int
    jan_search: bool  # a JAN watch needs a search source, or it could never fire


class Subscriptions:
    """The use cases: accept and subscribe, join a shared watch, list, pause, resume, remove."""

    def __init__(
        self,
        store: SubscriptionStore,
        guard: URLGuard,
        rules: SubscriptionRules,
        *,
        now: Callable[[], datetime] | None = None,
        refused_url_hint: str = "",
    ) -> None:
        self.store = store
        self.guard = guard
        self.rules = rules
        self._now = now or (lambda: datetime.now(UTC))
        self._hint = refused_url_hint  # what a refused URL's answer lists (the allowed stores)

    def apply_rules(self, rules: SubscriptionRules) -> None:
        """New limits from a reloaded watchlist; they apply to the next request."""
        self.rules = rules

    async def accept(self, chat_id: int, request: WatchRequest) -> AcceptedWatch:
        """Check a request before anything is written: the chat's quota, then the URL guard."""
        await self.check_quota(chat_id)
        target, store = await self.checked_target(request)
        conditions = WatchConditions(
            max_price=request.max_price, condition=request.condition, events=request.events
        )
        return AcceptedWatch(target, store, conditions, one_shot=not request.standing)

    async def subscribe(self, chat_id: int, accepted: AcceptedWatch) -> Subscription:
        """Subscribe a chat to an accepted product; the chat's own watch is reused if it has one
        with the same conditions."""
        return await self.store.add_chat_subscription(
            chat_id,
            accepted.target,
            accepted.store,
            accepted.conditions,
            self._now(),
            one_shot=accepted.one_shot,
        )

    async def join_shared(self, chat_id: int, watch_key: str) -> Subscription:
        """Subscribe to a watch the operator shares by link.

        Only watches on a public store product can be joined this way: a guessed key must not
        reveal an operator's private watch (its YAML may point anywhere, even at localhost).
        """
        if not await self.shareable(watch_key):
            raise Refused("link_unknown")
        await self.check_quota(chat_id)
        sub = await self.store.subscribe_to_watch(chat_id, watch_key, self._now())
        if sub is None:
            raise Refused("link_unknown")
        return sub

    async def list(self, chat_id: int) -> list[Subscription]:
        return await self.store.list_subscriptions(chat_id)

    async def set_paused(self, chat_id: int, subscription_id: int, paused: bool) -> bool:
        """Pause or resume one of the chat's subscriptions; False if it is not theirs."""
        return await self.store.set_paused(subscription_id, chat_id, paused)

    async def set_all_paused(self, chat_id: int, paused: bool) -> int:
        """Pause or resume every subscription of the chat; returns how many changed."""
        changed = 0
        for sub in await self.store.list_subscriptions(chat_id):
            if sub.paused != paused:
                changed += await self.store.set_paused(sub.id, chat_id, paused)
        return changed

    async def remove(self, chat_id: int, subscription_id: int) -> bool:
        """End one of the chat's subscriptions; False if it is not theirs or already ended."""
        return await self.store.remove_subscription(subscription_id, chat_id, self._now())

    async def check_quota(self, chat_id: int) -> None:
        limit = self.rules.max_per_chat
        if await self.store.count_active(chat_id) >= limit:
            raise Refused("quota", max=limit)

    async def checked_target(self, request: WatchRequest) -> tuple[str, str | None]:
        """The product to fetch and its store; Refused unless the URL is safe to fetch."""
        if request.url is None:
            if not self.rules.jan_search:
                raise Refused("jan_unavailable")
            return request.target, None
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                url = await self.guard.check_resolved(request.url)
        except (UnsafeURL, TimeoutError) as exc:
            LOG.info("refused url: %s", exc)
            raise Refused("bad_url", stores=self._hint) from None
        url = canonical_url(url) or url  # tracking parameters would split one product in two
        return url, adapter_for(url).name

    async def shareable(self, watch_key: str) -> bool:
        history = await self.store.history(watch_key, limit=1)
        if history is None or not history.status.active:
            return False
        target = history.status.target
        if target.startswith("jan:"):
            return True
        try:
            self.guard.check(target)
        except UnsafeURL:
            return False
        return True
