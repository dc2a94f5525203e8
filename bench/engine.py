"""The engine's throughput against a simulated shop of 10,000 products with ~100 KB pages.

The shop runs in its own process (the second core); the engine runs in another with 100,000
YAML watches (ten per product) and host limits lifted for 127.0.0.1 through the watchlist's
`politeness.hosts`. Every product is always due, so the engine runs flat out, product after
product in a round.

Each page mode runs in a fresh process, in two phases:
1. the baseline round: every product's first check (parsed, nothing to compare with); not measured;
2. the measured seconds: every product is checked again, and a share of the products (1 % by
   default) now shows stock, so their watches confirm a restock and hand deliveries to a notifier
   that notes how long after the confirming observation it got them.

Page modes: "changed" ends every page with a per-request token, so every page is parsed (the
worst case); "unchanged" serves each product's page as it was until its stock changes (the usual
case: the engine recognises the same content and does not parse it again).

The engine runs as `restock run` would: the garbage collector tuned (watcher/service/runtime.py) and
pages parsed by the watchlist's `parse_workers` (auto: one worker process on two cores).

Prints, per mode, sustained checks/s, CPU seconds per 1,000 checks (the engine's process and its
parse workers together), peak RSS (the engine's, and the largest parse worker's) and the hand-off
latency (p50/p99). Asserts nothing. Targets: >= 800 checks/s, RSS <= 300 MB, hand-off p99 <=
100 ms.

Fan-out (`--fanout N [N ...]`, off by default): besides that load, one more product has a YAML
watch that N chat users follow (chat subscriptions, one-shot, as the bot's /follow makes them);
`--fanout-at` seconds into the measured span it restocks, and its one event becomes N deliveries
on "telegram", a notifier that accepts every notice at once (so the engine's path is measured, not
a channel's rate limit). Each N runs in a fresh process. Prints, per N, how long the transaction
that wrote the event held SQLite's write lock (every other check's write waits that long), the
times from the confirming observation to the first and the last of the N deliveries handed to the
notifier, the event loop's longest stall, and the other products' checks/s before and meanwhile.

Run from the project root: `python bench/engine.py [--seconds 20] [--pages both]`, or
`python bench/engine.py --pages unchanged --fanout 1000 10000 50000`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as Flag
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from notifiers.base import Notice, Notifier, SendResult
from notifiers.telegram import TelegramNotifier
from watcher.config.load import parse_config
from watcher.core.model import Notify, Watch
from watcher.demo.shop import DemoShop, ShopProduct, Shows, timeline
from watcher.service.app import App
from watcher.service.engine import EngineCounters
from watcher.service.runtime import tune_gc
from watcher.service.wiring import Overrides
from watcher.storage import open_repository
from watcher.storage.sqlite.repository import SQLiteRepository

MODES = {
    "changed": "every page changed (a per-request token: every page is parsed)",
    "unchanged": "most pages unchanged (same page until the stock changes)",
}


class HandoffClock(Notifier):
    """Notes, per delivery, the time from the confirming observation to this hand-off."""

    name = "console"

    def __init__(self) -> None:
        self.latencies: list[float] = []

    async def send(self, notice: Notice) -> SendResult:
        self.latencies.append((datetime.now(UTC) - notice.event.observed_at).total_seconds())
        return SendResult.sent()


class FanClock(Notifier):
    """The fan-out's recipients: notes when each delivery reached the channel; accepts at once."""

    name = "telegram"
    batch_size = TelegramNotifier.batch_size  # the dispatcher batches as for the real channel

    def __init__(self) -> None:
        self.handed: dict[int, float] = {}  # delivery id -> wall time of its first hand-off
        self.again = 0  # deliveries handed a second time (there must be none)
        self.observed_at: float | None = None  # the event's confirming observation (wall time)

    async def send(self, notice: Notice) -> SendResult:
        if notice.delivery_id in self.handed:
            self.again += 1
        else:
            self.handed[notice.delivery_id] = time.time()
        self.observed_at = notice.event.observed_at.timestamp()
        return SendResult.sent()


@dataclass
class Transaction:
    begin: float  # wall time BEGIN IMMEDIATE was sent
    end: float  # wall time COMMIT (or ROLLBACK) returned
    fan: bool  # it wrote the fan-out's event and deliveries


