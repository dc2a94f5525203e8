"""The detector: a watch's observations in, debounced events out, as a pure state machine.

Shops show ghost stock (a cached page, a stock count shared across malls) that is gone a check
later, while a real restock may sell out within minutes. So a restock fires only after `confirm`
consecutive buyable observations (the scheduler re-checks at once while confirming), and a watch
fires again only after the product was confirmed gone: `rearm` consecutive not-buyable
observations. `unknown` observations are no evidence of anything: they leave the state untouched.

    BASELINE ──not buyable──▶ ARMED ──buyable──▶ CONFIRMING ──confirm reached──▶ BUYABLE
       │                        ▲  ◀──not buyable──┘  (a flap)       (restock / preorder_open)
       │                        │                                          │      ▲
       │                        └──── rearm reached (out_of_stock) ── REARMING ◀──┘ not buyable
       ├──buyable, notify_on_first──▶ CONFIRMING
       └──buyable, otherwise─────────▶ BUYABLE (silent: nobody was told, so its end is no news)
    a restock or preorder_open on a `once` watch ──▶ DONE (no more events, ever)

A watch that asks for `lottery_open` in its `events` also follows a second, smaller machine for
lottery sales (抽選販売), debounced the same way: `confirm` lottery readings in a row fire
`lottery_open` (not from the baseline unless `notify_on_first`), and `rearm` readings of any other
known state re-arm it. `unknown` moves neither. Events a watch does not ask for are not sent;
when its restock or preorder_open is not sent, the spell's end and price drops are no news either.

A restock fires only on the step CONFIRMING → BUYABLE, CONFIRMING is entered only from ARMED (or
the baseline), and ARMED only through REARMING's `rearm` not-buyable observations: two restocks
always have a confirmed not-buyable spell between them. A price drop (for subscribers who heard
of the current buyable spell) is confirmed the same way: `confirm` buyable observations in a row
below the price they last heard, the re-checks again at once. `cooldown` is the least time
between two restocks (a confirmed restock inside it waits, still buyable, until it has passed)
and between two price drops.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from watcher.core.model import (
    Availability,
    Event,
    EventKind,
    Observation,
    Offer,
    Watch,
    WatchConditions,
)

STATE_VERSION = 1
_SHIPPABLE = frozenset({Availability.IN_STOCK, Availability.BACKORDER})
_OPENING_KINDS = frozenset({EventKind.RESTOCK, EventKind.PREORDER_OPEN})


@dataclass(frozen=True, slots=True)
class DebounceSettings:
    """The watchlist's `debounce` section."""

    confirm: int = 2
    rearm: int = 2
    cooldown: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.confirm < 1 or self.rearm < 1:
            raise ValueError("debounce confirm and rearm must be at least 1")
        if self.cooldown < timedelta(0):
            raise ValueError("debounce cooldown must not be negative")


class Phase(enum.StrEnum):
    BASELINE = "baseline"  # nothing but `unknown` seen yet
    ARMED = "armed"  # confirmed not buyable: the next buyable spell is news
    CONFIRMING = "confirming"  # buyable, counting confirmations before telling anyone
    BUYABLE = "buyable"  # buyable and told (or silently buyable since the baseline)
    REARMING = "rearming"  # not buyable after BUYABLE, counting towards a confirmed gone
    DONE = "done"  # a `once` watch that has notified


class LotteryPhase(enum.StrEnum):
    """Where a watch that asks for `lottery_open` stands towards lottery sales."""

    BASELINE = "baseline"  # no known state seen yet
    ARMED = "armed"  # confirmed not in a lottery: the next one is news
    CONFIRMING = "confirming"  # lottery readings counted before telling anyone
    OPEN = "open"  # a lottery is on (told, or silent since the baseline)
    CLOSING = "closing"  # other states after OPEN, counted towards re-arming


