"""The fetcher against a real loopback server (and a mock transport for what a server can't do)."""

from __future__ import annotations

import codecs
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest
from httpserver import LoopbackServer, Reply, Request, endless

from watcher.core.model import FetchPlan
from watcher.net.decode import BodyDecoder, decode_body, normalise_charset
from watcher.net.fetch import DEFAULT_ACCEPT, DEFAULT_USER_AGENT, Fetcher
from watcher.net.headers import parse_retry_after
from watcher.net.netguard import IPAddress, URLGuard
from watcher.net.transport import build_client, fast_transport

STOCK = "在庫あり ～ 残り1点 ①"  # kana, kanji, a wave dash and an NEC special character
NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def html(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head>{head}<title>商品</title></head><body>{body}</body></html>"


# --- decode_body, by table --------------------------------------------------------------------

DECODE_CASES = [
    # id, body, content type, expected encoding
    ("utf8-plain", html(STOCK).encode(), "text/html", "utf-8"),
    ("utf8-header", html(STOCK).encode(), "text/html; charset=UTF-8", "utf-8"),
    ("sjis-header", html(STOCK).encode("cp932"), "text/html; charset=Shift_JIS", "cp932"),
    ("x-sjis-header", html(STOCK).encode("cp932"), 'text/html; charset="x-sjis"', "cp932"),
    (
        "sjis-meta-charset",
        html(STOCK, '<meta charset="Shift_JIS">').encode("cp932"),
        "text/html",
        "cp932",
    ),
    (
        "euc-meta-http-equiv",
        html(STOCK, '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=EUC-JP">').encode(
            "euc_jis_2004"
        ),
        None,
        "euc_jis_2004",
    ),
    (
        "xml-declaration",
        ('<?xml version="1.0" encoding="Shift_JIS"?><item>' + STOCK + "</item>").encode("cp932"),
        "application/xml",
        "cp932",
    ),
    (
        "bom-beats-header",
        codecs.BOM_UTF8 + html(STOCK).encode(),
        "text/html; charset=EUC-JP",
        "utf-8",
    ),
    ("bom-utf16", codecs.BOM_UTF16_LE + html(STOCK).encode("utf-16-le"), None, "utf-16-le"),
    ("sniff-sjis", html(STOCK).encode("cp932"), "text/html", "cp932"),
    ("sniff-euc", html(STOCK).encode("euc_jis_2004"), None, "euc_jis_2004"),
    (
        "json-is-utf8",
        ('{"t": "' + STOCK + '"}').encode(),
        "application/json; charset=sjis",
        "utf-8",
    ),
    ("unknown-label-sniffs", html(STOCK).encode("cp932"), "text/html; charset=bogus", "cp932"),
    (
        "meta-utf16-means-utf8",
        html(STOCK, '<meta charset="utf-16">').encode(),
        "text/html",
        "utf-8",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [c[1:] for c in DECODE_CASES],
    ids=[c[0] for c in DECODE_CASES],
)
def test_decode_body_finds_the_encoding(
    body: bytes, content_type: str | None, encoding: str
) -> None:
    text, used = decode_body(body, content_type)
    assert used == encoding
    assert STOCK in text


def test_decode_body_replaces_bad_bytes_instead_of_failing() -> None:
    text, used = decode_body(
        "在庫".encode("cp932") + b"\xff\xfe\x81", "text/html; charset=shift_jis"
    )
    assert used == "cp932"
    assert text.startswith("在庫")
    assert "\ufffd" in text


def test_decode_body_of_nothing() -> None:
    assert decode_body(b"", None) == ("", "utf-8")


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("Shift_JIS", "cp932"),
        ("SJIS", "cp932"),
        ("windows-31j", "cp932"),
        ("EUC-JP", "euc_jis_2004"),
        ("ISO-2022-JP", "iso2022_jp_ext"),
        ("utf8", "utf-8"),
        ("ISO-8859-1", "cp1252"),
        ("koi8-r", "koi8-r"),
        ("no-such-charset", None),
        ("", None),
    ],
)
def test_normalise_charset(label: str, codec: str | None) -> None:
    assert normalise_charset(label) == codec


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Mon, 06 Jan 2025 12:02:00 GMT", 120.0),
        ("Mon, 06 Jan 2025 11:00:00 GMT", 0.0),  # in the past: go now
        ("999999999", 86_400.0),  # clamped to a day
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


