"""The SQLite implementation of `watcher.repository.Repository` (aiosqlite, WAL).

Every write runs in `BEGIN IMMEDIATE`, which takes SQLite's single write lock up front: a claim's
read and update then see the same data, so two processes on one file never claim the same row
(`busy_timeout` makes the second one wait instead of failing). One repository holds one
connection, shared by the coroutines of a process under an asyncio lock. Times are stored as
epoch seconds (REAL, UTC).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import sqlite3
import time as wall_clock
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from watcher.db_migrations import LATEST_VERSION, MIGRATIONS
from watcher.errors import StorageError
from watcher.model import (
    Availability,
    ConditionFilter,
    Event,
    EventKind,
    Observation,
    SellerFilter,
    TextRules,
    Watch,
    WatchConditions,
)
from watcher.repository import (
    ENDING_EVENT_KINDS,
    AwaitedProduct,
    ChatUser,
    CheckOutcome,
    ClaimedDelivery,
    DeadLetter,
    DeliveryClaim,
    DeliveryResult,
    DueProduct,
    HostState,
    JSONDict,
    ObservationRecord,
    Origin,
    QuietHours,
    QuietMode,
    RecordedCheck,
    Repository,
    Stats,
    StoredWatch,
    Subscription,
    WatchDecision,
    WatchHistory,
    WatchStatus,
)

OBSERVATIONS_KEPT = 200  # per product; older ones are pruned as new ones arrive
PRUNE_EVERY = 20  # checks of a product between two prunings of its observations
BUSY_TIMEOUT_MS = 10_000
TELEGRAM = "telegram"
DELIVERY_STATUSES = ("pending", "sent", "skipped", "failed", "dead")


# A result of `record_results` for the deliveries {which} selects: each outcome writes what the
# matching `mark_*` method does; only a pending delivery changes.
_RESULT_UPDATE = """
    UPDATE deliveries SET
        status = CASE :outcome
            WHEN 'retry' THEN CASE WHEN attempts >= :max_attempts THEN 'dead' ELSE 'pending' END
            ELSE :outcome END,
        sent_at = CASE :outcome WHEN 'sent' THEN :now ELSE sent_at END,
        next_attempt_at = CASE :outcome WHEN 'retry' THEN :retry_at ELSE next_attempt_at END,
        last_error = CASE :outcome WHEN 'sent' THEN NULL ELSE :detail END,
        updated_at = :now, lease_owner = NULL, lease_until = NULL
    WHERE {which} AND status = 'pending'
"""
_RESULT_UPDATE_ONE = _RESULT_UPDATE.format(which="id = :id")
_RESULT_UPDATE_ALIKE = _RESULT_UPDATE.format(which="id IN (SELECT value FROM json_each(:ids))")


# A delivery `claim_deliveries` may claim at :now.
_CLAIMABLE_DELIVERY = (
    "status = 'pending' AND next_attempt_at <= :now"
    " AND (lease_until IS NULL OR lease_until <= :now)"
)

# A claimed delivery with what its notifier needs, for the ids in the JSON array :ids.
_CLAIMED_SELECT = """
    SELECT d.id, d.channel, d.recipient, d.attempts, d.lease_until,
           d.subscription_id, e.id AS event_id, e.payload,
           s.quiet_from, s.quiet_to, s.quiet_mode, s.language
    FROM deliveries d JOIN events e ON e.id = d.event_id
    LEFT JOIN subscriptions s ON s.id = d.subscription_id
    WHERE d.id IN (SELECT value FROM json_each(:ids))
    ORDER BY d.next_attempt_at, d.id
"""


class _LeaseLost(Exception):
    """A check's lease passed to another check before it was stored (rolls the write back)."""


# --- values <-> columns -----------------------------------------------------------------------


def to_epoch(moment: datetime) -> float:
    """A timezone-aware datetime as epoch seconds; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware one")
    return moment.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _required_time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _seconds(interval: timedelta | None) -> float | None:
    return None if interval is None else interval.total_seconds()


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def conditions_to_json(conditions: WatchConditions) -> str:
    """A canonical JSON text: equal conditions give equal text (chat watches are keyed by it)."""
    return _dump(
        {
            "max_price": conditions.max_price,
            "condition": conditions.condition.value,
            "seller": conditions.seller.value,
            "exclude_sellers": sorted(conditions.exclude_sellers),
            "buyable": sorted(state.value for state in conditions.buyable),
            "stores": sorted(conditions.stores),
        }
    )


@functools.lru_cache(maxsize=4096)
def conditions_from_json(text: str) -> WatchConditions:
    # Cached: many watches share a few condition sets, and a check loads every watch of its
    # product (the result is frozen, so sharing it is safe).
    data = json.loads(text)
    return WatchConditions(
        max_price=data["max_price"],
        condition=ConditionFilter(data["condition"]),
        seller=SellerFilter(data["seller"]),
        exclude_sellers=tuple(data["exclude_sellers"]),
        buyable=frozenset(Availability(state) for state in data["buyable"]),
        stores=frozenset(data.get("stores", ())),
    )


def rules_to_json(rules: TextRules | None) -> str | None:
    if rules is None:
        return None
    phrases = [[phrase, state.value] for phrase, state in rules.phrases]
    return _dump({"selector": rules.selector, "phrases": phrases})


@functools.lru_cache(maxsize=1024)
def rules_from_json(text: str | None) -> TextRules | None:
    if text is None:
        return None
    data = json.loads(text)
    phrases = tuple((phrase, Availability(state)) for phrase, state in data["phrases"])
    return TextRules(selector=data["selector"], phrases=phrases)


def event_to_json(event: Event) -> str:
    to_epoch(event.observed_at)  # refuses a naive time before it is stored
    return _dump(
        {
            "kind": event.kind.value,
            "watch_key": event.watch_key,
            "watch_name": event.watch_name,
            "state": event.state.value,
            "observed_at": event.observed_at.isoformat(),
            "url": event.url,
            "store": event.store,
            "price": event.price,
            "currency": event.currency,
            "title": event.title,
            "seller": event.seller,
            "shop": event.shop,
            "previous_price": event.previous_price,
        }
    )


def event_from_json(event_id: int, text: str) -> Event:
    data = json.loads(text)
    return Event(
        kind=EventKind(data["kind"]),
        watch_key=data["watch_key"],
        watch_name=data["watch_name"],
        state=Availability(data["state"]),
        observed_at=datetime.fromisoformat(data["observed_at"]),
        url=data["url"],
        store=data["store"],
        price=data["price"],
        currency=data["currency"],
        title=data["title"],
        seller=data["seller"],
        shop=data.get("shop"),
        previous_price=data["previous_price"],
        id=event_id,
    )


def _quiet_columns(quiet: QuietHours | None) -> tuple[str | None, str | None, str | None]:
    if quiet is None:
        return None, None, None
    return quiet.start.strftime("%H:%M"), quiet.end.strftime("%H:%M"), quiet.mode.value


def _quiet_from_row(row: sqlite3.Row) -> QuietHours | None:
    return _quiet_hours(row["quiet_from"], row["quiet_to"], row["quiet_mode"])


@functools.lru_cache(maxsize=256)
def _quiet_hours(start: str | None, end: str | None, mode: str | None) -> QuietHours | None:
    """Decoded once per distinct setting: a fan-out reads the same few settings many times."""
    if start is None or end is None:
        return None
    return QuietHours(
        start=time.fromisoformat(start),
        end=time.fromisoformat(end),
        mode=QuietMode(mode or QuietMode.HOLD),
    )


def _state_or_none(value: str | None) -> Availability | None:
    return None if value is None else Availability(value)


def _json_or_none(text: str | None) -> JSONDict | None:
    return None if text is None else dict(json.loads(text))


def notify_recipients(watch: Watch) -> list[tuple[str, str]]:
    """A YAML watch's notify lists as (channel, recipient) subscriptions."""
    notify = watch.notify
    pairs = [(TELEGRAM, str(chat_id)) for chat_id in notify.telegram]
    pairs += [("email", address) for address in notify.email]
    if notify.x:
        pairs.append(("x", "public"))
    if notify.console:
        pairs.append(("console", "-"))
    if notify.webhook:
        pairs.append(("webhook", "-"))
    pairs += [("line", user_id) for user_id in notify.line]
    if notify.discord:
        pairs.append(("discord", "-"))
    return list(dict.fromkeys(pairs))


