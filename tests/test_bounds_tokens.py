"""The bounding pass reads a page's markup as the HTML tokenizer does, so that no markup hidden
where the parser sees none (an attribute value, a comment, a script's text, a CDATA section)
can make it skip markup that the parser does read, and every tag's attributes are counted as the
parser counts them. Checked against a character-by-character tokenizer written from the HTML
standard's states, and against the parser itself (the depth of the tree it builds)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.stores._bounds import MAX_ATTRIBUTES, MAX_DEPTH, MAX_FORMATTING, bounded_html
from watcher.stores.generic import code_free

_SPACES = "\t\n\f\r "


def tag_attributes(html: str) -> list[int]:
    """Attributes of each tag (start and end tags) in `html`, read state by state as the
    standard's tokenizer reads data, tags, comments and bogus comments (no raw text)."""
    counts: list[int] = []
    i, n = 0, len(html)
    while i < n:
        if html[i] != "<":
            i += 1
            continue
        if html.startswith("<!--", i):
            i = _comment_end(html, i)
        elif html.startswith(("<!", "<?"), i) or (
            html.startswith("</", i) and not html[i + 2 : i + 3].isalpha()
        ):
            close = html.find(">", i + 2)
            i = n if close < 0 else close + 1
        elif (html[i + 1 : i + 2].isascii() and html[i + 1 : i + 2].isalpha()) or (
            html.startswith("</", i) and html[i + 2 : i + 3].isascii()
        ):
            i, count = _tag(html, i + (2 if html[i + 1] == "/" else 1))
            counts.append(count)
        else:
            i += 1
    return counts


def _letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


def most_attributes(html: str) -> int:
    return max(tag_attributes(html), default=0)


def _comment_end(html: str, i: int) -> int:
    if html.startswith(("<!-->", "<!--->"), i):
        return html.index(">", i) + 1
    ends = [e for e in (html.find("-->", i + 4), html.find("--!>", i + 4)) if e >= 0]
    if not ends:
        return len(html)
    end = min(ends)
    return end + (3 if html.startswith("-->", end) else 4)


def _tag(html: str, i: int) -> tuple[int, int]:
    """From a tag's name to just past its ">": (that position, its attributes)."""
    n = len(html)
    while i < n and html[i] not in _SPACES + "/>":
        i += 1
    count = 0
    state = "before name"
    while i < n:
        c = html[i]
        if state == "before name":
            if c in _SPACES or c == "/":
                pass
            elif c == ">":
                return i + 1, count
            else:
                count += 1
                state = "name"
        elif state == "name":
            if c in _SPACES:
                state = "after name"
            elif c == "/":
                state = "before name"
            elif c == "=":
                state = "before value"
            elif c == ">":
                return i + 1, count
        elif state == "after name":
            if c == "=":
                state = "before value"
            elif c == ">":
                return i + 1, count
            elif c == "/":
                state = "before name"
            elif c not in _SPACES:
                count += 1
                state = "name"
        elif state == "before value":
            if c in ('"', "'"):
                close = html.find(c, i + 1)
                if close < 0:
                    return n, count
                i = close
                state = "before name"
            elif c == ">":
                return i + 1, count
            elif c not in _SPACES:
                state = "unquoted"
        elif state == "unquoted":
            if c in _SPACES:
                state = "before name"
            elif c == ">":
                return i + 1, count
        i += 1
    return n, count


def _attributes(count: int, sep: str = " ") -> str:
    return sep.join(f"data-attribute-{i}" for i in range(count))


SHAPES = {
    "64 attributes": f"<div {_attributes(64)}>x</div>",
    "65 attributes": f"<div {_attributes(65)}>x</div>",
    "65 valued with brackets": "<div " + " ".join(f'a{i}="v>{i}"' for i in range(65)) + ">",
    "65 single-quoted": "<div " + " ".join(f"a{i}='v{i}'" for i in range(65)) + ">x",
    "65 unquoted": "<div " + " ".join(f"a{i}=v{i}" for i in range(65)) + ">",
    "slashes": f"<div {_attributes(70, '/')}>",
    "quotes in names": f"<div {_attributes(70, chr(34))}>",
    "equals first": "<div " + " ".join(f"=a{i}" for i in range(70)) + ">",
    "quote after unquoted value": '<div a=b="x>" ' + _attributes(70) + ">",
    "bracket in a quoted value": f'<div a=">" {_attributes(70)}>x</div>',
    "tag inside a value": f'<div title="<b {_attributes(70)}">x</div>',
    "short names": "<p " + " ".join("a" for _ in range(300)) + ">",
    "whitespace kinds": "<div\n" + _attributes(70, "\t\r\n\f ") + ">",
    "end tag": f"<div>x</div {_attributes(70)}>",
    "in a comment": f"<!-- <div {_attributes(70)}> -->",
    "in a bogus comment": f"</3 <div {_attributes(70)}> >",
}


