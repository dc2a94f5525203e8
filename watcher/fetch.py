"""The fetcher: one HTTP GET (or whatever a `FetchPlan` asks) turned into a decoded `Page`.

It never raises for network trouble: timeouts, refused connections, TLS failures, endless
redirects, oversized bodies and undecodable bytes all come back as a `Page` with `error` set, so
the adapter can turn it into an `unknown` observation. Redirects are followed by hand, a bounded
number of times, so an untrusted URL's guard judges every hop.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import ssl
import time
from collections.abc import Callable, Mapping
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


class Fetcher:
    """Sends `FetchPlan`s and returns `Page`s; never raises for what the network does."""

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
        self._client = client
        # Untrusted (guarded) fetches need a client whose transport re-checks each connection's
        # address; trusted ones may use a faster transport. One client serves both by default.
        self._guarded_client = guarded_client or client
        self._user_agent = user_agent or DEFAULT_USER_AGENT
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
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
        started = self._clock()
        headers = self._headers(plan, etag, last_modified, cache_bust)
        attempt = _Attempt(url=plan.url, method=plan.method.upper(), headers=headers)
        try:
            async with asyncio.timeout(self._deadline):
                raw = await self._follow(attempt, plan, guard)
        except TimeoutError:
            raw = RawPage(attempt.failed(plan.url, "timeout"))
        except UnsafeURL as exc:
            label = "blocked redirect" if attempt.hops else "blocked"
            raw = RawPage(attempt.failed(plan.url, f"{label}: {exc}"))
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            raw = RawPage(attempt.failed(plan.url, _describe(exc)))
        return raw.with_elapsed((self._clock() - started) * 1000.0)

    def _headers(
        self, plan: FetchPlan, etag: str | None, last_modified: str | None, cache_bust: bool
    ) -> dict[str, str]:
        headers = {
            "user-agent": self._user_agent,
            "accept": DEFAULT_ACCEPT,
            "accept-language": DEFAULT_ACCEPT_LANGUAGE,
        }
        headers.update({name.lower(): value for name, value in plan.headers.items()})
        if etag:
            headers["if-none-match"] = etag
        if last_modified:
            headers["if-modified-since"] = last_modified
        if cache_bust:
            # Headers only: an unknown query parameter may make a shop serve a different page.
            headers["cache-control"] = "no-cache"
            headers["pragma"] = "no-cache"
        return headers

    async def _follow(self, attempt: _Attempt, plan: FetchPlan, guard: URLGuard | None) -> RawPage:
        url = httpx.URL(plan.url)
        if plan.params:
            url = url.copy_merge_params(dict(plan.params))
        attempt.url = str(url)
        client = self._client if guard is None else self._guarded_client
        while True:
            if guard is not None:
                attempt.url = await guard.check_resolved(attempt.url)
            request = client.build_request(
                attempt.method, attempt.url, headers=attempt.headers, timeout=self._timeout
            )
            attempt.status = None
            with guarding_connections(guard):
                response = await client.send(request, stream=True)
            attempt.status = response.status_code
            try:
                next_url = _redirect_target(response)
                if next_url is None:
                    return await self._read(plan.url, response)
            finally:
                await response.aclose()
            if attempt.hops >= self._max_redirects:
                return RawPage(replace(_page_head(plan.url, response), error="too many redirects"))
            attempt.follow(response.status_code, next_url)

    async def _read(self, original_url: str, response: httpx.Response) -> RawPage:
        head = _page_head(original_url, response)
        if response.status_code == 304:
            return RawPage(replace(head, not_modified=True))
        body, truncated = await self._read_capped(response)
        error = f"body over {self._max_bytes} bytes" if truncated else None
        retry_after = None
        if response.status_code in _RETRY_AFTER_CODES:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._now())
        head = replace(
            head, bytes=len(body), truncated=truncated, error=error, retry_after=retry_after
        )
        return RawPage(head, body)

    async def _read_capped(self, response: httpx.Response) -> tuple[bytes, bool]:
        """The decompressed body, cut at `max_bytes` (and True when it was cut)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_bytes:
                return b"".join(chunks)[: self._max_bytes], True
        return b"".join(chunks), False


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

    def with_elapsed(self, elapsed_ms: float) -> RawPage:
        return RawPage(replace(self.head, elapsed_ms=round(elapsed_ms, 1)), self.body)


@dataclass(slots=True)
class _Attempt:
    """Where a fetch has got to: the current URL, method and headers, and redirects taken."""

    url: str
    method: str
    headers: dict[str, str]
    hops: int = 0
    status: int | None = None  # of the response being read, if one arrived

    def failed(self, original_url: str, error: str) -> Page:
        return Page(url=original_url, status=self.status, error=error, final_url=self.url)

    def follow(self, status: int, target: httpx.URL) -> None:
        if _origin(httpx.URL(self.url)) != _origin(target):
            for name in _CREDENTIAL_HEADERS:
                self.headers.pop(name, None)
        if status == 303 or (status in (301, 302) and self.method == "POST"):
            self.method = "GET"
        self.url = str(target)
        self.hops += 1


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _redirect_target(response: httpx.Response) -> httpx.URL | None:
    if response.status_code not in _REDIRECT_CODES:
        return None
    location = response.headers.get("location")
    if not location:
        return None
    return response.url.join(location)


def _page_head(original_url: str, response: httpx.Response) -> Page:
    """A body-less page carrying the response's status, final URL and headers."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Page(
        url=original_url,
        status=response.status_code,
        final_url=str(response.url),
        headers=headers,
        content_type=headers.get("content-type"),
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
    )


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
        return codecs.lookup(label).name
    except LookupError:
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
    if declared:
        return body.decode(declared, errors="replace"), declared
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
