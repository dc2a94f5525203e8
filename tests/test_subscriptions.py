"""The subscription use cases every front-end shares, on a real repository: quota, URL guard,
canonical URLs, shared watches that may be joined, pause/resume/remove of one's own only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from watcher.core.model import DEFAULT_EVENTS, EventKind, Notify, Watch
from watcher.net.netguard import URLGuard
from watcher.storage.interface import Repository
from watcher.subscriptions import (
    Refused,
    SubscriptionRules,
    Subscriptions,
    WatchRequest,
)

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ALICE, BOB = 1001, 1002
PRODUCT = "https://www.amazon.co.jp/dp/B0DX000000"


async def public_dns(host: str) -> Sequence[str]:
    return ["52.119.168.48"] if host != "internal.example" else ["10.0.0.5"]


def use_cases(repo: Repository, *, quota: int = 3, jan_search: bool = True) -> Subscriptions:
    guard = URLGuard(("www.amazon.co.jp", "internal.example"), resolver=public_dns)
    rules = SubscriptionRules(max_per_chat=quota, jan_search=jan_search)
    return Subscriptions(repo, guard, rules, now=lambda: NOW, refused_url_hint="amazon")


async def add(subs: Subscriptions, chat: int, request: WatchRequest) -> int:
    accepted = await subs.accept(chat, request)
    return (await subs.subscribe(chat, accepted)).id


async def test_a_url_is_made_canonical_and_shared_by_chats(repo: Repository) -> None:
    subs = use_cases(repo)
    await add(subs, ALICE, WatchRequest(url=PRODUCT + "?tag=aff-22&ref_=x"))
    await add(subs, BOB, WatchRequest(url=PRODUCT))
    [alices], [bobs] = await subs.list(ALICE), await subs.list(BOB)
    assert alices.target == bobs.target == PRODUCT
    assert alices.watch_key == bobs.watch_key  # one watch, one fetch for both
    assert alices.store == "amazon_jp" and alices.one_shot


async def test_asking_for_lottery_sales_is_its_own_watch(repo: Repository) -> None:
    subs = use_cases(repo)
    await add(subs, ALICE, WatchRequest(url=PRODUCT, lottery=True))
    await add(subs, BOB, WatchRequest(url=PRODUCT))
    [alices], [bobs] = await subs.list(ALICE), await subs.list(BOB)
    assert alices.conditions.events == DEFAULT_EVENTS | {EventKind.LOTTERY_OPEN}
    assert bobs.conditions.events == DEFAULT_EVENTS
    assert alices.watch_key != bobs.watch_key  # Bob never hears of a lottery he did not ask for


async def test_the_quota_refuses_before_anything_is_written(repo: Repository) -> None:
    subs = use_cases(repo, quota=1)
    await add(subs, ALICE, WatchRequest(url=PRODUCT))
    with pytest.raises(Refused) as refused:
        await subs.accept(ALICE, WatchRequest(url=PRODUCT + "2"))
    assert (refused.value.key, refused.value.values) == ("quota", {"max": 1})
    assert len(await subs.list(ALICE)) == 1


@pytest.mark.parametrize(
    "url", ["https://internal.example/item", "http://127.0.0.1/x", "https://evil.test/dp/1"]
)
async def test_unsafe_urls_are_refused(repo: Repository, url: str) -> None:
    with pytest.raises(Refused) as refused:
        await use_cases(repo).accept(ALICE, WatchRequest(url=url))
    assert (refused.value.key, refused.value.values) == ("bad_url", {"stores": "amazon"})
    assert await repo.count_active(ALICE) == 0


async def test_a_jan_needs_a_search_source(repo: Repository) -> None:
    with pytest.raises(Refused, match="jan_unavailable"):
        await use_cases(repo, jan_search=False).accept(ALICE, WatchRequest(jan="4902370548501"))
    accepted = await use_cases(repo).accept(ALICE, WatchRequest(jan="4902370548501"))
    assert (accepted.target, accepted.store) == ("jan:4902370548501", None)


async def test_only_public_operator_watches_can_be_joined(repo: Repository) -> None:
    public = Watch(key="box", name="Box", url=PRODUCT, notify=Notify(console=True))
    private = Watch(key="nas", name="NAS", url="http://192.168.1.2/", notify=Notify(console=True))
    await repo.sync_yaml_watches([public, private], NOW)
    subs = use_cases(repo)
    joined = await subs.join_shared(ALICE, "box")
    assert joined.watch_key == "box"
    for key in ("nas", "no-such-watch"):
        with pytest.raises(Refused, match="link_unknown"):
            await subs.join_shared(ALICE, key)


async def test_pause_resume_and_remove_touch_only_ones_own(repo: Repository) -> None:
    subs = use_cases(repo)
    mine = await add(subs, ALICE, WatchRequest(url=PRODUCT))
    await add(subs, ALICE, WatchRequest(url=PRODUCT + "2"))
    assert not await subs.set_paused(BOB, mine, True)
    assert not await subs.remove(BOB, mine)
    assert await subs.set_all_paused(ALICE, True) == 2
    assert await subs.set_all_paused(ALICE, True) == 0  # already paused: nothing changed
    assert await subs.set_paused(ALICE, mine, False)
    assert await subs.remove(ALICE, mine)
    assert [s.paused for s in await subs.list(ALICE)] == [True]
