"""Log hygiene: repeated identical errors are rate-limited; `restock run` installs the limit."""

from __future__ import annotations

import io
import logging

import pytest

from watcher.commands.run import configure_logging
from watcher.logrepeat import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def logger_with(repeat: RepeatFilter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(repeat)
    logger = logging.getLogger(f"test.repeat.{id(repeat)}")
    logger.propagate = False
    logger.handlers = [handler]
    return logger, out


def test_a_lasting_fault_logs_one_traceback_per_window_with_a_count() -> None:
    clock = Clock()
    logger, out = logger_with(RepeatFilter(10.0, clock=clock))
    # A full disk: 106 failed writes in 24 s, each with its traceback.
    for i in range(106):
        clock.t = i * 24 / 106
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            logger.exception("dispatch: recording %d results failed", i)
    text = out.getvalue()
    assert text.count("Traceback") == 3  # at 0 s, 10 s and 20 s
    assert "(repeated 44 more times in the last 10 s, not shown)" in text
    logger.warning("another kind of problem")
    assert "another kind of problem" in out.getvalue()  # other kinds are not held back


def test_info_and_different_messages_are_never_held_back() -> None:
    clock = Clock()
    logger, out = logger_with(RepeatFilter(10.0, clock=clock))
    logger.setLevel(logging.INFO)
    for _ in range(5):
        logger.info("checked")
    for n in range(5):
        logger.error(f"distinct problem {n}")
    lines = out.getvalue().splitlines()
    assert lines.count("checked") == 5
    assert len([line for line in lines if line.startswith("distinct problem")]) == 5


def test_restock_run_logging_holds_back_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    for logger in (root, *(logging.getLogger(n) for n in ("httpx", "httpcore", "telegram"))):
        monkeypatch.setattr(logger, "level", logger.level)
    monkeypatch.setattr(logging.getLogger("apscheduler"), "level", logging.NOTSET)
    configure_logging(1)
    try:
        assert root.handlers
        assert all(
            any(isinstance(f, RepeatFilter) for f in handler.filters) for handler in root.handlers
        )
    finally:
        for handler in root.handlers:
            handler.close()
