"""The `restock` command: argument parsing and exit codes only; each command lives in its module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from watcher import __version__
from watcher.commands import COMMANDS
from watcher.errors import RestockError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser(commands: Sequence[ModuleType] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restock",
        description="Watch Japanese online shops for restocks and tell people fast.",
    )
    parser.add_argument("--version", action="version", version=f"restock-watcher {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in commands:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except RestockError as exc:
        print(f"restock: {exc}", file=sys.stderr)
        return EXIT_USAGE if getattr(exc, "usage", True) else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
