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
parser opens. It models the parser's stack the way the standard builds it (void elements, implied
end tags of `p`, `li`, `option`, table cells..., scope rules for end tags, SVG/MathML
self-closing tags), erring towards counting an element open when unsure, so the real depth never
exceeds what the pass counted by more than the formatting bound and the elements the parser
implies (a table's body and row). Ordinary pages are returned unchanged, after one quick count
(`_plain`): they nest a few dozen levels.
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
# Start tags that only open an element (outside SVG and MathML, below the depth bound): no implied
# ends, no formatting entry, no select or option count.
_NOT_PLAIN = _MAY_CLOSE | _OPTIONS | _FORMATTING | _VOID | _FOREIGN_ROOTS | {"select"}
# Where dropping a full select's excess options stops: its end tag, or a tag that ends the select
# (in a table, its structure tags do; outside one the parser ignores them, so keeping them alters
# nothing).
_SELECT_END = re.compile(
    r"</?(?:select|input|keygen|textarea|caption|table|tbody|tfoot|thead|tr|td|th)[\t\n\f\r />]",
    re.IGNORECASE,
)


# One open element: its name, whether it is SVG/MathML, the formatting list's length when it is a
# marker (else -1), and the stack positions of the nearest element of _SCOPE_STOP and of _SPECIAL
# at or below it (-1 for none). One tuple per element keeps a push and a pop to one list call.
_Frame = tuple[str, bool, int, int, int]
_BOTTOM: _Frame = ("", False, -1, -1, -1)


class _Model:
    """The parser's stack of open elements and formatting list, as far as tags tell them.

    Finding an open element is O(1): each name keeps the stack positions it is open at, and each
    frame keeps the nearest element below it that stops a search.
    """

    __slots__ = (
        "dropped",
        "foreign_open",
        "formatting",
        "frames",
        "options",
        "page_options",
        "where",
    )

    def __init__(self) -> None:
        self.frames: list[_Frame] = []  # the stack of open elements, bottom first
        self.formatting: list[str] = []  # names of formatting entries (open or to be reopened)
        self.dropped: dict[str, int] = {}  # start tags dropped, by name, whose end tags go too
        self.foreign_open = 0  # SVG/MathML elements on the stack
        self.where: dict[str, list[int]] = {}  # name -> stack positions holding it
        self.options = 0  # options and optgroups opened since the last <select>
        self.page_options = 0  # options and optgroups opened in any select

    def top(self) -> _Frame:
        return self.frames[-1] if self.frames else _BOTTOM

    def in_foreign(self) -> bool:
        if not self.foreign_open:
            return False
        name, foreign = self.frames[-1][:2]
        return foreign and name not in _INTEGRATION_POINTS

    def push(self, name: str, foreign: bool) -> None:
        frames = self.frames
        index = len(frames)
        below = frames[-1] if frames else _BOTTOM
        frames.append(
            (
                name,
                foreign,
                len(self.formatting) if name in _MARKERS and not foreign else -1,
                index if name in _SCOPE_STOP else below[3],
                index if name in _SPECIAL else below[4],
            )
        )
        spots = self.where.get(name)
        if spots is None:
            self.where[name] = [index]
        else:
            spots.append(index)
        if foreign:
            self.foreign_open += 1

    def pop_to(self, index: int) -> None:
        """Close every element from stack position `index` up."""
        frames, where = self.frames, self.where
        while len(frames) > index:
            name, foreign, mark, _, _ = frames.pop()
            where[name].pop()
            if foreign:
                self.foreign_open -= 1
            if mark >= 0:
                del self.formatting[mark:]

    def find(self, names: frozenset[str], special: bool) -> int:
        """Index of the nearest open element named in `names` with no special element above it
        (when `special`), or -1."""
        best = -1
        for name in names:
            spots = self.where.get(name)
            if spots and spots[-1] > best:
                best = spots[-1]
        if best < 0 or (special and best < self.top()[4]):
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
        if len(self.frames) >= MAX_DEPTH or (
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
            while self.in_foreign():
                self.pop_to(len(self.frames) - 1)
        if not (self.in_foreign() or name in _FOREIGN_ROOTS):
            self.foreign_open, open_before = 0, self.foreign_open
            try:
                return self.start(name, self_closing)  # HTML inside an integration point
            finally:
                self.foreign_open += open_before
        if self_closing:
            return True
        if len(self.frames) >= MAX_DEPTH:
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
        top = self.frames[-1]
        if spots[-1] >= (top[3] if name in _SPECIAL else top[4]):
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
        if self.top()[0] == "option":
            self.pop_to(len(self.frames) - 1)
        if name == "optgroup" and self.where.get("select") and self.top()[0] == "optgroup":
            self.pop_to(len(self.frames) - 1)

    def _implied_closes(self, name: str) -> None:
        if name in _OPTIONS:
            self._close_option(name)
        if name in _CLOSES_P:
            spots = self.where.get("p")
            if spots and spots[-1] >= self.top()[3]:
                self.pop_to(spots[-1])
        family = _SIBLING_CLOSE.get(name)
        if family is not None:
            index = self.find(family, True)
            if index >= 0:
                self.pop_to(index)
        if name == "a" and "a" in self.formatting:
            self.formatting.remove("a")  # a new link closes the one still open
            index = self.find(_A, False)
            if index >= 0:
                self.pop_to(index)


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


_OPTION_TAG = re.compile(r"<opt(?:ion|group)", re.IGNORECASE)


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


def _plain(html: str) -> bool:
    """A quick over-estimate: True when no tag holds more than MAX_ATTRIBUTES attributes and, even
    counting every start tag open until its own end tag closes it (no implied ends), nothing nests
    too deep. A formatting element left open stays counted, so the formatting bound holds too.
    False when unsure: SVG other than simple shapes, MathML, CDATA, a script that may hold
    another's start in an escaped section."""
    limit = MAX_DEPTH - MAX_FORMATTING
    stack: list[str] = []
    svg = 0  # <svg> elements on `stack`: inside one, only simple shapes are counted here
    for token in _PLAIN_TOKEN.findall(html):
        raw, raw_attributes, script, script_attributes, script_text = token[:5]
        slash, name, attributes, trailing, cdata = token[5:]
        if name:
            if len(attributes) > _LONG_TAG and _FIRST_ATTRIBUTES.match(attributes) is not None:
                return False
            name = name.lower()
            if slash:
                if stack and stack[-1] == name:
                    stack.pop()
                    if name == "svg":
                        svg -= 1
                continue
            if svg or name in _FOREIGN_ROOTS:
                if name not in _SVG_SHAPES:
                    return False
                if trailing.endswith("/"):
                    continue
                if name == "svg":
                    svg += 1
            elif name in _QUICK_SKIP:
                continue
            elif name == "plaintext":
                return True  # the rest of the page is text
        elif raw or script:
            if svg or (script and "<!--" in script_text and _SCRIPT_START.search(script_text)):
                return False
            attributes = raw_attributes or script_attributes
            if len(attributes) > _LONG_TAG and _FIRST_ATTRIBUTES.match(attributes) is not None:
                return False
            name = (raw or script).lower()
        else:
            if cdata and svg:
                return False
            continue
        stack.append(name)
        if len(stack) >= limit:
            return False
    return True


_TEXT_UNTIL = r"[^<]*+(?:<(?!{stop})[^<]*+)*+"
# `_plain`'s tokens, read by one `findall`: a comment; a raw text element with its text; a script
# with its text up to its first end tag (exact unless an escaped section holds "<script"); a tag;
# another `<!`, `<?` or `</` construct (a CDATA section's opening marked: text in SVG).
_PLAIN_TOKEN = re.compile(
    r"<!--(?:-?>|[^-]*+(?:-(?!-!?>)[^-]*+)*+(?:--!?>)?)"
    rf"|<((?i:style|textarea|title|xmp|iframe|noembed|noframes)){_NAME_END}"
    rf"({_ATTRIBUTES}){_SEPARATOR}*+>?"
    + _TEXT_UNTIL.format(stop=rf"/(?i:\1){_NAME_END}")
    + rf"|<((?i:script)){_NAME_END}({_ATTRIBUTES}){_SEPARATOR}*+>?"
    + "("
    + _TEXT_UNTIL.format(stop=rf"/(?i:script){_NAME_END}")
    + ")"
    + rf"|<{_TAG}"
    + r"|<(?:!(\[CDATA\[)?|\?|/(?![A-Za-z]))[^>]*+>?"
)
_SCRIPT_START = re.compile(rf"<(?i:script){_NAME_END}")


def _bounded(html: str) -> str:
    model = _Model()
    where, dropped, frames = model.where, model.dropped, model.frames
    cuts: list[tuple[int, int, str]] = []  # (start, end, replacement) in document order
    search = _TOKEN.search
    pos = 0  # where the next token is looked for: past comments and raw text
    while (found := search(html, pos)) is not None:
        start, pos = found.span()
        slash, name, _, trailing = found.groups()
        if name is None:
            pos = _after_markup_declaration(html, found, cdata=bool(frames) and frames[-1][1])
            continue
        if pos - start > _LONG_TAG:
            _keep_attributes(cuts, found)
        name = name.lower()
        if name in _IGNORED:
            continue
        if slash:
            # An end tag of nothing open and nothing dropped changes nothing: most are that.
            if (where.get(name) or dropped.get(name)) and not model.end(name):
                _cut(cuts, start, pos)
            continue
        if name in _PLAIN_VOID and not model.foreign_open:
            continue  # no element to count (`_Model.start` would change nothing), no raw text
        if name in _OPTIONS and model.select_is_full():
            pos = _select_end(html, start)
            _cut(cuts, start, pos)
            continue
        if name not in _NOT_PLAIN and not model.foreign_open and len(frames) < MAX_DEPTH:
            model.push(name, False)  # what `_Model.start` does for it, without the checks
        elif not model.start(name, trailing.endswith("/")):
            _cut(cuts, start, pos)
            continue  # the parser never sees it: what follows is markup, whatever its name
        if not frames or frames[-1][0] != name or frames[-1][1]:
            continue  # not opened as an HTML element: in SVG or MathML, <style> holds markup
        if name in _RAW_TEXT:
            pos = _raw_text_end(html, name, pos)
        elif name == "plaintext":
            break
    return _apply(html, cuts)


def _keep_attributes(cuts: list[tuple[int, int, str]], found: re.Match[str]) -> None:
    """Cut a long tag to its first MAX_ATTRIBUTES attributes, when it holds more."""
    shorter = _fewer_attributes(found)
    if shorter is not None:
        cuts.append((found.start(), found.end(), shorter))


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
        html[at + 2 : at + width].lower() == name
        and html[at + width : at + width + 1] in _NAME_ENDS
    ):
        at = html.find("</", at + 2)
    return len(html) if at < 0 else at


_SCRIPT_MARK = re.compile(r"<!--|-->|<(/?)script(?=[\t\n\f\r />])", re.IGNORECASE)


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


def _fewer_attributes(found: re.Match[str]) -> str | None:
    """A long tag cut to its first MAX_ATTRIBUTES attributes, or None when it holds no more."""
    first = _FIRST_ATTRIBUTES.match(found.string, found.end(2), found.end(3))
    if first is None:
        return None
    return found.string[found.start() : first.end()] + (found.group(4) or "") + ">"


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
