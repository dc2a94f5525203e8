"""Parsing in worker processes: the same observations as parsing inline, each answer to its own
request, and `unknown` (never an exception) when a parse raises, a worker dies or hangs, or the
reader is closed. Real worker processes; two pools are shared by the module to keep it fast."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import FIXTURES

from watcher.config.load import parse_config
from watcher.core.model import Availability, FetchFacts, Observation, Page, TextRules
from watcher.errors import ConfigError
from watcher.net.fetch import RawPage
from watcher.reading.pool import (
    InlineReader,
    ProcessReader,
    default_parse_workers,
    page_reader,
    parse_one,
)
from watcher.reading.read import read_page

module_loop = pytest.mark.asyncio(loop_scope="module")

PAGES = FIXTURES / "pages"
MIN_PAGES = 60  # must not pass on an empty or half-found fixture folder
RULES: tuple[TextRules | None, ...] = (
    None,
    TextRules(
        phrases=(("在庫切れ", Availability.OUT_OF_STOCK), ("在庫あり", Availability.IN_STOCK))
    ),
    TextRules(selector="h1", phrases=(("予約", Availability.PREORDER),)),
)
TIMEOUT = 0.5  # of the scripted pool: far above a real page's parse, far below a test's patience


def scripted_parse(page: Page, store: str | None, rules: TextRules | None) -> Observation:
    """A parse function that misbehaves on command (the page's first words), else parses."""
    command = page.text[:40].split()
    if command[:1] == ["SLEEP"]:
        time.sleep(float(command[1]))
    if command[:1] == ["RAISE"]:
        raise ValueError("boom")
    if command[:1] == ["ENVIRON"]:  # the worker's environment, as the observation's reason
        return Observation.unknown(" ".join(sorted(os.environ)))
    return parse_one(page, store, rules)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[ProcessReader]:
    reader = ProcessReader(2)
    yield reader
    await reader.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scripted() -> AsyncIterator[ProcessReader]:
    reader = ProcessReader(1, timeout=TIMEOUT, parse=scripted_parse)
    yield reader
    await reader.aclose()


def fixture_pages() -> list[tuple[str, RawPage, str]]:
    """(case id, raw page, store) for every saved store page, as the fetcher would hand it over."""
    cases = []
    for path in sorted(PAGES.glob("*/*.html")):
        spec = json.loads(path.with_suffix(".expected.json").read_text("utf-8")).get("page", {})
        body = path.read_bytes()
        head = Page(
            url=spec.get("url", f"https://shop.example/{path.parent.name}/{path.stem}"),
            status=spec.get("status", 200),
            content_type="text/html",
            retry_after=spec.get("retry_after"),
            bytes=len(body),
            elapsed_ms=12.5,
        )
        cases.append((f"{path.parent.name}/{path.stem}", RawPage(head, body), path.parent.name))
    return cases


def shop_page(price: int, *, text: str | None = None, charset: str = "utf-8") -> RawPage:
    markup = text or (
        f"<html><head><meta charset='{charset}'><title>積み木 {price}</title></head><body>"
        f"<h1>積み木 {price}</h1><p class='price'>{price:,}円</p><p class='stock'>在庫あり</p>"
        "<form action='/cart/add'><button>カートに入れる</button></form></body></html>"
    )
    body = markup.encode(charset)
    head = Page(
        url=f"https://shop.example/item/{price}",
        status=200,
        content_type=f"text/html; charset={charset}",
        bytes=len(body),
    )
    return RawPage(head, body)


def inline(
    raw: RawPage, store: str | None, rules: tuple[TextRules | None, ...]
) -> list[Observation]:
    return [read_page(raw.decoded(), store=store, rules=r) for r in rules]


def assert_parse_failed(observations: tuple[Observation, ...], raw: RawPage, why: str) -> None:
    for obs in observations:
        assert obs.state is Availability.UNKNOWN
        assert obs.reason == f"parse failed: {why}"
        assert obs.fetch == FetchFacts.of(raw.head)
        assert obs.url == raw.head.url


async def warm(reader: ProcessReader) -> None:
    """One real read, so every worker of `reader` has started and is ready."""
    raw = shop_page(1)
    answers = await asyncio.gather(*(reader.read(raw, None, [None]) for _ in range(4)))
    assert all(a == (read_page(raw.decoded()),) for a in answers)


# -- the same answers as inline parsing --------------------------------------------------------


async def test_inline_reader_reads_as_read_page() -> None:
    cases = fixture_pages()
    assert len(cases) >= MIN_PAGES
    reader = InlineReader()
    for _case, raw, store in cases:
        assert list(await reader.read(raw, store, RULES)) == inline(raw, store, RULES)


@module_loop
async def test_workers_read_every_fixture_page_as_inline(pool: ProcessReader) -> None:
    cases = fixture_pages()
    assert len(cases) >= MIN_PAGES
    # All at once: answers must come back to their own requests whatever the order of work.
    answers = await asyncio.gather(*(pool.read(raw, store, RULES) for _c, raw, store in cases))
    for (case, raw, store), answer in zip(cases, answers, strict=True):
        assert list(answer) == inline(raw, store, RULES), case
    states = {obs.state for answer in answers for obs in answer}
    assert {Availability.IN_STOCK, Availability.OUT_OF_STOCK, Availability.UNKNOWN} <= states
    assert len(pool.pids()) == 2


@module_loop
async def test_shift_jis_bodies_are_decoded_in_the_worker(pool: ProcessReader) -> None:
    raw = shop_page(4980, charset="shift_jis")
    assert raw.body is not None and "在庫あり".encode("cp932") in raw.body
    (obs,) = await pool.read(raw, None, [None])
    assert obs == read_page(raw.decoded())
    assert (obs.state, obs.price, obs.title) == (Availability.IN_STOCK, 4980, "積み木 4980")
    saved = [c for c in fixture_pages() if "shift-jis" in c[0] or "euc-jp" in c[0]]
    assert len(saved) >= 2
    for case, raw, store in saved:
        assert list(await pool.read(raw, store, RULES)) == inline(raw, store, RULES), case


@module_loop
async def test_many_requests_at_once_each_get_their_own_answer(pool: ProcessReader) -> None:
    pages = [shop_page(1000 + i) for i in range(300)]
    answers = await asyncio.gather(*(pool.read(raw, None, RULES[:2]) for raw in pages))
    for i, (raw, answer) in enumerate(zip(pages, answers, strict=True)):
        assert [obs.price for obs in answer] == [1000 + i, 1000 + i]
        assert {obs.url for obs in answer} == {raw.head.url}


@module_loop
async def test_no_rules_no_observations(pool: ProcessReader) -> None:
    assert await pool.read(shop_page(1), None, []) == ()


async def test_a_page_without_a_body_is_read_without_starting_a_worker() -> None:
    reader = ProcessReader(1)
    heads = [
        Page(url="https://shop.example/a", status=None, error="timeout", elapsed_ms=20000.0),
        Page(url="https://shop.example/b", status=503, retry_after=120.0),
        Page(url="https://shop.example/c", status=304, not_modified=True, etag='"v1"'),
    ]
    try:
        for head in heads:
            raw = RawPage(head)
            answer = await reader.read(raw, None, RULES)
            assert list(answer) == inline(raw, None, RULES)
            assert all(obs.state is Availability.UNKNOWN for obs in answer)
            assert all(obs.fetch == FetchFacts.of(head) for obs in answer)
        assert reader.pids() == ()  # nothing was parsed, so no process was started
    finally:
        await reader.aclose()


# -- failures ----------------------------------------------------------------------------------


@module_loop
async def test_a_parse_that_raises_gives_unknown_and_the_worker_lives_on(
    scripted: ProcessReader,
) -> None:
    await warm(scripted)
    pids = scripted.pids()
    raw = shop_page(1, text="RAISE <html><h1>x</h1></html>")
    answer = await scripted.read(raw, "generic", RULES)
    assert len(answer) == len(RULES)
    assert_parse_failed(answer, raw, "ValueError: boom")
    assert {obs.store for obs in answer} == {"generic"}
    assert scripted.pids() == pids
    assert await scripted.read(shop_page(7), None, [None]) == (read_page(shop_page(7).decoded()),)


@module_loop
async def test_a_killed_worker_fails_only_its_current_page(
    scripted: ProcessReader, caplog: pytest.LogCaptureFixture
) -> None:
    await warm(scripted)
    (pid,) = scripted.pids()
    lost = scripted.lost_workers
    stuck = shop_page(1, text="SLEEP 0.3 <html></html>")
    queued = [shop_page(100 + i) for i in range(5)]
    tasks = [asyncio.create_task(scripted.read(raw, None, RULES[:2])) for raw in [stuck, *queued]]
    await asyncio.sleep(0.05)  # all sent; the worker is asleep on the first
    os.kill(pid, signal.SIGKILL)
    answers = await asyncio.gather(*tasks)
    assert_parse_failed(answers[0], stuck, "worker died")
    # The pages queued behind it were innocent: a new worker read them.
    for i, answer in enumerate(answers[1:]):
        assert [obs.price for obs in answer] == [100 + i, 100 + i]
    assert scripted.lost_workers == lost + 1
    assert len(scripted.pids()) == 1 and scripted.pids() != (pid,)
    # The operator hears of it: which worker, why, and how many pages went to a fresh one.
    assert f"parse worker {pid} lost (it died); 5 page(s)" in caplog.text


@module_loop
async def test_a_hung_worker_is_killed_after_the_timeout(scripted: ProcessReader) -> None:
    await warm(scripted)
    (pid,) = scripted.pids()
    stuck = shop_page(1, text="SLEEP 30 <html></html>")
    started = time.monotonic()
    answer = await scripted.read(stuck, None, RULES)
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 2.0
    assert_parse_failed(answer, stuck, f"timed out after {TIMEOUT:g}s")
    # The pool recovers with a new worker.
    assert await scripted.read(shop_page(8), None, [None]) == (read_page(shop_page(8).decoded()),)
    assert scripted.pids() != (pid,)


@module_loop
async def test_workers_ignore_sigint(scripted: ProcessReader) -> None:
    """Ctrl-C reaches the whole process group; only the main process may act on it."""
    await warm(scripted)
    pids = scripted.pids()
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.1)
    assert await scripted.read(shop_page(9), None, [None]) == (read_page(shop_page(9).decoded()),)
    assert scripted.pids() == pids


