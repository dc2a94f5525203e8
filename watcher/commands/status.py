"""`restock status` and `restock history WATCH`: what the database says about the watches."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from watcher.config.load import load_config
from watcher.errors import UsageError
from watcher.service.engine import STORE_ROW_PREFIX
from watcher.storage import open_repository
from watcher.storage.coordination import Coordinated
from watcher.storage.interface import HostState, Repository
from watcher.storage.url import local_file


def add_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="per watch: state, last and next check; outbox")
    _common(status)
    status.set_defaults(handler=run_status)
    history = sub.add_parser("history", help="a watch's recent observations and events")
    history.add_argument("watch", help="the watch's key (its name in lower case, dashes)")
    history.add_argument("--limit", type=int, default=20)
    _common(history)
    history.set_defaults(handler=run_history)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, help="the watchlist (to find the database)")
    parser.add_argument(
        "--database",
        help="a SQLite file or a database URL such as postgresql://host/db (instead of --config)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _database(args: argparse.Namespace) -> str:
    if args.database is not None:
        return str(args.database)
    if args.config is not None:
        try:
            return load_config(args.config).settings.database
        except OSError as exc:
            raise UsageError(f"cannot read {args.config}: {exc.strerror}") from exc
    return "restock.sqlite3"


async def _open(args: argparse.Namespace) -> Repository:
    database = _database(args)
    path = local_file(database)
    if path is not None and not path.exists():
        raise UsageError(f"no database at {path} (run `restock run` first, or pass --database)")
    return await open_repository(database)


def run_status(args: argparse.Namespace) -> int:
    report = asyncio.run(_status(args))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=_plain))
    else:
        print(_status_text(report))
    return 0


async def _status(args: argparse.Namespace) -> dict[str, Any]:
    repo = await _open(args)
    try:
        rows = await repo.host_states()
        return {
            "watches": [_plain(w) for w in await repo.watch_statuses()],
            "hosts": [_plain(h) for h in rows if not h.host.startswith(STORE_ROW_PREFIX)],
            "stores": [_store_health(h) for h in rows if h.host.startswith(STORE_ROW_PREFIX)],
            "outbox": await repo.outbox_depth(),
            "dead_letters": [_plain(d) for d in await repo.dead_letters(20)],
            "workers": await _workers(repo),
        }
    finally:
        await repo.close()


async def _workers(repo: Repository) -> list[dict[str, Any]] | None:
    """The live workers sharing a server database (None on SQLite, which has one process)."""
    if not isinstance(repo, Coordinated):
        return None
    return [_plain(w) for w in await repo.live_workers(datetime.now(UTC))]


def _store_health(row: HostState) -> dict[str, Any]:
    """A store's layout-drift row: how many pages in a row gave no signal, and the warning."""
    return {
        "store": row.host.removeprefix(STORE_ROW_PREFIX),
        "layout_misses": row.consecutive_blocks,
        "warning": row.last_reason,
    }


def _status_text(report: dict[str, Any]) -> str:
    lines = [f"{'watch':<28} {'state':<13} {'price':>9}  {'last check':<20} {'next check':<20}"]
    for w in report["watches"]:
        price = f"{w['last_price']:,}" if w["last_price"] is not None else "-"
        lines.append(
            f"{w['key'][:28]:<28} {w['last_state'] or '-':<13} {price:>9}  "
            f"{_short(w['last_checked_at']):<20} {_short(w['next_check_at']):<20}"
        )
    outbox = ", ".join(f"{k} {v}" for k, v in report["outbox"].items()) or "empty"
    lines.append(f"outbox: {outbox}")
    for host in report["hosts"]:
        if host["consecutive_blocks"] or host["backoff_until"]:
            lines.append(
                f"host {host['host']}: {host['consecutive_blocks']} blocks, backing off until "
                f"{_short(host['backoff_until'])} ({host['last_reason'] or '-'})"
            )
    for worker in report["workers"] or ():
        duties = ", ".join(worker["duties"]) or "no single-owner duty"
        lines.append(
            f"worker {worker['name']} (pid {worker['pid']} on {worker['host']}): {duties};"
            f" seen {_short(worker['seen_at'])}"
        )
    for store in report["stores"]:
        if store["warning"]:
            lines.append(f"store {store['store']}: {store['warning']}")
    for dead in report["dead_letters"]:
        lines.append(
            f"dead letter #{dead['id']} {dead['channel']}: {dead['status']} after "
            f"{dead['attempts']} tries: {dead['last_error'] or '-'}"
        )
    return "\n".join(lines)


def run_history(args: argparse.Namespace) -> int:
    history = asyncio.run(_history(args))
    if history is None:
        raise UsageError(f"no watch with key {args.watch!r} (see `restock status`)")
    if args.json:
        print(json.dumps(history, ensure_ascii=False, indent=2, default=_plain))
        return 0
    status: dict[str, Any] = history["status"]
    print(f"{status['name']} ({status['target']})")
    for obs in history["observations"]:
        price = f"{obs['price']:,}" if obs["price"] is not None else "-"
        print(f"  {_short(obs['at'])}  {obs['state']:<13} {price:>9}  {obs['reason']}")
    for event in history["events"]:
        print(f"  event {_short(event['observed_at'])}  {event['kind']}  {event['state']}")
    return 0


async def _history(args: argparse.Namespace) -> dict[str, Any] | None:
    repo = await _open(args)
    try:
        found = await repo.history(args.watch, limit=args.limit)
    finally:
        await repo.close()
    return None if found is None else _plain(found)


def _plain(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON-friendly values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _short(moment: Any) -> str:
    return str(moment)[:19].replace("T", " ") if moment else "-"
