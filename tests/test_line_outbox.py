"""LINE through the outbox: a real database on each backend, the dispatcher, the LINE stand-in."""

from __future__ import annotations

import pytest
from test_dispatch import Clock, dispatcher, setup, statuses
from test_line import FakeClock

from notifiers.line import LineNotifier
from tests.line_standin import TOKEN, LineStandIn
from watcher.core.model import Notify
from watcher.storage.sqlite.repository import SQLiteRepository


def users(count: int) -> tuple[str, ...]:
    return tuple(f"U{n:032x}" for n in range(1, count + 1))


async def test_a_fan_out_of_1200_leaves_in_three_multicasts(repo: SQLiteRepository) -> None:
    await setup(repo, Notify(line=users(1200)))
    async with LineStandIn(limit=10_000) as line:
        notifier = LineNotifier(
            channel_access_token=TOKEN, api_base_url=line.url, clock=FakeClock()
        )
        d = dispatcher(repo, [notifier], Clock())
        assert await d.drain_once() == 1200
        await notifier.aclose()
    assert [len(r.body["to"]) for r in line.message_requests()] == [500, 500, 200]
    assert sorted(line.delivered) == sorted(users(1200))
    assert await statuses(repo) == {"sent": 1200}


@pytest.mark.parametrize(("policy", "sent"), [("stop", 0), ("oldest_first", 100)])
async def test_what_the_quota_refuses_is_dead_lettered_with_reason_quota(
    repo: SQLiteRepository, policy: str, sent: int
) -> None:
    await setup(repo, Notify(line=users(150)))
    async with LineStandIn(limit=100) as line:
        notifier = LineNotifier(
            channel_access_token=TOKEN,
            api_base_url=line.url,
            clock=FakeClock(),
            quota_policy=policy,
        )
        d = dispatcher(repo, [notifier], Clock())
        await d.drain_once()
        await notifier.aclose()
    assert len(line.delivered) == sent
    expected = {"sent": sent, "failed": 150 - sent} if sent else {"failed": 150}
    assert await statuses(repo) == expected
    dead = await repo.dead_letters(200)
    assert len(dead) == 150 - sent
    assert all(d.channel == "line" and (d.last_error or "").startswith("quota") for d in dead)
