"""Properties the detector keeps for every sequence of observations, found by hypothesis."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.core.detector import DebounceSettings, Detector, WatchState
from watcher.core.model import Availability, Event, EventKind, Observation, Watch, WatchConditions

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
BUYABLE = frozenset({Availability.IN_STOCK, Availability.PREORDER})
OPENINGS = {EventKind.RESTOCK, EventKind.PREORDER_OPEN}
KNOWN_STATES = [s for s in Availability if s is not Availability.UNKNOWN]

# A timed observation: (state, price, seconds since the previous observation).
Timed = tuple[Availability, int | None, int]

debounce = st.builds(
    DebounceSettings,
    confirm=st.integers(1, 4),
    rearm=st.integers(1, 4),
    cooldown=st.sampled_from([timedelta(0), timedelta(minutes=1), timedelta(minutes=10)]),
)
watches = st.builds(
    Watch,
    key=st.just("w"),
    name=st.just("Widget"),
    url=st.just("https://shop.example/item"),
    conditions=st.just(WatchConditions(buyable=BUYABLE)),
    once=st.booleans(),
    notify_on_first=st.booleans(),
)
prices = st.one_of(st.none(), st.integers(1000, 1010))
gaps = st.integers(0, 400)
unknown = st.tuples(st.just(Availability.UNKNOWN), prices, gaps)


@st.composite
def timed_runs(draw: st.DrawFn) -> list[Timed]:
    """Runs of one state (so confirm and rearm counts are reached), unknowns sprinkled between."""
    timed: list[Timed] = []
    for _ in range(draw(st.integers(0, 14))):
        state = draw(st.sampled_from(KNOWN_STATES))
        for _ in range(draw(st.integers(1, 5))):
            timed += draw(st.lists(unknown, max_size=1))
            timed.append((state, draw(prices), draw(gaps)))
    return timed


timed_sequences = timed_runs()


def feed(
    detector: Detector, watch: Watch, sequence: Sequence[tuple[Availability, int | None, datetime]]
) -> tuple[list[tuple[int, Event]], list[WatchState]]:
    """Events (with the index of the observation that fired them) and every state passed."""
    state = WatchState()
    events: list[tuple[int, Event]] = []
    states = [state]
    for index, (availability, price, at) in enumerate(sequence):
        observation = Observation(state=availability, reason="prop", price=price)
        decision = detector.observe(watch, state, observation, at)
        state = decision.state
        states.append(state)
        events += [(index, event) for event in decision.events]
    return events, states


def clocked(timed: Sequence[Timed]) -> list[tuple[Availability, int | None, datetime]]:
    at = T0
    out = []
    for availability, price, gap in timed:
        at += timedelta(seconds=gap)
        out.append((availability, price, at))
    return out


def is_buyable(availability: Availability) -> bool:
    return availability in BUYABLE


@given(debounce, watches, st.lists(st.tuples(prices, gaps), max_size=40))
def test_only_unknown_never_fires(
    debounce: DebounceSettings, watch: Watch, pairs: list[tuple[int | None, int]]
) -> None:
    sequence = clocked([(Availability.UNKNOWN, price, gap) for price, gap in pairs])
    events, states = feed(Detector(debounce), watch, sequence)
    assert events == []
    assert all(state == WatchState() for state in states)


@settings(max_examples=400)
@given(debounce, watches, timed_sequences)
def test_two_openings_always_have_a_confirmed_gone_spell_between(
    debounce: DebounceSettings, watch: Watch, timed: list[Timed]
) -> None:
    sequence = clocked(timed)
    events, _ = feed(Detector(debounce), watch, sequence)
    openings = [index for index, event in events if event.kind in OPENINGS]
    for first, second in itertools.pairwise(openings):
        between = [a for a, _, _ in sequence[first + 1 : second] if a is not Availability.UNKNOWN]
        assert longest_not_buyable_run(between) >= debounce.rearm


def longest_not_buyable_run(states: list[Availability]) -> int:
    longest = run = 0
    for availability in states:
        run = 0 if is_buyable(availability) else run + 1
        longest = max(longest, run)
    return longest


buyable_obs = st.tuples(st.sampled_from(sorted(BUYABLE)), prices, gaps)
gone_obs = st.tuples(
    st.sampled_from([Availability.OUT_OF_STOCK, Availability.DISCONTINUED]), prices, gaps
)


@st.composite
def flappy(draw: st.DrawFn, confirm: int) -> list[Timed]:
    """Buyable spells all shorter than `confirm`, with unknowns sprinkled anywhere."""
    known: list[Timed] = []
    for _ in range(draw(st.integers(0, 12))):
        known += draw(st.lists(buyable_obs, min_size=1, max_size=confirm - 1))
        known += draw(st.lists(gone_obs, min_size=1, max_size=4))
    timed: list[Timed] = []
    for entry in known:
        timed += draw(st.lists(unknown, max_size=2))
        timed.append(entry)
    return timed


@given(st.data(), watches, st.integers(2, 5))
def test_flaps_shorter_than_confirm_never_fire(
    data: st.DataObject, watch: Watch, confirm: int
) -> None:
    timed = data.draw(flappy(confirm))
    debounce = DebounceSettings(confirm=confirm, rearm=1, cooldown=timedelta(0))
    events, _ = feed(Detector(debounce), watch, clocked(timed))
    assert events == []


@given(debounce, watches, timed_sequences)
def test_unknowns_anywhere_change_nothing(
    debounce: DebounceSettings, watch: Watch, timed: list[Timed]
) -> None:
    # Each observation keeps its own time, so removing the unknowns moves no clock.
    with_unknowns = clocked(timed)
    without = [entry for entry in with_unknowns if entry[0] is not Availability.UNKNOWN]
    detector = Detector(debounce)
    fired_with = [event for _, event in feed(detector, watch, with_unknowns)[0]]
    fired_without = [event for _, event in feed(detector, watch, without)[0]]
    assert fired_with == fired_without


@given(debounce, watches, timed_sequences)
def test_once_watch_never_notifies_twice(
    debounce: DebounceSettings, watch: Watch, timed: list[Timed]
) -> None:
    once = Watch(**{**watch_fields(watch), "once": True})
    events, _ = feed(Detector(debounce), once, clocked(timed))
    assert len(events) <= 1


def watch_fields(watch: Watch) -> dict[str, object]:
    return {name: getattr(watch, name) for name in Watch.__dataclass_fields__}


@given(debounce, watches, timed_sequences)
def test_every_state_round_trips_through_json(
    debounce: DebounceSettings, watch: Watch, timed: list[Timed]
) -> None:
    _, states = feed(Detector(debounce), watch, clocked(timed))
    for state in states:
        assert WatchState.from_json(json.loads(json.dumps(state.to_json()))) == state


@given(debounce, watches, timed_sequences)
def test_out_of_stock_only_follows_an_announced_opening(
    debounce: DebounceSettings, watch: Watch, timed: list[Timed]
) -> None:
    events, _ = feed(Detector(debounce), watch, clocked(timed))
    kinds = [event.kind for _, event in events if event.kind is not EventKind.PRICE_DROP]
    for previous, kind in itertools.pairwise([None, *kinds]):
        if kind is EventKind.OUT_OF_STOCK:
            assert previous in OPENINGS
        else:
            assert previous in (None, EventKind.OUT_OF_STOCK)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=20,
)
state_keys = st.sampled_from(list(WatchState().to_json()))


@given(st.dictionaries(state_keys, json_values) | json_values)
def test_garbage_never_crashes_the_reader(data: object) -> None:
    state = WatchState.from_json(data)
    assert WatchState.from_json(state.to_json()) == state


def test_the_harness_sees_repeated_restocks() -> None:
    # Guards the properties above against passing on nothing: this sequence fires twice.
    states = ["O", "B", "B", "O", "O", "B", "B"]
    letters = {"O": Availability.OUT_OF_STOCK, "B": Availability.IN_STOCK}
    timed = [(letters[s], None, 60) for s in states]
    watch = Watch(key="w", name="Widget", conditions=WatchConditions(buyable=BUYABLE))
    events, _ = feed(Detector(DebounceSettings(cooldown=timedelta(0))), watch, clocked(timed))
    assert [e.kind for _, e in events] == [
        EventKind.RESTOCK,
        EventKind.OUT_OF_STOCK,
        EventKind.RESTOCK,
    ]


@given(debounce, watches, timed_sequences)
def test_a_price_drop_follows_confirm_buyable_observations_below_the_told_price(
    debounce: DebounceSettings, watch: Watch, timed: list[Timed]
) -> None:
    """A single cheaper check (a stale page) never fires: the drop is seen `confirm` times in
    a row (unknowns aside), each buyable and below the price the previous event told."""
    sequence = clocked(timed)
    events, _ = feed(Detector(debounce), watch, sequence)
    for index, event in events:
        if event.kind is not EventKind.PRICE_DROP:
            continue
        assert event.previous_price is not None and event.price is not None
        assert event.price < event.previous_price
        seen = [s for s in sequence[: index + 1] if s[0] is not Availability.UNKNOWN]
        for availability, price, _ in seen[-debounce.confirm :]:
            assert availability in BUYABLE
            assert price is not None and price < event.previous_price
