"""The fetcher: one HTTP GET (or whatever a `FetchPlan` asks) turned into a decoded `Page`.

It never raises for network trouble: timeouts, refused connections, TLS failures, endless
redirects, oversized bodies and undecodable bytes all come back as a `Page` with `error` set, so
the adapter can turn it into an `unknown` observation. Redirects are followed by hand, a bounded
number of times, so an untrusted URL's guard judges every hop.

Each hop is an `httpx.Request` handed straight to the client's transport: the client's own layers
(header and cookie merging, auth and redirect handling, stream wrappers) cost more CPU than the
transport itself, and the fetcher does the little of their work it needs (default headers,
timeouts, content decoding). No cookie outlives a fetch: one that a redirect sets goes with the
rest of that redirect chain, never with a later fetch or to another shop.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from watcher.errors import UnsafeURL
from watcher.model import FetchPlan, Page
from watcher.netguard import URLGuard, guarded_transport, guarding_connections

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
DEFAULT_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
DEFAULT_ACCEPT_LANGUAGE = "ja,en;q=0.8"
ACCEPT_ENCODING = "gzip, deflate"  # exactly the encodings `_BodyDecoder` undoes
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
DEFAULT_DEADLINE = 60.0  # seconds for the whole fetch, redirects included (slow-drip servers)
MAX_RETRY_AFTER = 86_400.0  # a shop asking for more than a day is not taken literally

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_RETRY_AFTER_CODES = frozenset({429, 503})
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


def build_client(
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    verify: ssl.SSLContext | bool = True,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """The HTTP client the fetcher uses; without `transport`, one that guards connections.

    Redirects are never followed by the client (the fetcher follows them itself) and proxy
    settings from the environment are ignored: an untrusted fetch must connect where it checked.
    """
    if transport is None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
        transport = guarded_transport(verify=verify, limits=limits)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


def _transport_of(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    """The transport `client` sends through; the client still owns it (and closes it).

    httpx offers no public way to read it; the pin on httpx 0.28 keeps the attribute stable.
    A client with mounted transports (proxies) would route some URLs elsewhere: refused.
    """
    if client._mounts:
        raise ValueError("the fetcher needs a client without mounted transports")
    return client._transport


class Fetcher:
    """Sends `FetchPlan`s and returns `Page`s; never raises for what the network does.

    `client` and `guarded_client` lend their transports; they keep owning them, so callers close
    the clients as before.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        guarded_client: httpx.AsyncClient | None = None,
        user_agent: str | None = None,
        max_bytes: int = 5_000_000,
        max_redirects: int = 5,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.perf_counter,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._transport = _transport_of(client)
        # Untrusted (guarded) fetches need a transport that re-checks each connection's address;
        # trusted ones may use a faster one. One client serves both by default.
        self._guarded_transport = _transport_of(guarded_client or client)
        # In the order httpx's client sent them (its defaults first), lower-case.
        self._default_headers = {
            "accept-encoding": ACCEPT_ENCODING,
            "connection": "keep-alive",
            "user-agent": user_agent or DEFAULT_USER_AGENT,
            "accept": DEFAULT_ACCEPT,
            "accept-language": DEFAULT_ACCEPT_LANGUAGE,
        }
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._timeouts = timeout.as_dict()  # the request extension httpx's transports read
        self._deadline = deadline
        self._clock = clock
        self._now = now

    async def fetch(
        self,
        plan: FetchPlan,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        cache_bust: bool = False,
        guard: URLGuard | None = None,
    ) -> Page:
        """Fetch `plan`; `guard` (for untrusted URLs) checks the URL and every redirect hop."""
        raw = await self.fetch_raw(
            plan, etag=etag, last_modified=last_modified, cache_bust=cache_bust, guard=guard
        )
        return raw.decoded()

    async def fetch_raw(
        self,
        plan: FetchPlan,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        cache_bust: bool = False,
        guard: URLGuard | None = None,
    ) -> RawPage:
        """Like `fetch`, but the body stays bytes until `decoded()` is asked for.

        A caller that recognises a page it already read by its bytes skips decoding it.
        """
        attempt = _Attempt(
            url=plan.url,
            method=plan.method.upper(),
            headers=self._headers(plan, etag, last_modified, cache_bust),
            started=self._clock(),
        )
        try:
            async with asyncio.timeout(self._deadline):
                return await self._follow(attempt, plan, guard)
        except TimeoutError:
            error = "timeout"
        except UnsafeURL as exc:
            error = f"{'blocked redirect' if attempt.hops else 'blocked'}: {exc}"
        except Exception as exc:
            # A hostile server makes each transport raise its own errors (aiohttp's
            # LineTooLong, BadHttpMessage, ...): every one becomes a failed page, never a crash.
            error = _describe(exc)
        failed = Page(
            url=plan.url,
            status=attempt.status,
            error=error,
            final_url=attempt.url,
            elapsed_ms=self._elapsed_ms(attempt),
        )
        return RawPage(failed)

    def _headers(
        self, plan: FetchPlan, etag: str | None, last_modified: str | None, cache_bust: bool
    ) -> dict[str, str]:
        headers = self._default_headers.copy()
        for name, value in plan.headers.items():
            headers[name.lower()] = value
        if etag:
            headers["if-none-match"] = etag
        if last_modified:
            headers["if-modified-since"] = last_modified
        if cache_bust:
            # Headers only: an unknown query parameter may make a shop serve a different page.
            headers["cache-control"] = "no-cache"
            headers["pragma"] = "no-cache"
        return headers

    def _elapsed_ms(self, attempt: _Attempt) -> float:
        return round((self._clock() - attempt.started) * 1000.0, 1)

    async def _follow(self, attempt: _Attempt, plan: FetchPlan, guard: URLGuard | None) -> RawPage:
        target = httpx.URL(plan.url)
        if plan.params:
            target = target.copy_merge_params(dict(plan.params))
        attempt.url = str(target)
        transport = self._transport if guard is None else self._guarded_transport
        while True:
            if guard is not None:
                attempt.url = await guard.check_resolved(attempt.url)
                target = httpx.URL(attempt.url)
            attempt.status = None
            response = await self._send(transport, attempt, target, guard)
            attempt.status = response.status_code
            try:
                next_url = _redirect_target(response, target)
                if next_url is None:
                    return await self._read(attempt, plan.url, target, response)
                attempt.keep_cookies(response)
            finally:
                await response.aclose()
            if attempt.hops >= self._max_redirects:
                head = self._page(attempt, plan.url, target, response, error="too many redirects")
                return RawPage(head)
            attempt.follow(response.status_code, target, next_url)
            target = next_url

    async def _send(
        self,
        transport: httpx.AsyncBaseTransport,
        attempt: _Attempt,
        target: httpx.URL,
        guard: URLGuard | None,
    ) -> httpx.Response:
        if not target.is_absolute_url:
            # httpx's client made these path-only URLs, which transports refuse; aiohttp's fails
            # on "//host/path" with an assertion instead of an httpx error.
            raise httpx.UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol."
            )
        # httpx.Request adds Host (and Content-Length: 0 to a body-less POST) by itself.
        request = httpx.Request(
            attempt.method, target, headers=attempt.headers, extensions={"timeout": self._timeouts}
        )
        if attempt.cookies is not None:
            attempt.cookies.set_cookie_header(request)
        # The guarded transport reads the guard from a context variable when it connects.
        with guarding_connections(guard):
            response = await transport.handle_async_request(request)
        response.request = request
        return response

    async def _read(
        self, attempt: _Attempt, original_url: str, target: httpx.URL, response: httpx.Response
    ) -> RawPage:
        status = response.status_code
        if status == 304:
            return RawPage(self._page(attempt, original_url, target, response, not_modified=True))
        encoding = response.headers.get("content-encoding")
        body, truncated = await self._read_capped(response, _BodyDecoder.for_encoding(encoding))
        retry_after = None
        if status in _RETRY_AFTER_CODES:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._now())
        head = self._page(
            attempt,
            original_url,
            target,
            response,
            size=len(body),
            truncated=truncated,
            error=f"body over {self._max_bytes} bytes" if truncated else None,
            retry_after=retry_after,
        )
        return RawPage(head, body)

    async def _read_capped(
        self, response: httpx.Response, decoder: _BodyDecoder | None
    ) -> tuple[bytes, bool]:
        """The decompressed body, cut at `max_bytes` (and True when it was cut)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in _body_of(response):
            if decoder is not None:
                chunk = decoder.decode(chunk, self._max_bytes - size + 1)
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_bytes:
                return b"".join(chunks)[: self._max_bytes], True
        if decoder is not None:
            tail = decoder.flush(self._max_bytes - size + 1)
            chunks.append(tail)
            size += len(tail)
            if size > self._max_bytes:
                return b"".join(chunks)[: self._max_bytes], True
        return b"".join(chunks), False

    def _page(
        self,
        attempt: _Attempt,
        original_url: str,
        target: httpx.URL,
        response: httpx.Response,
        *,
        size: int = 0,
        truncated: bool = False,
        error: str | None = None,
        retry_after: float | None = None,
        not_modified: bool = False,
    ) -> Page:
        """The page of `response` without its body: status, final URL, headers and the rest."""
        headers = dict(response.headers.items())  # httpx gives the names in lower case
        return Page(
            url=original_url,
            status=response.status_code,
            final_url=str(target),
            headers=headers,
            content_type=headers.get("content-type"),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            bytes=size,
            truncated=truncated,
            error=error,
            retry_after=retry_after,
            not_modified=not_modified,
            elapsed_ms=self._elapsed_ms(attempt),
        )


@dataclass(frozen=True, slots=True)
class RawPage:
    """A fetched response whose body is still bytes (None when no body was read)."""

    head: Page  # everything but `text` and `encoding`
    body: bytes | None = None

    def decoded(self) -> Page:
        """The page with its body decoded (see `decode_body`)."""
        if self.body is None:
            return self.head
        text, encoding = decode_body(self.body, self.head.content_type)
        return replace(self.head, text=text, encoding=encoding)


@dataclass(slots=True)
class _Attempt:
    """Where a fetch has got to: the current URL, method and headers, and redirects taken."""

    url: str
    method: str
    headers: dict[str, str]
    started: float  # on the fetcher's clock
    hops: int = 0
    status: int | None = None  # of the response being read, if one arrived
    cookies: httpx.Cookies | None = None  # set by this fetch's redirects, for its next hops

    def keep_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            if self.cookies is None:
                self.cookies = httpx.Cookies()
            self.cookies.extract_cookies(response)

    def follow(self, status: int, current: httpx.URL, target: httpx.URL) -> None:
        if _origin(current) != _origin(target):
            for name in _CREDENTIAL_HEADERS:
                self.headers.pop(name, None)
        if status == 303 or (status in (301, 302) and self.method == "POST"):
            self.method = "GET"
        self.url = str(target)
        self.hops += 1


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _redirect_target(response: httpx.Response, current: httpx.URL) -> httpx.URL | None:
    if response.status_code not in _REDIRECT_CODES:
        return None
    location = response.headers.get("location")
    if not location:
        return None
    return current.join(location)


def _body_of(response: httpx.Response) -> AsyncIterator[bytes]:
    """The response's body as the transport delivers it (still content-encoded)."""
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("the transport answered with a synchronous body")
    return aiter(stream)