class WriteTimer:
    """The repository's write transactions, BEGIN IMMEDIATE to COMMIT: SQLite's write lock.

    Wraps the repository's connection and event store from outside (a benchmark's instrument):
    the statements run as they would.
    """

    def __init__(self, repo: SQLiteRepository, fan_watch: int | None) -> None:
        self.spans: list[Transaction] = []
        self._begin: float | None = None
        self._fan = False
        conn: Any = repo._conn
        execute = conn.execute

        def timed_execute(sql: str, parameters: Any = None) -> Any:
            if sql == "BEGIN IMMEDIATE":
                return self._timed(execute(sql, parameters), begin=True)
            if sql in ("COMMIT", "ROLLBACK"):
                return self._timed(execute(sql, parameters), begin=False)
            return execute(sql, parameters)

        conn.execute = timed_execute
        store: Callable[..., Awaitable[Any]] = repo._store_event  # type: ignore[assignment]

        async def marked_store(decision: Any, *rest: Any) -> Any:
            stored = await store(decision, *rest)
            self._fan = self._fan or decision.watch_id == fan_watch
            return stored

        repo._store_event = marked_store  # type: ignore[method-assign]

    async def _timed(self, statement: Awaitable[Any], *, begin: bool) -> Any:
        if begin:
            self._begin, self._fan = time.time(), False
        result = await statement
        if not begin and self._begin is not None:
            self.spans.append(Transaction(self._begin, time.time(), self._fan))
            self._begin = None
        return result


@dataclass
class LoopSample:
    at: float  # wall time
    lag: float  # seconds the loop woke the sampler late
    checks: int  # the engine's checks so far


class LoopWatch:
    """Samples the engine's event loop every few ms: its wake-up lag, and the checks counter."""

    PERIOD = 0.005

    def __init__(self, counters: EngineCounters) -> None:
        self.counters = counters
        self.samples: list[LoopSample] = []

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            asleep = loop.time()
            await asyncio.sleep(self.PERIOD)
            lag = loop.time() - asleep - self.PERIOD
            self.samples.append(LoopSample(time.time(), lag, self.counters.checks))

    def longest_stall(self, start: float, end: float) -> float:
        return max((s.lag for s in self.samples if start <= s.at <= end), default=float("nan"))

    def rate(self, start: float, end: float) -> float:
        """Checks/s between two wall times (from the samples nearest them)."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2 or inside[-1].at <= inside[0].at:
            return float("nan")
        return (inside[-1].checks - inside[0].checks) / (inside[-1].at - inside[0].at)


@dataclass
class FanFigures:
    recipients: int
    handed: int  # distinct deliveries the notifier got
    again: int  # deliveries it got twice
    observed_at: float  # the confirming observation (wall time); nan: no event came
    first: float  # wall times of the first and the last hand-off
    last: float
    write: Transaction | None  # the transaction that wrote the event and its deliveries
    writes_in_window: int  # write transactions from the observation to the last hand-off
    write_seconds_in_window: float  # their lock-held seconds, added up
    longest_other_write: float  # the longest other write transaction in the measured seconds
    stall_window: float  # the loop's longest stall from the observation to 1 s past the last
    stall_all: float  # ... over the measured seconds
    rate_before: float  # checks/s in the seconds before the fan-out product restocked
    rate_window: float  # checks/s from the observation to the last hand-off (at least 1 s)
    rate_after: float  # checks/s in the 3 s after the last hand-off


@dataclass
class Figures:
    mode: str
    checks: int
    elapsed: float
    cpu: float
    unchanged: int
    unknown: int
    events: int
    baseline_seconds: float
    peak_mb: float
    latencies: list[float]
    workers: int = 0  # parse worker processes
    worker_cpu: float = 0.0  # their CPU seconds in the measured span
    worker_peak_mb: float = 0.0  # the largest worker's peak RSS
    fanout: FanFigures | None = None
    label: str = field(default="")

    @property
    def cpu_all(self) -> float:
        return self.cpu + self.worker_cpu

    @property
    def rate(self) -> float:
        return self.checks / self.elapsed if self.elapsed else float("nan")

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_all / self.checks * 1000 if self.checks else float("nan")


def serve_shop(
    products: int,
    page_kb: int,
    vary: bool,
    restock: Flag,
    every: int,
    pipe: Connection,
    fan: Flag | None = None,
) -> None:
    """The shop's process: serve until terminated; send the port through `pipe` once bound.

    Every `every`-th product restocks once `restock` is set (after every product had its
    baseline check); with `fan`, one more product ("fan") restocks once that is set.
    """

    def restocking(_elapsed: float, _count: int) -> Shows:
        return Shows.IN_STOCK if restock.is_set() else Shows.OUT_OF_STOCK

    def fan_restocking(_elapsed: float, _count: int) -> Shows:
        return Shows.IN_STOCK if fan is not None and fan.is_set() else Shows.OUT_OF_STOCK

    async def main() -> None:
        shop = DemoShop(etags=False, vary=vary, record_arrivals=False)
        for i in range(products):
            script = restocking if i % every == 0 else timeline((0, Shows.OUT_OF_STOCK))
            shop.add(ShopProduct(f"p{i}", f"商品 {i}", 1000 + i, script, padding=page_kb * 1024))
        if fan is not None:
            shop.add(ShopProduct("fan", "人気商品", 5000, fan_restocking, padding=page_kb * 1024))
        await shop.start()
        pipe.send(shop.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def watchlist(database: Path, concurrency: int) -> str:
    return f"""
