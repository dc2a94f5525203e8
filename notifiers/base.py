"""The notifier interface: one channel, one class, results as values.

A notifier never lets a library exception escape `send`: every outcome is one `SendResult`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from watcher.core.model import Event, Outcome


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    retry_at: datetime | None = None
    http_status: int | None = None
    # The recipient is gone for good (blocked the bot, chat deleted): deactivate it.
    deactivate_recipient: bool = False
    # The recipient moved (Telegram group migrated to a supergroup): use this id from now on.
    new_recipient: str | None = None

    @classmethod
    def sent(cls, detail: str = "", http_status: int | None = None) -> SendResult:
        return cls(Outcome.SENT, detail, http_status=http_status)

    @classmethod
    def retry(cls, at: datetime, detail: str, http_status: int | None = None) -> SendResult:
        return cls(Outcome.RETRY, detail, retry_at=at, http_status=http_status)

    @classmethod
    def failed(cls, detail: str, http_status: int | None = None, **kw: object) -> SendResult:
        return cls(Outcome.FAILED, detail, http_status=http_status, **kw)  # type: ignore[arg-type]

    @classmethod
    def skipped(cls, detail: str) -> SendResult:
        return cls(Outcome.SKIPPED, detail)


@dataclass(frozen=True, slots=True)
class Notice:
    """One delivery handed to a notifier: an event for one recipient."""

    delivery_id: int
    event: Event
    recipient: str  # chat id, e-mail address, "public" for X, "-" for console / webhook
    attempt: int = 1
    language: str | None = None  # "ja" / "en" for this recipient; None: the channel's default
    subscription_id: int | None = None  # grows with time: how long the recipient has subscribed

    @property
    def idempotency_key(self) -> str:
        return f"{self.event.id}:{self.recipient}"


# Told each result as soon as its send is over, before the rest of the batch is (see
# `Notifier.send_streaming`).
ResultSink = Callable[[Notice, SendResult], None]


class Notifier(ABC):
    """One channel. Class attributes are read by the dispatcher and the docs."""

    name: ClassVar[str]
    max_length: ClassVar[int] = 4096
    # Concurrent sends the dispatcher may run on this channel.
    workers: ClassVar[int] = 1
    # Most deliveries handed over in one batch: a batch must finish well inside the dispatcher's
    # lease even when every send runs into its timeout (else another worker could resend).
    batch_size: ClassVar[int] = 10
    # The channel sends one request to many recipients (LINE's multicast): its batches are as
    # large as `batch_size` says, not capped by the dispatcher's general batch setting.
    fans_out: ClassVar[bool] = False

    @abstractmethod
    async def send(self, notice: Notice) -> SendResult:
        """Deliver one notice. Never raises."""

    async def send_batch(self, notices: Sequence[Notice]) -> list[SendResult]:
        """Deliver several notices; channels that can merge messages override this.

        A notice whose send raises anyway gets a retry of its own, so the results already in hand
        (messages that went out) are kept and never sent twice.
        """
        return await self._send_each(notices, None)

    async def send_streaming(
        self, notices: Sequence[Notice], report: ResultSink
    ) -> list[SendResult]:
        """`send_batch`, telling `report` each result as soon as its send is over.

        The dispatcher writes reported results while the batch goes on, so a crash mid-batch
        repeats only the sends in flight. A channel that merges messages overrides this with
        its own streaming; one that only overrides `send_batch` reports when its batch ends.
        """
        if type(self).send_batch is Notifier.send_batch:
            return await self._send_each(notices, report)
        results = await self.send_batch(notices)
        for notice, result in zip(notices, results, strict=False):
            report(notice, result)
        return results

    async def _send_each(
        self, notices: Sequence[Notice], report: ResultSink | None
    ) -> list[SendResult]:
        results = []
        for notice in notices:
            try:
                result = await self.send(notice)
            except Exception as exc:
                result = SendResult(Outcome.RETRY, f"{self.name} raised {type(exc).__name__}")
            results.append(result)
            if report is not None:
                report(notice, result)
        return results

    async def start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Open connections; called once before the first send."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release connections; called once at shutdown."""
