"""Repeated identical warnings and errors, rate-limited in the log.

A fault that lasts (a full disk, a database that refuses writes) makes the same call fail many
times a second; a traceback for each buries everything else. The first record of a kind goes out;
the same kind (logger, level, message template, exception type) again within `window` seconds is
held back and counted, and the next one let out says how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 10.0
MAX_KINDS = 1_000  # kinds remembered at once; the oldest are forgotten first


@dataclass(slots=True)
class _Seen:
    let_out_at: float
    held_back: int = 0


class RepeatFilter(logging.Filter):
    """A handler filter: identical records (WARNING and up) at most once per window."""

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.level = level
        self._seen: OrderedDict[tuple[object, ...], _Seen] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        kind = _kind(record)
        now = self.clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen.let_out_at < self.window:
            seen.held_back += 1
            return False
        if seen is not None and seen.held_back:
            record.msg = (
                f"{record.getMessage()} (repeated {seen.held_back} more times in the last "
                f"{now - seen.let_out_at:.0f} s, not shown)"
            )
            record.args = None
        self._remember(kind, now)
        return True

    def _remember(self, kind: tuple[object, ...], now: float) -> None:
        self._seen[kind] = _Seen(now)
        self._seen.move_to_end(kind)
        while len(self._seen) > MAX_KINDS:
            self._seen.popitem(last=False)


def _kind(record: logging.LogRecord) -> tuple[object, ...]:
    error = record.exc_info[0] if record.exc_info else None
    return (record.name, record.levelno, str(record.msg), error)


def install(handlers: list[logging.Handler], window: float = WINDOW_SECONDS) -> RepeatFilter:
    """One filter shared by `handlers` (each sees the same records)."""
    repeat = RepeatFilter(window)
    for handler in handlers:
        handler.addFilter(repeat)
    return repeat
