"""The health page's channel budgets: X's daily post budget beside LINE's monthly quota."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from notifiers.console import ConsoleNotifier
from notifiers.line import LineNotifier
from notifiers.line_quota import Quota
from notifiers.x import XNotifier
from tests.webkit import running_web
from watcher.web.budgets import ChannelBudget, Period, channel_budgets

READ_AT = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)


def x_notifier() -> XNotifier:
    return XNotifier(
        consumer_key="k",
        consumer_secret="s",
        access_token="t",
        access_token_secret="u",
        daily_budget=15,
    )


async def test_each_budgeted_channel_reports_its_allowance() -> None:
    line = LineNotifier(channel_access_token="line-token-for-tests")
    try:
        notifiers = {"console": ConsoleNotifier(), "x": x_notifier(), "line": line}
        assert await channel_budgets(notifiers) == [
            ChannelBudget("x", Period.DAY, allowance=15, used=0),
            ChannelBudget("line", Period.MONTH, allowance=None, used=None),  # not read yet
        ]
        line.quota = Quota(limit=1000, used=1200, read_at=READ_AT)
        [_, monthly] = await channel_budgets(notifiers)
        assert (monthly.allowance, monthly.used, monthly.left) == (1000, 1200, 0)
        line.quota = Quota(limit=None, used=7, read_at=READ_AT)  # LINE sets no limit
        [_, monthly] = await channel_budgets(notifiers)
        assert (monthly.allowance, monthly.used, monthly.left) == (None, 7, None)
    finally:
        await line.aclose()


async def test_the_health_page_shows_the_line_quota_beside_the_x_budget(
    tmp_path: Path, database: str
) -> None:
    budgets = (
        ChannelBudget("x", Period.DAY, allowance=15, used=3),
        ChannelBudget("line", Period.MONTH, allowance=1000, used=10),
    )
    async with running_web(tmp_path, budgets=budgets, database=database) as web:
        japanese = (await web.client.get("/health")).text
        english = (await web.client.get("/health?lang=en")).text
    assert "x: 残り 12 / 15 （24時間あたり）" in japanese
    assert "line: 残り 990 / 1000 （今月分）" in japanese
    assert "x: left 12 / 15 per 24 hours" in english
    assert "line: left 990 / 1000 this month" in english


async def test_an_unread_or_unlimited_quota_says_so(tmp_path: Path, database: str) -> None:
    budgets = (
        ChannelBudget("line", Period.MONTH, allowance=None, used=None),
        ChannelBudget("line2", Period.MONTH, allowance=None, used=42),
    )
    async with running_web(tmp_path, budgets=budgets, language="en", database=database) as web:
        page = (await web.client.get("/health")).text
    assert "line: not read yet" in page
    assert "line2: 42 sent this month (no limit)" in page
