"""Claiming due products from a large backlog, on SQLite and on PostgreSQL.

Builds `--products` products (default 100,000) with a long-tailed subscriber mix (most have one
or two subscribers, a few thousands), on a SQLite file in a temporary folder and on a throwaway
PostgreSQL database on `--server` (dropped after). Two cases per backend:

- backlog: every product due (up to an hour late);
- few due: only `--few` products due, the rest due later.

Each claim leases 16 products through the repository (`claim_due_products`, the statement and
the decoding a worker runs); the claimed products are then given back untimed, as they were, so
every claim meets the same backlog. Prints the median, p10 and p90 milliseconds per claim; on
PostgreSQL also with `synchronous_commit=off`, where a claim's commit does not wait for the disk
(what is left is the statement's own cost).

Run from the project root: `python -m bench.claims [--products 100000] [--claims 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from watcher.storage import open_repository
from watcher.storage.interface import Repository

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
BATCH = 16
Product = tuple[str, str, int, float, float]  # target, store, subscribers, due_at, created_at


def products(count: int, due: int, seed: int = 7) -> list[Product]:
    """`count` products, `due` of them due by NOW (up to an hour late), the rest later."""
    rng = random.Random(seed)
    now = NOW.timestamp()
    rows: list[Product] = []
    for i in range(count):
        subscribers = min(int(rng.paretovariate(1.1)), 50_000)  # 1 mostly, a long tail
        late = rng.uniform(0, 3600)
        due_at = now - late if i < due else now + 60 + late
        store = f"shop{i % 50}"
        rows.append((f"https://{store}.example/items/{i}", store, subscribers, due_at, now - 86400))
    rng.shuffle(rows)
    return rows


def fill_sqlite(path: Path, rows: Sequence[Product]) -> None:
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO products (target, store, active, subscribers, due_at, created_at)"
            " VALUES (?, ?, 1, ?, ?, ?)",
            rows,
        )


async def fill_postgres(url: str, rows: Sequence[Product]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "products",
            records=[(t, s, True, n, d, c) for t, s, n, d, c in rows],
            columns=["target", "store", "active", "subscribers", "due_at", "created_at"],
        )
        await conn.execute("VACUUM ANALYZE products")
    finally:
        await conn.close()


async def claim_times(repo: Repository, claims: int) -> list[float]:
    """Milliseconds per claim of BATCH products; each claim's products given back after it."""
    times: list[float] = []
    for _ in range(claims):
        start = time.perf_counter()
        claimed = await repo.claim_due_products("bench", NOW, BATCH, LEASE)
        times.append(1000 * (time.perf_counter() - start))
        if not claimed:
            raise SystemExit("nothing was due: the bench's products were not written")
        for product in claimed:
            await repo.release_product(product.id, product.due_at)
    return times


def summary(label: str, times: Sequence[float]) -> str:
    ordered = sorted(times)
    p10, p90 = ordered[len(ordered) // 10], ordered[len(ordered) * 9 // 10]
    median = statistics.median(ordered)
    return f"{label:<52} median {median:8.3f} ms  (p10 {p10:.3f}, p90 {p90:.3f})"


async def bench_sqlite(rows: Sequence[Product], claims: int, label: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        await (await open_repository(path)).close()  # the schema
        fill_sqlite(path, rows)
        repo = await open_repository(path)
        try:
            await claim_times(repo, 5)  # warm up
            return summary(f"sqlite {label}", await claim_times(repo, claims))
        finally:
            await repo.close()


async def bench_postgres(server: str, rows: Sequence[Product], claims: int, label: str) -> str:
    name = f"restock_bench_claims_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{server.rsplit('/', 1)[0]}/{name}"
        await (await open_repository(url)).close()
        await fill_postgres(url, rows)
        lines = []
        for suffix, note in (("", ""), ("?synchronous_commit=off", ", no wait for disk")):
            repo = await open_repository(url + suffix)
            try:
                await claim_times(repo, 5)
                times = await claim_times(repo, claims)
                lines.append(summary(f"postgresql {label}{note}", times))
            finally:
                await repo.close()
        return "\n".join(lines)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(args: argparse.Namespace) -> None:
    cases = [("backlog", args.products), ("few due", args.few)]
    print(f"{args.products:,} products, claims of {BATCH}, {args.claims} claims per case")
    for label, due in cases:
        rows = products(args.products, due)
        print(await bench_sqlite(rows, args.claims, f"{label} ({due:,} due)"), flush=True)
        if not args.no_postgres:
            line = await bench_postgres(args.server, rows, args.claims, f"{label} ({due:,} due)")
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--few", type=int, default=40, help="products due in the few-due case")
    parser.add_argument("--claims", type=int, default=200, help="timed claims per case")
    parser.add_argument("--server", default=SERVER, help="a PostgreSQL server (its admin URL)")
    parser.add_argument("--no-postgres", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
