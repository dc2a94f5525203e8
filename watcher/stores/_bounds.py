"""Bounds on what one hostile page can make the HTML parser do, applied before it runs.

The HTML tree builder walks its stack of open elements and its list of active formatting
elements on most tags, and checks each attribute of a tag against the ones before it, so nesting
100,000 `<div>`s deep, leaving thousands of `<b>` elements unclosed, or writing 20,000
attributes on one tag costs time quadratic in the page. Browsers cap the nesting (at 512); the
parser we use does not, so `bounded_html` does, in one pass over the page's tags:

- a start tag that would open an element deeper than `MAX_DEPTH` is dropped, and so is its end
  tag: what it held stays, as content of the deepest element kept;
- a formatting element (`<b>`, `<font>`, ...) that would make more than `MAX_FORMATTING` of them
  stay open (or be reopened after a misnested end tag) is dropped the same way;
- a tag keeps its first `MAX_ATTRIBUTES` attributes;
- a `<select>` keeps its first `MAX_OPTIONS` options (and optgroups): the parser's work for each
  option grows with the options before it in the same select, so 20,000 options take seconds.
  The rest of the select's content is dropped, up to the tag that ends it; once the page's
  selects hold `MAX_PAGE_OPTIONS` options, each further select keeps none.

A page with more than `MAX_TAGS` tags is not read at all (`too_many_tags`), and adapters read at
most `MAX_CANDIDATES` elements of one kind.

The pass reads the page as the standard's tokenizer does (quoted attribute values that hold ">",
comments, bogus comments, raw text up to its own end tag, a script's escaped sections, CDATA in
SVG and MathML): markup the parser takes for text must neither close nor hide an element the
parser opens. It models the parser's stack the way the standard's tree builder changes it: void
elements; implied ends (`p`, list items, options, ruby parts, headings, a `<button>` or `<nobr>`
in one); scope rules for end tags and the "any other end tag" rule that stops at special
elements; table parts (ignored outside a table; inside one, clearing the stack back to their
table or row and implying a cell's section and row); the form pointer; the adoption agency,
which takes a misnested formatting element off the stack from under others; SVG and MathML by
namespace (integration points, the tags that end foreign content, self-closing tags, end tags
matched within foreign content). An HTML `<frameset>` is dropped: it would turn the page into a
frameset document, whose rules no shop page needs. Where it is unsure it keeps an element counted
open, never closes one the parser may keep: an element counted closed while the parser keeps it
open is how nesting would slip past the bound. So the real depth never exceeds what the pass
counted by more than the formatting bound (elements the parser reopens) and the few it implies (a
column group, the page's head and body). Ordinary pages are returned unchanged, after one quick
count (`_plain`): they nest a few dozen levels.
"""

from __future__ import annotations

import itertools
import re
import string

MAX_DEPTH = 256
MAX_FORMATTING = 48
MAX_ATTRIBUTES = 64
# Options one select may hold: a shop's quantity or size picker lists up to a couple of hundred.
MAX_OPTIONS = 256
# Options all the page's selects may hold: a few pickers of a few hundred each. Without it,
# thousands of selects of MAX_OPTIONS options each would still take the parser a second.
MAX_PAGE_OPTIONS = 4_096
# Elements of one kind (stock labels, buy controls, price elements) an adapter reads per page: a
# product page shows a handful; a page with a hundred thousand is a listing or an attack, and
# reading each one's wording would take seconds.
MAX_CANDIDATES = 1_000
# Markup openings ("<") a page may hold to be read at all. A shop's 5 MB page holds a few tens of
# thousands of tags; a page of well over a hundred thousand is generated to be slow. Reading costs
# about 2 microseconds a tag on the worst shapes (the bounding pass, then every whole-page
# search of the tree), so this cap holds any reading to about a third of a second.
MAX_TAGS = 150_000
# Characters: each attribute but the last takes at least two (a name and a space, or a quoted
# value), so a shorter tag cannot hold more than MAX_ATTRIBUTES attributes.
_LONG_TAG = 2 * MAX_ATTRIBUTES

