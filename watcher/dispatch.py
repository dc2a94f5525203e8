"""The dispatcher: pending deliveries from the outbox to their notifiers.

One worker per channel, so a slow or failing channel never delays another. A worker claims a
batch of its channel's due deliveries with a lease (two dispatchers never send the same one),
hands them to the notifier, and writes the batch's results back in one transaction: sent, retry
later (with backoff), permanent failure, or skipped. A delivery whose lease expires (the process
died mid-send) comes back by itself; only such an in-flight send can ever go out twice.

New deliveries mostly skip the claim: the engine's check leases them to this dispatcher in the
transaction that writes them (`claim_request`) and hands them over in memory (`hand`); a worker
sends those first. That keeps a restock's hand-off off the database's write lock, which under
load is busy with batches of checks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from notifiers.base import Notice, Notifier, Outcome, SendResult
from watcher.metrics import Metrics
from watcher.repository import (
    ClaimedDelivery,
    DeliveryClaim,
    DeliveryOutcome,
    DeliveryResult,
    QuietHours,
    QuietMode,
    Repository,
)
from watcher.schedule import backoff

log = logging.getLogger("restock.dispatch")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        clock: Clock = utc_now,
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
        for item in claimed:
            if self._stopped or item.channel not in self.notifiers:
                orphans.append(item)  # no worker will send it: give it back at once
                continue
            self._handed.setdefault(item.channel, deque()).append(item)
            self._wake[item.channel].set()
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
                    continue
            except Exception:  # a database hiccup must not end the worker
                log.exception("dispatch %s: batch failed", name)
                turns.look_at = moment() + self.settings.idle_poll
            if not self._handed.get(name):
                await _wait_any(wake, stop, max(0.0, turns.look_at - moment()))

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
        return min(self.settings.batch, notifier.batch_size)

    async def _send(
        self, name: str, notifier: Notifier, claimed: Sequence[ClaimedDelivery], now: datetime
    ) -> None:
        """Hand claimed deliveries to the notifier and record what became of them."""
        ready = await self._apply_quiet_hours(name, claimed, now)
        if ready:
            self._observe_handoff(name, ready)
            results = await _send_safely(notifier, [_notice(item) for item in ready])
            await self._record_all(name, list(zip(ready, results, strict=True)))

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
        """The deliveries to send now; the others are held (not an attempt) or dropped."""
        ready = []
        for item in claimed:
            quiet_until = _quiet_until(item.quiet, now, self._zone)
            if quiet_until is None:
                ready.append(item)
            elif item.quiet is not None and item.quiet.mode is QuietMode.DROP:
                await self.repository.mark_skipped(item.id, "quiet hours", now)
                self.metrics.deliveries.inc(channel=channel, result=Outcome.SKIPPED.value)
            else:
                await self.repository.postpone(item.id, quiet_until, now)
        return ready

    async def _record_all(
        self, channel: str, handed: Sequence[tuple[ClaimedDelivery, SendResult]]
    ) -> None:
        """Record a batch's results: the plain ones in one write, then those with side effects.

        The plain ones go first: a recipient deactivated by a later result skips its pending
        deliveries, and one of them that already went out must be recorded as sent, not skipped.
        """
        plain = [(item, result) for item, result in handed if not _has_side_effects(result)]
        if plain:
            await self._record_plain_safely(channel, plain)
        for item, result in handed:
            if _has_side_effects(result):
                await self._record_safely(channel, item, result)

    async def _record_plain_safely(
        self, channel: str, plain: Sequence[tuple[ClaimedDelivery, SendResult]]
    ) -> None:
        """One transaction for the whole batch; if it fails, each result gets its own chance."""
        now = self.clock()
        batch = [self._delivery_result(item, result, now) for item, result in plain]
        try:
            statuses = await self.repository.record_results(batch, now, self.settings.max_attempts)
        except Exception:
            log.exception("dispatch %s: recording %d results failed", channel, len(batch))
            for item, result in plain:
                await self._record_safely(channel, item, result)
            return
        for (item, result), status in zip(plain, statuses, strict=True):
            self.metrics.deliveries.inc(channel=channel, result=result.outcome.value)
            if result.outcome is Outcome.RETRY and status == "dead":
                log.warning("delivery %s on %s dead-lettered: %s", item.id, channel, result.detail)

    def _delivery_result(
        self, item: ClaimedDelivery, result: SendResult, now: datetime
    ) -> DeliveryResult:
        retry_at = self._retry_at(item, result, now) if result.outcome is Outcome.RETRY else None
        return DeliveryResult(item.id, _OUTCOMES[result.outcome], result.detail, retry_at)

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


_OUTCOMES: dict[Outcome, DeliveryOutcome] = {
    Outcome.SENT: "sent",
    Outcome.RETRY: "retry",
    Outcome.FAILED: "failed",
    Outcome.SKIPPED: "skipped",
}


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
    )


async def _send_safely(notifier: Notifier, notices: list[Notice]) -> list[SendResult]:
    """A notifier must not raise; if one does anyway, its batch is retried, not lost."""
    try:
        results = await notifier.send_batch(notices)
    except Exception as exc:
        log.exception("notifier %s raised", notifier.name)
        return [SendResult(Outcome.RETRY, f"notifier raised {type(exc).__name__}")] * len(notices)
    if len(results) != len(notices):
        return [SendResult(Outcome.RETRY, "notifier returned a short batch")] * len(notices)
    return results


def _quiet_until(quiet: QuietHours | None, now: datetime, zone: ZoneInfo) -> datetime | None:
    """When the recipient's quiet hours end, if `now` falls inside them; else None."""
    if quiet is None or quiet.start == quiet.end:
        return None
    local = now.astimezone(zone)
    if not _inside(local.time(), quiet.start, quiet.end):
        return None
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


def _inside(moment: time, start: time, end: time) -> bool:
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # the window crosses midnight


async def _wait_any(event: asyncio.Event, stop: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
