"""`restock run --config FILE`: run everything the watchlist configures until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from watcher.errors import UsageError


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="watch everything in a watchlist until stopped (SIGINT/SIGTERM)",
        description="Poll the watchlist's products, detect restocks and send notifications "
        "until SIGINT or SIGTERM; the watchlist is reloaded when the file changes.",
    )
    parser.add_argument("--config", "-c", type=Path, required=True, help="the watchlist YAML")
    parser.set_defaults(handler=run)


def configure_logging(verbose: int) -> None:
    from watcher import logredact, logrepeat

    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logredact.install()  # every record, from any library, is masked as it is made
    # A lasting fault (a full disk) must not write the same traceback many times a second.
    logrepeat.install(logging.getLogger().handlers)
    # HTTP client loggers print request URLs, and the Telegram token is part of them.
    for name in ("httpx", "httpcore", "telegram", "apscheduler"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def run(args: argparse.Namespace) -> int:
    import asyncio

    from watcher import logredact
    from watcher.config.load import load_config
    from watcher.service.app import run_config
    from watcher.service.runtime import tune_gc

    configure_logging(max(args.verbose, 1))
    try:
        config = load_config(args.config)
    except OSError as exc:
        raise UsageError(f"cannot read {args.config}: {exc.strerror}") from exc
    logredact.MASKED.set("watchlist", logredact.config_secrets(config))
    for warning in config.warnings:
        logging.getLogger("restock.config").warning("%s", warning)
    tune_gc()
    return asyncio.run(run_config(config))