@pytest.mark.parametrize("html", SHAPES.values(), ids=SHAPES.keys())
def test_no_tag_keeps_more_attributes_than_the_bound(html: str) -> None:
    page = f"<html><body><p>前</p>{html}<p>後</p></body></html>"
    bounded = bounded_html(page)
    assert most_attributes(bounded) <= MAX_ATTRIBUTES
    if most_attributes(page) <= MAX_ATTRIBUTES:
        assert bounded == page  # nothing to bound: the page is left as it was


_PIECES = st.sampled_from(
    [
        "<div ",
        "<b ",
        "</p ",
        "a",
        "b=",
        '"',
        "'",
        ">",
        "/",
        "=",
        " ",
        "\t",
        "x" * 60,
        "<",
        "v",
        "<!--",
        "-->",
        "</",
        "<!",
        "a=b",
        '="x>"',
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=400).map("".join), st.integers(55, 75))
def test_any_markup_is_bounded_as_the_tokenizer_counts(markup: str, count: int) -> None:
    html = markup + f"<div {_attributes(count)}>" + markup
    bounded = bounded_html(html)
    assert most_attributes(bounded) <= MAX_ATTRIBUTES
    if most_attributes(html) <= MAX_ATTRIBUTES:
        assert bounded == html


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=55, max_value=75),
    st.lists(st.sampled_from([" ", "/", "=", '"', "'", "\n", "=v ", '="x" ', "=>"]), min_size=1),
)
def test_attributes_near_the_bound(count: int, separators: list[str]) -> None:
    cycle = itertools.cycle(separators)
    html = "<div " + "".join(f"n{i}{next(cycle)}" for i in range(count)) + ">"
    bounded = bounded_html(html)
    assert most_attributes(bounded) <= MAX_ATTRIBUTES
    if most_attributes(html) <= MAX_ATTRIBUTES:
        assert bounded == html


# -- depth: markup the bounding pass might take for hidden must not hide the parser's nesting --

# The parser's tree may hold more than the pass counts: elements it implies (a table's body and
# row) and formatting elements it reopens. Neither makes the depth grow with the page.
_DEPTH_BOUND = 2 * MAX_DEPTH + MAX_FORMATTING


def depth(node: LexborNode | None) -> int:
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        child = current.child if current is not None else None
        while child is not None:
            stack.append((child, level + 1))
            child = child.next
    return deepest


DECOYS = {
    "an end tag in a comment": ("", "<div><!--</div>-->"),
    "a script start in an attribute value": ('<div title="x><script>">', "<div>"),
    "a script start in a bogus comment": ("</3 <script> >", "<div>"),
    "a script's escaped end tag": ("<script><!--<script></script><style></script>", "<div>"),
    "a raw text end tag without its boundary": ("<style></stylex><!--</style>", "<div>"),
    "a script in an SVG integration point": (
        "<svg><foreignObject>",
        "<div><script></div></script>",
    ),
    "a CDATA section in SVG": ("<svg><![CDATA[ > <div><script> ]]>", "<div>"),
    "a slash in an unquoted value in SVG": ("<svg>", "<g a=x/>"),
    "a comment in a script": ("<script>'<!--'</script><!--", "<div>"),
    "an end tag in a quoted value": ("", '<div><p title="</div>">'),
    "a textarea end tag in its own text": ("<textarea></textareax><!--</textarea>", "<div>"),
}


@pytest.mark.parametrize(("head", "unit"), DECOYS.values(), ids=DECOYS.keys())
def test_hidden_markup_does_not_hide_nesting(head: str, unit: str) -> None:
    html = "<html><body>" + head + unit * 5_000 + "x"
    assert depth(LexborHTMLParser(bounded_html(html)).root) <= _DEPTH_BOUND


