"""Lottery deadlines read from Japanese shop text, as aware Japan-time datetimes."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.stores._dates import TOKYO, lottery_deadline

DATE_HEADER = {"date": "Fri, 04 Dec 2026 03:00:00 GMT"}


@pytest.mark.parametrize(
    "text,headers,expected",
    [
        (
            "受付期間：2026年12月1日(火) 10:00 ～ 2026年12月10日(木) 23:59",
            None,
            (2026, 12, 10, 23, 59),
        ),
        (
            "受付期間 2026/12/01 10:00～2026/12/10 23:59 当選発表 2026/12/14",
            None,
            (2026, 12, 10, 23, 59),
        ),
        ("応募締切：12/10(木) 23:59まで", DATE_HEADER, (2026, 12, 10, 23, 59)),
        ("応募締切：1/8(金) 12:00まで", DATE_HEADER, (2027, 1, 8, 12, 0)),
        ("2026年12月10日まで受付", None, (2026, 12, 10, 23, 59)),
        ("12月10日(木)18時まで 2026年の抽選", None, (2026, 12, 10, 18, 0)),
        ("受付期間：2026年12月1日～2026年12月10日 24:00", None, (2026, 12, 10, 23, 59)),
    ],
)
def test_deadlines(
    text: str, headers: dict[str, str] | None, expected: tuple[int, int, int, int, int]
) -> None:
    found = lottery_deadline(text, headers)
    assert found == datetime(*expected, tzinfo=TOKYO)
    assert found is not None and found.utcoffset() is not None
    assert found.isoformat().endswith("+09:00")


@pytest.mark.parametrize(
    "text,headers",
    [
        ("抽選受付中", None),
        ("応募締切：12/10(木) 23:59まで", None),  # no year anywhere, no Date header
        ("サイズ 12/10 まで対応", DATE_HEADER),  # a bare 12/10 is not a date
        ("受付期間：2026年13月40日 25:00", None),
        ("受付期間：2026年2月30日", None),
        ("応募締切：12/10(木) 23:59まで", {"date": "yesterday"}),
        ("応募締切：12/10(木) 23:59まで", {"date": "Fri, 31 Feb 2026 03:00:00 GMT"}),
    ],
)
def test_no_deadline(text: str, headers: dict[str, str] | None) -> None:
    assert lottery_deadline(text, headers) is None


def test_a_hostile_text_is_read_quickly_and_safely() -> None:
    text = "受付期間" + "2026年12月1日(火)" * 2000 + "まで" + "1/" * 50_000
    assert lottery_deadline(text) is not None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "受付期間",
                "応募締切",
                "まで",
                "～",
                "2026年",
                "12月",
                "10日",
                "(木)",
                "23:59",
                "12/10",
                "1/8(金)",
                " ",
                "24:00",
                "2月30日",
                "年",
                "時",
                "抽選",
            ]
        ),
        max_size=30,
    )
)
def test_any_text_gives_an_aware_deadline_or_none(parts: list[str]) -> None:
    found = lottery_deadline("".join(parts), {"date": "Fri, 04 Dec 2026 03:00:00 GMT"})
    assert found is None or found.utcoffset() is not None
