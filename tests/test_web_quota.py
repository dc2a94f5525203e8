"""The exposed web UI's daily add quota lives in the database: it holds across a restart, across
workers serving the UI, and against simultaneous saves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.webkit import running_web
from watcher.core.model import Origin
from watcher.net.netguard import URLGuard
from watcher.storage import open_repository
from watcher.web.forms import FormError
from watcher.web.quota import WebQuota

NOW = datetime(2026, 5, 12, 3, 0, tzinfo=UTC)


async def test_the_days_adds_survive_reopening_the_database(database: str) -> None:
    first = await open_repository(database)
    try:
        quota = WebQuota(first, per_day=2, total=100)
        await quota.take(NOW)
        await quota.take(NOW + timedelta(hours=1))
    finally:
        await first.close()
    again = await open_repository(database)
    try:
        quota = WebQuota(again, per_day=2, total=100)
        with pytest.raises(FormError) as refused:
            await quota.check([], NOW + timedelta(hours=2))
        assert refused.value.key == "daily_quota"
        await quota.check([], NOW + timedelta(hours=24, minutes=1))  # the first add rolled out
    finally:
        await again.close()


async def test_two_workers_serving_the_ui_share_one_day(database: str) -> None:
    one, two = await open_repository(database), await open_repository(database)
    try:
        quotas = [WebQuota(one, per_day=5, total=100), WebQuota(two, per_day=5, total=100)]
        taken = await asyncio.gather(
            *(quotas[n % 2].take(NOW) for n in range(12)), return_exceptions=True
        )
    finally:
        await one.close()
        await two.close()
    assert sum(1 for t in taken if isinstance(t, int)) == 5
    refusals = [t for t in taken if isinstance(t, FormError)]
    assert len(refusals) == 7 and {r.key for r in refusals} == {"daily_quota"}


async def test_a_failed_save_gives_its_add_back(database: str) -> None:
    repo = await open_repository(database)
    try:
        quota = WebQuota(repo, per_day=1, total=100)
        spend = await quota.take(NOW)
        await quota.give_back(spend)
        await quota.check([], NOW)  # room again
        await quota.take(NOW)
    finally:
        await repo.close()


async def test_simultaneous_saves_through_the_ui_never_pass_the_days_limit(
    tmp_path: Path, database: str
) -> None:
    async def public_address(host: str) -> list[str]:
        return ["52.119.168.48"]  # the guard resolves no name in a test

    guard = URLGuard(["www.amazon.co.jp"], resolver=public_address)
    async with running_web(tmp_path, guard=guard, quota=(3, 100), database=database) as web:
        token = await web.csrf()
        forms = [
            {
                "target": f"https://www.amazon.co.jp/dp/B0RACE{n:04d}",
                "csrf": token,
                "action": "save",
            }
            for n in range(8)
        ]
        answers = await asyncio.gather(*(web.client.post("/add", data=f) for f in forms))
        added = [w for w in await web.repo.web_views().watches() if w.origin is Origin.WEB]
    assert sorted(a.status_code for a in answers) == [303] * 3 + [400] * 5
    assert len(added) == 3
