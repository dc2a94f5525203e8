"""Time, injected: every part that waits or stamps takes a clock, so tests drive time themselves.

`WallClock` is the plain "what time is it" function the engine, dispatcher and server take;
`Clock` adds a monotonic clock and sleeping for the notifiers' pacing (a fake one advances itself
instead of sleeping).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (windows and latencies)."""

    def now(self) -> datetime:
        """Aware wall-clock time (retry times, event age, daily budgets)."""

    async def sleep(self, seconds: float) -> None:
        """Wait; a fake clock advances itself instead."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


async def wait_any(events: Iterable[asyncio.Event], timeout: float) -> None:
    """Wait until any of `events` is set, or `timeout` seconds pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
