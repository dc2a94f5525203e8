"""How long a watchlist takes to validate as it grows; prints figures, asserts nothing.

Two shapes per size: the usual block layout (one key a line) and the whole file on one line in
flow style. Validation must stay linear: the time per 1,000 watches should not grow with the
file. Target: 100,000 watches validate in seconds.

Run from the project root: `python bench/config.py [--sizes 10000 50000 100000]`.
"""

from __future__ import annotations

import argparse
import resource
import time

from watcher.config.load import parse_config


def block_file(watches: int) -> str:
    lines = ["settings:\n  hot_windows: []\nwatches:\n"]
    for i in range(watches):
        lines.append(
            f"  - name: watch {i}\n"
            f"    url: https://www.amazon.co.jp/dp/B0{i:08d}\n"
            f"    max_price: {1000 + i % 5000}\n"
        )
    return "".join(lines)


def one_line_file(watches: int) -> str:
    items = ",".join(
        f"{{name: watch {i}, url: 'https://www.amazon.co.jp/dp/B0{i:08d}'}}" for i in range(watches)
    )
    return "{settings: {hot_windows: []}, watches: [" + items + "]}"


def measure(text: str) -> tuple[float, int]:
    started = time.perf_counter()
    config = parse_config(text, "bench.yaml", env={})
    return time.perf_counter() - started, len(config.watches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    args = parser.parse_args()
    for shape, make in (("block", block_file), ("one line", one_line_file)):
        first: float | None = None
        for size in args.sizes:
            text = make(size)
            seconds, count = measure(text)
            per_k = seconds / size * 1000
            first = first or per_k
            print(
                f"{shape:>8}: {count:>7,} watches, {len(text) / 1e6:5.1f} MB in {seconds:6.2f} s"
                f" ({per_k * 1000:5.1f} ms per 1,000 watches, x{per_k / first:.2f} of the smallest)"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB (target: 100,000 watches in seconds, time per watch flat)")


if __name__ == "__main__":
    main()
