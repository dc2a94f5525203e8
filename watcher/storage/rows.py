"""Rows -> records, shared by every backend: a row is anything indexable by column name and
iterable in column order (sqlite3.Row, asyncpg's Record, a psycopg dict row turned tuple-like).

Also the parameters of the rows a backend writes from the model (`yaml_watch_params`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, Protocol

from watcher.core.model import Availability, Event, Origin, QuietHours, Watch
from watcher.storage.codec import (
    conditions_from_json,
    conditions_to_json,
    event_from_json,
    from_epoch,
    json_or_none,
    known_state,
    quiet_hours,
    required_time,
    rules_from_json,
    rules_to_json,
    seconds,
    state_or_none,
)
from watcher.storage.interface import (
    ChatUser,
    ClaimedDelivery,
    DeadLetter,
    DueProduct,
    HostState,
    ObservationRecord,
    StoredWatch,
    Subscription,
    WatchStatus,
)
from watcher.storage.views import WatchRow


class Row(Protocol):
    """A database row: by column name or position, and iterable in column order."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


def yaml_watch_params(watch: Watch, product_id: int, stamp: float) -> dict[str, Any]:
    return {
        "key": watch.key,
        "name": watch.name,
        "product_id": product_id,
        "conditions": conditions_to_json(watch.conditions),
        "once": watch.once,
        "notify_on_first": watch.notify_on_first,
        "rules": rules_to_json(watch.rules),
        "interval_s": seconds(watch.interval),
        "stores": json.dumps(list(watch.stores)),
        "stamp": stamp,
    }


def quiet_from_row(row: Row) -> QuietHours | None:
    return quiet_hours(row["quiet_from"], row["quiet_to"], row["quiet_mode"])


