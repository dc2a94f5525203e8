"""What each budgeted channel may still send: X's daily post budget, LINE's monthly quota."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from notifiers.base import Notifier
from notifiers.line import LineNotifier
from notifiers.post_budget import BudgetUnavailable
from notifiers.x import XNotifier


class Period(enum.StrEnum):
    DAY = "day"  # a rolling 24 hours (X)
    MONTH = "month"  # a calendar month in Japan (LINE)


@dataclass(frozen=True, slots=True)
class ChannelBudget:
    """One channel's allowance. `allowance` None: no limit; `used` None: not read yet."""

    channel: str
    period: Period
    allowance: int | None
    used: int | None

    @property
    def left(self) -> int | None:
        if self.allowance is None or self.used is None:
            return None
        return max(0, self.allowance - self.used)


async def channel_budgets(notifiers: Mapping[str, Notifier]) -> list[ChannelBudget]:
    """The budgets of the channels that have one, in the order the channels are configured."""
    budgets = []
    for name, notifier in notifiers.items():
        budget = await _daily(name, notifier) or _monthly(name, notifier)
        if budget is not None:
            budgets.append(budget)
    return budgets


async def _daily(name: str, notifier: Notifier) -> ChannelBudget | None:
    """X's budget as the database holds it: what every worker together has spent."""
    if not isinstance(notifier, XNotifier):
        return None
    daily = notifier.daily_budget
    try:
        left = await notifier.budget_left()
    except BudgetUnavailable:  # the database is unreachable: shown as not read
        return ChannelBudget(name, Period.DAY, daily, None)
    return ChannelBudget(name, Period.DAY, daily, daily - left)


def _monthly(name: str, notifier: Notifier) -> ChannelBudget | None:
    if not isinstance(notifier, LineNotifier):
        return None
    quota = notifier.quota
    if quota is None:  # not read yet: LINE has not answered so far
        return ChannelBudget(name, Period.MONTH, None, None)
    return ChannelBudget(name, Period.MONTH, quota.limit, quota.used)
