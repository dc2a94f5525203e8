"""The polling engine: claim due products, read each once, let every watch on it decide.

One check serves every watch on a product. The detector's decisions, the events and their
deliveries are written in one transaction (`Repository.record_check`), then the dispatcher is
woken. Confirming re-checks are scheduled at once with cache-busting; failures and blocks back
off; everything else waits for its (hot-window, adaptive) interval with a stable phase and jitter.

Products are claimed in batches and their watches loaded in one query per batch; a page whose
content did not change (304, or the same content hash) is not parsed again: the last observation
stands, and the check still counts as an observation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from watcher.clock import WallClock, utc_now, wait_any
from watcher.core.detector import (
    DebounceSettings,
    Decision,
    Detector,
    Phase,
    WatchState,
    state_from_text,
)
from watcher.core.drift import REAL_STATES, STORE_ROW_PREFIX, LayoutDrift
from watcher.core.forecast import RestockForecast, forecast_for
from watcher.core.model import (
    UNCHANGED_PREFIX,
    Availability,
    EventKind,
    FetchFacts,
    Observation,
    Origin,
    Page,
    TextRules,
)
from watcher.core.schedule import (
    HotWindow,
    RestockHistogram,
    adaptive_factor,
    backoff,
    confirm_recheck_delay,
    effective_interval,
    next_due,
    stable_phase,
)
from watcher.net.fetch import Fetcher, RawPage
from watcher.net.netguard import URLGuard
from watcher.net.politeness import HostBackingOff, HostSnapshot, Politeness
from watcher.reading.fetching import FetchJob, content_hash, remote_safe, unchanged
from watcher.reading.pool import (
    FAILED_PREFIX,
    InlineReader,
    Observations,
    PageReader,
    ProcessReader,
    failed,
)
from watcher.reading.read import SearchSetup, read_jan
from watcher.service.metrics import Metrics
from watcher.storage.interface import (
    CheckOutcome,
    ClaimedDelivery,
    DeliveryClaim,
    DueProduct,
    HostState,
    Repository,
    StoredWatch,
    WatchDecision,
)
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import STATUS_BLOCKS
from watcher.stores.registry import adapter_for

log = logging.getLogger("restock.engine")

JAN_SEARCH_HOST = "jan-search"  # JAN searches share one politeness slot (stores/sources.py)
# Statuses every adapter reads as a block whatever the body says (stores/_blocked.py).
BLOCK_STATUSES = frozenset(STATUS_BLOCKS)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    debounce: DebounceSettings = field(default_factory=DebounceSettings)
    default_interval: timedelta = timedelta(minutes=5)
    hot_windows: tuple[HotWindow, ...] = ()
    timezone: str = "Asia/Tokyo"
    adaptive: bool = False
    concurrency: int = 64  # checks in flight across all hosts (settings.global_concurrency)
    lease: timedelta = timedelta(minutes=2)
    idle_poll: float = 0.5  # seconds between looks for due products when none were due
    error_backoff_base: timedelta = timedelta(seconds=30)
    error_backoff_cap: timedelta = timedelta(minutes=30)
    # How soon a confirming re-check follows a first buyable observation.
    recheck_delay: tuple[timedelta, timedelta] = (timedelta(seconds=2), timedelta(seconds=5))
    search: SearchSetup = field(default_factory=SearchSetup)
    observation_cache: int = 20_000  # products whose last observation is kept for 304 answers
    drift_threshold: int = 3  # layout misses in a row on one store before it is reported
    db_writers: int = 16  # checks that may wait on the database at once (written as a batch)


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
    layout_misses: int = 0


@dataclass(frozen=True, slots=True)
class _Read:
    """What a check read: the observation per reading rules (the first watch's first), and what
    identifies the page when the page said something (else None)."""

    observation: Observation  # as the first watch's rules read it
    by_rules: Mapping[TextRules | None, Observation] = field(default_factory=dict)
    content_hash: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class _Unparsed:
    """A fetched page still to be read, with the rules to read it by and its content hash."""

    raw: RawPage
    rules: tuple[TextRules | None, ...]
    digest: str | None


@dataclass(frozen=True, slots=True)
class _Known:
    """A product's last real observations (per reading rules) and what identifies their page.

    The validators sent and the hash compared are this page's, so a 304 or an equal hash always
    means "the page these observations were read from".
    """

    by_rules: Mapping[TextRules | None, Observation]
    content_hash: str | None
    etag: str | None
    last_modified: str | None

    def covers(self, rules: tuple[TextRules | None, ...]) -> bool:
        return all(r in self.by_rules for r in rules)


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
        # Called after a check wrote deliveries, with those claimed for `claim_for` (maybe none).
        on_deliveries: Callable[[Sequence[ClaimedDelivery]], None] = lambda claimed: None,
        # The dispatcher's request to claim a check's new deliveries as they are written.
        claim_for: Callable[[], DeliveryClaim | None] = lambda: None,
        metrics: Metrics | None = None,
        reader: PageReader | None = None,
        clock: WallClock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.repository = repository
        self.fetcher = fetcher
        self.politeness = politeness
        self.owner = owner
        self.settings = settings
        self.chat_guard = chat_guard
        # Watches from these origins fetch under `chat_guard` (web ones too, off loopback).
        self.guarded_origins: set[Origin] = {Origin.CHAT}
        self.on_deliveries = on_deliveries
        self.claim_for = claim_for
        self.metrics = metrics or Metrics()
        # Parses pages (in worker processes when configured); the loop only fetches and decides.
        self.reader = reader or InlineReader()
        # Workers that fetch trusted pages themselves: the page's body then never reaches the
        # loop, which sends them a job and gets back the head, the hash and any observations.
        self._fetching: ProcessReader | None = None
        if isinstance(self.reader, ProcessReader) and self.reader.fetches:
            self._fetching = self.reader
        self.clock = clock
        self.rng = rng or random.Random()
        self.detector = Detector(settings.debounce)
        self.counters = EngineCounters()
        self.drift = LayoutDrift(settings.drift_threshold)
        self._zone = ZoneInfo(settings.timezone)
        self._last: OrderedDict[int, _Known] = OrderedDict()
        self._histograms: dict[int, tuple[datetime, RestockHistogram]] = {}
        self._adapters: dict[tuple[str, str | None], StoreAdapter] = {}
        self._blocked_hosts: set[str] = set()  # hosts whose backoff is in the database
        self._soonest: datetime | None = None  # earliest due time this engine set
        self._nudge = asyncio.Event()  # a check scheduled something sooner than the next look
        # Checks queue for the database here, not on the database's own lock, so the
        # dispatcher's claims wait behind one batch of checks' writes at most, not behind every
        # check in flight: that queue is the hand-off latency of a restock under load.
        self._db_turn = asyncio.Semaphore(settings.db_writers)
        self._in_flight: set[int] = set()  # product ids being checked by this engine

    def use_fetcher(self, fetcher: Fetcher) -> None:
        """Fetch with `fetcher` from the next check on (a reload changed the User-Agent)."""
        self.fetcher = fetcher

    def apply_settings(self, settings: EngineSettings) -> None:
        """Run on `settings` from now on (a watchlist reload); checks in flight finish as they are.

        Watch states live in the database, so they carry over: a stricter `debounce.confirm`
        applies from the next observation. The run loop reads the concurrency at every turn.
        """
        old, self.settings = self.settings, settings
        if settings.debounce != old.debounce:
            self.detector = Detector(settings.debounce)
        if settings.timezone != old.timezone:
            self._zone = ZoneInfo(settings.timezone)
            self._histograms.clear()  # their hours were counted in the old zone
        self._nudge.set()  # look for due products now, under the new settings

    # --- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, grace: float = 8.0) -> None:
        """Check due products until `stop` is set; then finish in-flight checks within `grace`."""
        running: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            concurrency = self.settings.concurrency  # read each turn: a reload may change it
            refill = max(1, concurrency // 4)  # claim in batches: one query serves many checks
            free = concurrency - len(running)
            if free <= 0:  # the concurrency was lowered below the checks in flight
                await _wait_for_room(stop, running, concurrency - 1)
                continue
            batch = await self._claim(free)
            for product, watches in batch:
                if product.id in self._in_flight:
                    continue  # its lease ran out while it waited; the check in flight finishes it
                self._in_flight.add(product.id)
                task = asyncio.create_task(self.check(product, watches), name=f"check-{product.id}")
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(functools.partial(_forget, self._in_flight, product.id))
            if len(batch) < free:
                await self._idle(stop)
            else:
                await _wait_for_room(stop, running, concurrency - refill)
        await _finish(running, grace)
        await self.repository.release_leases(self.owner)

    async def _claim(self, limit: int) -> list[tuple[DueProduct, list[StoredWatch] | None]]:
        try:
            products = await self.repository.claim_due_products(
                self.owner, self.clock(), limit, self.settings.lease
            )
            if not products:
                return []
            unread = [p.id for p in products if p.watches is None]  # the claim read the others'
            watches = await self.repository.load_watches_for(unread) if unread else {}
        except Exception:  # a locked or busy database: try again at the next look
            log.exception("claiming due products failed")
            return []
        return [(p, _claimed_watches(p, watches)) for p in products]

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for the next look: the poll interval, or sooner when a check scheduled sooner."""
        timeout = self.settings.idle_poll
        if self._soonest is not None:
            timeout = min(timeout, max(0.0, (self._soonest - self.clock()).total_seconds()))
            self._soonest = None
        self._nudge.clear()
        if timeout > 0:
            await wait_any((stop, self._nudge), timeout)

    def _scheduled(self, due: datetime) -> None:
        if self._soonest is None or due < self._soonest:
            self._soonest = due
        if (due - self.clock()).total_seconds() < self.settings.idle_poll:
            self._nudge.set()

    # --- one check -----------------------------------------------------------------------------

    async def check(self, product: DueProduct, watches: list[StoredWatch] | None = None) -> None:
        """Read one product and record what every watch on it decides. Never raises."""
        try:
            if watches is None:
                watches = await self.repository.load_watches(product.id)
            await self._check(product, watches)
        except Exception:
            log.exception("check of product %s failed", product.id)
            retry = self.clock() + self.settings.error_backoff_base
            try:
                await self.repository.release_product(product.id, retry)
            except Exception:
                log.exception("releasing product %s failed", product.id)

    async def _check(self, product: DueProduct, watches: list[StoredWatch]) -> None:
        if not watches:
            await self.repository.release_product(product.id, self.clock() + timedelta(hours=1))
            return
        states = {w.id: state_from_text(w.state_text) for w in watches}
        confirming = any(s.phase is Phase.CONFIRMING for s in states.values())
        host = _host_of(product.target)
        try:
            async with self.politeness.slot(host):
                fetched = await self._fetch(product, watches, cache_bust=confirming)
        except HostBackingOff as backing_off:
            retry = self.clock() + timedelta(seconds=backing_off.retry_in)
            await self.repository.release_product(product.id, retry)
            self._scheduled(retry)
            return
        refusal = _refusal(fetched)
        if refusal is not None:
            # The shop said no before any parse could: the host backs off now, not after it.
            self.politeness.report(host, blocked=True, retry_after=refusal.retry_after)
        # Parsed outside the host's slot: parsing takes no request from the shop.
        read = fetched if isinstance(fetched, _Read) else await self._parse(product, fetched)
        observation = read.observation
        if refusal is None:
            self.politeness.report(
                host, blocked=observation.blocked, retry_after=observation.retry_after
            )
        now = self.clock()
        seen = _as_each_watch_reads(read, watches)
        decisions = self._decide(watches, states, seen, observation, now)
        decisions = await self._with_forecast(product, decisions)
        outcome = await self._outcome(product, read, observation, decisions, now)
        writes = _watch_decisions(decisions, states)
        # A check with events does not queue behind quiet checks: its wait is hand-off latency.
        turn = _NO_WAIT if any(w.events for w in writes) else self._db_turn
        async with turn:
            recorded = await self.repository.record_check(
                product.id, observation, writes, outcome, now
            )
        if recorded.lease_lost:
            log.warning("check of %s outlived its lease; another check decides", product.target)
            return
        if recorded.deliveries:
            self.on_deliveries(recorded.claimed)
        self._scheduled(outcome.next_due_at)
        self._count(product, observation, decisions, recorded.events)
        await self._after_check(product, host, observation)

    def _decide(
        self,
        watches: list[StoredWatch],
        states: dict[int, WatchState],
        seen: dict[int, Observation],
        observation: Observation,
        now: datetime,
    ) -> list[tuple[StoredWatch, Decision]]:
        """Every watch's decision; watches that would decide alike share one quiet decision.

        A decision depends only on the watch's conditions, `notify_on_first` and `once`, its
        state and the observation it reads, so a product's many subscribers with default
        conditions cost one detector step. A decision with events is made per watch: its events
        name the watch.
        """
        shared: dict[tuple[object, ...], Decision] = {}
        decisions: list[tuple[StoredWatch, Decision]] = []
        for stored in watches:
            obs = seen.get(stored.id, observation)
            watch = stored.watch
            key = (watch.conditions, watch.notify_on_first, watch.once, stored.state_text, id(obs))
            decision = shared.get(key)
            if decision is None:
                decision = self.detector.observe(watch, states[stored.id], obs, now)
                if not decision.events:
                    shared[key] = decision
            decisions.append((stored, decision))
        return decisions

    async def _with_forecast(
        self, product: DueProduct, decisions: list[tuple[StoredWatch, Decision]]
    ) -> list[tuple[StoredWatch, Decision]]:
        """Restock events told when restocks usually come; read only when a restock fires."""
        if not any(e.kind is EventKind.RESTOCK for _, d in decisions for e in d.events):
            return decisions
        forecast = await self._forecast(product)
        if forecast is None:
            return decisions
        return [(stored, _forecast_told(d, forecast)) for stored, d in decisions]

    async def _forecast(self, product: DueProduct) -> RestockForecast | None:
        """The product's restock window, or its store's, from restocks before this one."""
        own = await self.repository.restock_times(product_id=product.id)
        # A product without a store has restock rows without one: asking for "any store"
        # would read every restock of every shop.
        store = await self.repository.restock_times(store=product.store) if product.store else []
        return forecast_for(own, store, self._zone)

    async def _fetch(
        self, product: DueProduct, watches: list[StoredWatch], *, cache_bust: bool
    ) -> _Read | _Unparsed:
        """The page, fetched; read already when it needs no parse (unchanged, a JAN search)."""
        if product.target.startswith("jan:"):
            jan = product.target.removeprefix("jan:")
            reading = await read_jan(
                self.fetcher, jan, stores=_stores_wanted(watches), setup=self.settings.search,
                cache_bust=cache_bust,
            )  # fmt: skip
            return _Read(reading.observation)
        guard = self.chat_guard if any(w.origin in self.guarded_origins for w in watches) else None
        rules = _distinct_rules(watches)
        known = self._last.get(product.id)
        if known is not None and not known.covers(rules):
            known = None  # a watch with new rules joined: read the page afresh
        validators = known if known is not None and not cache_bust else None
        plan = self._adapter(product).product_request(product.target)
        job = FetchJob(
            plan,
            product.store,
            rules,
            user_agent=self.fetcher.user_agent,
            etag=validators.etag if validators else None,
            last_modified=validators.last_modified if validators else None,
            cache_bust=cache_bust,
            compare=known is not None,
            known_hash=known.content_hash if known is not None else None,
        )
        remote = self._fetching
        if remote is not None and guard is None and remote_safe(plan):
            return await self._fetch_remotely(remote, product, job, known)
        raw = await self.fetcher.fetch_raw(
            plan,
            etag=job.etag,
            last_modified=job.last_modified,
            cache_bust=cache_bust,
            guard=guard,
        )
        head = raw.head
        digest = content_hash(raw) if head.ok else None
        if known is not None and unchanged(job, head, digest):
            return self._repeated(known, rules, head)
        return _Unparsed(raw, rules, digest)

    async def _fetch_remotely(
        self, reader: ProcessReader, product: DueProduct, job: FetchJob, known: _Known | None
    ) -> _Read:
        """Fetched and read by a worker (see `watcher.reading.fetching`)."""
        fetched = await reader.fetch_read(job)
        head, observations = fetched.head, fetched.observations
        if observations is None:
            if known is not None:
                return self._repeated(known, job.rules, head)
            observations = failed(head, job.store, "an unasked comparison", len(job.rules))
        return self._parsed(product, head, fetched.digest, job.rules, observations)

    def _repeated(self, known: _Known, rules: tuple[TextRules | None, ...], head: Page) -> _Read:
        """The same page reads the same way: its observations stand, with this fetch's facts."""
        self.counters.unchanged += 1
        repeated = {r: _unchanged(known.by_rules[r], head) for r in rules}
        return _Read(repeated[rules[0]], repeated)

    async def _parse(self, product: DueProduct, fetched: _Unparsed) -> _Read:
        """Read a fetched page once per distinct rules (in the reader's workers, if any)."""
        head, rules = fetched.raw.head, fetched.rules
        observations = await self.reader.read(fetched.raw, product.store, rules)
        return self._parsed(product, head, fetched.digest, rules, observations)

    def _parsed(
        self,
        product: DueProduct,
        head: Page,
        digest: str | None,
        rules: tuple[TextRules | None, ...],
        observations: Observations,
    ) -> _Read:
        """What a page read once per distinct rules says; remembered when it said something."""
        by_rules = dict(zip(rules, observations, strict=True))
        observation = observations[0]
        if observation.reason.startswith(FAILED_PREFIX):
            self.metrics.parse_failures.inc(store=observation.store or self._store_of(product))
        if observation.state is Availability.UNKNOWN:
            return _Read(observation, by_rules)
        # Only a page that said something is remembered, with what identifies it.
        known = _Known(by_rules, digest, head.etag, head.last_modified)
        self._remember(product.id, known)
        return _Read(observation, by_rules, digest, head.etag, head.last_modified)

    def _adapter(self, product: DueProduct) -> StoreAdapter:
        """The product's store adapter (looked up once per target and store)."""
        key = (product.target, product.store)
        adapter = self._adapters.get(key)
        if adapter is None:
            if len(self._adapters) >= self.settings.observation_cache:
                self._adapters.clear()
            adapter = self._adapters[key] = adapter_for(product.target, forced=product.store)
        return adapter

    def _store_of(self, product: DueProduct) -> str:
        if product.store:
            return product.store
        if product.target.startswith("jan:"):
            return "jan"
        return self._adapter(product).name

    def _remember(self, product_id: int, known: _Known) -> None:
        self._last[product_id] = known
        self._last.move_to_end(product_id)
        while len(self._last) > self.settings.observation_cache:
            self._last.popitem(last=False)

    async def _outcome(
        self,
        product: DueProduct,
        read: _Read,
        observation: Observation,
        decisions: list[tuple[StoredWatch, Decision]],
        now: datetime,
    ) -> CheckOutcome:
        due = await self._next_due(product, observation, decisions, now)
        return CheckOutcome(
            next_due_at=due,
            etag=read.etag,
            last_modified=read.last_modified,
            content_hash=read.content_hash,
            error=observation.state is Availability.UNKNOWN,
            lease_owner=self.owner,
            claim_for=self.claim_for(),
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
            low, high = self.settings.recheck_delay
            # Counted from when the product was due, not from now: under overload the re-check
            # keeps its product's place in the queue instead of going to the back of it.
            return min(now, product.due_at) + confirm_recheck_delay(self.rng, low, high)
        if observation.state is Availability.UNKNOWN:
            delay = backoff(
                product.consecutive_errors + 1,
                self.settings.error_backoff_base,
                self.settings.error_backoff_cap,
                self.rng,
            )
            asked = timedelta(seconds=observation.retry_after or 0)
            return now + max(delay, asked)
        floor = timedelta(seconds=self.politeness.policy(_host_of(product.target)).min_interval)
        interval = await self._interval(product, floor, now)
        phase = stable_phase(product.target, interval)
        return next_due(now, interval, now, self.rng, phase=phase, floor=floor)

    async def _interval(self, product: DueProduct, floor: timedelta, now: datetime) -> timedelta:
        base = product.interval or self.settings.default_interval
        local = now.astimezone(self._zone)
        bias = await self._adaptive_bias(product, now) if self.settings.adaptive else None
        return effective_interval(base, floor, self.settings.hot_windows, local, bias)

    async def _adaptive_bias(self, product: DueProduct, now: datetime) -> float | None:
        cached = self._histograms.get(product.id)
        if cached is None or now - cached[0] > timedelta(hours=1):
            times = await self.repository.restock_times(product_id=product.id)
            cached = (now, RestockHistogram.from_times(times, self._zone))
            self._histograms[product.id] = cached
        return adaptive_factor(cached[1], now.astimezone(self._zone))

    # --- after a check: counters, host backoff, layout drift -----------------------------------

    def _count(
        self,
        product: DueProduct,
        observation: Observation,
        decisions: list[tuple[StoredWatch, Decision]],
        events: Iterable[object],
    ) -> None:
        store = observation.store or self._store_of(product)
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
        self.counters.events += sum(1 for _ in events)
        for _, decision in decisions:
            for fired in decision.events:
                self.metrics.events.inc(kind=fired.kind.value)

    async def _after_check(self, product: DueProduct, host: str, observation: Observation) -> None:
        try:
            await self._persist_host(host, observation)
            await self._watch_layout(product, observation)
        except Exception:  # status bookkeeping must never fail a check that was recorded
            log.exception("saving host or store state after product %s failed", product.id)

    async def _persist_host(self, host: str, observation: Observation) -> None:
        """Keep a host's backoff in the database while it runs, for `restock status`."""
        if observation.blocked:
            snapshot = self.politeness.host_snapshot(host)
            self._blocked_hosts.add(host)
            await self.repository.save_host_state(
                HostState(
                    host=host,
                    backoff_until=snapshot.backoff_until if snapshot else None,
                    consecutive_blocks=snapshot.consecutive_blocks if snapshot else 1,
                    last_reason=observation.reason,
                )
            )
        elif (
            host in self._blocked_hosts
            and observation.state is not Availability.UNKNOWN
            and _cleared(self.politeness.host_snapshot(host))
        ):
            # Only once the host's backoff is over: a check sent before the block may answer
            # after it, and proves nothing (the politeness ignores it too).
            self._blocked_hosts.discard(host)
            await self.repository.save_host_state(HostState(host=host))

    async def _watch_layout(self, product: DueProduct, observation: Observation) -> None:
        store = observation.store or self._store_of(product)
        previous = self._last.get(product.id)
        knew = previous is not None or product.last_state in REAL_STATES
        verdict = self.drift.observe(store, observation, knew)
        self.counters.layout_misses = self.drift.total
        if verdict == "reported":
            message = (
                f"store {store} pages no longer parse: {self.drift.misses[store]} products in a "
                f"row gave '{observation.reason}' after a known state; check the adapter"
            )
            log.warning("%s", message)
            await self.repository.save_host_state(
                HostState(
                    host=STORE_ROW_PREFIX + store,
                    consecutive_blocks=self.drift.misses[store],
                    last_reason=message,
                )
            )
        elif verdict == "recovered":
            log.info("store %s pages parse again", store)
            await self.repository.save_host_state(HostState(host=STORE_ROW_PREFIX + store))


def _as_each_watch_reads(read: _Read, watches: list[StoredWatch]) -> dict[int, Observation]:
    """Observations of watches whose own `rules` read the page differently from the first's.

    The page is fetched once and read once per distinct rules; a page the first watch's rules
    read as `unknown` (a block, an error) is unknown for every watch.
    """
    first_rules = watches[0].watch.rules
    if read.observation.state is Availability.UNKNOWN or len(read.by_rules) < 2:
        return {}
    return {w.id: read.by_rules[w.watch.rules] for w in watches[1:] if w.watch.rules != first_rules}


def _cleared(snapshot: HostSnapshot | None) -> bool:
    """True when a host's last block is over: a success after its backoff reset the count."""
    return snapshot is None or snapshot.consecutive_blocks == 0


def _refusal(fetched: _Read | _Unparsed) -> Page | None:
    """The head of an answer every adapter reads as a block (403, 429, 503), if it is one."""
    if isinstance(fetched, _Unparsed) and fetched.raw.head.status in BLOCK_STATUSES:
        return fetched.raw.head
    return None


def _distinct_rules(watches: list[StoredWatch]) -> tuple[TextRules | None, ...]:
    """Every distinct reading rules among a product's watches, the first watch's first."""
    return tuple(dict.fromkeys(w.watch.rules for w in watches))


def _unchanged(cached: Observation, page: Page) -> Observation:
    """The last observation again, for a page that did not change (not parsed again)."""
    return replace(cached, reason=UNCHANGED_PREFIX + cached.reason, fetch=FetchFacts.of(page))


def _claimed_watches(
    product: DueProduct, loaded: Mapping[int, list[StoredWatch]]
) -> list[StoredWatch]:
    """A claimed product's watches: as its claim read them, else as loaded after it."""
    if product.watches is not None:
        return list(product.watches)
    return loaded.get(product.id, [])


def _forget(in_flight: set[int], product_id: int, _task: object) -> None:
    in_flight.discard(product_id)


def _stores_wanted(watches: list[StoredWatch]) -> tuple[str, ...]:
    """Every store any watch of a JAN product asks for; none named means every store.

    Each watch then counts only offers from its own stores (WatchConditions.stores).
    """
    if any(not w.watch.stores for w in watches):
        return ()
    return tuple(sorted({store for w in watches for store in w.watch.stores}))


_NO_WAIT = contextlib.nullcontext()


def _forecast_told(decision: Decision, forecast: RestockForecast) -> Decision:
    if not decision.events:
        return decision
    events = tuple(
        replace(e, forecast=forecast) if e.kind is EventKind.RESTOCK else e for e in decision.events
    )
    return replace(decision, events=events)


def _worth_writing(stored: StoredWatch, before: WatchState, decision: Decision) -> bool:
    """False for a watch whose stored state already says what the decision says.

    Most checks change nothing (the same stock as last time): skipping those rows saves
    serialising and writing every watch's state on every check.
    """
    return stored.state_text is None or bool(decision.events) or decision.state != before


def _watch_decisions(
    decisions: list[tuple[StoredWatch, Decision]], states: dict[int, WatchState]
) -> list[WatchDecision]:
    """The rows to write: each distinct new state is serialised once for the watches sharing it."""
    texts: dict[WatchState, dict[str, object]] = {}
    writes: list[WatchDecision] = []
    for stored, decision in decisions:
        if not _worth_writing(stored, states[stored.id], decision):
            continue
        state = decision.state
        finished = stored.watch.once and bool(decision.events) and state.phase is Phase.DONE
        if state not in texts:
            texts[state] = state.to_json()
        writes.append(
            WatchDecision(
                watch_id=stored.id, state=texts[state], events=decision.events, finished=finished
            )
        )
    return writes


@functools.lru_cache(maxsize=65_536)  # one parse per target, not one per check
def _host_of(target: str) -> str:
    if target.startswith("jan:"):
        return JAN_SEARCH_HOST
    return (urlsplit(target).hostname or "").lower()


async def _wait_for_room(stop: asyncio.Event, running: set[asyncio.Task[None]], most: int) -> None:
    """Wait until at most `most` checks run (or stop is set)."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while len(running) > most and not stop.is_set():
            waiters: set[asyncio.Future[object]] = {stopping, *running}  # type: ignore[arg-type]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()


async def _finish(running: set[asyncio.Task[None]], grace: float) -> None:
    if not running:
        return
    _, pending = await asyncio.wait(set(running), timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=2.0)