# --- against a loopback server ----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture(params=["guarded", "trusted"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """Every fetch test runs on both transports the app sends through: the guarded one (for
    untrusted URLs) and the fast one for trusted URLs."""
    transport = fast_transport() if request.param == "trusted" else None
    if request.param == "trusted" and transport is None:
        pytest.skip("aiohttp is not installed")
    async with build_client(transport=transport) as http:
        yield http


@pytest.fixture
async def guarded_client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_client() as http:
        yield http


def fetcher(client: httpx.AsyncClient, **options: object) -> Fetcher:
    return Fetcher(client, now=lambda: NOW, **options)  # type: ignore[arg-type]


CHARSET_ROUTES = {
    "/utf8": Reply(body=html(STOCK).encode(), headers={"content-type": "text/html; charset=utf-8"}),
    "/sjis-header": Reply(
        body=html(STOCK).encode("cp932"), headers={"content-type": "text/html; charset=Shift_JIS"}
    ),
    "/sjis-meta": Reply(
        body=html(STOCK, '<meta charset="shift_jis">').encode("cp932"),
        headers={"content-type": "text/html"},
    ),
    "/euc": Reply(
        body=html(STOCK).encode("euc_jis_2004"),
        headers={"content-type": "text/html; charset=euc-jp"},
    ),
    "/bom": Reply(
        body=codecs.BOM_UTF8 + html(STOCK).encode(), headers={"content-type": "text/html"}
    ),
}


@pytest.mark.parametrize(
    ("path", "encoding"),
    [
        ("/utf8", "utf-8"),
        ("/sjis-header", "cp932"),
        ("/sjis-meta", "cp932"),
        ("/euc", "euc_jis_2004"),
        ("/bom", "utf-8"),
    ],
)
async def test_fetch_decodes_each_charset(
    server: LoopbackServer, client: httpx.AsyncClient, path: str, encoding: str
) -> None:
    server.add(path, CHARSET_ROUTES[path])
    page = await fetcher(client).fetch(FetchPlan(url=server.url(path)))
    assert page.ok, page.error
    assert page.encoding == encoding
    assert STOCK in page.text
    assert page.bytes == len(CHARSET_ROUTES[path].body)  # type: ignore[arg-type]
    assert page.elapsed_ms > 0
    assert page.headers["content-type"] == CHARSET_ROUTES[path].headers["content-type"]


async def test_fetch_sends_browser_like_headers(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/", Reply(body=b"ok"))
    await fetcher(client).fetch(FetchPlan(url=server.url("/")))
    await fetcher(client, user_agent="restock-test/1").fetch(FetchPlan(url=server.url("/")))
    first, second = server.requests
    assert first.headers["user-agent"] == DEFAULT_USER_AGENT
    assert "Chrome/" in DEFAULT_USER_AGENT
    assert first.headers["accept-language"] == "ja,en;q=0.8"
    assert "gzip" in first.headers["accept-encoding"]
    assert "cache-control" not in first.headers
    assert second.headers["user-agent"] == "restock-test/1"


async def test_fetch_sends_host_encodings_and_keep_alive(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/item", Reply(body=b"ok"))
    await fetcher(client).fetch(FetchPlan(url=server.url("/item")))
    await fetcher(client).fetch(FetchPlan(url=server.url("/item"), method="post"))
    get, post = server.requests
    assert get.headers["host"] == f"127.0.0.1:{server.port}"
    assert get.headers["accept-encoding"] == "gzip, deflate"
    assert get.headers["connection"] == "keep-alive"
    assert get.headers["accept"] == DEFAULT_ACCEPT
    assert "content-length" not in get.headers
    assert (post.method, post.headers["content-length"]) == ("POST", "0")


async def test_one_fetcher_sends_each_fetch_its_own_headers(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    """Headers prepared for one fetch serve the next alike one, never another's validators,
    method or cookies."""
    server.add(
        "/item",
        lambda request: (
            Reply(body=b"ok")
            if request.headers.get("cookie") or request.method == "POST"
            else Reply(status=302, headers={"location": "/item", "set-cookie": "visited=1"})
        ),
    )
    shop = fetcher(client)
    url = server.url("/item")
    await shop.fetch(FetchPlan(url=url))
    await shop.fetch(FetchPlan(url=url), etag='"v1"')
    await shop.fetch(FetchPlan(url=url, method="post"))
    await shop.fetch(FetchPlan(url=url))
    seen = [
        (r.method, r.headers.get("cookie"), r.headers.get("if-none-match"), r.headers.get("host"))
        for r in server.requests
    ]
    host = f"127.0.0.1:{server.port}"
    assert seen == [
        ("GET", None, None, host),
        ("GET", "visited=1", None, host),
        ("GET", None, '"v1"', host),
        ("GET", "visited=1", '"v1"', host),
        ("POST", None, None, host),
        ("GET", None, None, host),
        ("GET", "visited=1", None, host),
    ]
    assert [r.headers.get("content-length") for r in server.requests if r.method == "POST"] == ["0"]
    assert all("content-length" not in r.headers for r in server.requests if r.method == "GET")


async def test_cookies_are_not_kept_between_fetches(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/item", Reply(body=b"ok", headers={"set-cookie": "session=abc; Path=/"}))
    shop = fetcher(client)
    await shop.fetch(FetchPlan(url=server.url("/item")))
    await shop.fetch(FetchPlan(url=server.url("/item")))
    assert [request.headers.get("cookie") for request in server.requests] == [None, None]


async def test_a_cookie_set_by_a_redirect_reaches_the_next_hop_only(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    """Shops that check for cookies redirect once to set one; the chain must carry it."""
    server.add(
        "/item",
        lambda request: (
            Reply(body=b"in stock")
            if request.headers.get("cookie") == "visited=1"
            else Reply(status=302, headers={"location": "/item", "set-cookie": "visited=1"})
        ),
    )
    shop = fetcher(client)
    first = await shop.fetch(FetchPlan(url=server.url("/item")))
    second = await shop.fetch(FetchPlan(url=server.url("/item")))
    assert first.text == second.text == "in stock"
    cookies = [request.headers.get("cookie") for request in server.requests]
    assert cookies == [None, "visited=1", None, "visited=1"]


async def test_fetch_uses_plan_headers_and_params(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/search", Reply(body=b"{}", headers={"content-type": "application/json"}))
    plan = FetchPlan(
        url=server.url("/search?keyword=x"),
        headers={"Accept": "application/json"},
        params={"jan": "4901234567894"},
    )
    page = await fetcher(client).fetch(plan)
    assert page.ok
    (request,) = server.requests
    assert request.path == "/search?keyword=x&jan=4901234567894"
    assert request.headers["accept"] == "application/json"


async def test_cache_bust_adds_headers_not_query_parameters(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/item", Reply(body=b"ok"))
    await fetcher(client).fetch(FetchPlan(url=server.url("/item?id=1")), cache_bust=True)
    (request,) = server.requests
    assert request.path == "/item?id=1"
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["pragma"] == "no-cache"


async def test_conditional_get_answers_not_modified(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    def item(request: Request) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(status=304, headers={"etag": '"v1"'})
        return Reply(
            body=b"<p>in stock</p>",
            headers={"etag": '"v1"', "last-modified": "Mon, 06 Jan 2025 11:00:00 GMT"},
        )

    server.add("/item", item)
    first = await fetcher(client).fetch(FetchPlan(url=server.url("/item")))
    assert first.ok and not first.not_modified
    assert first.etag == '"v1"'
    second = await fetcher(client).fetch(
        FetchPlan(url=server.url("/item")), etag=first.etag, last_modified=first.last_modified
    )
    assert second.not_modified
    assert second.status == 304
    assert second.text == ""
    assert server.requests[1].headers["if-modified-since"] == "Mon, 06 Jan 2025 11:00:00 GMT"


async def test_body_cap_aborts_an_endless_response(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/huge", Reply(body=endless(b"x" * 65_536), headers={"content-type": "text/html"}))
    page = await fetcher(client, max_bytes=200_000).fetch(FetchPlan(url=server.url("/huge")))
    assert page.truncated
    assert page.error == "body over 200000 bytes"
    assert page.status == 200
    assert page.bytes == 200_000
    assert len(page.text) == 200_000


async def test_body_under_the_cap_is_whole(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/small", Reply(body=b"y" * 1000))
    page = await fetcher(client, max_bytes=1000).fetch(FetchPlan(url=server.url("/small")))
    assert page.ok and not page.truncated
    assert page.bytes == 1000


async def test_gzip_body_is_decompressed(server: LoopbackServer, client: httpx.AsyncClient) -> None:
    raw = html(STOCK).encode()
    server.add(
        "/gz",
        Reply(
            body=gzip.compress(raw),
            headers={"content-type": "text/html; charset=utf-8", "content-encoding": "gzip"},
        ),
    )
    page = await fetcher(client).fetch(FetchPlan(url=server.url("/gz")))
    assert page.ok
    assert STOCK in page.text
    assert page.bytes == len(raw)


async def test_gzip_bomb_is_capped_after_decompression(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add(
        "/bomb", Reply(body=gzip.compress(b"0" * 5_000_000), headers={"content-encoding": "gzip"})
    )
    page = await fetcher(client, max_bytes=100_000).fetch(FetchPlan(url=server.url("/bomb")))
    assert page.truncated
    assert page.bytes == 100_000


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
    ],
)
def test_a_bomb_never_inflates_past_the_limit_in_one_call(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    """A few hundred kilobytes that inflate to 300 MB, arriving as one chunk: the decoder hands
    out no more than asked for, so memory stays bounded whatever the transport's chunk size."""
    bomb = compress(b"\0" * 300_000_000)
    decoder = BodyDecoder.for_encoding(encoding)
    assert decoder is not None and len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        out = decoder.decode(bomb, 100_001)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) == 100_001 and set(out) == {0}
    assert peak < 5_000_000  # not the 300 MB the bomb holds


