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
    parser.add_argument(
        "--web",
        type=int,
        default=0,
        metavar="PORT",
        help="serve the web UI on 127.0.0.1:PORT to watch the demo in a browser"
        " (default: a free port, printed at start)",
    )
    parser.add_argument(
        "--no-web", action="store_true", help="run without the web UI (console messages only)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.seconds < 5:
        from watcher.errors import UsageError

        raise UsageError("--seconds must be at least 5")
    if not 0 <= args.web < 65536:
        from watcher.errors import UsageError

        raise UsageError("--web takes a port between 1 and 65535 (0: a free one)")
    from watcher.demo.run import free_port, run_demo

    web_port = None if args.no_web else args.web or free_port()
    asyncio.run(run_demo(args.seconds, web_port=web_port))
    return 0
