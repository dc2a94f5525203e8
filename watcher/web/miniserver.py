"""Just enough HTTP/1.1 for the loopback servers this project runs (demo shop, health/metrics).

Keep-alive, Content-Length bodies, no chunked uploads: the peers are httpx, curl and Prometheus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]

_TOO_LARGE = Request("", "")  # what `_read_request` returns for a body over MAX_BODY

MAX_HEAD = 16_384
MAX_BODY = 65_536
_REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def start(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Serve `handler` on host:port (port 0 picks a free one: read it from server.sockets)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is _TOO_LARGE:
                    # Answered, not just dropped: the sender learns why (and the body is unread).
                    writer.write(encode(Response(413, b"too large\n")))
                    await writer.drain()
                    break
                if request is None:
                    break
                response = await handler(request)
                writer.write(encode(response))
                await writer.drain()
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            ValueError,  # a Content-Length that is no number
        ):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, host, port, limit=MAX_HEAD)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        return _TOO_LARGE
    body = await reader.readexactly(length) if length else b""
    return Request(parts[0].upper(), parts[1], headers, body)


def encode(response: Response) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'OK')}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    lines += [f"Content-Length: {len(response.body)}", "Connection: keep-alive", "", ""]
    return "\r\n".join(lines).encode("latin-1") + response.body
