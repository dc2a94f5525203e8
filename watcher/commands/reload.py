"""`restock reload --config FILE`: have every `restock run` worker on the watchlist's database read
its watchlist again.

It only moves the database's reload counter on: each running worker sees it move (at once on
PostgreSQL, at its next look on SQLite) and reloads its own watchlist file, as it does when the
file changes or it gets SIGHUP.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from watcher.errors import UsageError


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "reload",
        help="have every running worker read its watchlist again",
        description="Ask every `restock run` worker on the watchlist's database to read its "
        "watchlist again (each reads its own file; a broken one keeps running as it was).",
    )
    parser.add_argument(
        "--config", "-c", type=Path, required=True, help="the watchlist (names the database)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from watcher.config.load import load_config
    from watcher.storage.url import local_file

    try:
        database = load_config(args.config).settings.database
    except OSError as exc:
        raise UsageError(f"cannot read {args.config}: {exc.strerror or exc}") from exc
    path = local_file(database)
    if path is not None and not path.exists():
        raise UsageError(f"no database at {path}: no worker has run on it (`restock run`)")
    counter = asyncio.run(bump(database))
    print(f"reload asked of every worker on the database (reload {counter})")
    return 0


async def bump(database: str) -> int:
    from watcher.storage import open_repository

    repository = await open_repository(database)
    try:
        return await repository.bump_reloads()
    finally:
        await repository.close()
