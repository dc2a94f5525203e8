"""The fetcher: one HTTP GET (or whatever a `FetchPlan` asks) turned into a decoded `Page`.

It never raises for network trouble: timeouts, refused connections, TLS failures, endless
redirects, oversized bodies and undecodable bytes all come back as a `Page` with `error` set, so
the adapter can turn it into an `unknown` observation. Redirects are followed by hand, a bounded
number of times, so an untrusted URL's guard judges every hop.

Each hop is an `httpx.Request` handed straight to the client's transport: the client's own layers
(header and cookie merging, auth and redirect handling, stream wrappers) cost more CPU than the
transport itself, and the fetcher does the little of their work it needs (default headers,
timeouts, content decoding). A trusted hop over aiohttp's transport goes further and builds no
httpx request or response at all: the response becomes a `Reply`, read the same way whichever
transport sent the request. No cookie outlives a fetch: one that a redirect sets goes with the
rest of that redirect chain, never with a later fetch or to another shop.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NamedTuple

import aiohttp
import httpx
import yarl

from watcher.core.model import FetchPlan, Page
from watcher.errors import UnsafeURL
from watcher.net.decode import BodyDecoder, decode_body
from watcher.net.headers import parse_retry_after
from watcher.net.netguard import URLGuard, guarding_connections
from watcher.net.reply import Reply, header_dict, reply_of_httpx
from watcher.net.transport import transport_of
from watcher.net.trusted import TrustedTransport, body_chunks

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
DEFAULT_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
DEFAULT_ACCEPT_LANGUAGE = "ja,en;q=0.8"
ACCEPT_ENCODING = "gzip, deflate"  # exactly the encodings `BodyDecoder` undoes
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
DEFAULT_DEADLINE = 60.0  # seconds for the whole fetch, redirects included (slow-drip servers)

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_RETRY_AFTER_CODES = frozenset({429, 503})
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
# Request headers prepared once per (origin, method, headers) and reused: httpx normalises and
# re-encodes every header of every request it builds, which costs more than sending it.
_PREPARED_HEADERS_MAX = 4_096
_NO_BODY = httpx.ByteStream(b"")  # the fetcher sends no request bodies
HeadersKey = tuple[bytes, str, tuple[tuple[str, str], ...]]


class PreparedHeaders(NamedTuple):
    """A request's headers as httpx prepares them, and as the list aiohttp is handed."""

    headers: httpx.Headers
    items: list[tuple[str, str]]


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
        self._transport = transport_of(client)
        # Untrusted (guarded) fetches need a transport that re-checks each connection's address;
        # trusted ones may use a faster one. One client serves both by default.
        self._guarded_transport = transport_of(guarded_client or client)
        # Trusted hops through aiohttp skip httpx's request and response objects.
        self._opener = self._transport if isinstance(self._transport, TrustedTransport) else None
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
        self._prepared: dict[HeadersKey, PreparedHeaders] = {}

    @property
    def user_agent(self) -> str:
        """The User-Agent this fetcher sends."""
        return self._default_headers["user-agent"]

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
            final_url=attempt.public(httpx.URL(attempt.url)),
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
        target = _parsed_url(plan.url)
        if plan.params or plan.secret_params:
            target = target.copy_merge_params({**plan.params, **plan.secret_params})
        attempt.secret_params = tuple(plan.secret_params)
        attempt.url = str(target)
        transport = self._transport if guard is None else self._guarded_transport
        while True:
            if guard is not None:
                attempt.url = await guard.check_resolved(attempt.url)
                target = _parsed_url(attempt.url)
            attempt.status = None
            reply = await self._send(transport, attempt, target, guard)
            attempt.status = reply.status
            try:
                next_url = _redirect_target(reply, target)
                if next_url is None:
                    return await self._read(attempt, plan.url, target, reply)
                attempt.keep_cookies(reply, target)
            finally:
                await reply.aclose()
            if attempt.hops >= self._max_redirects:
                head = self._page(attempt, plan.url, target, reply, error="too many redirects")
                return RawPage(head)
            attempt.follow(reply.status, target, next_url)
            target = next_url

    async def _send(
        self,
        transport: httpx.AsyncBaseTransport,
        attempt: _Attempt,
        target: httpx.URL,
        guard: URLGuard | None,
    ) -> Reply:
        if not target.is_absolute_url:
            # httpx's client made these path-only URLs, which transports refuse; aiohttp's fails
            # on "//host/path" with an assertion instead of an httpx error.
            raise httpx.UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol."
            )
        prepared = self._request_headers(attempt, target)
        if self._opener is transport and guard is None and attempt.cookies is None:
            return await self._open(attempt, prepared.items)
        request = httpx.Request(
            attempt.method,
            target,
            headers=prepared.headers,
            stream=_NO_BODY,
            extensions={"timeout": self._timeouts},
        )
        request.read()  # the empty body, as httpx loads it for a request it prepares itself
        if attempt.cookies is not None:
            attempt.cookies.set_cookie_header(request)
        # The guarded transport reads the guard from a context variable when it connects.
        with guarding_connections(guard):
            response = await transport.handle_async_request(request)
        response.request = request
        return reply_of_httpx(response)

    async def _open(self, attempt: _Attempt, headers: list[tuple[str, str]]) -> Reply:
        """A trusted hop sent straight through aiohttp: no httpx request or response is built."""
        assert self._opener is not None
        url = _yarl_url(attempt.url)  # quoted by httpx already: sent as it is
        response = await self._opener.open(attempt.method, url, headers, self._timeouts)
        return Reply(
            status=response.status,
            headers=header_dict(response.raw_headers),
            raw_headers=response.raw_headers,
            body=functools.partial(body_chunks, response),
            close=functools.partial(_release, response),
        )

    def _request_headers(self, attempt: _Attempt, target: httpx.URL) -> PreparedHeaders:
        """The headers httpx would send for `attempt` to `target`: Host (and Content-Length: 0
        for a body-less POST) before the fetch's own, prepared by httpx once and then reused."""
        key = (target.netloc, attempt.method, tuple(attempt.headers.items()))
        headers = self._prepared.get(key)
        if headers is None:
            if len(self._prepared) >= _PREPARED_HEADERS_MAX:
                self._prepared.clear()  # validators differ per page: keep the cache bounded
            made = httpx.Request(attempt.method, target, headers=attempt.headers).headers
            headers = PreparedHeaders(made, made.multi_items())
            self._prepared[key] = headers
        return headers

    async def _read(
        self, attempt: _Attempt, original_url: str, target: httpx.URL, reply: Reply
    ) -> RawPage:
        status = reply.status
        if status == 304:
            return RawPage(self._page(attempt, original_url, target, reply, not_modified=True))
        encoding = reply.headers.get("content-encoding")
        body, truncated = await self._read_capped(reply, BodyDecoder.for_encoding(encoding))
        retry_after = None
        if status in _RETRY_AFTER_CODES:
            retry_after = parse_retry_after(reply.headers.get("retry-after"), self._now())
        head = self._page(
            attempt,
            original_url,
            target,
            reply,
            size=len(body),
            truncated=truncated,
            error=f"body over {self._max_bytes} bytes" if truncated else None,
            retry_after=retry_after,
        )
        return RawPage(head, body)

    async def _read_capped(self, reply: Reply, decoder: BodyDecoder | None) -> tuple[bytes, bool]:
        """The decompressed body, cut at `max_bytes` (and True when it was cut)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in reply.body():
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
        reply: Reply,
        *,
        size: int = 0,
        truncated: bool = False,
        error: str | None = None,
        retry_after: float | None = None,
        not_modified: bool = False,
    ) -> Page:
        """The page of `reply` without its body: status, final URL, headers and the rest."""
        headers = reply.headers
        return Page(
            url=original_url,
            status=reply.status,
            final_url=attempt.public(target),
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
    secret_params: tuple[str, ...] = ()  # query parameter names never recorded

    def public(self, url: httpx.URL) -> str:
        """`url` as it may be recorded: without the query parameters that carry credentials."""
        for name in self.secret_params:
            if name in url.params:
                url = url.copy_remove_param(name)
        return str(url)

    def keep_cookies(self, reply: Reply, url: httpx.URL) -> None:
        if "set-cookie" in reply.headers:
            if self.cookies is None:
                self.cookies = httpx.Cookies()
            self.cookies.extract_cookies(reply.as_httpx(httpx.Request(self.method, url)))

    def follow(self, status: int, current: httpx.URL, target: httpx.URL) -> None:
        if _origin(current) != _origin(target):
            for name in _CREDENTIAL_HEADERS:
                self.headers.pop(name, None)
        if status == 303 or (status in (301, 302) and self.method == "POST"):
            self.method = "GET"
        self.url = str(target)
        self.hops += 1


@functools.lru_cache(maxsize=16_384)  # one parse per watched URL, not one per check
def _parsed_url(url: str) -> httpx.URL:
    """`url` parsed by httpx (its URLs are immutable, so one may serve every fetch of it)."""
    return httpx.URL(url)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


@functools.lru_cache(maxsize=16_384)
def _yarl_url(url: str) -> yarl.URL:
    """`url` (as httpx quoted it) for aiohttp, parsed once per URL like `_parsed_url`."""
    return yarl.URL(url, encoded=True)


def _release(response: aiohttp.ClientResponse) -> None:
    # Not awaited: `release` returns an awaitable only for old callers, and awaiting it would
    # yield one turn of the event loop per fetch for nothing.
    response.release()


def _redirect_target(reply: Reply, current: httpx.URL) -> httpx.URL | None:
    if reply.status not in _REDIRECT_CODES:
        return None
    location = reply.headers.get("location")
    if not location:
        return None
    return current.join(location)


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
