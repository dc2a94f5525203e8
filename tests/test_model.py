"""Watch conditions: which observations count as buyable, and what a partial JAN search proves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.detector import DebounceSettings, Detector, WatchState
from watcher.core.model import (
    Availability,
    ConditionFilter,
    EventKind,
    ItemCondition,
    Observation,
    Offer,
    SellerFilter,
    Watch,
    WatchConditions,
)
from watcher.core.offers import combine

IN, OUT = Availability.IN_STOCK, Availability.OUT_OF_STOCK


def offer(store: str, price: int | None, state: Availability = IN, **kw: object) -> Offer:
    return Offer(store=store, url=f"https://{store}.example/item", state=state, price=price, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("conditions", "obs", "buyable"),
    [
        (WatchConditions(), Observation(IN, "r", price=1000), True),
        (WatchConditions(), Observation(OUT, "r", price=1000), False),
        (WatchConditions(), Observation(Availability.UNKNOWN, "r", price=1000), False),
        (WatchConditions(max_price=5000), Observation(IN, "r", price=5000), True),
        (WatchConditions(max_price=5000), Observation(IN, "r", price=5001), False),
        # A price the page hid must not let a scalper's offer through.
        (WatchConditions(max_price=5000), Observation(IN, "r", price=None), False),
        (WatchConditions(), Observation(IN, "r", price=None), True),
        (
            WatchConditions(condition=ConditionFilter.NEW),
            Observation(IN, "r", condition=ItemCondition.USED),
            False,
        ),
        (WatchConditions(seller=SellerFilter.OFFICIAL), Observation(IN, "r", official=None), False),
        (WatchConditions(seller=SellerFilter.OFFICIAL), Observation(IN, "r", official=True), True),
        (
            WatchConditions(exclude_sellers=("転売屋",)),
            Observation(IN, "r", seller="株式会社転売屋ストア"),
            False,
        ),
        (
            WatchConditions(buyable=frozenset({IN, Availability.PREORDER})),
            Observation(Availability.PREORDER, "r"),
            True,
        ),
    ],
)
def test_is_buyable(conditions: WatchConditions, obs: Observation, buyable: bool) -> None:
    assert conditions.is_buyable(obs) is buyable


def test_summary_offers_never_make_a_sold_out_buy_box_buyable() -> None:
    summary = offer("amazon_jp", 24000, summary=True, condition=ItemCondition.USED)
    sold_out = Observation(OUT, "amazon:#availability 在庫切れ", offers=(summary,))
    assert not WatchConditions().is_buyable(sold_out)
    in_stock = Observation(IN, "amazon:#availability 在庫あり", price=5400, offers=(summary,))
    assert WatchConditions(max_price=6000).is_buyable(in_stock)
    assert WatchConditions().buyable_offers(in_stock) == []


def test_stores_limit_which_offers_count() -> None:
    obs = Observation(IN, "jan", offers=(offer("rakuten", 4000),))
    assert WatchConditions().is_buyable(obs)
    assert not WatchConditions(stores=frozenset({"yahoo_shopping"})).is_buyable(obs)
    assert WatchConditions(stores=frozenset({"rakuten"})).is_buyable(obs)


def test_buyable_offers_come_cheapest_first() -> None:
    obs = Observation(IN, "jan", offers=(offer("a", 900), offer("b", None), offer("c", 500)))
    assert [o.store for o in WatchConditions().buyable_offers(obs)] == ["c", "a", "b"]


def test_a_failed_search_source_is_no_evidence_of_a_sell_out() -> None:
    """In stock at Yahoo within the budget; Rakuten too dear; then Yahoo's API fails for a while."""
    watch = Watch(key="cards", name="cards", jan="4521329400006", conditions=WatchConditions(5000))
    detector = Detector(DebounceSettings(confirm=1, rearm=1, cooldown=timedelta(0)))
    yahoo_up = {
        "yahoo_shopping": [offer("yahoo_shopping", 4800)],
        "rakuten": [offer("rakuten", 9800)],
    }
    yahoo_down = {
        "yahoo_shopping": Observation.unknown("blocked:rate_limited", blocked=True),
        "rakuten": [offer("rakuten", 9800)],
    }
    out = {
        "yahoo_shopping": [offer("yahoo_shopping", 4800, OUT)],
        "rakuten": [offer("rakuten", 9800)],
    }
    state, start = WatchState(), datetime(2026, 11, 23, tzinfo=UTC)
    kinds = []
    for step, answers in enumerate([out, yahoo_up, yahoo_down, yahoo_down, yahoo_up]):
        decision = detector.observe(
            watch, state, combine(watch.jan or "", answers), start + timedelta(minutes=step)
        )
        state = decision.state
        kinds += [event.kind for event in decision.events]
    assert kinds == [EventKind.RESTOCK]