# The page is read as the HTML tokenizer reads it, or markup hidden where the parser sees none
# (in an attribute value, a comment, a script) would be counted, and markup the parser reads would
# be skipped: a quoted value holds ">" and "<" as text, a comment ends at "-->", raw text at its
# own end tag, and a script's text at whichever end tag its escaped sections leave it at.
_SPACE = r"[\t\n\f\r ]"
_SEPARATOR = r"[\t\n\f\r /]"
_NAME_END = r"(?=[\t\n\f\r />])"
_ATTRIBUTE = (
    rf"""[^\t\n\f\r />][^\t\n\f\r />=]*+"""
    rf"""(?:{_SPACE}*+={_SPACE}*+(?:"[^"]*+"|'[^']*+'|[^\t\n\f\r >]*+))?"""
)
# A tag's attributes and what separates them; what separates the last from ">" is left out, so
# that a "/" there (not one ending an unquoted value) marks the tag self-closing.
_ATTRIBUTES = rf"(?:{_SEPARATOR}*+(?:{_ATTRIBUTE}))*+"
_TAG = rf"(/?)([A-Za-z][^\t\n\f\r />]*+)({_ATTRIBUTES})({_SEPARATOR}*+)>?"
# A tag (end-tag slash, name, attributes, the separators before its ">"), a comment's opening,
# another `<!` or `<?` construct, or "</" followed by no letter (these end at the next ">").
_TOKEN = re.compile(rf"<(?:{_TAG}|!--|[!?]|/(?![A-Za-z]))")
# A tag's first MAX_ATTRIBUTES attributes, when one more follows them: where a tag with too many is
# cut (one match instead of a Python loop over a long tag's attributes).
_FIRST_ATTRIBUTES = re.compile(
    rf"(?>{_SEPARATOR}*+(?:{_ATTRIBUTE})){{{MAX_ATTRIBUTES}}}(?={_SEPARATOR}*+[^\t\n\f\r />])"
)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(text: str) -> str:
    """`text` lower-cased as the tokenizer lower-cases names: ASCII letters only. `str.lower`
    would make the Kelvin sign a "k", joining names the parser keeps apart; so would matching
    with Unicode case folding, which takes a long s for an "s"."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


_VOID = _names(
    "area base br col embed hr img input link meta source track wbr param keygen frame basefont"
    " bgsound image"
)
# Never pushed by us: the parser merges them into the ones it already has.
_IGNORED = frozenset({"html", "head", "body"})
# Content read as text up to the matching end tag (in HTML, not inside SVG or MathML).
_RAW_TEXT = _names("script style textarea title xmp iframe noembed noframes")
_FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
# Elements whose end clears the formatting list back to where they began.
_MARKERS = _names("td th caption applet object marquee template")
# The HTML elements the standard calls special: "any other end tag" stops at them, and the
# adoption agency's furthest block is one.
_SPECIAL = _names(
    "address applet area article aside base basefont bgsound blockquote body br button caption"
    " center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form"
    " frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link"
    " listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre"
    " script search section select source style summary table tbody td template textarea tfoot th"
    " thead title tr track ul wbr xmp"
)
# HTML elements where the search for an element "in scope" stops (the standard's default scope,
# with `select` as the parser we use has it); SVG and MathML elements that are special (the
# integration points and MathML's annotation-xml) stop it too. Each scope is kept exactly: an
# element counted open past where the parser closed it is later found by a tag that then closes
# what the parser keeps open.
_SCOPE_STOP = _names("applet caption html table td th marquee object template select")
# What else stops the search for a `p` (button scope) and for a list item (list item scope).
_BUTTON_SCOPE = _names("button")
_LIST_SCOPE = _names("ol ul")
# End tags that close their element through the elements above it when none of those is a
# _SCOPE_STOP (the standard's "in scope" end tags). Any other end tag closes its element only when
# no special element stands above it, as the standard's "any other end tag" does; the table's own
# end tags and a template's have their own rules (`_Model.end`).
_END_IN_SCOPE = _names(
    "address article aside blockquote button center details dialog dir div dl fieldset figcaption"
    " figure footer header hgroup listing main menu nav ol pre search section summary ul p li dd dt"
    " h1 h2 h3 h4 h5 h6 applet marquee object select"
)
# A table's parts: the parser ignores their tags outside a table, and inside one a part's start
# tag first closes what stands above the table, section or row that holds it.
_TABLE_PARTS = _names("caption col colgroup tbody thead tfoot tr td th")
_CELLS = _names("td th")
# Where a part's start tag closes back to: the nearest of these open elements stays.
_PART_CONTEXT: dict[str, frozenset[str]] = {
    "td": _names("tr tbody thead tfoot table template"),
    "th": _names("tr tbody thead tfoot table template"),
    "tr": _names("tbody thead tfoot table template"),
}
_TABLE_CONTEXT = _names("table template")
_TABLE = _names("table")
_TEMPLATE = _names("template")
_CELL_OR_CAPTION = _names("td th caption")
_TABLE_INNER = _names("td th caption template")  # in these, a table's start tag nests a table
# Start tags that close an open <p> (the standard's "close a p element in button scope").
_CLOSES_P = _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption figure"
    " footer header hgroup main menu nav ol p search section summary ul h1 h2 h3 h4 h5 h6 pre"
    " listing form plaintext table hr xmp li dd dt"
)
# A list item's start tag closes the nearest open one of its family unless a special element
# other than these stands between them.
_LIST_ITEM_PASS = _names("address div p")
_LIST_ITEMS: dict[str, frozenset[str]] = {
    "li": frozenset({"li"}),
    "dd": frozenset({"dd", "dt"}),
    "dt": frozenset({"dd", "dt"}),
}
_FOREIGN_ROOTS = frozenset({"svg", "math"})
# Where content is HTML again, by namespace (and MathML's annotation-xml when its encoding says
# HTML): an element of the same name in the other namespace is none.
_INTEGRATION_POINTS = {
    "svg": _names("foreignobject desc title"),
    "math": _names("mi mo mn ms mtext"),
}
_HTML_ENCODINGS = frozenset({"text/html", "application/xhtml+xml"})
# A frame's kind: HTML, SVG, MathML, or an SVG/MathML element at which content is HTML again.
_HTML, _SVG, _MATH, _POINT = "", "svg", "math", "point"
# HTML start tags that end SVG/MathML content; `<font>` does when it has one of _FONT_BREAKOUT's
# attributes (taking one that has not for HTML would read what follows an `<xmp>` in it as text).
_BREAKOUT = _names(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li"
    " listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var"
)
_FONT_BREAKOUT = _names("color face size")
_ENDS_FOREIGN = _names("p br")  # end tags that end SVG/MathML content
_ATTRIBUTE_PARTS = re.compile(
    rf"""{_SEPARATOR}*+([^\t\n\f\r />][^\t\n\f\r />=]*+)"""
    rf"""(?:{_SPACE}*+={_SPACE}*+(?:"([^"]*+)"|'([^']*+)'|([^\t\n\f\r >]*+)))?"""
)


