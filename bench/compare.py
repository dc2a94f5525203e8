"""restock beside a bare GET loop and urlwatch, on one simulated shop, in one run.

Absolute checks per second differ from machine to machine; ratios measured in one run on the same
pages do not. So one shop (in its own process: ~100 KB product pages with a JSON-LD offer) is
served once, and three clients take turns on the same pages:

1. **bare**: an asyncio GET loop over every product page (aiohttp, 64 in flight), reading each
   body and nothing else: no parsing, no database. The physical limit.
2. **urlwatch**: installed into a throw-away virtual environment (`pip install urlwatch==2.29`;
   skipped with a message when it cannot be installed), one job per product with a CSS filter on
   the JSON-LD block, its default threads; the first pass records snapshots, the second is measured.
3. **restock**: `restock run --config FILE` as a user runs it (a watchlist with one watch per
   product, the defaults apart from the host's limits), counted through its /metrics. Its watches
   ask for a check every second, so `--products` caps its rate at that many checks/s: the default
   (10,000) lies well above what either peer reaches on two cores, so the cap never sets the pace.

Page modes: "unchanged" serves each page identically every time; "changed" ends every page with a
per-request token, so every client sees new content on every fetch.

Prints each client's checks/s and CPU seconds per 1,000 checks (its own process and children)
and the ratios restock/urlwatch and restock/bare, and restock's CPU per check as a multiple of the
bare loop's. Targets: restock >= 7x urlwatch and >= 50 % of bare, in both modes. What bounds
restock is printed from the same run, in units of the bare loop's whole check (its CPU per
check): restock's CPU per check by part (the event loop, its other threads, the fetching
workers); at each target's rate, the most CPU a check may take (the machine's cores, less the
shop's own CPU per page measured beside the bare loop, shared by that many checks a second);
and with pages changing, the CPU of reading one page alone (in this process, after the clients,
idle: a floor) and the share of bare and multiple of urlwatch that checks that were only their
reading could reach.
Asserts nothing.

Run from the project root: `python bench/compare.py [--products 10000] [--seconds 20]
[--pages both] [--rounds 1] [--no-urlwatch]`. A machine's load moves the checks/s ratios from run
to run; `--rounds 3` runs the three clients three times per mode, one after another, and prints
each ratio's median and range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
URLWATCH = "urlwatch==2.29"
PAGE_KB = 100
MODES = ("unchanged", "changed")


@dataclass(frozen=True)
class Figures:
    client: str
    checks: int
    seconds: float
    cpu_seconds: float
    # restock's CPU seconds by part (event loop, database thread, workers), when measured
    parts: tuple[tuple[str, float], ...] = ()
    # the shop's own CPU seconds over the same span, when measured (the bare loop's run)
    shop_cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.checks / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.cpu_seconds / self.checks if self.checks else float("nan")


# --- the shop --------------------------------------------------------------------------------


def product_page(index: int, padding: int, token: str) -> bytes:
    """A product page: JSON-LD offer (out of stock), visible wording, padding up to the size."""
    ld = json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": f"商品 {index}",
            "sku": f"p{index}",
            "offers": {
                "@type": "Offer",
                "price": str(1000 + index),
                "priceCurrency": "JPY",
                "availability": "https://schema.org/OutOfStock",
            },
        },
        ensure_ascii=False,
    )
    filler = "<p>" + ("商品の説明です。" * 16) + "</p>\n"
    body = [
        "<!doctype html><html lang=ja><head><meta charset=utf-8>",
        f"<title>商品 {index}</title>",
        f'<script type="application/ld+json">{ld}</script></head><body>',
        f'<h1 id="title">商品 {index}</h1><div id="stock">在庫切れ</div>',
    ]
    size = sum(len(part.encode()) for part in body)
    chunk = len(filler.encode())
    body.extend(filler for _ in range(max(0, (padding - size) // chunk)))
    body.append(f"<!-- {token} --></body></html>")
    return "".join(body).encode()


def serve_shop(products: int, changed: bool, pipe: Connection) -> None:
    """The shop's process: aiohttp on 127.0.0.1, port sent through `pipe`, serves until killed."""
    from aiohttp import web

    pages = [product_page(i, PAGE_KB * 1024, "") for i in range(products)]
    served = [0]

    async def item(request: web.Request) -> web.Response:
        index = int(request.match_info["index"])
        if not 0 <= index < products:
            raise web.HTTPNotFound()
        served[0] += 1
        body = pages[index]
        if changed:
            body = body + f"<!-- {served[0]} -->".encode()
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/items/p{index}", item)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        pipe.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def start_shop(products: int, changed: bool) -> tuple[multiprocessing.Process, int]:
    ours, theirs = multiprocessing.Pipe()
    shop = multiprocessing.Process(target=serve_shop, args=(products, changed, theirs), daemon=True)
    shop.start()
    return shop, int(ours.recv())


