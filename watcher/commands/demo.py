"""`restock demo`: the offline demo (a simulated shop on loopback, the real engine)."""

from __future__ import annotations

import argparse
import logging
from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the offline demo: a simulated shop, the real engine, console messages",
        description="Watch a simulated shop on loopback with the real engine: a restock, ghost "
        "stock, a captcha spell and a 503 spell. No network, no tokens; ends by itself.",
    )
    parser.add_argument(
        "--seconds", type=float, default=45.0, help="how long the demo runs (default 45)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.seconds < 5:
        from watcher.errors import UsageError

        raise UsageError("--seconds must be at least 5")
    from watcher.demo.run import run_demo

    asyncio.run(run_demo(args.seconds))
    return 0
