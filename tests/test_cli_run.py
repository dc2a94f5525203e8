"""`restock run` as a real process: SIGTERM stops it cleanly, SIGKILL loses no message.

The simulated shop and a webhook receiver run in the test's event loop on loopback; the watcher
runs as `python -m watcher run --config FILE` in a child process.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_engine import IN, OUT, Lever, eventually

from tests import dbrows
from watcher.cli import main
from watcher.demo.shop import DemoShop, ShopProduct
from watcher.service.engine import STORE_ROW_PREFIX
from watcher.storage import open_repository
from watcher.storage.interface import HostState
from watcher.web.listener import Listener, Request, Response, serve

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Receiver:
    """A webhook endpoint that takes its time: each POST is answered after `delay` seconds."""

    delay: float = 0.3
    received: list[str] = field(default_factory=list)  # Idempotency-Key, in arrival order
    server: Listener | None = None

    async def handle(self, request: Request) -> Response:
        self.received.append(request.headers.get("idempotency-key", "?"))
        await asyncio.sleep(self.delay)
        return Response(200, b"{}", {"Content-Type": "application/json"})

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    hook.server = await serve(hook.handle)
    yield hook
    await hook.server.close()


@pytest.fixture
async def shop() -> AsyncIterator[DemoShop]:
    async with DemoShop() as running:
        yield running


def write_watchlist(
    folder: Path, database: str, shop: DemoShop, slugs: list[str], webhook: str | None
) -> Path:
    lines = [
        "settings:",
        f"  database: '{database}'",
        "  default_interval: 1s",
        "  hot_windows: []",
        "  debounce: {confirm: 2, rearm: 2, cooldown: 0s}",
        "  politeness:",
        "    hosts:",
        "      127.0.0.1: {concurrency: 8, min_delay: 0s, min_interval: 0s}",
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


async def start_watcher(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTOCK_")}
    env["PYTHONPATH"] = str(ROOT)
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watcher", "run", "--config", str(config),
            cwd=ROOT, env=env, stdout=out, stderr=out,
        )  # fmt: skip


async def webhook_deliveries(database: str) -> dict[str, str]:
    """Status of every webhook delivery, by the Idempotency-Key the webhook sends."""
    rows = await dbrows.fetch(
        database, "SELECT event_id, recipient, status FROM deliveries WHERE channel = 'webhook'"
    )
    return {f"{row['event_id']}:{row['recipient']}": row["status"] for row in rows}


async def all_sent(database: str, expected: int) -> bool:
    deliveries = await webhook_deliveries(database)
    return len(deliveries) >= expected and set(deliveries.values()) == {"sent"}


async def stop_with_sigterm(process: asyncio.subprocess.Process) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0
    return time.monotonic() - started


async def test_sigterm_stops_the_run_with_exit_0_and_gives_leases_back(
    tmp_path: Path, database: str, shop: DemoShop
) -> None:
    slugs = [f"p{i}" for i in range(4)]
    for slug in slugs:
        shop.add(ShopProduct(slug, slug, 1000, Lever(OUT)))
    config = write_watchlist(tmp_path, database, shop, slugs, webhook=None)
    process = await start_watcher(config, tmp_path / "run.log")
    try:
        await eventually(lambda: shop.total_requests >= 6, timeout=20, what="checks running")
        assert await stop_with_sigterm(process) < 10
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    repo = await open_repository(database)
    try:
        assert await repo.lease_owners(datetime.now(UTC)) == []
    finally:
        await repo.close()


async def test_after_a_sigkill_a_restart_sends_every_message_once_more_at_most_in_flight(
    tmp_path: Path, database: str, shop: DemoShop, receiver: Receiver
) -> None:
    levers = {f"p{i}": Lever(OUT) for i in range(5)}
    for slug, lever in levers.items():
        shop.add(ShopProduct(slug, slug, 1000, lever))
    config = write_watchlist(tmp_path, database, shop, list(levers), webhook=receiver.url)
    log = tmp_path / "run.log"

    first = await start_watcher(config, log)
    try:
        await eventually(
            lambda: all(p.requests >= 1 for p in shop.products.values()),
            timeout=20,
            what="baseline checks",
        )
        for lever in levers.values():
            lever.shows = IN
        await eventually(lambda: len(receiver.received) >= 2, timeout=20, what="two sends")
    finally:
        first.kill()
        await first.wait()

    at_kill = await webhook_deliveries(database)
    received_at_kill = set(receiver.received)
    in_flight = received_at_kill - {key for key, status in at_kill.items() if status == "sent"}
    assert "pending" in at_kill.values()  # the kill left messages to send

    second = await start_watcher(config, log)
    try:
        await eventually(
            lambda: all_sent(database, len(levers)),
            timeout=25,
            what="every delivery sent",
        )
        await stop_with_sigterm(second)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()

    deliveries = await webhook_deliveries(database)
    counts = collections.Counter(receiver.received)
    assert set(counts) == set(deliveries)  # nothing lost, nothing unknown
    repeated = {key for key, n in counts.items() if n > 1}
    assert repeated <= in_flight, log.read_text()[-3000:]
    assert all(n <= 2 for n in counts.values())


async def save_states(database: str, *states: HostState) -> None:
    repo = await open_repository(database)
    try:
        for state in states:
            await repo.save_host_state(state)
    finally:
        await repo.close()


def test_status_shows_host_backoff_and_store_drift(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    until = datetime.now(UTC) + timedelta(minutes=5)
    blocked = HostState(
        "www.amazon.co.jp", backoff_until=until, consecutive_blocks=2, last_reason="blocked:captcha"
    )
    warning = "store rakuten pages no longer parse: check the adapter"
    drift = HostState(STORE_ROW_PREFIX + "rakuten", consecutive_blocks=3, last_reason=warning)
    asyncio.run(save_states(database, blocked, drift))

    assert main(["status", "--database", database]) == 0
    text = capsys.readouterr().out
    assert "host www.amazon.co.jp: 2 blocks, backing off until" in text
    assert "blocked:captcha" in text
    assert "store rakuten: store rakuten pages no longer parse: check the adapter" in text
    assert "host store:" not in text

    assert main(["status", "--database", database, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [h["host"] for h in report["hosts"]] == ["www.amazon.co.jp"]
    assert report["stores"] == [
        {
            "store": "rakuten",
            "layout_misses": 3,
            "warning": "store rakuten pages no longer parse: check the adapter",
        }
    ]