class _BodyDecoder:
    """Undoes a response's Content-Encoding chunk by chunk, as httpx's `aiter_bytes` would.

    gzip and deflate, in any stack ("gzip, deflate" was gzipped first); names we cannot undo
    (and "identity") pass the bytes through. Broken data raises `httpx.DecodingError`. No call
    gives more than the `limit` it is asked for, however small the compressed input (a bomb of
    a few kilobytes may inflate to gigabytes): the reader stops at its cap anyway.
    """

    def __init__(self, layers: list[_Inflater]) -> None:
        self._layers = layers  # outermost (last applied) first

    @classmethod
    def for_encoding(cls, content_encoding: str | None) -> _BodyDecoder | None:
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


def _describe(exc: Exception) -> str:
    """A short, stable error text for a failed fetch."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        if _caused_by_tls(exc):
            return f"tls: {detail}"
        return f"connect: {detail}"
    if isinstance(exc, httpx.DecodingError):
        return f"decode: {detail}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return f"protocol: {detail}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | ValueError):
        return f"invalid url: {detail}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | OSError):
        return f"network: {detail}"
    if not isinstance(exc, httpx.HTTPError):
        return f"protocol: {type(exc).__name__}: {detail}"[:300]
    return f"http: {detail}"


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "SSL" in str(seen) or "certificate" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date), within a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# --- decoding ---------------------------------------------------------------------------------

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
