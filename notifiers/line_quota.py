"""LINE's monthly message quota as a budget, and who gets an alert when it runs short.

Pure: the notifier reads the figures from the Messaging API and asks `plan_fan_out` what to send.
A multicast costs one message per recipient, a push one; replies are free and not counted.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Generic, Protocol, TypeVar

JST = timezone(timedelta(hours=9), "JST")
QUOTA_REASON = "quota"


class QuotaPolicy(enum.StrEnum):
    """What to do with an event whose fan-out is larger than what is left this month."""

    STOP = "stop"  # send it to nobody: a partial alert would favour some subscribers by chance
    OLDEST_FIRST = "oldest_first"  # what is left goes to the longest-standing subscriptions


@dataclass(frozen=True, slots=True)
class Quota:
    """This month's figures: `limit` None means LINE sets no limit (`type: none`)."""

    limit: int | None
    used: int
    read_at: datetime

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def spend(self, messages: int) -> Quota:
        return replace(self, used=self.used + messages)

    def merged_with(self, fresh: Quota) -> Quota:
        """A fresh reading; LINE counts with a delay, so within one month our own count of what
        went out since the last reading is not allowed to shrink."""
        if _month(fresh.read_at) != _month(self.read_at):
            return fresh
        return replace(fresh, used=max(fresh.used, self.used))

    def exhausted(self) -> Quota:
        """LINE said the monthly limit is reached, whatever our figures say."""
        limit = self.used if self.limit is None else self.limit
        return replace(self, limit=limit, used=max(limit, self.used))


def _month(moment: datetime) -> tuple[int, int]:
    local = moment.astimezone(JST)  # the quota is a calendar month in Japan
    return local.year, local.month


class Recipient(Protocol):
    @property
    def subscription_id(self) -> int | None: ...

    @property
    def delivery_id(self) -> int: ...


R = TypeVar("R", bound=Recipient)


@dataclass(frozen=True, slots=True)
class FanOutPlan(Generic[R]):
    send: list[R]
    refused: list[R]  # dead-lettered with the reason `quota`


def plan_fan_out(recipients: Sequence[R], left: int | None, policy: QuotaPolicy) -> FanOutPlan[R]:
    """Which of one event's recipients get it with `left` messages still in the budget."""
    if left is None or len(recipients) <= left:
        return FanOutPlan(list(recipients), [])
    if policy is QuotaPolicy.STOP or left <= 0:
        return FanOutPlan([], list(recipients))
    ordered = sorted(recipients, key=_seniority)
    return FanOutPlan(ordered[:left], ordered[left:])


def _seniority(recipient: Recipient) -> tuple[int, int]:
    # Subscription ids grow with time; a recipient without one (never expected) goes last.
    sub = recipient.subscription_id
    return (sub if sub is not None else 2**62, recipient.delivery_id)
