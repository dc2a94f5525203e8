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

The pass models the parser's stack the way the HTML standard builds it (void elements, implied
end tags of `p`, `li`, `option`, table cells..., scope rules for end tags, raw text, comments,
SVG/MathML self-closing tags), erring towards counting an element open when unsure, so the real
depth never exceeds what the pass counted by more than the formatting bound. Ordinary pages are
returned unchanged: they nest a few dozen levels.
"""

from __future__ import annotations

import itertools
import re

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
_LONG_TAG = 200  # characters: a shorter start tag cannot hold more than MAX_ATTRIBUTES attributes

# A tag, a comment's opening, or the other `<!` / `<?` constructs (all end at the next ">").
_TOKEN = re.compile(r"<(?:(/?)([A-Za-z][^\t\n\f\r />]*+)|!--|[!?])")
_ATTRIBUTE = re.compile(r"""[^\s"'>/=][^\s"'>/=]*+(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s>]++))?""")


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
_SPECIAL = _names(
    "address applet area article aside base basefont bgsound blockquote body br button caption"
    " center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form"
    " frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link"
    " listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre"
    " script search section select source style summary table tbody td template textarea tfoot th"
    " thead title tr track ul wbr xmp foreignobject desc mi mo mn ms mtext annotation-xml"
)
# Where an end tag's search for its element stops (the standard's scopes, taken together: stopping
# early only leaves an element counted open).
_SCOPE_STOP = _names(
    "applet caption html table td th marquee object template button ol ul select"
    " foreignobject desc mi mo mn ms mtext annotation-xml"
)
# Start tags that close an open <p> (the standard's "close a p element in button scope").
_CLOSES_P = _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption figure"
    " footer header hgroup main menu nav ol p search section summary ul h1 h2 h3 h4 h5 h6 pre"
    " listing form plaintext table hr xmp li dd dt"
)
# A start tag that closes the nearest open element of its family, when no special element stands
# between them (the standard stops at fewer elements for some; stopping early only leaves an
# element counted open).
_SIBLING_CLOSE: dict[str, frozenset[str]] = {
    "li": frozenset({"li"}),
    "dd": frozenset({"dd", "dt"}),
    "dt": frozenset({"dd", "dt"}),
    "tr": frozenset({"tr", "td", "th"}),
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "tbody": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}),
    "thead": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}),
    "tfoot": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}),
}
_FOREIGN_ROOTS = frozenset({"svg", "math"})
_INTEGRATION_POINTS = frozenset(
    {"foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml"}
)
# HTML start tags that end SVG/MathML content (font counted always: erring towards HTML here
# only makes us count more elements open).
_BREAKOUT = _names(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li"
    " listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var"
    " font"
)


_A = frozenset({"a"})
_OPTIONS = frozenset({"option", "optgroup"})  # close only the current node (see _close_option)
_MAY_CLOSE = _CLOSES_P | frozenset(_SIBLING_CLOSE) | _A | _OPTIONS  # may close others
# Void elements that close nothing: outside SVG and MathML their start tag changes no count.
_PLAIN_VOID = _VOID - _MAY_CLOSE - _OPTIONS - _FOREIGN_ROOTS - {"select"}
# Where dropping a full select's excess options stops: its end tag, or a tag that ends the select
# (in a table, its structure tags do; outside one the parser ignores them, so keeping them alters
# nothing).
_SELECT_END = re.compile(
    r"</?(?:select|input|keygen|textarea|caption|table|tbody|tfoot|thead|tr|td|th)[\t\n\f\r />]",
    re.IGNORECASE,
)


