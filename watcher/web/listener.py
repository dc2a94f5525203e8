"""The project's HTTP listeners on aiohttp's web server, and the plain values handlers speak.

Handlers that need nothing of aiohttp (the web UI, the LINE webhook, the demo shop, test
stand-ins) take a `Request` and give a `Response`: plain values, easy to test without a socket.
`route` puts such a handler behind an aiohttp route; `serve` runs one on its own port.

aiohttp parses HTTP and keeps its limits (request line and header sizes); on top of it every body
is capped at `MAX_BODY` (413 above it) and must arrive within `BODY_SECONDS` (408 after), so a
client that sends slowly ties up only its own connection and never a handler for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

MAX_BODY = 65_536  # the largest request body any endpoint takes (forms, LINE's webhook)
MAX_LINE = 8_190  # request line and each header line
MAX_HEADERS = 100  # header fields per request
BODY_SECONDS = 30.0  # a body that takes longer to arrive is refused
SERVER_NAME = "restock-watcher"
IDLE_SECONDS = 75.0  # an idle keep-alive connection is closed after this
SHUTDOWN_SECONDS = 5.0  # requests still running on stop get this long to finish

_T = TypeVar("_T")
BODY_TIME = web.AppKey("body_seconds", float)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # as sent: percent-encoded, with its query string
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]
AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def read_body(request: web.Request) -> bytes:
    """The request's body within the size and time limits (aiohttp errors: 413, 408)."""
    return await _in_time(request, request.read())


async def read_form(request: web.Request) -> dict[str, str]:
    """A POST's text fields, urlencoded or multipart, within the size and time limits."""
    form = await _in_time(request, request.post())
    return {name: value for name, value in form.items() if isinstance(value, str)}


async def _in_time(request: web.Request, reading: Awaitable[_T]) -> _T:
    try:
        async with asyncio.timeout(request.app.get(BODY_TIME, BODY_SECONDS)):
            return await reading
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the request body came too slowly\n") from None


async def plain_request(request: web.Request) -> Request:
    headers = {name.lower(): value for name, value in request.headers.items()}
    return Request(request.method, request.raw_path, headers, await read_body(request))


def aiohttp_response(response: Response) -> web.Response:
    return web.Response(status=response.status, body=response.body, headers=response.headers)


def route(handler: Handler) -> AiohttpHandler:
    """`handler` as an aiohttp request handler."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return aiohttp_response(await handler(await plain_request(request)))

    return answer


def text(status: int, body: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=body, headers=headers)  # text/plain; charset=utf-8


def application(*, body_seconds: float = BODY_SECONDS) -> web.Application:
    """An aiohttp application with the project's limits."""
    app = web.Application(client_max_size=MAX_BODY, handler_args=_limits())
    app[BODY_TIME] = body_seconds
    app.on_response_prepare.append(_common_headers)
    return app


async def _common_headers(_request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp's default names its and Python's versions: of no use to clients, of some to attackers.
    response.headers["Server"] = SERVER_NAME
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def _limits() -> dict[str, float]:
    return {
        "max_line_size": MAX_LINE,
        "max_field_size": MAX_LINE,
        "max_headers": MAX_HEADERS,
        "keepalive_timeout": IDLE_SECONDS,
    }


class Listener:
    """A running aiohttp application on one address; `port` is the one it got."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    @property
    def port(self) -> int:
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        await self._runner.cleanup()


async def listen(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> Listener:
    """Serve `app` on host:port (port 0 picks a free one: read it from `Listener.port`)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return Listener(runner)


async def serve(
    handler: Handler, host: str = "127.0.0.1", port: int = 0, *, body_seconds: float = BODY_SECONDS
) -> Listener:
    """Serve `handler` for every path and method on host:port."""
    app = application(body_seconds=body_seconds)
    app.router.add_route("*", "/{tail:.*}", route(handler))
    return await listen(app, host, port)
