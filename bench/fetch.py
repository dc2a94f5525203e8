"""The fetcher's cost per request: `Fetcher.fetch_raw` against a loopback shop of ~100 KB pages.

The shop (`watcher.demo.shop.DemoShop`) runs in its own process (the second core); this process
runs `--requests` fetches through `Fetcher.fetch_raw`, `--concurrency` at a time, over the app's
transport (aiohttp's, as `restock run` uses when installed) or httpx's own pool. A warm-up of
`--warmup` fetches opens the connections first and is not measured. Each of `--rounds` rounds
prints requests/s and this process's CPU time per request (user + system, from getrusage), so the
figure is the fetcher's own cost and not the shop's; the shop's share of a core shows whether the
shop, not the fetcher, set the pace. Each round then runs the peer beside it: a bare aiohttp GET
loop (no fetcher, the body read whole) at the same concurrency, and prints the fetcher's CPU per
request as a multiple of the peer's, a ratio that holds from machine to machine. Asserts nothing.

Run from the project root: `python bench/fetch.py [--requests 5000] [--concurrency 48]`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp
import httpx

from watcher.core.model import FetchPlan
from watcher.demo.shop import DemoShop, ShopProduct, Shows, timeline
from watcher.net.fetch import Fetcher
from watcher.net.transport import build_client, fast_transport


def serve_shop(products: int, page_kb: int, pipe: Connection) -> None:
    """The shop's process: serve until terminated; send the port through `pipe` once bound."""

    async def main() -> None:
        shop = DemoShop(etags=False, record_arrivals=False)
        for i in range(products):
            script = timeline((0, Shows.OUT_OF_STOCK))
            shop.add(ShopProduct(f"p{i}", f"商品 {i}", 1000 + i, script, padding=page_kb * 1024))
        await shop.start()
        pipe.send(shop.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def transport_for(name: str) -> httpx.AsyncBaseTransport | None:
    """The transport: `restock run`'s choice (aiohttp's when installed), or httpx's own pool."""
    if name == "httpx":
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    return fast_transport()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fetch_many(
    fetcher: Fetcher, plans: list[FetchPlan], count: int, concurrency: int
) -> tuple[int, int]:
    """Fetch `count` pages (cycling through `plans`); (bytes read, failed fetches)."""
    next_index = 0
    totals = [0, 0]

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            plan = plans[next_index % len(plans)]
            next_index += 1
            raw = await fetcher.fetch_raw(plan)
            if raw.head.error is not None or raw.body is None:
                totals[1] += 1
            else:
                totals[0] += len(raw.body)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return totals[0], totals[1]


async def bare_many(
    session: aiohttp.ClientSession, urls: list[str], count: int, concurrency: int
) -> int:
    """The peer: `count` plain aiohttp GETs (cycling through `urls`); failed requests."""
    next_index = 0
    failed = 0

    async def worker() -> None:
        nonlocal next_index, failed
        while next_index < count:
            url = urls[next_index % len(urls)]
            next_index += 1
            async with session.get(url) as response:
                await response.read()
                failed += response.status != 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


def process_cpu(pid: int | None) -> float:
    """A process's CPU seconds (user + system) from /proc; NaN where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, port: int, shop_pid: int | None) -> None:
    plans = [FetchPlan(f"http://127.0.0.1:{port}/items/p{i}") for i in range(args.products)]
    transport = transport_for(args.transport)
    print(f"transport: {type(transport).__name__}, concurrency {args.concurrency}")
    urls = [plan.url for plan in plans]
    peer = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency))
    async with build_client(transport=transport) as client, peer:
        fetcher = Fetcher(client)
        await fetch_many(fetcher, plans, args.warmup, args.concurrency)
        await bare_many(peer, urls, args.warmup, args.concurrency)
        profiler = cProfile.Profile() if args.profile else None
        for round_number in range(1, args.rounds + 1):
            cpu0, shop0, t0 = cpu_seconds(), process_cpu(shop_pid), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            received, failed = await fetch_many(fetcher, plans, args.requests, args.concurrency)
            if profiler is not None:
                profiler.disable()
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
            shop = process_cpu(shop_pid) - shop0
            print(
                f"round {round_number}: {args.requests / elapsed:,.0f} requests/s, "
                f"{cpu / args.requests * 1e6:,.0f} µs CPU per request "
                f"({cpu / elapsed:.0%} of a core; shop {shop / elapsed:.0%}), "
                f"{received / args.requests / 1024:,.0f} KB per page, {failed} failed"
            )
            cpu0, t0 = cpu_seconds(), time.perf_counter()
            failed = await bare_many(peer, urls, args.requests, args.concurrency)
            bare_elapsed, bare_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
            print(
                f"  bare aiohttp: {args.requests / bare_elapsed:,.0f} requests/s, "
                f"{bare_cpu / args.requests * 1e6:,.0f} µs CPU per request, {failed} failed; "
                f"fetcher/bare CPU per request {cpu / bare_cpu:.2f}x"
            )
        if profiler is not None:
            profiler.dump_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5_000, help="fetches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--page-kb", type=int, default=100)
    parser.add_argument("--transport", choices=["app", "httpx"], default="app")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the measured rounds into PATH")
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    shop = context.Process(
        target=serve_shop, args=(args.products, args.page_kb, theirs), daemon=True
    )
    shop.start()
    try:
        port = ours.recv()
        asyncio.run(run(args, port, shop.pid))
    finally:
        shop.terminate()
        shop.join(5)


if __name__ == "__main__":
    main()
