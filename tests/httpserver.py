"""A small loopback HTTP server for tests: fixed replies per path, on its own thread.

    with LoopbackServer() as server:
        server.add("/item", Reply(body="在庫あり".encode(), headers={"content-type": "text/html"}))
        server.add("/slow", Reply(body=b"late", stall=30))      # answers only after 30 s
        server.add("/endless", Reply(body=endless(b"x" * 65536)))  # chunked, never ends
        server.add("/dyn", lambda request: Reply(body=request.path.encode()))
        url = server.url("/item")

It binds 127.0.0.1 on a free port, runs in a daemon thread (so sync and async tests alike can
use it), records every request it got in `server.requests`, and on exit wakes any stalled or
endless reply so the test never waits for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One response. An iterable `body` is sent chunked, piece by piece, until it ends."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds to wait before answering (cut short when the server stops)


@dataclass(frozen=True)
class Request:
    """What the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names


Route = Reply | Callable[[Request], Reply]


def endless(chunk: bytes) -> Iterator[bytes]:
    """A body that never ends (for size-cap tests)."""
    while True:
        yield chunk


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, route: Route) -> None:
        """Answer requests for `path` (query string ignored) with `route`."""
        self.routes[path] = route

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        # A short poll keeps shutdown (and so each test's teardown) quick.
        self._server.serve_forever(poll_interval=0.02)

    def _reply_for(self, request: Request) -> Reply:
        self.requests.append(request)
        route = self.routes.get(request.path.split("?", 1)[0])
        if route is None:
            return Reply(status=404, body=b"not found")
        return route(request) if callable(route) else route


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer()

        def do_HEAD(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

        def _answer(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Request(method=self.command, path=self.path, headers=headers)
            reply = server._reply_for(request)
            if reply.stall and server._stopping.wait(reply.stall):
                return
            # The client may hang up mid-reply: size caps and timeouts do that on purpose.
            with contextlib.suppress(ConnectionError):
                self._send(reply)
            self.close_connection = True

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("connection", "close")
            if isinstance(reply.body, bytes):
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)
                return
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in reply.body:
                if server._stopping.is_set():
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

    return Handler
