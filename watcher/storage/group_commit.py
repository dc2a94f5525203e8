"""Checks written in groups, and the deliveries a check hands to its dispatcher: shared by every
backend (the repository supplies a transaction and the statements of one check).

Checks that finish while another group is being written are written together, in one transaction
(fewer commits and trips to the database); each check still lands whole or not at all, and its
caller hears only after the commit. If the group's transaction fails, each check is written again
in its own, so one bad check does not take the others down.

Most checks are quiet (no event, no watch finished): a backend may write a group's quiet checks
with a few statements for the whole group (`record_quiet`) instead of several per check, since
every statement is a trip to the database (a thread hop for SQLite, a round trip for a server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, TypeVar

from watcher.core.model import Event, Observation, QuietHours
from watcher.storage.codec import to_epoch
from watcher.storage.interface import (
    CheckOutcome,
    ClaimedDelivery,
    RecordedCheck,
    WatchDecision,
)
from watcher.storage.rows import Row

# Claimed deliveries built between two looks at the event loop (~5 ms of work).
CLAIMED_CHUNK = 5_000


class LeaseLost(Exception):
    """A check's lease passed to another check before it was stored (rolls the write back)."""


# A subscription's quiet hours and language, for its claimed deliveries.
RecipientSettings = tuple[QuietHours | None, str | None]
_NO_SETTINGS: RecipientSettings = (None, None)


@dataclass(frozen=True, slots=True)
class NewClaims:
    """One event's new deliveries leased in the check's transaction, as rows, until built."""

    event: Event  # as stored, with its id
    lease_until: datetime
    rows: Sequence[Row]  # (id, subscription_id, channel, recipient, claimed), in id order
    extras: dict[int, RecipientSettings]  # by subscription id, for those that have any


@dataclass(frozen=True, slots=True)
class Written:
    """A check as its transaction wrote it; its claimed deliveries are built after the commit."""

    recorded: RecordedCheck
    claimed: list[NewClaims] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CheckWrite:
    """One `record_check` waiting for its group, and where its result goes."""

    product_id: int
    observation: Observation
    decisions: Sequence[WatchDecision]
    outcome: CheckOutcome
    stamp: float
    next_due: float
    result: asyncio.Future[Written]


T = TypeVar("T")


class Transaction(Protocol):
    """Runs a body in one write transaction and returns its result (`Connector.transaction`)."""

    async def __call__(self, body: Callable[[], Awaitable[T]], /) -> T: ...


RecordOne = Callable[[CheckWrite], Awaitable[Written]]
# Writes quiet checks (no events) inside the caller's transaction, a result per check in order;
# a check whose lease passed to another check is answered with `LEASE_LOST` and writes nothing.
RecordQuiet = Callable[[Sequence[CheckWrite]], Awaitable[list[Written]]]
LEASE_LOST = Written(RecordedCheck(events=(), deliveries=0, lease_lost=True))


class CheckWriter:
    """Queues checks and writes them in groups with `record_one` inside `transaction`."""

    def __init__(
        self,
        transaction: Transaction,
        record_one: RecordOne,
        record_quiet: RecordQuiet | None = None,
    ) -> None:
        self._transaction = transaction
        self._record_one = record_one
        self._record_quiet = record_quiet
        self._check_queue: list[CheckWrite] = []  # checks waiting for the next group
        self._check_writer: asyncio.Task[None] | None = None

    async def record_check(
        self,
        product_id: int,
        observation: Observation,
        decisions: Sequence[WatchDecision],
        outcome: CheckOutcome,
        now: datetime,
    ) -> RecordedCheck:
        """Write one check: its product, observation, watch states, events and deliveries."""
        write = CheckWrite(
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
        claimed = await claimed_deliveries(written.claimed)
        return replace(written.recorded, claimed=tuple(claimed))

    async def drain(self) -> None:
        """Wait for the checks already queued (before closing the database)."""
        if self._check_writer is not None:
            await asyncio.wait([self._check_writer])

    async def _write_queued_checks(self) -> None:
        batch: list[CheckWrite] = []
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

    async def _write_batch(self, batch: list[CheckWrite]) -> None:
        """All checks in one transaction; on any failure, each again in its own."""
        quiet = _quiet_of(batch) if self._record_quiet is not None else []

        async def write_all() -> dict[int, Written]:
            results: dict[int, Written] = {}
            if quiet and self._record_quiet is not None:
                written = await self._record_quiet(quiet)
                results.update(zip(map(id, quiet), written, strict=True))
            for write in batch:
                if id(write) not in results:
                    results[id(write)] = await self._record_lease_checked(write)
            return results

        try:
            results = await self._transaction(write_all)
        except Exception:
            for write in batch:
                await self._write_alone(write)
            return
        for write in batch:
            _settle(write.result, results[id(write)])

    async def _write_alone(self, write: CheckWrite) -> None:
        async def write_one() -> Written:
            if self._record_quiet is not None and is_quiet(write):
                [written] = await self._record_quiet([write])
                return written
            return await self._record_lease_checked(write)

        try:
            result = await self._transaction(write_one)
        except Exception as exc:
            if not write.result.done():
                write.result.set_exception(exc)
            return
        _settle(write.result, result)

    async def _record_lease_checked(self, write: CheckWrite) -> Written:
        # A lost lease is found by the first statement, before this check wrote anything.
        try:
            return await self._record_one(write)
        except LeaseLost:
            return LEASE_LOST


def is_quiet(write: CheckWrite) -> bool:
    """True for a check that fires no event and finishes no watch (most checks)."""
    return not any(d.events or d.finished for d in write.decisions)


def _quiet_of(batch: Sequence[CheckWrite]) -> list[CheckWrite]:
    """The batch's quiet checks, one per product (a second check of one product, if any, is
    written after the first, on its own)."""
    seen: set[int] = set()
    quiet = []
    for write in batch:
        if write.product_id not in seen and is_quiet(write):
            quiet.append(write)
        seen.add(write.product_id)
    return quiet


def _settle(future: asyncio.Future[Written], result: Written) -> None:
    if not future.done():  # its caller may have been cancelled meanwhile
        future.set_result(result)


async def claimed_deliveries(new: Sequence[NewClaims]) -> list[ClaimedDelivery]:
    """A check's new claimed deliveries, built in chunks: tens of thousands of them would
    otherwise hold the event loop for a noticeable pause."""
    claimed: list[ClaimedDelivery] = []
    for claims in new:
        for start in range(0, len(claims.rows), CLAIMED_CHUNK):
            if claimed:
                await asyncio.sleep(0)
            claimed += _built(claims, claims.rows[start : start + CLAIMED_CHUNK])
    return claimed


def _built(claims: NewClaims, rows: Sequence[Row]) -> list[ClaimedDelivery]:
    event, lease_until, extras = claims.event, claims.lease_until, claims.extras
    built = []
    for delivery_id, subscription_id, channel, recipient, _ in rows:
        quiet, language = extras.get(subscription_id, _NO_SETTINGS)
        item = ClaimedDelivery(
            delivery_id, event, channel, recipient, 1, lease_until, subscription_id, quiet, language
        )
        built.append(item)
    return built
