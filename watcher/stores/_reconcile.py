"""The verdict of a product page: a reconciliation of its evidence, not a precedence list.

Three witnesses speak about the main product: structured data (JSON-LD, microdata, OpenGraph),
the visible wording of the main product area, and its buy controls (an enabled cart or order
button, or a disabled / sold-out one). The rule:

- a buyable state needs a positive buy signal (an enabled buy control, buyable wording, or
  structured availability) that no other witness contradicts;
- when they disagree, the state is not buyable: the contrary witness's state (visible wording
  first, then the control, then the structured data), with a reason naming both sides,
  ``conflict: jsonld InStock vs text 売り切れ``;
- one exception: when the visible wording and an enabled buy control agree that the product can
  be ordered, stale structured data alone does not outvote them (a page saying "temporarily on
  backorder, order now" beside a live Add to Cart, under JSON-LD OutOfStock); the reason still
  names the disagreement;
- when every witness says not orderable, the first of structured data, wording and control
  decides;
- when every witness says orderable, the most cautious orderable state wins: preorder, then
  backorder (ship-later wording next to an enabled cart is a backorder), then in stock.
"""

from __future__ import annotations

from dataclasses import dataclass

from watcher.core.model import Availability

_A = Availability
_CAUTIOUS_ORDERABLE = (_A.PREORDER, _A.BACKORDER, _A.IN_STOCK)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One witness: where it spoke (`source`: jsonld, microdata, og, text, button, variations),
    what it said (`detail`: the token or phrase) and the reason it reports alone."""

    source: str
    state: Availability
    detail: str
    reason: str
    context: str = ""  # the text it was read in (for a quantity hint such as 残り2点)

    @property
    def label(self) -> str:
        return f"{self.source} {self.detail}".strip()


@dataclass(frozen=True, slots=True)
class Verdict:
    state: Availability
    reason: str
    witness: Evidence  # the evidence whose state was taken


def reconcile(
    structured: Evidence | None, text: Evidence | None, control: Evidence | None
) -> Verdict | None:
    """The page's state from its witnesses (see the module docstring); None when none spoke."""
    present = [e for e in (structured, text, control) if e is not None]
    if not present:
        return None
    buyable = [e for e in present if e.state.orderable]
    against = [e for e in present if not e.state.orderable]
    if not against:
        witness = _most_cautious(buyable)
        return Verdict(witness.state, witness.reason, witness)
    if not buyable:
        return Verdict(against[0].state, against[0].reason, against[0])
    if (
        structured is not None
        and against == [structured]
        and text is not None
        and control is not None
    ):
        witness = _most_cautious([text, control])
        why = f"{witness.reason}; {structured.label} disagreed"
        return Verdict(witness.state, why, witness)
    contrary = next(e for e in (text, control, structured) if e is not None and e in against)
    positive = next(e for e in (structured, text, control) if e is not None and e in buyable)
    return Verdict(contrary.state, f"conflict: {positive.label} vs {contrary.label}", contrary)


def _most_cautious(witnesses: list[Evidence]) -> Evidence:
    for state in _CAUTIOUS_ORDERABLE:
        for witness in witnesses:
            if witness.state is state:
                return witness
    return witnesses[0]
