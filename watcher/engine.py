"""The polling engine: claim due products, read each once, let every watch on it decide.

One check serves every watch on a product. The detector's decisions, the events and their
deliveries are written in one transaction (`Repository.record_check`), then the dispatcher is
woken. Confirming re-checks are scheduled at once with cache-busting; failures and blocks back
off; everything else waits for its (hot-window, adaptive) interval with a stable phase and jitter.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from watcher.detector import DebounceSettings, Decision, Detector, WatchState
from watcher.fetch import Fetcher
from watcher.metrics import Metrics
from watcher.model import Availability, Observation, Page
from watcher.netguard import URLGuard
from watcher.observe import Reading, SearchSetup, Validators, read_jan, read_url
from watcher.politeness import HostBackingOff, Politeness
from watcher.repository import (
    CheckOutcome,
    DueProduct,
    Origin,
    Repository,
    StoredWatch,
    WatchDecision,
)
from watcher.schedule import (
    HotWindow,
    RestockHistogram,
    adaptive_factor,
    backoff,
    confirm_recheck_delay,
    effective_interval,
    next_due,
    stable_phase,
)
from watcher.stores import adapter_for

log = logging.getLogger("restock.engine")

Clock = Callable[[], datetime]
JAN_SEARCH_HOST = "jan-search"  # JAN searches share one politeness slot (APIs allow ~1 query/s)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    debounce: DebounceSettings = field(default_factory=DebounceSettings)
    default_interval: timedelta = timedelta(minutes=5)
    hot_windows: tuple[HotWindow, ...] = ()
    timezone: str = "Asia/Tokyo"
    adaptive: bool = False
    concurrency: int = 16  # checks in flight across all hosts
    lease: timedelta = timedelta(minutes=2)
    idle_poll: float = 0.5  # seconds between looks for due products when none were due
    error_backoff_base: timedelta = timedelta(seconds=30)
    error_backoff_cap: timedelta = timedelta(minutes=30)
    search: SearchSetup = field(default_factory=SearchSetup)
    observation_cache: int = 20_000  # products whose last observation is kept for 304 answers


@dataclass
class EngineCounters:
    """What the engine did, for the demo's summary and `restock status`."""

    checks: int = 0
    unknown: int = 0
    blocked: int = 0
    unchanged: int = 0
    events: int = 0
    flaps_suppressed: int = 0
    rechecks: int = 0


