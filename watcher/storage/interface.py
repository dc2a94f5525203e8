"""The storage interface: what the engine, the dispatcher and the chat bot may ask of the database.

Callers never see SQL. The interface is split by role (the watchlist, the checks, the outbox,
leases, hosts, spends, reloads, status reads, the chats), so a caller can ask for the part it
needs; `Repository` is all of them. `watcher.storage.sqlite` implements it on SQLite; a
PostgreSQL backend implements the same Protocols for several workers on one database.
`watcher.storage.open_repository` picks the backend from the database URL.

Conventions every implementation keeps:
- Every datetime crossing this interface is timezone-aware UTC; a naive datetime is a bug and is
  refused with ValueError. Callers pass `now` explicitly (the clock is injected).
- Work is shared between workers through leases: `claim_*` marks rows with an owner and an expiry
  in one atomic statement, so two workers never get the same row, and a crashed worker's rows come
  back by themselves once its leases expire.
- `record_check` is the transactional outbox: the observation, the detector states, the events and
  their deliveries are written together or not at all. It may also lease the new deliveries to a
  dispatcher in that transaction (`DeliveryClaim`), which then sends them without a claim.
- A detector state is an opaque JSON-able dict: the storage keeps it, never reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from watcher.core.model import (
    Availability,
    Event,
    Observation,
    Origin,
    Outcome,
    QuietHours,
    Watch,
    WatchConditions,
)
from watcher.storage.codec import JSONDict


@dataclass(frozen=True, slots=True)
class DueProduct:
    """A product claimed for checking, with what the fetcher and scheduler need to know."""

    id: int
    target: str  # a URL or "jan:<code>"
    store: str | None
    due_at: datetime
    lease_until: datetime
    interval: timedelta | None  # the shortest interval of its active watches (None: default)
    subscribers: int  # active, unpaused subscriptions across its watches (the priority)
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    last_state: Availability | None = None
    last_checked_at: datetime | None = None
    consecutive_errors: int = 0
    # Its active watches when the claim read them too (None: `load_watches_for` reads them).
    watches: tuple[StoredWatch, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class StoredWatch:
    """An active watch as stored: its model, its detector state (None before the first check)."""

    id: int
    product_id: int
    origin: Origin
    watch: Watch
    # The detector state as stored (JSON text): watches that share a state share its text, so
    # the engine reads each distinct text once.
    state_text: str | None
    paused: bool = False

    @property
    def state(self) -> JSONDict | None:
        return None if self.state_text is None else dict(json.loads(self.state_text))


@dataclass(frozen=True, slots=True)
class WatchDecision:
    """What the detector decided for one watch after one observation.

    `finished` ends the watch (a `once` watch after its notification): it becomes inactive in the
    same transaction.
    """

    watch_id: int
    state: JSONDict
    events: Sequence[Event] = ()
    finished: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """A dispatcher asking for a check's new deliveries as they are written.

    `record_check` leases the deliveries it creates on `channels` to `owner` for `lease`, in the
    check's own transaction, so the dispatcher gets them from the engine in memory instead of
    claiming them from the database after a wake-up.
    """

    owner: str
    lease: timedelta
    channels: frozenset[str]


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The product-level facts written by `record_check` besides the observation."""

    next_due_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    error: bool = False  # the check failed (fetch error or block): counts consecutive errors
    # When set, the check is stored only if the product's lease is still this worker's: a check
    # whose lease expired and passed to another worker is dropped whole (that one decides).
    lease_owner: str | None = None
    # When set, the deliveries this check creates are claimed for that dispatcher at once.
    claim_for: DeliveryClaim | None = None


