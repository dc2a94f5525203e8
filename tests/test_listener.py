"""The aiohttp listener every endpoint runs on: body and header limits, slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from watcher.web.listener import MAX_BODY, Listener, Request, Response, serve


class Recorder:
    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def handle(self, request: Request) -> Response:
        self.requests.append(request)
        return Response(200, b"ok\n", {"Content-Type": "text/plain"})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def listener(recorder: Recorder) -> AsyncIterator[Listener]:
    running = await serve(recorder.handle, body_seconds=0.5)
    try:
        yield running
    finally:
        await running.close()


async def raw(listener: Listener, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_handlers_get_the_raw_path_lower_case_headers_and_the_body(
    listener: Listener, recorder: Recorder
) -> None:
    async with httpx.AsyncClient(base_url=listener.url) as client:
        answer = await client.post("/watch/a%2Fb?x=1", content=b"k=v", headers={"X-Thing": "yes"})
    assert answer.status_code == 200
    assert answer.headers["server"] == "restock-watcher"  # no versions
    assert answer.headers["x-content-type-options"] == "nosniff"
    [seen] = recorder.requests
    assert (seen.method, seen.path, seen.body) == ("POST", "/watch/a%2Fb?x=1", b"k=v")
    assert seen.headers["x-thing"] == "yes"


async def test_a_body_over_the_cap_is_refused_before_any_handler(
    listener: Listener, recorder: Recorder
) -> None:
    async with httpx.AsyncClient(base_url=listener.url) as client:
        declared = await client.post("/x", content=b"a" * (MAX_BODY + 1))

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(MAX_BODY // 1024 + 2):
                yield b"b" * 1024

        streamed = await client.post("/x", content=chunks())
        fits = await client.post("/x", content=b"c" * MAX_BODY)
    assert (declared.status_code, streamed.status_code, fits.status_code) == (413, 413, 200)
    assert [len(r.body) for r in recorder.requests] == [MAX_BODY]


async def test_an_oversized_header_is_a_bad_request(listener: Listener, recorder: Recorder) -> None:
    async with httpx.AsyncClient(base_url=listener.url) as client:
        answer = await client.get("/x", headers={"X-Big": "v" * 9000})
    assert answer.status_code == 400
    assert recorder.requests == []


async def test_a_stalled_client_holds_up_nobody_and_is_answered_408(
    listener: Listener, recorder: Recorder
) -> None:
    head = b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    reader, writer = await raw(listener, head + b"only ten b")
    try:
        async with httpx.AsyncClient(base_url=listener.url) as client:
            others = [await client.get(f"/other/{n}") for n in range(3)]
        assert [r.status_code for r in others] == [200, 200, 200]
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 408")
    assert [r.path for r in recorder.requests] == ["/other/0", "/other/1", "/other/2"]


async def test_garbage_instead_of_http_is_refused_without_a_handler(
    listener: Listener, recorder: Recorder
) -> None:
    reader, writer = await raw(listener, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    assert status_line.split(b" ")[1] == b"400"
    assert recorder.requests == []


async def test_too_many_headers_are_a_bad_request(listener: Listener, recorder: Recorder) -> None:
    headers = {f"X-H{n}": "v" for n in range(150)}
    async with httpx.AsyncClient(base_url=listener.url) as client:
        answer = await client.get("/x", headers=headers)
    assert answer.status_code == 400
    assert recorder.requests == []