def test_bounded_decoding_still_gives_every_byte_of_a_normal_body() -> None:
    raw = html(STOCK).encode() * 2_000
    for encoding, body in (
        ("gzip", gzip.compress(raw)),
        ("gzip, deflate", zlib.compress(gzip.compress(raw))),
    ):
        decoder = BodyDecoder.for_encoding(encoding)
        assert decoder is not None
        # Small chunks and a small limit per call: pieces are carried over, nothing is lost.
        out = b"".join(
            decoder.decode(body[i : i + 997], len(raw) + 1) for i in range(0, len(body), 997)
        )
        out += decoder.flush(len(raw) + 1)
        assert out == raw, encoding


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
        ("GZIP", gzip.compress),
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),  # applied in order
        ("identity", lambda data: data),
        ("x-unknown", lambda data: data),  # an encoding we cannot undo is passed through
    ],
)
async def test_content_encodings_are_undone(
    server: LoopbackServer,
    client: httpx.AsyncClient,
    encoding: str,
    compress: Callable[[bytes], bytes],
) -> None:
    raw = html(STOCK).encode() * 50
    server.add(
        "/item",
        Reply(
            body=compress(raw),
            headers={"content-type": "text/html; charset=utf-8", "content-encoding": encoding},
        ),
    )
    page = await fetcher(client).fetch(FetchPlan(url=server.url("/item")))
    assert page.ok, page.error
    assert page.bytes == len(raw)
    assert page.text == raw.decode()


