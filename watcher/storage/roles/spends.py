"""Spends from a budget over a rolling window (X's daily post budget), shared by every worker.

One row per spend: the budget's key, when, how many units. A spend is checked and recorded in one
transaction that holds the budget's lock (on SQLite the write lock every transaction takes; on
PostgreSQL an advisory lock per key), so two workers never both spend the last unit. Rows that
fell out of the window are pruned as spends are recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.storage.codec import to_epoch
from watcher.storage.connector import Query, Role

PRUNE_SPENDS = Query("DELETE FROM spends WHERE budget = :budget AND at <= :since")
SPENT = Query("SELECT COALESCE(SUM(cost), 0) FROM spends WHERE budget = :budget AND at > :since")
RECORD_SPEND = Query(
    "INSERT INTO spends (budget, at, cost) VALUES (:budget, :at, :cost) RETURNING id"
)
REFUND_SPEND = Query("DELETE FROM spends WHERE id = :id")


def _lock_name(budget: str) -> str:
    return f"spend:{budget}"


class Spends(Role):
    """Budgets of units over a rolling window."""

    async def spend(
        self, budget: str, cost: int, now: datetime, *, limit: int, window: timedelta
    ) -> int | None:
        if cost < 0:
            raise ValueError(f"a spend of {cost} units")
        since = to_epoch(now - window)
        async with self._db.write():
            await self._db.hold_lock(_lock_name(budget))
            await self._db.execute(PRUNE_SPENDS, budget=budget, since=since)
            spent = int(await self._db.value(SPENT, budget=budget, since=since))
            if spent + cost > limit:
                return None
            spend_id: int = await self._db.value(
                RECORD_SPEND, budget=budget, at=to_epoch(now), cost=cost
            )
        return spend_id

    async def refund(self, spend_id: int) -> None:
        async with self._db.write():
            await self._db.execute(REFUND_SPEND, id=spend_id)

    async def spent(self, budget: str, now: datetime, window: timedelta) -> int:
        async with self._db.read():
            total = await self._db.value(SPENT, budget=budget, since=to_epoch(now - window))
        return int(total)
