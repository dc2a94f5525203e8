"""The detector's rules, one table row per rule, written as observation sequences."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from watcher.core.detector import (
    STATE_VERSION,
    DebounceSettings,
    Decision,
    Detector,
    Phase,
    WatchState,
)
from watcher.core.model import (
    Availability,
    EventKind,
    Observation,
    Offer,
    Watch,
    WatchConditions,
)

T0 = datetime(2025, 3, 1, 2, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
MINUTE = timedelta(minutes=1)
NO_COOLDOWN = DebounceSettings(confirm=2, rearm=2, cooldown=timedelta(0))
PREORDER_TOO = frozenset({Availability.IN_STOCK, Availability.PREORDER})
SHIPPABLE = frozenset({Availability.IN_STOCK, Availability.BACKORDER})

# One letter per observation; "B:4800" adds a price.
LETTERS = {
    "B": Availability.IN_STOCK,
    "K": Availability.BACKORDER,
    "P": Availability.PREORDER,
    "O": Availability.OUT_OF_STOCK,
    "D": Availability.DISCONTINUED,
    "U": Availability.UNKNOWN,
}


def obs(token: str) -> Observation:
    letter, _, price = token.partition(":")
    return Observation(
        state=LETTERS[letter],
        reason=f"test:{letter}",
        price=int(price) if price else None,
        url="https://shop.example/item/1",
        store="generic",
        title="Widget",
    )


def make_watch(conditions: WatchConditions | None = None) -> Watch:
    conditions = conditions or WatchConditions()
    return Watch(key="w1", name="Widget", url="https://shop.example/item/1", conditions=conditions)


def watch_with(**changes: Any) -> Watch:
    return replace(make_watch(), **changes)


def run(
    sequence: str,
    settings: DebounceSettings = NO_COOLDOWN,
    watch: Watch | None = None,
    step: timedelta = MINUTE,
) -> tuple[list[str], list[Decision]]:
    """Feed the sequence, one observation per `step`; return "index:kind" per event."""
    detector = Detector(settings)
    watch = watch or make_watch()
    state = WatchState()
    fired: list[str] = []
    decisions: list[Decision] = []
    for index, token in enumerate(sequence.split()):
        decision = detector.observe(watch, state, obs(token), T0 + index * step)
        state = decision.state
        decisions.append(decision)
        fired += [f"{index}:{event.kind.value}" for event in decision.events]
    return fired, decisions


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ("O O B B", ["3:restock"]),
        ("O B", []),
        ("O B O B O B O", []),
        ("O B B B B", ["2:restock"]),
        ("O K K", []),  # backorder is not in the default buyable set
        ("D B B", ["2:restock"]),
        ("O B B O O", ["2:restock", "4:out_of_stock"]),
        ("O B B O B O B", ["2:restock"]),
        ("O B B O O B B", ["2:restock", "4:out_of_stock", "6:restock"]),
        ("O B B O D", ["2:restock", "4:out_of_stock"]),
        ("O U B U B", ["4:restock"]),
        ("U U U U", []),
        ("U O U B U U B U", ["6:restock"]),
        ("O B B U U U O U B O", ["2:restock"]),
        ("B B B B", []),
        ("B O B B", []),
        ("B O O B B", ["4:restock"]),
        ("O P P", []),
    ],
)
def test_default_debounce(sequence: str, expected: list[str]) -> None:
    assert run(sequence)[0] == expected


@pytest.mark.parametrize(
    ("sequence", "confirm", "rearm", "expected"),
    [
        ("O B", 1, 1, ["1:restock"]),
        ("O B O B", 1, 1, ["1:restock", "2:out_of_stock", "3:restock"]),
        ("O B B", 3, 2, []),
        ("O B B B", 3, 2, ["3:restock"]),
        ("O B B O O B B", 2, 3, ["2:restock"]),
        ("O B B O O O B B", 2, 3, ["2:restock", "5:out_of_stock", "7:restock"]),
        ("O B O B O O", 1, 3, ["1:restock"]),
    ],
)
def test_confirm_and_rearm_counts(
    sequence: str, confirm: int, rearm: int, expected: list[str]
) -> None:
    settings = DebounceSettings(confirm=confirm, rearm=rearm, cooldown=timedelta(0))
    assert run(sequence, settings)[0] == expected


@pytest.mark.parametrize(
    ("sequence", "watch", "expected"),
    [
        ("B B", watch_with(notify_on_first=True), ["1:restock"]),
        ("B O B B", watch_with(notify_on_first=True), ["3:restock"]),
        ("U B B", watch_with(notify_on_first=True), ["2:restock"]),
        ("O B B", watch_with(notify_on_first=True), ["2:restock"]),
        (
            "O P P",
            make_watch(conditions=WatchConditions(buyable=PREORDER_TOO)),
            ["2:preorder_open"],
        ),
        # the confirming observation decides the kind: it says what can be bought now
        ("O P B B", make_watch(conditions=WatchConditions(buyable=PREORDER_TOO)), ["2:restock"]),
        (
            "O B P P",
            make_watch(conditions=WatchConditions(buyable=PREORDER_TOO)),
            ["2:preorder_open"],
        ),
        ("O K K", make_watch(conditions=WatchConditions(buyable=SHIPPABLE)), ["2:restock"]),
        ("O B:7000 B:7000", make_watch(conditions=WatchConditions(max_price=6000)), []),
        (
            "B:7000 B:7000 B:5800 B:5800",
            make_watch(conditions=WatchConditions(max_price=6000)),
            ["3:restock"],
        ),
        ("O B B O O B B", watch_with(once=True), ["2:restock"]),
        ("B B O O B B", watch_with(once=True, notify_on_first=True), ["1:restock"]),
    ],
)
def test_watch_options(sequence: str, watch: Watch, expected: list[str]) -> None:
    assert run(sequence, watch=watch)[0] == expected


def test_once_watch_is_done_after_its_first_notification() -> None:
    _, decisions = run("O B B O O B B", watch=watch_with(once=True))
    assert decisions[2].state.phase is Phase.DONE
    assert decisions[2].state.fired_once
    assert all(d.state.phase is Phase.DONE for d in decisions[2:])


def test_restock_waits_for_the_cooldown_and_fires_when_it_has_passed() -> None:
    settings = DebounceSettings(confirm=2, rearm=2, cooldown=timedelta(minutes=10))
    # Restock at minute 2, gone at 4, back and confirmed at 6 (inside the cooldown): held back
    # until minute 12, the first buyable observation ten minutes after the last restock.
    fired, decisions = run("O B B O O B B B B B B B B B", settings)
    assert fired == ["2:restock", "4:out_of_stock", "12:restock"]
    assert decisions[8].state.phase is Phase.CONFIRMING
    assert not decisions[8].recheck_now  # confirmed already: no point re-checking at once


def test_held_back_restock_is_dropped_when_it_sells_out_inside_the_cooldown() -> None:
    settings = DebounceSettings(confirm=2, rearm=2, cooldown=timedelta(minutes=10))
    fired, _ = run("O B B O O B B O O O O O O O", settings)
    assert fired == ["2:restock", "4:out_of_stock"]


@pytest.mark.parametrize(
    ("sequence", "cooldown", "expected"),
    [
        ("O B:5000 B:5000 B:4800 B:4800", timedelta(0), ["2:restock", "4:price_drop"]),
        # one check at a lower price is no news: a stale page may show an old price
        ("O B:5000 B:5000 B:4800", timedelta(0), ["2:restock"]),
        ("O B:5000 B:5000 B:4800 B:5000 B:4800 B:5000", timedelta(0), ["2:restock"]),
        ("O B:5000 B:5000 B:4800 U B:4800", timedelta(0), ["2:restock", "5:price_drop"]),
        ("O B:5000 B:5000 B:5200 B:5000", timedelta(0), ["2:restock"]),
        ("O B B B:4800 B:4800", timedelta(0), ["2:restock"]),
        ("O B:5000 B:5000 B B:5000", timedelta(0), ["2:restock"]),
        # a drop inside the cooldown waits; a later observation still below the told price fires
        (
            "O B:5000 B:5000 B:4800 B:4800 B:4800",
            timedelta(minutes=2),
            ["2:restock", "4:price_drop"],
        ),
        # compared with the price subscribers last heard, not the last observed one
        (
            "O B:5000 B:5000 B:4800 B:4600 B:4600 B:4600",
            timedelta(minutes=2),
            ["2:restock", "4:price_drop"],
        ),
        (
            "O B:5000 B:5000 B:4800 B:4500 B:4000 B:4000",
            timedelta(0),
            ["2:restock", "4:price_drop", "6:price_drop"],
        ),
        # no price drop while nobody was told the product is buyable
        ("B:5000 B:5000 B:4000 B:4000", timedelta(0), []),
        # a drop during a not-yet-confirmed gone spell still counts: the product is buyable
        ("O B:5000 B:5000 O B:4000 B:4000", timedelta(0), ["2:restock", "5:price_drop"]),
        # a not-buyable observation breaks the run of lower prices
        ("O B:5000 B:5000 B:4000 O B:4000", timedelta(0), ["2:restock"]),
    ],
)
def test_price_drop(sequence: str, cooldown: timedelta, expected: list[str]) -> None:
    settings = DebounceSettings(confirm=2, rearm=2, cooldown=cooldown)
    assert run(sequence, settings)[0] == expected


def test_price_drop_event_carries_the_previous_price() -> None:
    _, decisions = run("O B:5000 B:5000 B:4800 B:4700")
    (event,) = decisions[4].events
    assert (event.kind, event.price, event.previous_price) == (EventKind.PRICE_DROP, 4700, 5000)
    assert decisions[4].state.notified_price == 4700


def test_a_lower_price_is_confirmed_at_once() -> None:
    settings = DebounceSettings(confirm=3, rearm=2, cooldown=timedelta(0))
    fired, decisions = run("O B:5000 B:5000 B:5000 B:4800 B:4800 B:4800 B:4800", settings)
    assert fired == ["3:restock", "6:price_drop"]
    assert [d.recheck_now for d in decisions] == [
        False, True, True, False, True, True, False, False,
    ]  # fmt: skip


def test_recheck_now_while_confirming_only() -> None:
    settings = DebounceSettings(confirm=3, rearm=2, cooldown=timedelta(0))
    _, decisions = run("O B B B B O", settings)
    assert [d.recheck_now for d in decisions] == [False, True, True, False, False, False]


def test_unknown_while_confirming_asks_no_recheck_and_changes_nothing() -> None:
    detector = Detector(NO_COOLDOWN)
    state = WatchState(phase=Phase.CONFIRMING, buyable_streak=1, last_buyable=True)
    decision = detector.observe(make_watch(), state, obs("U"), T0)
    assert decision == Decision(state)


def test_flap_suppressed_is_reported() -> None:
    _, decisions = run("O B O B B")
    assert [d.flap_suppressed for d in decisions] == [False, False, True, False, False]


def test_event_is_built_from_watch_and_observation() -> None:
    _, decisions = run("O B:4980 B:4980")
    (event,) = decisions[2].events
    assert event.kind is EventKind.RESTOCK
    assert event.watch_key == "w1" and event.watch_name == "Widget"
    assert event.state is Availability.IN_STOCK
    assert event.observed_at == T0 + 2 * MINUTE
    assert (event.url, event.store, event.title, event.price) == (
        "https://shop.example/item/1",
        "generic",
        "Widget",
        4980,
    )


def test_out_of_stock_event_reports_the_observed_state() -> None:
    _, decisions = run("O B B O D")
    (event,) = decisions[4].events
    assert (event.kind, event.state) == (EventKind.OUT_OF_STOCK, Availability.DISCONTINUED)


def jan_observation(*offers: Offer) -> Observation:
    return Observation(
        state=Availability.IN_STOCK if offers else Availability.OUT_OF_STOCK,
        reason="search",
        offers=offers,
        jan="4901234567894",
    )


def offer(store: str, state: Availability, price: int, official: bool = True) -> Offer:
    return Offer(
        store=store,
        url=f"https://{store}.example/{price}",
        state=state,
        price=price,
        seller=f"{store} shop",
        official=official,
    )


def test_jan_offers_event_names_the_cheapest_matching_offer_buyable_now() -> None:
    watch = Watch(
        key="j1",
        name="Card box",
        jan="4901234567894",
        conditions=WatchConditions(max_price=6000, buyable=PREORDER_TOO),
    )
    offers = (
        offer("rakuten", Availability.IN_STOCK, 9800),  # over max_price
        offer("yahoo_shopping", Availability.PREORDER, 5000),
        offer("amazon_jp", Availability.IN_STOCK, 5500),
    )
    detector = Detector(NO_COOLDOWN)
    state = detector.observe(watch, WatchState(), jan_observation(), T0).state
    state = detector.observe(watch, state, jan_observation(*offers), T0 + MINUTE).state
    decision = detector.observe(watch, state, jan_observation(*offers), T0 + 2 * MINUTE)
    (event,) = decision.events
    assert event.kind is EventKind.RESTOCK
    assert (event.store, event.price, event.url, event.seller) == (
        "amazon_jp",
        5500,
        "https://amazon_jp.example/5500",
        "amazon_jp shop",
    )


def test_jan_offers_only_preorders_open_a_preorder() -> None:
    watch = Watch(
        key="j1", name="Box", jan="4901234567894", conditions=WatchConditions(buyable=PREORDER_TOO)
    )
    preorder = jan_observation(offer("rakuten", Availability.PREORDER, 5000))
    detector = Detector(DebounceSettings(confirm=1, rearm=1, cooldown=timedelta(0)))
    state = detector.observe(watch, WatchState(), jan_observation(), T0).state
    (event,) = detector.observe(watch, state, preorder, T0 + MINUTE).events
    assert (event.kind, event.store) == (EventKind.PREORDER_OPEN, "rakuten")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Detector().observe(make_watch(), WatchState(), obs("O"), datetime(2025, 1, 1))


@pytest.mark.parametrize(
    "settings",
    [
        {"confirm": 0},
        {"rearm": 0},
        {"cooldown": timedelta(seconds=-1)},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DebounceSettings(**settings)


# --- serialisation -------------------------------------------------------------------------


def test_state_round_trips_through_json_text() -> None:
    state = WatchState(
        phase=Phase.REARMING,
        not_buyable_streak=1,
        announced=True,
        last_buyable=False,
        last_price=None,
        notified_price=4980,
        last_event_at=T0,
        last_restock_at=T0.astimezone(UTC),
        fired_once=False,
    )
    text = json.dumps(state.to_json())
    assert WatchState.from_json(json.loads(text)) == state
    assert json.loads(text)["version"] == STATE_VERSION


def test_state_keeps_its_wall_clock_offset() -> None:
    state = WatchState(last_event_at=T0)
    restored = WatchState.from_json(state.to_json()).last_event_at
    assert restored is not None and restored.utcoffset() == timedelta(hours=9)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "baseline",
        [],
        {},
        {"version": STATE_VERSION + 1, "phase": "armed"},
        {"version": "1", "phase": "armed"},
        {"version": STATE_VERSION, "phase": "exploded"},
        {"version": STATE_VERSION, "buyable_streak": -1},
        {"version": STATE_VERSION, "buyable_streak": "2"},
        {"version": STATE_VERSION, "buyable_streak": True},
        {"version": STATE_VERSION, "announced": "yes"},
        {"version": STATE_VERSION, "last_price": 49.8},
        {"version": STATE_VERSION, "last_event_at": "yesterday"},
        {"version": STATE_VERSION, "last_event_at": "2025-03-01T02:00:00"},  # naive
        {"version": STATE_VERSION, "last_restock_at": 1740762000},
    ],
)
def test_unreadable_state_gives_a_fresh_one(data: object) -> None:
    assert WatchState.from_json(data) == WatchState()


def test_state_tolerates_added_keys_and_missing_ones() -> None:
    data = {"version": STATE_VERSION, "phase": "armed", "added_later": [1, 2]}
    assert WatchState.from_json(data) == WatchState(phase=Phase.ARMED)


def test_fresh_state_after_corruption_is_a_baseline_again() -> None:
    # Corrupt state must never make the watch cry wolf: the next observation is a baseline.
    state = WatchState.from_json({"version": STATE_VERSION, "phase": 3})
    decision = Detector(DebounceSettings(confirm=1)).observe(make_watch(), state, obs("B"), T0)
    assert decision.events == ()
