"""The case-folding pre-filter says "no" only when the case-folded text holds no phrase: its two
claims about Unicode checked over every code point, the block tables' phrases with every
character that folds to ASCII put into them, and hypothesis over mixed texts."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.core.model import Page
from watcher.stores import _blocked
from watcher.stores._folded import (
    FOLDS_TO_ASCII,
    LITERAL_FIRST,
    LITERAL_LAST,
    FoldedPhrases,
    ascii_lowered,
)
from watcher.stores._text import first_character

PHRASES = sorted({phrase for phrase, _ in (*_blocked._BLOCK_SENTENCES, *_blocked._WEAK_MARKERS)})
FILTER = _blocked._SMALL_PAGE_FILTER


def exact(text: str) -> bool:
    folded = text.casefold()
    return any(phrase in folded for phrase in PHRASES)


def test_folds_to_ascii_is_every_such_character() -> None:
    found = {
        char
        for char in map(chr, range(sys.maxunicode + 1))
        if not char.isascii() and any(letter.isascii() for letter in char.casefold())
    }
    assert found == FOLDS_TO_ASCII


def test_japanese_script_folds_to_itself_and_nothing_folds_into_it() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        folded = char.casefold()
        assert folded, f"U+{code:04X} folds to nothing"
        if LITERAL_FIRST <= code <= LITERAL_LAST:
            assert folded == char, f"U+{code:04X}"
        else:
            assert not any(LITERAL_FIRST <= ord(c) <= LITERAL_LAST for c in folded), f"U+{code:04X}"


def test_ascii_folds_as_lower_case() -> None:
    for char in map(chr, range(128)):
        assert char.casefold() == char.lower()


def test_every_phrase_is_found_in_any_letter_case() -> None:
    for phrase in PHRASES:
        for text in (phrase, phrase.upper(), phrase.title(), f"<p>前置き {phrase.upper()} 後</p>"):
            assert FILTER.may_hold(text), text


@pytest.mark.parametrize("char", sorted(FOLDS_TO_ASCII), ids=lambda c: f"U+{ord(c):04X}")
def test_a_character_folding_to_ascii_inside_a_phrase(char: str) -> None:
    """Put `char` at every place of every phrase, replacing none to all of the letters its
    folding stands for: whenever the folded text then holds a phrase, the filter says maybe."""
    width = len(char.casefold())
    for phrase in PHRASES:
        for at in range(len(phrase) + 1):
            for replaced in range(width + 1):
                text = f"商品 {phrase[:at]}{char}{phrase[at + replaced :]} です"
                if exact(text):
                    assert FILTER.may_hold(text), text


def test_examples_of_letters_lent_by_folding() -> None:
    assert FILTER.may_hold("unusual tra\ufb00ic from your computer")
    assert FILTER.may_hold("attention required! | cloud\ufb02are")
    assert FILTER.may_hold("ACCE\u00df DENIED")
    assert FILTER.may_hold("\u0149ot a robot")
    assert FILTER.may_hold("not a robo\u1e97")
    assert FILTER.may_hold("ROBOT CHEC\u212a")
    assert exact("ROBOT CHEC\u212a")
    assert not FILTER.may_hold("商品の説明です。在庫あり")
    assert not FILTER.may_hold("Add to cart")


def test_japanese_phrases_are_found_as_written() -> None:
    assert FILTER.may_hold("ただいまアクセスが集中しております。")
    assert FILTER.may_hold("画像に表示されている文字を入力してください")
    assert not FILTER.may_hold("アクセス数ランキング 集計中")


def test_phrases_it_cannot_reason_about_are_refused() -> None:
    for bad in ("Access Denied", "", "accès refusé", "アクセス denied"):
        with pytest.raises(ValueError):
            FoldedPhrases(["too many requests", bad])


def test_ascii_lowered_keeps_ascii_only() -> None:
    assert ascii_lowered("Ab商C\u212ad") == b"abcd"
    assert ascii_lowered("a\ud800B\udcff") == b"ab"  # lone surrogates (surrogateescape'd bytes)


def test_lone_surrogates() -> None:
    assert FILTER.may_hold("\udcffTOO MANY REQUESTS\ud800")
    assert not FILTER.may_hold("too \ud800 many")
    assert _blocked._phrases_folded("x\udcffAccess Denied") == "x\udcffaccess denied"


_PIECES = st.sampled_from(
    [
        *PHRASES,
        *(phrase.upper() for phrase in PHRASES),
        *sorted(FOLDS_TO_ASCII),
        "\u0307",
        "\u02bc",
        "ss",
        "SS",
        "ff",
        "K",
        "k",
        "st",
        "商品",
        "。",
        "在庫あり",
        "アクセス",
        " ",
        "<p>",
        "AcCeSs",
        "rObOt",
    ]
)
_TEXTS = st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=12).map("".join)


@settings(max_examples=600, deadline=None)
@given(_TEXTS)
def test_no_from_the_filter_means_no_phrase(text: str) -> None:
    if not FILTER.may_hold(text):
        assert not exact(text)
    assert FILTER.may_hold(text, ascii_lowered(text)) == FILTER.may_hold(text)


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_phrases_folded_is_the_exact_search(text: str) -> None:
    folded = text.casefold()
    expected = folded if _blocked._SMALL_PAGE_PHRASES.search(folded) else None
    assert _blocked._phrases_folded(text) == expected
    assert _blocked._phrases_folded(text, ascii_lowered(text)) == expected


_MARKERS = sorted(_blocked._ASCII_KEYS)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_MARKERS),
            st.sampled_from(_MARKERS).map(str.upper),
            st.sampled_from(["商品", "\u212a", "<", '"', " "]),
            st.text(max_size=5),
        ),
        max_size=8,
    ).map("".join)
)
def test_markers_ruled_out_by_the_ascii_letters(text: str) -> None:
    letters = ascii_lowered(text)
    for marker in _MARKERS:
        assert marker.isascii()
        assert _blocked._holds(text, letters, marker) == (marker in text)
        assert _blocked._holds(text, None, marker) == (marker in text)


def test_first_character_is_lstrip() -> None:
    spaces = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert len(spaces) > 20
    for text in ("", " ", spaces, spaces + "{x", "\u3000[1]", "<html>", spaces + "\x00"):
        assert first_character(text) == text.lstrip()[:1]
    for code in range(sys.maxunicode + 1):
        text = f"{chr(code)}{{"
        assert first_character(text) == text.lstrip()[:1], f"U+{code:04X}"


@given(st.text(alphabet=st.sampled_from([" ", "\t", "\n", "\u3000", "\x85", "{", "[", "a"])))
def test_json_body_check(text: str) -> None:
    page = Page(url="https://shop.example/p", text=text, status=200)
    assert _blocked._is_json(page) == (text.lstrip()[:1] in ("{", "["))
