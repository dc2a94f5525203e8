"""Bodies to text: content-encoding undone with bounded inflation, then the charset found
(BOM, Content-Type, the document's own declaration, a Japanese-aware sniff) and decoded."""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Mapping

import httpx


class BodyDecoder:
    """Undoes a response's Content-Encoding chunk by chunk, as httpx's `aiter_bytes` would.

    gzip and deflate, in any stack ("gzip, deflate" was gzipped first); names we cannot undo
    (and "identity") pass the bytes through. Broken data raises `httpx.DecodingError`. No call
    gives more than the `limit` it is asked for, however small the compressed input (a bomb of
    a few kilobytes may inflate to gigabytes): the reader stops at its cap anyway.
    """

    def __init__(self, layers: list[_Inflater]) -> None:
        self._layers = layers  # outermost (last applied) first

    @classmethod
    def for_encoding(cls, content_encoding: str | None) -> BodyDecoder | None:
        if not content_encoding:
            return None
        names = [name.strip().lower() for name in content_encoding.split(",")]
        layers = [_Inflater(name) for name in reversed(names) if name in _INFLATERS]
        return cls(layers) if layers else None

    def decode(self, data: bytes, limit: int) -> bytes:
        """`data` through every layer: at most `limit` bytes."""
        return self._through(0, data, limit, final=False)

    def flush(self, limit: int) -> bytes:
        """What the layers still hold once the body has ended: at most `limit` bytes."""
        return self._through(0, b"", limit, final=True)

    def _through(self, index: int, data: bytes, limit: int, *, final: bool) -> bytes:
        if index == len(self._layers) or limit <= 0:
            return data[: max(limit, 0)]
        layer = self._layers[index]
        out = bytearray()
        piece = layer.decompress(data, limit)
        while True:  # in bounded pieces, each passed on before the next is made
            out += self._through(index + 1, piece, limit - len(out), final=False)
            if len(out) >= limit or not layer.pending:
                break
            piece = layer.decompress(b"", limit)
        if final and len(out) < limit:
            out += self._through(index + 1, layer.flush(), limit - len(out), final=True)
        return bytes(out)


_INFLATERS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class _Inflater:
    """One gzip or deflate layer, inflating at most as much as it is asked for per call."""

    __slots__ = ("_inflate", "_may_be_raw")

    def __init__(self, name: str) -> None:
        self._inflate = zlib.decompressobj(_INFLATERS[name])
        # "deflate" means zlib-wrapped data, but some servers send raw deflate: a bad start
        # switches to that, once.
        self._may_be_raw = name == "deflate"

    @property
    def pending(self) -> bool:
        """Input is left that a bounded call did not get to."""
        return bool(self._inflate.unconsumed_tail)

    def decompress(self, data: bytes, limit: int) -> bytes:
        source = self._inflate.unconsumed_tail + data
        try:
            out = self._inflate.decompress(source, limit)
        except zlib.error as exc:
            if not self._may_be_raw:
                raise httpx.DecodingError(str(exc)) from exc
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            self._may_be_raw = False
            return self.decompress(source, limit)
        self._may_be_raw = False
        return out

    def flush(self) -> bytes:
        # Only called with no input left over, so this is what zlib still buffers: small.
        try:
            return self._inflate.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc)) from exc


_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_ALIASES: Mapping[str, str] = {
    **dict.fromkeys(
        [
            "shift_jis",
            "shift-jis",
            "sjis",
            "x-sjis",
            "s_jis",
            "ms_kanji",
            "csshiftjis",
            "windows-31j",
            "cp932",
            "ms932",
            "x-ms-cp932",
        ],
        "cp932",
    ),
    # EUC-JIS-2004 reads plain EUC-JP and also the NEC / JIS X 0213 characters shops use.
    **dict.fromkeys(
        ["euc-jp", "eucjp", "x-euc-jp", "euc_jp", "ujis", "cseucpkdfmtjapanese", "eucjp-ms"],
        "euc_jis_2004",
    ),
    **dict.fromkeys(["iso-2022-jp", "csiso2022jp", "iso2022_jp"], "iso2022_jp_ext"),
    **dict.fromkeys(["utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8"], "utf-8"),
    # Browsers read these labels as windows-1252, and so do we.
    **dict.fromkeys(["iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"], "cp1252"),
}

_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")
_PRESCAN_BYTES = 4096


def normalise_charset(label: str | None) -> str | None:
    """A Python codec name for a charset label (Shift_JIS -> cp932), or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _ALIASES:
        return _ALIASES[label]
    try:
        codec = codecs.lookup(label)
    except LookupError:
        return None
    # Python also names transforms (rot13, base64, zlib) and codecs that refuse to decode
    # anything (undefined, idna): none of them is a page's charset.
    if not getattr(codec, "_is_text_encoding", True) or codec.name in _NOT_CHARSETS:
        return None
    return codec.name


_NOT_CHARSETS = frozenset({"undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape"})


def _decoded(body: bytes, encoding: str) -> str | None:
    """`body` in `encoding`, bad bytes as U+FFFD; None if the codec cannot decode at all."""
    try:
        return body.decode(encoding, errors="replace")
    except (LookupError, UnicodeError, TypeError, ValueError):
        return None


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """The body as text and the encoding used; bad bytes become U+FFFD, never an exception.

    Order: byte order mark, the Content-Type charset (JSON is always UTF-8), a <meta> or XML
    declaration in the first 4 KB, strict UTF-8, then whichever of cp932 / EUC-JP fits best.
    """
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace"), encoding
    media_type, charset = _parse_content_type(content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        return body.decode("utf-8", errors="replace"), "utf-8"
    declared = normalise_charset(charset) or _declared_in_document(body)
    text = _decoded(body, declared) if declared else None
    if declared and text is not None:
        return text, declared
    return _sniff(body)


def _parse_content_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    media_type, *params = content_type.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    return media_type.strip().lower(), charset


def _declared_in_document(body: bytes) -> str | None:
    head = body[:_PRESCAN_BYTES]
    match = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
    if not match:
        return None
    declared = normalise_charset(match.group(1).decode("ascii"))
    if declared and declared.startswith("utf-16"):
        return "utf-8"  # a document that could state this in ASCII is not UTF-16
    return declared


def _sniff(body: bytes) -> tuple[str, str]:
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    candidates = [(_japanese_score(body, enc), enc) for enc in ("cp932", "euc_jis_2004")]
    _, best = max(candidates)
    return body.decode(best, errors="replace"), best


def _japanese_score(body: bytes, encoding: str) -> tuple[int, float]:
    """How plausible `body` is as Japanese in `encoding`: fewest bad bytes, then most kana."""
    text = body.decode(encoding, errors="replace")
    errors = text.count("\ufffd")
    non_ascii = [ch for ch in text if ord(ch) > 0x7F and ch != "\ufffd"]
    if not non_ascii:
        return -errors, 0.0
    kana = sum(1 for ch in non_ascii if "\u3040" <= ch <= "\u30ff" or "\u3000" <= ch <= "\u303f")
    return -errors, kana / len(non_ascii)
