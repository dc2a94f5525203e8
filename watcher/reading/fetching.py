"""Fetching and reading a page in one step: what a fetching worker does with a `FetchJob`.

The engine's loop has one core. A check of a page that did not change is mostly its fetch (the
request through aiohttp, the body read, its hash), so a worker that reads pages can as well
fetch them: the loop then sends a small job and gets back the response's head, its content hash
and, when the page changed, the observations. The body never crosses to the loop. Politeness
(the host's slot), the URL guard, JAN searches and what the observations mean stay with the
engine; a job is only ever a trusted URL without credentials (`remote_safe`).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import xxhash

from watcher.core.model import FetchPlan, Observation, Page, TextRules
from watcher.net.fetch import Fetcher, RawPage
from watcher.net.transport import build_client, fast_transport

log = logging.getLogger("restock.parse")

Rules = tuple[TextRules | None, ...]
Observations = tuple[Observation, ...]
ReadFn = Callable[[RawPage, str | None, Rules], Observations]

# Request headers that carry a credential: a plan holding one is fetched by the loop, never
# handed to a worker (workers read hostile pages and hold no secrets).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class FetchJob:
    """A page to fetch and read, and how to tell it is the page last read.

    `compare` says the engine holds a reading of this product; `known_hash` is that reading's
    content hash. The page counts as unchanged, and is not read, when the answer is a 304 or
    its content hash equals `known_hash` (exactly the engine's own test).
    """

    plan: FetchPlan
    store: str | None
    rules: Rules
    user_agent: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    cache_bust: bool = False
    compare: bool = False
    known_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FetchedReading:
    """What a job brought: the response's head (no body), its content hash (None unless 2xx),
    and one observation per rules entry, or None when the page is the one last read."""

    head: Page
    digest: str | None
    observations: Observations | None


def remote_safe(plan: FetchPlan) -> bool:
    """True when `plan` may go to a worker: it carries no credential."""
    if plan.secret_params:
        return False
    return not any(name.lower() in _CREDENTIAL_HEADERS for name in plan.headers)


def content_hash(raw: RawPage) -> str:
    """What identifies a page's content: its bytes and the media type they are decoded by.

    XXH3-128 rather than a cryptographic hash: it reads 100 KB in a couple of microseconds where
    SHA-256 takes a couple of hundred, on every check. A page's owner who forged a collision
    would only make their own page read as unchanged, which serving the old page does too.
    """
    digest = xxhash.xxh3_128()
    digest.update((raw.head.content_type or "").encode("latin-1", "replace"))
    digest.update(b"\0")
    digest.update(raw.body or b"")
    return digest.hexdigest()


def unchanged(job: FetchJob, head: Page, digest: str | None) -> bool:
    """True when the answer is the page the engine last read (see `FetchJob`)."""
    return job.compare and (head.not_modified or digest == job.known_hash)


async def fetch_and_read(fetcher: Fetcher, job: FetchJob, read: ReadFn) -> FetchedReading:
    """Fetch `job`'s page; read it with `read` unless it is the page last read."""
    raw = await fetcher.fetch_raw(
        job.plan,
        etag=job.etag,
        last_modified=job.last_modified,
        cache_bust=job.cache_bust,
    )
    head = raw.head
    digest = content_hash(raw) if head.ok else None
    if unchanged(job, head, digest):
        return FetchedReading(head, digest, None)
    return FetchedReading(head, digest, read(raw, job.store, job.rules))


# -- the fetching worker's loop (runs in each worker process, see watcher.reading.worker) -------


class Fetchers:
    """One fetcher per User-Agent over one shared client (a reload may change the agent)."""

    def __init__(self) -> None:
        self.client = build_client(transport=fast_transport())
        self._by_agent: dict[str | None, Fetcher] = {}

    def for_agent(self, user_agent: str | None) -> Fetcher:
        fetcher = self._by_agent.get(user_agent)
        if fetcher is None:
            if len(self._by_agent) > 8:  # agents come from the watchlist: a handful at most
                self._by_agent.clear()
            fetcher = self._by_agent[user_agent] = Fetcher(self.client, user_agent=user_agent)
        return fetcher


# A frame is (meta length, body length), the pickled meta, then the raw body (see pool.py).
Header = struct.Struct("!II")
READ_KIND = 0
FETCH_KIND = 1


class Answers:
    """A worker's answers on their way back to the pool.

    Answers ready in one turn of the worker's loop go out in one write: a write is a system
    call, and with dozens of fetches in flight many finish together. `flush` sends what is
    ready at once; the worker calls it before it parses a page, so no answer waits behind
    CPU work (the pool counts a worker silent for longer than its timeout as hung).
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._ready: list[bytes] = []
        self.buffered = 0  # bytes held here, not yet handed to the transport

    def add(self, frame: bytes) -> None:
        if not self._ready:
            asyncio.get_running_loop().call_soon(self.flush)
        self._ready.append(frame)
        self.buffered += len(frame)

    def flush(self) -> None:
        if not self._ready:
            return
        frames = b"".join(self._ready)
        self._ready.clear()
        self.buffered = 0
        if not self._writer.is_closing():
            self._writer.write(frames)


async def serve_fetching(
    sock: socket.socket,
    read: ReadFn,
    answer: Callable[[int, object], bytes],
    ready_id: int,
) -> None:
    """A fetching worker's life: parse requests in order, fetch jobs side by side, until the
    pool closes the socket. Answers go back as each is ready, named by their request's id."""
    reader, writer = await asyncio.open_connection(sock=sock)
    fetchers = Fetchers()
    jobs: set[asyncio.Task[None]] = set()
    answers = Answers(writer)

    def send(request_id: int, result: object) -> None:
        if not writer.is_closing():
            answers.add(answer(request_id, result))

    def read_now(raw: RawPage, store: str | None, rules: Rules) -> Observations:
        answers.flush()  # what is ready goes out before this page's parse
        return read(raw, store, rules)

    async def run_job(request_id: int, job: FetchJob) -> None:
        fetcher = fetchers.for_agent(job.user_agent)
        try:
            result = await fetch_and_read(fetcher, job, read_now)
        except Exception as exc:  # the fetcher never raises for the network; this is a bug
            log.exception("fetch job for %s failed", job.plan.url)
            send(request_id, f"{type(exc).__name__}: {exc}")  # the pool reads a text as a failure
            return
        send(request_id, result)

    try:
        send(ready_id, ())
        while (request := await _next_request(reader)) is not None:
            request_id, work = request
            if isinstance(work, FetchJob):
                task = asyncio.create_task(run_job(request_id, work))
                jobs.add(task)
                task.add_done_callback(jobs.discard)
            else:
                send(request_id, read_now(*work))
            if writer.transport.get_write_buffer_size() + answers.buffered > 1 << 20:
                answers.flush()
                await writer.drain()  # the pool stopped reading: do not pile answers up
    except (BrokenPipeError, ConnectionResetError):
        pass  # the pool went away mid-answer: nobody is left to tell
    finally:
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        await fetchers.client.aclose()
        answers.flush()
        writer.close()


ReadRequest = tuple[RawPage, str | None, Rules]


async def _next_request(
    reader: asyncio.StreamReader,
) -> tuple[int, FetchJob | ReadRequest] | None:
    """The next request: a fetch job, or a fetched page to read; None once the pool is gone."""
    try:
        header = await reader.readexactly(Header.size)
        meta_size, body_size = Header.unpack(header)
        meta = await reader.readexactly(meta_size)
        body = await reader.readexactly(body_size) if body_size else b""
    except asyncio.IncompleteReadError:
        return None
    request_id, kind, payload = pickle.loads(meta)
    if kind == FETCH_KIND:
        return request_id, payload
    values, store, rules = payload
    return request_id, (RawPage(Page(*values), body), store, rules)