settings:
  database: {database}
  default_interval: 1s
  hot_windows: []
  global_concurrency: {concurrency}
  debounce: {{confirm: 2, rearm: 2, cooldown: 10m}}
  politeness:
    hosts:
      127.0.0.1: {{concurrency: {concurrency}, min_delay: 0s, min_interval: 0s}}
notifiers:
  console: {{}}
watches: []
"""


def yaml_watches(port: int, products: int, per_product: int) -> list[Watch]:
    return [
        Watch(
            key=f"w{i}-{j}",
            name=f"w{i}-{j}",
            url=f"http://127.0.0.1:{port}/items/p{i}",
            notify=Notify(console=True),
        )
        for i in range(products)
        for j in range(per_product)
    ]


FAN_KEY = "fan"
FAN_CHATS = 10_000_000  # the fan-out's chat ids are FAN_CHATS + 0 .. N - 1


def fan_watch(port: int) -> Watch:
    """The fan-out product's watch: an operator's YAML watch that chat users follow."""
    url = f"http://127.0.0.1:{port}/items/fan"
    return Watch(key=FAN_KEY, name="人気商品", url=url, notify=Notify(console=True))


async def add_fan_subscribers(repo: SQLiteRepository, database: Path, recipients: int) -> int:
    """N chat users following the fan-out watch; returns the watch's id.

    The rows are the ones the bot's /follow writes (`subscribe_to_watch`: a chat user and a
    one-shot chat subscription); all but the last are inserted in bulk, since N separate
    transactions would each recount the product's subscribers. The last goes through the
    repository, which counts them.
    """
    now = datetime.now(UTC)
    stamp = now.timestamp()
    chats = [FAN_CHATS + i for i in range(recipients)]
    with sqlite3.connect(database, timeout=30) as conn:
        (watch_id,) = conn.execute("SELECT id FROM watches WHERE key = ?", (FAN_KEY,)).fetchone()
        conn.executemany(
            "INSERT INTO chat_users (chat_id, created_at) VALUES (?, ?)",
            [(chat, stamp) for chat in chats[:-1]],
        )
        conn.executemany(
            "INSERT INTO subscriptions (watch_id, channel, recipient, origin, one_shot,"
            " created_at) VALUES (?, 'telegram', ?, 'chat', 1, ?)",
            [(watch_id, str(chat), stamp) for chat in chats[:-1]],
        )
    subscription = await repo.subscribe_to_watch(chats[-1], FAN_KEY, now)
    assert subscription is not None
    return int(watch_id)


def transport_for(name: str) -> httpx.AsyncBaseTransport | None:
    """None: the app's own choice (aiohttp's transport when installed); "httpx": httpx's pool."""
    if name == "httpx":
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        return httpx.AsyncHTTPTransport(limits=limits)
    return None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class FanRun:
    """The fan-out's instruments, for one run."""

    recipients: int
    flag: Flag  # set: the fan-out product shows stock
    clock: FanClock
    writes: WriteTimer
    loop: LoopWatch


