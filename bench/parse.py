"""How long reading one page takes: a ~1 MB generic product page, then each adapter's largest
saved page. Prints median and p90 in microseconds; asserts nothing (target: median under 10 ms).
Then every hostile page shape of `tests/hostile_pages.py` at 1 MB and 5 MB (the fetch cap),
through every adapter: milliseconds of one reading (wall and the thread's CPU, which a busy
machine does not inflate), and its verdict (target: under 1 s of CPU each).

Run from the project root: `python bench/parse.py [runs] [--hostile-only] [--shapes a,b]`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hostile_pages import SHAPES

from watcher.core.model import Page
from watcher.stores.parse import parse_page
from watcher.stores.registry import ADAPTERS

PAGES = ROOT / "tests" / "fixtures" / "pages"
TARGET_US = 10_000
HOSTILE_TARGET_MS = 1_000
HOSTILE_SIZES = (1_000_000, 5_000_000)


def big_product_page(size: int = 1_000_000) -> str:
    """A product page of about `size` bytes, shaped like real shop pages: the product's JSON-LD
    on top, about 40 % inline scripts (state blobs, trackers), and navigation, reviews and a
    recommendation block for the rest."""
    head = (
        "<html><head><title>木製ブロック | 森のおもちゃ店</title>"
        '<script type="application/ld+json">{"@context":"https://schema.org","@type":"Product",'
        '"name":"木製ブロック","offers":{"@type":"Offer","price":"4980","priceCurrency":"JPY",'
        '"availability":"https://schema.org/InStock"}}</script>'
        '<meta property="og:type" content="product"></head><body><h1>木製ブロック</h1>'
        '<p class="price">4,980円</p><p class="stock">在庫あり</p>'
        '<form action="/cart/add"><button>カートに入れる</button></form>'
    )
    blob = '{"k":"在庫あり","v":[1,2,3],"t":"カートに入れる"},' * 40
    script = f"<script>window.__STATE__ = [{blob}{{}}];</script>"
    review = '<div class="review"><p>とても良い商品でした。子どもが毎日遊んでいます。</p></div>'
    recommend = (
        '<li class="item"><a href="/i/1">関連商品</a><span class="price">1,200円</span></li>'
    )
    markup = review * 4 + "<ul>" + recommend * 4 + "</ul>"
    parts = [head]
    total = len(head.encode())
    while total < size:
        chunk = script + markup + markup
        parts.append(chunk)
        total += len(chunk.encode())
    return "".join(parts) + "</body></html>"


def time_parse(page: Page, store: str, runs: int) -> tuple[float, float, str]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        obs = parse_page(page, store=store)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    return statistics.median(samples), p90, f"{obs.state.value} ({obs.reason})"


def largest_fixture(store: str) -> Path | None:
    pages = sorted((PAGES / store).glob("*.html"), key=lambda p: p.stat().st_size)
    return pages[-1] if pages else None


def report(label: str, size: int, page: Page, store: str, runs: int) -> None:
    median, p90, verdict = time_parse(page, store, runs)
    mark = "ok" if median < TARGET_US else "SLOW"
    print(
        f"{label:<48} {size / 1e6:6.2f} MB  median {median:9.0f} µs  p90 {p90:9.0f} µs"
        f"  {mark:<4}  {verdict}"
    )


def hostile(shapes: list[str]) -> None:
    """One reading per shape, size and adapter, without the parse budget (to show the cost)."""
    for name in shapes:
        for size in HOSTILE_SIZES:
            page = Page(url="https://shop.example/items/1", text=SHAPES[name](size))
            for store in sorted(ADAPTERS):
                start, cpu = time.perf_counter(), time.thread_time()
                obs = parse_page(page, store=store, budget=float("inf"))
                ms = (time.perf_counter() - start) * 1000
                cpu_ms = (time.thread_time() - cpu) * 1000
                mark = "ok" if cpu_ms < HOSTILE_TARGET_MS else "SLOW"
                print(
                    f"{name:<24} {size / 1e6:4.1f} MB  {store:<15} {ms:8.1f} ms"
                    f" ({cpu_ms:7.1f} ms CPU)  {mark:<4}  {obs.state.value} ({obs.reason[:40]})",
                    flush=True,
                )


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    shapes = list(SHAPES)
    if "--shapes" in sys.argv:
        shapes = sys.argv[sys.argv.index("--shapes") + 1].split(",")
        args = [a for a in args if a != ",".join(shapes)]
    if "--hostile-only" in sys.argv:
        hostile(shapes)
        return
    runs = int(args[0]) if args else 30
    text = big_product_page()
    report(
        "generic: synthetic product page",
        len(text.encode()),
        Page(url="https://shop.example/p", text=text),
        "generic",
        runs,
    )
    for store in sorted(ADAPTERS):
        path = largest_fixture(store)
        if path is None:
            print(f"{store:<48} no saved page")
            continue
        raw = path.read_bytes()
        page = Page(url=f"https://shop.example/{store}", text=raw.decode("utf-8", "replace"))
        report(f"{store}: {path.name}", len(raw), page, store, runs)
    hostile(shapes)


if __name__ == "__main__":
    main()