async def test_gzip_cap_applies_to_a_chunked_body(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    packed = gzip.compress(b"<p>" + b"x" * 3_000_000 + b"</p>")
    pieces = (packed[i : i + 1000] for i in range(0, len(packed), 1000))
    server.add("/item", Reply(body=pieces, headers={"content-encoding": "gzip"}))
    page = await fetcher(client, max_bytes=1_000_000).fetch(FetchPlan(url=server.url("/item")))
    assert page.truncated
    assert page.bytes == 1_000_000
    assert page.text.startswith("<p>xxx")


async def test_broken_gzip_is_a_decode_error(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/bad", Reply(body=b"not gzip at all", headers={"content-encoding": "gzip"}))
    page = await fetcher(client).fetch(FetchPlan(url=server.url("/bad")))
    assert page.error is not None and page.error.startswith("decode:")
    assert page.status == 200


async def test_redirects_are_followed(server: LoopbackServer, client: httpx.AsyncClient) -> None:
    server.add("/old", Reply(status=301, headers={"location": "/new"}))
    server.add("/new", Reply(body=b"moved here"))
    page = await fetcher(client).fetch(FetchPlan(url=server.url("/old")))
    assert page.ok
    assert page.text == "moved here"
    assert page.url == server.url("/old")
    assert page.final_url == server.url("/new")


async def test_redirect_cap(server: LoopbackServer, client: httpx.AsyncClient) -> None:
    server.add("/loop", Reply(status=302, headers={"location": "/loop"}))
    page = await fetcher(client, max_redirects=3).fetch(FetchPlan(url=server.url("/loop")))
    assert page.error == "too many redirects"
    assert page.status == 302
    assert len(server.requests) == 4  # the first request and three redirects


async def test_stalling_server_times_out(server: LoopbackServer, client: httpx.AsyncClient) -> None:
    server.add("/stall", Reply(body=b"late", stall=30))
    page = await fetcher(client, timeout=0.2).fetch(FetchPlan(url=server.url("/stall")))
    assert page.error == "timeout"
    assert page.status is None
    assert page.elapsed_ms < 5000


async def test_slow_drip_hits_the_deadline(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    def drip() -> Iterator[bytes]:
        import time

        while True:
            yield b"."
            time.sleep(0.05)

    server.add("/drip", Reply(body=drip()))
    page = await fetcher(client, timeout=5, deadline=0.3).fetch(FetchPlan(url=server.url("/drip")))
    assert page.error == "timeout"
    assert page.status == 200


async def test_429_retry_after(server: LoopbackServer, client: httpx.AsyncClient) -> None:
    server.add("/busy", Reply(status=429, body=b"slow down", headers={"Retry-After": "120"}))
    server.add("/down", Reply(status=503, headers={"retry-after": "Mon, 06 Jan 2025 12:05:00 GMT"}))
    busy = await fetcher(client).fetch(FetchPlan(url=server.url("/busy")))
    down = await fetcher(client).fetch(FetchPlan(url=server.url("/down")))
    assert (busy.status, busy.retry_after, busy.ok) == (429, 120.0, False)
    assert busy.error is None
    assert busy.headers["retry-after"] == "120"
    assert (down.status, down.retry_after) == (503, 300.0)


async def test_refused_connection_is_a_page(client: httpx.AsyncClient) -> None:
    with LoopbackServer() as gone:
        url = gone.url("/")
    page = await fetcher(client).fetch(FetchPlan(url=url))
    assert page.status is None
    assert page.error is not None and page.error.startswith("connect:")


UNUSABLE_URLS = ["not a url", "ftp://example.com/x", "http://", "//shop.example/item", "mailto:a@b"]


@pytest.mark.parametrize("url", UNUSABLE_URLS)
async def test_unusable_urls_are_pages(client: httpx.AsyncClient, url: str) -> None:
    page = await fetcher(client).fetch(FetchPlan(url=url))
    assert page.status is None
    assert page.error is not None and page.error.startswith("invalid url: ")


@pytest.mark.parametrize("url", UNUSABLE_URLS)
async def test_unusable_urls_are_pages_on_the_aiohttp_transport(url: str) -> None:
    """The app's fast transport is handed the request directly: it must fail the same way."""
    from httpx_aiohttp import AiohttpTransport

    async with build_client(transport=AiohttpTransport(trust_env=False)) as http:
        page = await fetcher(http).fetch(FetchPlan(url=url))
    assert page.status is None
    assert page.error is not None and page.error.startswith("invalid url: ")


# --- guarded fetches --------------------------------------------------------------------------


class LoopbackGuard(URLGuard):
    """A guard that treats the test server's own address as public (and nothing else)."""

    def refusal_for_address(self, address: IPAddress) -> str | None:
        return None if str(address) == "127.0.0.1" else super().refusal_for_address(address)


def fake_resolver(table: dict[str, Sequence[Sequence[str]]]):  # type: ignore[no-untyped-def]
    """Answers each name from `table`, one answer per call (the last one repeats)."""
    calls: dict[str, int] = {}

    async def resolve(host: str) -> Sequence[str]:
        answers = table.get(host)
        if answers is None:
            raise OSError(f"unknown host {host}")
        index = min(calls.get(host, 0), len(answers) - 1)
        calls[host] = index + 1
        return answers[index]

    return resolve


def shop_guard(server: LoopbackServer, **answers: Sequence[Sequence[str]]) -> URLGuard:
    table = {"shop.test": [["127.0.0.1"]], **{k.replace("_", "."): v for k, v in answers.items()}}
    return LoopbackGuard(
        ["shop.test", "other.test"], resolver=fake_resolver(table), ports={80, 443, server.port}
    )


async def test_guarded_fetch_connects_to_the_checked_address(
    server: LoopbackServer, guarded_client: httpx.AsyncClient
) -> None:
    server.add("/item", Reply(body=b"ok"))
    url = f"http://SHOP.test:{server.port}/item#reviews"
    page = await fetcher(guarded_client).fetch(FetchPlan(url=url), guard=shop_guard(server))
    assert page.ok, page.error
    assert page.final_url == f"http://shop.test:{server.port}/item"
    assert server.requests[0].headers["host"] == f"shop.test:{server.port}"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://127.0.0.1:{port}/admin", "IP address hosts are not allowed"),
        ("http://evil.test:{port}/", "not an allowed store host"),
        ("http://other.test:{port}/", "resolves to private address 10.0.0.5"),
        ("http://shop.test:6379/", "port 6379 is not allowed"),
        ("file:///etc/passwd", "scheme 'file'"),
    ],
)
async def test_guarded_fetch_blocks_bad_redirects(
    server: LoopbackServer, guarded_client: httpx.AsyncClient, location: str, reason: str
) -> None:
    server.add("/item", Reply(status=302, headers={"location": location.format(port=server.port)}))
    guard = shop_guard(server, other_test=[["10.0.0.5"]])
    page = await fetcher(guarded_client).fetch(
        FetchPlan(url=f"http://shop.test:{server.port}/item"), guard=guard
    )
    assert page.error is not None
    assert page.error.startswith("blocked redirect: ")
    assert reason in page.error
    assert len(server.requests) == 1


async def test_guarded_fetch_blocks_the_first_url(
    server: LoopbackServer, guarded_client: httpx.AsyncClient
) -> None:
    page = await fetcher(guarded_client).fetch(
        FetchPlan(url=server.url("/")), guard=shop_guard(server)
    )
    assert page.error == "blocked: IP address hosts are not allowed (127.0.0.1)"
    assert page.status is None
    assert server.requests == []


async def test_guard_rechecks_at_connect_time_against_dns_rebinding(
    server: LoopbackServer, guarded_client: httpx.AsyncClient
) -> None:
    server.add("/item", Reply(body=b"secret"))
    # First answer passes the check; the answer at connect time points inside the network.
    guard = shop_guard(server, shop_test=[["127.0.0.1"], ["10.1.2.3"]])
    page = await fetcher(guarded_client).fetch(
        FetchPlan(url=f"http://shop.test:{server.port}/item"), guard=guard
    )
    assert page.error == "blocked: shop.test resolves to private address 10.1.2.3"
    assert server.requests == []


async def test_guarded_connect_tries_the_next_checked_address(
    server: LoopbackServer, guarded_client: httpx.AsyncClient
) -> None:
    class LoopbackNetGuard(URLGuard):
        def refusal_for_address(self, address: IPAddress) -> str | None:
            return None if address.is_loopback else super().refusal_for_address(address)

    server.add("/item", Reply(body=b"second address"))
    resolver = fake_resolver({"shop.test": [["127.0.0.2", "127.0.0.1"]]})  # nothing on .2
    guard = LoopbackNetGuard(["shop.test"], resolver=resolver, ports={server.port})
    page = await fetcher(guarded_client).fetch(
        FetchPlan(url=f"http://shop.test:{server.port}/item"), guard=guard
    )
    assert page.text == "second address"


async def test_trusted_fetch_may_use_loopback(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.add("/", Reply(body=b"local shop"))
    page = await fetcher(client).fetch(FetchPlan(url=server.url("/")), guard=None)
    assert page.text == "local shop"


# --- what only a mock transport can stage -----------------------------------------------------


def mock_fetcher(handler) -> Fetcher:  # type: ignore[no-untyped-def]
    return fetcher(httpx.AsyncClient(transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "tls: "),
        (httpx.ConnectError("Name or service not known"), "connect: Name or service not known"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.RemoteProtocolError("illegal header"), "protocol: illegal header"),
        (httpx.ReadError("reset by peer"), "network: reset by peer"),
    ],
)
async def test_transport_failures_become_errors(exc: Exception, error: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    page = await mock_fetcher(fail).fetch(FetchPlan(url="https://shop.example/item"))
    assert page.status is None
    assert page.error is not None and page.error.startswith(error)


async def test_cross_origin_redirect_drops_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.shop.example":
            return httpx.Response(302, headers={"location": "https://cdn.example/x"})
        return httpx.Response(200, text="ok")

    plan = FetchPlan(url="https://api.shop.example/x", headers={"Authorization": "Bearer t"})
    page = await mock_fetcher(handler).fetch(plan)
    assert page.ok
    assert seen[0].headers["authorization"] == "Bearer t"
    assert "authorization" not in seen[1].headers


async def test_303_turns_post_into_get() -> None:
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        if request.url.path == "/form":
            return httpx.Response(303, headers={"location": "/done"})
        return httpx.Response(200, text="done")

    page = await mock_fetcher(handler).fetch(
        FetchPlan(url="https://shop.example/form", method="post")
    )
    assert page.text == "done"
    assert methods == ["POST", "GET"]


async def test_header_names_are_lower_case() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"X-Shop-Stock": "3", "ETag": 'W/"a"'}, text="ok")

    page = await mock_fetcher(handler).fetch(FetchPlan(url="https://shop.example/"))
    assert page.headers["x-shop-stock"] == "3"
    assert page.etag == 'W/"a"'
    assert all(name == name.lower() for name in page.headers)


