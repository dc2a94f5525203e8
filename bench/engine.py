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

The engine runs as `restock run` would: the garbage collector tuned (watcher/runtime.py) and
pages parsed by the watchlist's `parse_workers` (auto: one worker process on two cores).

Prints, per mode, sustained checks/s, CPU seconds per 1,000 checks (the engine's process and its
parse workers together), peak RSS (the engine's, and the largest parse worker's) and the hand-off
latency (p50/p99). Asserts nothing. Targets: >= 800 checks/s, RSS <= 300 MB, hand-off p99 <=
100 ms.

Run from the project root: `python bench/engine.py [--seconds 20] [--pages both]`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as Flag
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from notifiers.base import Notice, Notifier, SendResult  # noqa: E402
from watcher.app import App, Overrides  # noqa: E402
from watcher.config import parse_config  # noqa: E402
from watcher.db import open_repository  # noqa: E402
from watcher.demo_shop import DemoShop, ShopProduct, Shows, timeline  # noqa: E402
from watcher.model import Notify, Watch  # noqa: E402
from watcher.runtime import tune_gc  # noqa: E402

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
    products: int, page_kb: int, vary: bool, restock: Flag, every: int, pipe: Connection
) -> None:
    """The shop's process: serve until terminated; send the port through `pipe` once bound.

    Every `every`-th product restocks once `restock` is set (after every product had its
    baseline check).
    """

    def restocking(_elapsed: float, _count: int) -> Shows:
        return Shows.IN_STOCK if restock.is_set() else Shows.OUT_OF_STOCK

    async def main() -> None:
        shop = DemoShop(etags=False, vary=vary, record_arrivals=False)
        for i in range(products):
            script = restocking if i % every == 0 else timeline((0, Shows.OUT_OF_STOCK))
            shop.add(ShopProduct(f"p{i}", f"商品 {i}", 1000 + i, script, padding=page_kb * 1024))
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


async def run(
    args: argparse.Namespace, mode: str, port: int, restock: Flag, folder: Path
) -> Figures:
    database = folder / "bench.sqlite3"
    config = parse_config(watchlist(database, args.concurrency), str(folder / "bench.yaml"))
    repo = await open_repository(database)
    started = time.perf_counter()
    watches = yaml_watches(port, args.products, args.watches // args.products)
    await repo.sync_yaml_watches(watches, datetime.now(UTC))
    print(f"[{mode}] synced {len(watches):,} watches in {time.perf_counter() - started:.1f} s")
    del watches
    tune_gc()  # as `restock run` does once its configuration is loaded
    notifier = HandoffClock()
    stop = asyncio.Event()
    overrides = Overrides(
        transport=transport_for(args.transport),
        notifiers={"console": notifier},
        stop=stop,
        install_signals=False,
        parse_workers=args.parse_workers,
    )
    app = App(config, repo, overrides)
    task = asyncio.create_task(app.run(stop))
    figures = await measure(app, args, mode, restock, notifier)
    stop.set()
    await task
    await repo.close()
    return figures


async def measure(
    app: App, args: argparse.Namespace, mode: str, restock: Flag, notifier: HandoffClock
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
    await asyncio.sleep(args.seconds)
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
    print(f"== {MODES[f.mode]}")
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


def one_mode(args: argparse.Namespace, mode: str, pipe: Connection) -> None:
    """A mode's own process: start the shop, run the engine against it, send the figures."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    restock = context.Event()
    every = max(1, round(1 / args.restock_share))
    shop = context.Process(
        target=serve_shop,
        args=(args.products, args.page_kb, mode == "changed", restock, every, theirs),
        daemon=True,
    )
    shop.start()
    try:
        port = ours.recv()
        with tempfile.TemporaryDirectory(prefix="restock-bench-") as folder:
            figures = asyncio.run(run(args, mode, port, restock, Path(folder)))
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
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--restock-share", type=float, default=0.01)
    parser.add_argument("--pages", choices=[*MODES, "both"], default="both")
    parser.add_argument("--transport", choices=["app", "httpx"], default="app")
    parser.add_argument(
        "--parse-workers", type=int, help="parse worker processes (default: the app's auto)"
    )
    parser.add_argument(
        "--profile", metavar="PATH", help="cProfile the measured seconds into PATH.<mode>"
    )
    args = parser.parse_args()
    modes = list(MODES) if args.pages == "both" else [args.pages]
    context = multiprocessing.get_context("fork")
    results: list[Figures] = []
    for mode in modes:
        ours, theirs = context.Pipe()
        worker = context.Process(target=one_mode, args=(args, mode, theirs))
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
