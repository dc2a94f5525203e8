"""How many watches an exposed web UI may add: a rolling 24-hour count and a total.

One token guards the UI, so the quota is the token's. The day's adds are spends from a budget in
the database (`SpendStore`, as X's post budget is): a restart remembers them, every worker serving
the UI counts the same ones, and two saves at once cannot both take the day's last add. The total
is counted from the watches themselves. The operator's own UI on loopback has no quota
(`WebSetup.rules` is None there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.core.model import Origin
from watcher.storage.interface import SpendStore
from watcher.storage.views import WatchRow
from watcher.web.forms import FormError

DAY = timedelta(hours=24)
PER_DAY = 50
TOTAL = 500
BUDGET = "web:adds"


@dataclass(frozen=True, slots=True)
class WebQuota:
    spends: SpendStore
    per_day: int = PER_DAY
    total: int = TOTAL

    async def check(self, rows: Sequence[WatchRow], now: datetime) -> None:
        """FormError when one more watch would pass the day's or the total limit."""
        if await self.spends.spent(BUDGET, now, DAY) >= self.per_day:
            raise FormError("daily_quota", max=self.per_day)
        if sum(1 for row in rows if row.origin is Origin.WEB) >= self.total:
            raise FormError("total_quota", max=self.total)

    async def take(self, now: datetime) -> int:
        """Take one of the day's adds before saving (FormError when another save took the last):
        the spend's id, to give back if the save fails."""
        spend = await self.spends.spend(BUDGET, 1, now, limit=self.per_day, window=DAY)
        if spend is None:
            raise FormError("daily_quota", max=self.per_day)
        return spend

    async def give_back(self, spend: int) -> None:
        await self.spends.refund(spend)
