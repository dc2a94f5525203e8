"""The dispatcher: pending deliveries from the outbox to their notifiers.

One worker per channel, so a slow or failing channel never delays another. A worker claims a
batch of its channel's due deliveries with a lease (two dispatchers never send the same one),
hands them to the notifier, and queues each result as the notifier reports it (each send's result
as that send ends, not when the batch does): sent, retry later (with backoff), permanent failure,
or skipped. A recorder writes what is queued, several batches (of every channel) in one
transaction, while the workers go on sending; a result reported mid-batch waits at most
`record_linger` for others to share its write. One event's thousands of deliveries then cost a
few writes a second, not one per send, each waiting for the write lock, and a crash repeats only
the sends in flight and those of the last linger. A worker waits for the recorder only when a
whole group is queued. A delivery whose lease expires (the process died mid-send, or before its
result was written) comes back by itself; only such a delivery can ever go out twice.

New deliveries mostly skip the claim: the engine's check leases them to this dispatcher in the
transaction that writes them (`claim_request`) and hands them over in memory (`hand`); a worker
sends those first. That keeps a restock's hand-off off the database's write lock, which under
load is busy with batches of checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from notifiers.base import Notice, Notifier, ResultSink, SendResult
from watcher.clock import WallClock, utc_now, wait_any
from watcher.core.model import Outcome, QuietMode
from watcher.core.quiet import quiet_until
from watcher.core.schedule import backoff
from watcher.service.metrics import Metrics
from watcher.storage.interface import (
    ClaimedDelivery,
    DeliveryClaim,
    DeliveryResult,
    Repository,
)

log = logging.getLogger("restock.dispatch")


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    max_attempts: int = 8
    batch: int = 50
    lease: timedelta = timedelta(minutes=5)
    idle_poll: float = 1.0  # seconds between outbox polls when nothing woke the worker
    retry_base: timedelta = timedelta(seconds=5)
    retry_cap: timedelta = timedelta(minutes=30)
    # The least wait before a retry, whatever the jitter or the notifier says: a retry due "now"
    # would be claimed again at once and burn every attempt in a tight loop.
    retry_floor: timedelta = timedelta(seconds=1)
    timezone: str = "Asia/Tokyo"  # quiet hours are read in this zone
    # Most results written in one transaction; also how many may wait to be written before a
    # worker waits for them.
    record_group: int = 1_000
    # Longest a result reported mid-batch waits for others to share its write (seconds): a
    # crash then repeats at most the sends in flight and those of this last moment.
    record_linger: float = 0.25


@dataclass(frozen=True, slots=True)
class _Unrecorded:
    """A sent batch's result waiting for the recorder."""

    channel: str
    item: ClaimedDelivery
    result: SendResult


@dataclass(slots=True)
class _Turns:
    """A channel worker's bookkeeping between handed batches and looks in the outbox."""

    look_at: float  # when the outbox is next looked at (the event loop's clock)
    handed_last: bool = False  # the last batch was a handed one