class _Model:
    """The parser's stack of open elements and formatting list, as far as tags tell them.

    Finding an open element is O(1): each name keeps the stack positions it is open at, and the
    two sets of elements that stop a search keep, per stack position, the nearest such element.
    """

    __slots__ = (
        "dropped",
        "foreign",
        "foreign_open",
        "formatting",
        "marks",
        "near_scope",
        "near_special",
        "options",
        "page_options",
        "stack",
        "where",
    )

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.foreign: list[bool] = []  # per stack entry: an SVG/MathML element
        self.marks: list[int] = []  # per stack entry: formatting list length at a marker, or -1
        self.formatting: list[str] = []  # names of formatting entries (open or to be reopened)
        self.dropped: dict[str, int] = {}  # start tags dropped, by name, whose end tags go too
        self.foreign_open = 0  # SVG/MathML elements on the stack
        self.where: dict[str, list[int]] = {}  # name -> stack positions holding it
        self.near_scope = [-1]  # per stack entry: the nearest element of _SCOPE_STOP
        self.near_special = [-1]  # per stack entry: the nearest element of _SPECIAL
        self.options = 0  # options and optgroups opened since the last <select>
        self.page_options = 0  # options and optgroups opened in any select

    def in_foreign(self) -> bool:
        return (
            bool(self.foreign_open)
            and self.foreign[-1]
            and self.stack[-1] not in _INTEGRATION_POINTS
        )

    def push(self, name: str, foreign: bool) -> None:
        index = len(self.stack)
        self.stack.append(name)
        self.foreign.append(foreign)
        self.marks.append(len(self.formatting) if name in _MARKERS and not foreign else -1)
        spots = self.where.get(name)
        if spots is None:
            self.where[name] = [index]
        else:
            spots.append(index)
        self.near_scope.append(index if name in _SCOPE_STOP else self.near_scope[-1])
        self.near_special.append(index if name in _SPECIAL else self.near_special[-1])
        if foreign:
            self.foreign_open += 1

    def pop(self) -> None:
        name = self.stack.pop()
        self.where[name].pop()
        self.near_scope.pop()
        self.near_special.pop()
        if self.foreign.pop():
            self.foreign_open -= 1
        mark = self.marks.pop()
        if mark >= 0:
            del self.formatting[mark:]

    def pop_to(self, index: int) -> None:
        while len(self.stack) > index:
            self.pop()

    def find(self, names: frozenset[str], near: list[int] | None) -> int:
        """Index of the nearest open element named in `names` with no stop element (`near`
        holds the nearest ones) above it, or -1."""
        best = -1
        for name in names:
            spots = self.where.get(name)
            if spots and spots[-1] > best:
                best = spots[-1]
        if best < 0 or (near is not None and best < near[-1]):
            return -1
        return best

    def start(self, name: str, self_closing: bool) -> bool:
        """Account for a start tag; False when it must be dropped."""
        if self.foreign_open or name in _FOREIGN_ROOTS:
            return self._start_foreign(name, self_closing)
        if name == "select":
            self.options = 0
        elif name in _OPTIONS and self.where.get("select"):
            self.options += 1
            self.page_options += 1
        if name in _MAY_CLOSE:
            self._implied_closes(name)
        if name in _VOID:
            return True
        if len(self.stack) >= MAX_DEPTH or (
            name in _FORMATTING and len(self.formatting) >= MAX_FORMATTING
        ):
            self.dropped[name] = self.dropped.get(name, 0) + 1
            return False
        if name in _FORMATTING:
            self.formatting.append(name)
        self.push(name, False)
        return True

    def _start_foreign(self, name: str, self_closing: bool) -> bool:
        """A start tag while SVG or MathML is open (or one that opens it)."""
        if self.in_foreign() and name in _BREAKOUT:
            while self.stack and self.foreign[-1] and self.stack[-1] not in _INTEGRATION_POINTS:
                self.pop()
        if not (self.in_foreign() or name in _FOREIGN_ROOTS):
            self.foreign_open, open_before = 0, self.foreign_open
            try:
                return self.start(name, self_closing)  # HTML inside an integration point
            finally:
                self.foreign_open += open_before
        if self_closing:
            return True
        if len(self.stack) >= MAX_DEPTH:
            self.dropped[name] = self.dropped.get(name, 0) + 1
            return False
        self.push(name, True)
        return True

    def end(self, name: str) -> bool:
        """Account for an end tag; False when it must be dropped (its start tag was)."""
        if self.dropped.get(name):
            self.dropped[name] -= 1
            return False
        spots = self.where.get(name)
        if not spots:
            return True
        near = self.near_scope if name in _SPECIAL else self.near_special
        if spots[-1] >= near[-1]:
            self.pop_to(spots[-1])
            if name in _FORMATTING and name in self.formatting:
                last = len(self.formatting) - 1 - self.formatting[::-1].index(name)
                del self.formatting[last]
        return True

    def select_is_full(self) -> bool:
        """True when an open select may take no more options (its own or the page's bound)."""
        return bool(self.where.get("select")) and (
            self.options >= MAX_OPTIONS or self.page_options >= MAX_PAGE_OPTIONS
        )

    def _close_option(self, name: str) -> None:
        """An option or optgroup closes the current node only (in a select, or not), so one
        nested in a `<span>` inside another option stays open."""
        if self.stack and self.stack[-1] == "option":
            self.pop()
        if name == "optgroup" and self.where.get("select") and self.stack[-1:] == ["optgroup"]:
            self.pop()

    def _implied_closes(self, name: str) -> None:
        if name in _OPTIONS:
            self._close_option(name)
        if name in _CLOSES_P:
            spots = self.where.get("p")
            if spots and spots[-1] >= self.near_scope[-1]:
                self.pop_to(spots[-1])
        family = _SIBLING_CLOSE.get(name)
        if family is not None:
            index = self.find(family, self.near_special)
            if index >= 0:
                self.pop_to(index)
        if name == "a" and "a" in self.formatting:
            self.formatting.remove("a")  # a new link closes the one still open
            index = self.find(_A, None)
            if index >= 0:
                self.pop_to(index)