def chat_watch_key(target: str, conditions: WatchConditions) -> str:
    """The identity of the shared chat watch for a product under some conditions."""
    digest = hashlib.sha256(f"{target}\n{conditions_to_json(conditions)}".encode()).hexdigest()
    return f"chat:{digest[:24]}"


def _ids_json(ids: Iterable[int]) -> str:
    return json.dumps(sorted(set(ids)))


# --- opening ----------------------------------------------------------------------------------


def sqlite_path(path_or_url: str | Path) -> str:
    """The file path in `path_or_url` (a path, or a sqlite:/// URL); other URLs are refused."""
    text = str(path_or_url)
    if text.startswith("sqlite:///"):
        return text.removeprefix("sqlite:///") or ":memory:"
    if text == "sqlite://":
        return ":memory:"
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StorageError(f"unsupported database URL scheme {scheme!r}: use a SQLite file path")
    return text


async def open_repository(path_or_url: str | Path) -> SQLiteRepository:
    """Open (creating and migrating if needed) the database at `path_or_url`."""
    path = sqlite_path(path_or_url)
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    try:
        await _configure(conn)
        await _migrate(conn, path)
    except BaseException:
        await conn.close()
        raise
    return SQLiteRepository(conn, path)


async def _configure(conn: aiosqlite.Connection) -> None:
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot use the database: {exc}") from exc


async def _migrate(conn: aiosqlite.Connection, path: str) -> None:
    """Bring the schema to LATEST_VERSION in one transaction (other processes wait)."""
    try:
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        rows = await conn.execute_fetchall("SELECT MAX(version) AS v FROM schema_version")
        current = next(iter(rows))["v"] or 0
        if current > LATEST_VERSION:
            raise StorageError(
                f"database {path} has schema version {current}, but this restock-watcher only "
                f"knows versions up to {LATEST_VERSION}: upgrade restock-watcher to use it"
            )
        for version in range(current + 1, LATEST_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, wall_clock.time()),
            )
        await conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"cannot migrate database {path}: {exc}") from exc
        raise


# --- the repository ---------------------------------------------------------------------------

_SUBSCRIPTION_SELECT = """
    SELECT s.*, w.key AS watch_key, w.name AS watch_name, w.conditions,
           p.target, p.store
    FROM subscriptions s
    JOIN watches w ON w.id = s.watch_id
    JOIN products p ON p.id = w.product_id
"""

_WATCH_STATUS_SELECT = """
    SELECT w.id, w.key, w.name, w.origin, w.active, w.detector_state,
           p.target, p.store, p.last_state, p.last_price, p.last_checked_at, p.due_at,
           p.active AS product_active,
           (SELECT COUNT(*) FROM subscriptions s
             WHERE s.watch_id = w.id AND s.active = 1 AND s.paused = 0) AS subscribers
    FROM watches w JOIN products p ON p.id = w.product_id
"""