async def test_a_worker_that_dies_starting_fails_its_pages_and_the_next_read_retries() -> None:
    reader = ProcessReader(1)
    try:
        pages = [shop_page(1), shop_page(2)]
        tasks = [asyncio.create_task(reader.read(raw, None, [None])) for raw in pages]
        await asyncio.sleep(0)  # sent to a worker that is still starting (that takes ~0.2 s)
        (pid,) = reader.pids()
        os.kill(pid, signal.SIGKILL)
        for raw, task in zip(pages, tasks, strict=True):
            assert_parse_failed(await task, raw, "worker did not start")
        assert await reader.read(shop_page(3), None, [None]) == (read_page(shop_page(3).decoded()),)
    finally:
        await reader.aclose()


async def test_aclose_answers_requests_in_flight_and_ends_the_workers() -> None:
    reader = ProcessReader(1, parse=scripted_parse)
    await warm(reader)
    (pid,) = reader.pids()
    pages = [shop_page(1, text="SLEEP 30 <html></html>"), shop_page(2), shop_page(3)]
    tasks = [asyncio.create_task(reader.read(raw, None, RULES)) for raw in pages]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await reader.aclose()
    assert time.monotonic() - started < 1.5
    for raw, task in zip(pages, tasks, strict=True):
        assert_parse_failed(await task, raw, "reader closed")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped
    # A closed reader still answers, without starting anything.
    assert_parse_failed(
        await reader.read(shop_page(4), None, [None]), shop_page(4), "reader closed"
    )
    assert reader.pids() == ()
    await reader.aclose()  # twice is harmless


