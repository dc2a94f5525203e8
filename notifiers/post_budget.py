"""A channel's budget of cost units over a rolling window (X's posts in 24 hours), as the notifier
sees it: units are taken before a post goes and given back when it did not.

Taking is one step, check and record together, so that where the budget is shared (several
workers on one database) two senders never both spend its last unit. `LocalPostBudget` keeps it
in memory for a process that has no database (`restock notify-test`); a restart forgets it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Protocol

DAY = timedelta(hours=24)


class BudgetUnavailable(Exception):
    """The budget could not be read or written (its database is unreachable)."""


class PostBudget(Protocol):
    """`limit` cost units in any rolling `window`."""

    @property
    def limit(self) -> int: ...

    @property
    def window(self) -> timedelta: ...

    async def take(self, cost: int, now: datetime) -> int | None:
        """Spend `cost` units at `now` if that many are left in the window ending at `now`: an id
        to give them back with, or None when the budget cannot afford it (nothing spent)."""
        ...

    async def give_back(self, spend: int) -> None:
        """Undo a spend whose post did not go (a spend already out of the window: nothing)."""
        ...

    async def left(self, now: datetime) -> int:
        """Units still free in the window ending at `now` (never below 0)."""
        ...


class LocalPostBudget:
    """A budget in this process's memory."""

    def __init__(self, limit: int, window: timedelta = DAY) -> None:
        self._limit = limit
        self._window = window
        self._spends: dict[int, tuple[datetime, int]] = {}
        self._ids: Iterator[int] = itertools.count(1)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window(self) -> timedelta:
        return self._window

    async def take(self, cost: int, now: datetime) -> int | None:
        if self._spent(now) + cost > self._limit:
            return None
        spend = next(self._ids)
        self._spends[spend] = (now, cost)
        return spend

    async def give_back(self, spend: int) -> None:
        self._spends.pop(spend, None)

    async def left(self, now: datetime) -> int:
        return max(0, self._limit - self._spent(now))

    def _spent(self, now: datetime) -> int:
        since = now - self._window
        for spend, (at, _) in list(self._spends.items()):
            if at <= since:
                del self._spends[spend]
        return sum(cost for _, cost in self._spends.values())
