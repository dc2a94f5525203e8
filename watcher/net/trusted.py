"""The transport for trusted URLs: httpx requests sent through aiohttp, on a short path.

httpx_aiohttp's transport does per request what need be done once: it builds a timeout object,
re-parses and re-quotes the URL (httpx has quoted it already), reads proxy settings, and streams
the body in 16 KB pieces through two generators. This one builds each timeout setting once, passes
the URL as httpx quoted it, and hands on the body in the pieces the socket delivered. aiohttp's
errors become httpx's by a table read top to bottom, the first match winning (httpx_aiohttp's map
reads a refused connection as a connect timeout), so the fetcher describes failures as httpx's own
transport would. The fetcher calls `open` itself for trusted URLs and skips httpx's objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import aiohttp
import httpx
import yarl
from httpx_aiohttp.transport import (  # type: ignore[import-not-found, unused-ignore]
    AiohttpTransport,
)

TimeoutKey = tuple[float | None, float | None, float | None]

# aiohttp's error -> httpx's, the most specific first.
ERRORS: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
)


@contextmanager
def httpx_errors() -> Iterator[None]:
    """aiohttp's errors raised as httpx's (see `ERRORS`), the original as the cause."""
    try:
        yield
    except aiohttp.ClientError as exc:
        mapped = next(to for source, to in ERRORS if isinstance(exc, source))
        raise mapped(str(exc) or type(exc).__name__) from exc


class TrustedTransport(AiohttpTransport):  # type: ignore[misc, unused-ignore]
    """httpx_aiohttp's transport, with a shorter path per request (see the module's text)."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        super().__init__(trust_env=False, client=session)
        self._timeouts: dict[TimeoutKey, aiohttp.ClientTimeout] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.open(
            request.method,
            yarl.URL(str(request.url), encoded=True),  # quoted by httpx: sent as it is
            request.headers.multi_items(),
            request.extensions.get("timeout", {}),
            request.content or None,
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def open(
        self,
        method: str,
        url: yarl.URL,
        headers: Sequence[tuple[str, str]],
        timeout: Mapping[str, float | None],
        content: bytes | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request as it is (no redirects followed, the body left content-encoded).

        The fetcher calls this directly for trusted URLs: an `httpx.Response` costs more to
        build than its few uses there are worth. The caller releases the response.
        """
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        with httpx_errors():
            return await self.client.request(
                method,
                url,
                headers=headers,
                data=content,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=self._timeout(timeout),
            )

    def _timeout(self, setting: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (setting.get("connect"), setting.get("read"), setting.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
            self._timeouts[key] = timeout
        return timeout


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body, still content-encoded, as the socket delivered it."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return body_chunks(self._response)

    async def aclose(self) -> None:
        self._response.release()


async def body_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """`response`'s body in the pieces the socket delivered, aiohttp's errors as httpx's."""
    with httpx_errors():
        async for chunk in response.content.iter_any():
            yield chunk