def _attribute_values(attributes: str) -> dict[str, str]:
    """A tag's attributes by lowercase name, each the first of its name (as the parser keeps)."""
    values: dict[str, str] = {}
    for found in _ATTRIBUTE_PARTS.finditer(attributes):
        name, *value = found.groups()
        values.setdefault(ascii_lower(name), next((v for v in value if v is not None), ""))
    return values


def _breaks_out(name: str, attributes: str) -> bool:
    """True when start tag `name` with `attributes` ends SVG/MathML content."""
    if name != "font":
        return name in _BREAKOUT
    return not _FONT_BREAKOUT.isdisjoint(_attribute_values(attributes))


def _foreign_kind(name: str, namespace: str, attributes: str) -> str:
    """The kind of frame an SVG or MathML element `name` opens in `namespace`."""
    if name in _INTEGRATION_POINTS[namespace]:
        return _POINT
    if name == "annotation-xml" and namespace == _MATH:
        encoding = _attribute_values(attributes).get("encoding", "")
        return _POINT if ascii_lower(encoding) in _HTML_ENCODINGS else _MATH
    return namespace


_A = frozenset({"a"})
_HEADINGS = _names("h1 h2 h3 h4 h5 h6")
# What the standard's "generate implied end tags" closes while it is the current node.
_IMPLIED_END = _names("dd dt li optgroup option p rb rp rt rtc")
_RUBY_PARTS = _names("rb rtc rp rt")
# Start tags that first end an open element of their own name: what is above it closes too.
_ENDS_OWN = _names("button nobr")
_ENDS_SELECT = _names("input keygen")
_OPTIONS = frozenset({"option", "optgroup"})  # close only the current node (see _close_option)
_MAY_CLOSE = (
    _CLOSES_P | frozenset(_LIST_ITEMS) | _A | _OPTIONS | _RUBY_PARTS | _ENDS_OWN
)  # may close others
# Void elements that close nothing: outside SVG and MathML their start tag changes no count.
_PLAIN_VOID = _VOID - _MAY_CLOSE - _OPTIONS - _FOREIGN_ROOTS - _TABLE_PARTS - {"select"}
# Start tags that only open an element (outside SVG and MathML, below the depth bound): no implied
# ends, no formatting entry, no select or option count, no table or form rules.
_NOT_PLAIN = (
    _MAY_CLOSE
    | _OPTIONS
    | _FORMATTING
    | _VOID
    | _FOREIGN_ROOTS
    | _TABLE_PARTS
    | _names("select table form frameset")
)
# Where dropping a full select's excess options stops: its end tag, or a tag that ends the select
# (in a table, its structure tags do; outside one the parser ignores them, so keeping them alters
# nothing).
_SELECT_END = re.compile(
    r"</?(?:select|input|keygen|textarea|caption|table|tbody|tfoot|thead|tr|td|th)[\t\n\f\r />]",
    re.IGNORECASE | re.ASCII,
)


# One open element: its name, its kind (_HTML, _SVG, _MATH, _POINT), the formatting list's length
# when it is a marker (else -1), and the stack positions of the nearest element at or below it
# that is a _SCOPE_STOP, that is _SPECIAL, that is _SPECIAL but not _LIST_ITEM_PASS, and that is
# HTML (-1 for none). One tuple per element keeps a push and a pop to one list call.
_Frame = tuple[str, str, int, int, int, int, int]
_BOTTOM: _Frame = ("", _HTML, -1, -1, -1, -1, -1)
# The name of an element the parser took off the stack from under others (the adoption agency's
# formatting element, a misnested form): its frame stays, counted, and no tag finds it.
_GONE = "#gone"


