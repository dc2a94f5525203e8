"""One observation from a JAN search across several stores (pure: no I/O, no clock).

The product's state is the best state any offer has (one shop in stock is enough to buy). A
source that could not be asked (rate limit, maintenance) leaves a hole: when no offer is
orderable, the reading is `unknown` rather than "out of stock everywhere", since the missing
source may have had it. Whether an offer suits a watch (price, condition, seller) is the watch's
`WatchConditions.buyable_offers`; the headline price and seller here are the cheapest orderable
offer's, or the cheapest the given conditions accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from watcher.core.model import Availability, Observation, Offer, WatchConditions

# Most orderable first.
STATE_RANK: tuple[Availability, ...] = (
    Availability.IN_STOCK,
    Availability.BACKORDER,
    Availability.PREORDER,
    Availability.LOTTERY,
    Availability.OUT_OF_STOCK,
    Availability.DISCONTINUED,
    Availability.UNKNOWN,
)


def combine(
    jan: str,
    results_by_source: Mapping[str, Sequence[Offer] | Observation],
    skipped: Sequence[str] = (),
    *,
    conditions: WatchConditions | None = None,
) -> Observation:
    """All sources' answers for one JAN as one observation, offers cheapest first."""
    offers = sort_offers(
        offer
        for result in results_by_source.values()
        if not isinstance(result, Observation)
        for offer in result
    )
    failures = {
        name: result
        for name, result in results_by_source.items()
        if isinstance(result, Observation)
    }
    state = _state(offers, failures, answered=len(results_by_source) - len(failures))
    headline = _headline(offers, conditions)
    return Observation(
        state=state,
        reason=_reason(offers, failures, skipped),
        price=headline.price if headline else None,
        currency=headline.currency if headline else "JPY",
        title=headline.title if headline else None,
        seller=headline.seller if headline else None,
        official=headline.official if headline else None,
        condition=headline.condition if headline else None,
        offers=tuple(offers),
        jan=jan,
        blocked=bool(failures) and not offers and all(f.blocked for f in failures.values()),
        partial=bool(failures),
        retry_after=_longest_wait(failures.values()),
    )


def sort_offers(offers: Iterable[Offer]) -> list[Offer]:
    """Cheapest first (unpriced last); at one price, the more orderable offer first."""
    return sorted(offers, key=lambda o: (o.price is None, o.price or 0, STATE_RANK.index(o.state)))


def best_state(offers: Sequence[Offer]) -> Availability | None:
    states = {offer.state for offer in offers}
    return next((state for state in STATE_RANK if state in states), None)


def _state(
    offers: Sequence[Offer], failures: Mapping[str, Observation], answered: int
) -> Availability:
    best = best_state(offers)
    if best is not None and best.orderable:
        return best
    if failures or answered == 0:
        return Availability.UNKNOWN  # a source we could not ask may have had it
    return best if best is not None else Availability.OUT_OF_STOCK


def _headline(offers: Sequence[Offer], conditions: WatchConditions | None) -> Offer | None:
    if conditions is not None:
        accepted = [o for o in offers if conditions.accepts_offer(o)]
        if accepted:
            return accepted[0]
    orderable = [o for o in offers if o.state.orderable]
    pool = orderable or list(offers)
    return pool[0] if pool else None


def _reason(
    offers: Sequence[Offer], failures: Mapping[str, Observation], skipped: Sequence[str]
) -> str:
    stores = list(dict.fromkeys(offer.store for offer in offers))
    noun = "offer" if len(offers) == 1 else "offers"
    reason = f"jan:{len(offers)} {noun}"
    if stores:
        reason += f" from {', '.join(stores)}"
    notes = [f"{name} {failure.reason}" for name, failure in failures.items()]
    if notes:
        reason += f" (failed: {'; '.join(notes)})"
    if skipped:
        reason += f" (skipped: {'; '.join(skipped)})"
    return reason


def _longest_wait(failures: Iterable[Observation]) -> float | None:
    waits = [f.retry_after for f in failures if f.retry_after]
    return max(waits) if waits else None
