"""Per-host politeness: how many requests in flight, how far apart, and backing off when blocked.

Shops block floods, so every request to a host goes through `Politeness.slot(host)`, which waits
for a free slot (the host's concurrency and a global cap) and for the host's least delay since
the previous request started there. When a shop blocks us (captcha, 429, 503), `report` backs
the host off exponentially, honouring Retry-After, and after three blocks in a row a circuit
breaker opens: the host is not fetched until the backoff passes, then one probe decides whether
it closes again. While a host backs off, `slot` raises `HostBackingOff` at once rather than
holding a worker for up to an hour; the scheduler reschedules the product.

The clock, the sleep and the jitter source are injected, so tests run on virtual time. The state
lives in this process only: several workers on one database will need a shared budget per host
(a row with the next allowed time) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.stores._base import HostLimits

Seconds = float
Clock = Callable[[], Seconds]
Sleep = Callable[[Seconds], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """One host's limits, in seconds: in flight at once, between two starts, floor on intervals."""

    concurrency: int = 2
    min_delay: Seconds = 1.0
    min_interval: Seconds = 30.0

    @classmethod
    def from_limits(cls, limits: HostLimits) -> HostPolicy:
        return cls(
            concurrency=limits.concurrency,
            min_delay=limits.min_delay.total_seconds(),
            min_interval=limits.min_interval.total_seconds(),
        )


_FIELDS = ("concurrency", "min_delay", "min_interval")


def registered_store_limits(host: str) -> HostLimits | None:
    """The limits of the registered store adapter that serves `host`, if one does."""
    from watcher.stores.registry import ADAPTERS  # imports every adapter: load it on use

    for adapter in ADAPTERS.values():
        if adapter.hosts and adapter.serves(host):
            return adapter.limits
    return None


class PolicyBook:
    """Resolves a host's policy from the store's defaults and the watchlist's `politeness`.

    - A store's own `HostLimits` apply to its hosts.
    - `default` (the watchlist's ``politeness.default``) applies to hosts no store knows, over
      `HostLimits()`; it does not touch a store's hosts, whose adapter knows better.
    - `hosts[host]` (``politeness.hosts``) replaces whatever it names, for that host only (exact
      names or ``*.example.com``); this is how a local test shop lifts every limit.

    Overrides are mappings or objects with `concurrency` / `min_delay` / `min_interval`; delays
    are seconds or `timedelta`s, and a missing or None field leaves the value below it.
    """

    def __init__(
        self,
        *,
        default: Any = None,
        hosts: Mapping[str, Any] | None = None,
        store_limits: Callable[[str], HostLimits | None] = registered_store_limits,
    ) -> None:
        self._default = default
        self._hosts = {normalise_host(name): value for name, value in (hosts or {}).items()}
        self._store_limits = store_limits

    def policy(self, host: str) -> HostPolicy:
        host = normalise_host(host)
        limits = self._store_limits(host)
        if limits is None:
            policy = _overridden(HostPolicy.from_limits(HostLimits()), self._default)
        else:
            policy = HostPolicy.from_limits(limits)
        return _overridden(policy, self._host_override(host))

    def _host_override(self, host: str) -> Any:
        if host in self._hosts:
            return self._hosts[host]
        for pattern, value in self._hosts.items():
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return value
        return None


def _overridden(policy: HostPolicy, override: Any) -> HostPolicy:
    if override is None:
        return policy
    changes: dict[str, Any] = {}
    for name in _FIELDS:
        value = (
            override.get(name) if isinstance(override, Mapping) else getattr(override, name, None)
        )
        if value is not None:
            changes[name] = _as_number(name, value)
    return replace(policy, **changes)


def _as_number(name: str, value: Any) -> int | float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"politeness {name}: expected a non-negative number, got {value!r}")
    if name == "concurrency":
        if int(value) != value or value < 1:
            raise ValueError(f"politeness concurrency: expected a whole number >= 1, got {value!r}")
        return int(value)
    return float(value)


def normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: base, base*factor, ... up to cap (seconds)."""

    base: Seconds = 30.0
    factor: float = 2.0
    cap: Seconds = 3600.0
    jitter: float = 0.1  # +-10 %, so hosts blocked together do not retry together

    def delay(self, blocks: int, rng: Callable[[], float]) -> Seconds:
        raw = min(self.cap, self.base * self.factor ** max(blocks - 1, 0))
        return min(self.cap, raw * (1.0 + self.jitter * (2.0 * rng() - 1.0)))


class Breaker(enum.StrEnum):
    CLOSED = "closed"  # fetch normally
    OPEN = "open"  # too many blocks in a row: no fetches until the backoff passes
    HALF_OPEN = "half_open"  # backoff passed: one probe decides


class HostBackingOff(Exception):
    """The host is backing off; try again in `retry_in` seconds."""

    def __init__(self, host: str, retry_in: Seconds, breaker: Breaker) -> None:
        super().__init__(f"{host} is backing off for {retry_in:.0f}s (breaker {breaker.value})")
        self.host = host
        self.retry_in = retry_in
        self.breaker = breaker


@dataclass(slots=True)
class _HostState:
    in_flight: int = 0
    last_start: Seconds | None = None
    backoff_until: Seconds | None = None
    consecutive_blocks: int = 0
    breaker: Breaker = Breaker.CLOSED
    probing: bool = False

    def idle(self, now: Seconds, min_delay: Seconds) -> bool:
        """Carries nothing worth keeping: no requests, no blocks, no delay still running."""
        return (
            self.in_flight == 0
            and self.consecutive_blocks == 0
            and self.breaker is Breaker.CLOSED
            and (self.backoff_until is None or self.backoff_until <= now)
            and (self.last_start is None or self.last_start + min_delay <= now)
        )


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """One host's politeness state, for `restock status`."""

    host: str
    in_flight: int
    concurrency: int
    consecutive_blocks: int
    breaker: Breaker
    backoff_remaining: Seconds  # 0 when the host may be fetched
    backoff_until: datetime | None  # wall-clock time the backoff ends, if one runs


