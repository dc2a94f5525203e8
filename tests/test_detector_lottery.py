"""Lottery sales in the detector: `lottery_open` rows, written as observation sequences."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.core.detector import DebounceSettings, Detector, LotteryPhase, WatchState
from watcher.core.model import (
    DEFAULT_EVENTS,
    Availability,
    EventKind,
    Observation,
    Offer,
    Watch,
    WatchConditions,
)

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
MINUTE = timedelta(minutes=1)
NO_COOLDOWN = DebounceSettings(confirm=2, rearm=2, cooldown=timedelta(0))
DEADLINE = datetime(2026, 6, 8, 23, 59, tzinfo=ZoneInfo("Asia/Tokyo"))
LETTERS = {
    "L": Availability.LOTTERY,
    "B": Availability.IN_STOCK,
    "O": Availability.OUT_OF_STOCK,
    "D": Availability.DISCONTINUED,
    "U": Availability.UNKNOWN,
}
WITH_LOTTERY = DEFAULT_EVENTS | {EventKind.LOTTERY_OPEN}
RESTOCK_AND_LOTTERY = frozenset({EventKind.RESTOCK, EventKind.LOTTERY_OPEN})


def obs(letter: str) -> Observation:
    state = LETTERS[letter]
    deadline = DEADLINE if state is Availability.LOTTERY else None
    return Observation(
        state=state,
        reason=f"test:{letter}",
        price=39980,
        url="https://shop.example/console",
        store="generic",
        title="Game console",
        lottery_deadline=deadline,
    )


def watch(events: frozenset[EventKind] = WITH_LOTTERY, **changes: object) -> Watch:
    base = Watch(
        key="console",
        name="Console",
        url="https://shop.example/console",
        conditions=WatchConditions(events=events),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def run(
    sequence: str, w: Watch, settings: DebounceSettings = NO_COOLDOWN
) -> tuple[list[str], list[WatchState], list[bool]]:
    detector = Detector(settings)
    state = WatchState()
    fired: list[str] = []
    states: list[WatchState] = []
    rechecks: list[bool] = []
    for index, letter in enumerate(sequence.split()):
        decision = detector.observe(w, state, obs(letter), T0 + index * MINUTE)
        state = decision.state
        states.append(state)
        rechecks.append(decision.recheck_now)
        fired += [f"{index}:{event.kind.value}" for event in decision.events]
    return fired, states, rechecks


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ("O L L", ["2:lottery_open"]),  # confirmed like a restock
        ("O L", []),  # one reading is not enough
        ("O L O L O", []),  # flapping never confirms
        ("O L L L L", ["2:lottery_open"]),  # once per lottery
        ("O L L O O L L", ["2:lottery_open", "6:lottery_open"]),  # re-armed when it left
        ("O L L O L L", ["2:lottery_open"]),  # one other reading does not re-arm
        ("O L U L", ["3:lottery_open"]),  # unknown is no evidence either way
        ("U U U", []),
        ("L L L", []),  # already a lottery at the first check: silent
        ("L O O L L", ["4:lottery_open"]),
        ("O L U U U O U L", []),  # unknown never confirms, never re-arms
        ("O L L B B", ["2:lottery_open", "4:restock"]),  # the sale that follows is a restock
        ("O L L D D L L", ["2:lottery_open", "6:lottery_open"]),
    ],
)
def test_lottery_open_rows(sequence: str, expected: list[str]) -> None:
    assert run(sequence, watch())[0] == expected


@pytest.mark.parametrize(
    ("sequence", "w", "expected"),
    [
        ("O L L", watch(events=DEFAULT_EVENTS), []),  # not asked for: today's behaviour
        ("O L L B B", watch(events=DEFAULT_EVENTS), ["4:restock"]),
        ("L L", watch(notify_on_first=True), ["1:lottery_open"]),
        # only what the watch asks for is sent
        ("O L L B B O O", watch(events=RESTOCK_AND_LOTTERY), ["2:lottery_open", "4:restock"]),
        ("O B B O O", watch(events=frozenset({EventKind.LOTTERY_OPEN})), []),
        # a lottery does not end a `once` watch that waits for a restock ...
        ("O L L O O B B L L", watch(once=True), ["2:lottery_open", "6:restock"]),
        # ... but ends one that only asked for lotteries
        (
            "O L L O O L L",
            watch(events=frozenset({EventKind.LOTTERY_OPEN}), once=True),
            ["2:lottery_open"],
        ),
    ],
)
def test_lottery_watch_options(sequence: str, w: Watch, expected: list[str]) -> None:
    assert run(sequence, w)[0] == expected


def test_a_restock_that_is_not_sent_makes_its_end_no_news() -> None:
    lottery_only = watch(events=frozenset({EventKind.LOTTERY_OPEN, EventKind.OUT_OF_STOCK}))
    fired, states, _ = run("O B B O O", lottery_only)
    assert fired == []
    assert states[2].announced is False


@pytest.mark.parametrize(
    ("sequence", "confirm", "rearm", "expected"),
    [
        ("O L", 1, 1, ["1:lottery_open"]),
        ("O L O L", 1, 1, ["1:lottery_open", "3:lottery_open"]),
        ("O L L", 3, 2, []),
        ("O L L L", 3, 2, ["3:lottery_open"]),
        ("O L L O O L L", 2, 3, ["2:lottery_open"]),
        ("O L L O O O L L", 2, 3, ["2:lottery_open", "7:lottery_open"]),
    ],
)
def test_lottery_confirm_and_rearm_counts(
    sequence: str, confirm: int, rearm: int, expected: list[str]
) -> None:
    settings = DebounceSettings(confirm=confirm, rearm=rearm, cooldown=timedelta(0))
    assert run(sequence, watch(), settings)[0] == expected


def test_lottery_respects_the_cooldown() -> None:
    settings = DebounceSettings(confirm=2, rearm=1, cooldown=timedelta(minutes=5))
    # 2: first lottery; 3 re-arms; 4-5 confirm again inside the cooldown: held until minute 7.
    fired, _, _ = run("O L L O L L L L L", watch(), settings)
    assert fired == ["2:lottery_open", "7:lottery_open"]


def test_confirming_a_lottery_asks_for_a_recheck_at_once() -> None:
    _, states, rechecks = run("O L L", watch())
    assert [s.lottery for s in states] == [
        LotteryPhase.ARMED,
        LotteryPhase.CONFIRMING,
        LotteryPhase.OPEN,
    ]
    assert rechecks == [False, True, False]


def test_lottery_event_carries_the_deadline_and_the_state() -> None:
    detector = Detector(NO_COOLDOWN)
    state = WatchState()
    events = []
    for index, letter in enumerate(["O", "L", "L"]):
        decision = detector.observe(watch(), state, obs(letter), T0 + index * MINUTE)
        state, events = decision.state, list(decision.events)
    (event,) = events
    assert event.kind is EventKind.LOTTERY_OPEN
    assert event.state is Availability.LOTTERY
    assert event.lottery_deadline == DEADLINE
    assert event.price == 39980
    assert event.observed_at == T0 + 2 * MINUTE


def test_a_naive_deadline_is_left_out() -> None:
    naive = replace(obs("L"), lottery_deadline=datetime(2026, 6, 8, 23, 59))
    detector = Detector(DebounceSettings(confirm=1, rearm=1, cooldown=timedelta(0)))
    armed = detector.observe(watch(), WatchState(), obs("O"), T0).state
    (event,) = detector.observe(watch(), armed, naive, T0 + MINUTE).events
    assert event.lottery_deadline is None


def test_jan_lottery_offer_counts_only_from_the_watchs_stores() -> None:
    def offers(store: str) -> Observation:
        lottery = Offer(store=store, url=f"https://{store}.example/x", state=Availability.LOTTERY)
        sold = Offer(store="rakuten", url="https://r.example/x", state=Availability.OUT_OF_STOCK)
        return Observation(
            state=Availability.LOTTERY, reason="jan", offers=(lottery, sold), jan="4521329400006"
        )

    conditions = WatchConditions(events=WITH_LOTTERY, stores=frozenset({"rakuten"}))
    w = Watch(key="j", name="J", jan="4521329400006", conditions=conditions)
    detector = Detector(DebounceSettings(confirm=1, rearm=1, cooldown=timedelta(0)))
    state = detector.observe(w, WatchState(), offers("yahoo_shopping"), T0).state
    assert state.lottery is LotteryPhase.ARMED  # another store's lottery is not this watch's
    decision = detector.observe(w, state, offers("rakuten"), T0 + MINUTE)
    assert [e.kind for e in decision.events] == [EventKind.LOTTERY_OPEN]
    assert decision.events[0].url == "https://rakuten.example/x"


def test_lottery_state_round_trips_and_old_states_read_as_baseline() -> None:
    _, states, _ = run("O L", watch())
    confirming = states[-1]
    assert WatchState.from_json(confirming.to_json()) == confirming
    old = WatchState().to_json()
    assert "lottery" not in old  # watches that do not follow lotteries keep their texts
    assert WatchState.from_json(old).lottery is LotteryPhase.BASELINE
    told = run("O L L", watch())[1][-1]
    assert told.last_lottery_at == T0 + 2 * MINUTE
    assert WatchState.from_json(told.to_json()) == told


def test_watches_that_do_not_ask_never_leave_the_lottery_baseline() -> None:
    _, states, _ = run("O L L O O L L", watch(events=DEFAULT_EVENTS))
    assert all(s.lottery is LotteryPhase.BASELINE for s in states)


# --- properties over any sequence ------------------------------------------------------------

KNOWN = [s for s in Availability if s is not Availability.UNKNOWN]


@st.composite
def runs(draw: st.DrawFn) -> list[Availability]:
    """Runs of one state with unknowns sprinkled between (so confirm counts are reached)."""
    seq: list[Availability] = []
    for _ in range(draw(st.integers(0, 12))):
        state = draw(st.sampled_from(KNOWN))
        for _ in range(draw(st.integers(1, 4))):
            seq += [Availability.UNKNOWN] * draw(st.integers(0, 1))
            seq.append(state)
    return seq


def _feed(
    seq: list[Availability], settings: DebounceSettings, w: Watch
) -> list[tuple[int, EventKind]]:
    detector = Detector(settings)
    state = WatchState()
    fired: list[tuple[int, EventKind]] = []
    for index, availability in enumerate(seq):
        observation = replace(obs("O"), state=availability)
        decision = detector.observe(w, state, observation, T0 + index * MINUTE)
        assert WatchState.from_json(decision.state.to_json()) == decision.state
        state = decision.state
        fired += [(index, event.kind) for event in decision.events]
    return fired


@settings(max_examples=200, deadline=None)
@given(
    runs(),
    st.integers(1, 3),
    st.integers(1, 3),
    st.booleans(),
)
def test_lottery_open_fires_only_on_a_confirmed_lottery_after_a_confirmed_absence(
    seq: list[Availability], confirm: int, rearm: int, notify_on_first: bool
) -> None:
    settings_ = DebounceSettings(confirm=confirm, rearm=rearm, cooldown=timedelta(0))
    fired = _feed(seq, settings_, watch(notify_on_first=notify_on_first))
    lotteries = [index for index, kind in fired if kind is EventKind.LOTTERY_OPEN]
    known = [(i, s) for i, s in enumerate(seq) if s is not Availability.UNKNOWN]
    for index in lotteries:
        assert seq[index] is Availability.LOTTERY  # never from unknown or another state
        before = [s for i, s in known if i <= index]
        assert before[-confirm:] == [Availability.LOTTERY] * confirm  # confirmed
    for first, second in itertools.pairwise(lotteries):
        between = [s for i, s in known if first < i < second]
        runs_between = itertools.groupby(between, lambda s: s is Availability.LOTTERY)
        gaps = [len(list(run)) for is_lottery, run in runs_between if not is_lottery]
        assert any(gap >= rearm for gap in gaps)  # re-armed by a confirmed absence in between


@settings(max_examples=100, deadline=None)
@given(runs())
def test_a_watch_that_does_not_ask_never_hears_of_lotteries(seq: list[Availability]) -> None:
    with_it = _feed(seq, NO_COOLDOWN, watch())
    without = _feed(seq, NO_COOLDOWN, watch(events=DEFAULT_EVENTS))
    assert all(kind is not EventKind.LOTTERY_OPEN for _, kind in without)
    # asking for lotteries changes nothing about the other events
    assert [e for e in with_it if e[1] is not EventKind.LOTTERY_OPEN] == without