class Engine:
    def __init__(
        self,
        repository: Repository,
        fetcher: Fetcher,
        politeness: Politeness,
        *,
        owner: str,
        settings: EngineSettings = EngineSettings(),
        chat_guard: URLGuard | None = None,
        on_deliveries: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.repository = repository
        self.fetcher = fetcher
        self.politeness = politeness
        self.owner = owner
        self.settings = settings
        self.chat_guard = chat_guard
        self.on_deliveries = on_deliveries
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.rng = rng or random.Random()
        self.detector = Detector(settings.debounce)
        self.counters = EngineCounters()
        self._zone = ZoneInfo(settings.timezone)
        self._last: OrderedDict[int, Observation] = OrderedDict()
        self._histograms: dict[int, tuple[datetime, RestockHistogram]] = {}

    async def run(self, stop: asyncio.Event, grace: float = 8.0) -> None:
        """Check due products until `stop` is set; then finish in-flight checks within `grace`."""
        running: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            free = self.settings.concurrency - len(running)
            claimed = await self._claim(free) if free > 0 else []
            for product in claimed:
                task = asyncio.create_task(self.check(product), name=f"check-{product.id}")
                running.add(task)
                task.add_done_callback(running.discard)
            if not claimed:
                await _pause(stop, running, self.settings.idle_poll)
        await _finish(running, grace)
        await self.repository.release_leases(self.owner)

    async def _claim(self, limit: int) -> list[DueProduct]:
        try:
            return await self.repository.claim_due_products(
                self.owner, self.clock(), limit, self.settings.lease
            )
        except Exception:  # a locked or busy database: try again at the next look
            log.exception("claiming due products failed")
            return []

    async def check(self, product: DueProduct) -> None:
        """Read one product and record what every watch on it decides. Never raises."""
        try:
            await self._check(product)
        except Exception:
            log.exception("check of product %s failed", product.id)
            retry = self.clock() + self.settings.error_backoff_base
            try:
                await self.repository.release_product(product.id, retry)
            except Exception:
                log.exception("releasing product %s failed", product.id)

    async def _check(self, product: DueProduct) -> None:
        watches = await self.repository.load_watches(product.id)
        if not watches:
            await self.repository.release_product(product.id, self.clock() + timedelta(hours=1))
            return
        states = {w.id: WatchState.from_json(w.state) for w in watches}
        confirming = any(s.phase.value == "confirming" for s in states.values())
        host = _host_of(product.target)
        try:
            async with self.politeness.slot(host):
                reading = await self._read(product, watches, cache_bust=confirming)
        except HostBackingOff as backing_off:
            retry = self.clock() + timedelta(seconds=backing_off.retry_in)
            await self.repository.release_product(product.id, retry)
            return
        observation = self._settle(product, reading)
        self.politeness.report(
            host, blocked=observation.blocked, retry_after=observation.retry_after
        )
        now = self.clock()
        decisions = [
            (w, self.detector.observe(w.watch, states[w.id], observation, now)) for w in watches
        ]
        outcome = await self._outcome(product, reading, observation, decisions, now)
        recorded = await self.repository.record_check(
            product.id,
            observation,
            [_watch_decision(w, d) for w, d in decisions],
            outcome,
            now,
        )
        self._count(product, observation, decisions, recorded.events)
        if recorded.deliveries:
            self.on_deliveries()

    async def _read(
        self, product: DueProduct, watches: list[StoredWatch], *, cache_bust: bool
    ) -> Reading:
        first = watches[0].watch
        if product.target.startswith("jan:"):
            jan = product.target.removeprefix("jan:")
            return await read_jan(
                self.fetcher, jan, stores=first.stores, setup=self.settings.search,
                cache_bust=cache_bust,
            )  # fmt: skip
        guard = self.chat_guard if any(w.origin is Origin.CHAT for w in watches) else None
        cached = self._last.get(product.id)
        validators = (
            Validators(product.etag, product.last_modified)
            if cached and not cache_bust
            else Validators()
        )
        return await read_url(
            self.fetcher, product.target, store=product.store, rules=first.rules, guard=guard,
            validators=validators, cache_bust=cache_bust,
        )  # fmt: skip

    def _settle(self, product: DueProduct, reading: Reading) -> Observation:
        """The observation to decide on: an unchanged page repeats the last one (no re-parse)."""
        observation = reading.observation
        page = reading.page
        cached = self._last.get(product.id)
        if page is not None and cached is not None and _unchanged(page, product.content_hash):
            self.counters.unchanged += 1
            observation = replace(
                cached, reason=f"unchanged: {cached.reason}", fetch=observation.fetch
            )
        if observation.state is not Availability.UNKNOWN:
            self._remember(product.id, observation)
        return observation

    def _remember(self, product_id: int, observation: Observation) -> None:
        self._last[product_id] = observation
        self._last.move_to_end(product_id)
        while len(self._last) > self.settings.observation_cache:
            self._last.popitem(last=False)

    async def _outcome(
        self,
        product: DueProduct,
        reading: Reading,
        observation: Observation,
        decisions: list[tuple[StoredWatch, Decision]],
        now: datetime,
    ) -> CheckOutcome:
        page = reading.page
        failed = observation.state is Availability.UNKNOWN
        due = await self._next_due(product, observation, decisions, now)
        return CheckOutcome(
            next_due_at=due,
            etag=page.etag if page else None,
            last_modified=page.last_modified if page else None,
            content_hash=_content_hash(page) if page and page.ok else product.content_hash,
            error=failed,
        )

    async def _next_due(
        self,
        product: DueProduct,
        observation: Observation,
        decisions: list[tuple[StoredWatch, Decision]],
        now: datetime,
    ) -> datetime:
        if any(d.recheck_now for _, d in decisions):
            self.counters.rechecks += 1
            return now + confirm_recheck_delay(self.rng)
        if observation.state is Availability.UNKNOWN:
            delay = backoff(
                product.consecutive_errors + 1,
                self.settings.error_backoff_base,
                self.settings.error_backoff_cap,
                self.rng,
            )
            asked = timedelta(seconds=observation.retry_after or 0)
            return now + max(delay, asked)
        interval = await self._interval(product, now)
        floor = timedelta(seconds=self.politeness.policy(_host_of(product.target)).min_interval)
        phase = stable_phase(product.target, interval)
        return next_due(now, interval, now, self.rng, phase=phase, floor=floor)

    async def _interval(self, product: DueProduct, now: datetime) -> timedelta:
        base = product.interval or self.settings.default_interval
        floor = timedelta(seconds=self.politeness.policy(_host_of(product.target)).min_interval)
        local = now.astimezone(self._zone)
        bias = await self._adaptive_bias(product, now) if self.settings.adaptive else None
        return effective_interval(base, floor, self.settings.hot_windows, local, bias)

    async def _adaptive_bias(self, product: DueProduct, now: datetime) -> float | None:
        cached = self._histograms.get(product.id)
        if cached is None or now - cached[0] > timedelta(hours=1):
            times = await self.repository.restock_times(product_id=product.id)
            histogram = RestockHistogram()
            for moment in times:
                histogram = histogram.record(moment.astimezone(self._zone))
            cached = (now, histogram)
            self._histograms[product.id] = cached
        return adaptive_factor(cached[1], now.astimezone(self._zone))

    def _count(
        self,
        product: DueProduct,
        observation: Observation,
        decisions: list[tuple[StoredWatch, Decision]],
        events: tuple[object, ...],
    ) -> None:
        store = observation.store or _store_of(product)
        self.counters.checks += 1
        self.metrics.checks.inc(store=store, state=observation.state.value)
        if observation.fetch is not None:
            self.metrics.fetch_seconds.observe(observation.fetch.elapsed_ms / 1000, store=store)
        if observation.state is Availability.UNKNOWN:
            self.counters.unknown += 1
        if observation.blocked:
            self.counters.blocked += 1
            self.metrics.blocks.inc(store=store)
        flaps = sum(1 for _, d in decisions if d.flap_suppressed)
        self.counters.flaps_suppressed += flaps
        if flaps:
            self.metrics.flaps.inc(flaps)
        self.counters.events += len(events)
        for event in decisions:
            for fired in event[1].events:
                self.metrics.events.inc(kind=fired.kind.value)


def _watch_decision(stored: StoredWatch, decision: Decision) -> WatchDecision:
    finished = stored.watch.once and bool(decision.events) and decision.state.phase.value == "done"
    return WatchDecision(
        watch_id=stored.id,
        state=decision.state.to_json(),
        events=decision.events,
        finished=finished,
    )


def _unchanged(page: Page, previous_hash: str | None) -> bool:
    if page.not_modified:
        return True
    return page.ok and previous_hash is not None and _content_hash(page) == previous_hash


def _content_hash(page: Page) -> str:
    return hashlib.blake2b(page.text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _host_of(target: str) -> str:
    if target.startswith("jan:"):
        return JAN_SEARCH_HOST
    return (urlsplit(target).hostname or "").lower()


def _store_of(product: DueProduct) -> str:
    if product.store:
        return product.store
    if product.target.startswith("jan:"):
        return "jan"
    return adapter_for(product.target).name


async def _pause(stop: asyncio.Event, running: set[asyncio.Task[None]], timeout: float) -> None:
    """Wait for stop, a finished check (capacity freed) or the poll timeout, whichever is first."""
    waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(stop.wait())}
    waiters.update(running)  # type: ignore[arg-type]
    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        if waiter not in running:
            waiter.cancel()


async def _finish(running: set[asyncio.Task[None]], grace: float) -> None:
    if not running:
        return
    _, pending = await asyncio.wait(set(running), timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=2.0)