async def test_a_cancelled_read_does_not_disturb_the_next() -> None:
    reader = ProcessReader(1, parse=scripted_parse)
    try:
        await warm(reader)
        slow = asyncio.create_task(reader.read(shop_page(1, text="SLEEP 0.2 <html>"), None, [None]))
        await asyncio.sleep(0.05)
        slow.cancel()
        answer = await reader.read(shop_page(5), None, [None])
        assert answer == (read_page(shop_page(5).decoded()),)
        assert slow.cancelled()
    finally:
        await reader.aclose()


def test_the_parse_function_must_be_sendable_by_name() -> None:
    with pytest.raises(ValueError, match="module-level function") as caught:
        ProcessReader(1, parse=lambda page, store, rules: parse_one(page, store, rules))
    assert "lambda" in str(caught.value)


def nested_parse() -> Callable[[Page, str | None, TextRules | None], Observation]:
    def parse(page: Page, store: str | None, rules: TextRules | None) -> Observation:
        return parse_one(page, store, rules)

    return parse


def main_parse(page: Page, store: str | None, rules: TextRules | None) -> Observation:
    return parse_one(page, store, rules)


main_parse.__module__ = "__main__"  # as if defined in a script: a worker's __main__ differs


@pytest.mark.parametrize(
    ("parse", "named"),
    [(nested_parse(), "nested_parse.<locals>.parse"), (main_parse, "__main__:main_parse")],
    ids=["nested", "in-main"],
)
def test_a_parse_function_the_workers_cannot_import_is_refused_at_once(
    parse: Callable[[Page, str | None, TextRules | None], Observation], named: str
) -> None:
    with pytest.raises(ValueError, match="module-level function") as caught:
        ProcessReader(1, parse=parse)
    assert named in str(caught.value)


async def test_a_sigint_while_a_worker_starts_does_not_kill_it() -> None:
    """Ctrl-C reaches the whole process group, workers that are still starting included."""
    reader = ProcessReader(1)
    try:
        task = asyncio.create_task(reader.read(shop_page(11), None, [None]))
        await asyncio.sleep(0)  # the worker process exists, its interpreter is starting
        (pid,) = reader.pids()
        os.kill(pid, signal.SIGINT)
        assert await task == (read_page(shop_page(11).decoded()),)
        assert reader.pids() == (pid,) and reader.lost_workers == 0
    finally:
        await reader.aclose()


