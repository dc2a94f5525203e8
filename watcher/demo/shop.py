"""A simulated shop on loopback: products that go in and out of stock on a script.

Serves the offline demo, the engine tests and the benchmark. Each product follows a `Script`: a
function of (seconds since start, request number) to what the shop shows, so ghost stock (one stale
in-stock answer), captcha spells and 503 spells can be staged exactly. Served by aiohttp
(through `watcher.web.listener`); binds to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import html
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from watcher.web.listener import Listener, Request, Response, serve


class Shows(enum.Enum):
    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"
    PREORDER = "preorder"
    CAPTCHA = "captcha"
    UNAVAILABLE = "503"
    NO_SIGNAL = "no_signal"  # a redesigned page: a title, but no stock wording a parser knows


# (seconds since the shop started, how many requests this product had before) -> what it shows
Script = Callable[[float, int], Shows]


def timeline(*steps: tuple[float, Shows]) -> Script:
    """A script from (from_second, shows) steps, e.g. timeline((0, OUT), (15, IN))."""
    ordered = sorted(steps, key=lambda step: step[0])

    def script(elapsed: float, _count: int) -> Shows:
        current = ordered[0][1]
        for start, shows in ordered:
            if elapsed >= start:
                current = shows
        return current

    return script


def ghost_once(after: float, base: Shows = Shows.OUT_OF_STOCK) -> Script:
    """Out of stock, except that the first request after `after` seconds sees stale stock."""
    seen = {"flapped": False}

    def script(elapsed: float, _count: int) -> Shows:
        if elapsed >= after and not seen["flapped"]:
            seen["flapped"] = True
            return Shows.IN_STOCK
        return base

    return script


@dataclass
class ShopProduct:
    slug: str
    title: str
    price: int
    script: Script
    padding: int = 0  # extra bytes of page weight (benchmarks use real-size pages)
    requests: int = 0


@dataclass
class DemoShop:
    """The shop. `start()` binds a free loopback port; `url(slug)` gives a product's address."""

    products: dict[str, ShopProduct] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    latency: float = 0.0  # seconds each answer takes (lets concurrent requests overlap)
    retry_after: str | None = "2"  # the Retry-After of a 503 answer (None: no header)
    etags: bool = True  # answer If-None-Match with 304 when the page did not change
    vary: bool = False  # end every page with a per-request token, as many real shops do
    record_arrivals: bool = True
    in_flight: int = 0
    max_in_flight: int = 0
    total_requests: int = 0
    not_modified: int = 0
    arrivals: list[tuple[float, str]] = field(default_factory=list)  # (shop clock, slug)
    _server: Listener | None = None
    _started_at: float = 0.0
    _pages: dict[tuple[str, Shows], tuple[bytes, str]] = field(default_factory=dict)
    port: int = 0

    def add(self, product: ShopProduct) -> None:
        self.products[product.slug] = product

    def url(self, slug: str) -> str:
        return f"http://127.0.0.1:{self.port}/items/{slug}"

    async def start(self) -> None:
        self._started_at = self.clock()
        self._server = await serve(self._handle)
        self.port = self._server.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def __aenter__(self) -> DemoShop:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def elapsed(self) -> float:
        return self.clock() - self._started_at

    async def _handle(self, request: Request) -> Response:
        self.in_flight += 1
        self.total_requests += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, headers, body = self.respond(request.path, request.headers)
            # Let concurrent requests overlap, as a real server's would.
            await asyncio.sleep(self.latency)
            return Response(status, body, headers)
        finally:
            self.in_flight -= 1

    def respond(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """What the shop answers for one request (pure apart from the request counters)."""
        slug = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        product = self.products.get(slug)
        if product is None or not path.startswith("/items/"):
            return 404, {"Content-Type": "text/plain"}, b"not found"
        if self.record_arrivals:
            self.arrivals.append((self.clock(), slug))
        shows = product.script(self.elapsed(), product.requests)
        product.requests += 1
        if shows is Shows.UNAVAILABLE:
            extra = {"Retry-After": self.retry_after} if self.retry_after else {}
            return 503, {"Content-Type": "text/html", **extra}, _UNAVAILABLE_PAGE
        if shows is Shows.CAPTCHA:
            return 200, {"Content-Type": "text/html; charset=utf-8"}, _CAPTCHA_PAGE
        page, etag = self._page(product, shows)
        if self.etags and (headers or {}).get("if-none-match") == etag:
            self.not_modified += 1
            return 304, {"ETag": etag}, b""
        answer = {"Content-Type": "text/html; charset=utf-8"}
        if self.etags:
            answer["ETag"] = etag
        if self.vary:
            page += f"<!-- request {self.total_requests} -->".encode()
        return 200, answer, page

    def _page(self, product: ShopProduct, shows: Shows) -> tuple[bytes, str]:
        """A product's page and its ETag, built once per state (pages can weigh 100 KB)."""
        key = (product.slug, shows)
        cached = self._pages.get(key)
        if cached is None:
            page = product_page(product, shows)
            etag = '"' + hashlib.blake2b(page, digest_size=8).hexdigest() + '"'
            cached = self._pages[key] = (page, etag)
        return cached


def product_page(product: ShopProduct, shows: Shows) -> bytes:
    """A product page with schema.org JSON-LD and the shop's visible Japanese wording."""
    if shows is Shows.NO_SIGNAL:
        return _redesigned_page(product)
    availability, wording, button = _PAGE_WORDING[shows]
    data = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": product.title,
        "offers": {
            "@type": "Offer",
            "price": product.price,
            "priceCurrency": "JPY",
            "availability": f"https://schema.org/{availability}",
            "seller": {"@type": "Organization", "name": "デモショップ"},
        },
    }
    title = html.escape(product.title)
    padding = "<!-- " + "x" * product.padding + " -->" if product.padding else ""
    text = (
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'>"
        f"<title>{title} | デモショップ</title>"
        f"<script type='application/ld+json'>{json.dumps(data, ensure_ascii=False)}</script>"
        f"</head><body><h1>{title}</h1><p class='price'>￥{product.price:,}（税込）</p>"
        f"<p class='stock'>{wording}</p>{button}{padding}</body></html>"
    )
    return text.encode("utf-8")


def _redesigned_page(product: ShopProduct) -> bytes:
    """The product page after a redesign: stock shown by a script the parsers cannot read."""
    title = html.escape(product.title)
    return (
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'>"
        f"<title>{title} | デモショップ</title></head><body><h1>{title}</h1>"
        f"<div id='app' data-sku='{html.escape(product.slug)}'></div>"
        "<script src='/static/stock-widget.js'></script></body></html>"
    ).encode()


_PAGE_WORDING = {
    Shows.IN_STOCK: ("InStock", "在庫あり", "<button type='submit'>カートに入れる</button>"),
    Shows.OUT_OF_STOCK: ("OutOfStock", "在庫切れ", "<button disabled>売り切れ</button>"),
    Shows.PREORDER: ("PreOrder", "予約受付中", "<button type='submit'>予約する</button>"),
}

_CAPTCHA_PAGE = (
    "<html><head><title>Robot Check</title></head><body>"
    "<form action='/errors/validateCaptcha'><p>Enter the characters you see below</p>"
    "<input id='captchacharacters' name='field-keywords'></form>"
    "<p>在庫あり</p></body></html>"
).encode()

_UNAVAILABLE_PAGE = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
