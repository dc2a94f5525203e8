"""Parse fetched pages in worker processes, so the engine's one event loop does not (and, in a
fetching pool, fetch them there too: see `watcher.reading.fetching`).

Decoding and parsing a page costs 0.5-8 ms of CPU; the event loop that fetches, schedules and
writes the database has one core. A `ProcessReader` hands the raw body bytes to a worker process
and gets back only the observations. Each worker is a fresh interpreter (`watcher.reading.worker`)
that imports only what parsing needs, joined to the loop by a socket pair that the loop reads and
writes itself (`add_reader` / `add_writer`: no extra threads, no executor); a request goes to the
worker with the fewest outstanding. A worker ends when its socket does, so workers outlive neither
`aclose` nor a killed main process.

A reader never raises: a parse that raises, a worker that dies or hangs past the timeout, and a
reader that is closed all answer `unknown` (``parse failed: ...``) with the fetch facts attached.
A worker that died is replaced when the next request needs it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Literal, Protocol

from watcher.core.model import Observation, Page, TextRules
from watcher.net.fetch import DEFAULT_DEADLINE, RawPage
from watcher.reading.fetching import (
    FETCH_KIND,
    READ_KIND,
    FetchedReading,
    FetchJob,
    Header,
    serve_fetching,
)
from watcher.reading.read import read_page
from watcher.stores.registry import adapter_for

log = logging.getLogger("restock.parse")

ParseFn = Callable[[Page, str | None, TextRules | None], Observation]
Rules = tuple[TextRules | None, ...]
Observations = tuple[Observation, ...]

# Seconds one page may take in a worker before the worker is killed: parsing is linear and a
# reading over `watcher.stores.parse.PARSE_BUDGET` is discarded anyway, so only a stuck parse
# gets here.
DEFAULT_TIMEOUT = 10.0
START_TIMEOUT = 60.0  # seconds a new worker may take to start before it is given up
CLOSE_GRACE = 1.0  # seconds workers get to exit on `aclose` before they are killed
FAILED_PREFIX = "parse failed:"  # how an observation says its page could not be parsed
MAX_AUTO_WORKERS = 2  # each worker holds its own interpreter (~35 MB); more is a choice
_REASON_MAX = 300

# A frame is (meta length, body length), the pickled meta, then the raw body (requests only).
# A request's meta is (id, kind, payload); an answer's is (id, result), a text for a failure.
_HEADER: struct.Struct = Header
# Seconds past its own deadline a fetch job may take before its worker counts as broken.
_FETCH_LIMIT = DEFAULT_DEADLINE
_FETCH_FLAG = "--fetch"
_READY = 0  # the request id of the frame a worker sends once it can parse
_READ_SIZE = 64 * 1024  # answers are small; a larger buffer is an mmap and page faults per read
_MAX_PARTS = 512  # buffers per sendmsg call, well under the kernel's IOV_MAX
_PAGE_FIELDS = tuple(f.name for f in fields(Page))
_page_values = attrgetter(*_PAGE_FIELDS)  # a Page as a plain tuple: cheaper to pickle
_WORKER_MODULE = "watcher.reading.worker"
# All of its environment a worker gets: it reads hostile pages, so it holds no secrets (tokens,
# passwords) that a parser exploit could take.
_WORKER_ENVIRONMENT = frozenset(
    {
        *("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT", "PYTHONUTF8"),
        *("SSL_CERT_FILE", "SSL_CERT_DIR"),  # a fetching worker trusts the CAs the loop trusts
    }
)


class PageReader(Protocol):
    """Reads raw pages into observations, one per rules entry; never raises."""

    async def read(
        self, raw: RawPage, store: str | None, rules: Sequence[TextRules | None]
    ) -> Observations:
        """One observation per `rules` entry, as `read_page(raw.decoded(), store, rules=r)`."""
        ...

    async def aclose(self) -> None: ...


def parse_one(page: Page, store: str | None, rules: TextRules | None) -> Observation:
    """The production parse function: the same reading `restock check` does."""
    return read_page(page, store=store, rules=rules)


def read_all(
    raw: RawPage, store: str | None, rules: Rules, parse: ParseFn = parse_one
) -> Observations:
    """Decode once, then read the page once per rules entry; a raising parse gives `unknown`."""
    try:
        page = raw.decoded()
    except Exception as exc:  # decoding replaces bad bytes; this is for the unforeseen
        return failed(raw.head, store, _describe(exc), len(rules))
    return tuple(_read_one(page, store, entry, parse) for entry in rules)


def _read_one(
    page: Page, store: str | None, rules: TextRules | None, parse: ParseFn
) -> Observation:
    try:
        return parse(page, store, rules)
    except Exception as exc:  # a hostile page or an unknown store name must not crash a check
        return failed(page, store, _describe(exc), 1)[0]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def failed(head: Page, store: str | None, why: str, count: int) -> Observations:
    """`count` unknown observations saying the parse failed, carrying the fetch facts."""
    reason = f"{FAILED_PREFIX} {why}"[:_REASON_MAX]
    observation = Observation.unknown(reason, store=_store_name(head, store)).with_fetch(head)
    return (observation,) * count


def _store_name(head: Page, store: str | None) -> str | None:
    try:
        return adapter_for(head.final_url or head.url, forced=store).name
    except Exception:  # an unknown forced name: say nothing rather than fail the failure
        return store


class InlineReader:
    """Parses in the calling thread: for tests, one-core machines and `parse_workers: 0`."""

    def __init__(self, *, parse: ParseFn = parse_one) -> None:
        self._parse = parse

    async def read(
        self, raw: RawPage, store: str | None, rules: Sequence[TextRules | None]
    ) -> Observations:
        return read_all(raw, store, tuple(rules), self._parse)

    async def aclose(self) -> None:
        return None


def default_parse_workers(cpu_count: int | None = None) -> int:
    """What `parse_workers: auto` means: none on one core, else one per core (at most 2).

    Not one core fewer for the loop: on two cores a second worker took the changing-pages
    throughput from one core's parsing to about 1.4x (bench/compare.py), since the loop needs
    less than a core while pages change, and workers sit idle while pages do not.
    """
    cpus = cpu_count if cpu_count is not None else _usable_cpus()
    return 0 if cpus <= 1 else min(MAX_AUTO_WORKERS, cpus)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # a container's CPU set, not the host's
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def page_reader(workers: int | Literal["auto"], *, fetching: bool = False) -> PageReader:
    """The reader for a `parse_workers` setting: inline for 0, else a pool of processes, whose
    workers also fetch trusted pages when `fetching` (see `watcher.reading.fetching`)."""
    count = default_parse_workers() if workers == "auto" else workers
    if count <= 0:
        return InlineReader()
    return ProcessReader(count, fetching=fetching)


# -- the pool (runs in the event loop's process) -------------------------------------------------


@dataclass(slots=True)
class _Request:
    """A fetched page to read."""

    id: int
    raw: RawPage
    store: str | None
    rules: Rules
    future: asyncio.Future[Observations]
    sent: float = 0.0  # when it went to its worker (time.monotonic)

    def answer(self, result: object) -> None:
        if isinstance(result, str):
            self.fail(result)
        elif not self.future.done():  # the caller may have been cancelled meanwhile
            self.future.set_result(result)  # type: ignore[arg-type]

    def fail(self, why: str) -> None:
        if not self.future.done():
            self.future.set_result(failed(self.raw.head, self.store, why, len(self.rules)))

    def frame(self) -> list[bytes]:
        payload = (_page_values(self.raw.head), self.store, self.rules)
        meta = pickle.dumps((self.id, READ_KIND, payload), protocol=5)
        body = self.raw.body or b""
        return [_HEADER.pack(len(meta), len(body)), meta, body]

    def overdue(self, age: float, timeout: float) -> bool:
        return age > timeout


@dataclass(slots=True)
class _FetchRequest:
    """A page for a fetching worker to fetch and read."""

    id: int
    job: FetchJob
    future: asyncio.Future[FetchedReading]
    sent: float = 0.0

    def answer(self, result: object) -> None:
        if not isinstance(result, FetchedReading):
            self.fail(result if isinstance(result, str) else "protocol error")
        elif not self.future.done():
            self.future.set_result(result)

    def fail(self, why: str) -> None:
        if not self.future.done():
            head = Page(url=self.job.plan.url, status=None)
            observations = failed(head, self.job.store, why, len(self.job.rules))
            self.future.set_result(FetchedReading(head, None, observations))

    def frame(self) -> list[bytes]:
        meta = pickle.dumps((self.id, FETCH_KIND, self.job), protocol=5)
        return [_HEADER.pack(len(meta), 0), meta]

    def overdue(self, age: float, timeout: float) -> bool:
        # The fetch has its own deadline; past it and the parse timeout, the worker is broken.
        return age > _FETCH_LIMIT + timeout


_Pending = _Request | _FetchRequest


class ProcessReader:
    """Parses in `workers` worker processes, started on the first request that needs one.

    `timeout` bounds one page's parse in a worker (that worker is then killed and replaced);
    `parse` replaces the parse function (tests), and must be a module-level function of an
    importable module (not `__main__`) so that the workers can find it by name. With
    `fetching`, the workers also take `FetchJob`s (`fetch_read`), many at once each.
    """

    def __init__(
        self,
        workers: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        start_timeout: float = START_TIMEOUT,
        parse: ParseFn = parse_one,
        fetching: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError("a ProcessReader needs at least one worker (use InlineReader)")
        self._size = workers
        self._timeout = timeout
        self._start_timeout = start_timeout
        self._parse = parse
        self._parse_name = parse_name(parse)
        self._workers: list[_Worker] = []
        self._ids = itertools.count(_READY + 1)
        self._closed = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._dying: list[subprocess.Popen[bytes]] = []
        self._reaper: asyncio.TimerHandle | None = None
        self.lost_workers = 0  # workers that died, hung or broke the protocol (then replaced)
        self.fetches = fetching

    async def read(
        self, raw: RawPage, store: str | None, rules: Sequence[TextRules | None]
    ) -> Observations:
        """One observation per `rules` entry, parsed by a worker; see the module's docstring."""
        wanted = tuple(rules)
        if not wanted:
            return ()
        if raw.body is None:  # a failed fetch or a 304: nothing to parse, no trip to a worker
            return read_all(raw, store, wanted, self._parse)
        if self._closed:
            return failed(raw.head, store, "reader closed", len(wanted))
        future: asyncio.Future[Observations] = asyncio.get_running_loop().create_future()
        self._dispatch(_Request(next(self._ids), raw, store, wanted, future))
        return await future

    async def fetch_read(self, job: FetchJob) -> FetchedReading:
        """`job`'s page fetched and read by a worker; a failure reads `unknown`, never raises."""
        if not self.fetches:
            raise ValueError("this reader's workers do not fetch (ProcessReader(fetching=True))")
        future: asyncio.Future[FetchedReading] = asyncio.get_running_loop().create_future()
        request = _FetchRequest(next(self._ids), job, future)
        if self._closed:
            request.fail("reader closed")
        else:
            self._dispatch(request)
        return await future

    def pids(self) -> tuple[int, ...]:
        """Process ids of the workers running now (started or starting)."""
        return tuple(w.process.pid for w in self._workers)

    async def aclose(self) -> None:
        """Stop every worker; requests still in flight answer ``parse failed: reader closed``."""
        self._closed = True
        for handle in (self._watchdog, self._reaper):
            if handle is not None:
                handle.cancel()
        self._watchdog = self._reaper = None
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.disconnect()
            worker.process.terminate()
            self._dying.append(worker.process)
            for request in worker.pending.values():
                request.fail("reader closed")
            worker.pending.clear()
        await self._reap_all(CLOSE_GRACE)

    # -- dispatching --

    def _dispatch(self, request: _Pending) -> None:
        try:
            worker = self._pick()
        except OSError as exc:  # no process could be started (out of PIDs or memory)
            request.fail(f"cannot start a worker: {exc}")
            return
        request.sent = time.monotonic()
        if not worker.pending and worker.ready:
            worker.since = request.sent
        worker.pending[request.id] = request
        worker.send(request.frame())
        if self._watchdog is None:
            self._arm_watchdog()

    def _pick(self) -> _Worker:
        while len(self._workers) < self._size:
            self._workers.append(self._start())
        return min(self._workers, key=_load)

    def _start(self) -> _Worker:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            process = _start_quietly(theirs.fileno(), self._parse_name, fetching=self.fetches)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker has its copy: the pool must not keep the socket open
        return _Worker(self, loop, process, ours)

    # -- a worker's life --

    def _answered(self, worker: _Worker, request_id: int, result: object) -> None:
        if request_id == _READY:
            worker.ready = True
            worker.since = time.monotonic()
            return
        request = worker.pending.pop(request_id, None)
        if request is None:
            worker.fault = "protocol error"  # an answer to nothing asked: trust nothing more
            self._lost(worker)
            return
        request.answer(result)
        worker.since = time.monotonic()  # the worker starts on its next request now

    def _lost(self, worker: _Worker) -> None:
        """A worker's connection ended: its current request fails, the rest go elsewhere."""
        if worker not in self._workers:
            return
        self._workers.remove(worker)
        self.lost_workers += 1
        pending, worker.pending = list(worker.pending.values()), {}
        # A worker reads pages one after another, in the order sent: the oldest page is the one
        # it was reading. Fetch jobs went out to shops already, so they are not sent again.
        reads = [r for r in pending if isinstance(r, _Request)] if worker.ready else []
        jobs = [r for r in pending if isinstance(r, _FetchRequest)] if worker.ready else []
        log.warning(
            "parse worker %s lost (%s); %d page(s) it held go to a fresh worker%s",
            worker.process.pid,
            worker.fault or "it died",
            max(0, len(reads) - 1),
            f", {len(jobs)} fetch job(s) it held fail" if jobs else "",
        )
        worker.disconnect()
        worker.process.kill()  # if it still runs (a hang, a broken pipe), it must not linger
        self._dying.append(worker.process)
        self._schedule_reap(0.05)
        if not worker.ready:
            for request in pending:
                request.fail(worker.fault or "worker did not start")
            return
        if reads:
            reads.pop(0).fail(worker.fault or "worker died")
        for job in jobs:
            job.fail(worker.fault or "worker died")
        for read in reads:
            if not read.future.done():
                self._dispatch(read)

    def _arm_watchdog(self) -> None:
        if any(w.pending for w in self._workers):
            tick = min(1.0, self._timeout / 4)
            self._watchdog = asyncio.get_running_loop().call_later(tick, self._check_hangs)

    def _check_hangs(self) -> None:
        self._watchdog = None
        now = time.monotonic()
        for worker in list(self._workers):
            limit = self._timeout if worker.ready else self._start_timeout
            if worker.pending and self._hung(worker, now):
                worker.fault = f"timed out after {limit:g}s"
                self._lost(worker)
        if self._watchdog is None and not self._closed:
            self._arm_watchdog()

    def _hung(self, worker: _Worker, now: float) -> bool:
        """True for a worker that answered nothing for the parse timeout while a request of
        it is overdue, and for one holding a fetch job long past the fetch's own deadline."""
        if not worker.ready:
            return now - worker.since > self._start_timeout
        stalled = now - worker.since > self._timeout
        return any(
            r.overdue(now - r.sent, self._timeout) and (stalled or isinstance(r, _FetchRequest))
            for r in worker.pending.values()
        )

    # -- reaping exited processes (no zombies) --

    def _schedule_reap(self, delay: float) -> None:
        if self._reaper is None and not self._closed:
            self._reaper = asyncio.get_running_loop().call_later(delay, self._reap, delay)

    def _reap(self, delay: float) -> None:
        self._reaper = None
        self._dying = [p for p in self._dying if not _reaped(p)]
        if self._dying:
            self._schedule_reap(min(delay * 2, 1.0))

    async def _reap_all(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while self._dying and time.monotonic() < deadline:
            self._dying = [p for p in self._dying if not _reaped(p)]
            if self._dying:
                await asyncio.sleep(0.01)
        for process in self._dying:
            process.kill()
            try:
                process.wait(1.0)  # SIGKILL cannot be ignored: this ends at once
            except subprocess.TimeoutExpired:  # a process stuck in the kernel: leave it be
                log.warning("parse worker %s did not end after SIGKILL", process.pid)
        self._dying = []


def parse_name(parse: ParseFn) -> str:
    """``module:qualname`` of `parse`, by which a worker finds it; ValueError if it cannot.

    Checked at construction, so a wrong function fails here rather than in every worker.
    """
    if not inspect.isfunction(parse):
        raise ValueError(f"parse must be a module-level function, not {parse!r}")
    name = f"{parse.__module__}:{parse.__qualname__}"
    # A worker's __main__ is the worker itself, and a nested function has no importable name.
    if parse.__module__ == "__main__" or "." in parse.__qualname__:
        raise ValueError(f"parse must be a module-level function of an importable module: {name}")
    try:
        found = find_parse(name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"parse must be a module-level function: {name} ({exc})") from None
    if found is not parse:
        raise ValueError(f"parse must be a module-level function: {name} names something else")
    return name


def find_parse(name: str) -> ParseFn:
    """The function a ``module:qualname`` from `parse_name` names."""
    module, _, qualname = name.partition(":")
    found: ParseFn = getattr(importlib.import_module(module), qualname)
    return found


def _load(worker: _Worker) -> int:
    """How busy a worker is; one still starting counts as busy, so ready ones come first."""
    return len(worker.pending) + (0 if worker.ready else 4)


def _reaped(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is not None  # reaps it when it has exited, without blocking


def _start_quietly(fd: int, parse: str, *, fetching: bool = False) -> subprocess.Popen[bytes]:
    """Start a worker on socket `fd` with SIGINT blocked, which it inherits until it ignores it.

    A Ctrl-C reaches every process of the terminal's group; the main process stops the workers,
    so one caught starting must not die of it with a traceback. The worker is a fresh interpreter,
    never a fork left running: the event loop's process has threads (aiosqlite) whose locks a
    fork would copy mid-hold.
    """
    # -P and PYTHONPATH: the worker finds `watcher` (and `parse`'s module) on the same path as
    # this process, whether it runs from a source tree, a test run or an installed package.
    env = {name: value for name, value in os.environ.items() if name in _WORKER_ENVIRONMENT}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    command = [sys.executable, "-P", "-m", _WORKER_MODULE, str(fd), parse]
    if fetching:
        command.append(_FETCH_FLAG)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, pass_fds=(fd,), env=env)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _Worker:
    """One worker process and its end of the socket pair, read and written by the event loop."""

    def __init__(
        self,
        pool: ProcessReader,
        loop: asyncio.AbstractEventLoop,
        process: subprocess.Popen[bytes],
        sock: socket.socket,
    ) -> None:
        self.pool = pool
        self.loop = loop
        self.process = process
        self.sock = sock
        self.pending: dict[int, _Pending] = {}  # by id, in the order they were sent
        self.ready = False
        self.since = time.monotonic()  # when its current request (or its start) began
        self.fault: str | None = None  # why the pool gave it up, when the pool did
        self._inbox = bytearray()
        self._outbox: list[bytes] = []  # requests made in this turn of the loop, not yet sent
        self._backlog: deque[memoryview] = deque()  # what the socket could not take yet
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_readable)

    def send(self, parts: list[bytes]) -> None:
        """Send `parts` with the other requests made in this turn of the loop, in one call: a
        send is a system call, and the engine starts many checks in one turn. Only `_flush`
        fills the backlog, so while the outbox holds parts the backlog is empty (order kept)."""
        if self._backlog:
            self._backlog.extend(memoryview(p) for p in parts)
            return
        if not self._outbox:
            self.loop.call_soon(self._flush)
        self._outbox += parts

    def _flush(self) -> None:
        parts, self._outbox = self._outbox, []
        if not parts or self.sock.fileno() < 0:
            return
        sent = self._send_some(parts)
        if sent is None:
            return
        rest = _after(parts, sent)
        if rest:
            self._backlog.extend(rest)
            self.loop.add_writer(self.sock.fileno(), self._on_writable)

    def disconnect(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
            self.sock.close()
        self._outbox.clear()
        self._backlog.clear()

    def _send_some(self, parts: Sequence[bytes | memoryview]) -> int | None:
        """Bytes the socket took now; None when the connection is broken."""
        try:
            return self.sock.sendmsg(parts[:_MAX_PARTS])
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.loop.call_soon(self.pool._lost, self)
            return None

    def _on_writable(self) -> None:
        parts = list(itertools.islice(self._backlog, _MAX_PARTS))
        sent = self._send_some(parts)
        if sent is None:
            return
        while sent and self._backlog:
            first = self._backlog[0]
            if sent < len(first):
                self._backlog[0] = first[sent:]
                break
            sent -= len(first)
            self._backlog.popleft()
        if not self._backlog:
            self.loop.remove_writer(self.sock.fileno())

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.pool._lost(self)
            return
        self._inbox += data
        self._take_frames()

    def _take_frames(self) -> None:
        inbox, start = self._inbox, 0
        while len(inbox) - start >= _HEADER.size:
            size, _ = _HEADER.unpack_from(inbox, start)
            end = start + _HEADER.size + size
            if len(inbox) < end:
                break
            request_id, result = pickle.loads(inbox[start + _HEADER.size : end])
            start = end
            self.pool._answered(self, request_id, result)
            if self.sock.fileno() < 0:  # the answer was a protocol error: the worker is gone
                return
        del inbox[:start]


def _after(parts: Sequence[bytes], sent: int) -> list[memoryview]:
    """What remains of `parts` once `sent` bytes of them went out."""
    rest: list[memoryview] = []
    for part in parts:
        if sent >= len(part):
            sent -= len(part)
            continue
        rest.append(memoryview(part)[sent:])
        sent = 0
    return rest


# -- the worker (runs in each worker process, see watcher.reading.worker) ------------------------


def serve(sock: socket.socket, parse: ParseFn, *, fetching: bool = False) -> None:
    """A worker's life: answer requests in order until the pool closes the socket (a fetching
    worker answers each as it is ready, see `watcher.reading.fetching`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when workers stop
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if fetching:

        def read(raw: RawPage, store: str | None, rules: Rules) -> Observations:
            return read_all(raw, store, rules, parse)

        asyncio.run(serve_fetching(sock, read, _answer_frame, _READY))
        return
    with sock:
        sock.setblocking(True)
        try:
            _answer(sock, _READY, ())
            while (request := _receive(sock)) is not None:
                request_id, raw, store, rules = request
                _answer(sock, request_id, read_all(raw, store, rules, parse))
        except (BrokenPipeError, ConnectionResetError):
            return  # the pool went away mid-answer: nobody is left to tell


def _receive(sock: socket.socket) -> tuple[int, RawPage, str | None, Rules] | None:
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    meta_size, body_size = _HEADER.unpack(header)
    meta = _recv_exactly(sock, meta_size)
    body = _recv_exactly(sock, body_size)
    if meta is None or body is None:
        return None
    request_id, _kind, (values, store, rules) = pickle.loads(meta)
    return request_id, RawPage(Page(*values), body), store, rules


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None when the pool closed the connection first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buffer)


def _answer(sock: socket.socket, request_id: int, observations: Observations) -> None:
    sock.sendall(_answer_frame(request_id, observations))


def _answer_frame(request_id: int, result: object) -> bytes:
    meta = pickle.dumps((request_id, result), protocol=5)
    return _HEADER.pack(len(meta), 0) + meta