class _Model:
    """The parser's stack of open elements and formatting list, as far as tags tell them.

    Finding an open element is O(1): each name keeps the stack positions it is open at, and each
    frame keeps the nearest element below it that stops a search.
    """

    __slots__ = (
        "dropped",
        "foreign_open",
        "form_open",
        "formatting",
        "frames",
        "options",
        "page_options",
        "where",
        "where_foreign",
    )

    def __init__(self) -> None:
        self.frames: list[_Frame] = []  # the stack of open elements, bottom first
        self.formatting: list[str] = []  # names of formatting entries (open or to be reopened)
        self.dropped: dict[str, int] = {}  # start tags dropped, by name, whose end tags go too
        self.foreign_open = 0  # SVG/MathML elements on the stack
        self.form_open = False  # the parser's form element pointer is set
        # name -> stack positions holding it: HTML elements, and SVG/MathML ones apart (an end
        # tag in HTML content never ends the one, in SVG or MathML content ends the other first)
        self.where: dict[str, list[int]] = {}
        self.where_foreign: dict[str, list[int]] = {}
        self.options = 0  # options and optgroups opened since the last <select>
        self.page_options = 0  # options and optgroups opened in any select

    def top(self) -> _Frame:
        return self.frames[-1] if self.frames else _BOTTOM

    def in_foreign(self) -> bool:
        if not self.foreign_open:
            return False
        kind = self.frames[-1][1]
        return kind in (_SVG, _MATH)

    def push(self, name: str, kind: str) -> None:
        frames = self.frames
        index = len(frames)
        below = frames[-1] if frames else _BOTTOM
        if kind:
            special = scope = kind == _POINT or (kind == _MATH and name == "annotation-xml")
        else:
            special, scope = name in _SPECIAL, name in _SCOPE_STOP
        frames.append(
            (
                name,
                kind,
                len(self.formatting) if name in _MARKERS and not kind else -1,
                index if scope else below[3],
                index if special else below[4],
                index if special and name not in _LIST_ITEM_PASS else below[5],
                below[6] if kind else index,
            )
        )
        where = self.where_foreign if kind else self.where
        spots = where.get(name)
        if spots is None:
            where[name] = [index]
        else:
            spots.append(index)
        if kind:
            self.foreign_open += 1

    def pop_to(self, index: int) -> None:
        """Close every element from stack position `index` up."""
        frames, where = self.frames, self.where
        while len(frames) > index:
            name, kind, mark, *_ = frames.pop()
            if kind:
                self.where_foreign[name].pop()
                self.foreign_open -= 1
            else:
                where[name].pop()
            if mark >= 0:
                del self.formatting[mark:]

    def bury(self, name: str) -> None:
        """Take the nearest open HTML `name` off the stack from under the elements above it, as
        the parser does (they stay open); its frame stays counted, so the count errs deeper."""
        self.bury_at(self.where[name][-1])

    def bury_at(self, index: int) -> None:
        """Take the element at `index` off the stack so (see `bury`)."""
        name, kind, *rest = self.frames[index]
        where = self.where_foreign if kind else self.where
        where[name].remove(index)
        self.frames[index] = (_GONE, kind, rest[0], rest[1], rest[2], rest[3], rest[4])
        where.setdefault(_GONE, []).append(index)

    def scope_floor(self, name: str) -> int:
        """The stack position of the nearest element that stops the search for an open `name`
        in the scope its end tag uses (-1 for none)."""
        floor = self.top()[3]
        if name == "p":
            return max(floor, self.last(_BUTTON_SCOPE))
        if name == "li":
            return max(floor, self.last(_LIST_SCOPE))
        return floor

    def last(self, names: frozenset[str]) -> int:
        """The stack position of the nearest open element named in `names`, or -1."""
        best = -1
        for name in names:
            spots = self.where.get(name)
            if spots and spots[-1] > best:
                best = spots[-1]
        return best

    def start(self, name: str, self_closing: bool, attributes: str) -> bool:
        """Account for a start tag; False when it must be dropped. The choice comes before any of
        the tag's effects (implied ends, SVG/MathML left, a table's stack cleared): the parser never
        sees a dropped tag, so none of them happens. (In SVG and MathML, `<input>` and the like
        are elements like any other.) An HTML `<frameset>` always goes: it either changes nothing
        or turns the rest of the page into a frameset document, whose rules no shop page needs."""
        if (
            (len(self.frames) >= MAX_DEPTH and (name not in _VOID or self.foreign_open))
            or (name in _FORMATTING and len(self.formatting) >= MAX_FORMATTING)
            or (name == "frameset" and not self.in_foreign())
        ):
            self.dropped[name] = self.dropped.get(name, 0) + 1
            return False
        self._open(name, self_closing, attributes)
        return True

    def _open(self, name: str, self_closing: bool, attributes: str) -> None:
        if self.foreign_open or name in _FOREIGN_ROOTS:
            self._open_foreign(name, self_closing, attributes)
            return
        if name in _IGNORED:
            return  # merged into the page's own (an element of that name in SVG is not)
        if name in _TABLE_PARTS or name == "table":
            if not self._table_start(name) or name in ("col", "colgroup"):
                return  # ignored by the parser, or a column group (it holds only columns)
        elif name == "form" and self.form_open and not self.where.get("template"):
            return  # the parser ignores a form inside a form
        elif name in _ENDS_SELECT and self.where.get("select"):
            select = self.where["select"][-1]
            if select >= self.top()[3]:
                self.pop_to(select)  # an input ends the select it is in
        if name == "select":
            self.options = 0
        elif name in _OPTIONS and self.where.get("select"):
            self.options += 1
            self.page_options += 1
        if name in _MAY_CLOSE:
            self._implied_closes(name)
        if name in _VOID:
            return
        if name in _FORMATTING:
            self.formatting.append(name)
        elif name == "form" and not self.where.get("template"):
            self.form_open = True
        self.push(name, _HTML)

    def _open_foreign(self, name: str, self_closing: bool, attributes: str) -> None:
        """A start tag while SVG or MathML is open (or one that opens it)."""
        if self.in_foreign() and _breaks_out(name, attributes):
            while self.in_foreign():
                self.pop_to(len(self.frames) - 1)
        if not (self.in_foreign() or name in _FOREIGN_ROOTS):
            self.foreign_open, open_before = 0, self.foreign_open
            try:
                self._open(name, self_closing, attributes)  # HTML inside an integration point
            finally:
                self.foreign_open += open_before
        elif not self_closing:
            namespace = self.frames[-1][1] if self.in_foreign() else name
            self.push(name, _foreign_kind(name, namespace, attributes))

    def _table_start(self, name: str) -> bool:
        """Close what a table's start tag, or a part's, closes; False when the parser ignores it
        (a part outside any table)."""
        if name == "table":
            table = self.last(_TABLE)
            if table > self.last(_TABLE_INNER):
                self.pop_to(table)  # a table's start tag in a table (not in a cell) ends that one
            return True
        cell = self.last(_CELL_OR_CAPTION)
        if cell > self.last(_TABLE_CONTEXT):
            self.pop_to(cell)  # a part's start tag closes the open cell or caption first
        context = self.last(_PART_CONTEXT.get(name, _TABLE_CONTEXT))
        if context < 0:
            return False
        holder = self.frames[context][0]
        if holder != "template":
            self.pop_to(context + 1)  # the parser clears the stack back to the table or row
            # and opens the section and row a cell needs, the section a row needs
            if holder == "table" and (name in _CELLS or name == "tr"):
                self.push("tbody", _HTML)
            if name in _CELLS and holder != "tr":
                self.push("tr", _HTML)
        return True

    def end(self, name: str) -> bool:
        """Account for an end tag; False when it must be dropped (its start tag was)."""
        if self.dropped.get(name):
            self.dropped[name] -= 1
            return False
        top = self.top()
        if top[1]:
            # SVG or MathML content: the nearest element of that name above the nearest HTML one
            # ends; else the end tag is read as in HTML content (`</p>` and `</br>` first end the
            # SVG or MathML content, as their start tags do).
            spots = self.where_foreign.get(name)
            if spots and spots[-1] > top[6]:
                self.pop_to(spots[-1])
                return True
            if name in _ENDS_FOREIGN:
                while self.in_foreign():
                    self.pop_to(len(self.frames) - 1)
        if name == "form" and not self.where.get("template"):
            self._end_form()
            return True
        if name in _HEADINGS:
            index = self.last(_HEADINGS)  # any heading's end tag ends the nearest heading
            if index >= 0 and index >= self.frames[-1][3]:
                self.pop_to(index)
            return True
        spots = self.where.get(name)
        if not spots:
            return True
        index, top = spots[-1], self.frames[-1]
        if name in _FORMATTING and name in self.formatting:
            if index >= top[3]:  # in scope: the adoption agency runs
                self._adopt(name, index)
        elif name in _END_IN_SCOPE:
            if index >= self.scope_floor(name):
                self.pop_to(index)
        elif name in _TABLE_PARTS or name == "table":
            # in table scope: no table (but the one ending) or template above it
            if index > self.last(_TEMPLATE if name == "table" else _TABLE_CONTEXT):
                self.pop_to(index)
        elif name == "template" or index >= top[4]:
            # a template's end tag closes all above it; "any other end tag" stops at a special
            self.pop_to(index)
        return True

    def _adopt(self, name: str, index: int) -> bool:
        """The adoption agency's effect on the stack for the formatting element `name` open at
        `index`. With no special element above it, it and all above it close. Else each special
        element above it in turn (at most 8) is a furthest block: the formatting element and the
        elements between it and the last block that are neither special nor formatting leave the
        stack (counted still, found by no tag), and what is above the last block closes when
        fewer than 8 took a turn. True when the element closed (its entry goes too)."""
        frames = self.frames
        blocks: list[int] = []  # special elements above it, top first
        at = frames[-1][4]
        while at > index:
            blocks.append(at)
            at = frames[at - 1][4]
        if not blocks:
            self.pop_to(index)
            self._forget(name)
            return True
        last_block = blocks[-min(len(blocks), 8)]
        if len(blocks) < 8:
            self.pop_to(last_block + 1)
        for at in range(index + 1, last_block):
            frame_name, kind, _, _, nearest_special, _, _ = frames[at]
            formatting = not kind and frame_name in _FORMATTING
            if nearest_special != at and frame_name != _GONE and not formatting:
                self.bury_at(at)
        self.bury(name)
        return False

    def _forget(self, name: str) -> None:
        """Remove the last formatting entry named `name`, if any."""
        formatting = self.formatting
        for at in range(len(formatting) - 1, -1, -1):
            if formatting[at] == name:
                del formatting[at]
                return

    def _end_form(self) -> None:
        """`</form>` outside a template clears the form pointer and takes the form off the stack
        alone when it is in scope: what was opened in it stays open."""
        self.form_open = False
        spots = self.where.get("form")
        if spots and spots[-1] >= self.frames[-1][3]:
            if spots[-1] == len(self.frames) - 1:
                self.pop_to(spots[-1])
            else:
                self.bury("form")

    def _generate_implied_ends(self, spare: str) -> None:
        """Close the current node while it is one whose end tag may be left out (but `spare`)."""
        frames = self.frames
        while frames and frames[-1][0] in _IMPLIED_END and frames[-1][0] != spare:
            self.pop_to(len(frames) - 1)

    def select_is_full(self) -> bool:
        """True when an open select may take no more options (its own or the page's bound)."""
        return bool(self.where.get("select")) and (
            self.options >= MAX_OPTIONS or self.page_options >= MAX_PAGE_OPTIONS
        )

    def _select_in_scope(self) -> bool:
        spots = self.where.get("select")
        if not spots:
            return False
        return spots[-1] >= self.top()[3]

    def _close_option(self, name: str) -> None:
        """With a select in scope, an option or optgroup first closes the open elements whose
        end tags may be left out (an option spares its optgroup); elsewhere it closes a current
        option only, so one nested in a `<span>` inside another option stays open."""
        if self._select_in_scope():
            self._generate_implied_ends("optgroup" if name == "option" else "")
        elif self.top()[0] == "option":
            self.pop_to(len(self.frames) - 1)

    def _implied_closes(self, name: str) -> None:
        """What a start tag closes before its element opens, in the standard's order."""
        if name in _OPTIONS:
            self._close_option(name)
        family = _LIST_ITEMS.get(name)
        if family is not None:
            index = self.last(family)
            if index >= 0 and index >= self.top()[5]:
                self.pop_to(index)
        if name in _CLOSES_P:
            spots = self.where.get("p")
            if spots and spots[-1] >= self.scope_floor("p"):
                self.pop_to(spots[-1])
            if name in _HEADINGS and self.top()[0] in _HEADINGS:
                self.pop_to(len(self.frames) - 1)  # a heading does not nest in a heading
            if name == "hr" and self._select_in_scope():
                self._generate_implied_ends("")  # after the paragraph, as the standard orders
        if (
            name in _RUBY_PARTS
            and self.where.get("ruby")
            and self.where["ruby"][-1] >= self.top()[3]
        ):
            self._generate_implied_ends("rtc" if name in ("rp", "rt") else "")
        if name in _ENDS_OWN:
            spots = self.where.get(name)
            if spots and spots[-1] >= self.top()[3]:
                if name == "nobr":
                    self._adopt(name, spots[-1])  # as `</nobr>` would
                else:
                    self.pop_to(spots[-1])
        if name == "a" and "a" in self.formatting:
            # A new link first ends the one still open, as `</a>` would, then takes it off the
            # stack and the list whatever that left.
            spots = self.where.get("a")
            if spots:
                if spots[-1] < self.top()[3]:
                    self.bury("a")  # out of scope: the agency does nothing, the removal does
                elif self._adopt("a", spots[-1]):
                    return  # it closed, its entry with it
            self._forget("a")