_QUICK_TAG = re.compile(r"<(/?[A-Za-z][-A-Za-z0-9]*+)")
_QUICK_SKIP = frozenset(_VOID | _IGNORED | {n.upper() for n in _VOID | _IGNORED})


def too_many_tags(html: str) -> int | None:
    """How many "<" the page holds, when that is more than MAX_TAGS (else None)."""
    count = html.count("<")
    return count if count > MAX_TAGS else None


def bounded_html(html: str) -> str:
    """`html` with nesting, open formatting elements, attributes per tag and options per select
    bounded (see the module docstring); the same string when nothing needed bounding."""
    # The cheap checks first: a page with a long tag or many options is bounded whatever its
    # nesting.
    if not _many_attributes(html) and not _many_options(html) and _surely_shallow(html):
        return html
    return _bounded(html)


_OPTION_TAG = re.compile(r"<opt(?:ion|group)", re.IGNORECASE)


def _many_options(html: str) -> bool:
    """True when the page holds more options than one select may (in all its selects)."""
    found = _OPTION_TAG.finditer(html)
    return sum(1 for _ in itertools.islice(found, MAX_OPTIONS + 1)) > MAX_OPTIONS


def _surely_shallow(html: str) -> bool:
    """A quick over-estimate: True when, even counting every start tag open until its own end
    tag closes it (no implied ends, no raw text, no comments), nothing nests too deep. A
    formatting element left open stays counted, so the formatting bound holds too."""
    limit = MAX_DEPTH - MAX_FORMATTING
    if html.count("<", 0, _HEAD_CHARS) <= limit and html.count("<") <= limit:
        return True
    # Small subtrees (an element holding only text, or text and such elements) open and close
    # at once: cut, they leave the same nesting but for their height, so most pages are
    # answered by a loop over a fraction of their tags, and the rest by the loop over all.
    peak = _quick_peak(_QUICK_SUBTREE.sub(" ", html), limit)
    if peak + _SUBTREE_HEIGHT <= limit:
        return True
    if peak > limit:
        return False
    return _quick_peak(html, limit) <= limit


_HEAD_CHARS = 20_000  # a big page's start holds more tags than a shallow page may: no full count
_QUICK_NAME = r"[A-Za-z][-A-Za-z0-9]*+"
_QUICK_END = r"(?![-A-Za-z0-9])"
# An element holding only text, or text and elements holding only text: start tags, text and
# end tags (the same names in the same letter case, as `_quick_peak` pairs them), of a height of
# at most `_SUBTREE_HEIGHT`. Cut as " ", which starts no tag.
_QUICK_SUBTREE = re.compile(
    rf"<({_QUICK_NAME})[^<]*+"
    rf"(?:<({_QUICK_NAME})[^<]*+</\2{_QUICK_END}[^<]*+)*+"
    rf"</\1{_QUICK_END}"
)
_SUBTREE_HEIGHT = 2


def _quick_peak(html: str, limit: int) -> int:
    """The most elements `_surely_shallow`'s count holds open at once in `html` (counting one
    more), or the first count over `limit`."""
    stack = [""]
    push, pop = stack.append, stack.pop
    peak = 1
    for name in _QUICK_TAG.findall(html):
        if name[0] == "/":
            if name[1:] == stack[-1]:
                pop()
        elif name not in _QUICK_SKIP:
            push(name)
            if len(stack) > peak:
                peak = len(stack)
                if peak > limit:
                    break
    return peak


_LONG_START_TAG = re.compile(rf"<[A-Za-z][^>]{{{_LONG_TAG}}}")
# MAX_ATTRIBUTES attributes as `_ATTRIBUTE.finditer` finds them one after another (what lies
# between them is what no attribute starts with), then the start of one more: one match instead
# of a Python loop over a long tag's attributes.
_FIRST_ATTRIBUTES = re.compile(
    rf"""(?>[\s"'>/=]*+(?>{_ATTRIBUTE.pattern})){{{MAX_ATTRIBUTES}}}[\s"'>/=]*+(?=[^\s"'>/=])"""
)
# A tag's name (which `_ATTRIBUTE` matches too), then more than MAX_ATTRIBUTES attributes.
_MORE_ATTRIBUTES = re.compile(rf"(?>{_ATTRIBUTE.pattern}){_FIRST_ATTRIBUTES.pattern}")