@dataclass(frozen=True, slots=True)
class WatchState:
    """One watch's detector state; the database stores `to_json()` as JSON text."""

    phase: Phase = Phase.BASELINE
    buyable_streak: int = 0  # confirmations so far while CONFIRMING
    not_buyable_streak: int = 0  # not-buyable observations so far while REARMING
    announced: bool = False  # subscribers were told about the current buyable spell
    last_buyable: bool | None = None  # verdict of the last non-unknown observation
    last_price: int | None = None  # best matching price of the last non-unknown observation
    notified_price: int | None = None  # the price subscribers last heard (price drops compare)
    last_event_at: datetime | None = None
    last_restock_at: datetime | None = None
    fired_once: bool = False
    drop_streak: int = 0  # buyable observations in a row below the price subscribers last heard
    lottery: LotteryPhase = LotteryPhase.BASELINE
    lottery_streak: int = 0  # lottery readings while CONFIRMING, other readings while CLOSING
    last_lottery_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "version": STATE_VERSION,
            "phase": self.phase.value,
            "buyable_streak": self.buyable_streak,
            "not_buyable_streak": self.not_buyable_streak,
            "announced": self.announced,
            "last_buyable": self.last_buyable,
            "last_price": self.last_price,
            "notified_price": self.notified_price,
            "last_event_at": _iso(self.last_event_at),
            "last_restock_at": _iso(self.last_restock_at),
            "fired_once": self.fired_once,
            "drop_streak": self.drop_streak,
        }
        if self.lottery is not LotteryPhase.BASELINE:  # only watches that follow lotteries
            data["lottery"] = self.lottery.value
            data["lottery_streak"] = self.lottery_streak
            data["last_lottery_at"] = _iso(self.last_lottery_at)
        return data

    @classmethod
    def from_json(cls, data: object) -> WatchState:
        """Read a stored state; an unknown version or a corrupt value gives a fresh state."""
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            return cls()
        try:
            return _parse_state(data)
        except (TypeError, ValueError):
            return cls()


@functools.lru_cache(maxsize=4096)
def state_from_text(text: str | None) -> WatchState:
    """A stored state's JSON text read back; None, bad JSON or a corrupt value: a fresh state.

    Cached: most watches on a product (and many across products) share one state text, and
    the result is frozen, so sharing it is safe.
    """
    if text is None:
        return WatchState()
    try:
        data = json.loads(text)
    except ValueError:
        return WatchState()
    return WatchState.from_json(data)


@dataclass(frozen=True, slots=True)
class Decision:
    """What one observation did to a watch."""

    state: WatchState
    events: tuple[Event, ...] = ()
    recheck_now: bool = False  # a confirming re-check is wanted at once, with cache-busting
    flap_suppressed: bool = False  # a buyable spell ended before it was confirmed


@dataclass(frozen=True, slots=True)
class _Reading:
    """An observation as this watch sees it: buyable or not, and the offer that would be news."""

    buyable: bool
    state: Availability
    price: int | None
    offer: Offer | None = None


@dataclass(frozen=True, slots=True)
class _Step:
    state: WatchState
    kinds: tuple[EventKind, ...] = ()
    previous_price: int | None = None
    flap: bool = False