def too_many_tags(html: str) -> int | None:
    """How many "<" the page holds, when that is more than MAX_TAGS (else None)."""
    count = html.count("<")
    return count if count > MAX_TAGS else None


def bounded_html(html: str) -> str:
    """`html` with nesting, open formatting elements, attributes per tag and options per select
    bounded (see the module docstring); the same string when nothing needed bounding."""
    if not _many_options(html) and _plain(html):
        return html
    return _bounded(html)


_OPTION_TAG = re.compile(r"<opt(?:ion|group)", re.IGNORECASE | re.ASCII)


def _many_options(html: str) -> bool:
    """True when the page may hold more options than one select may (in all its selects)."""
    found = _OPTION_TAG.finditer(html)
    return sum(1 for _ in itertools.islice(found, MAX_OPTIONS + 1)) > MAX_OPTIONS


# SVG elements a page's icons are drawn with: none of them ends SVG content or holds HTML.
_SVG_SHAPES = _names(
    "svg g path circle rect line polyline polygon ellipse defs use symbol lineargradient"
    " radialgradient stop clippath mask"
)
_QUICK_SKIP = _VOID | _IGNORED
# Start tags after which the quick count cannot go on: SVG the icon pattern did not take, MathML,
# a frameset (the page may turn into a frameset document), plaintext (the rest is text).
_QUICK_STOP = _names("svg math frameset plaintext")