# --- measuring -------------------------------------------------------------------------------


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_parts(pid: int) -> dict[str, float]:
    """CPU seconds of `restock run` by part, from /proc: its main thread (the event loop), its
    other threads (SQLite's, the resolver's), and its children (the fetching workers)."""
    parts = {"event loop": 0.0, "other threads": 0.0, "workers": 0.0}
    for thread in _task_ids(pid):
        part = "event loop" if thread == pid else "other threads"
        parts[part] += _stat_cpu(f"/proc/{pid}/task/{thread}/stat")
    for child in child_pids(pid):
        parts["workers"] += _stat_cpu(f"/proc/{child}/stat")
    return parts


def _task_ids(pid: int) -> list[int]:
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _stat_cpu(path: str) -> float:
    """User + system CPU seconds from a /proc stat file; 0 for a process or thread gone."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


# --- client 1: the bare loop -----------------------------------------------------------------


async def bare_loop(
    port: int, products: int, in_flight: int, seconds: float, shop_pid: int | None = None
) -> Figures:
    """The bare loop's figures, with the shop's own CPU over the measured span (from /proc)."""
    import aiohttp

    def shop_cpu() -> float:
        return _stat_cpu(f"/proc/{shop_pid}/stat") if shop_pid else 0.0

    urls = [f"http://127.0.0.1:{port}/items/p{i}" for i in range(products)]
    counted = [0]
    counting = [False]

    async def client(session: aiohttp.ClientSession, start: int) -> None:
        index = start
        while True:
            async with session.get(urls[index % products]) as response:
                await response.read()
            if counting[0]:
                counted[0] += 1
            index += in_flight

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(client(session, i)) for i in range(in_flight)]
        await asyncio.sleep(min(3.0, seconds / 4))  # connections open, caches warm
        counting[0] = True
        cpu, shop, start = own_cpu(), shop_cpu(), time.perf_counter()
        await asyncio.sleep(seconds)
        counting[0] = False
        elapsed, used, served = time.perf_counter() - start, own_cpu() - cpu, shop_cpu() - shop
        served_cpu = served if shop_pid else None
        figures = Figures("bare GET loop", counted[0], elapsed, used, shop_cpu_seconds=served_cpu)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return figures


# --- client 2: urlwatch ----------------------------------------------------------------------


def urlwatch_venv(base: Path) -> Path | None:
    """A throw-away virtual environment with urlwatch, or None (and why) when pip cannot."""
    venv = base / "urlwatch-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", URLWATCH, "cssselect", "lxml"],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        print(f"urlwatch: not installed ({pip.stderr.strip().splitlines()[-1:]}); skipped")
        return None
    return venv / "bin" / "urlwatch"


def urlwatch_pass(
    binary: Path, base: Path, port: int, products: int, recorded: bool
) -> Figures | None:
    urls = base / "urls.yaml"
    if not urls.exists():
        jobs = (
            f"name: p{i}\nurl: http://127.0.0.1:{port}/items/p{i}\n"
            "filter:\n  - css: 'script[type=\"application/ld+json\"]'\n"
            for i in range(products)
        )
        urls.write_text("---\n".join(jobs))
    command = [
        str(binary),
        "--urls",
        str(urls),
        "--config",
        str(base / "urlwatch.yaml"),
        "--hooks",
        str(base / "hooks.py"),
        "--cache",
        str(base / "cache.db"),
    ]
    env = {**os.environ, "HOME": str(base), "XDG_CONFIG_HOME": str(base)}
    cpu, start = children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed, used = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode != 0:
        print(f"urlwatch: exit {done.returncode}: {done.stderr.strip()[-400:]}")
        return None
    label = "urlwatch (2nd pass)" if recorded else "urlwatch (1st pass)"
    return Figures(label, products, elapsed, used)


def run_urlwatch(binary: Path, port: int, products: int) -> Figures | None:
    with tempfile.TemporaryDirectory(prefix="urlwatch-") as folder:
        base = Path(folder)
        (base / "hooks.py").write_text("")
        if urlwatch_pass(binary, base, port, products, recorded=False) is None:
            return None
        return urlwatch_pass(binary, base, port, products, recorded=True)


# --- client 3: restock run -------------------------------------------------------------------


def restock_watchlist(database: Path, port: int, products: int, listen_port: int) -> str:
    head = f"""settings:
  database: {database}
  default_interval: 1s
  hot_windows: []
  server:
    listen: 127.0.0.1:{listen_port}
  politeness:
    hosts:
      127.0.0.1: {{concurrency: 1000, min_delay: 0s, min_interval: 0s}}
