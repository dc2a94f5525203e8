"""`restock schema`: print the watchlist's JSON Schema (for editors' completion and checks)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the watchlist format",
        description="Print the JSON Schema of the watchlist format "
        "(regenerate the committed one with: restock schema > watchlists/schema.json).",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(render())
    return 0


def render() -> str:
    """The schema as committed in watchlists/schema.json."""
    from watcher.config.schema import json_schema

    return json.dumps(json_schema(), indent=2, ensure_ascii=False)
