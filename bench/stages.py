"""Where reading one page spends its CPU: the bounding pass, recognising the store, cutting
scripts, the HTML parse (and freeing the tree), block-page detection, reconciliation, and the
adapter's own reading (the rest). Prints microseconds of the reading thread's CPU per stage (the
median over the runs) for the synthetic pages of `bench/parse.py` and `bench/compare.py`, and
for every page of a folder of real saved pages (`--pages DIR`, with a `labels.json` naming each
page's store and the state a person reads on it). Asserts nothing.

Run from the project root: `python bench/stages.py [runs] [--pages DIR]`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare import product_page
from parse import big_product_page
from selectolax.lexbor import LexborHTMLParser

from watcher.core.model import Observation, Page
from watcher.net.decode import decode_body
from watcher.stores import (
    _blocked,
    amazon_jp,
    base_shop,
    generic,
    parse,
    rakuten,
    shopify,
    yahoo_shopping,
)

SHARED_PAGES = ROOT.parent / "shared" / "pages"  # beside the checkout, as the tests find them
# (stage, module, function name): each call's CPU is counted to its stage, less the CPU of the
# stages it calls (a block check that parses a small page counts that parse as "parse").
_TIMED: tuple[tuple[str, Any, str], ...] = (
    ("bounding", parse, "too_many_tags"),
    ("bounding", parse, "bounded_html"),
    ("recognise", parse, "adapter_for"),
    ("cut code", generic, "without_code"),
    ("block", _blocked, "detect_block"),
    ("block", generic, "detect_block"),
    ("reconcile", generic, "reconcile"),
    ("reconcile", rakuten, "reconcile"),
)
_PARSER_USERS = (_blocked, generic, amazon_jp, rakuten, yahoo_shopping, base_shop, shopify)
STAGES = ("bounding", "recognise", "cut code", "parse", "free", "block", "reconcile", "reader")


class Stages:
    """CPU nanoseconds per stage of one reading, each stage less the stages it calls."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = defaultdict(int)
        self._inner: list[int] = []

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._inner.append(0)
            start = time.thread_time_ns()
            try:
                return function(*args, **kwargs)
            finally:
                took = time.thread_time_ns() - start
                inner = self._inner.pop()
                self.spent[stage] += took - inner
                if self._inner:
                    self._inner[-1] += took

        return timed


@contextmanager
def instrumented(stages: Stages) -> Iterator[None]:
    saved: list[tuple[Any, str, Any]] = []
    for stage, module, name in _TIMED:
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, stages.wrap(stage, getattr(module, name)))
    for module in _PARSER_USERS:
        saved.append((module, "LexborHTMLParser", module.LexborHTMLParser))
        module.LexborHTMLParser = stages.wrap("parse", LexborHTMLParser)
    try:
        yield
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)


def free_cost(text: str) -> int:
    """CPU nanoseconds of freeing the parsed tree of `text`."""
    tree = LexborHTMLParser(text)
    start = time.thread_time_ns()
    del tree
    return time.thread_time_ns() - start


def one_reading(page: Page, store: str | None) -> tuple[dict[str, int], Observation]:
    stages = Stages()
    with instrumented(stages):
        start = time.thread_time_ns()
        observation = parse.parse_page(page, store=store, budget=float("inf"))
        total = time.thread_time_ns() - start
    spent = dict(stages.spent)
    parsed = page.text if observation.store != generic.NAME else generic.without_code(page.text)
    spent["free"] = free_cost(parsed)
    spent["reader"] = max(0, total - sum(spent.values()))
    spent["total"] = total
    return spent, observation


def measure(label: str, page: Page, store: str | None, runs: int, expected: str = "") -> None:
    samples: dict[str, list[int]] = defaultdict(list)
    observation = None
    for _ in range(runs):
        spent, observation = one_reading(page, store)
        for stage, ns in spent.items():
            samples[stage].append(ns)
    assert observation is not None
    cells = "".join(f"{statistics.median(samples.get(s, [0])) / 1000:10.0f}" for s in STAGES)
    total = statistics.median(samples["total"]) / 1000
    state = observation.state.value
    mark = "" if not expected or expected == state else f"  (labelled {expected})"
    size = len(page.text.encode("utf-8", "surrogatepass")) / 1e6
    print(f"{label[:44]:<44} {size:5.2f} {cells}{total:10.0f}  {state}{mark}", flush=True)


def header() -> None:
    names = "".join(f"{s:>10}" for s in STAGES)
    print(f"{'page':<44} {'MB':>5} {names}{'total':>10}  state")
    print("(µs of the reading thread's CPU, median per reading; free: the parsed tree's)")


def real_pages(folder: Path) -> Iterator[tuple[str, Page, str | None, str]]:
    labels_file = folder / "labels.json"
    labels: dict[str, dict[str, Any]] = (
        json.loads(labels_file.read_text()) if labels_file.exists() else {}
    )
    for path in sorted(folder.glob("*/*.html")):
        name = f"{path.parent.name}/{path.name}"
        label = labels.get(name, {})
        text, _encoding = decode_body(path.read_bytes(), "text/html")
        page = Page(url=f"https://shop.example/{name}", text=text, status=200)
        yield name, page, label.get("store"), label.get("state", "")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    folder = SHARED_PAGES
    if "--pages" in sys.argv:
        folder = Path(sys.argv[sys.argv.index("--pages") + 1])
        args = [a for a in args if a != str(folder)]
    runs = int(args[0]) if args else 15
    header()
    synthetic = big_product_page()
    measure(
        "synthetic 1 MB (bench/parse.py)",
        Page(url="https://shop.example/p", text=synthetic, status=200),
        "generic",
        runs,
    )
    shop = product_page(7, 100_000, "token").decode()
    measure(
        "100 KB shop page (bench/compare.py)",
        Page(url="https://shop.example/p/7", text=shop, status=200),
        None,
        runs * 10,
    )
    if not folder.is_dir():
        print(f"{folder}: no saved pages")
        return
    for name, page, store, expected in real_pages(folder):
        measure(name, page, store, runs, expected)


if __name__ == "__main__":
    main()
