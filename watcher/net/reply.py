"""A response as the fetcher reads it, whichever transport sent the request.

The fetcher needs little of a response: its status, its headers as one lower-case dictionary,
its body (still content-encoded) and a way to let the connection go. `Reply` holds exactly that,
built from an `httpx.Response` (the guarded transport, any test transport) or straight from an
aiohttp response (trusted URLs), so the header dictionary is the same either way: names in lower
case, a repeated header's values joined by ", ", all decoded with the one encoding httpx would pick
for the whole header block (ASCII, else UTF-8, else Latin-1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

RawHeaders = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A response's status, headers and body, with a way to release its connection."""

    status: int
    headers: dict[str, str]  # lower-case names; see the module's text
    raw_headers: RawHeaders  # as received, for cookies set on a redirect
    body: Callable[[], AsyncIterator[bytes]]  # the body, still content-encoded
    close: Callable[[], Awaitable[None] | None]

    async def aclose(self) -> None:
        closing = self.close()
        if closing is not None:
            await closing

    def as_httpx(self, request: httpx.Request) -> httpx.Response:
        """A body-less `httpx.Response` with this reply's status and headers (for cookies)."""
        return httpx.Response(self.status, headers=list(self.raw_headers), request=request)


def reply_of_httpx(response: httpx.Response) -> Reply:
    """The reply an httpx transport's response makes."""
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("the transport answered with a synchronous body")
    return Reply(
        status=response.status_code,
        headers=dict(response.headers.items()),
        raw_headers=response.headers.raw,
        body=lambda: aiter(stream),
        close=response.aclose,
    )


def header_dict(raw: RawHeaders) -> dict[str, str]:
    """`raw` as httpx's `dict(Headers(raw).items())` reads it (see the module's text)."""
    for encoding in ("ascii", "utf-8"):
        try:
            return _joined(raw, encoding)
        except UnicodeDecodeError:
            continue
    return _joined(raw, "iso-8859-1")


def _joined(raw: RawHeaders, encoding: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.lower().decode(encoding)  # ASCII letters only, as httpx lowers them
        text = value.decode(encoding)
        seen = headers.get(key)
        headers[key] = text if seen is None else f"{seen}, {text}"
    return headers
