"""A page's verdict is a reconciliation of its witnesses: structured data, wording, controls."""

from __future__ import annotations

import pytest

from watcher.core.model import Availability
from watcher.stores._reconcile import Evidence, reconcile

A = Availability


def jsonld(token: str, state: Availability) -> Evidence:
    return Evidence("jsonld", state, token, f"jsonld:{token}")


def text(phrase: str, state: Availability) -> Evidence:
    return Evidence("text", state, phrase, f"text:{phrase}")


def button(phrase: str, state: Availability) -> Evidence:
    return Evidence("button", state, phrase, f"button:{phrase}")


IN = jsonld("InStock", A.IN_STOCK)
OUT = jsonld("OutOfStock", A.OUT_OF_STOCK)
SOLD = text("売り切れ", A.OUT_OF_STOCK)
CART = button("カートに入れる", A.IN_STOCK)
DISABLED = button("disabled:カートに入れる", A.OUT_OF_STOCK)
LATER = text("お取り寄せ", A.BACKORDER)
LOTTERY = text("抽選受付中", A.LOTTERY)


@pytest.mark.parametrize(
    "structured,worded,control,state,reason",
    [
        (IN, None, None, A.IN_STOCK, "jsonld:InStock"),
        (IN, None, CART, A.IN_STOCK, "jsonld:InStock"),
        (IN, SOLD, None, A.OUT_OF_STOCK, "conflict: jsonld InStock vs text 売り切れ"),
        (IN, SOLD, CART, A.OUT_OF_STOCK, "conflict: jsonld InStock vs text 売り切れ"),
        (
            IN,
            None,
            DISABLED,
            A.OUT_OF_STOCK,
            "conflict: jsonld InStock vs button disabled:カートに入れる",
        ),
        (OUT, None, CART, A.OUT_OF_STOCK, "conflict: button カートに入れる vs jsonld OutOfStock"),
        (OUT, LATER, CART, A.BACKORDER, "text:お取り寄せ; jsonld OutOfStock disagreed"),
        (OUT, SOLD, None, A.OUT_OF_STOCK, "jsonld:OutOfStock"),
        (None, LATER, CART, A.BACKORDER, "text:お取り寄せ"),
        (None, SOLD, CART, A.OUT_OF_STOCK, "conflict: button カートに入れる vs text 売り切れ"),
        (None, None, CART, A.IN_STOCK, "button:カートに入れる"),
        (IN, LOTTERY, None, A.LOTTERY, "conflict: jsonld InStock vs text 抽選受付中"),
    ],
)
def test_reconcile(
    structured: Evidence | None,
    worded: Evidence | None,
    control: Evidence | None,
    state: Availability,
    reason: str,
) -> None:
    verdict = reconcile(structured, worded, control)
    assert verdict is not None
    assert (verdict.state, verdict.reason) == (state, reason)


def test_no_witness_no_verdict() -> None:
    assert reconcile(None, None, None) is None


@pytest.mark.parametrize("structured", [IN, OUT, None])
@pytest.mark.parametrize("worded", [SOLD, LATER, LOTTERY, text("在庫あり", A.IN_STOCK), None])
@pytest.mark.parametrize("control", [CART, DISABLED, None])
def test_a_buyable_verdict_is_never_contradicted_by_the_visible_page(
    structured: Evidence | None, worded: Evidence | None, control: Evidence | None
) -> None:
    verdict = reconcile(structured, worded, control)
    if verdict is None or not verdict.state.orderable:
        return
    visible = [e for e in (worded, control) if e is not None]
    assert all(e.state.orderable for e in visible)
    assert any(e.state.orderable for e in (structured, worded, control) if e is not None)
