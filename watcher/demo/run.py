"""`restock demo`: the real engine against a simulated shop on loopback, fully offline.

The shop's products go in and out of stock on a script: a real restock (and its sell-out), a
ghost-stock flap that must not fire, a captcha spell whose page even says 在庫あり, a 503 spell
followed by a restock, and a pre-order opening. Messages print as they happen; a summary ends it.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from notifiers.console import ConsoleNotifier
from watcher.config.load import Config, load_config
from watcher.demo.shop import DemoShop, ShopProduct, Shows, ghost_once, timeline
from watcher.net.politeness import Backoff
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage import open_repository

IN, OUT, PRE = Shows.IN_STOCK, Shows.OUT_OF_STOCK, Shows.PREORDER
CHANNELS_NOTE = (
    "Messages print here; in a watchlist the same alerts go to Telegram, LINE (Flex message,"
    " multicast), Discord (embeds), X, e-mail or a webhook (try `restock notify-test`)."
)


@dataclass(frozen=True, slots=True)
class DemoProduct:
    slug: str
    title: str
    price: int
    story: str
    script: Callable[[], Callable[[float, int], Shows]]
    buyable: tuple[str, ...] = ("in_stock",)


# Times are fractions of the demo's length, so a shorter run tells the same story.
def _products(length: float) -> list[DemoProduct]:
    t = length
    return [
        DemoProduct(
            "pokemon-151-box", "ポケモンカード 強化拡張パック 151 BOX", 5400,
            "restocks, then sells out again",
            lambda: timeline((0, OUT), (0.2 * t, IN), (0.6 * t, OUT)),
        ),
        DemoProduct(
            "switch-2", "Nintendo Switch 2（日本語・国内専用）", 49980,
            "ghost stock: one stale in-stock page, never confirmed",
            lambda: ghost_once(after=0.15 * t),
        ),
        DemoProduct(
            "figure-limited", "限定フィギュア 1/7 スケール", 19800,
            "a captcha spell (the captcha page even says 在庫あり)",
            lambda: timeline((0, OUT), (0.25 * t, Shows.CAPTCHA), (0.4 * t, OUT)),
        ),
        DemoProduct(
            "earbuds", "ワイヤレスイヤホン 限定カラー", 12800,
            "the shop answers 503 for a while, then restocks",
            lambda: timeline((0, OUT), (0.3 * t, Shows.UNAVAILABLE), (0.45 * t, IN)),
        ),
        DemoProduct(
            "game-preorder", "新作ゲームソフト 初回限定版", 8580,
            "pre-orders open",
            lambda: timeline((0, OUT), (0.35 * t, PRE)),
            buyable=("in_stock", "preorder"),
        ),
    ]  # fmt: skip


def watchlist_yaml(
    shop: DemoShop, products: list[DemoProduct], database: Path, web_port: int | None = None
) -> str:
    """The demo's watchlist: an ordinary watchlist with limits lifted for the loopback shop."""
    server = [f"  server: {{listen: 127.0.0.1:{web_port}, web: true}}"] if web_port else []
    lines = [
        "settings:",
        f"  database: {database}",
        "  default_interval: 1s",
        "  hot_windows: []",
        "  debounce: {confirm: 2, rearm: 2, cooldown: 5s}",
        "  politeness:",
        "    hosts:",
        "      127.0.0.1: {concurrency: 8, min_delay: 0s, min_interval: 0s}",
        *server,
        "notifiers:",
        "  console: {}",
        "watches:",
    ]
    for product in products:
        lines += [
            f"  - name: {product.slug}",
            f"    url: {shop.url(product.slug)}",
            f"    buyable: [{', '.join(product.buyable)}]",
            "    notify: {console: true}",
        ]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    """A loopback port nothing listens on right now (for the demo's web UI)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run_demo(
    seconds: float = 45.0, out: TextIO | None = None, web_port: int | None = None
) -> dict[str, int]:
    """Run the demo for `seconds`; print messages and a summary; return the summary figures.

    With `web_port`, the web UI runs on that loopback port meanwhile.
    """
    products = _products(seconds)
    shop = DemoShop()
    for product in products:
        shop.add(ShopProduct(product.slug, product.title, product.price, product.script()))
    with tempfile.TemporaryDirectory(prefix="restock-demo-") as folder:
        async with shop:
            path = Path(folder) / "demo.yaml"
            database = Path(folder) / "demo.sqlite3"
            path.write_text(watchlist_yaml(shop, products, database, web_port))
            config = load_config(path)
            _print_intro(products, seconds, out, web_port)
            summary = await _run(config, seconds, out)
    _print_summary(summary, out)
    return summary


async def _run(config: Config, seconds: float, out: TextIO | None) -> dict[str, int]:
    stop = asyncio.Event()
    overrides = Overrides(
        notifiers={"console": ConsoleNotifier(stream=out)},
        stop=stop,
        host_backoff=Backoff(base=2.0, cap=8.0),
        error_backoff=timedelta(seconds=2),
        # Re-check a first in-stock sighting within a second, so a short demo tells it all.
        recheck_delay=(timedelta(milliseconds=300), timedelta(milliseconds=800)),
        idle_poll=0.1,
    )
    repository = await open_repository(config.settings.database)
    try:
        app = App(config, repository, overrides)
        await app.sync_watches(config)
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, stop.set)
        await app.run(stop)
        depth = await repository.outbox_depth()
        counters = app.engine.counters
        return {
            "checks": counters.checks,
            "events": counters.events,
            "flaps_suppressed": counters.flaps_suppressed,
            "blocks_survived": counters.blocked,
            "unknown": counters.unknown,
            "messages_sent": depth.get("sent", 0),
            "messages_pending": depth.get("pending", 0),
        }
    finally:
        await repository.close()


def _print_intro(
    products: list[DemoProduct], seconds: float, out: TextIO | None, web_port: int | None
) -> None:
    print(f"restock demo: watching a simulated shop for {seconds:.0f} s (offline)", file=out)
    for product in products:
        print(f"  - {product.title}: {product.story}", file=out)
    print(CHANNELS_NOTE, file=out)
    if web_port:
        print(f"web UI: http://127.0.0.1:{web_port}/ (open it in a browser)", file=out)
    print(file=out, flush=True)


def _print_summary(summary: dict[str, int], out: TextIO | None) -> None:
    print("demo summary:", file=out)
    for name, value in summary.items():
        print(f"  {name.replace('_', ' ')}: {value}", file=out)