# The quick count passes over what leaves its count as it was: elements holding only text,
# icons of simple shapes, void tags, scripts without escaped sections. Each shape here looks like
# one of those to a reading less exact than the tokenizer's, and nests when passed over.
PASSED_OVER = {
    "a path whose slash ends its unquoted value": ("<svg>", "<path d=M0/>", "</svg>"),
    "an icon of groups left open": ("<svg>", "<g>", "</svg>"),
    "shapes after a self-closing svg": ("<svg/>", "<path>", "</svg>"),
    "an icon holding an HTML tag": ("<svg>", "<path><span>t</span>", "</svg>"),
    "an element ended by another's end tag": ("", "<x>t</y>", ""),
    "an end tag in a quoted value": ("", '<x title="</x>">', ""),
    "a void name as an element's prefix": ("", "<brx>t</br>", ""),
}


@pytest.mark.parametrize(("head", "unit", "tail"), PASSED_OVER.values(), ids=PASSED_OVER.keys())
def test_what_the_quick_count_passes_over_hides_no_nesting(head: str, unit: str, tail: str) -> None:
    html = "<html><body>" + head + unit * 3_000 + tail + "x"
    assert depth(LexborHTMLParser(html).root) > _DEPTH_BOUND  # the shape nests unbounded
    assert depth(LexborHTMLParser(bounded_html(html)).root) <= _DEPTH_BOUND


@pytest.mark.parametrize("after", ["<!-- c -->", "<!x>", "<?x>", "</x>", "</3>", "< x", "<", "<p"])
def test_the_quick_count_reads_any_markup_after_a_text_only_element(after: str) -> None:
    for html in (f"<div><p>t</p>{after}x", f"<p>t</p>{after}"):
        assert bounded_html(html) == html


_DECOY_PIECES = st.sampled_from(
    [
        "<div>",
        "</div>",
        "<b>",
        "</b>",
        "<p>",
        "<span>",
        "</span>",
        "<!--",
        "-->",
        "--!>",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<textarea>",
        "</textarea>",
        "<title>",
        'title="',
        '"',
        "'",
        ">",
        "<",
        "</",
        "</3",
        "<?",
        "<!",
        "<svg>",
        "</svg>",
        "<math>",
        "<foreignObject>",
        "</foreignObject>",
        "<![CDATA[",
        "]]>",
        "<g a=x/>",
        "<path/>",
        "x",
    ]
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(_DECOY_PIECES, max_size=12).map("".join), st.lists(_DECOY_PIECES, max_size=8))
def test_no_mix_of_decoys_hides_nesting(head: str, unit: list[str]) -> None:
    html = "<html><body>" + head + ("<div>" + "".join(unit)) * 2_000
    assert depth(LexborHTMLParser(bounded_html(html)).root) <= _DEPTH_BOUND


# -- the generic reader cuts scripts and styles before it parses: the cut cannot nest either --

_CUT_PIECES = st.sampled_from(
    [
        "<div>",
        "</div>",
        "<i>",
        "</i>",
        "<p>",
        "</p>",
        "<span>",
        "</span>",
        "<b>",
        "</b>",
        "x",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        'title="',
        '"',
        ">",
        "<!--",
        "-->",
        '<div title="<script>">',
        "<li>",
        "<ul>",
        "</ul>",
    ]
)


def test_a_script_start_in_an_attribute_value_does_not_make_the_cut_nest() -> None:
    html = "<html><body>" + '<div title="<script>"></div></script>' * 5_000
    assert depth(LexborHTMLParser(code_free(bounded_html(html))).root) <= _DEPTH_BOUND


def test_the_cut_takes_names_letter_case_as_the_tokenizer_does() -> None:
    # A long s folds to "s" in Unicode, but the tokenizer lower-cases ASCII letters only: to the
    # parser these are unknown elements whose text is shown, so the cut must leave them.
    page = "<p><\u017fcript>visible</\u017fcript><SCRIPT>hidden()</Script><\u017ftyle>shown</p>"
    assert code_free(page) == "<p><\u017fcript>visible</\u017fcript></Script><\u017ftyle>shown</p>"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(_CUT_PIECES, max_size=10).map("".join),
    st.lists(_CUT_PIECES, min_size=1, max_size=8).map("".join),
)
def test_no_cut_of_scripts_makes_a_page_nest(head: str, unit: str) -> None:
    html = "<html><body>" + head + unit * 1_500
    assert depth(LexborHTMLParser(code_free(bounded_html(html))).root) <= _DEPTH_BOUND
