"""Several `restock run` processes on one PostgreSQL database against one simulated shop.

The shop counts requests in flight and when each arrived, whichever worker sent it: the workers
together must keep its host's limits. A worker killed with SIGKILL loses nothing: its products
are checked by the others, every delivery is sent (a repeat only for a send in flight at the
kill), and the duty it held passes to a survivor.

PostgreSQL only: several workers share a server database; SQLite serves one process (its real
runs, SIGTERM and SIGKILL included, are in test_cli_run.py and test_run_end_to_end.py).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_cli_run import Receiver, receiver, webhook_deliveries  # noqa: F401  (the webhook fixture)
from test_engine import IN, OUT, Lever, eventually

from watcher.demo.shop import DemoShop, ShopProduct
from watcher.storage.postgres.repository import PostgresRepository, open_repository

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def shop() -> AsyncIterator[DemoShop]:
    async with DemoShop() as running:
        yield running


@pytest.fixture
async def repo(postgresql_database: str) -> AsyncIterator[PostgresRepository]:
    repository = await open_repository(postgresql_database)
    yield repository
    await repository.close()


def write_watchlist(
    folder: Path, database: str, shop: DemoShop, slugs: list[str], host: str, webhook: str | None
) -> Path:
    lines = [
        "settings:",
        f"  database: '{database}'",
        "  default_interval: 1s",
        "  hot_windows: []",
        "  debounce: {confirm: 2, rearm: 2, cooldown: 0s}",
        "  politeness:",
        "    hosts:",
        f"      127.0.0.1: {host}",
        "notifiers:",
        "  console: {}",
        *([f"  webhook: {{url: '{webhook}'}}"] if webhook else []),
        "watches:",
    ]
    notify = "{webhook: true}" if webhook else "{console: true}"
    for slug in slugs:
        lines += [f"  - name: {slug}", f"    url: {shop.url(slug)}", f"    notify: {notify}"]
    path = folder / "watchlist.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def start_workers(config: Path, log: Path, n: int) -> list[asyncio.subprocess.Process]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTOCK_")}
    env["PYTHONPATH"] = str(ROOT)
    workers = []
    with log.open("ab") as out:
        for _ in range(n):
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "watcher",
                    "run",
                    "--config",
                    str(config),
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=out,
                )
            )
    return workers


async def stop_all(workers: list[asyncio.subprocess.Process]) -> list[int | None]:
    for worker in workers:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
    codes = []
    for worker in workers:
        try:
            codes.append(await asyncio.wait_for(worker.wait(), 15))
        except TimeoutError:
            worker.kill()
            codes.append(await worker.wait())
    return codes


async def test_three_workers_keep_the_hosts_limits_together(
    tmp_path: Path, shop: DemoShop, repo: PostgresRepository, postgresql_database: str
) -> None:
    shop.latency = 1.5  # two requests overlap: the concurrency limit matters
    slugs = [f"p{i}" for i in range(8)]
    for slug in slugs:
        shop.add(ShopProduct(slug, slug, 1000, Lever(OUT)))
    host = "{concurrency: 2, min_delay: 1s, min_interval: 0s}"
    config = write_watchlist(tmp_path, postgresql_database, shop, slugs, host, webhook=None)
    log = tmp_path / "run.log"
    workers = await start_workers(config, log, 3)
    try:
        await eventually(
            lambda: shop.total_requests >= 10,
            timeout=60,
            what="checks by the workers",
        )
        live = await repo.live_workers(datetime.now(UTC))
        assert len(live) == 3, log.read_text()[-3000:]
    finally:
        codes = await stop_all(workers)
    assert codes == [0, 0, 0], log.read_text()[-3000:]
    starts = sorted(at for at, _ in shop.arrivals)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert shop.max_in_flight <= 2
    # Granted 1 s apart whichever worker sent them. Measured as they reach the shop on a busy
    # machine, a late send or a late arrival shortens a gap (by up to about half a second seen
    # on a loaded machine); unshared, three workers start together (gaps near 0) and overlap
    # beyond the limit.
    assert min(gaps) >= 0.25, gaps
    assert sorted(gaps)[len(gaps) // 2] >= 0.95, gaps  # the usual gap is the full delay


async def test_a_killed_worker_loses_no_delivery_and_its_duty_passes_on(
    tmp_path: Path,
    shop: DemoShop,
    receiver: Receiver,  # noqa: F811
    repo: PostgresRepository,
    postgresql_database: str,
) -> None:
    levers = {f"p{i}": Lever(OUT) for i in range(6)}
    for slug, lever in levers.items():
        shop.add(ShopProduct(slug, slug, 1000, lever))
    host = "{concurrency: 8, min_delay: 0s, min_interval: 0s}"
    config = write_watchlist(
        tmp_path, postgresql_database, shop, list(levers), host, webhook=receiver.url
    )
    log = tmp_path / "run.log"
    workers = await start_workers(config, log, 2)
    try:
        await eventually(
            lambda: all(p.requests >= 1 for p in shop.products.values()),
            timeout=30,
            what="baseline checks",
        )

        async def duty_holder() -> list[str]:
            live = await repo.live_workers(datetime.now(UTC))
            return [w.name for w in live if "send:x" in w.duties]

        await eventually(lambda: _one(duty_holder()), timeout=20, what="a single sender")
        [holder] = await duty_holder()
        victim = next(w for w in workers if holder.split(":")[1] == str(w.pid))
        for lever in levers.values():
            lever.shows = IN
        await eventually(lambda: len(receiver.received) >= 2, timeout=30, what="two sends")
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        at_kill = await webhook_deliveries(postgresql_database)
        in_flight = set(receiver.received) - {k for k, s in at_kill.items() if s == "sent"}
        requests_at_kill = {slug: p.requests for slug, p in shop.products.items()}

        async def all_sent() -> bool:
            deliveries = await webhook_deliveries(postgresql_database)
            return len(deliveries) >= len(levers) and set(deliveries.values()) == {"sent"}

        await eventually(all_sent, timeout=45, what="every delivery sent")
        await eventually(
            lambda: all(p.requests > requests_at_kill[s] for s, p in shop.products.items()),
            timeout=30,
            what="every product checked after the kill",
        )
        survivor = next(w for w in workers if w is not victim)
        await eventually(
            lambda: _holds(duty_holder(), survivor.pid), timeout=30, what="the duty taken over"
        )
    finally:
        codes = await stop_all(workers)
    assert codes[workers.index(survivor)] == 0, log.read_text()[-3000:]
    deliveries = await webhook_deliveries(postgresql_database)
    counts = collections.Counter(receiver.received)
    assert set(counts) == set(deliveries)  # nothing lost, nothing unknown
    assert {key for key, n in counts.items() if n > 1} <= in_flight
    assert all(n <= 2 for n in counts.values())


async def _one(names: Awaitable[list[str]]) -> bool:
    return len(await names) == 1


async def _holds(names: Awaitable[list[str]], pid: int) -> bool:
    held = await names
    return len(held) == 1 and held[0].split(":")[1] == str(pid)