class SQLiteRepository:
    """`Repository` on one SQLite file. Build it with `open_repository`."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._closed = False
        self._check_queue: list[_CheckWrite] = []  # checks waiting for the next batch
        self._check_writer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._check_writer is not None:
            await asyncio.wait([self._check_writer])
        async with self._lock:
            await self._conn.close()

    # --- plumbing ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        """One write transaction; any error rolls everything back."""
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"database {self.path}: {exc}") from exc
                raise

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[None]:
        async with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StorageError(f"database {self.path}: {exc}") from exc

    async def _rows(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def _row(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def _refresh_products(self, product_ids: Iterable[int] | None = None) -> None:
        """Recompute what follows from watches and subscriptions (all products when None).

        A chat watch lives while it has an active subscription (it restarts from a fresh
        detector state when it comes back); a product is polled while it has an active watch, at
        the shortest interval of those, with its waiting subscribers as priority.
        """
        scope, params = "", []
        if product_ids is not None:
            scope = "AND product_id IN (SELECT value FROM json_each(?))"
            params = [_ids_json(product_ids)]
        await self._run(
            f"""
            UPDATE watches SET
                active = EXISTS (SELECT 1 FROM subscriptions s
                                 WHERE s.watch_id = watches.id AND s.active = 1),
                detector_state = CASE WHEN active = 0 THEN NULL ELSE detector_state END
            WHERE origin = 'chat' {scope}
            """,
            params,
        )
        product_scope = scope.replace("product_id", "id")
        await self._run(
            f"""
            UPDATE products SET
                active = EXISTS (SELECT 1 FROM watches w
                                 WHERE w.product_id = products.id AND w.active = 1),
                interval_s = (SELECT MIN(w.interval_s) FROM watches w
                              WHERE w.product_id = products.id AND w.active = 1),
                subscribers = (SELECT COUNT(*) FROM subscriptions s
                               JOIN watches w ON w.id = s.watch_id
                               WHERE w.product_id = products.id AND w.active = 1
                                 AND s.active = 1 AND s.paused = 0)
            WHERE 1 {product_scope}
            """,
            params,
        )

    # --- the watchlist -------------------------------------------------------------------------

    async def sync_yaml_watches(
        self,
        watches: Sequence[Watch],
        now: datetime,
        first_due: Callable[[str], datetime] | None = None,
    ) -> None:
        stamp = to_epoch(now)
        due = {w.target: to_epoch(first_due(w.target)) if first_due else stamp for w in watches}
        async with self._write():
            product_ids = await self._upsert_yaml_products(watches, due, stamp)
            watch_ids = await self._upsert_yaml_watches(watches, product_ids, stamp)
            await self._run(
                "UPDATE watches SET active = 0, updated_at = ? WHERE origin = 'yaml'"
                " AND active = 1 AND key NOT IN (SELECT value FROM json_each(?))",
                (stamp, json.dumps([w.key for w in watches])),
            )
            await self._sync_yaml_subscriptions(watches, watch_ids, stamp)
            await self._refresh_products()

    async def _upsert_yaml_products(
        self, watches: Sequence[Watch], due: dict[str, float], stamp: float
    ) -> dict[str, int]:
        await self._conn.executemany(
            "INSERT INTO products (target, store, due_at, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (target) DO UPDATE SET store = COALESCE(excluded.store, store)",
            [(w.target, w.store, due[w.target], stamp) for w in watches],
        )
        rows = await self._rows(
            "SELECT id, target FROM products WHERE target IN (SELECT value FROM json_each(?))",
            (json.dumps(list(due)),),
        )
        return {row["target"]: row["id"] for row in rows}

    async def _upsert_yaml_watches(
        self, watches: Sequence[Watch], product_ids: dict[str, int], stamp: float
    ) -> dict[str, int]:
        # A watch keeps its detector state unless it now watches another product.
        await self._conn.executemany(
            """
            INSERT INTO watches (key, name, product_id, origin, conditions, once,
                notify_on_first, rules, interval_s, stores, active, created_at, updated_at)
            VALUES (?, ?, ?, 'yaml', ?, ?, ?, ?, ?, ?, 1, ?, ?)
            ON CONFLICT (key) DO UPDATE SET
                detector_state = CASE WHEN product_id = excluded.product_id
                                      THEN detector_state END,
                name = excluded.name, product_id = excluded.product_id,
                conditions = excluded.conditions, once = excluded.once,
                notify_on_first = excluded.notify_on_first, rules = excluded.rules,
                interval_s = excluded.interval_s, stores = excluded.stores,
                active = 1, updated_at = excluded.updated_at
            WHERE origin = 'yaml'
            """,
            [_yaml_watch_row(w, product_ids[w.target], stamp) for w in watches],
        )
        rows = await self._rows(
            "SELECT id, key FROM watches WHERE origin = 'yaml'"
            " AND key IN (SELECT value FROM json_each(?))",
            (json.dumps([w.key for w in watches]),),
        )
        return {row["key"]: row["id"] for row in rows}

    async def _sync_yaml_subscriptions(
        self, watches: Sequence[Watch], watch_ids: dict[str, int], stamp: float
    ) -> None:
        wanted = [
            (watch_ids[w.key], channel, recipient)
            for w in watches
            if w.key in watch_ids
            for channel, recipient in notify_recipients(w)
        ]
        await self._conn.executemany(
            "INSERT INTO subscriptions (watch_id, channel, recipient, origin, created_at)"
            " VALUES (?, ?, ?, 'yaml', ?)"
            " ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET active = 1, ended_at = NULL"
            " WHERE origin = 'yaml' AND opted_out_at IS NULL",
            [(*row, stamp) for row in wanted],
        )
        await self._run(
            "CREATE TEMP TABLE IF NOT EXISTS wanted_subscriptions ("
            " watch_id INTEGER, channel TEXT, recipient TEXT,"
            " PRIMARY KEY (watch_id, channel, recipient))"
        )
        await self._run("DELETE FROM temp.wanted_subscriptions")
        await self._conn.executemany(
            "INSERT OR IGNORE INTO temp.wanted_subscriptions VALUES (?, ?, ?)", wanted
        )
        await self._run(
            """
            UPDATE subscriptions SET active = 0, ended_at = ?
            WHERE origin = 'yaml' AND active = 1
              AND watch_id IN (SELECT value FROM json_each(?))
              AND NOT EXISTS (SELECT 1 FROM temp.wanted_subscriptions t
                              WHERE t.watch_id = subscriptions.watch_id
                                AND t.channel = subscriptions.channel
                                AND t.recipient = subscriptions.recipient)
            """,
            (stamp, _ids_json(watch_ids.values())),
        )

    # --- the scheduler -------------------------------------------------------------------------

    async def claim_due_products(
        self, owner: str, now: datetime, limit: int, lease: timedelta
    ) -> list[DueProduct]:
        stamp = to_epoch(now)
        async with self._write():
            rows = await self._rows(
                """
                UPDATE products SET lease_owner = ?, lease_until = ?
                WHERE id IN (
                    SELECT id FROM products
                    WHERE active = 1 AND due_at <= ?
                      AND (lease_until IS NULL OR lease_until <= ?)
                    ORDER BY subscribers DESC, due_at, id LIMIT ?)
                RETURNING *
                """,
                (owner, stamp + lease.total_seconds(), stamp, stamp, limit),
            )
        products = [_due_product(row) for row in rows]
        return sorted(products, key=lambda p: (-p.subscribers, p.due_at, p.id))

    async def release_product(self, product_id: int, due_at: datetime) -> None:
        async with self._write():
            await self._run(
                "UPDATE products SET due_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ?",
                (to_epoch(due_at), product_id),
            )

    async def load_watches(self, product_id: int) -> list[StoredWatch]:
        return (await self.load_watches_for([product_id])).get(product_id, [])

    async def load_watches_for(self, product_ids: Sequence[int]) -> dict[int, list[StoredWatch]]:
        async with self._read():
            rows = await self._rows(
                f"SELECT {_WATCH_COLUMNS} FROM watches w"
                " JOIN products p ON p.id = w.product_id"
                " WHERE w.product_id IN (SELECT value FROM json_each(?)) AND w.active = 1"
                " ORDER BY w.id",
                (_ids_json(product_ids),),
            )
        watches: dict[int, list[StoredWatch]] = {}
        for row in rows:
            stored = _stored_watch(row)
            watches.setdefault(stored.product_id, []).append(stored)
        return watches

    async def record_check(
        self,
        product_id: int,
        observation: Observation,
        decisions: Sequence[WatchDecision],
        outcome: CheckOutcome,
        now: datetime,
    ) -> RecordedCheck:
        """Write one check: its product, observation, watch states, events and deliveries.

        Checks that finish while another batch is being written are written together, in one
        transaction (fewer commits and trips to the database thread); each check still lands
        whole or not at all, and its caller hears only after the commit.
        """
        write = _CheckWrite(
            product_id,
            observation,
            decisions,
            outcome,
            to_epoch(now),
            to_epoch(outcome.next_due_at),
            asyncio.get_running_loop().create_future(),
        )
        self._check_queue.append(write)
        if self._check_writer is None:
            self._check_writer = asyncio.create_task(self._write_queued_checks())
        written = await write.result
        if not written.claimed:
            return written.recorded
        # Built here, after the commit and in the caller's task, not in the writer's transaction:
        # an event with many subscribers must not hold the write lock or the other checks.
        claimed = await _claimed_deliveries(written.claimed)
        return replace(written.recorded, claimed=tuple(claimed))

    async def _write_queued_checks(self) -> None:
        batch: list[_CheckWrite] = []
        try:
            while self._check_queue:
                batch, self._check_queue = self._check_queue, []
                if len(batch) == 1:
                    await self._write_alone(batch[0])
                else:
                    await self._write_batch(batch)
        except BaseException:  # cancelled: nobody may wait for an answer that will not come
            for write in [*batch, *self._check_queue]:
                write.result.cancel()
            self._check_queue = []
            raise
        finally:
            self._check_writer = None

    async def _write_batch(self, batch: list[_CheckWrite]) -> None:
        """All checks in one transaction; on any failure, each again in its own."""
        results: list[_Written] = []
        try:
            async with self._write():
                for write in batch:
                    results.append(await self._record_lease_checked(write))
        except Exception:
            for write in batch:
                await self._write_alone(write)
            return
        for write, result in zip(batch, results, strict=True):
            _settle(write.result, result)

    async def _write_alone(self, write: _CheckWrite) -> None:
        try:
            async with self._write():
                result = await self._record_lease_checked(write)
        except Exception as exc:
            if not write.result.done():
                write.result.set_exception(exc)
            return
        _settle(write.result, result)

    async def _record_lease_checked(self, write: _CheckWrite) -> _Written:
        # A lost lease is found by the first statement, before this check wrote anything.
        try:
            return await self._record_check(write)
        except _LeaseLost:
            return _Written(RecordedCheck(events=(), deliveries=0, lease_lost=True))

    async def _record_check(self, write: _CheckWrite) -> _Written:
        """The check's statements, inside the caller's transaction."""
        product_id, observation, decisions = write.product_id, write.observation, write.decisions
        stamp = write.stamp
        checks = await self._update_checked_product(
            product_id, observation, write.outcome, stamp, write.next_due
        )
        await self._insert_observation(product_id, observation, stamp, checks)
        stored: list[Event] = []
        deliveries = 0
        claimed: list[_NewClaims] = []
        ended = any(d.finished for d in decisions)
        # Events first: a watch that finishes now still delivers its last events.
        for decision in decisions:
            for event in decision.events:
                new = await self._store_event(decision, event, stamp, write.outcome.claim_for)
                stored.append(replace(event, id=new.event_id))
                deliveries += new.deliveries
                if new.claims is not None:
                    claimed.append(new.claims)
                ended = ended or new.ended
        await self._store_decisions(decisions, stamp)
        if any(e.kind in ENDING_EVENT_KINDS for e in stored):
            await self._insert_restock(product_id, None, stamp)
        if ended:
            await self._refresh_products([product_id])
        return _Written(RecordedCheck(events=tuple(stored), deliveries=deliveries), claimed)

    async def _lease_deliveries(
        self, pick: str, params: Mapping[str, Any], owner: str, stamp: float, lease: timedelta
    ) -> list[ClaimedDelivery]:
        """Lease the deliveries whose ids `pick` selects, counting an attempt; in the caller's
        transaction. `pick` may use :now, which is `stamp`."""
        leased = await self._rows(
            "UPDATE deliveries SET lease_owner = :owner, lease_until = :lease_until,"
            f" attempts = attempts + 1, updated_at = :now WHERE id IN ({pick}) RETURNING id",
            {**params, "owner": owner, "lease_until": stamp + lease.total_seconds(), "now": stamp},
        )
        if not leased:
            return []
        rows = await self._rows(_CLAIMED_SELECT, {"ids": _ids_json(row["id"] for row in leased)})
        return _claimed_from_rows(rows)

    async def _insert_observation(
        self, product_id: int, obs: Observation, stamp: float, checks: int
    ) -> None:
        facts = obs.fetch
        # execute_fetchall: one trip to the database thread instead of execute + close.
        await self._conn.execute_fetchall(
            "INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms,"
            " blocked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                product_id,
                stamp,
                obs.state.value,
                obs.price,
                obs.reason,
                facts.status if facts else None,
                facts.bytes if facts else 0,
                facts.elapsed_ms if facts else 0.0,
                int(obs.blocked),
            ),
        )
        if checks % PRUNE_EVERY:
            return
        # Keep the newest OBSERVATIONS_KEPT rows of this product (pruned now and then, in bulk).
        await self._conn.execute_fetchall(
            "DELETE FROM observations WHERE product_id = ? AND id < (SELECT id FROM observations"
            " WHERE product_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (product_id, product_id, OBSERVATIONS_KEPT - 1),
        )

    async def _update_checked_product(
        self,
        product_id: int,
        obs: Observation,
        outcome: CheckOutcome,
        stamp: float,
        next_due: float,
    ) -> int:
        """Update a checked product and release its lease; returns its number of checks."""
        known = obs.state is not Availability.UNKNOWN
        row = await self._row(
            """
            UPDATE products SET
                due_at = ?, lease_owner = NULL, lease_until = NULL,
                etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified),
                content_hash = COALESCE(?, content_hash),
                store = COALESCE(store, ?),
                last_state = ?,
                last_price = CASE WHEN ? THEN ? ELSE last_price END,
                last_title = COALESCE(?, last_title),
                last_checked_at = ?,
                consecutive_errors = CASE WHEN ? THEN consecutive_errors + 1 ELSE 0 END,
                checks = checks + 1,
                blocks = blocks + ?
            WHERE id = ? AND (? IS NULL OR lease_owner = ?)
            RETURNING checks
            """,
            (
                next_due,
                outcome.etag,
                outcome.last_modified,
                outcome.content_hash,
                obs.store,
                obs.state.value,
                known,
                obs.price,
                obs.title,
                stamp,
                outcome.error,
                int(obs.blocked),
                product_id,
                outcome.lease_owner,
                outcome.lease_owner,
            ),
        )
        if row is not None:
            return int(row["checks"])
        if outcome.lease_owner is not None:
            raise _LeaseLost(product_id)
        raise StorageError(f"record_check: no product with id {product_id}")

    async def _store_event(
        self, decision: WatchDecision, event: Event, stamp: float, claim: DeliveryClaim | None
    ) -> _StoredEvent:
        """Insert an event and a delivery per active subscription of its watch, in one statement.

        The deliveries on `claim`'s channels are inserted leased to it, as `claim_deliveries`
        would lease them (an attempt counted, the lease running from `stamp`): with thousands of
        subscribers that saves an update and a read-back of every row.
        """
        payload = event_to_json(event)
        row = await self._row(
            "INSERT INTO events (watch_id, kind, payload, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING id",
            (decision.watch_id, event.kind.value, payload, stamp),
        )
        assert row is not None  # RETURNING of a successful insert
        event_id: int = row["id"]
        lease_until = stamp + claim.lease.total_seconds() if claim else None
        inserted = await self._rows(
            """
            INSERT INTO deliveries (event_id, subscription_id, channel, recipient, status,
                attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at,
                idempotency_key)
            SELECT :event, s.id, s.channel, s.recipient, 'pending',
                   c.value IS NOT NULL, :now,
                   CASE WHEN c.value IS NOT NULL THEN :owner END,
                   CASE WHEN c.value IS NOT NULL THEN :lease_until END,
                   :now, :now, :event || ':' || s.channel || ':' || s.recipient
            FROM subscriptions s JOIN watches w ON w.id = s.watch_id
            LEFT JOIN json_each(:channels) c ON c.value = s.channel
            WHERE s.watch_id = :watch AND s.active = 1 AND s.paused = 0 AND w.active = 1
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id, subscription_id, channel, recipient, lease_owner IS NOT NULL
            """,
            {
                "event": event_id,
                "now": stamp,
                "owner": claim.owner if claim else None,
                "lease_until": lease_until,
                "channels": json.dumps(sorted(claim.channels) if claim else []),
                "watch": decision.watch_id,
            },
        )
        claimed = [row for row in inserted if row[4]]
        claims = None
        if claimed and lease_until is not None:
            claimed.sort(key=_first)  # in id order, as a claim from the outbox hands them
            extras = await self._recipient_settings(decision.watch_id)
            stored = event_from_json(event_id, payload)  # what a claim from the outbox decodes
            claims = _NewClaims(stored, _required_time(lease_until), claimed, extras)
        ended = 0
        if event.kind in ENDING_EVENT_KINDS and inserted:
            ended = await self._run(
                "UPDATE subscriptions SET active = 0, ended_at = ?"
                " WHERE id IN (SELECT value FROM json_each(?)) AND one_shot = 1",
                (stamp, _ids_json(row[1] for row in inserted)),
            )
        return _StoredEvent(event_id, len(inserted), claims, ended > 0)

    async def _recipient_settings(self, watch_id: int) -> dict[int, _RecipientSettings]:
        """Quiet hours and language of a watch's active subscriptions that have either, by id."""
        rows = await self._rows(
            "SELECT id, quiet_from, quiet_to, quiet_mode, language FROM subscriptions"
            " WHERE watch_id = ? AND active = 1 AND paused = 0"
            " AND (quiet_from IS NOT NULL OR language IS NOT NULL)",
            (watch_id,),
        )
        return {row[0]: (_quiet_from_row(row), row[4]) for row in rows}

    async def _store_decisions(self, decisions: Sequence[WatchDecision], stamp: float) -> None:
        if not decisions:
            return
        cursor = await self._conn.executemany(
            "UPDATE watches SET detector_state = ?, updated_at = ?,"
            " active = CASE WHEN ? THEN 0 ELSE active END WHERE id = ?",
            [(_dump(d.state), stamp, d.finished, d.watch_id) for d in decisions],
        )
        changed = cursor.rowcount
        await cursor.close()
        if decisions and changed != len(decisions):
            missing = ", ".join(str(d.watch_id) for d in decisions)
            raise StorageError(f"record_check: a watch among ids {missing} does not exist")

    async def _insert_restock(self, product_id: int, store: str | None, stamp: float) -> None:
        await self._run(
            "INSERT INTO restocks (product_id, store, at)"
            " SELECT id, COALESCE(?, store), ? FROM products WHERE id = ?",
            (store, stamp, product_id),
        )

    async def record_restock(self, product_id: int, store: str | None, at: datetime) -> None:
        async with self._write():
            await self._insert_restock(product_id, store, to_epoch(at))

    async def restock_times(
        self, *, product_id: int | None = None, store: str | None = None, limit: int = 500
    ) -> list[datetime]:
        async with self._read():
            rows = await self._rows(
                "SELECT at FROM restocks WHERE (? IS NULL OR product_id = ?)"
                " AND (? IS NULL OR store = ?) ORDER BY at DESC LIMIT ?",
                (product_id, product_id, store, store, limit),
            )
        return [_required_time(row["at"]) for row in rows]

    # --- the dispatcher ------------------------------------------------------------------------

    async def claim_deliveries(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease: timedelta,
        channel: str | None = None,
    ) -> list[ClaimedDelivery]:
        pick = (
            f"SELECT id FROM deliveries WHERE {_CLAIMABLE_DELIVERY}"
            " AND (:channel IS NULL OR channel = :channel)"
            " ORDER BY next_attempt_at, id LIMIT :limit"
        )
        params = {"channel": channel, "limit": limit}
        stamp = to_epoch(now)
        async with self._write():
            return await self._lease_deliveries(pick, params, owner, stamp, lease)

    async def mark_sent(self, delivery_id: int, now: datetime) -> None:
        stamp = to_epoch(now)
        async with self._write():
            await self._run(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, updated_at = ?,"
                " last_error = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                (stamp, stamp, delivery_id),
            )

    async def mark_retry(
        self, delivery_id: int, at: datetime, error: str, now: datetime, max_attempts: int
    ) -> str:
        async with self._write():
            row = await self._row(
                """
                UPDATE deliveries SET
                    status = CASE WHEN attempts >= ? THEN 'dead' ELSE 'pending' END,
                    next_attempt_at = ?, last_error = ?, updated_at = ?,
                    lease_owner = NULL, lease_until = NULL
                WHERE id = ? AND status = 'pending'
                RETURNING status
                """,
                (max_attempts, to_epoch(at), error, to_epoch(now), delivery_id),
            )
        return str(row["status"]) if row else await self._status_of(delivery_id)

    async def _status_of(self, delivery_id: int) -> str:
        async with self._read():
            row = await self._row("SELECT status FROM deliveries WHERE id = ?", (delivery_id,))
        if row is None:
            raise StorageError(f"no delivery with id {delivery_id}")
        return str(row["status"])

    async def postpone(self, delivery_id: int, until: datetime, now: datetime) -> None:
        await self.postpone_many([(delivery_id, until)], now)

    async def postpone_many(self, held: Sequence[tuple[int, datetime]], now: datetime) -> None:
        stamp = to_epoch(now)
        rows = [(to_epoch(until), stamp, delivery_id) for delivery_id, until in held]
        if not rows:
            return
        async with self._write():
            cursor = await self._conn.executemany(
                "UPDATE deliveries SET next_attempt_at = ?, attempts = MAX(attempts - 1, 0),"
                " updated_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND status = 'pending'",
                rows,
            )
            await cursor.close()

    async def mark_failed(self, delivery_id: int, error: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "failed", error, now)

    async def mark_skipped(self, delivery_id: int, reason: str, now: datetime) -> None:
        await self._finish_delivery(delivery_id, "skipped", reason, now)

    async def _finish_delivery(
        self, delivery_id: int, status: str, error: str, now: datetime
    ) -> None:
        async with self._write():
            await self._run(
                "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ?,"
                " lease_owner = NULL, lease_until = NULL WHERE id = ?",
                (status, error, to_epoch(now), delivery_id),
            )

    async def record_results(
        self, results: Sequence[DeliveryResult], now: datetime, max_attempts: int
    ) -> list[str]:
        stamp = to_epoch(now)
        # Converted before the transaction: a naive retry time refuses the batch, writes nothing.
        retry_stamps = [None if r.retry_at is None else to_epoch(r.retry_at) for r in results]
        if not results:
            return []
        ids = _ids_json(result.delivery_id for result in results)
        async with self._write():
            await self._write_results(results, retry_stamps, stamp, max_attempts)
            # Written ones report their new status; those no longer pending, the one they had.
            rows = await self._rows(
                "SELECT id, status FROM deliveries WHERE id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            status = {row[0]: str(row[1]) for row in rows}
            unknown = [r.delivery_id for r in results if r.delivery_id not in status]
            if unknown:
                raise StorageError(f"no delivery with id {unknown[0]}")
        return [status[result.delivery_id] for result in results]

    async def _write_results(
        self,
        results: Sequence[DeliveryResult],
        retry_stamps: Sequence[float | None],
        stamp: float,
        max_attempts: int,
    ) -> None:
        """`record_results`' updates, in the caller's transaction.

        Alike results (a fan-out's thousands of "sent") share one statement: when every delivery
        appears once, the order they are written in does not matter. Otherwise they are written
        in order, one statement each (a later result for a delivery finds it no longer pending).
        """
        common = {"now": stamp, "max_attempts": max_attempts}
        if len({r.delivery_id for r in results}) == len(results):
            alike: dict[tuple[str, str, float | None], list[int]] = {}
            for result, retry_stamp in zip(results, retry_stamps, strict=True):
                key = (result.outcome, result.detail, retry_stamp)
                alike.setdefault(key, []).append(result.delivery_id)
            for (outcome, detail, retry_stamp), ids in alike.items():
                values = {"outcome": outcome, "detail": detail, "retry_at": retry_stamp}
                params = {**common, **values, "ids": json.dumps(ids)}
                await (await self._conn.execute(_RESULT_UPDATE_ALIKE, params)).close()
            return
        rows = [
            {**common, "id": r.delivery_id, "outcome": r.outcome, "detail": r.detail, "retry_at": t}
            for r, t in zip(results, retry_stamps, strict=True)
        ]
        await (await self._conn.executemany(_RESULT_UPDATE_ONE, rows)).close()

    async def deactivate_recipient(self, channel: str, recipient: str, now: datetime) -> int:
        stamp = to_epoch(now)
        async with self._write():
            ended = await self._end_subscriptions(
                "channel = ? AND recipient = ?", (channel, recipient), stamp, "recipient gone"
            )
            await self._run(
                "UPDATE deliveries SET status = 'skipped', last_error = 'recipient gone',"
                " updated_at = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE channel = ? AND recipient = ? AND status = 'pending'",
                (stamp, channel, recipient),
            )
            if channel == TELEGRAM and _is_int(recipient):
                await self._run(
                    "UPDATE chat_users SET blocked = 1 WHERE chat_id = ?", (int(recipient),)
                )
        return ended

    async def end_subscription(
        self, channel: str, recipient: str, watch_key: str, now: datetime
    ) -> bool:
        async with self._write():
            where = (
                "channel = ? AND recipient = ? COLLATE NOCASE"
                " AND watch_id IN (SELECT id FROM watches WHERE key = ?)"
            )
            ended = await self._end_subscriptions(
                where, (channel, recipient, watch_key), to_epoch(now), "unsubscribed"
            )
            # Remembered, so that re-reading the watchlist does not subscribe them again.
            await self._run(
                f"UPDATE subscriptions SET opted_out_at = ? WHERE {where}",
                (to_epoch(now), channel, recipient, watch_key),
            )
        return ended > 0

    async def _end_subscriptions(
        self, where: str, params: Sequence[Any], stamp: float, why: str
    ) -> int:
        """End the matching active subscriptions, skip their pending deliveries, refresh.

        Every caller ends them on the recipient's own word (unsubscribe, /stop, removal, a
        blocked bot), so they are marked opted out: a watchlist reload does not bring them back.
        """
        rows = await self._rows(
            "UPDATE subscriptions SET active = 0, ended_at = ?, opted_out_at = ?"
            f" WHERE active = 1 AND {where} RETURNING id, watch_id",
            (stamp, stamp, *params),
        )
        if not rows:
            return 0
        await self._run(
            "UPDATE deliveries SET status = 'skipped', last_error = ?, updated_at = ?,"
            " lease_owner = NULL, lease_until = NULL WHERE status = 'pending'"
            " AND subscription_id IN (SELECT value FROM json_each(?))",
            (why, stamp, _ids_json(row["id"] for row in rows)),
        )
        await self._refresh_watch_products([row["watch_id"] for row in rows])
        return len(rows)

    async def _refresh_watch_products(self, watch_ids: Sequence[int]) -> None:
        rows = await self._rows(
            "SELECT DISTINCT product_id FROM watches WHERE id IN (SELECT value FROM json_each(?))",
            (_ids_json(watch_ids),),
        )
        await self._refresh_products([row["product_id"] for row in rows])

    async def rewrite_recipient(self, channel: str, old: str, new: str) -> None:
        async with self._write():
            # Where `new` already follows the same watch, the old row is a duplicate: end it.
            await self._run(
                "UPDATE OR IGNORE subscriptions SET recipient = ?"
                " WHERE channel = ? AND recipient = ?",
                (new, channel, old),
            )
            await self._run(
                "UPDATE subscriptions SET active = 0 WHERE channel = ? AND recipient = ?",
                (channel, old),
            )
            await self._run(
                "UPDATE OR IGNORE deliveries SET recipient = ?,"
                " idempotency_key = event_id || ':' || channel || ':' || ?"
                " WHERE channel = ? AND recipient = ? AND status = 'pending'",
                (new, new, channel, old),
            )
            await self._run(
                "UPDATE deliveries SET status = 'skipped', last_error = 'recipient moved'"
                " WHERE channel = ? AND recipient = ? AND status = 'pending'",
                (channel, old),
            )
            if channel == TELEGRAM and _is_int(old) and _is_int(new):
                await self._run(
                    "UPDATE OR IGNORE chat_users SET chat_id = ? WHERE chat_id = ?",
                    (int(new), int(old)),
                )
            await self._refresh_products()

    async def release_leases(self, owner: str) -> None:
        async with self._write():
            await self._run(
                "UPDATE products SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                (owner,),
            )
            # The attempt these deliveries were claimed for was never made.
            await self._run(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
                " attempts = MAX(attempts - 1, 0) WHERE lease_owner = ? AND status = 'pending'",
                (owner,),
            )

    async def release_deliveries(self, owner: str, delivery_ids: Sequence[int]) -> None:
        if not delivery_ids:
            return
        async with self._write():
            # As in release_leases: the attempt these deliveries were claimed for was never made.
            await self._run(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
                " attempts = MAX(attempts - 1, 0) WHERE lease_owner = ? AND status = 'pending'"
                " AND id IN (SELECT value FROM json_each(?))",
                (owner, _ids_json(delivery_ids)),
            )

    async def lease_owners(self, now: datetime) -> list[str]:
        stamp = to_epoch(now)
        async with self._read():
            rows = await self._rows(
                "SELECT lease_owner FROM products WHERE lease_owner IS NOT NULL"
                " AND lease_until > ?"
                " UNION SELECT lease_owner FROM deliveries WHERE status = 'pending'"
                " AND lease_owner IS NOT NULL AND lease_until > ?",
                (stamp, stamp),
            )
        return sorted(row["lease_owner"] for row in rows)

    # --- per-host politeness -------------------------------------------------------------------

    async def reserve_host_slot(self, host: str, now: datetime, min_delay: timedelta) -> datetime:
        stamp, delay = to_epoch(now), min_delay.total_seconds()
        async with self._write():
            row = await self._row(
                """
                INSERT INTO host_state (host, next_allowed_at) VALUES (?, ?)
                ON CONFLICT (host) DO UPDATE SET next_allowed_at =
                    MAX(?, COALESCE(next_allowed_at, 0), COALESCE(backoff_until, 0)) + ?
                RETURNING next_allowed_at
                """,
                (host, stamp + delay, stamp, delay),
            )
        assert row is not None  # RETURNING of an upsert
        return _required_time(row["next_allowed_at"] - delay)

    async def save_host_state(self, state: HostState) -> None:
        next_allowed = None if state.next_allowed_at is None else to_epoch(state.next_allowed_at)
        backoff = None if state.backoff_until is None else to_epoch(state.backoff_until)
        async with self._write():
            await self._run(
                """
                INSERT INTO host_state (host, next_allowed_at, backoff_until, consecutive_blocks,
                    last_reason) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (host) DO UPDATE SET
                    next_allowed_at = COALESCE(excluded.next_allowed_at, next_allowed_at),
                    backoff_until = excluded.backoff_until,
                    consecutive_blocks = excluded.consecutive_blocks,
                    last_reason = excluded.last_reason
                """,
                (state.host, next_allowed, backoff, state.consecutive_blocks, state.last_reason),
            )

    async def host_states(self) -> list[HostState]:
        async with self._read():
            rows = await self._rows("SELECT * FROM host_state ORDER BY host")
        return [
            HostState(
                host=row["host"],
                next_allowed_at=from_epoch(row["next_allowed_at"]),
                backoff_until=from_epoch(row["backoff_until"]),
                consecutive_blocks=row["consecutive_blocks"],
                last_reason=row["last_reason"],
            )
            for row in rows
        ]

    # --- status --------------------------------------------------------------------------------

    async def watch_statuses(self, *, events_per_watch: int = 3) -> list[WatchStatus]:
        async with self._read():
            rows = await self._rows(_WATCH_STATUS_SELECT + " WHERE w.active = 1 ORDER BY w.id")
            event_rows = await self._rows(
                """
                SELECT id, watch_id, payload FROM (
                    SELECT e.id, e.watch_id, e.payload, ROW_NUMBER() OVER (
                        PARTITION BY e.watch_id ORDER BY e.id DESC) AS n
                    FROM events e JOIN watches w ON w.id = e.watch_id WHERE w.active = 1)
                WHERE n <= ? ORDER BY id DESC
                """,
                (events_per_watch,),
            )
        events: dict[int, list[Event]] = {}
        for row in event_rows:
            events.setdefault(row["watch_id"], []).append(
                event_from_json(row["id"], row["payload"])
            )
        return [_watch_status(row, events.get(row["id"], [])) for row in rows]

    async def history(self, watch_key: str, limit: int = 50) -> WatchHistory | None:
        async with self._read():
            row = await self._row(_WATCH_STATUS_SELECT + " WHERE w.key = ?", (watch_key,))
            if row is None:
                return None
            event_rows = await self._rows(
                "SELECT id, payload FROM events WHERE watch_id = ? ORDER BY id DESC LIMIT ?",
                (row["id"], limit),
            )
            obs_rows = await self._rows(
                "SELECT o.* FROM observations o JOIN watches w ON w.product_id = o.product_id"
                " WHERE w.id = ? ORDER BY o.id DESC LIMIT ?",
                (row["id"], limit),
            )
        events = tuple(event_from_json(r["id"], r["payload"]) for r in event_rows)
        return WatchHistory(
            status=_watch_status(row, events[:3]),
            observations=tuple(_observation_record(r) for r in obs_rows),
            events=events,
        )

    async def outbox_depth(self) -> dict[str, int]:
        async with self._read():
            rows = await self._rows("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
        depth = dict.fromkeys(DELIVERY_STATUSES, 0)
        depth.update({row["status"]: row["n"] for row in rows})
        return depth

    async def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        async with self._read():
            rows = await self._rows(
                "SELECT d.*, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id"
                " WHERE d.status IN ('dead', 'failed') ORDER BY d.updated_at DESC, d.id DESC"
                " LIMIT ?",
                (limit,),
            )
        return [
            DeadLetter(
                id=row["id"],
                event=event_from_json(row["event_id"], row["payload"]),
                channel=row["channel"],
                recipient=row["recipient"],
                attempts=row["attempts"],
                status=row["status"],
                last_error=row["last_error"],
                updated_at=from_epoch(row["updated_at"]),
            )
            for row in rows
        ]

    # --- the chat bot --------------------------------------------------------------------------

    async def ensure_chat_user(
        self,
        chat_id: int,
        now: datetime,
        *,
        user_id: int | None = None,
        language: str | None = None,
    ) -> ChatUser:
        async with self._write():
            row = await self._row(
                """
                INSERT INTO chat_users (chat_id, user_id, language, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (chat_id) DO UPDATE SET
                    user_id = COALESCE(excluded.user_id, user_id),
                    language = COALESCE(excluded.language, language),
                    blocked = 0
                RETURNING *
                """,
                (chat_id, user_id, language, to_epoch(now)),
            )
        assert row is not None  # RETURNING of an upsert
        return _chat_user(row)

    async def ensure_product(self, target: str, store: str | None, now: datetime) -> int:
        async with self._write():
            return await self._ensure_product(target, store, to_epoch(now))

    async def _ensure_product(self, target: str, store: str | None, stamp: float) -> int:
        row = await self._row(
            "INSERT INTO products (target, store, due_at, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (target) DO UPDATE SET store = COALESCE(store, excluded.store)"
            " RETURNING id",
            (target, store, stamp, stamp),
        )
        assert row is not None  # RETURNING of an upsert
        return int(row["id"])

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
        stamp = to_epoch(now)
        async with self._write():
            product_id = await self._ensure_product(target, store, stamp)
            watch = await self._row(
                """
                INSERT INTO watches (key, name, product_id, origin, conditions, active,
                    created_at, updated_at)
                VALUES (?, ?, ?, 'chat', ?, 0, ?, ?)
                ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at
                RETURNING id
                """,
                (
                    chat_watch_key(target, conditions),
                    name or target,
                    product_id,
                    conditions_to_json(conditions),
                    stamp,
                    stamp,
                ),
            )
            assert watch is not None  # RETURNING of an upsert
            sub_id = await self._subscribe_chat(chat_id, watch["id"], one_shot, stamp)
            await self._refresh_products([product_id])
            return await self._subscription(sub_id)

    async def subscribe_to_watch(
        self, chat_id: int, watch_key: str, now: datetime, *, one_shot: bool = True
    ) -> Subscription | None:
        stamp = to_epoch(now)
        async with self._write():
            watch = await self._row(
                "SELECT id, product_id FROM watches WHERE key = ? AND active = 1", (watch_key,)
            )
            if watch is None:
                return None
            sub_id = await self._subscribe_chat(chat_id, watch["id"], one_shot, stamp)
            await self._refresh_products([watch["product_id"]])
            return await self._subscription(sub_id)

    async def _subscribe_chat(
        self, chat_id: int, watch_id: int, one_shot: bool, stamp: float
    ) -> int:
        """Insert (or reactivate) a chat's subscription, with the chat's quiet hours/language."""
        await self._run(
            "INSERT OR IGNORE INTO chat_users (chat_id, created_at) VALUES (?, ?)",
            (chat_id, stamp),
        )
        row = await self._row(
            """
            INSERT INTO subscriptions (watch_id, channel, recipient, origin, one_shot,
                quiet_from, quiet_to, quiet_mode, language, created_at)
            SELECT ?, 'telegram', ?, 'chat', ?, quiet_from, quiet_to, quiet_mode, language, ?
            FROM chat_users WHERE chat_id = ?
            ON CONFLICT (watch_id, channel, recipient) DO UPDATE SET
                active = 1, paused = 0, ended_at = NULL, opted_out_at = NULL,
                -- the operator's standing YAML subscription stays standing
                one_shot = CASE WHEN origin = 'yaml' THEN one_shot ELSE excluded.one_shot END
            RETURNING id
            """,
            (watch_id, str(chat_id), one_shot, stamp, chat_id),
        )
        assert row is not None  # RETURNING of an upsert
        return int(row["id"])

    async def _subscription(self, subscription_id: int) -> Subscription:
        row = await self._row(_SUBSCRIPTION_SELECT + " WHERE s.id = ?", (subscription_id,))
        assert row is not None  # called with an id just written
        return _subscription(row)

    async def list_subscriptions(self, chat_id: int) -> list[Subscription]:
        async with self._read():
            rows = await self._rows(
                _SUBSCRIPTION_SELECT + " WHERE s.channel = 'telegram' AND s.recipient = ?"
                " AND s.active = 1 ORDER BY s.id",
                (str(chat_id),),
            )
        return [_subscription(row) for row in rows]

    async def set_paused(self, subscription_id: int, chat_id: int, paused: bool) -> bool:
        async with self._write():
            rows = await self._rows(
                "UPDATE subscriptions SET paused = ? WHERE id = ? AND channel = 'telegram'"
                " AND recipient = ? AND active = 1 RETURNING watch_id",
                (paused, subscription_id, str(chat_id)),
            )
            await self._refresh_watch_products([row["watch_id"] for row in rows])
        return bool(rows)

    async def remove_subscription(self, subscription_id: int, chat_id: int, now: datetime) -> bool:
        async with self._write():
            ended = await self._end_subscriptions(
                "id = ? AND channel = 'telegram' AND recipient = ?",
                (subscription_id, str(chat_id)),
                to_epoch(now),
                "unsubscribed",
            )
        return ended > 0

    async def deactivate_chat(self, chat_id: int, now: datetime, *, blocked: bool = False) -> int:
        async with self._write():
            ended = await self._end_subscriptions(
                "channel = 'telegram' AND recipient = ?", (str(chat_id),), to_epoch(now), "stopped"
            )
            if blocked:
                await self._run("UPDATE chat_users SET blocked = 1 WHERE chat_id = ?", (chat_id,))
        return ended

    async def set_quiet(self, chat_id: int, quiet: QuietHours | None) -> None:
        columns = _quiet_columns(quiet)
        async with self._write():
            await self._run(
                "UPDATE chat_users SET quiet_from = ?, quiet_to = ?, quiet_mode = ?"
                " WHERE chat_id = ?",
                (*columns, chat_id),
            )
            await self._run(
                "UPDATE subscriptions SET quiet_from = ?, quiet_to = ?, quiet_mode = ?"
                " WHERE channel = 'telegram' AND recipient = ?",
                (*columns, str(chat_id)),
            )

    async def count_active(self, chat_id: int) -> int:
        async with self._read():
            row = await self._row(
                "SELECT COUNT(*) AS n FROM subscriptions WHERE channel = 'telegram'"
                " AND recipient = ? AND origin = 'chat' AND active = 1",
                (str(chat_id),),
            )
        return int(row["n"]) if row else 0

    async def chat_ids(self) -> list[int]:
        async with self._read():
            rows = await self._rows(
                "SELECT chat_id FROM chat_users u WHERE blocked = 0 AND EXISTS ("
                " SELECT 1 FROM subscriptions s WHERE s.channel = 'telegram'"
                " AND s.recipient = CAST(u.chat_id AS TEXT) AND s.active = 1) ORDER BY chat_id"
            )
        return [int(row["chat_id"]) for row in rows]

    async def stats(self, top: int = 10) -> Stats:
        async with self._read():
            users = await self._row(
                "SELECT COUNT(*) AS n, COALESCE(SUM(blocked), 0) AS blocked FROM chat_users"
            )
            active_users = await self._row(
                "SELECT COUNT(DISTINCT recipient) AS n FROM subscriptions"
                " WHERE channel = 'telegram' AND origin = 'chat' AND active = 1"
            )
            watches = await self._rows(
                "SELECT origin, COUNT(*) AS n FROM watches WHERE active = 1 GROUP BY origin"
            )
            subs = await self._row("SELECT COUNT(*) AS n FROM subscriptions WHERE active = 1")
            stores = await self._rows(
                "SELECT COALESCE(store, CASE WHEN target LIKE 'jan:%' THEN 'jan' ELSE '?' END)"
                " AS store, SUM(checks) AS checks, SUM(blocks) AS blocks FROM products"
                " GROUP BY 1 ORDER BY 1"
            )
            awaited = await self._rows(
                "SELECT target, store, last_title, subscribers FROM products"
                " WHERE active = 1 AND subscribers > 0 ORDER BY subscribers DESC, id LIMIT ?",
                (top,),
            )
        assert users is not None and active_users is not None and subs is not None
        return Stats(
            users=users["n"],
            active_users=active_users["n"],
            blocked_users=users["blocked"],
            watches={row["origin"]: row["n"] for row in watches},
            subscriptions=subs["n"],
            checks_by_store={row["store"]: row["checks"] for row in stores},
            blocks_by_store={row["store"]: row["blocks"] for row in stores},
            most_awaited=tuple(
                AwaitedProduct(r["target"], r["store"], r["last_title"], r["subscribers"])
                for r in awaited
            ),
        )


# --- rows -> values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CheckWrite:
    """One `record_check` waiting for its batch, and where its result goes."""

    product_id: int
    observation: Observation
    decisions: Sequence[WatchDecision]
    outcome: CheckOutcome
    stamp: float
    next_due: float
    result: asyncio.Future[_Written]


# A subscription's quiet hours and language, for its claimed deliveries.
_RecipientSettings = tuple[QuietHours | None, str | None]
_NO_SETTINGS: _RecipientSettings = (None, None)


@dataclass(frozen=True, slots=True)
class _NewClaims:
    """One event's new deliveries leased in the check's transaction, as rows, until built."""

    event: Event  # as stored, with its id
    lease_until: datetime
    rows: list[sqlite3.Row]  # (id, subscription_id, channel, recipient, claimed), in id order
    extras: dict[int, _RecipientSettings]  # by subscription id, for those that have any


@dataclass(frozen=True, slots=True)
class _StoredEvent:
    event_id: int
    deliveries: int
    claims: _NewClaims | None
    ended: bool  # one-shot subscriptions ended with it


@dataclass(frozen=True, slots=True)
class _Written:
    """A check as its transaction wrote it; its claimed deliveries are built after the commit."""

    recorded: RecordedCheck
    claimed: list[_NewClaims] = field(default_factory=list)


def _first(row: sqlite3.Row) -> int:
    return int(row[0])


def _settle(future: asyncio.Future[_Written], result: _Written) -> None:
    if not future.done():  # its caller may have been cancelled meanwhile
        future.set_result(result)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _yaml_watch_row(watch: Watch, product_id: int, stamp: float) -> tuple[Any, ...]:
    return (
        watch.key,
        watch.name,
        product_id,
        conditions_to_json(watch.conditions),
        watch.once,
        watch.notify_on_first,
        rules_to_json(watch.rules),
        _seconds(watch.interval),
        json.dumps(list(watch.stores)),
        stamp,
        stamp,
    )


def _due_product(row: sqlite3.Row) -> DueProduct:
    interval = row["interval_s"]
    return DueProduct(
        id=row["id"],
        target=row["target"],
        store=row["store"],
        due_at=_required_time(row["due_at"]),
        lease_until=_required_time(row["lease_until"]),
        interval=None if interval is None else timedelta(seconds=interval),
        subscribers=row["subscribers"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        content_hash=row["content_hash"],
        last_state=_state_or_none(row["last_state"]),
        last_checked_at=from_epoch(row["last_checked_at"]),
        consecutive_errors=row["consecutive_errors"],
    )


# The columns `_stored_watch` reads, by position (every check loads its product's watches, so
# positional access and cached decoding of the texts watches share are worth their keep).
_WATCH_COLUMNS = (
    "w.id, w.product_id, w.origin, w.key, w.name, p.target, p.store, w.stores, w.interval_s,"
    " w.conditions, w.once, w.notify_on_first, w.rules, w.detector_state, w.paused"
)


_ORIGINS = {origin.value: origin for origin in Origin}


def _stored_watch(row: sqlite3.Row) -> StoredWatch:
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


def _claimed_from_rows(rows: Sequence[sqlite3.Row]) -> list[ClaimedDelivery]:
    """Claimed deliveries from `_CLAIMED_SELECT`'s rows; each event decoded once, not per row."""
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
                lease_until=_required_time(row["lease_until"]),
                subscription_id=row["subscription_id"],
                quiet=_quiet_from_row(row),
                language=row["language"],
            )
        )
    return claimed


# Claimed deliveries built between two looks at the event loop (~5 ms of work).
CLAIMED_CHUNK = 5_000


async def _claimed_deliveries(new: Sequence[_NewClaims]) -> list[ClaimedDelivery]:
    """A check's new claimed deliveries, built in chunks: tens of thousands of them would
    otherwise hold the event loop for a noticeable pause."""
    claimed: list[ClaimedDelivery] = []
    for claims in new:
        for start in range(0, len(claims.rows), CLAIMED_CHUNK):
            if claimed:
                await asyncio.sleep(0)
            claimed += _built(claims, claims.rows[start : start + CLAIMED_CHUNK])
    return claimed


def _built(claims: _NewClaims, rows: Sequence[sqlite3.Row]) -> list[ClaimedDelivery]:
    event, lease_until, extras = claims.event, claims.lease_until, claims.extras
    built = []
    for delivery_id, subscription_id, channel, recipient, _ in rows:
        quiet, language = extras.get(subscription_id, _NO_SETTINGS)
        item = ClaimedDelivery(
            delivery_id, event, channel, recipient, 1, lease_until, subscription_id, quiet, language
        )
        built.append(item)
    return built


def _subscription(row: sqlite3.Row) -> Subscription:
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
        created_at=_required_time(row["created_at"]),
        quiet=_quiet_from_row(row),
        language=row["language"],
    )