@dataclass(frozen=True, slots=True)
class Detector:
    """Debounces one watch's observations into events (pure: the caller passes `now`)."""

    settings: DebounceSettings = field(default_factory=DebounceSettings)

    def observe(self, watch: Watch, state: WatchState, obs: Observation, now: datetime) -> Decision:
        _require_aware(now)
        if obs.state is Availability.UNKNOWN or state.phase is Phase.DONE:
            return Decision(state)
        reading = _read(watch.conditions, obs)
        if obs.partial and not reading.buyable:
            return Decision(state)  # a failed source may hold the offer: no evidence of absence
        step = self._wanted(watch, self._handler(state.phase)(watch, state, reading, now))
        new_state = replace(step.state, last_buyable=reading.buyable, last_price=reading.price)
        events = tuple(
            _event(kind, watch, obs, reading, now, step.previous_price) for kind in step.kinds
        )
        if EventKind.LOTTERY_OPEN in watch.conditions.events:
            new_state, lottery_event = self._lottery(watch, new_state, obs, now)
            events += lottery_event
        if watch.once and any(_finishes(e.kind, watch.conditions.events) for e in events):
            new_state = replace(new_state, phase=Phase.DONE, fired_once=True)
        return Decision(new_state, events, self._wants_recheck(new_state), step.flap)

    def _wanted(self, watch: Watch, step: _Step) -> _Step:
        """The step with only the events the watch asks for; an opening it does not send leaves
        its subscribers unaware of the spell (so its end and price drops are no news)."""
        wanted = watch.conditions.events
        kinds = tuple(kind for kind in step.kinds if kind in wanted)
        if kinds == step.kinds:
            return step
        state = step.state
        if any(kind in _OPENING_KINDS for kind in step.kinds if kind not in wanted):
            state = replace(state, announced=False)
        return replace(step, state=state, kinds=kinds)

    def _lottery(
        self, watch: Watch, state: WatchState, obs: Observation, now: datetime
    ) -> tuple[WatchState, tuple[Event, ...]]:
        """The lottery machine's step (see the module docstring)."""
        offer = _lottery_offer(watch.conditions, obs)
        # A JAN watch's lottery is an offer's (from its stores); a product page's is its state.
        if offer is not None or (watch.jan is None and obs.state is Availability.LOTTERY):
            return self._lottery_on(watch, state, obs, offer, now)
        return self._lottery_off(state), ()

    def _lottery_off(self, state: WatchState) -> WatchState:
        """Another known state: re-armed once `rearm` of them follow an open lottery."""
        if state.lottery in (LotteryPhase.OPEN, LotteryPhase.CLOSING):
            streak = state.lottery_streak + 1 if state.lottery is LotteryPhase.CLOSING else 1
            if streak < self.settings.rearm:
                return replace(state, lottery=LotteryPhase.CLOSING, lottery_streak=streak)
        return replace(state, lottery=LotteryPhase.ARMED, lottery_streak=0)

    def _lottery_on(
        self, watch: Watch, state: WatchState, obs: Observation, offer: Offer | None, now: datetime
    ) -> tuple[WatchState, tuple[Event, ...]]:
        """A lottery reading: counted towards `lottery_open` when armed, else it holds."""
        silent_start = state.lottery is LotteryPhase.BASELINE and not watch.notify_on_first
        if silent_start or state.lottery in (LotteryPhase.OPEN, LotteryPhase.CLOSING):
            return replace(state, lottery=LotteryPhase.OPEN, lottery_streak=0), ()
        streak = state.lottery_streak + 1
        confirming = replace(state, lottery=LotteryPhase.CONFIRMING, lottery_streak=streak)
        if streak < self.settings.confirm or not self._cooled(state.last_lottery_at, now):
            return confirming, ()
        told = replace(confirming, lottery=LotteryPhase.OPEN, lottery_streak=0, last_lottery_at=now)
        return told, (_lottery_event(watch, obs, offer, now),)

    def _handler(self, phase: Phase) -> Callable[[Watch, WatchState, _Reading, datetime], _Step]:
        handlers: dict[Phase, Callable[[Watch, WatchState, _Reading, datetime], _Step]] = {
            Phase.BASELINE: self._on_baseline,
            Phase.ARMED: self._on_armed,
            Phase.CONFIRMING: self._on_confirming,
            Phase.BUYABLE: self._on_buyable,
            Phase.REARMING: self._on_buyable,
        }
        return handlers[phase]

    def _on_baseline(self, watch: Watch, state: WatchState, r: _Reading, now: datetime) -> _Step:
        if not r.buyable:
            return _Step(_armed(state))
        if watch.notify_on_first:
            # Already buyable and the watch wants to hear it: confirm it like any restock.
            return self._confirm(state, r, now)
        return _Step(replace(state, phase=Phase.BUYABLE, announced=False))

    def _on_armed(self, watch: Watch, state: WatchState, r: _Reading, now: datetime) -> _Step:
        return self._confirm(state, r, now) if r.buyable else _Step(_armed(state))

    def _on_confirming(self, watch: Watch, state: WatchState, r: _Reading, now: datetime) -> _Step:
        if r.buyable:
            return self._confirm(state, r, now)
        return _Step(_armed(state), flap=True)

    def _on_buyable(self, watch: Watch, state: WatchState, r: _Reading, now: datetime) -> _Step:
        if not r.buyable:
            return self._count_gone(state)
        held = replace(state, phase=Phase.BUYABLE, not_buyable_streak=0)
        return self._price_drop(held, r, now)

    def _confirm(self, state: WatchState, r: _Reading, now: datetime) -> _Step:
        streak = state.buyable_streak + 1
        confirming = replace(state, phase=Phase.CONFIRMING, buyable_streak=streak)
        if streak < self.settings.confirm or not self._cooled(state.last_restock_at, now):
            return _Step(confirming)
        fired = replace(
            confirming,
            phase=Phase.BUYABLE,
            buyable_streak=0,
            announced=True,
            notified_price=r.price,
            last_event_at=now,
            last_restock_at=now,
        )
        return _Step(fired, (_opening_kind(r.state),))

    def _count_gone(self, state: WatchState) -> _Step:
        streak = state.not_buyable_streak + 1
        if streak < self.settings.rearm:
            gone = replace(state, phase=Phase.REARMING, not_buyable_streak=streak, drop_streak=0)
            return _Step(gone)
        kinds = (EventKind.OUT_OF_STOCK,) if state.announced else ()
        return _Step(_armed(state), kinds)

    def _price_drop(self, state: WatchState, r: _Reading, now: datetime) -> _Step:
        """A lower price is news once it is confirmed like a restock: `confirm` buyable
        observations in a row below the price subscribers last heard (a stale cached page may
        show an old price for one check)."""
        was = state.notified_price
        below = state.announced and r.price is not None and was is not None and r.price < was
        if not below:
            return _Step(replace(state, drop_streak=0) if state.drop_streak else state)
        streak = state.drop_streak + 1
        if streak < self.settings.confirm or not self._cooled(state.last_event_at, now):
            return _Step(replace(state, drop_streak=streak))
        told = replace(state, notified_price=r.price, last_event_at=now, drop_streak=0)
        return _Step(told, (EventKind.PRICE_DROP,), previous_price=was)

    def _cooled(self, since: datetime | None, now: datetime) -> bool:
        return since is None or now - since >= self.settings.cooldown

    def _wants_recheck(self, state: WatchState) -> bool:
        """A confirmation is due at once: of a restock, a lottery, or a lower price."""
        confirm = self.settings.confirm
        if state.lottery is LotteryPhase.CONFIRMING and state.lottery_streak < confirm:
            return True
        if state.phase is Phase.CONFIRMING:
            return state.buyable_streak < confirm
        return state.phase is Phase.BUYABLE and 0 < state.drop_streak < confirm


