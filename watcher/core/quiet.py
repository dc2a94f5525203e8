"""Quiet-hour arithmetic: whether a moment falls in a recipient's quiet hours, and when they end."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from watcher.core.model import QuietHours


def quiet_until(quiet: QuietHours | None, now: datetime, zone: ZoneInfo) -> datetime | None:
    """When the recipient's quiet hours end, if `now` falls inside them; else None."""
    if quiet is None or quiet.start == quiet.end:
        return None
    local = now.astimezone(zone)
    if not _inside(local.time(), quiet.start, quiet.end):
        return None
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


def _inside(moment: time, start: time, end: time) -> bool:
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # the window crosses midnight
