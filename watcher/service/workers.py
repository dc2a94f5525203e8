"""A worker among several on one database: its beat, and the duties only one worker may hold.

Each worker beats every `BEAT_SECONDS` (its row in `workers` lives `BEAT_TTL` past the beat) and,
at each beat, tries to take every duty nobody holds. A duty is held through the worker's standing
database link: if the worker dies, the link ends and the next beat of another worker takes the
duty over, within `BEAT_SECONDS`. If this worker loses its link, it gives up its duties at once
(the bot stops polling, the single-sender channel stops sending) before connecting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watcher.storage.coordination import Coordinator

log = logging.getLogger(__name__)

BEAT_SECONDS = 2.0
BEAT_TTL = timedelta(seconds=10)
TELEGRAM_BOT_DUTY = "telegram-bot"  # one long poller per bot token (Telegram allows no second)
# Channels one worker sends on at a time: the X post budget belongs to one account.
SINGLE_SENDER_CHANNELS = frozenset({"x"})


def channel_duty(channel: str) -> str:
    return f"send:{channel}"


@dataclass(frozen=True, slots=True)
class Duty:
    """Something exactly one worker does: what to start when it is taken, stop when it is lost."""

    name: str
    gained: Callable[[], Awaitable[None]]
    lost: Callable[[], Awaitable[None]]


class Membership:
    """Keeps a worker's link, its beat and its duties, until `stop`."""

    def __init__(
        self,
        coordinator: Coordinator,
        duties: Sequence[Duty],
        on_outbox: Callable[[], None],
        *,
        reap: Callable[[datetime], Awaitable[list[str]]] | None = None,
        on_reload: Callable[[], None] | None = None,
        beat_every: float = BEAT_SECONDS,
        ttl: timedelta = BEAT_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.coordinator = coordinator
        self.duties = list(duties)
        self._on_outbox = on_outbox
        self._reap = reap
        self._on_reload = on_reload
        self._beat_every = beat_every
        self._ttl = ttl
        self._clock = clock
        self._connected = False
        self.held: set[str] = set()

    @property
    def linked(self) -> bool:
        """Whether the link to the database is up (wake-ups are heard)."""
        return self._connected

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._beat_every)
        finally:
            await self._give_up_all()
            await self.coordinator.close()

    async def beat(self) -> None:
        """One round: connect if needed, beat, take free duties."""
        if not self._connected:
            try:
                await self.coordinator.start(self._on_outbox, self._on_reload)
            except Exception as exc:
                log.warning("cannot reach the database to coordinate workers: %s", exc)
                return
            self._connected = True
            self._on_outbox()  # deliveries written while not listening
            if self._on_reload is not None:
                self._on_reload()  # a reload asked for while not listening
        for duty in self.duties:
            if duty.name not in self.held and await self.coordinator.hold(duty.name):
                self.held.add(duty.name)
                log.info("took over %s", duty.name)
                await _quietly(duty.gained, duty.name)
        if not await self.coordinator.beat(self._clock(), self._ttl):
            log.warning("lost the link to the database: giving up %s", sorted(self.held) or "-")
            self._connected = False
            await self._give_up_all()
            return
        if self._reap is not None:
            await self._release_the_dead()

    async def _release_the_dead(self) -> None:
        assert self._reap is not None
        try:
            dead = await self._reap(self._clock())
        except Exception as exc:
            log.warning("cannot release the leases of dead workers: %s", exc)
            return
        for name in dead:
            log.warning("worker %s stopped beating: its products and deliveries are free", name)

    async def _give_up_all(self) -> None:
        for duty in self.duties:
            if duty.name in self.held:
                self.held.discard(duty.name)
                await _quietly(duty.lost, duty.name)
                with contextlib.suppress(Exception):
                    await self.coordinator.let_go(duty.name)


async def _quietly(step: Callable[[], Awaitable[None]], duty: str) -> None:
    try:
        await step()
    except Exception:
        log.exception("duty %s: starting or stopping failed", duty)
