"""The engine's throughput against a simulated shop of 10,000 products with ~100 KB pages.

The shop runs in its own process (the second core); the engine runs here with 100,000 YAML
watches (ten per product) and host limits lifted for 127.0.0.1 through the watchlist's
`politeness.hosts`. Every product is always due, so the engine runs flat out. A share of the
products restocks a third of the way in; each confirmed restock's deliveries go to a notifier
that notes how long after the confirming observation it got them.

Prints sustained checks/s, CPU seconds per 1,000 checks, peak RSS and the hand-off latency
(p50/p99). Asserts nothing. Targets: >= 800 checks/s, RSS <= 300 MB, hand-off p99 <= 100 ms.

Run from the project root: `python bench/engine.py [--seconds 40] [--transport aiohttp]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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


class HandoffClock(Notifier):
    """Notes, per delivery, the time from the confirming observation to this hand-off."""

    name = "console"

    def __init__(self) -> None:
        self.latencies: list[float] = []

    async def send(self, notice: Notice) -> SendResult:
        self.latencies.append((datetime.now(UTC) - notice.event.observed_at).total_seconds())
        return SendResult.sent()


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


async def run(args: argparse.Namespace, port: int, restock: Flag, folder: Path) -> None:
    database = folder / "bench.sqlite3"
    config = parse_config(watchlist(database, args.concurrency), str(folder / "bench.yaml"))
    repo = await open_repository(database)
    started = time.perf_counter()
    watches = yaml_watches(port, args.products, args.watches // args.products)
    await repo.sync_yaml_watches(watches, datetime.now(UTC))
    print(f"synced {len(watches):,} watches in {time.perf_counter() - started:.1f} s")
    del watches
    notifier = HandoffClock()
    stop = asyncio.Event()
    overrides = Overrides(
        transport=transport_for(args.transport),
        notifiers={"console": notifier},
        stop=stop,
        install_signals=False,
    )
    app = App(config, repo, overrides)
    task = asyncio.create_task(app.run(stop))
    figures = await measure(app, args, restock)
    stop.set()
    await task
    await repo.close()
    report(args, figures, notifier.latencies)


async def measure(app: App, args: argparse.Namespace, restock: Flag) -> dict[str, float]:
    counters = app.engine.counters
    await asyncio.sleep(args.warmup)
    checks0, cpu0, t0 = counters.checks, cpu_seconds(), time.perf_counter()
    deadline = t0 + args.seconds
    while counters.checks < args.products and time.perf_counter() < deadline - 10:
        await asyncio.sleep(0.2)  # every product has its baseline before any restock
    restock.set()
    await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
    checks, cpu, elapsed = counters.checks - checks0, cpu_seconds() - cpu0, time.perf_counter() - t0
    return {
        "checks": checks,
        "elapsed": elapsed,
        "cpu": cpu,
        "unchanged": counters.unchanged,
        "unknown": counters.unknown,
        "events": counters.events,
    }


def report(args: argparse.Namespace, f: dict[str, float], latencies: list[float]) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = f["checks"] / f["elapsed"]
    per_1000 = f["cpu"] / f["checks"] * 1000 if f["checks"] else float("nan")
    pages = "pages vary per request" if args.vary else "pages stay the same until they change"
    print(f"transport: {args.transport}, concurrency {args.concurrency}, {args.page_kb} KB pages,")
    print(f"           {pages}")
    print(f"sustained: {rate:,.0f} checks/s over {f['elapsed']:.0f} s (target >= 800)")
    print(f"cpu: {per_1000:.2f} s per 1,000 checks ({f['cpu'] / f['elapsed']:.0%} of a core)")
    print(f"peak RSS: {peak_mb:,.0f} MB with {args.watches:,} watches (target <= 300)")
    print(f"unchanged pages: {f['unchanged']:.0f}, unknown: {f['unknown']:.0f}")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"hand-off: {len(latencies)} deliveries, p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms (target <= 100)"
    )
    if latencies:
        print(f"          mean {statistics.fmean(latencies) * 1000:.1f} ms")


def with_shop(args: argparse.Namespace, body: Callable[[int, Flag], None]) -> None:
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    restock = context.Event()
    every = max(1, round(1 / args.restock_share))
    shop = context.Process(
        target=serve_shop,
        args=(args.products, args.page_kb, args.vary, restock, every, theirs),
        daemon=True,
    )
    shop.start()
    try:
        body(ours.recv(), restock)
    finally:
        shop.terminate()
        shop.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--watches", type=int, default=100_000)
    parser.add_argument("--page-kb", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--restock-share", type=float, default=0.01)
    parser.add_argument(
        "--vary",
        action="store_true",
        help="end every page with a per-request token, so every page is parsed (worst case)",
    )
    parser.add_argument("--transport", choices=["app", "httpx"], default="app")
    args = parser.parse_args()

    def body(port: int, restock: Flag) -> None:
        with tempfile.TemporaryDirectory(prefix="restock-bench-") as folder:
            asyncio.run(run(args, port, restock, Path(folder)))

    with_shop(args, body)


if __name__ == "__main__":
    main()
