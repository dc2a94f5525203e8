"""The console channel: prints messages, so a person with no tokens still sees every event."""

from __future__ import annotations

import sys
from typing import ClassVar, TextIO

from notifiers.base import Notice, Notifier, SendResult
from notifiers.pacing import log_send
from notifiers.render import Language, pick_language, render_text
from watcher.clock import Clock, SystemClock


class ConsoleNotifier(Notifier):
    name: ClassVar[str] = "console"
    max_length: ClassVar[int] = 100_000

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        language: Language = "ja",
        clock: Clock | None = None,
    ) -> None:
        self.stream = stream
        self.language: Language = language
        self.clock = clock or SystemClock()

    async def send(self, notice: Notice) -> SendResult:
        started = self.clock.monotonic()
        # Resolve stdout at send time: tests and daemons replace sys.stdout after construction.
        stream = self.stream or sys.stdout
        try:
            stream.write(
                render_text(notice.event, pick_language(notice.language, self.language)) + "\n\n"
            )
            stream.flush()
            result = SendResult.sent()
        except (OSError, ValueError) as exc:  # closed or broken stream
            result = SendResult.failed(f"console write failed: {exc}")
        log_send(self.name, notice, result, (self.clock.monotonic() - started) * 1000)
        return result