class Dispatcher:
    def __init__(
        self,
        repository: Repository,
        notifiers: Mapping[str, Notifier],
        *,
        owner: str,
        settings: DispatchSettings = DispatchSettings(),
        metrics: Metrics | None = None,
        clock: WallClock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.repository = repository
        self.notifiers = dict(notifiers)
        self.owner = owner
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.rng = rng or random.Random()
        self._zone = ZoneInfo(settings.timezone)
        self._wake = {name: asyncio.Event() for name in self.notifiers}
        self._group: asyncio.TaskGroup | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = False  # run() has returned: nothing handed over will be sent
        # Deliveries the engine claimed for this dispatcher and handed over, per channel.
        self._handed: dict[str, deque[ClaimedDelivery]] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        self._look: set[str] = set()  # channels woken to look in the outbox
        self._request = self._claim_request()
        # Plain results of sent batches, waiting to be written together; see _queue_results.
        self._unrecorded: list[_Unrecorded] = []
        self._recorder: asyncio.Task[None] | None = None
        self._room = asyncio.Event()  # the recorder took a group off the queue
        self._hurry = asyncio.Event()  # write what is queued now, without lingering
        self._flushing = 0  # callers waiting for every queued result to be written

    def apply_settings(self, settings: DispatchSettings) -> None:
        """Use `settings` from the next batch on (a watchlist reload: attempts, time zone)."""
        self.settings = settings
        self._zone = ZoneInfo(settings.timezone)
        self._request = self._claim_request()

    def wake(self) -> None:
        """New deliveries were written: look now instead of at the next poll."""
        self._look.update(self._wake)
        for event in self._wake.values():
            event.set()

    def claim_request(self) -> DeliveryClaim:
        """What a check may claim for this dispatcher: its channels' new deliveries."""
        return self._request

    def _claim_request(self) -> DeliveryClaim:
        return DeliveryClaim(self.owner, self.settings.lease, frozenset(self.notifiers))

    def hand(self, claimed: Sequence[ClaimedDelivery]) -> None:
        """Deliveries were written, and `claimed` of them leased to this dispatcher: send those
        first, without a database claim. With none claimed, the workers look in the database."""
        if not claimed:
            self.wake()
            return
        orphans = []
        # Channel by channel: a fan-out hands thousands of deliveries on one or two channels.
        for channel in {item.channel for item in claimed}:
            items = [item for item in claimed if item.channel == channel]
            if self._stopped or channel not in self.notifiers:
                orphans += items  # no worker will send them: give them back at once
                continue
            self._handed.setdefault(channel, deque()).extend(items)
            self._wake[channel].set()
        self._release_soon(orphans)

    def _take_handed(
        self, channel: str, notifier: Notifier, now: datetime
    ) -> list[ClaimedDelivery]:
        """A batch of `channel`'s handed deliveries whose lease still holds.

        One that waited past its lease may have been claimed by another dispatcher: it is left
        to the database (this dispatcher's own claim finds it again if nobody else did).
        """
        queue = self._handed.get(channel)
        taken: list[ClaimedDelivery] = []
        limit = self._batch_size(notifier)
        while queue and len(taken) < limit:
            item = queue.popleft()
            if item.lease_until > now:
                taken.append(item)
        return taken

    def _release_soon(self, items: Iterable[ClaimedDelivery]) -> None:
        ids = [item.id for item in items]
        if ids:
            task = asyncio.create_task(self._release(ids))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _release(self, ids: Sequence[int]) -> None:
        """Give handed deliveries back; if that fails, their lease expires by itself."""
        try:
            await self.repository.release_deliveries(self.owner, ids)
        except Exception:
            log.exception("releasing %d handed deliveries failed", len(ids))

    async def _release_all_handed(self) -> None:
        left = [item for queue in self._handed.values() for item in queue]
        self._handed.clear()
        self._release_soon(left)
        while self._releasing:
            await asyncio.gather(*list(self._releasing))

    async def run(self, stop: asyncio.Event) -> None:
        """Run every channel's worker until `stop` is set; in-flight sends finish first."""
        self._stop = stop
        self._stopped = False
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for name in self.notifiers:
                    self._start_worker(name)
        finally:
            self._group = None
            self._stopped = True
            await self._flush_results()  # what went out is recorded before run() returns
            # Handed over but never sent: back to the outbox now, not when the lease expires.
            await self._release_all_handed()

    def replace_notifiers(self, notifiers: Mapping[str, Notifier]) -> list[Notifier]:
        """Use these notifiers from the next batch on (a reloaded watchlist's channels).

        New channels get a worker at once; a removed channel's worker ends after its batch in
        hand (its pending deliveries wait for the channel to come back). Returns the notifiers
        that were replaced or removed, for the caller to close.
        """
        retired = [old for name, old in self.notifiers.items() if notifiers.get(name) is not old]
        added = [name for name in notifiers if name not in self.notifiers]
        removed = [name for name in self.notifiers if name not in notifiers]
        self.notifiers = dict(notifiers)
        self._request = self._claim_request()
        for name in removed:
            # Like its other pending deliveries, they wait for the channel to come back.
            self._release_soon(self._handed.pop(name, ()))
        for name in added:
            self._wake[name] = asyncio.Event()
            self._start_worker(name)
        for event in self._wake.values():
            event.set()  # a worker whose channel is gone notices at once
        return retired

    def _start_worker(self, name: str) -> None:
        if self._group is not None and self._stop is not None:
            self._group.create_task(self._channel_loop(name, self._stop), name=f"send-{name}")

    async def drain_once(self) -> int:
        """Send every due delivery once, channel by channel; returns how many were handed over."""
        total = 0
        for name, notifier in self.notifiers.items():
            total += await self._send_batch(name, notifier)
        await self._flush_results()
        return total

    async def _channel_loop(self, name: str, stop: asyncio.Event) -> None:
        wake = self._wake[name]
        moment = asyncio.get_running_loop().time
        turns = _Turns(look_at=moment())  # at once: what already waits in the outbox
        while not stop.is_set() and name in self.notifiers:
            # Cleared before the claim, not after it: a wake-up that arrives while the claim runs
            # then still cuts the idle wait short instead of being lost.
            wake.clear()
            if name in self._look:
                self._look.discard(name)
                turns.look_at = moment()
            try:
                if await self._send_next(name, self.notifiers[name], turns, moment):
                    # A notifier that accepts at once never suspends, and results are written
                    # in the background: without this, thousands of handed deliveries would
                    # hold the event loop (and every check) until the last batch.
                    await asyncio.sleep(0)
                    continue
            except Exception:  # a database hiccup must not end the worker
                log.exception("dispatch %s: batch failed", name)
                turns.look_at = moment() + self.settings.idle_poll
            if not self._handed.get(name):
                await wait_any((wake, stop), max(0.0, turns.look_at - moment()))

    async def _send_next(
        self, name: str, notifier: Notifier, turns: _Turns, moment: Callable[[], float]
    ) -> bool:
        """Send the channel's next batch, if it has one: handed-over deliveries as they come, the
        outbox when woken, at each poll, and while it has more.

        A claim from the outbox waits for the database's write lock, which checks keep busy under
        load: it is made only when it may find something, so a handed delivery rarely waits for
        one. A due look goes after at most one handed batch, so a stream of new deliveries does
        not starve the retries waiting in the outbox.
        """
        now = self.clock()
        look = moment() >= turns.look_at
        batch = [] if look and turns.handed_last else self._take_handed(name, notifier, now)
        turns.handed_last = bool(batch)
        if look and not batch:
            batch = await self._claim(name, notifier, now)
            # An outbox that had something may have more; an empty one waits for the next poll.
            turns.look_at = moment() + (0.0 if batch else self.settings.idle_poll)
            if not batch:  # handed over while the claim waited for the database
                now = self.clock()
                batch = self._take_handed(name, notifier, now)
                turns.handed_last = bool(batch)
        if batch:
            await self._send(name, notifier, batch, now)
        return bool(batch)

    async def _send_batch(self, name: str, notifier: Notifier) -> int:
        """One batch: the handed-over deliveries first, else a batch claimed from the outbox."""
        now = self.clock()
        batch = self._take_handed(name, notifier, now) or await self._claim(name, notifier, now)
        if batch:
            await self._send(name, notifier, batch, now)
        return len(batch)

    async def _claim(self, name: str, notifier: Notifier, now: datetime) -> list[ClaimedDelivery]:
        return await self.repository.claim_deliveries(
            self.owner, now, self._batch_size(notifier), self.settings.lease, channel=name
        )

    def _batch_size(self, notifier: Notifier) -> int:
        if notifier.fans_out:
            return notifier.batch_size
        return min(self.settings.batch, notifier.batch_size)

    async def _send(
        self, name: str, notifier: Notifier, claimed: Sequence[ClaimedDelivery], now: datetime
    ) -> None:
        """Hand claimed deliveries to the notifier and record what became of them."""
        ready = await self._apply_quiet_hours(name, claimed, now)
        if ready:
            self._observe_handoff(name, ready)
            by_id = {item.id: item for item in ready}
            streamed: set[int] = set()

            def report(notice: Notice, result: SendResult) -> None:
                # Plain results are queued as each send ends, not when the batch does.
                item = by_id.get(notice.delivery_id)
                if item is None or item.id in streamed or _has_side_effects(result):
                    return
                streamed.add(item.id)
                self._stream_result(_Unrecorded(name, item, result))

            results = await _send_safely(notifier, [_notice(item) for item in ready], report)
            rest = [(i, r) for i, r in zip(ready, results, strict=True) if i.id not in streamed]
            await self._record_all(name, rest)
            # The batch is over: what it reported is written now, and the worker waits while
            # a whole group is unwritten.
            await self._queue_results(())

    def _observe_handoff(self, channel: str, ready: Sequence[ClaimedDelivery]) -> None:
        """Time from the event to its first hand-off (a retry's wait is not hand-off latency)."""
        handed_at = self.clock()
        for item in ready:
            if item.attempts == 1:
                latency = (handed_at - item.event.observed_at).total_seconds()
                self.metrics.handoff_seconds.observe(max(0.0, latency), channel=channel)

    async def _apply_quiet_hours(
        self, channel: str, claimed: Sequence[ClaimedDelivery], now: datetime
    ) -> list[ClaimedDelivery]:
        """The deliveries to send now; the others are held (not an attempt) or dropped.

        Not one write each: a restock at night may find thousands of recipients inside their
        quiet hours. Held ones are written in one go, dropped ones with the sent results.
        """
        ready = []
        held = []
        dropped = []
        for item in claimed:
            until = quiet_until(item.quiet, now, self._zone)
            if until is None:
                ready.append(item)
            elif item.quiet is not None and item.quiet.mode is QuietMode.DROP:
                dropped.append(_Unrecorded(channel, item, SendResult.skipped("quiet hours")))
            else:
                held.append((item.id, until))
        if held:
            await self.repository.postpone_many(held, now)
        if dropped:
            await self._queue_results(dropped)
        return ready

    async def _record_all(
        self, channel: str, handed: Iterable[tuple[ClaimedDelivery, SendResult]]
    ) -> None:
        """Record a batch's results: the plain ones queued for the recorder, then those with
        side effects, each in its own write.

        The plain ones are written first, every one queued so far: a recipient deactivated by a
        later result skips its pending deliveries, and one of them that already went out must be
        recorded as sent, not skipped.
        """
        plain: list[tuple[ClaimedDelivery, SendResult]] = []
        special: list[tuple[ClaimedDelivery, SendResult]] = []
        for item, result in handed:
            (special if _has_side_effects(result) else plain).append((item, result))
        if plain:
            await self._queue_results([_Unrecorded(channel, i, r) for i, r in plain])
        if special:
            await self._flush_results()
        for item, result in special:
            await self._record_safely(channel, item, result)

    def _stream_result(self, result: _Unrecorded) -> None:
        """Queue one result reported mid-batch; the recorder writes it within the linger."""
        self._unrecorded.append(result)
        self._start_recorder()

    async def _queue_results(self, results: Sequence[_Unrecorded]) -> None:
        """Queue results for the recorder; wait while a whole group already waits for it."""
        self._unrecorded += results
        self._hurry.set()  # a batch ended: its results are written now
        while len(self._unrecorded) >= self.settings.record_group:
            self._room.clear()
            recorder = self._start_recorder()
            room = asyncio.ensure_future(self._room.wait())
            try:
                await asyncio.wait([room, recorder], return_when=asyncio.FIRST_COMPLETED)
            finally:
                room.cancel()
        self._start_recorder()

    def _start_recorder(self) -> asyncio.Task[None]:
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._record_queued())
        return self._recorder

    async def _record_queued(self) -> None:
        """Write the queued results, a group per transaction, until none is left."""
        try:
            while self._unrecorded:
                await self._linger()
                self._hurry.clear()
                group = self._unrecorded[: self.settings.record_group]
                del self._unrecorded[: len(group)]
                self._room.set()
                await self._record_plain_safely(group)
        finally:
            self._recorder = None
            self._room.set()

    async def _linger(self) -> None:
        """Let results reported mid-batch gather for one write, up to `record_linger`."""
        full = len(self._unrecorded) >= self.settings.record_group
        if full or self._flushing or self._hurry.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), self.settings.record_linger)

    async def _flush_results(self) -> None:
        """Wait until every queued result is written (or failed to be, and was logged)."""
        self._flushing += 1
        try:
            while self._unrecorded or self._recorder is not None:
                self._hurry.set()
                await asyncio.wait([self._start_recorder()])
        finally:
            self._flushing -= 1

    async def _record_plain_safely(self, plain: Sequence[_Unrecorded]) -> None:
        """One transaction for the whole group; if it fails, each result gets its own chance."""
        now = self.clock()
        batch = [self._delivery_result(u.item, u.result, now) for u in plain]
        try:
            statuses = await self.repository.record_results(batch, now, self.settings.max_attempts)
        except Exception:
            log.exception("dispatch: recording %d results failed", len(batch))
            for u in plain:
                await self._record_safely(u.channel, u.item, u.result)
            return
        counts: dict[tuple[str, str], int] = {}
        for u, status in zip(plain, statuses, strict=True):
            key = (u.channel, u.result.outcome.value)
            counts[key] = counts.get(key, 0) + 1
            if u.result.outcome is Outcome.RETRY and status == "dead":
                log.warning(
                    "delivery %s on %s dead-lettered: %s", u.item.id, u.channel, u.result.detail
                )
        for (channel, outcome), count in counts.items():
            self.metrics.deliveries.inc(count, channel=channel, result=outcome)

    def _delivery_result(
        self, item: ClaimedDelivery, result: SendResult, now: datetime
    ) -> DeliveryResult:
        retry_at = self._retry_at(item, result, now) if result.outcome is Outcome.RETRY else None
        return DeliveryResult(item.id, result.outcome, result.detail, retry_at)

    async def _record_safely(self, channel: str, item: ClaimedDelivery, result: SendResult) -> None:
        """Record one result; a failure to record it does not keep the others from being recorded.

        A result left unrecorded comes back when its lease expires and is sent again, so each
        delivery of the batch gets its own chance to be written.
        """
        try:
            await self._record(channel, item, result)
        except Exception:
            log.exception("dispatch %s: recording delivery %s failed", channel, item.id)

    async def _record(self, channel: str, item: ClaimedDelivery, result: SendResult) -> None:
        now = self.clock()
        repo = self.repository
        self.metrics.deliveries.inc(channel=channel, result=result.outcome.value)
        if result.new_recipient:
            await repo.rewrite_recipient(channel, item.recipient, result.new_recipient)
        if result.deactivate_recipient:
            await repo.deactivate_recipient(channel, item.recipient, now)
        if result.outcome is Outcome.SENT:
            await repo.mark_sent(item.id, now)
        elif result.outcome is Outcome.SKIPPED:
            await repo.mark_skipped(item.id, result.detail, now)
        elif result.outcome is Outcome.FAILED:
            await repo.mark_failed(item.id, result.detail, now)
        else:
            status = await repo.mark_retry(
                item.id, self._retry_at(item, result, now), result.detail, now,
                self.settings.max_attempts,
            )  # fmt: skip
            if status == "dead":
                log.warning("delivery %s on %s dead-lettered: %s", item.id, channel, result.detail)

    def _retry_at(self, item: ClaimedDelivery, result: SendResult, now: datetime) -> datetime:
        """The notifier's own time (a 429's reset) when it gives one, else backoff with jitter."""
        floor = now + self.settings.retry_floor
        if result.retry_at is not None:
            return max(result.retry_at, floor)
        s = self.settings
        return now + backoff(item.attempts, s.retry_base, s.retry_cap, self.rng, s.retry_floor)


def _has_side_effects(result: SendResult) -> bool:
    """The result changes the recipient too (moved, or gone): recorded on its own."""
    return result.deactivate_recipient or result.new_recipient is not None


def _notice(item: ClaimedDelivery) -> Notice:
    return Notice(
        delivery_id=item.id,
        event=item.event,
        recipient=item.recipient,
        attempt=item.attempts,
        language=item.language,
        subscription_id=item.subscription_id,
    )


async def _send_safely(
    notifier: Notifier, notices: list[Notice], report: ResultSink
) -> list[SendResult]:
    """A notifier must not raise; if one does anyway, its batch is retried, not lost (the
    results it reported before are kept)."""
    try:
        results = await notifier.send_streaming(notices, report)
    except Exception as exc:
        log.exception("notifier %s raised", notifier.name)
        return [SendResult(Outcome.RETRY, f"notifier raised {type(exc).__name__}")] * len(notices)
    if len(results) != len(notices):
        return [SendResult(Outcome.RETRY, "notifier returned a short batch")] * len(notices)
    return results