def _plain(html: str) -> bool:
    """A quick over-estimate: True when no tag holds more than MAX_ATTRIBUTES attributes and, even
    counting every start tag open until its own end tag closes it (no implied ends), nothing nests
    too deep. A formatting element left open stays counted, so the formatting bound holds too.
    False when unsure: SVG other than icons of simple shapes, MathML, a script that may hold
    another's start in an escaped section.

    Most of a page never reaches the loop: `_QUICK_TOKEN` passes over text, comments, void tags,
    elements that hold only text and scripts without escaped sections, which leave the count as
    they found it; what remains are the tags that open or close an element with markup inside."""
    limit = MAX_DEPTH - MAX_FORMATTING - 1  # an element passed over holding text opens one more
    stack: list[str] = []
    tokens: list[tuple[str, ...]] = _QUICK_TOKEN.findall(html)
    for token in tokens:
        _, icon, raw, raw_attributes, script, script_attributes, script_text = token[:7]
        slash, name, attributes = token[7:]
        if name:
            if len(attributes) > _LONG_TAG and _FIRST_ATTRIBUTES.match(attributes) is not None:
                return False
            name = ascii_lower(name)
            if slash:
                if stack and stack[-1] == name:
                    stack.pop()
                continue
            if name in _QUICK_SKIP:
                continue
            if name in _QUICK_STOP:
                return name == "plaintext"
        elif raw or script:
            if script and "<!--" in script_text and _SCRIPT_START.search(script_text):
                return False
            attributes = raw_attributes or script_attributes
            if len(attributes) > _LONG_TAG and _FIRST_ATTRIBUTES.match(attributes) is not None:
                return False
            name = ascii_lower(raw or script)
        else:
            if icon and not _icon_closes(icon):
                return False
            continue
        stack.append(name)
        if len(stack) >= limit:
            return False
    return True


def _icon_closes(icon: str) -> bool:
    """True when an icon's shapes (its `<svg>` first) nest as written and its last tag ends them
    all: every end tag ends the shape on top, and a shape's self-closing tag opens none."""
    stack: list[str] = []
    for slash, name, trailing in _ICON_TAG.findall(icon):
        name = ascii_lower(name)
        if slash:
            if not stack or stack.pop() != name:
                return False
        elif not trailing.endswith("/"):
            stack.append(name)
    return not stack


def _alternatives(names: frozenset[str]) -> str:
    return "|".join(sorted(names, key=lambda name: (-len(name), name)))