# -- a worker's process, seen from the outside ---------------------------------------------------

PROBE = """
import json, os, sys
from watcher.core.model import Observation

HEAVY = ("watcher.cli", "watcher.service.app", "watcher.bot.telegram", "telegram", "tweepy")


def probe(page, store, rules):
    # What the worker's interpreter holds, told back as the observation's reason.
    return Observation.unknown(json.dumps({
        "heavy": [name for name in HEAVY if name in sys.modules],
        "main": getattr(sys.modules["__main__"], "__file__", None),
        "stdin_is_null": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
    }))
"""

# A main module like the `restock` console script's: the whole command line imported.
MAIN = """
import asyncio, json
import watcher.cli
from probe import probe
from watcher.net.fetch import RawPage
from watcher.core.model import Page
from watcher.reading.pool import ProcessReader


async def main():
    reader = ProcessReader(1, parse=probe)
    body = b"<html><h1>x</h1></html>"
    raw = RawPage(Page(url="https://shop.example/x", status=200, bytes=len(body)), body)
    (seen,) = await reader.read(raw, None, [None])
    print(json.dumps({"pid": reader.pids()[0], "seen": json.loads(seen.reason)}), flush=True)
    await asyncio.sleep(60)


if __name__ == "__main__":
    asyncio.run(main())
"""


def ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # exited; its new parent has not reaped it yet


def test_a_worker_imports_only_parsing_and_ends_when_its_main_process_is_killed(
    tmp_path: Path,
) -> None:
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    (tmp_path / "main.py").write_text(textwrap.dedent(MAIN))
    # The probe module is found only on the main process's path (its script's folder).
    main = subprocess.Popen(
        [sys.executable, str(tmp_path / "main.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
    )
    try:
        assert main.stdout is not None
        told = json.loads(main.stdout.readline())
        seen = told["seen"]
        assert seen["heavy"] == [] and seen["main"] != str(tmp_path / "main.py")
        assert seen["stdin_is_null"]  # not the main process's stdin (here a pipe)
        pid = told["pid"]
        assert not ended(pid)
        main.kill()  # no aclose, no atexit: the worker must notice on its own
        main.wait()
        deadline = time.monotonic() + 5.0
        while not ended(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ended(pid)
    finally:
        main.kill()
        main.wait()
        if main.stdin is not None:
            main.stdin.close()
        if main.stdout is not None:
            main.stdout.close()


# -- choosing a reader -------------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (2, 2), (3, 2), (5, 2), (64, 2)], ids=str)
def test_auto_workers_one_per_core_beside_the_loop(cpus: int, workers: int) -> None:
    assert default_parse_workers(cpus) == workers


def test_auto_workers_follow_this_machine() -> None:
    usable = len(os.sched_getaffinity(0))
    assert default_parse_workers() == default_parse_workers(usable)


async def test_page_reader_picks_inline_for_zero_and_starts_nothing_early() -> None:
    assert isinstance(page_reader(0), InlineReader)
    pooled = page_reader(2)
    assert isinstance(pooled, ProcessReader) and pooled.pids() == ()
    await pooled.aclose()
    auto = page_reader("auto")
    expected = InlineReader if default_parse_workers() == 0 else ProcessReader
    assert isinstance(auto, expected)
    await auto.aclose()


@pytest.mark.parametrize(
    ("written", "value"), [("auto", "auto"), ("0", 0), ("3", 3), ('"2"', 2)], ids=str
)
def test_parse_workers_setting(written: str, value: int | str) -> None:
    config = parse_config(f"settings:\n  parse_workers: {written}\n", env={})
    assert config.settings.parse_workers == value


def test_parse_workers_defaults_to_auto() -> None:
    assert parse_config("settings: {}\n", env={}).settings.parse_workers == "auto"


@pytest.mark.parametrize("written", ["-1", "many", "Auto", "1.5", "true", "null"])
def test_parse_workers_rejects_other_values(written: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"settings:\n  parse_workers: {written}\n", env={})
    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (2, "settings.parse_workers")
    assert problem.message.startswith('must be a whole number of at least 0 or "auto", got ')


async def test_a_worker_holds_none_of_the_parents_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret")
    monkeypatch.setenv("RESTOCK_UNSUBSCRIBE_SECRET", "hush")
    reader = ProcessReader(1, parse=scripted_parse)
    try:
        (seen,) = await reader.read(shop_page(1, text="ENVIRON <html></html>"), None, [None])
    finally:
        await reader.aclose()
    names = set(seen.reason.split())
    assert "PYTHONPATH" in names  # the worker did report its environment
    assert not names & {"TELEGRAM_BOT_TOKEN", "RESTOCK_UNSUBSCRIBE_SECRET"}