async def run(
    args: argparse.Namespace,
    mode: str,
    port: int,
    restock: Flag,
    folder: Path,
    fan: tuple[int, Flag] | None = None,
) -> Figures:
    database = folder / "bench.sqlite3"
    config = parse_config(watchlist(database, args.concurrency), str(folder / "bench.yaml"))
    repo = await open_repository(database)
    started = time.perf_counter()
    watches = yaml_watches(port, args.products, args.watches // args.products)
    if fan is not None:
        watches.append(fan_watch(port))
    await repo.sync_yaml_watches(watches, datetime.now(UTC))
    print(f"[{mode}] synced {len(watches):,} watches in {time.perf_counter() - started:.1f} s")
    del watches
    fan_watch_id = None
    if fan is not None:
        started = time.perf_counter()
        fan_watch_id = await add_fan_subscribers(repo, database, fan[0])
        print(f"[{mode}] {fan[0]:,} chat subscribers in {time.perf_counter() - started:.1f} s")
    tune_gc()  # as `restock run` does once its configuration is loaded
    notifier = HandoffClock()
    notifiers: dict[str, Notifier] = {"console": notifier}
    fan_clock = FanClock()
    if fan is not None:
        notifiers["telegram"] = fan_clock
    stop = asyncio.Event()
    overrides = Overrides(
        transport=transport_for(args.transport),
        notifiers=notifiers,
        stop=stop,
        install_signals=False,
        parse_workers=args.parse_workers,
    )
    app = App(config, repo, overrides)
    fan_run = None
    if fan is not None:
        loop_watch = LoopWatch(app.engine.counters)
        writes = WriteTimer(repo, fan_watch_id)
        fan_run = FanRun(fan[0], fan[1], fan_clock, writes, loop_watch)
        overrides.extra_tasks.append(loop_watch.run)
    task = asyncio.create_task(app.run(stop))
    figures = await measure(app, args, mode, restock, notifier, fan_run)
    stop.set()
    await task
    await repo.close()
    return figures


async def measured_seconds(args: argparse.Namespace, fan: FanRun | None) -> FanFigures | None:
    """Wait the measured seconds; with a fan-out, restock its product on the way."""
    if fan is None:
        await asyncio.sleep(args.seconds)
        return None
    start = time.time()
    await asyncio.sleep(args.fanout_at)
    fan.flag.set()
    flagged = time.time()
    limit = flagged + max(args.seconds - args.fanout_at, args.fanout_limit)
    # Until every delivery is in and a few seconds after, or the limit.
    while time.time() < limit:
        if len(fan.clock.handed) >= fan.recipients:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(max(3.0, start + args.seconds - time.time()))
    return fan_figures(fan, start, flagged, time.time())


def fan_figures(fan: FanRun, start: float, flagged: float, end: float) -> FanFigures:
    handed = sorted(fan.clock.handed.values())
    observed = fan.clock.observed_at if fan.clock.observed_at is not None else float("nan")
    first, last = (handed[0], handed[-1]) if handed else (float("nan"), float("nan"))
    fan_writes = [t for t in fan.writes.spans if t.fan]
    window = [t for t in fan.writes.spans if t.end >= observed and t.begin <= last]
    others = [t.end - t.begin for t in fan.writes.spans if not t.fan and t.begin >= start]
    return FanFigures(
        recipients=fan.recipients,
        handed=len(handed),
        again=fan.clock.again,
        observed_at=observed,
        first=first,
        last=last,
        write=fan_writes[0] if fan_writes else None,
        writes_in_window=len(window),
        write_seconds_in_window=sum(t.end - t.begin for t in window),
        longest_other_write=max(others, default=float("nan")),
        stall_window=fan.loop.longest_stall(observed, last + 1.0),
        stall_all=fan.loop.longest_stall(start, end),
        rate_before=fan.loop.rate(start + 1.0, flagged),
        rate_window=fan.loop.rate(observed, max(last, observed + 1.0)),
        rate_after=fan.loop.rate(last, last + 3.0),
    )


async def measure(
    app: App,
    args: argparse.Namespace,
    mode: str,
    restock: Flag,
    notifier: HandoffClock,
    fan: FanRun | None = None,
) -> Figures:
    counters = app.engine.counters
    t_start = time.perf_counter()
    # The baseline round: every product's first check, before any restock.
    while counters.checks < args.products and time.perf_counter() - t_start < args.baseline_limit:
        await asyncio.sleep(0.05)
    baseline = time.perf_counter() - t_start
    print(f"[{mode}] baseline round: {counters.checks:,} checks in {baseline:.1f} s")
    restock.set()
    profiler = cProfile.Profile() if args.profile else None
    checks0, unchanged0, unknown0, events0 = (
        counters.checks,
        counters.unchanged,
        counters.unknown,
        counters.events,
    )
    pids = worker_pids(app)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    workers0 = sum(proc_cpu(pid) or 0.0 for pid in pids)
    if profiler is not None:
        profiler.enable()
    fan_out = await measured_seconds(args, fan)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(f"{args.profile}.{mode}")
    cpu, elapsed = cpu_seconds() - cpu0, time.perf_counter() - t0
    workers_cpu = sum(proc_cpu(pid) or 0.0 for pid in pids) - workers0
    workers_peak = max((proc_peak_mb(pid) for pid in pids), default=0.0)
    return Figures(
        mode=mode,
        checks=counters.checks - checks0,
        elapsed=elapsed,
        cpu=cpu,
        unchanged=counters.unchanged - unchanged0,
        unknown=counters.unknown - unknown0,
        events=counters.events - events0,
        baseline_seconds=baseline,
        peak_mb=0.0,
        latencies=list(notifier.latencies),
        workers=len(pids),
        worker_cpu=workers_cpu,
        worker_peak_mb=workers_peak,
        fanout=fan_out,
    )


def worker_pids(app: App) -> tuple[int, ...]:
    """The engine's parse workers (started at the baseline round's first parse)."""
    pids = getattr(app.engine.reader, "pids", None)
    return tuple(pids()) if callable(pids) else ()


def proc_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def report(args: argparse.Namespace, f: Figures) -> None:
    print(f"== {MODES[f.mode]}{f.label}")
    print(f"   transport {args.transport}, concurrency {args.concurrency}, {args.page_kb} KB pages")
    print(f"   sustained: {f.rate:,.0f} checks/s over {f.elapsed:.0f} s (target >= 800)")
    print(
        f"   cpu: {f.cpu_per_1000:.2f} s per 1,000 checks: the engine's loop"
        f" {f.cpu / f.elapsed:.0%} of a core, {f.workers} parse worker(s)"
        f" {f.worker_cpu / f.elapsed:.0%}"
    )
    print(
        f"   peak RSS: {f.peak_mb:,.0f} MB with {args.watches:,} watches (target <= 300),"
        f" + {f.worker_peak_mb:,.0f} MB per parse worker"
    )
    print(f"   unchanged pages: {f.unchanged:,}, unknown: {f.unknown:,}, events: {f.events:,}")
    p50, p99 = percentile(f.latencies, 0.5), percentile(f.latencies, 0.99)
    mean = statistics.fmean(f.latencies) * 1000 if f.latencies else float("nan")
    print(
        f"   hand-off: {len(f.latencies):,} deliveries, p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, mean {mean:.1f} ms (target p99 <= 100)"
    )
    if f.fanout is not None:
        report_fanout(f.fanout)


def report_fanout(fan: FanFigures) -> None:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:,.0f} ms"

    print(f"   fan-out: 1 event -> {fan.recipients:,} chat subscribers on telegram")
    print(
        f"     handed to the notifier: {fan.handed:,} distinct deliveries"
        f" ({fan.again:,} handed twice)"
    )
    if fan.write is not None:
        print(
            f"     event's write transaction: {ms(fan.write.end - fan.write.begin)} holding the"
            f" write lock, began {ms(fan.write.begin - fan.observed_at)} after the observation"
        )
    print(
        f"     observation -> first hand-off {ms(fan.first - fan.observed_at)},"
        f" -> last hand-off {ms(fan.last - fan.observed_at)} (target <= 1,000 for 10,000)"
    )
    print(
        f"     write transactions from the observation to the last hand-off:"
        f" {fan.writes_in_window:,}, {ms(fan.write_seconds_in_window)} of lock held;"
        f" longest other write in the measured seconds {ms(fan.longest_other_write)}"
    )
    print(
        f"     event loop's longest stall: {ms(fan.stall_window)} around the fan-out,"
        f" {ms(fan.stall_all)} over the measured seconds (target <= 100)"
    )
    print(
        f"     other checks: {fan.rate_before:,.0f} checks/s before, {fan.rate_window:,.0f}"
        f" from the observation to the last hand-off, {fan.rate_after:,.0f} in the 3 s after"
    )