def _many_attributes(html: str) -> bool:
    """True when some tag may hold more than MAX_ATTRIBUTES attributes (only a long tag can)."""
    pos = 0
    while (found := _LONG_START_TAG.search(html, pos)) is not None:
        close = html.find(">", found.end())
        end = len(html) if close < 0 else close
        if _MORE_ATTRIBUTES.match(html, found.start() + 1, end) is not None:
            return True
        pos = end
    return False


# A whole tag (name, rest, closing ">"), a comment's opening, or another `<!`/`<?` construct.
_FULL_TAG = re.compile(r"<(?:(/?)([A-Za-z][^\t\n\f\r />]*+)([^>]*+)>?|!--|[!?])")


def _bounded(html: str) -> str:
    model = _Model()
    cuts: list[tuple[int, int, str]] = []  # (start, end, replacement) in document order
    skip_to = 0  # inside a comment or raw text until here
    for found in _FULL_TAG.finditer(html):
        start = found.start()
        if start < skip_to:
            continue
        slash, name, rest = found.groups()
        if name is None:
            skip_to = _after_markup_declaration(html, found)
            continue
        end = found.end()
        name = name.lower()
        if name in _IGNORED:
            continue
        if slash:
            if not model.end(name):
                _cut(cuts, start, end)
            continue
        if name in _PLAIN_VOID and not model.foreign_open:
            # No element to count (`_Model.start` would change nothing), no raw text.
            if end - start > _LONG_TAG:
                shorter = _fewer_attributes(found.group(0), len(name) + 1)
                if shorter is not None:
                    cuts.append((start, end, shorter))
            continue
        if name in _OPTIONS and model.select_is_full():
            skip_to = _select_end(html, start)
            _cut(cuts, start, skip_to)
            continue
        if not model.start(name, rest.endswith("/")):
            _cut(cuts, start, end)
            continue  # the parser never sees it: what follows is markup, whatever its name
        if end - start > _LONG_TAG:
            shorter = _fewer_attributes(found.group(0), len(name) + 1)
            if shorter is not None:
                cuts.append((start, end, shorter))
        if model.foreign_open:
            continue  # inside SVG or MathML, <style> and <title> hold markup
        if name in _RAW_TEXT:
            skip_to = _raw_text_end(html, name, end)
        elif name == "plaintext":
            break
    return _apply(html, cuts)


def _select_end(html: str, start: int) -> int:
    """Where the tag that ends an open select begins (or the page's end)."""
    found = _SELECT_END.search(html, start)
    return len(html) if found is None else found.start()


def _cut(cuts: list[tuple[int, int, str]], start: int, end: int) -> None:
    """Drop html[start:end], joining it to the drop just before it (runs of dropped tags)."""
    if cuts and cuts[-1][1] == start and not cuts[-1][2]:
        cuts[-1] = (cuts[-1][0], end, "")
    else:
        cuts.append((start, end, ""))


# The first of a comment's two endings ("-->", and "--!>" which pages rarely hold: searching for
# each on its own would scan the rest of the page for it at every comment).
_COMMENT_END = re.compile("--!?>")


def _after_markup_declaration(html: str, found: re.Match[str]) -> int:
    """Where a comment (`<!--`), or a `<!...>` / `<?...>` construct, ends."""
    start = found.start()
    if found.group(0) == "<!--":
        if html.startswith(("<!-->", "<!--->"), start):
            return html.find(">", start) + 1
        end = _COMMENT_END.search(html, start + 4)
        return end.start() + 3 if end is not None else len(html)
    close = html.find(">", found.end())
    return len(html) if close < 0 else close + 1


def _raw_text_end(html: str, name: str, start: int) -> int:
    """Where raw text opened by `<name>` ends: at the first `</name` (any letter case)."""
    width = len(name) + 2
    at = html.find("</", start)
    while at >= 0 and html[at + 2 : at + width].lower() != name:
        at = html.find("</", at + 2)
    return len(html) if at < 0 else at


def _fewer_attributes(tag: str, name_end: int) -> str | None:
    """A long start tag cut to its first MAX_ATTRIBUTES attributes, or None when it has no more."""
    found = _FIRST_ATTRIBUTES.match(tag, name_end)
    return None if found is None else tag[: found.end()].rstrip() + ">"


def _apply(html: str, cuts: list[tuple[int, int, str]]) -> str:
    if not cuts:
        return html
    parts: list[str] = []
    pos = 0
    for start, end, replacement in cuts:
        parts.append(html[pos:start])
        parts.append(replacement)
        pos = end
    parts.append(html[pos:])
    return "".join(parts)