def due_product(row: Row, watches: tuple[StoredWatch, ...] | None = None) -> DueProduct:
    interval = row["interval_s"]
    return DueProduct(
        id=row["id"],
        target=row["target"],
        store=row["store"],
        due_at=required_time(row["due_at"]),
        lease_until=required_time(row["lease_until"]),
        interval=None if interval is None else timedelta(seconds=interval),
        subscribers=row["subscribers"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        content_hash=row["content_hash"],
        last_state=state_or_none(row["last_state"]),
        last_checked_at=from_epoch(row["last_checked_at"]),
        consecutive_errors=row["consecutive_errors"],
        watches=watches,
    )


# The columns `stored_watch` reads, by position (every check loads its product's watches, so
# positional access and cached decoding of the texts watches share are worth their keep).
WATCH_COLUMNS = (
    "w.id, w.product_id, w.origin, w.key, w.name, p.target, p.store, w.stores, w.interval_s,"
    " w.conditions, w.once, w.notify_on_first, w.rules, w.detector_state, w.paused"
)


_ORIGINS = {origin.value: origin for origin in Origin}


def stored_watch(row: Row) -> StoredWatch:
    (id_, product_id, origin, key, name, target, store, stores, interval, conditions, once,
     notify_on_first, rules, detector_state, paused) = row  # fmt: skip
    is_jan = target.startswith("jan:")
    watch = Watch(
        key=key,
        name=name,
        url=None if is_jan else target,
        jan=target.removeprefix("jan:") if is_jan else None,
        store=store,
        stores=_stores_from_json(stores),
        interval=_interval(interval),
        conditions=conditions_from_json(conditions),
        once=bool(once),
        notify_on_first=bool(notify_on_first),
        rules=rules_from_json(rules),
    )
    return StoredWatch(
        id=id_,
        product_id=product_id,
        origin=_ORIGINS[origin],
        watch=watch,
        state_text=detector_state,
        paused=bool(paused),
    )


@functools.lru_cache(maxsize=1024)
def _stores_from_json(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


@functools.lru_cache(maxsize=1024)
def _interval(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def claimed_from_rows(rows: Sequence[Row]) -> list[ClaimedDelivery]:
    """Claimed deliveries from rows of a delivery joined with its event (`payload`) and its
    subscription's settings; each event decoded once, not per row."""
    events: dict[int, Event] = {}
    claimed = []
    for row in rows:
        event_id = row["event_id"]
        event = events.get(event_id)
        if event is None:
            event = events[event_id] = event_from_json(event_id, row["payload"])
        claimed.append(
            ClaimedDelivery(
                id=row["id"],
                event=event,
                channel=row["channel"],
                recipient=row["recipient"],
                attempts=row["attempts"],
                lease_until=required_time(row["lease_until"]),
                subscription_id=row["subscription_id"],
                quiet=quiet_from_row(row),
                language=row["language"],
            )
        )
    return claimed


def subscription(row: Row) -> Subscription:
    return Subscription(
        id=row["id"],
        watch_id=row["watch_id"],
        watch_key=row["watch_key"],
        watch_name=row["watch_name"],
        target=row["target"],
        store=row["store"],
        channel=row["channel"],
        recipient=row["recipient"],
        origin=Origin(row["origin"]),
        active=bool(row["active"]),
        paused=bool(row["paused"]),
        one_shot=bool(row["one_shot"]),
        conditions=conditions_from_json(row["conditions"]),
        created_at=required_time(row["created_at"]),
        quiet=quiet_from_row(row),
        language=row["language"],
        product_id=row["product_id"],
        last_state=known_state(row["last_state"]),
    )


def chat_user(row: Row) -> ChatUser:
    return ChatUser(
        chat_id=row["chat_id"],
        user_id=row["user_id"],
        language=row["language"],
        blocked=bool(row["blocked"]),
        created_at=required_time(row["created_at"]),
        quiet=quiet_from_row(row),
    )


def observation_record(row: Row) -> ObservationRecord:
    return ObservationRecord(
        at=required_time(row["at"]),
        state=Availability(row["state"]),
        price=row["price"],
        reason=row["reason"],
        status=row["status"],
        bytes=row["bytes"],
        ms=row["ms"],
        blocked=bool(row["blocked"]),
    )


def watch_status(row: Row, events: Sequence[Event]) -> WatchStatus:
    return WatchStatus(
        key=row["key"],
        name=row["name"],
        target=row["target"],
        store=row["store"],
        origin=Origin(row["origin"]),
        active=bool(row["active"]),
        state=json_or_none(row["detector_state"]),
        last_state=state_or_none(row["last_state"]),
        last_price=row["last_price"],
        last_checked_at=from_epoch(row["last_checked_at"]),
        next_check_at=from_epoch(row["due_at"]) if row["product_active"] else None,
        subscribers=row["subscribers"],
        last_events=tuple(events),
    )


def host_state(row: Row) -> HostState:
    return HostState(
        host=row["host"],
        next_allowed_at=from_epoch(row["next_allowed_at"]),
        backoff_until=from_epoch(row["backoff_until"]),
        consecutive_blocks=row["consecutive_blocks"],
        last_reason=row["last_reason"],
    )


def dead_letter(row: Row) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        event=event_from_json(row["event_id"], row["payload"]),
        channel=row["channel"],
        recipient=row["recipient"],
        attempts=row["attempts"],
        status=row["status"],
        last_error=row["last_error"],
        updated_at=from_epoch(row["updated_at"]),
    )


def web_watch_row(row: Row) -> WatchRow:
    """A watch as the web pages show it (the columns of the backends' watch view select)."""
    state = row["last_state"]
    subscriptions = int(row["subscriptions"])
    return WatchRow(
        id=row["id"],
        key=row["key"],
        name=row["name"],
        origin=Origin(row["origin"]),
        product_id=row["product_id"],
        target=row["target"],
        store=row["store"],
        title=row["last_title"],
        state=Availability(state) if state else None,
        price=row["last_price"],
        reason=row["last_reason"],
        last_checked_at=from_epoch(row["last_checked_at"]),
        next_check_at=from_epoch(row["due_at"]) if row["product_active"] else None,
        last_restock_at=from_epoch(row["last_restock_at"]),
        subscriptions=subscriptions,
        paused=subscriptions > 0 and int(row["paused_subscriptions"]) == subscriptions,
        conditions=conditions_from_json(row["conditions"]),
    )