_TEXT_UNTIL = r"[^<]*+(?:<(?!{stop})[^<]*+)*+"
# A tag's first attributes, up to MAX_ATTRIBUTES: a tag passed over by `_QUICK_TOKEN` holds no
# more, so its attributes need no count. Then what ends the tag (">", or the end of the page).
_FEW_ATTRIBUTES = rf"(?:{_SEPARATOR}*+(?:{_ATTRIBUTE})){{0,{MAX_ATTRIBUTES}}}+"
_TAG_END = rf"{_SEPARATOR}*+(?:>|\Z)"
_CLOSED = rf"{_SEPARATOR}*+>"
_COMMENT_AFTER_LT = r"!--(?:-?>|[^-]*+(?:-(?!-!?>)[^-]*+)*+(?:--!?>)?)"
_COMMENT = "<" + _COMMENT_AFTER_LT
# What leaves the quick count as it found it, each read as the tokenizer reads it: text, and
# after a "<": an element holding only text, closed by its own end tag (an SVG or MathML root, a
# frameset or plaintext aside); a script without "<!--" and its end tag; a void or ignored
# element's tag; a comment; another `<!` or `<?` construct, or "</" and no letter (up to the next
# ">"). The name's group is entered only where a name starts: a group left half-matched inside a
# repetition would hold a stale start (which Python's `re` reports as a SystemError).
_PASSED_OVER = (
    rf"(?:[^<]++|<(?:"
    rf"(?!(?ai:{_alternatives(_QUICK_STOP)}){_NAME_END})(?=[A-Za-z])([A-Za-z][^\t\n\f\r />]*+)"
    rf"{_FEW_ATTRIBUTES}{_CLOSED}[^<]*+</(?ai:\1){_CLOSED}"
    rf"|(?ai:script){_NAME_END}{_FEW_ATTRIBUTES}{_CLOSED}"
    rf"[^<]*+(?:<(?!/(?ai:script){_NAME_END}|!--)[^<]*+)*+"
    rf"</(?ai:script){_NAME_END}{_FEW_ATTRIBUTES}{_TAG_END}"
    rf"|/?(?ai:{_alternatives(_QUICK_SKIP)}){_NAME_END}{_FEW_ATTRIBUTES}{_TAG_END}"
    rf"|{_COMMENT_AFTER_LT}|[!?][^>]*+>?|/(?![A-Za-z])[^>]*+>?"
    rf"))"
)
_SHAPES_INSIDE = _alternatives(_SVG_SHAPES - {"svg"})
# An icon: an <svg> holding only simple shapes' tags, text and comments, up to
# its first end tag; `_icon_closes` checks that its shapes nest as written.
_ICON = (
    rf"<(?ai:svg){_NAME_END}{_FEW_ATTRIBUTES}{_CLOSED}"
    rf"(?:[^<]++|{_COMMENT}|<(?ai:{_alternatives(_SVG_SHAPES)}){_NAME_END}{_FEW_ATTRIBUTES}{_CLOSED}"
    rf"|</(?ai:{_SHAPES_INSIDE}){_CLOSED})*+"
    rf"</(?ai:svg){_CLOSED}"
)
_ICON_TAG = re.compile(rf"<(/?)([A-Za-z][^\t\n\f\r />]*+){_FEW_ATTRIBUTES}({_SEPARATOR}*+)>")
# `_plain`'s tokens, read by one `findall`, each after what is passed over (its group is the
# last text-only element's name, for its end tag to match): an icon; a raw text
# element with its text; a script with its text up to its first end tag (exact unless an escaped
# section holds "<script"); a tag. A match is empty where a "<" opens nothing.
_QUICK_TOKEN = re.compile(
    rf"{_PASSED_OVER}*+(?:({_ICON})"
    rf"|<((?ai:style|textarea|title|xmp|iframe|noembed|noframes)){_NAME_END}"
    rf"({_ATTRIBUTES}){_SEPARATOR}*+>?"
    + _TEXT_UNTIL.format(stop=rf"/(?ai:\3){_NAME_END}")
    + rf"|<((?ai:script)){_NAME_END}({_ATTRIBUTES}){_SEPARATOR}*+>?"
    + "("
    + _TEXT_UNTIL.format(stop=rf"/(?ai:script){_NAME_END}")
    + ")"
    + rf"|<(/?)([A-Za-z][^\t\n\f\r />]*+)({_ATTRIBUTES}){_SEPARATOR}*+>?"
    + ")?"
)
_SCRIPT_START = re.compile(rf"<(?ai:script){_NAME_END}")


