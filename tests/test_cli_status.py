"""`restock status` and `restock history` on a real database, and their usage errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config.load import load_config
from watcher.core.model import Availability, Event, EventKind, Observation
from watcher.storage import open_repository
from watcher.storage.interface import CheckOutcome, WatchDecision

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def make_database(tmp_path: Path, database: str) -> Path:
    """A watchlist with one watch on `database`, synced, checked once and restocked once."""
    path = tmp_path / "w.yaml"
    path.write_text(
        f"settings:\n  database: '{database}'\n"
        "watches:\n  - {name: Switch 2, url: 'https://www.amazon.co.jp/dp/B0DX000000'}\n",
        encoding="utf-8",
    )
    config = load_config(path)

    async def fill() -> None:
        repo = await open_repository(config.settings.database)
        try:
            await repo.sync_yaml_watches(config.watches, NOW)
            [product] = await repo.claim_due_products("w", NOW, 10, timedelta(minutes=1))
            [stored] = await repo.load_watches(product.id)
            event = Event(
                EventKind.RESTOCK, stored.watch.key, "Switch 2", Availability.IN_STOCK, NOW
            )
            observation = Observation(Availability.IN_STOCK, "jsonld:InStock", price=49980)
            decision = WatchDecision(stored.id, {"phase": "buyable"}, [event])
            outcome = CheckOutcome(next_due_at=NOW + timedelta(minutes=5))
            await repo.record_check(product.id, observation, [decision], outcome, NOW)
        finally:
            await repo.close()

    asyncio.run(fill())
    return path


@pytest.mark.parametrize("given", ["--config", "--database"])
def test_status_lists_the_watch_and_the_outbox(
    tmp_path: Path, database: str, given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_database(tmp_path, database)
    where = [given, str(config) if given == "--config" else database]
    assert main(["status", *where]) == 0
    out = capsys.readouterr().out
    assert "switch-2" in out and "in_stock" in out and "49,980" in out
    assert "outbox: pending 1" in out

    assert main(["status", *where, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["watches"][0]["key"] == "switch-2"
    assert report["outbox"]["pending"] == 1


def test_history_shows_observations_and_events(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_database(tmp_path, database)
    assert main(["history", "switch-2", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "jsonld:InStock" in out and "restock" in out
    assert main(["history", "switch-2", "--database", database]) == 0
    assert capsys.readouterr().out == out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "--config", "/nonexistent/w.yaml"], "cannot read"),
        (["status", "--database", "/nonexistent/db.sqlite3"], "no database"),
        (["history", "switch-2", "--database", "/nonexistent/db.sqlite3"], "no database"),
        (["status", "--database", "sqlite:////nonexistent/db.sqlite3"], "no database"),
        (["status", "--database", "mysql://127.0.0.1/restock"], "unsupported database URL"),
        (["status", "--database", "postgresql://postgres@127.0.0.1:1/x"], "cannot open database"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_history_of_an_unknown_watch(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_database(tmp_path, database)
    assert main(["history", "nope", "--config", str(config)]) == 2
    assert "no watch with key 'nope'" in capsys.readouterr().err


def test_status_and_history_show_an_open_lottery_with_its_deadline(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        f"settings:\n  database: '{database}'\n"
        "watches:\n  - name: Switch 2\n    url: 'https://shop.example/switch2'\n"
        "    events: [restock, lottery_open]\n",
        encoding="utf-8",
    )
    config = load_config(path)
    jst = timezone(timedelta(hours=9))
    deadline = datetime(2026, 11, 30, 23, 59, tzinfo=jst)

    async def fill() -> None:
        repo = await open_repository(config.settings.database)
        try:
            await repo.sync_yaml_watches(config.watches, NOW)
            [product] = await repo.claim_due_products("w", NOW, 10, timedelta(minutes=1))
            [stored] = await repo.load_watches(product.id)
            assert EventKind.LOTTERY_OPEN in stored.watch.conditions.events
            event = Event(
                EventKind.LOTTERY_OPEN,
                stored.watch.key,
                "Switch 2",
                Availability.LOTTERY,
                NOW,
                lottery_deadline=deadline,
            )
            observation = Observation(
                Availability.LOTTERY, "text:抽選受付中", lottery_deadline=deadline
            )
            decision = WatchDecision(stored.id, {"phase": "armed"}, [event])
            outcome = CheckOutcome(next_due_at=NOW + timedelta(minutes=5))
            await repo.record_check(product.id, observation, [decision], outcome, NOW)
        finally:
            await repo.close()

    asyncio.run(fill())
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "lottery" in out
    assert "lottery open (抽選受付中), apply by 2026-11-30 23:59 +09:00" in out

    assert main(["status", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [watch] = report["watches"]
    assert watch["last_state"] == "lottery"
    assert watch["last_events"][0]["kind"] == "lottery_open"
    assert watch["last_events"][0]["lottery_deadline"] == "2026-11-30T23:59:00+09:00"

    assert main(["history", "switch-2", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "lottery_open  lottery  apply by 2026-11-30 23:59 +09:00" in out