class Politeness:
    """Gates requests per host (and globally) and backs hosts off when they block us.

    State is one small record per host seen; records of idle hosts are dropped once more than
    `max_hosts` are kept, so a bot fed many distinct hosts stays small.
    """

    def __init__(
        self,
        policy_for: Callable[[str], HostPolicy] = lambda host: HostPolicy(),
        *,
        global_concurrency: int = 64,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        backoff: Backoff = Backoff(),
        breaker_threshold: int = 3,
        max_hosts: int = 1024,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._policy_for = policy_for
        self._wall_clock = wall_clock
        self._global_concurrency = global_concurrency
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._backoff = backoff
        self._breaker_threshold = breaker_threshold
        self._max_hosts = max_hosts
        self._hosts: dict[str, _HostState] = {}
        self._in_flight = 0
        self._changed = asyncio.Event()

    @classmethod
    def from_settings(
        cls,
        *,
        default: Any = None,
        hosts: Mapping[str, Any] | None = None,
        store_limits: Callable[[str], HostLimits | None] = registered_store_limits,
        **options: Any,
    ) -> Politeness:
        """Politeness for the watchlist's ``politeness`` section (see `PolicyBook`)."""
        book = PolicyBook(default=default, hosts=hosts, store_limits=store_limits)
        return cls(book.policy, **options)

    def reconfigure(
        self, policy_for: Callable[[str], HostPolicy], *, global_concurrency: int
    ) -> None:
        """Replace the policies and the global cap (a watchlist reload); every host's state stays.

        Backoffs, breakers and slots already held are kept: a slot held above a lowered limit
        finishes, and new slots wait until the hosts' counts are back under the new limits. A
        raised limit frees waiting requests at once; a request sleeping out a host's delay wakes
        at the old delay's end and then follows the new one.
        """
        if global_concurrency < 1:
            raise ValueError(f"global concurrency must be >= 1, got {global_concurrency}")
        self._policy_for = policy_for
        self._global_concurrency = global_concurrency
        self._notify()  # waiters re-check their hosts against the new limits

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one request slot on `host`; raises HostBackingOff if the host is backing off."""
        host = normalise_host(host)
        await self._acquire(host)
        try:
            yield
        finally:
            self._release(host)

    def report(self, host: str, blocked: bool, retry_after: Seconds | None = None) -> None:
        """Tell how a request to `host` went: blocked (captcha, 429, 503...) or not."""
        state = self._state(normalise_host(host))
        now = self._clock()
        if blocked:
            self._record_block(state, now, retry_after)
        else:
            self._record_success(state, now, retry_after)
        self._notify()

    def retry_in(self, host: str) -> Seconds:
        """Seconds until `host` may be fetched again (0 when it may be now)."""
        state = self._hosts.get(normalise_host(host))
        if state is None or state.backoff_until is None:
            return 0.0
        return max(0.0, state.backoff_until - self._clock())

    def blocked_until(self, host: str) -> datetime | None:
        """When `host` may be fetched again (wall-clock time), or None if it may be now."""
        wait = self.retry_in(host)
        return self._wall_clock() + timedelta(seconds=wait) if wait > 0 else None

    def policy(self, host: str) -> HostPolicy:
        return self._policy_for(normalise_host(host))

    def snapshot(self) -> dict[str, HostSnapshot]:
        """Every tracked host's state, by host name."""
        return {host: self._snapshot(host, state) for host, state in sorted(self._hosts.items())}

    def host_snapshot(self, host: str) -> HostSnapshot | None:
        """One host's state (None for a host not tracked)."""
        host = normalise_host(host)
        state = self._hosts.get(host)
        return None if state is None else self._snapshot(host, state)

    def _snapshot(self, host: str, state: _HostState) -> HostSnapshot:
        return HostSnapshot(
            host=host,
            in_flight=state.in_flight,
            concurrency=self.policy(host).concurrency,
            consecutive_blocks=state.consecutive_blocks,
            breaker=state.breaker,
            backoff_remaining=self.retry_in(host),
            backoff_until=self.blocked_until(host),
        )

    async def _acquire(self, host: str) -> None:
        while True:
            state = self._state(host)
            policy = self._policy_for(host)
            now = self._clock()
            self._refuse_while_backing_off(host, state, now)
            if not self._has_room(state, policy):
                await self._wait_for_change()
                continue
            wait = 0.0 if state.last_start is None else state.last_start + policy.min_delay - now
            if wait > 0:
                await self._sleep(wait)
                continue
            self._claim(state, now)
            return

    def _refuse_while_backing_off(self, host: str, state: _HostState, now: Seconds) -> None:
        if state.backoff_until is not None and now < state.backoff_until:
            raise HostBackingOff(host, state.backoff_until - now, state.breaker)
        if state.breaker is Breaker.OPEN:
            state.breaker = Breaker.HALF_OPEN

    def _has_room(self, state: _HostState, policy: HostPolicy) -> bool:
        if state.breaker is Breaker.HALF_OPEN and (state.probing or state.in_flight):
            return False  # one probe at a time decides whether the host is back
        return state.in_flight < policy.concurrency and self._in_flight < self._global_concurrency

    def _claim(self, state: _HostState, now: Seconds) -> None:
        state.in_flight += 1
        state.last_start = now
        state.probing = state.breaker is Breaker.HALF_OPEN
        self._in_flight += 1

    def _release(self, host: str) -> None:
        state = self._hosts[host]
        state.in_flight -= 1
        state.probing = False  # a probe that ended without a report leaves room for another
        self._in_flight -= 1
        self._notify()

    def _record_block(self, state: _HostState, now: Seconds, retry_after: Seconds | None) -> None:
        state.consecutive_blocks += 1
        delay = self._backoff.delay(state.consecutive_blocks, self._rng)
        delay = max(delay, retry_after or 0.0)
        state.backoff_until = max(state.backoff_until or now, now + delay)
        if (
            state.breaker is Breaker.HALF_OPEN
            or state.consecutive_blocks >= self._breaker_threshold
        ):
            state.breaker = Breaker.OPEN

    def _record_success(self, state: _HostState, now: Seconds, retry_after: Seconds | None) -> None:
        if state.backoff_until is None or state.backoff_until <= now:
            # A success while a backoff still runs began before the block: it proves nothing.
            state.consecutive_blocks = 0
            state.breaker = Breaker.CLOSED
            state.backoff_until = None
        if retry_after:
            state.backoff_until = max(state.backoff_until or now, now + retry_after)

    async def _wait_for_change(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        # Wake every waiter; each re-checks its own host. A fresh event serves the next round.
        self._changed.set()
        self._changed = asyncio.Event()

    def _state(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            if len(self._hosts) >= self._max_hosts:
                self._forget_idle_hosts()
            state = self._hosts[host] = _HostState()
        return state

    def _forget_idle_hosts(self) -> None:
        now = self._clock()
        for host, state in list(self._hosts.items()):
            if state.idle(now, self._policy_for(host).min_delay):
                del self._hosts[host]