def _chat_user(row: sqlite3.Row) -> ChatUser:
    return ChatUser(
        chat_id=row["chat_id"],
        user_id=row["user_id"],
        language=row["language"],
        blocked=bool(row["blocked"]),
        created_at=_required_time(row["created_at"]),
        quiet=_quiet_from_row(row),
    )


def _observation_record(row: sqlite3.Row) -> ObservationRecord:
    return ObservationRecord(
        at=_required_time(row["at"]),
        state=Availability(row["state"]),
        price=row["price"],
        reason=row["reason"],
        status=row["status"],
        bytes=row["bytes"],
        ms=row["ms"],
        blocked=bool(row["blocked"]),
    )


def _watch_status(row: sqlite3.Row, events: Sequence[Event]) -> WatchStatus:
    return WatchStatus(
        key=row["key"],
        name=row["name"],
        target=row["target"],
        store=row["store"],
        origin=Origin(row["origin"]),
        active=bool(row["active"]),
        state=_json_or_none(row["detector_state"]),
        last_state=_state_or_none(row["last_state"]),
        last_price=row["last_price"],
        last_checked_at=from_epoch(row["last_checked_at"]),
        next_check_at=from_epoch(row["due_at"]) if row["product_active"] else None,
        subscribers=row["subscribers"],
        last_events=tuple(events),
    )


def _check_protocol(repo: SQLiteRepository) -> Repository:
    """Lets mypy prove that SQLiteRepository implements Repository."""
    return repo
