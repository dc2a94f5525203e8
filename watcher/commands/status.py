"""`restock status` and `restock history WATCH`: what the database says about the watches."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.errors import UsageError

if TYPE_CHECKING:
    from watcher.config.schema import LineNotifier
    from watcher.storage.interface import Repository


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
    from watcher.config.load import load_config

    if args.database is not None:
        return str(args.database)
    if args.config is not None:
        try:
            return load_config(args.config).settings.database
        except OSError as exc:
            raise UsageError(f"cannot read {args.config}: {exc.strerror}") from exc
    return "restock.sqlite3"


async def _open(args: argparse.Namespace) -> Repository:
    from watcher.storage import open_for_reading
    from watcher.storage.url import local_file

    database = _database(args)
    path = local_file(database)
    if path is not None and not path.exists():
        raise UsageError(f"no database at {path} (run `restock run` first, or pass --database)")
    return await open_for_reading(database)


def run_status(args: argparse.Namespace) -> int:
    import asyncio

    from watcher.web.status import status_report, status_text

    async def report() -> dict[str, Any]:
        repo = await _open(args)
        try:
            found = await status_report(repo)
        finally:
            await repo.close()
        line = _line_section(args)
        if line is not None:
            found["line_quota"] = await line_quota(line)
        return found

    found = asyncio.run(report())
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else status_text(found))
    return 0


def _line_section(args: argparse.Namespace) -> LineNotifier | None:
    """The watchlist's `notifiers.line`, when `--config` names a watchlist that has one."""
    from watcher.config.load import load_config

    if args.config is None:
        return None
    try:
        return load_config(args.config).notifiers.line
    except OSError as exc:
        raise UsageError(f"cannot read {args.config}: {exc.strerror}") from exc


async def line_quota(line: LineNotifier) -> dict[str, Any]:
    """This month's LINE message quota, read from the Messaging API (LINE is its authority)."""
    from notifiers.line_api import Answer, LineApi
    from watcher.clock import SystemClock

    api = LineApi(
        token=line.channel_access_token.reveal(),
        clock=SystemClock(),
        base_url=line.api_base_url,
        timeout=5.0,
    )
    try:
        read = await api.quota()
    finally:
        await api.aclose()
    if isinstance(read, Answer):
        return {"error": f"not read ({read.status or '-'} {read.message})".strip()}
    return {"limit": read.limit, "used": read.used, "left": read.left}


def run_history(args: argparse.Namespace) -> int:
    import asyncio

    from watcher.web.status import short_time, with_offset

    history = asyncio.run(_history(args))
    if history is None:
        raise UsageError(f"no watch with key {args.watch!r} (see `restock status`)")
    if args.json:
        print(json.dumps(history, ensure_ascii=False, indent=2))
        return 0
    status: dict[str, Any] = history["status"]
    print(f"{status['name']} ({status['target']})")
    print(f"  last checked {short_time(status['last_checked_at'])}")
    for obs in history["observations"]:
        price = f"{obs['price']:,}" if obs["price"] is not None else "-"
        # Checks that read the same after it record no observation of their own.
        again = f"  (read the same {obs['repeats']} more times)" if obs["repeats"] else ""
        print(f"  {short_time(obs['at'])}  {obs['state']:<13} {price:>9}  {obs['reason']}{again}")
    for event in history["events"]:
        deadline = event.get("lottery_deadline")
        until = f"  apply by {with_offset(deadline)}" if deadline else ""
        when = short_time(event["observed_at"])
        print(f"  event {when}  {event['kind']}  {event['state']}{until}")
    return 0


async def _history(args: argparse.Namespace) -> dict[str, Any] | None:
    from watcher.web.status import history_report

    repo = await _open(args)
    try:
        return await history_report(repo, args.watch, limit=args.limit)
    finally:
        await repo.close()
