"""`restock validate FILE`: check a watchlist and say what is wrong, line by line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watcher.config.load import Config

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a watchlist file",
        description="Check a watchlist file; print every problem as file:line: path: reason.",
    )
    parser.add_argument("file", metavar="FILE", help="the watchlist YAML file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from watcher.config.load import load_config
    from watcher.errors import ConfigError

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(summary(args.file, config))
    return EXIT_OK


def summary(filename: str, config: Config) -> str:
    count = len(config.watches)
    noun = "watch" if count == 1 else "watches"
    return f"{filename}: ok ({count} {noun}, channels: {', '.join(config.channels)})"
