"""What workers sharing one database coordinate through it, beyond the `Repository`: which
workers live and what each holds, duties with one owner at a time, a wake-up when deliveries are
written or a reload is asked for, and each host's request budget across workers.

Only a server database offers it (`Coordinated`); one process on SQLite needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker as `restock status` lists it."""

    name: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    duties: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HostGrant:
    """The answer to a request for one of a host's slots.

    Granted: `slot_id` is set and the request may start at `start_at`. Refused while the host
    backs off (`backoff_until`), or while all its slots are taken (neither set).
    """

    slot_id: int | None = None
    start_at: datetime | None = None
    backoff_until: datetime | None = None


class Coordinator(Protocol):
    """One worker's standing link to the database (its duties end when the link does)."""

    async def start(
        self, on_outbox: Callable[[], None], on_reload: Callable[[], None] | None = None
    ) -> None:
        """Connect; call `on_outbox` whenever another transaction writes unclaimed deliveries,
        and `on_reload` whenever one bumps the reload counter."""

    async def hold(self, duty: str) -> bool:
        """Hold `duty` if no live worker does (held until `let_go` or the link ends)."""

    async def let_go(self, duty: str) -> None:
        """Give `duty` up for another worker to take."""

    async def beat(self, now: datetime, ttl: timedelta) -> bool:
        """Tell the others this worker lives (until `now + ttl`) and what it holds.

        False when the link was lost: every duty is gone, and `start` must connect again.
        """

    async def close(self) -> None:
        """Leave: duties given up, the worker's row removed."""


@runtime_checkable
class Coordinated(Protocol):
    """A repository several workers can share."""

    def coordinator(self, worker: str) -> Coordinator:
        """The standing link of the worker named `worker` (not connected yet)."""

    async def live_workers(self, now: datetime) -> list[WorkerInfo]:
        """Workers whose last beat has not expired, by name."""

    async def release_dead_workers(self, now: datetime) -> list[str]:
        """Give back at once the leases of workers whose beat expired; their names."""

    async def acquire_host_slot(
        self,
        host: str,
        owner: str,
        now: datetime,
        *,
        concurrency: int,
        min_delay: timedelta,
        hold: timedelta,
    ) -> HostGrant:
        """Take one of `host`'s `concurrency` slots across all workers, `min_delay` after the
        previous start, for at most `hold`; refused while the host backs off."""

    async def release_host_slot(self, slot_id: int) -> None:
        """The request is over: its slot is free for any worker."""
