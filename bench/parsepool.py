"""What parsing costs the event loop's process: inline, in a ProcessReader, and (for comparison)
through a ProcessPoolExecutor. A ~100 KB generic product page is read many times, 32 reads in
flight. Prints, per reader:

- pages/s and the main process's CPU µs per page (all its threads) with an otherwise idle loop
  (this counts the loop's sleeps and wake-ups between answers, which a busy loop mostly skips);
- "busy loop": the main process's CPU µs per page while the loop also runs other CPU-bound work
  (as the engine's loop does under load), that work's own CPU taken off;
- the round trip of one read at a time;
- for a ProcessReader, what one worker costs to start: the first read of a fresh reader (the
  worker's start included) and the worker's peak RSS (VmHWM).

Asserts nothing.

Run from the project root: `python bench/parsepool.py [pages]`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from parse import big_product_page

from watcher.core.model import Observation, Page, TextRules
from watcher.net.fetch import RawPage
from watcher.reading.pool import InlineReader, PageReader, ProcessReader, read_all

IN_FLIGHT = 32
RULES: tuple[TextRules | None, ...] = (None,)
Read = Callable[[RawPage], Awaitable[tuple[Observation, ...]]]


def sample_page(size: int = 100_000) -> RawPage:
    body = big_product_page(size).encode()
    head = Page(
        url="https://shop.example/p/1",
        status=200,
        headers={"content-type": "text/html; charset=utf-8", "etag": '"abc"', "server": "nginx"},
        content_type="text/html; charset=utf-8",
        bytes=len(body),
    )
    return RawPage(head, body)


class ExecutorReader:
    """The plain alternative: `run_in_executor` on a spawn ProcessPoolExecutor."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(workers, mp_context=context)

    async def read(
        self, raw: RawPage, store: str | None, rules: Sequence[TextRules | None]
    ) -> tuple[Observation, ...]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, read_all, raw, store, tuple(rules))

    async def aclose(self) -> None:
        self._pool.shutdown()


async def run_many(read: Read, raw: RawPage, count: int) -> tuple[float, float]:
    """(pages/s, main-process CPU µs per page) for `count` reads, IN_FLIGHT at a time."""
    todo = iter(range(count))

    async def lane() -> None:
        for _ in todo:
            await read(raw)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, cpu / count * 1e6


async def busy_cost(read: Read, raw: RawPage, count: int) -> float:
    """Main-process CPU µs per page while the loop also runs other CPU-bound work.

    Counted in CPU time, not wall time, so other processes on the machine do not skew it: the
    work's own CPU (units done x CPU per unit, calibrated alone) is taken off the total.
    """
    per_unit = await _cpu_per_unit(0.5)
    done = asyncio.Event()
    cpu = time.process_time()
    work = asyncio.create_task(_work_until(done))
    await run_many(read, raw, count)
    done.set()
    units = await work
    cpu = time.process_time() - cpu
    return max(0.0, cpu - units * per_unit) / count * 1e6


async def _cpu_per_unit(seconds: float) -> float:
    """CPU seconds one work unit takes with nothing else in the loop."""
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, done.set)
    cpu = time.process_time()
    units = await _work_until(done)
    return (time.process_time() - cpu) / units


async def _work_until(done: asyncio.Event) -> int:
    units = 0
    while not done.is_set():
        sum(i * i for i in range(500))  # about 20 µs of pure Python
        units += 1
        await asyncio.sleep(0)
    return units


async def round_trip(read: Read, raw: RawPage, count: int) -> float:
    """Median µs of one read with nothing else in flight."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await read(raw)
        samples.append((time.perf_counter() - start) * 1e6)
    return sorted(samples)[len(samples) // 2]


async def worker_start(raw: RawPage, count: int = 7) -> tuple[float, float]:
    """(median ms of a fresh one-worker reader's first read, median worker peak RSS in MB)."""
    times, peaks = [], []
    for _ in range(count):
        reader = ProcessReader(1)
        try:
            start = time.perf_counter()
            await reader.read(raw, None, RULES)
            times.append((time.perf_counter() - start) * 1000)
            peaks.append(statistics.fmean(peak_mb(pid) for pid in reader.pids()))
        finally:
            await reader.aclose()
    return statistics.median(times), statistics.median(peaks)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(label: str, reader: PageReader, raw: RawPage, count: int) -> None:
    async def read(page: RawPage) -> tuple[Observation, ...]:
        return await reader.read(page, None, RULES)

    try:
        expected = await InlineReader().read(raw, None, RULES)
        assert await read(raw) == expected, "a reader disagreed with inline parsing"
        await run_many(read, raw, 2 * IN_FLIGHT)  # every worker started and warm
        rate, cpu = await run_many(read, raw, count)
        busy = await busy_cost(read, raw, count)
        latency = await round_trip(read, raw, 50)
    finally:
        await reader.aclose()
    print(
        f"{label:<26} {rate:6.0f} pages/s  main CPU {cpu:6.1f} µs/page  "
        f"busy loop {busy:6.1f} µs/page  one read {latency:5.0f} µs"
    )


async def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    raw = sample_page()
    print(f"page: {len(raw.body or b'') / 1000:.0f} KB, {count} reads, {IN_FLIGHT} in flight")
    await measure("inline", InlineReader(), raw, count)
    for workers in (1, 2):
        await measure(f"ProcessReader({workers})", ProcessReader(workers), raw, count)
    started, peak = await worker_start(raw)
    label = "one ProcessReader worker"
    print(f"{label:<26} started and read in {started:.0f} ms, peak RSS {peak:.0f} MB")
    for workers in (1, 2):
        await measure(f"ProcessPoolExecutor({workers})", ExecutorReader(workers), raw, count)


if __name__ == "__main__":
    asyncio.run(main())
