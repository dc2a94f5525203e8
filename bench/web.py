"""The web UI's answer times with many watches: the watches page, a watch, the forecast, the API.

Seeds `--watches` YAML watches, each with `--observations` stored readings and a few restocks,
into a fresh SQLite file, serves the UI on loopback and prints the median and worst time of
`--rounds` GETs per path. Asserts nothing.

Run from the project root: `python bench/web.py [--watches 5000] [--observations 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from watcher.core.model import Availability, Notify, Observation, Watch
from watcher.net.politeness import Politeness
from watcher.service.metrics import Metrics
from watcher.storage.interface import CheckOutcome
from watcher.storage.sqlite.repository import SQLiteRepository, open_repository
from watcher.web.app import WebApp, WebSetup
from watcher.web.forms import AddForm
from watcher.web.security import WebAccess
from watcher.web.server import StatusServer

NOW = datetime(2026, 6, 10, 3, 0, tzinfo=UTC)
STATES = (Availability.OUT_OF_STOCK, Availability.IN_STOCK, Availability.UNKNOWN)


async def seed(repo: SQLiteRepository, watches: int, observations: int) -> None:
    start = NOW - timedelta(days=observations)
    batch = [
        Watch(key=f"w{i}", name=f"Watch {i}", url=f"https://shop{i % 7}.example/items/{i}",
              notify=Notify(console=True))
        for i in range(watches)
    ]  # fmt: skip
    await repo.sync_yaml_watches(batch, start)
    for step in range(observations):
        at = start + timedelta(days=step)
        claimed = await repo.claim_due_products("bench", at, watches, timedelta(minutes=5))
        for product in claimed:
            state = STATES[(product.id + step) % len(STATES)]
            observation = Observation(state=state, reason="bench", price=1000 + step)
            outcome = CheckOutcome(next_due_at=at + timedelta(days=1))
            await repo.record_check(product.id, observation, [], outcome, at)
    for product_id in range(1, watches + 1, 3):
        for week in range(4):
            await repo.record_restock(product_id, None, NOW - timedelta(weeks=week, hours=20))


async def time_paths(base: str, paths: list[str], rounds: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        for path in paths:
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                answer = await client.get(path)
                times.append(time.perf_counter() - started)
                assert answer.status_code == 200, (path, answer.status_code)
            print(
                f"  {path:<28} median {statistics.median(times) * 1000:8.1f} ms"
                f"   worst {max(times) * 1000:8.1f} ms   {len(answer.content):>9,} bytes"
            )


async def main(watches: int, observations: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        repo = await open_repository(Path(folder) / "bench.sqlite3")
        started = time.perf_counter()
        await seed(repo, watches, observations)
        print(f"seeded {watches:,} watches x {observations} observations"
              f" in {time.perf_counter() - started:.1f} s")  # fmt: skip

        async def never(form: AddForm) -> Observation:
            raise RuntimeError("the benchmark adds nothing")

        setup = WebSetup(language="ja", zone=ZoneInfo("Asia/Tokyo"), clock=lambda: NOW)
        web = WebApp(repo.web_views(), repo, WebAccess(None), setup, never)
        server = StatusServer(repo, Metrics(), Politeness(), web=web.handle)
        await server.start("127.0.0.1:0")
        try:
            paths = ["/", "/?page=10", "/watch/w1?days=90", "/forecast", "/api/watches",
                     "/api/watches/w1/history", "/health"]  # fmt: skip
            await time_paths(f"http://127.0.0.1:{server.port}", paths, rounds)
        finally:
            await server.stop()
            await repo.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=5000)
    parser.add_argument("--observations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.watches, args.observations, args.rounds))