def _bounded(html: str) -> str:
    model = _Model()
    where, dropped, frames = model.where, model.dropped, model.frames
    cuts: list[tuple[int, int, str]] = []  # (start, end, replacement) in document order
    search = _TOKEN.search
    pos = 0  # where the next token is looked for: past comments and raw text
    while (found := search(html, pos)) is not None:
        start, pos = found.span()
        slash, name, attributes, trailing = found.groups()
        if name is None:
            pos = _after_markup_declaration(
                html, found, cdata=bool(frames) and frames[-1][1] != _HTML
            )
            continue
        if pos - start > _LONG_TAG:
            attributes = _keep_attributes(cuts, found)
        name = ascii_lower(name)
        if slash:
            # An end tag of nothing open and nothing dropped changes nothing (but `</form>` clears
            # the form pointer): most are that.
            if (
                where.get(name)
                or dropped.get(name)
                or name == "form"
                or name in _HEADINGS
                or (model.foreign_open and (name in _ENDS_FOREIGN or model.where_foreign.get(name)))
            ) and not model.end(name):
                _cut(cuts, start, pos)
            continue
        if (name in _PLAIN_VOID or name in _IGNORED) and not model.foreign_open:
            continue  # no element to count (`_Model.start` would change nothing), no raw text
        if name in _OPTIONS and model.select_is_full():
            pos = _select_end(html, start)
            _cut(cuts, start, pos)
            continue
        if name not in _NOT_PLAIN and not model.foreign_open and len(frames) < MAX_DEPTH:
            model.push(name, _HTML)  # what `_Model.start` does for it, without the checks
        elif not model.start(name, trailing.endswith("/"), attributes):
            _cut(cuts, start, pos)
            continue  # the parser never sees it: what follows is markup, whatever its name
        if not frames or frames[-1][0] != name or frames[-1][1]:
            continue  # not opened as an HTML element: in SVG or MathML, <style> holds markup
        if name in _RAW_TEXT:
            pos = _raw_text_end(html, name, pos)
        elif name == "plaintext":
            break
    return _apply(html, cuts)


def _keep_attributes(cuts: list[tuple[int, int, str]], found: re.Match[str]) -> str:
    """Cut a long tag to its first MAX_ATTRIBUTES attributes, when it holds more; the attributes
    the parser will see."""
    first = _FIRST_ATTRIBUTES.match(found.string, found.end(2), found.end(3))
    if first is None:
        return found.group(3)
    cuts.append(
        (
            found.start(),
            found.end(),
            found.string[found.start() : first.end()] + (found.group(4) or "") + ">",
        )
    )
    return found.string[found.end(2) : first.end()]


def _select_end(html: str, start: int) -> int:
    """Where the tag that ends an open select begins (or the page's end)."""
    found = _SELECT_END.search(html, start)
    return len(html) if found is None else found.start()


def _cut(cuts: list[tuple[int, int, str]], start: int, end: int) -> None:
    """Drop html[start:end], joining it to the drop just before it (runs of dropped tags)."""
    if cuts and cuts[-1][0] == start:  # the tag was cut to fewer attributes: it goes whole
        cuts.pop()
    if cuts and cuts[-1][1] == start and not cuts[-1][2]:
        cuts[-1] = (cuts[-1][0], end, "")
    else:
        cuts.append((start, end, ""))


# The first of a comment's two endings ("-->", and "--!>" which pages rarely hold: searching for
# each on its own would scan the rest of the page for it at every comment).
_COMMENT_END = re.compile("--!?>")


def _after_markup_declaration(html: str, found: re.Match[str], *, cdata: bool = False) -> int:
    """Where a comment (`<!--`), or a `<!...>` / `<?...>` / `</...>` construct, ends; with
    `cdata` (SVG or MathML is the current node), `<![CDATA[` starts text up to `]]>`."""
    start = found.start()
    if found.group(0) == "<!--":
        if html.startswith(("<!-->", "<!--->"), start):
            return html.find(">", start) + 1
        end = _COMMENT_END.search(html, start + 4)
        return end.end() if end is not None else len(html)
    if cdata and html.startswith("<![CDATA[", start):
        close = html.find("]]>", start + 9)
        return len(html) if close < 0 else close + 3
    close = html.find(">", found.end())
    return len(html) if close < 0 else close + 1


_NAME_ENDS = frozenset("\t\n\f\r />")


def _raw_text_end(html: str, name: str, start: int) -> int:
    """Where raw text opened by `<name>` ends: at its end tag (`</name` in any letter case, then
    a space, "/" or ">"); a script's, where its escaped sections let it (`_script_end`)."""
    if name == "script":
        return _script_end(html, start)
    width = len(name) + 2
    at = html.find("</", start)
    while at >= 0 and not (
        ascii_lower(html[at + 2 : at + width]) == name
        and html[at + width : at + width + 1] in _NAME_ENDS
    ):
        at = html.find("</", at + 2)
    return len(html) if at < 0 else at


_SCRIPT_MARK = re.compile(r"<!--|-->|<(/?)script(?=[\t\n\f\r />])", re.IGNORECASE | re.ASCII)


def _script_end(html: str, start: int) -> int:
    """Where a script's text ends. After "<!--" it is escaped: a "<script" there starts a part
    in which "</script" only ends that part; "-->" ends either (the tokenizer's script states)."""
    escaped = double = False
    pos = start
    while (mark := _SCRIPT_MARK.search(html, pos)) is not None:
        token, pos = mark.group(0), mark.end()
        if token == "<!--":
            # "<!-->" and "<!--->" open and close at once (their dashes end in ">").
            closes = html.startswith((">", "->"), pos)
            escaped, double = (False, False) if closes else (True, double and escaped)
        elif token == "-->":
            escaped = double = False
        elif mark.group(1):  # "</script"
            if not double:
                return mark.start()
            double = False
        elif escaped:  # "<script"
            double = True
    return len(html)


def _apply(html: str, cuts: list[tuple[int, int, str]]) -> str:
    """`html` with each cut made. A dropped range right after a "<" that is text leaves a space:
    joined to what follows the cut, that "<" would open a tag the pass never counted."""
    if not cuts:
        return html
    parts: list[str] = []
    pos = 0
    for start, end, replacement in cuts:
        parts.append(html[pos:start])
        parts.append(replacement or (" " if html[start - 1 : start] == "<" else ""))
        pos = end
    parts.append(html[pos:])
    return "".join(parts)
