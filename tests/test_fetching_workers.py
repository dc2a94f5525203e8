"""Workers that fetch: a `FetchJob` fetched and read in a worker process reads as the loop's own
fetch and parse would, a page the engine last read comes back unread, a failure is `unknown`
(never an exception, never a hang), and the engine hands trusted pages to them and keeps the
rest (guarded chat URLs, credentials) in its own process. Real worker processes and a loopback
shop."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from httpserver import LoopbackServer, Reply, Request
from test_engine import FAST, IN, OUT, Lever, Start, eventually, shop_with, start, url_watch

from watcher.core.model import Availability, FetchPlan, Observation, Page
from watcher.net.fetch import Fetcher, RawPage
from watcher.net.transport import build_client, fast_transport
from watcher.reading.fetching import (
    Answers,
    FetchJob,
    Header,
    content_hash,
    remote_safe,
    serve_fetching,
)
from watcher.reading.pool import (
    InlineReader,
    ProcessReader,
    _answer_frame,
    _Request,
    _Worker,
    read_all,
)

module_loop = pytest.mark.asyncio(loop_scope="module")
__all__ = ["start"]  # the engine harness's fixture, used here too

PAGE = (
    "<html><head><meta charset='utf-8'><title>積み木</title></head><body><h1>積み木</h1>"
    "<p class='price'>3,300円</p><p class='stock'>在庫あり</p>"
    "<form action='/cart/add'><button>カートに入れる</button></form></body></html>"
).encode()
HTML = {"content-type": "text/html; charset=utf-8"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fetching() -> AsyncIterator[ProcessReader]:
    reader = ProcessReader(1, fetching=True)
    yield reader
    await reader.aclose()


@pytest.fixture(scope="module")
def shop() -> Iterator[LoopbackServer]:
    def conditional(request: Request) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(status=304, headers={"etag": '"v1"'})
        return Reply(body=PAGE, headers={**HTML, "etag": '"v1"'})

    with LoopbackServer() as server:
        server.add("/item", Reply(body=PAGE, headers=HTML))
        server.add("/etag", conditional)
        server.add("/slow", Reply(body=PAGE, headers=HTML, stall=30))
        server.add("/busy", Reply(status=503, body=b"busy", headers={"retry-after": "7"}))
        yield server


async def fetched_here(url: str) -> tuple[str, tuple[Observation, ...]]:
    """What the loop itself fetches and reads at `url`: the content hash and observations."""
    async with build_client(transport=fast_transport()) as client:
        raw = await Fetcher(client).fetch_raw(FetchPlan(url))
    return content_hash(raw), read_all(raw, None, (None,))


def job(
    url: str,
    *,
    user_agent: str | None = None,
    etag: str | None = None,
    compare: bool = False,
    known_hash: str | None = None,
) -> FetchJob:
    return FetchJob(
        FetchPlan(url),
        None,
        (None,),
        user_agent=user_agent,
        etag=etag,
        compare=compare,
        known_hash=known_hash,
    )


@module_loop
async def test_a_worker_fetches_and_reads_as_the_loop_would(
    fetching: ProcessReader, shop: LoopbackServer
) -> None:
    reading = await fetching.fetch_read(job(shop.url("/item")))
    digest, observations = await fetched_here(shop.url("/item"))
    assert reading.head.status == 200 and reading.head.text == ""  # the body stayed there
    assert reading.digest == digest
    assert reading.observations is not None
    [seen] = reading.observations
    [expected] = observations
    assert seen.state is Availability.IN_STOCK and seen.price == 3300
    assert seen.fetch is not None and seen.fetch.bytes == len(PAGE)
    # The same reading but for the fetch's own timing.
    assert seen.fetch is not None and expected.fetch is not None
    assert replace(seen, fetch=None) == replace(expected, fetch=None)


@module_loop
async def test_the_page_last_read_comes_back_unread(
    fetching: ProcessReader, shop: LoopbackServer
) -> None:
    first = await fetching.fetch_read(job(shop.url("/item")))
    same = await fetching.fetch_read(job(shop.url("/item"), compare=True, known_hash=first.digest))
    assert same.observations is None and same.digest == first.digest
    other = await fetching.fetch_read(job(shop.url("/item"), compare=True, known_hash="0" * 32))
    assert other.observations is not None and other.observations[0].price == 3300
    # Without a reading to compare with, an equal hash is no reason to skip the page.
    fresh = await fetching.fetch_read(job(shop.url("/item"), known_hash=first.digest))
    assert fresh.observations is not None


@module_loop
async def test_a_304_is_the_page_last_read(fetching: ProcessReader, shop: LoopbackServer) -> None:
    reading = await fetching.fetch_read(job(shop.url("/etag"), etag='"v1"', compare=True))
    assert reading.head.not_modified and reading.observations is None
    assert shop.requests[-1].headers["if-none-match"] == '"v1"'


@module_loop
async def test_the_job_says_which_user_agent_goes_out(
    fetching: ProcessReader, shop: LoopbackServer
) -> None:
    await fetching.fetch_read(job(shop.url("/item"), user_agent="probe/1.0"))
    assert shop.requests[-1].headers["user-agent"] == "probe/1.0"
    await fetching.fetch_read(job(shop.url("/item"), user_agent="probe/2.0"))
    assert shop.requests[-1].headers["user-agent"] == "probe/2.0"


@module_loop
async def test_a_refusal_reads_as_a_block_with_its_retry_after(
    fetching: ProcessReader, shop: LoopbackServer
) -> None:
    reading = await fetching.fetch_read(job(shop.url("/busy")))
    assert reading.head.status == 503 and reading.digest is None
    assert reading.observations is not None
    [seen] = reading.observations
    assert seen.state is Availability.UNKNOWN and seen.blocked and seen.retry_after == 7


@module_loop
async def test_many_jobs_at_once_each_get_their_own_answer(
    fetching: ProcessReader, shop: LoopbackServer
) -> None:
    urls = [shop.url(f"/item?n={n}") for n in range(40)] + [shop.url("/busy")] * 5
    readings = await asyncio.gather(*(fetching.fetch_read(job(url)) for url in urls))
    assert [r.head.status for r in readings] == [200] * 40 + [503] * 5
    assert [r.head.url for r in readings] == urls


@module_loop
async def test_a_worker_killed_mid_fetch_fails_its_jobs_and_the_next_one_works(
    fetching: ProcessReader, shop: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    await fetching.fetch_read(job(shop.url("/item")))  # the worker is up
    (pid,) = fetching.pids()
    stalled = [asyncio.create_task(fetching.fetch_read(job(shop.url("/slow")))) for _ in range(3)]
    await eventually(
        lambda: sum(r.path == "/slow" for r in shop.requests) >= 3, what="the stalled fetches"
    )
    os.kill(pid, signal.SIGKILL)
    for reading in await asyncio.gather(*stalled):
        assert reading.observations is not None
        [seen] = reading.observations
        assert seen.state is Availability.UNKNOWN
        assert seen.reason == "parse failed: worker died"
    # Not sent again: a fetch that reached the shop is not repeated behind the engine's back.
    assert sum(r.path == "/slow" for r in shop.requests) == 3
    after = await fetching.fetch_read(job(shop.url("/item")))
    assert after.observations is not None and after.observations[0].price == 3300
    assert fetching.pids() != (pid,)
    assert f"parse worker {pid} lost (it died); 0 page(s)" in caplog.text
    assert "3 fetch job(s) it held fail" in caplog.text


async def test_only_a_fetching_pool_takes_jobs() -> None:
    reader = ProcessReader(1)
    try:
        with pytest.raises(ValueError, match="do not fetch"):
            await reader.fetch_read(job("https://shop.example/item"))
        assert reader.pids() == ()  # refused before any worker started
    finally:
        await reader.aclose()


async def test_a_closed_pool_answers_jobs_unknown() -> None:
    reader = ProcessReader(1, fetching=True)
    await reader.aclose()
    reading = await reader.fetch_read(job("https://shop.example/item"))
    assert reading.observations is not None
    assert reading.observations[0].reason == "parse failed: reader closed"


@pytest.mark.parametrize(
    ("plan", "safe"),
    [
        (FetchPlan("https://shop.example/a"), True),
        (FetchPlan("https://shop.example/a", headers={"Accept": "text/html"}), True),
        (FetchPlan("https://shop.example/a", headers={"Authorization": "Bearer x"}), False),
        (FetchPlan("https://shop.example/a", headers={"COOKIE": "s=1"}), False),
        (FetchPlan("https://api.example/a", secret_params={"applicationId": "x"}), False),
    ],
)
def test_plans_with_credentials_stay_in_the_loop(plan: FetchPlan, safe: bool) -> None:
    assert remote_safe(plan) is safe


# -- in the engine ------------------------------------------------------------------------------


async def test_the_engine_hands_trusted_pages_to_fetching_workers(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's own fetcher refuses everything: a restock still comes through the workers."""

    async def no_fetch(self: Fetcher, *args: object, **kwargs: object) -> object:
        raise AssertionError("a trusted page was fetched by the loop")

    monkeypatch.setattr(Fetcher, "fetch_raw", no_fetch)
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    h = await start([url_watch("box", shop.url("box"))], shop=shop, parse_workers=1)
    assert isinstance(h.app.engine.reader, ProcessReader) and h.app.engine.reader.fetches
    await eventually(lambda: h.counters.checks >= 3, what="three checks")
    assert h.counters.unchanged >= 1  # compared in the worker, not read again
    lever.shows = IN
    await eventually(lambda: bool(h.recorder.notices), what="the restock message")
    assert h.recorder.notices[0].event.state is Availability.IN_STOCK
    assert h.counters.unknown == 0


