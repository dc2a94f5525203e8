"""Testing a channel from the browser: one sample message through the running notifier.

The page shows each recipient's real answer (sent, retry, failed, skipped, with the channel's
own detail), numbered rather than named: chat ids and addresses are never rendered. A channel is
tested at most once per `MIN_GAP`, so a button held down cannot flood anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifiers.base import Notice, Notifier, SendResult
from watcher.commands.notify_test import FIXED_RECIPIENTS, sample_event

MIN_GAP = timedelta(seconds=10)
# Why a test sent nothing (keys of `i18n.FORM_ERRORS`; TOO_SOON names MIN_GAP's seconds).
NOT_CONFIGURED = "test_not_configured"
TOO_SOON = "test_too_soon"
NO_RECIPIENT = "test_no_recipient"

Recipients = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class ChannelTest:
    channel: str
    results: tuple[SendResult, ...] = ()
    refused: str | None = None  # why nothing was sent: a key of `i18n.FORM_ERRORS`


class ChannelTester:
    def __init__(
        self,
        notifiers: Mapping[str, Notifier],
        recipients: Recipients,
        clock: Callable[[], datetime],
    ) -> None:
        self.notifiers = notifiers
        self.recipients = recipients
        self.clock = clock
        self._last: dict[str, datetime] = {}

    @property
    def channels(self) -> list[str]:
        return sorted(self.notifiers)

    async def test(self, channel: str) -> ChannelTest:
        notifier = self.notifiers.get(channel)
        if notifier is None:
            return ChannelTest(channel, refused=NOT_CONFIGURED)
        now = self.clock()
        last = self._last.get(channel)
        if last is not None and now - last < MIN_GAP:
            return ChannelTest(channel, refused=TOO_SOON)
        recipients = self.recipients(channel)
        if not recipients:
            return ChannelTest(channel, refused=NO_RECIPIENT)
        self._last[channel] = now
        return ChannelTest(channel, tuple(await self._send(notifier, recipients, now)))

    async def _send(
        self, notifier: Notifier, recipients: list[str], now: datetime
    ) -> list[SendResult]:
        event = sample_event(now)
        notices = [Notice(delivery_id=0, event=event, recipient=r) for r in recipients]
        try:
            return list(await notifier.send_batch(notices))
        except Exception as exc:  # a notifier must not raise; say so on the page instead
            return [SendResult.failed(f"notifier raised {type(exc).__name__}")] * len(notices)


def fixed_or_listed(listed: Callable[[str], list[str]]) -> Recipients:
    """Recipients of a channel: its one fixed recipient, else those the watches list."""

    def recipients(channel: str) -> list[str]:
        if channel in FIXED_RECIPIENTS:
            return [FIXED_RECIPIENTS[channel]]
        return list(dict.fromkeys(listed(channel)))

    return recipients
