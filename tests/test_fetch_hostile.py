"""Malformed responses from a hostile server: on every transport the fetcher returns a page (an
error or a decoded body), and reading it gives an observation. Nothing raises.

The server writes raw bytes on loopback, so it can break HTTP in ways no framework allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from watcher.core.model import Availability, FetchPlan
from watcher.net.decode import decode_body
from watcher.net.fetch import Fetcher
from watcher.net.transport import build_client, fast_transport
from watcher.reading.read import read_page

STOCK = "<html><body><h1>マグカップ</h1><p>在庫あり</p><p>¥1,980</p></body></html>".encode()


def reply(head: str, body: bytes = STOCK) -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


HOSTILE: dict[str, bytes] = {
    "10,000 headers": b"HTTP/1.1 200 OK\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
    + b"Content-Length: %d\r\n\r\n" % len(STOCK)
    + STOCK,
    "a 200 KB header line": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\n" + STOCK,
    "two different Content-Lengths": reply(
        f"HTTP/1.1 200 OK\nContent-Length: 5\nContent-Length: {len(STOCK)}\n"
    ),
    "Content-Length and chunked": reply(
        "HTTP/1.1 200 OK\nContent-Length: 3\nTransfer-Encoding: chunked\n", b"zz\r\n"
    ),
    "an HTTP/0.9 reply": STOCK,
    "a garbage status line": reply("HTTP/1.1 OK FINE\nContent-Length: 3\n", b"abc"),
    "status 999": reply("HTTP/1.1 999 Whatever\nContent-Length: 3\n", b"abc"),
    "a negative Content-Length": reply("HTTP/1.1 200 OK\nContent-Length: -5\n"),
    "a bad chunk size": reply("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", b"zz\r\nabc\r\n"),
    "a body cut short": reply("HTTP/1.1 200 OK\nContent-Length: 100000\n"),
    "NUL in a header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 3\r\n\r\nabc",
    "a header without a colon": reply("HTTP/1.1 200 OK\nnot a header\nContent-Length: 3\n", b"abc"),
    "gzip that is not gzip": reply(
        "HTTP/1.1 200 OK\nContent-Encoding: gzip\nContent-Length: 3\n", b"abc"
    ),
    "an unknown Content-Encoding": reply(
        "HTTP/1.1 200 OK\nContent-Encoding: x-weird\nContent-Length: 3\n", b"abc"
    ),
    "endless 100 Continue": b"HTTP/1.1 100 Continue\r\n\r\n" * 2000,
    "charset rot13": reply(
        f"HTTP/1.1 200 OK\nContent-Type: text/html; charset=rot13\nContent-Length: {len(STOCK)}\n"
    ),
    "charset base64": reply(
        f"HTTP/1.1 200 OK\nContent-Type: text/html; charset=base64\nContent-Length: {len(STOCK)}\n"
    ),
    "charset undefined": reply(
        "HTTP/1.1 200 OK\nContent-Type: text/html; charset=undefined\n"
        f"Content-Length: {len(STOCK)}\n"
    ),
    "meta charset zlib": reply(
        "HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: 40\n",
        b'<meta charset="zlib"><p>\x8d\xdd\x8c\xc9</p>',
    ),
}


class RawServer:
    """Answers every request on a connection with one scripted byte string, then closes."""

    def __init__(self) -> None:
        self.answer = b""
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/item"


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    yield raw
    raw.server.close()


def aiohttp_transport() -> httpx.AsyncBaseTransport:
    transport = fast_transport()
    assert transport is not None, "the aiohttp transport is installed with the package"
    return transport


TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport | None]] = {
    "aiohttp": aiohttp_transport,  # what `restock run` uses for YAML watches
    "httpx": lambda: None,  # httpx's own (chat users' guarded fetches, `restock check`)
}


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("case", list(HOSTILE))
async def test_a_malformed_response_becomes_a_page_and_an_observation(
    case: str, transport: str, raw_server: RawServer
) -> None:
    raw_server.answer = HOSTILE[case]
    client = build_client(transport=TRANSPORTS[transport]())
    try:
        page = await Fetcher(client, timeout=2.0, deadline=5.0).fetch(FetchPlan(url=raw_server.url))
    finally:
        await client.aclose()
    assert page.error or page.status is not None, page
    observation = read_page(page)
    assert observation.state in Availability
    if page.error:
        assert observation.state is Availability.UNKNOWN


@pytest.mark.parametrize("charset", ["rot13", "base64", "undefined", "hex", "zlib", "idna", "uu"])
def test_a_charset_that_names_no_text_encoding_falls_back_to_sniffing(charset: str) -> None:
    text, encoding = decode_body("在庫あり".encode(), f"text/html; charset={charset}")
    assert text == "在庫あり" and encoding == "utf-8"
    meta = f'<meta charset="{charset}"><p>在庫あり</p>'.encode("cp932")
    text, encoding = decode_body(meta, "text/html")
    assert "在庫あり" in text and encoding == "cp932"