def _armed(state: WatchState) -> WatchState:
    return replace(
        state,
        phase=Phase.ARMED,
        buyable_streak=0,
        not_buyable_streak=0,
        announced=False,
        drop_streak=0,
    )


def _read(conditions: WatchConditions, obs: Observation) -> _Reading:
    if not conditions.is_buyable(obs):
        return _Reading(False, obs.state, obs.price)
    if not obs.offers:
        return _Reading(True, obs.state, obs.price)
    offer = _headline_offer(conditions.buyable_offers(obs))
    return _Reading(True, offer.state, offer.price, offer)


def _headline_offer(offers: list[Offer]) -> Offer:
    """The cheapest offer buyable now, else the cheapest preorder (offers come cheapest first)."""
    return next((o for o in offers if o.state in _SHIPPABLE), offers[0])


def _lottery_offer(conditions: WatchConditions, obs: Observation) -> Offer | None:
    """The cheapest lottery offer from a store the watch takes (offers come cheapest first)."""
    stores = conditions.stores
    return next(
        (
            o
            for o in obs.offers
            if not o.summary
            and o.state is Availability.LOTTERY
            and (not stores or o.store in stores)
        ),
        None,
    )


def _finishes(kind: EventKind, wanted: frozenset[EventKind]) -> bool:
    """Whether this event ends a `once` watch: an opening does; a lottery only for a watch that
    wants no opening (a lottery is no purchase, and the restock may still come)."""
    if kind in _OPENING_KINDS:
        return True
    return kind is EventKind.LOTTERY_OPEN and not (wanted & _OPENING_KINDS)


def _lottery_event(watch: Watch, obs: Observation, offer: Offer | None, now: datetime) -> Event:
    reading = _Reading(False, Availability.LOTTERY, offer.price if offer else obs.price, offer)
    event = _event(EventKind.LOTTERY_OPEN, watch, obs, reading, now, None)
    deadline = obs.lottery_deadline
    if deadline is not None and deadline.utcoffset() is not None:  # a naive time is no deadline
        event = replace(event, lottery_deadline=deadline)
    return event


def _opening_kind(state: Availability) -> EventKind:
    return EventKind.PREORDER_OPEN if state is Availability.PREORDER else EventKind.RESTOCK


def _event(
    kind: EventKind,
    watch: Watch,
    obs: Observation,
    r: _Reading,
    now: datetime,
    previous_price: int | None,
) -> Event:
    offer = r.offer
    return Event(
        kind=kind,
        watch_key=watch.key,
        watch_name=watch.name,
        state=r.state,
        observed_at=now,
        url=(offer.url if offer else None) or obs.url or watch.url,
        store=(offer.store if offer else None) or obs.store or watch.store,
        price=r.price,
        currency=offer.currency if offer else obs.currency,
        title=(offer.title if offer else None) or obs.title,
        seller=(offer.seller or offer.shop if offer else None) or obs.seller,
        previous_price=previous_price,
    )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the detector needs a timezone-aware time")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse_state(data: Mapping[str, Any]) -> WatchState:
    return WatchState(
        phase=Phase(data.get("phase", Phase.BASELINE.value)),
        buyable_streak=_count(data.get("buyable_streak", 0)),
        not_buyable_streak=_count(data.get("not_buyable_streak", 0)),
        announced=_flag(data.get("announced", False)),
        last_buyable=None if data.get("last_buyable") is None else _flag(data["last_buyable"]),
        last_price=_price(data.get("last_price")),
        notified_price=_price(data.get("notified_price")),
        last_event_at=_moment(data.get("last_event_at")),
        last_restock_at=_moment(data.get("last_restock_at")),
        fired_once=_flag(data.get("fired_once", False)),
        drop_streak=_count(data.get("drop_streak", 0)),
        lottery=LotteryPhase(data.get("lottery", LotteryPhase.BASELINE.value)),
        lottery_streak=_count(data.get("lottery_streak", 0)),
        last_lottery_at=_moment(data.get("last_lottery_at")),
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _price(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a price: {value!r}")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"not a flag: {value!r}")
    return value


def _moment(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    moment = datetime.fromisoformat(value)
    _require_aware(moment)
    return moment
