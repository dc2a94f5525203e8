"""The bounding pass models the parser's stack of open elements: wherever the parser keeps an
element open, the pass counts it open, or a page could nest past the bound by making the pass
believe its elements closed. Each shape below repeats a unit that the parser nests a level or
more deeper each time while closing it in a naive reading (a stray end tag, an ignored start
tag, a misnested formatting element, a tag read in the wrong namespace). Checked against the
parser itself: the depth of the tree it builds from the bounded page."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser
from test_bounds_tokens import _DEPTH_BOUND, depth

from watcher.stores._bounds import bounded_html


def parsed_depth(head: str, unit: str, repeat: int = 2_000) -> int:
    html = "<html><body>" + head + unit * repeat + "x"
    return depth(LexborHTMLParser(bounded_html(html)).root)


NESTING = {
    "an option ends a list term with a select in scope": ("<select>", "<mi><dt><option><defs>"),
    "an optgroup ends a list item with a select in scope": ("<select>", "<x><li><optgroup><y>"),
    "a rule ends a list term with a select in scope": ("<select>", "<x><dt><hr><y>"),
    "a Kelvin sign in a name is no k to the parser": ("", "<x\u212a>t</xk>"),
    "a long s in an end tag ends no script": ("", "<div><script></\u017fcript></div></script>"),
    "a long s in a start tag opens no script": ("", "<\u017fcript><div>"),
    "a long s in an end tag ends no style": ("", "<div><style></\u017ftyle></div></style>"),
    "an end tag of a name special only in SVG": ("", "<div></foreignObject><foreignObject>"),
    "an end tag of a name special only in MathML": ("", "<mi><div></mi>"),
    "noscript's end tag with a div open in it": ("", "<noscript><div></noscript>"),
    "a cell outside any table": ("", "<td><div></td>"),
    "a caption outside any table": ("", "<caption><span></caption>"),
    "a row section outside any table": ("", "<tbody><div></tbody>"),
    "a form inside a form": ("", "<form><div></form>"),
    "a form's end tag with a div open in it": ("", "<div></form><form>"),
    "a link's end tag with a div open in it": ("", "<a><div></a>"),
    "a bold end tag with a section open in it": ("", "<b><section></b>"),
    "a link's end tag with MathML open in it": ("", "<a><math><mi></a>"),
    "a frameset's end tag after its start was ignored": ("x", "<div><frameset><span></frameset>"),
    "a misnested nobr": ("", "<nobr><span><nobr></nobr><i></nobr>"),
    "a list item inside a div inside a list item": ("", "<li><div><li></li><span></li>"),
    "a heading's end tag ends the nearest heading": ("", "<h1><b><h2></h1>"),
    "a heading's end tag of another level": ("", "<h2><b><h2><p></h1><g>"),
    "ruby parts end what is open above the ruby": ("", "<rp><ruby></desc><p></br>"),
    "a list item ends its sibling before the paragraph": ("", "<dialog><p><noscript><dt>"),
    "tags dropped at the bound close nothing": ("<table>", "<b><math><mi></b>"),
    "an input element in SVG": ("<svg>", "</frame><input>"),
    "an html element in SVG": ("<object>", "<svg><html></font></table>"),
    "a font without colour, face or size stays in SVG": ("<svg><textarea>", "<font><button><xmp>"),
    "mtext in SVG is no integration point": ("<svg>", "<mtext><style>"),
    "a template in MathML is no HTML template": ("<math><template>", "</div><td><mo>"),
    "a paragraph's end tag ends MathML": ("<img></form><math></p><option><td>", "<g/></rt>"),
    "a '<' before a dropped tag opens no tag": (
        "<span></html></textarea></dd>",
        'title="<div></span><image><h2><<mtext>',
    ),
    "a '<' before a dropped formatting tag opens no tag": (
        "<b></nobr><caption></a><frameset></i><mtext>x",
        '<b>title="</br></math><',
    ),
    "an end tag that ends SVG leaves '/>' closing nothing": ("<b><svg>", "<g/></b>"),
    "a frameset at an integration point": (
        "<math><input><annotation-xml encoding=TEXT/HTML><frameset>",
        "</input><xmp><desc>",
    ),
    "a frameset's end tag before its start": ("<p>", "<span></frameset><frameset>"),
    "a button does not stop an end tag's search": (
        "<rb><p><thead><h2>x</select>",
        "<dialog><search><figure></div><caption><button></figure>",
    ),
    "the adoption agency closes what is above its last block": (
        "<desc><rt></frameset><em></script><dd><svg><button></mi></i>",
        '<noscript></g>--!></em><g>title="',
    ),
    "foreignObject in MathML is not special": (
        "<rt><math><image></noembed></i>",
        "<foreignObject></rt><tr><noscript></dialog></h1></foreignObject>",
    ),
}


@pytest.mark.parametrize(("head", "unit"), NESTING.values(), ids=NESTING.keys())
def test_the_parser_never_keeps_open_what_the_pass_counts_closed(head: str, unit: str) -> None:
    assert parsed_depth(head, unit) <= _DEPTH_BOUND


def test_the_shapes_nest_without_the_pass() -> None:
    # Each shape is a real threat: unbounded, the parser nests it past the bound.
    for head, unit in NESTING.values():
        html = "<html><body>" + head + unit * 2_000 + "x"
        assert depth(LexborHTMLParser(html).root) > _DEPTH_BOUND, unit


_NAME_TEXT = (
    "div span p b a i font nobr li ul dd dt table tbody tr td th caption colgroup col form"
    " select option optgroup template noscript button object svg math foreignObject desc title"
    " mi mo mtext annotation-xml g frameset h1 h2 section pre textarea style script xmp iframe"
    " noembed hr br img input ruby rb rt rp image plaintext body html head em s dialog"
)
_NAMES = _NAME_TEXT.split()
_TAG_PIECES = st.sampled_from(
    [f"<{name}>" for name in _NAMES]
    + [f"</{name}>" for name in _NAMES]
    + ["<svg/>", "<g/>", "<div/>", "<font color=red>", "<b a=1>", "<b a=2>", "<!--", "-->", "x"]
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(_TAG_PIECES, max_size=10).map("".join), st.lists(_TAG_PIECES, min_size=1, max_size=7)
)
def test_no_mix_of_tags_nests_past_the_bound(head: str, unit: list[str]) -> None:
    text = "".join(unit)
    assert parsed_depth(head, text, 6_000 // len(text) + 300) <= _DEPTH_BOUND