notifiers:
  console: {{}}
watches:
"""
    watches = (
        f"  - {{name: p{i}, url: '{url}', notify: {{console: true}}}}\n"
        for i in range(products)
        if (url := f"http://127.0.0.1:{port}/items/p{i}")
    )
    return head + "".join(watches)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CHECKS = re.compile(r"^restock_checks_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def checks_so_far(listen_port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{listen_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    return int(sum(float(value) for value in CHECKS.findall(text)))


def wait_for_checks(listen_port: int, at_least: int, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        seen = checks_so_far(listen_port)
        if seen is not None and seen >= at_least:
            return seen
        time.sleep(0.2)
    return None


def run_restock(port: int, products: int, seconds: float) -> Figures | None:
    with tempfile.TemporaryDirectory(prefix="restock-") as folder:
        base = Path(folder)
        listen_port = free_port()
        config = base / "watchlist.yaml"
        config.write_text(restock_watchlist(base / "restock.sqlite3", port, products, listen_port))
        command = [sys.executable, "-m", "watcher", "run", "--config", str(config)]
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            # Warm-up: every product's first check (nothing to compare with yet) is not measured.
            if wait_for_checks(listen_port, products, time.monotonic() + 300) is None:
                print("restock: did not finish its first round in 300 s; skipped")
                return None
            first, before, start = (
                checks_so_far(listen_port),
                cpu_parts(process.pid),
                time.perf_counter(),
            )
            time.sleep(seconds)
            last, after = checks_so_far(listen_port), cpu_parts(process.pid)
            elapsed = time.perf_counter() - start
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if first is None or last is None:
            return None
        parts = tuple((name, after[name] - before[name]) for name in after)
        return Figures("restock run", last - first, elapsed, sum(u for _, u in parts), parts)


# --- what bounds restock: its reading alone ----------------------------------------------------


def reading_seconds(reads: int = 200) -> float:
    """CPU seconds restock's reading takes for one changed page of this shop, in this process
    (the median of `reads` readings, each of a page with its own token, as the workers get them):
    what a check of a changed page costs before any fetch, database write or hand-off."""
    sys.path.insert(0, str(ROOT))
    from watcher.core.model import Page
    from watcher.net.fetch import RawPage
    from watcher.reading.pool import read_all

    html = "text/html; charset=utf-8"
    head = Page(url="http://127.0.0.1/items/p7", status=200, content_type=html)
    page = product_page(7, PAGE_KB * 1024, "")
    times = []
    for number in range(reads):
        raw = RawPage(head, page + f"<!-- {number} -->".encode())
        started = time.thread_time()
        read_all(raw, None, (None,))
        times.append(time.thread_time() - started)
    return median(times)


# --- the run ---------------------------------------------------------------------------------


def one_mode(
    args: argparse.Namespace, mode: str, urlwatch: Path | None
) -> tuple[list[Figures], float | None]:
    """Each client's figures, and (pages changed) the CPU seconds of reading one page."""
    shop, port = start_shop(args.products, changed=mode == "changed")
    try:
        bare = bare_loop(port, args.products, args.in_flight, args.seconds, shop.pid)
        figures = [asyncio.run(bare)]
        if urlwatch is not None and (watched := run_urlwatch(urlwatch, port, args.products)):
            figures.append(watched)
        if ours := run_restock(port, args.products, args.seconds):
            figures.append(ours)
    finally:
        shop.terminate()
        shop.join()
    return figures, reading_seconds() if mode == "changed" else None


