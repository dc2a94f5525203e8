"""Per-host politeness held across every worker on one database.

`Politeness` keeps a host's limits within one process; with several workers each would use the
full budget. `SharedPoliteness` also takes one of the host's slots from the database for every
request (`HostBudget`, a row per request in flight and the host's next start time), so the
workers together keep `concurrency` and `min_delay`, and a backoff one of them stored (after a
block) refuses the host to all of them until it ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, Protocol

from watcher.net.politeness import (
    Breaker,
    HostBackingOff,
    HostPolicy,
    Politeness,
    normalise_host,
)
from watcher.storage.coordination import HostGrant

log = logging.getLogger(__name__)

# How long a slot counts for its host if its worker dies mid-request (longer than any fetch).
SLOT_HOLD = timedelta(seconds=120)
# Between two asks while every slot of a host is taken by other workers.
FULL_RETRY_SECONDS = 0.05
# A slot is asked for a little ahead of now (a quarter of the host's delay, at most this): the
# next worker's start is reckoned from the granted one, so a request that went out late (the
# database's answer, a busy loop) would bring the next one closer than `min_delay`. Granted
# ahead, the request sleeps until its start and goes out on time.
MAX_LEAD_SECONDS = 0.25


class HostBudget(Protocol):
    async def acquire_host_slot(
        self,
        host: str,
        owner: str,
        now: Any,
        *,
        concurrency: int,
        min_delay: timedelta,
        hold: timedelta,
    ) -> HostGrant: ...

    async def release_host_slot(self, slot_id: int) -> None: ...


class SharedPoliteness(Politeness):
    """`Politeness` whose host limits and backoffs hold for all workers together."""

    def __init__(
        self,
        policy_for: Callable[[str], HostPolicy],
        *,
        budget: HostBudget,
        owner: str,
        hold: timedelta = SLOT_HOLD,
        **options: Any,
    ) -> None:
        super().__init__(policy_for, **options)
        self._budget = budget
        self._owner = owner
        self._hold = hold

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        host = normalise_host(host)
        async with super().slot(host):
            slot_id = await self._shared_slot(host)
            # The request starts now, after the database answered: this worker's own spacing
            # counts from here (other waiters here re-check it when their sleep ends).
            self._state(host).last_start = self._clock()
            try:
                yield
            finally:
                try:
                    await self._budget.release_host_slot(slot_id)
                except Exception:  # it expires by itself; the check must not fail for it
                    log.warning("host %s: slot %d not given back; it will expire", host, slot_id)

    async def _shared_slot(self, host: str) -> int:
        """Wait for one of `host`'s slots across workers and for its start time."""
        policy = self.policy(host)
        lead = timedelta(seconds=min(MAX_LEAD_SECONDS, policy.min_delay / 4))
        while True:
            now = self._wall_clock()
            grant = await self._budget.acquire_host_slot(
                host,
                self._owner,
                now + lead,
                concurrency=policy.concurrency,
                min_delay=timedelta(seconds=policy.min_delay),
                hold=self._hold,
            )
            if grant.backoff_until is not None:
                retry_in = (grant.backoff_until - now).total_seconds()
                raise HostBackingOff(host, max(retry_in, 0.0), Breaker.OPEN)
            if grant.slot_id is None or grant.start_at is None:
                await self._sleep(FULL_RETRY_SECONDS)
                continue
            wait = (grant.start_at - self._wall_clock()).total_seconds()
            if wait > 0:
                await self._sleep(wait)
            return grant.slot_id
