"""How many watches an exposed web UI may add: a rolling 24-hour count and a total.

One token guards the UI, so the quota is the token's. The day's count lives in memory (a restart
forgets it, as X's post budget does); the total is counted from the database, so it holds across
restarts. The operator's own UI on loopback has no quota (`WebSetup.rules` is None there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.core.model import Origin
from watcher.storage.views import WatchRow
from watcher.web.forms import FormError

DAY = timedelta(hours=24)
PER_DAY = 50
TOTAL = 500


@dataclass(slots=True)
class WebQuota:
    per_day: int = PER_DAY
    total: int = TOTAL
    _added: list[datetime] = field(default_factory=list)

    def check(self, rows: Sequence[WatchRow], now: datetime) -> None:
        """FormError when one more watch would pass the day's or the total limit."""
        self._added = [moment for moment in self._added if now - moment < DAY]
        if len(self._added) >= self.per_day:
            raise FormError("daily_quota", max=self.per_day)
        if sum(1 for row in rows if row.origin is Origin.WEB) >= self.total:
            raise FormError("total_quota", max=self.total)

    def added(self, now: datetime) -> None:
        self._added.append(now)