async def test_repeated_response_headers_are_joined() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = [("Vary", "Accept"), ("vary", "Cookie"), ("Content-Type", "text/html")]
        return httpx.Response(200, headers=headers, text="ok")

    page = await mock_fetcher(handler).fetch(FetchPlan(url="https://shop.example/"))
    assert page.headers["vary"] == "Accept, Cookie"
    assert page.content_type == "text/html"


async def test_timeouts_reach_the_transport() -> None:
    seen: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions.get("timeout"))
        return httpx.Response(200, text="ok")

    transport = httpx.MockTransport(handler)
    shop = fetcher(httpx.AsyncClient(transport=transport), timeout=httpx.Timeout(7.0, connect=3.0))
    await shop.fetch(FetchPlan(url="https://shop.example/"))
    assert seen == [{"connect": 3.0, "read": 7.0, "write": 7.0, "pool": 7.0}]


async def test_the_response_is_closed_whatever_happens() -> None:
    """Body read, body cut at the cap, redirect, broken body: every response goes back."""
    closed: list[str] = []

    class Body(httpx.AsyncByteStream):
        def __init__(self, name: str, chunks: list[bytes], fail: bool = False) -> None:
            self.name, self.chunks, self.fail = name, chunks, fail

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in self.chunks:
                yield chunk
            if self.fail:
                raise httpx.ReadError("reset by peer")

        async def aclose(self) -> None:
            closed.append(self.name)

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/moved":
            return httpx.Response(301, headers={"location": "/whole"}, stream=Body(path, []))
        if path == "/broken":
            return httpx.Response(200, stream=Body(path, [b"x" * 300], fail=True))
        return httpx.Response(200, stream=Body(path, [b"x" * 600] * 3))

    shop = fetcher(httpx.AsyncClient(transport=httpx.MockTransport(handler)), max_bytes=1000)
    pages = [
        await shop.fetch(FetchPlan(url=f"https://shop.example{path}"))
        for path in ("/moved", "/broken")
    ]
    assert closed == ["/moved", "/whole", "/broken"]
    assert pages[0].truncated and pages[0].bytes == 1000
    assert pages[1].error == "network: reset by peer"


