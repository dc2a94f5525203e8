"""The bounding pass's "does some tag hold too many attributes" check is one regular-expression
match per long tag, and answers as counting the attributes one by one does, hostile tags
included."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.stores import _bounds
from watcher.stores._bounds import MAX_ATTRIBUTES, bounded_html

_LONG_TAG = re.compile(r"<[A-Za-z][^>]{200}")


def counted(html: str) -> bool:
    """The check as a count: each long tag's `_ATTRIBUTE` matches up to its first ">"."""
    pos = 0
    while (found := _LONG_TAG.search(html, pos)) is not None:
        close = html.find(">", found.end())
        end = len(html) if close < 0 else close
        matches = _bounds._ATTRIBUTE.finditer(html, found.start() + 1, end)
        if sum(1 for _ in itertools.islice(matches, MAX_ATTRIBUTES + 2)) - 1 > MAX_ATTRIBUTES:
            return True
        pos = end
    return False


def names(count: int, sep: str = " ", prefix: str = "data-attribute-") -> str:
    return sep.join(f"{prefix}{i}" for i in range(count))


HOSTILE = {
    "64 attributes": f"<div {names(64)}>x</div>",
    "65 attributes": f"<div {names(65)}>x</div>",
    "66 attributes": f"<div {names(66)}>x</div>",
    "65 valued": "<div " + " ".join(f'a{i}="v>{i}"' for i in range(65)) + ">",
    "65 single-quoted": "<div " + " ".join(f"a{i}='v{i}'" for i in range(65)) + ">x",
    "65 unquoted": "<div " + " ".join(f"a{i}=v{i}" for i in range(65)) + ">",
    "slashes": f"<div {names(70, '/')}>",
    "equals runs": f"<div {names(70, '==')}>",
    "quotes between": f"<div {names(70, chr(34))}>",
    "no closing bracket": f"<div {names(70)}",
    "unterminated quote": f'<div title="{names(70)}',
    "quote closed past bracket": f'<div a="{"x" * 300}>" {names(70)}>',
    "bracket in quoted value": f'<div a="{"x" * 300}" b=">" {names(70)}>',
    "tag inside a long tag's value": f'<div title="<b {names(70)}">x</div>',
    "tag after a long tag": f'<div title="{"y" * 300}"><b {names(70)}>',
    "two long tags": f"<div {names(40)}><span {names(66)}>",
    "short names": "<p " + " ".join("a" for _ in range(300)) + ">",
    "spaces only": "<div" + " " * 500 + ">",
    "whitespace kinds": "<div\n" + names(70, "\t\r\n\f ") + ">",
    "long value then few": f'<div class="stock {"a" * 5000}">x</div>',
    "upper case name": f"<DIV {names(70)}>",
    "not a tag": f"< div {names(70)}>",
    "end tag": f"</div {names(70)}>",
}


@pytest.mark.parametrize("html", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_tags(html: str) -> None:
    page = f"<html><body><p>前</p>{html}<p>後</p></body></html>"
    assert _bounds._many_attributes(page) == counted(page)


def test_the_bound_is_more_than_max_attributes() -> None:
    assert not _bounds._many_attributes(HOSTILE["64 attributes"])
    assert _bounds._many_attributes(HOSTILE["65 attributes"])
    assert _bounds._many_attributes(HOSTILE["slashes"])
    assert not _bounds._many_attributes(HOSTILE["tag inside a long tag's value"])
    assert _bounds._many_attributes(HOSTILE["tag after a long tag"])


def test_a_page_with_too_many_attributes_is_bounded() -> None:
    page = f"<html><body>{HOSTILE['66 attributes']}</body></html>"
    bounded = bounded_html(page)
    assert bounded != page
    assert "data-attribute-64" not in bounded and "data-attribute-63" in bounded


_PIECES = st.sampled_from(
    ["<div ", "<b ", "</p ", "a", "b=", '"', "'", ">", "/", "=", " ", "\t", "x" * 60, "<", "v"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=400).map("".join))
def test_any_markup(html: str) -> None:
    assert _bounds._many_attributes(html) == counted(html)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=55, max_value=75),
    st.lists(st.sampled_from([" ", "/", "=", '"', "'", "\n", "=v ", '="x" ', "=>"]), min_size=1),
)
def test_near_the_bound(count: int, separators: list[str]) -> None:
    cycle = itertools.cycle(separators)
    html = "<div " + "".join(f"n{i}{next(cycle)}" for i in range(count)) + ">"
    assert _bounds._many_attributes(html) == counted(html)
