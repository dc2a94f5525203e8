"""Whether phrases could occur in a text's case-folded form, answered without case-folding it.

Case-folding a page's text and searching it for every block phrase costs more than parsing a
small page, and almost every page holds none. `FoldedPhrases.may_hold` says "no" only when no
phrase occurs in `text.casefold()`; "maybe" sends the caller to the exact search. It holds:

- an ASCII phrase (written folded) in the folded text comes from ASCII characters of the text,
  in a row, in any letter case, unless the text holds one of the few other characters whose
  folding holds ASCII letters (`FOLDS_TO_ASCII`: ß→ss, ſ→s, the Kelvin sign→k, ﬀ→ff, İ→i̇...);
  so it is looked for in the text's ASCII characters lower-cased, and such a character, when
  it could lend a phrase a letter, answers "maybe";
- a phrase of Japanese script (CJK punctuation, kana, ideographs: U+3000–U+9FFF) folds to
  itself and nothing else folds to its characters, so it is looked for as written, after one
  quick search for its rarest-looking character.

tests/test_folded.py checks both claims over every Unicode code point.
"""

from __future__ import annotations

from collections.abc import Iterable

# Every character but ASCII whose case folding holds an ASCII character (all of Unicode's).
FOLDS_TO_ASCII = frozenset(
    "\u00df\u0130\u0149\u017f\u01f0\u1e96\u1e97\u1e98\u1e99\u1e9a\u1e9e\u212a"
    "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"
)
LITERAL_FIRST, LITERAL_LAST = 0x3000, 0x9FFF  # fold to themselves; nothing else folds to them


def ascii_lowered(text: str) -> bytes:
    """The ASCII characters of `text` in order, lower-cased; every other character dropped."""
    return text.encode("ascii", "ignore").lower()


def is_literal(phrase: str) -> bool:
    """True when `phrase` is all Japanese script, which case folding leaves as it is."""
    return bool(phrase) and all(LITERAL_FIRST <= ord(char) <= LITERAL_LAST for char in phrase)


class FoldedPhrases:
    """A set of phrases, as searched in case-folded text: ASCII ones written folded (lower
    case), the others all Japanese script (anything else raises ValueError)."""

    def __init__(self, phrases: Iterable[str]) -> None:
        wanted = set(phrases)
        # A phrase holding another is found whenever it is: only the others need searching.
        kept = sorted(p for p in wanted if not any(q != p and q in p for q in wanted))
        for phrase in wanted:
            if not (_is_folded_ascii(phrase) or is_literal(phrase)):
                raise ValueError(f"{phrase!r}: neither folded ASCII nor Japanese script")
        self._ascii = tuple(p.encode("ascii") for p in kept if p.isascii())
        literal: dict[str, list[str]] = {}
        for phrase in (p for p in kept if not p.isascii()):
            literal.setdefault(max(phrase), []).append(phrase)  # ideographs before kana
        self._literal = tuple((key, tuple(group)) for key, group in sorted(literal.items()))
        ascii_phrases = [p for p in kept if p.isascii()]
        self._lenders = "".join(sorted(c for c in FOLDS_TO_ASCII if _lends(c, ascii_phrases)))

    def may_hold(self, text: str, lowered: bytes | None = None) -> bool:
        """False only when no phrase occurs in `text.casefold()`. `lowered` is
        `ascii_lowered(text)` when the caller has it."""
        if not text.isascii():
            if any(char in text for char in self._lenders):
                return True
            for key, group in self._literal:
                if key in text and any(phrase in text for phrase in group):
                    return True
        if lowered is None:
            lowered = ascii_lowered(text)
        return any(phrase in lowered for phrase in self._ascii)


def _is_folded_ascii(phrase: str) -> bool:
    return bool(phrase) and phrase.isascii() and phrase == phrase.casefold()


def _lends(char: str, phrases: list[str]) -> bool:
    """Whether `char`'s folding could lend an ASCII phrase a letter: a run of ASCII in its
    folding that a phrase could hold part of (a run with other characters after it ends a
    match, one with others before it starts one, one between others holds a whole phrase)."""
    folded = char.casefold()
    runs: list[tuple[int, int]] = []
    start = None
    for index, letter in enumerate(f"{folded}\x80"):
        if letter.isascii() and start is None:
            start = index
        elif not letter.isascii() and start is not None:
            runs.append((start, index))
            start = None
    for begin, end in runs:
        run = folded[begin:end]
        at_start, at_end = begin == 0, end == len(folded)
        for phrase in phrases:
            if at_start and at_end:
                lent = any(letter in run for letter in phrase)
            elif at_start:
                lent = phrase[-1] in run
            elif at_end:
                lent = phrase[0] in run
            else:
                lent = phrase in run
            if lent:
                return True
    return False
