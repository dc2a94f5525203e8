"""What the web pages read and the operator actions they offer, as a storage role.

The pages need a few views the other roles have no reason to offer everyone (a watch list with
its last reason and restock, readings over a window, per-store unknown rates, subscriber counts
per channel) and a few operator actions (check now, pause, remove, retry, add). A backend that
can serve the web UI offers them through `web_views()` (`WebViewsSource`); the role lives in
`watcher.storage.sqlite.webviews` (on the repository's connection and lock) and
`watcher.storage.postgres.webviews` (on the repository's pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from watcher.core.model import Availability, Origin, WatchConditions


@dataclass(frozen=True, slots=True)
class Reading:
    """A product's state (and price) as read at one moment."""

    at: datetime
    state: Availability
    price: int | None = None


@dataclass(frozen=True, slots=True)
class WatchRow:
    """One active watch as the pages show it."""

    id: int
    key: str
    name: str
    origin: Origin
    product_id: int
    target: str
    store: str | None
    title: str | None
    state: Availability | None
    price: int | None
    reason: str | None
    last_checked_at: datetime | None
    next_check_at: datetime | None
    last_restock_at: datetime | None
    subscriptions: int
    paused: bool  # every subscription paused: checked, but no messages
    conditions: WatchConditions


@dataclass(frozen=True, slots=True)
class StoreReadings:
    store: str
    unknown: int
    total: int

    @property
    def unknown_share(self) -> float:
        return self.unknown / self.total if self.total else 0.0


class WebViews(Protocol):
    """The web UI's reads and operator actions. All methods are coroutines."""

    async def watches(self) -> list[WatchRow]: ...

    async def watch(self, key: str) -> WatchRow | None: ...

    async def readings(
        self, product_ids: Sequence[int], since: datetime
    ) -> dict[int, list[Reading]]:
        """Each product's readings since `since`, plus its last one before (the state it held)."""

    async def transitions(
        self, watch_ids: Sequence[int], since: datetime
    ) -> dict[int, list[Reading]]:
        """Each watch's events since `since` (plus its last one before) as readings."""

    async def subscribers_per_channel(self, watch_id: int) -> dict[str, int]:
        """Active subscriptions by channel: counts only, never who."""

    async def store_readings(self, since: datetime) -> list[StoreReadings]:
        """How many readings per store since `since`, and how many were `unknown`."""

    async def check_now(self, key: str, now: datetime) -> bool:
        """Make the watch's product due now (the scheduler takes it at its next claim)."""

    async def set_paused(self, key: str, paused: bool) -> bool:
        """Pause or resume every message of a watch; it is still checked meanwhile."""

    async def remove(self, key: str, now: datetime) -> bool:
        """End a watch added through the web (others belong to the YAML or to a chat user)."""

    async def retry_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Send a dead or failed delivery again, with fresh attempts."""

    async def add_watch(
        self,
        target: str,
        store: str | None,
        conditions: WatchConditions,
        recipients: Sequence[tuple[str, str]],
        now: datetime,
        *,
        name: str,
    ) -> str:
        """Store a watch with origin `web` and its (channel, recipient) subscriptions; its key."""


@runtime_checkable
class WebViewsSource(Protocol):
    """A repository that can serve the web UI."""

    def web_views(self) -> WebViews: ...
