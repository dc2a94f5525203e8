"""A channel's post budget kept in the database (`SpendStore`), so that it survives a restart and
every worker on the database spends from the same one."""

from __future__ import annotations

from datetime import datetime, timedelta

from notifiers.post_budget import DAY, BudgetUnavailable
from watcher.errors import StorageError
from watcher.storage.interface import SpendStore


class StoredPostBudget:
    """`notifiers.post_budget.PostBudget` over the database's spends under the key `budget`."""

    def __init__(self, store: SpendStore, budget: str, limit: int, window: timedelta = DAY) -> None:
        self._store = store
        self._budget = budget
        self._limit = limit
        self._window = window

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window(self) -> timedelta:
        return self._window

    async def take(self, cost: int, now: datetime) -> int | None:
        try:
            return await self._store.spend(
                self._budget, cost, now, limit=self._limit, window=self._window
            )
        except StorageError as exc:
            raise BudgetUnavailable(str(exc)) from exc

    async def give_back(self, spend: int) -> None:
        try:
            await self._store.refund(spend)
        except StorageError as exc:
            raise BudgetUnavailable(str(exc)) from exc

    async def left(self, now: datetime) -> int:
        try:
            spent = await self._store.spent(self._budget, now, self._window)
        except StorageError as exc:
            raise BudgetUnavailable(str(exc)) from exc
        return max(0, self._limit - spent)
