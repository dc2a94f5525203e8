"""Several `restock run` workers on PostgreSQL beside one on SQLite, against a simulated shop.

The shop runs in this process on loopback with `--products` products (host limits lifted for
127.0.0.1 through the watchlist), every product due each second, so the workers run flat out.
For each mode (1 worker on SQLite; 1, 2 and 3 workers on PostgreSQL, each on a fresh database)
the workers run as real `restock run` processes: after `--warmup` seconds, the measured span
counts the shop's requests and the CPU time of the workers and of the PostgreSQL server's
processes (read from /proc; the server's figure includes whatever else uses it meanwhile). During
the span, a few products restock one after another; a webhook receiver here notes how long after
the shop began showing stock each message arrived (the hand-off from the shop to the channel:
the wait for the next check, the confirming re-check, the write, the dispatch).

Prints, per mode: checks/s, CPU seconds per 1,000 checks (workers; PostgreSQL server) and the
hand-off latency (p50/max). Asserts nothing.

Run from the project root: `python -m bench.workers [--products 2000] [--seconds 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from watcher.demo.shop import DemoShop, ShopProduct, Shows
from watcher.web.listener import Request, Response, serve

ROOT = Path(__file__).resolve().parents[1]
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Flip:
    """A product's stock, flipped by the bench: shows IN from `since` on."""

    since: float | None = None

    def __call__(self, _elapsed: float, _count: int) -> Shows:
        shown = self.since is not None and time.monotonic() >= self.since
        return Shows.IN_STOCK if shown else Shows.OUT_OF_STOCK


@dataclass
class Receiver:
    """The webhook: when each restock message arrived, by product name."""

    arrived: dict[str, float] = field(default_factory=dict)

    async def handle(self, request: Request) -> Response:
        body = request.body.decode("utf-8", "replace")
        for name in list(FLIPS):
            if f'"{name}"' in body and name not in self.arrived:
                self.arrived[name] = time.monotonic()
        return Response(200, b"{}", {"Content-Type": "application/json"})


FLIPS: dict[str, Flip] = {}


def watchlist(database: str, shop: DemoShop, slugs: list[str], hook: str) -> str:
    lines = [
        "settings:",
        f"  database: '{database}'",
        "  default_interval: 1s",
        "  hot_windows: []",
        "  global_concurrency: 64",
        "  parse_workers: 0",  # pages parsed in the worker itself: its CPU is all counted
        "  debounce: {confirm: 2, rearm: 2, cooldown: 0s}",
        "  politeness:",
        "    hosts:",
        "      127.0.0.1: {concurrency: 64, min_delay: 0s, min_interval: 0s}",
        "notifiers:",
        f"  webhook: {{url: '{hook}'}}",
        "watches:",
    ]
    for slug in slugs:
        lines += [f"  - name: {slug}", f"    url: {shop.url(slug)}"]
        if slug in FLIPS:
            lines.append("    notify: {webhook: true}")
    return "\n".join(lines) + "\n"


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def server_cpu() -> float:
    return cpu_seconds(postgres_pids())


async def fresh_database(mode: str, folder: Path) -> tuple[str, str | None]:
    if mode == "sqlite":
        return str(folder / f"bench-{uuid.uuid4().hex[:6]}.sqlite3"), None
    name = f"restock_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(SERVER)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return SERVER.rsplit("/", 1)[0] + f"/{name}", name


async def drop_database(name: str | None) -> None:
    if name is not None:
        conn = await asyncpg.connect(SERVER)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def run_mode(mode: str, workers: int, args: argparse.Namespace, folder: Path) -> str:
    FLIPS.clear()
    FLIPS.update({f"r{i}": Flip() for i in range(args.restocks)})
    receiver = Receiver()
    hook_server = await serve(receiver.handle)
    hook = f"http://127.0.0.1:{hook_server.port}/hook"
    shop = DemoShop(record_arrivals=False)
    slugs = [f"p{i}" for i in range(args.products)] + list(FLIPS)
    for slug in slugs:
        shop.add(ShopProduct(slug, slug, 1000, FLIPS.get(slug) or Flip()))
    await shop.start()
    database, made = await fresh_database(mode, folder)
    config = folder / f"{mode}-{workers}.yaml"
    config.write_text(watchlist(database, shop, slugs, hook))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTOCK_")}
    env["PYTHONPATH"] = str(ROOT)
    procs = []
    try:
        for _ in range(workers):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "watcher", "run", "--config", str(config),
                    cwd=ROOT, env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )
            )  # fmt: skip
        await asyncio.sleep(args.warmup)
        pids = [p.pid for p in procs]
        checks0, cpu0, db0, t0 = (
            shop.total_requests,
            cpu_seconds(pids),
            server_cpu(),
            time.monotonic(),
        )
        step = args.seconds / (len(FLIPS) + 1)
        for flip in FLIPS.values():
            await asyncio.sleep(step)
            flip.since = time.monotonic()
        await asyncio.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
        checks = shop.total_requests - checks0
        elapsed = time.monotonic() - t0
        workers_cpu, db_cpu = cpu_seconds(pids) - cpu0, server_cpu() - db0
        await asyncio.sleep(3)  # the last restocks' messages
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            await proc.wait()
        await shop.stop()
        await hook_server.close()
        await drop_database(made)
    latencies = [
        receiver.arrived[n] - f.since for n, f in FLIPS.items() if n in receiver.arrived and f.since
    ]
    per_k = 1000 / checks if checks else float("nan")
    hand = (
        f"{statistics.median(latencies) * 1000:6.0f} {max(latencies) * 1000:6.0f}"
        if latencies
        else "     -      -"
    )
    db = f"{db_cpu * per_k:8.2f}" if mode != "sqlite" else "       -"
    return (
        f"{mode:<10}{workers:>3}{checks / elapsed:>10.0f}{workers_cpu * per_k:>10.2f}{db}"
        f"  {hand}  {len(latencies)}/{len(FLIPS)}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--restocks", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 3])
    args = parser.parse_args()
    print(f"{'database':<10}{'n':>3}{'checks/s':>10}{'cpu/1k w':>10}{'cpu/1k db':>9}"
          f"  {'p50 ms':>6} {'max ms':>6}  restocks")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(await run_mode("sqlite", 1, args, folder), flush=True)
        for n in args.workers:
            print(await run_mode("postgresql", n, args, folder), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