def one_mode(
    args: argparse.Namespace, mode: str, pipe: Connection, fanout: int | None = None
) -> None:
    """A mode's own process: start the shop, run the engine against it, send the figures."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    restock = context.Event()
    fan_flag = context.Event() if fanout else None
    every = max(1, round(1 / args.restock_share))
    shop = context.Process(
        target=serve_shop,
        args=(args.products, args.page_kb, mode == "changed", restock, every, theirs, fan_flag),
        daemon=True,
    )
    shop.start()
    try:
        port = ours.recv()
        with tempfile.TemporaryDirectory(prefix="restock-bench-") as folder:
            fan = (fanout, fan_flag) if fanout and fan_flag is not None else None
            figures = asyncio.run(run(args, mode, port, restock, Path(folder), fan))
        if fanout:
            figures.label = f", fan-out to {fanout:,}"
        figures.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        shop_usage = proc_cpu(shop.pid)
        if shop_usage is not None:
            print(f"[{mode}] shop process CPU so far: {shop_usage:.1f} s")
        pipe.send(figures)
    finally:
        shop.terminate()
        shop.join(5)


def proc_cpu(pid: int | None) -> float | None:
    """A process's CPU seconds (user + system), read from /proc where there is one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--watches", type=int, default=100_000)
    parser.add_argument("--page-kb", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per mode")
    parser.add_argument(
        "--baseline-limit", type=float, default=180.0, help="most seconds for the baseline round"
    )
    # Parsing in a worker adds a round trip to every check: more checks in flight keep the
    # loop and the worker both busy (64 gave about 840-890 checks/s with every page changing).
    parser.add_argument("--concurrency", type=int, default=96)
    parser.add_argument("--restock-share", type=float, default=0.01)
    parser.add_argument("--pages", choices=[*MODES, "both"], default="both")
    parser.add_argument("--transport", choices=["app", "httpx"], default="app")
    parser.add_argument(
        "--parse-workers", type=int, help="parse worker processes (default: the app's auto)"
    )
    parser.add_argument(
        "--profile", metavar="PATH", help="cProfile the measured seconds into PATH.<mode>"
    )
    parser.add_argument(
        "--fanout",
        type=int,
        nargs="+",
        metavar="N",
        help="one more product whose restock goes to N chat subscribers (a run per N)",
    )
    parser.add_argument(
        "--fanout-at", type=float, default=5.0, help="seconds into the measured span it restocks"
    )
    parser.add_argument(
        "--fanout-limit", type=float, default=60.0, help="most seconds to wait for its deliveries"
    )
    args = parser.parse_args()
    modes = list(MODES) if args.pages == "both" else [args.pages]
    context = multiprocessing.get_context("fork")
    results: list[Figures] = []
    runs = [(mode, n) for mode in modes for n in (args.fanout or [None])]
    for mode, fanout in runs:
        ours, theirs = context.Pipe()
        worker = context.Process(target=one_mode, args=(args, mode, theirs, fanout))
        worker.start()
        theirs.close()  # so a mode that dies ends the wait below instead of hanging it
        try:
            results.append(ours.recv())
        except EOFError:
            print(f"[{mode}] failed (exit code {worker.exitcode})")
        worker.join()
    for figures in results:
        report(args, figures)


if __name__ == "__main__":
    main()