@dataclass(frozen=True, slots=True)
class RecordedCheck:
    """What `record_check` stored: the events with their ids, and how many deliveries.

    `claimed` are the new deliveries leased to `CheckOutcome.claim_for` (empty without one).
    """

    events: tuple[Event, ...]
    deliveries: int
    lease_lost: bool = False  # nothing was stored: the lease had passed to another check
    claimed: tuple[ClaimedDelivery, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to one dispatcher. `attempts` counts this attempt."""

    id: int
    event: Event  # with its id set
    channel: str
    recipient: str
    attempts: int
    lease_until: datetime
    subscription_id: int | None = None
    quiet: QuietHours | None = None
    language: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.event.id}:{self.channel}:{self.recipient}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of one claimed delivery, for `record_results`.

    `detail` is the error (retry, failed) or the reason (skipped); `retry_at` is when a retry is
    due, and only a retry has one.
    """

    delivery_id: int
    outcome: Outcome
    detail: str = ""
    retry_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.outcome == Outcome.RETRY) != (self.retry_at is not None):
            raise ValueError(f"delivery {self.delivery_id}: retry_at goes with a retry, only")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One recipient on one channel following one watch."""

    id: int
    watch_id: int
    watch_key: str
    watch_name: str
    target: str
    store: str | None
    channel: str
    recipient: str
    origin: Origin
    active: bool
    paused: bool
    one_shot: bool
    conditions: WatchConditions
    created_at: datetime
    quiet: QuietHours | None = None
    language: str | None = None
    product_id: int | None = None  # what is fetched for it (its restock history, forecast)
    last_state: Availability | None = None  # the product's state at its last known check


@dataclass(frozen=True, slots=True)
class ChatUser:
    chat_id: int
    user_id: int | None
    language: str | None
    blocked: bool
    created_at: datetime
    quiet: QuietHours | None = None


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    """A stored observation (the last few hundred per product are kept)."""

    at: datetime
    state: Availability
    price: int | None
    reason: str
    status: int | None
    bytes: int
    ms: float
    blocked: bool = False
    # Checks after it that read the same (repeats: they record no observation of their own).
    repeats: int = 0


@dataclass(frozen=True, slots=True)
class WatchStatus:
    key: str
    name: str
    target: str
    store: str | None
    origin: Origin
    active: bool
    state: JSONDict | None
    last_state: Availability | None
    last_price: int | None
    last_checked_at: datetime | None
    next_check_at: datetime | None
    subscribers: int
    last_events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class WatchHistory:
    status: WatchStatus
    observations: tuple[ObservationRecord, ...]
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    event: Event
    channel: str
    recipient: str
    attempts: int
    status: str  # "dead" (retries exhausted) or "failed" (permanent)
    last_error: str | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class HostState:
    """One host's shared politeness budget and backoff (one row per host, shared by workers)."""

    host: str
    next_allowed_at: datetime | None = None
    backoff_until: datetime | None = None
    consecutive_blocks: int = 0
    last_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AwaitedProduct:
    target: str
    store: str | None
    title: str | None
    waiting: int


@dataclass(frozen=True, slots=True)
class Stats:
    users: int
    active_users: int
    blocked_users: int
    watches: Mapping[str, int]  # active watches by origin
    subscriptions: int  # active subscriptions
    checks_by_store: Mapping[str, int]
    blocks_by_store: Mapping[str, int]
    most_awaited: tuple[AwaitedProduct, ...] = field(default_factory=tuple)


class WatchlistStore(Protocol):
    """The operator's watchlist, kept in step with the YAML."""

    async def sync_yaml_watches(
        self,
        watches: Sequence[Watch],
        now: datetime,
        first_due: Callable[[str], datetime] | None = None,
    ) -> None:
        """Make the stored YAML watches match `watches`, keyed by `Watch.key`, in one transaction.

        An unchanged key keeps its detector state; a key whose target changed starts afresh;
        YAML watches missing from `watches` become inactive (kept, with their history). Notify
        lists become subscriptions (telegram: chat id, email: address, x: "public",
        console/webhook: "-"). New products are due at `first_due(target)` (default: `now`).
        """


class CheckStore(Protocol):
    """Products due for checking, and checks stored with their events (the outbox)."""

    async def claim_due_products(
        self, owner: str, now: datetime, limit: int, lease: timedelta
    ) -> list[DueProduct]:
        """Lease up to `limit` due products, each with its active watches read by the same
        statement, in `due_sort_key` order (then id): due time moved earlier by PRIORITY_STEP
        per priority tier, so popular products go first yet a lonely one that has waited long
        enough still gets its turn (`watcher.core.schedule`). Inactive products, and products
        whose lease runs past `now`, are passed over. A claim reads at most `limit` products of
        each tier, however many are due."""

    async def release_product(self, product_id: int, due_at: datetime) -> None:
        """Give a claimed product back unchecked, due again at `due_at` (e.g. host backing off)."""

    async def load_watches(self, product_id: int) -> list[StoredWatch]:
        """The active watches of a product, with their detector states."""

    async def load_watches_for(self, product_ids: Sequence[int]) -> dict[int, list[StoredWatch]]:
        """`load_watches` for a batch of claimed products at once (products without any omitted)."""

    async def record_check(
        self,
        product_id: int,
        observation: Observation,
        decisions: Sequence[WatchDecision],
        outcome: CheckOutcome,
        now: datetime,
    ) -> RecordedCheck:
        """Store one check in ONE transaction: the outbox.

        Writes the observation, the product's fields (next due time, validators, last state) and
        releases its lease; each watch's new detector state; each event; and one pending delivery
        per active, unpaused subscription of the event's watch. A one-shot subscription ends in
        the same transaction when a `restock` or `preorder_open` delivery is created for it (so it
        never gets a second "it is back" message, even if the first is still queued). A restock
        or preorder event also records the restock time for adaptive polling.

        With `outcome.claim_for`, the new deliveries on its channels that `claim_deliveries`
        would claim at `now` are leased to its owner in the same transaction (an attempt counted,
        as a claim counts it) and returned in `RecordedCheck.claimed`. If the process dies before
        sending them, their lease expires and any dispatcher claims them as usual.
        """

    async def record_restock(self, product_id: int, store: str | None, at: datetime) -> None:
        """Remember a restock time (record_check already does this for restock events)."""

    async def restock_times(
        self, *, product_id: int | None = None, store: str | None = None, limit: int = 500
    ) -> list[datetime]:
        """Recent restock times of a product or of a whole store, newest first."""


