"""A reload reaches every worker on the database: the reload counter on both backends, its NOTIFY
on PostgreSQL, two running apps, `restock reload`, and SIGHUP on a real `restock run`.

Each worker reads its own copy of the watchlist (as on separate machines). A copy is changed
"quietly" (its mtime kept) where the test needs a worker to learn of a reload through the
database rather than through its own file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from test_engine import eventually

from tests import dbrows
from watcher.cli import main
from watcher.config.load import load_config
from watcher.demo.shop import DemoShop, ShopProduct, Shows, timeline
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage import open_repository
from watcher.storage.interface import Repository

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]
QUICK = 0.05  # seconds between a worker's looks at its file and the counter
NEVER = 600.0  # a worker that never looks by itself within a test


# --- the counter -----------------------------------------------------------------------------


async def test_the_counter_starts_at_zero_and_moves_on_each_bump(repo: Repository) -> None:
    assert await repo.reload_count() == 0
    assert await repo.bump_reloads() == 1
    assert await repo.bump_reloads() == 2
    assert await repo.reload_count() == 2


async def test_every_worker_on_the_database_reads_one_counter(database: str) -> None:
    first, second = await open_repository(database), await open_repository(database)
    try:
        await first.bump_reloads()
        assert await second.bump_reloads() == 2
        assert await first.reload_count() == 2
    finally:
        await first.close()
        await second.close()
    reopened = await open_repository(database)
    try:
        assert await reopened.reload_count() == 2
    finally:
        await reopened.close()


async def test_on_postgresql_a_bump_is_heard_by_the_other_workers_links(
    postgresql_database: str,
) -> None:
    bumping = await open_repository(postgresql_database)
    listening = await open_repository(postgresql_database)
    assert hasattr(listening, "coordinator")
    link = listening.coordinator("B")
    heard, deliveries = asyncio.Event(), asyncio.Event()
    try:
        await link.start(deliveries.set, heard.set)
        await bumping.bump_reloads()
        await asyncio.wait_for(heard.wait(), 30)  # LISTEN/NOTIFY, not a poll
        assert not deliveries.is_set()  # a reload is not an outbox wake-up
    finally:
        await link.close()
        await bumping.close()
        await listening.close()


# --- running workers -------------------------------------------------------------------------


def watchlist_text(database: str, shop: DemoShop, slugs: list[str]) -> str:
    lines = [
        "settings:",
        f"  database: '{database}'",
        "  default_interval: 1h",
        "  hot_windows: []",
        "  politeness: {hosts: {127.0.0.1: {min_delay: 0s, min_interval: 0s}}}",
        "notifiers:",
        "  console: {}",
        "watches:",
    ]
    lines += [f"  - {{name: {s}, url: '{shop.url(s)}', notify: {{console: true}}}}" for s in slugs]
    return "\n".join(lines) + "\n"


def rewrite_quietly(path: Path, text: str) -> None:
    """Change the file but keep its mtime: its worker cannot tell by looking at it."""
    before = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def keys(app: App) -> set[str]:
    return {watch.key for watch in app.config.watches}


@asynccontextmanager
async def running(watchlist: Path, poll: float) -> AsyncIterator[App]:
    """A worker running `watchlist`, ready: it has read the counter and, where the database
    tells workers of reloads, it listens."""
    config = load_config(watchlist)
    repo = await open_repository(config.settings.database)
    stop = asyncio.Event()
    app = App(config, repo, Overrides(stop=stop, install_signals=False, reload_poll=poll))
    await app.sync_watches(config)
    task = asyncio.create_task(app.run(stop))
    try:
        membership = app.membership
        await eventually(
            lambda: app.reloads_seen is not None and (membership is None or membership.linked),
            timeout=20,
            what="the worker ready",
        )
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await repo.close()


@pytest.fixture
async def shop() -> AsyncIterator[DemoShop]:
    async with DemoShop() as demo:
        for slug in ("mug", "cup"):
            demo.add(ShopProduct(slug, slug, 1980, timeline((0, Shows.OUT_OF_STOCK))))
        yield demo


def two_copies(tmp_path: Path, database: str, shop: DemoShop) -> tuple[Path, Path]:
    """The same watchlist as two files, one per worker."""
    copies = (tmp_path / "a.yaml", tmp_path / "b.yaml")
    for copy in copies:
        copy.write_text(watchlist_text(database, shop, ["mug"]), encoding="utf-8")
    return copies


async def test_a_watchlist_changed_on_one_worker_is_reloaded_by_the_others(
    tmp_path: Path, database: str, shop: DemoShop
) -> None:
    a_file, b_file = two_copies(tmp_path, database, shop)
    async with running(a_file, QUICK) as a, running(b_file, QUICK) as b:
        grown = watchlist_text(database, shop, ["mug", "cup"])
        rewrite_quietly(b_file, grown)  # B's copy is ready, but B does not know
        a_file.write_text(grown, encoding="utf-8")  # A sees its own file change
        await eventually(lambda: keys(b) == {"mug", "cup"}, timeout=20, what="B's reload")
        await eventually(lambda: keys(a) == {"mug", "cup"}, timeout=20, what="A's own reload")
        assert await b.repository.reload_count() == 1  # one bump, by A
        assert a.reloads_seen == b.reloads_seen == 1


async def test_on_postgresql_a_reload_reaches_a_worker_that_does_not_look(
    tmp_path: Path, postgresql_database: str, shop: DemoShop
) -> None:
    a_file, b_file = two_copies(tmp_path, postgresql_database, shop)
    # Neither looks at its file or the counter by itself within the test: only NOTIFY wakes B.
    async with running(a_file, NEVER) as a, running(b_file, NEVER) as b:
        rewrite_quietly(b_file, watchlist_text(postgresql_database, shop, ["mug", "cup"]))
        a.ask_reload()  # what SIGHUP does
        await eventually(lambda: keys(b) == {"mug", "cup"}, timeout=20, what="B's reload")
        assert keys(a) == {"mug"}  # A read its own copy again: unchanged


async def test_restock_reload_reaches_a_running_worker(
    tmp_path: Path, database: str, backend: str, shop: DemoShop
) -> None:
    a_file, b_file = two_copies(tmp_path, database, shop)
    poll = NEVER if backend == "postgresql" else QUICK
    async with running(b_file, poll) as b:
        rewrite_quietly(b_file, watchlist_text(database, shop, ["mug", "cup"]))
        assert await asyncio.to_thread(main, ["reload", "--config", str(a_file)]) == 0
        await eventually(lambda: keys(b) == {"mug", "cup"}, timeout=20, what="B's reload")
        assert b.reloads_seen == 1


async def test_a_broken_copy_keeps_its_worker_running_as_it_was(
    tmp_path: Path, database: str, shop: DemoShop, caplog: pytest.LogCaptureFixture
) -> None:
    a_file, b_file = two_copies(tmp_path, database, shop)
    async with running(b_file, QUICK) as b:
        rewrite_quietly(b_file, "watches: [unclosed\n")
        assert await asyncio.to_thread(main, ["reload", "--config", str(a_file)]) == 0
        await eventually(lambda: b.reloads_seen == 1, timeout=20, what="B seeing the reload")
        await eventually(
            lambda: "not reloaded, keeping the running one" in caplog.text,
            timeout=20,
            what="B refusing its broken copy",
        )
        assert keys(b) == {"mug"}


# --- the command line ------------------------------------------------------------------------


def test_restock_reload_moves_the_counter_on(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        f"settings: {{database: '{database}'}}\nwatches:\n"
        "  - {name: mug, url: 'https://example.com/mug', notify: {console: true}}\n",
        encoding="utf-8",
    )
    asyncio.run(_create(database))
    assert main(["reload", "--config", str(watchlist)]) == 0
    assert main(["reload", "-c", str(watchlist)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "reload asked of every worker on the database (reload 1)",
        "reload asked of every worker on the database (reload 2)",
    ]
    assert asyncio.run(_count(database)) == 2


# SQLite only: a file is the one database `restock reload` could create by mistake.
def test_restock_reload_without_a_database_says_so_and_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(
        "settings: {database: never-run.sqlite3}\nwatches:\n"
        "  - {name: mug, url: 'https://example.com/mug', notify: {console: true}}\n",
        encoding="utf-8",
    )
    assert main(["reload", "--config", str(watchlist)]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "never-run.sqlite3").exists()
    assert main(["reload", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


async def _create(database: str) -> None:
    await (await open_repository(database)).close()


async def _count(database: str) -> int:
    repo = await open_repository(database)
    try:
        return await repo.reload_count()
    finally:
        await repo.close()


# --- SIGHUP ----------------------------------------------------------------------------------


async def start_watcher(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTOCK_")}
    env["PYTHONPATH"] = str(ROOT)
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watcher", "run", "--config", str(config),
            cwd=ROOT, env=env, stdout=out, stderr=out,
        )  # fmt: skip


async def stored_reloads(database: str) -> int:
    counter = await dbrows.scalar(database, "SELECT counter FROM reloads WHERE id = 1")
    return 0 if counter is None else int(counter)


async def active_watches(database: str) -> set[str]:
    rows = await dbrows.fetch(database, "SELECT key FROM watches WHERE active")
    return {row["key"] for row in rows}


async def watching(database: str, keys: set[str]) -> bool:
    return await active_watches(database) == keys


async def when(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    await eventually(condition, timeout=30, what=what)


async def test_sighup_reloads_the_watchlist_and_tells_the_other_workers(
    tmp_path: Path, database: str, shop: DemoShop
) -> None:
    watchlist = tmp_path / "w.yaml"
    watchlist.write_text(watchlist_text(database, shop, ["mug"]), encoding="utf-8")
    log = tmp_path / "run.log"
    process = await start_watcher(watchlist, log)
    try:
        await when(lambda: "running 1 watches" in log.read_text(), "the run's start")
        assert await active_watches(database) == {"mug"}
        rewrite_quietly(watchlist, watchlist_text(database, shop, ["mug", "cup"]))
        process.send_signal(signal.SIGHUP)
        await when(lambda: watching(database, {"mug", "cup"}), "the reload")
        assert await stored_reloads(database) == 1  # the other workers were told
        assert process.returncode is None  # SIGHUP does not stop it
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