def report(
    mode: str, figures: list[Figures], reading: float | None = None, heading: str = ""
) -> dict[str, float]:
    """Print one round's figures, ratios and what bounds restock; the ratios, by name."""
    print(f"\n== pages {mode} ({PAGE_KB} KB each){heading} ==")
    print(f"{'client':<22} {'checks':>8} {'seconds':>8} {'checks/s':>9} {'CPU s/1000':>11}")
    for f in figures:
        print(
            f"{f.client:<22} {f.checks:>8} {f.seconds:>8.1f} {f.rate:>9.0f} {f.cpu_per_1000:>11.2f}"
        )
    by_name = {f.client.split(" (")[0]: f for f in figures}
    ours = by_name.get("restock run")
    ratios: dict[str, float] = {}
    if ours is None:
        return ratios
    if (watched := by_name.get("urlwatch")) and watched.rate:
        ratios["urlwatch"] = ours.rate / watched.rate
        print(f"restock / urlwatch: {ratios['urlwatch']:.1f}x (target >= 7x)")
    if (bare := by_name.get("bare GET loop")) and bare.rate:
        ratios["bare"] = ours.rate / bare.rate
        ratios["cpu"] = ours.cpu_per_1000 / bare.cpu_per_1000
        print(f"restock / bare loop: {100 * ratios['bare']:.0f} % (target >= 50 %)")
        print(f"restock's CPU per check: {ratios['cpu']:.1f}x the bare loop's")
        bound(ours, bare, by_name.get("urlwatch"), reading, ratios)
    return ratios


def bound(
    ours: Figures,
    bare: Figures,
    watched: Figures | None,
    reading: float | None,
    ratios: dict[str, float],
) -> None:
    """What bounds restock, in units of the bare loop's whole check (its CPU per check):

    - restock's CPU per check by part;
    - at each target's rate, the CPU a check may take: this machine's cores, less the shop's own
      CPU per page served (measured beside the bare loop), shared by that many checks a second;
    - with pages changed, reading one page alone (measured idle, after the clients: a floor on
      what it costs under load) and the share of the bare loop checks that were only their
      reading could reach.
    """
    unit = bare.cpu_per_1000 / 1000
    shares = ", ".join(
        f"{name} {used / ours.checks / unit:.1f}" for name, used in ours.parts if used
    )
    spent = ours.cpu_per_1000 / 1000 / unit
    print(f"restock's CPU per check by part, in bare loop checks: {shares} (in all {spent:.1f})")
    cores = os.cpu_count() or 1
    shop = bare.shop_cpu_seconds / bare.checks if bare.shop_cpu_seconds and bare.checks else 0.0
    targets = [("half the bare loop's rate", 0.5 * bare.rate)]
    if watched and watched.rate:
        targets.append(("7x urlwatch's rate", 7 * watched.rate))
    for name, rate in targets:
        budget = (cores / rate - shop) / unit
        print(
            f"at {name} ({rate:.0f} checks/s), {cores} cores less the shop's share "
            f"({shop / unit:.1f} per page) leave a check at most {budget:.1f} bare loop checks"
        )
    if reading is None:
        return
    ratios["reading"] = reading / unit
    ceiling = cores / (reading + shop)
    print(
        f"reading one page alone (idle): {ratios['reading']:.1f} bare loop checks, "
        f"{100 * ratios['reading'] / spent:.0f} % of restock's check; checks that were only "
        f"their reading would reach at most {100 * ceiling / bare.rate:.0f} % of the bare loop"
        + (f", {ceiling / watched.rate:.1f}x urlwatch" if watched and watched.rate else "")
    )


def summarise(mode: str, rounds: list[dict[str, float]]) -> None:
    """The median of each ratio over the rounds, and its range."""
    print(f"\n== pages {mode}: {len(rounds)} rounds, median (range) ==")
    labels = {
        "urlwatch": ("restock / urlwatch", "{:.1f}x"),
        "bare": ("restock / bare loop", "{:.0%}"),
        "cpu": ("restock's CPU per check / bare loop's", "{:.1f}x"),
        "reading": ("reading one page alone / bare loop's check", "{:.1f}x"),
    }
    for key, (label, form) in labels.items():
        values = sorted(r[key] for r in rounds if key in r)
        if values:
            low, mid, high = (form.format(v) for v in (values[0], median(values), values[-1]))
            print(f"{label}: {mid} ({low}-{high})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--in-flight", type=int, default=64, help="the bare loop's concurrency")
    parser.add_argument("--pages", choices=[*MODES, "both"], default="both")
    parser.add_argument("--no-urlwatch", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of all three clients per mode (medians printed)"
    )
    args = parser.parse_args()
    modes = MODES if args.pages == "both" else (args.pages,)
    with tempfile.TemporaryDirectory(prefix="compare-") as folder:
        urlwatch = None if args.no_urlwatch else urlwatch_venv(Path(folder))
        for mode in modes:
            rounds = []
            for number in range(1, args.rounds + 1):
                heading = f", round {number} of {args.rounds}" if args.rounds > 1 else ""
                figures, reading = one_mode(args, mode, urlwatch)
                rounds.append(report(mode, figures, reading, heading))
            if args.rounds > 1:
                summarise(mode, rounds)


if __name__ == "__main__":
    main()