class DeliveryStore(Protocol):
    """The outbox's deliveries: claimed, sent, retried, dead-lettered; recipients that go."""

    async def claim_deliveries(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease: timedelta,
        channel: str | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` pending deliveries due at `now`, oldest first; counts an attempt."""

    async def mark_sent(self, delivery_id: int, now: datetime) -> None:
        """The delivery went out."""

    async def mark_retry(
        self, delivery_id: int, at: datetime, error: str, now: datetime, max_attempts: int
    ) -> str:
        """Try again at `at`, or dead-letter once `max_attempts` are spent. Returns the status."""

    async def postpone_many(self, held: Sequence[tuple[int, datetime]], now: datetime) -> None:
        """Hold each (delivery id, until) pair's delivery until then without counting the attempt
        (quiet hours, a rate limit), in ONE transaction."""

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        """A permanent failure: never retried, listed with the dead letters."""

    async def mark_skipped(self, delivery_id: int, reason: str, now: datetime) -> None:
        """Deliberately not sent (quiet hours in drop mode, duplicate...)."""

    async def record_results(
        self, results: Sequence[DeliveryResult], now: datetime, max_attempts: int
    ) -> list[str]:
        """Record a batch's results in ONE transaction; returns each delivery's status, in order.

        Each result means what its own method does (`mark_sent`, `mark_retry` with dead-lettering
        once `max_attempts` are spent, `mark_failed`, `mark_skipped`). A delivery that is no
        longer pending (skipped meanwhile, or sent by another worker) is left as it is and its
        current status returned. An unknown delivery id is refused and nothing is written.
        """

    async def deactivate_recipient(self, channel: str, recipient: str, now: datetime) -> int:
        """The recipient is gone for good: end its subscriptions, skip its pending deliveries.

        Returns the number of subscriptions ended. A Telegram chat is also marked blocked.
        """

    async def end_subscription(
        self, channel: str, recipient: str, watch_key: str, now: datetime
    ) -> bool:
        """End one recipient's subscription to one watch (an e-mail one-click unsubscribe).

        Its pending deliveries are skipped. The recipient matches case-insensitively (e-mail
        addresses are written in any case). False when there was no active subscription.
        """

    async def rewrite_recipient(self, channel: str, old: str, new: str) -> None:
        """The recipient moved (a Telegram group became a supergroup): follow it."""


class LeaseStore(Protocol):
    """Leases on products and deliveries, given back or inspected across workers."""

    async def release_leases(self, owner: str) -> None:
        """Give back every product and delivery `owner` holds (graceful stop)."""

    async def release_deliveries(self, owner: str, delivery_ids: Sequence[int]) -> None:
        """Give back these pending deliveries if `owner` still holds them, uncounting the attempt.

        For deliveries claimed but never sent: a stopping dispatcher's, or a removed channel's.
        """

    async def lease_owners(self, now: datetime) -> list[str]:
        """Workers holding unexpired leases on products or pending deliveries, sorted.

        A restarted process releases those of its dead predecessors on the same machine at once
        instead of waiting for their leases to expire.
        """


class HostStore(Protocol):
    """Per-host politeness shared by workers."""

    async def save_host_state(self, state: HostState) -> None:
        """Store a host's backoff (after a block, or cleared after a success)."""

    async def host_states(self) -> list[HostState]:
        """Every known host's state."""


class SpendStore(Protocol):
    """Budgets of units over a rolling window, shared by every worker (X's daily posts)."""

    async def spend(
        self, budget: str, cost: int, now: datetime, *, limit: int, window: timedelta
    ) -> int | None:
        """Record a spend of `cost` units from `budget` at `now` if the spends in the window
        ending at `now` leave room for it under `limit`: the spend's id, or None (nothing
        recorded). Check and record are one transaction that holds the budget's lock, so
        concurrent spends never take more than `limit` together. Spends older than the window
        are pruned meanwhile."""

    async def refund(self, spend_id: int) -> None:
        """Undo a spend (what it paid for did not happen); an unknown id changes nothing."""

    async def spent(self, budget: str, now: datetime, window: timedelta) -> int:
        """Units spent from `budget` in the window ending at `now`."""


class ReloadStore(Protocol):
    """The reload counter: a reload on any worker reaches every worker."""

    async def bump_reloads(self) -> int:
        """Move the counter on (and, where the database can, tell every listening worker);
        its new value."""

    async def reload_count(self) -> int:
        """The counter as it stands (0 before the first bump)."""


class StatusReader(Protocol):
    """What `restock status`, /metrics and the web pages read."""

    async def watch_statuses(self, *, events_per_watch: int = 3) -> list[WatchStatus]:
        """Every active watch: its state, last and next check, last events."""

    async def history(self, watch_key: str, limit: int = 50) -> WatchHistory | None:
        """A watch's recent observations and events (newest first); None for an unknown key."""

    async def outbox_depth(self) -> dict[str, int]:
        """Number of deliveries by status (pending, sent, skipped, failed, dead)."""

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        """Deliveries that will never be sent (dead or failed), newest first."""


@runtime_checkable
class LineChatStore(Protocol):
    """What the LINE front-end asks of the database (every backend here has it)."""

    async def claim_line_event(self, event_id: str, now: datetime) -> bool:
        """True the first time `event_id` is claimed; False once it was handled."""

    async def add_line_subscription(
        self,
        user_id: str,
        target: str,
        store: str | None,
        conditions: WatchConditions,
        language: str,
        now: datetime,
        *,
        one_shot: bool = True,
    ) -> Subscription: ...

    async def line_subscriptions(self, user_id: str) -> list[Subscription]: ...

    async def set_line_paused(self, user_id: str, subscription_id: int, paused: bool) -> bool: ...

    async def remove_line_subscription(
        self, user_id: str, subscription_id: int, now: datetime
    ) -> bool: ...

    async def end_line_subscriptions(self, user_id: str, now: datetime) -> int:
        """End every subscription of a user who blocked or unfollowed the account."""

    async def count_line_active(self, user_id: str) -> int: ...


class ChatStore(Protocol):
    """Chat users and their subscriptions, as the chat front-ends and subscriptions need."""

    async def ensure_chat_user(
        self,
        chat_id: int,
        now: datetime,
        *,
        user_id: int | None = None,
        language: str | None = None,
    ) -> ChatUser:
        """Create or refresh a chat user (a user who writes again is no longer blocked)."""

    async def ensure_product(self, target: str, store: str | None, now: datetime) -> int:
        """The id of the product for `target`, created if new: one fetch serves every subscriber."""

    async def add_chat_subscription(
        self,
        chat_id: int,
        target: str,
        store: str | None,
        conditions: WatchConditions,
        now: datetime,
        *,
        one_shot: bool = True,
        name: str | None = None,
    ) -> Subscription:
        """Subscribe a chat to a product under some conditions.

        Reuses the product, and a chat watch with identical conditions on it; the same chat
        subscribing again reactivates (and updates) its subscription instead of adding one.
        """

    async def subscribe_to_watch(
        self, chat_id: int, watch_key: str, now: datetime, *, one_shot: bool = True
    ) -> Subscription | None:
        """Subscribe a chat to an existing active watch (a shared deep link); None if unknown."""

    async def list_subscriptions(self, chat_id: int) -> list[Subscription]:
        """A chat's active subscriptions (paused ones included), oldest first."""

    async def set_paused(self, subscription_id: int, chat_id: int, paused: bool) -> bool:
        """Pause or resume a chat's subscription. False if it is not theirs or not active."""

    async def remove_subscription(self, subscription_id: int, chat_id: int, now: datetime) -> bool:
        """End one of a chat's subscriptions. False if it is not theirs or already ended."""

    async def deactivate_chat(self, chat_id: int, now: datetime, *, blocked: bool = False) -> int:
        """End every subscription of a chat (/stop, or the bot was blocked). Returns how many."""

    async def set_quiet(self, chat_id: int, quiet: QuietHours | None) -> None:
        """Set (or clear) a chat's quiet hours, for its current and future subscriptions."""

    async def count_active(self, chat_id: int) -> int:
        """A chat's active subscriptions (paused ones count): what the quota limits."""

    async def chat_ids(self) -> list[int]:
        """Chats that may be messaged (not blocked, with at least one active subscription)."""

    async def stats(self, top: int = 10) -> Stats:
        """Figures for the operator's /stats."""


class Repository(
    WatchlistStore,
    CheckStore,
    DeliveryStore,
    LeaseStore,
    HostStore,
    SpendStore,
    ReloadStore,
    StatusReader,
    ChatStore,
    Protocol,
):
    """Everything restock-watcher keeps. All methods are coroutines; see the module docstring."""

    async def close(self) -> None:
        """Close the database (safe twice). Leases stay until they expire: see release_leases."""