async def test_a_client_that_routes_through_mounts_is_refused() -> None:
    """The fetcher sends through the client's own transport, so it must not skip a proxy."""
    direct = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=direct, mounts={"https://": direct}) as proxied:
        with pytest.raises(ValueError, match="mounted"):
            Fetcher(proxied)


async def test_guarded_fetches_go_through_the_guarded_client() -> None:
    """Trusted URLs may take a fast transport; a chat user's URL takes the guarded one."""
    lanes: list[str] = []

    def lane(name: str) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            lanes.append(name)
            return httpx.Response(200, text="<html>在庫あり</html>")

        return httpx.MockTransport(answer)

    async def public(host: str) -> list[str]:
        return ["52.119.168.48"]

    fast = httpx.AsyncClient(transport=lane("fast"))
    guarded = httpx.AsyncClient(transport=lane("guarded"))
    fetcher = Fetcher(fast, guarded_client=guarded)
    plan = FetchPlan("https://www.amazon.co.jp/dp/B0DX000000")
    guard = URLGuard(["www.amazon.co.jp"], resolver=public)
    try:
        assert (await fetcher.fetch(plan)).ok
        assert (await fetcher.fetch(plan, guard=guard)).ok
    finally:
        await fast.aclose()
        await guarded.aclose()
    assert lanes == ["fast", "guarded"]