async def test_a_transport_handed_in_keeps_fetching_in_the_loop(start: Start) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=PAGE, headers=HTML)

    h = await start(
        [url_watch("box", "https://shop.example/box")],
        transport=httpx.MockTransport(answer),
        hosts={"shop.example": FAST},
        parse_workers=1,
    )
    await eventually(lambda: h.counters.checks >= 2, what="two checks")
    assert seen and set(seen) == {"https://shop.example/box"}
    assert not isinstance(h.app.engine.reader, InlineReader)
    assert not getattr(h.app.engine.reader, "fetches", True)


@module_loop
async def test_jobs_started_in_one_turn_go_to_the_worker_in_one_send(
    fetching: ProcessReader, shop: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fetching.fetch_read(job(shop.url("/item")))  # the worker is up
    sends: list[int] = []
    send_some = _Worker._send_some

    def counted(worker: _Worker, parts: Sequence[bytes | memoryview]) -> int | None:
        sends.append(len(parts))
        return send_some(worker, parts)

    monkeypatch.setattr(_Worker, "_send_some", counted)
    urls = [shop.url(f"/item?n={n}") for n in range(20)]
    readings = await asyncio.gather(*(fetching.fetch_read(job(url)) for url in urls))
    assert [r.head.url for r in readings] == urls
    assert [r.head.status for r in readings] == [200] * 20
    assert sends == [40]  # one call: every job's header and meta


async def test_answers_ready_in_one_turn_leave_the_worker_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes = counted_writes(monkeypatch)
    ours, theirs = socket.socketpair()
    with ours:
        _, writer = await asyncio.open_connection(sock=theirs)
        answers = Answers(writer)
        frames = [_answer_frame(n, ("answer", n)) for n in range(20)]
        for frame in frames:
            answers.add(frame)
        assert writes == []  # held until the turn ends
        await asyncio.sleep(0)
        assert writes == [sum(map(len, frames))]
        answers.add(frames[0])
        answers.flush()  # at once, as before a parse
        assert len(writes) == 2
        writer.close()
        got = await asyncio.wait_for(_answers(ours, 21), 30)
    assert got == [(n, ("answer", n)) for n in range(20)] + [(0, ("answer", 0))]


async def test_no_answer_waits_behind_the_next_pages_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes = counted_writes(monkeypatch)
    written_before_each_parse: list[int] = []

    def read(raw: RawPage, store: str | None, rules: tuple[None, ...]) -> tuple[Observation, ...]:
        written_before_each_parse.append(len(writes))
        return read_all(raw, store, rules)

    ours, theirs = socket.socketpair()
    with ours:
        head = Page(url="http://shop.test/item", status=200, content_type=HTML["content-type"])
        loop = asyncio.get_running_loop()
        requests = [
            _Request(n, RawPage(head, PAGE), None, (None,), loop.create_future())
            for n in range(1, 21)
        ]
        ours.sendall(b"".join(part for request in requests for part in request.frame()))
        serving = asyncio.create_task(serve_fetching(theirs, read, _answer_frame, 0))
        answers = await asyncio.wait_for(_answers(ours, 21), 30)
        ours.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(serving, 30)
    assert [request_id for request_id, _ in answers] == list(range(21))  # "ready", then each
    assert all(result[0].state is Availability.IN_STOCK for _, result in answers[1:])
    # The 20 pages came in one piece, yet each answer left before the next page's parse began.
    assert written_before_each_parse == list(range(1, 21))


def counted_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the writes made through asyncio stream writers from now on."""
    writes: list[int] = []
    write = asyncio.StreamWriter.write

    def counted(writer: asyncio.StreamWriter, data: bytes | bytearray | memoryview) -> None:
        writes.append(len(data))
        write(writer, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", counted)
    return writes


async def _answers(sock: socket.socket, count: int) -> list[tuple[int, Any]]:
    """`count` answer frames read off `sock` (blocking reads in a thread)."""

    def read() -> list[tuple[int, Any]]:
        stream = sock.makefile("rb")
        found = []
        for _ in range(count):
            meta_size, _body = Header.unpack(stream.read(Header.size))
            found.append(pickle.loads(stream.read(meta_size)))
        return found

    return await asyncio.to_thread(read)
