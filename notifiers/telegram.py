"""The Telegram channel: HTML messages through python-telegram-bot, paced by our own `Pacer`.

Decisions a reader needs:
- Flood control (429 / `RetryAfter`) is handled here, not by the dispatcher: the whole queue is
  paused for `retry_after` and the same message is resent, up to `max_flood_waits` times; only
  then does `send` return a retry at now + retry_after. A 429 means Telegram did not accept the
  message, so resending never doubles it.
- A timeout after the request left is returned as a retry (at-least-once): Telegram may or may
  not have delivered it, and a missed restock is worse than a repeated one.
- 403 (blocked, kicked) and "chat not found" fail for good with `deactivate_recipient`; a group
  that became a supergroup is resent to its new id, reported as `new_recipient`.
- Several notices for one chat become one message (one button per product), within 4096
  characters; only titles are shortened to fit.
- The bot token is inside every request URL: a log filter masks it on our loggers and the
  libraries' (httpx, PTB), whatever their level.
"""

from __future__ import annotations

import asyncio
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import ClassVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest

from notifiers.base import Notice, Notifier, ResultSink, SendResult
from notifiers.pacing import SEND_LOG, Pacer, Priority, backoff_seconds, log_send
from notifiers.render import (
    Language,
    canonical_url,
    facts,
    label,
    pick_language,
    render_telegram,
    shorten,
)
from watcher.clock import Clock, SystemClock
from watcher.core.model import Outcome
from watcher.logredact import SecretScope

MAX_MESSAGE = 4096
MAX_EVENTS_PER_MESSAGE = 10  # one URL button per product; more would bury the message
MIN_TITLE = 20  # below this a merged message is split rather than its titles cut further
TITLE_MAX = 200
BUTTON_TITLE = 24


@dataclass(frozen=True, slots=True)
class Draft:
    """One Telegram message to send: the notices it carries and its rendered parts."""

    chat: str
    notices: tuple[Notice, ...]
    text: str
    buttons: InlineKeyboardMarkup | None
    preview_url: str | None


def telegram_length(text: str) -> int:
    """Telegram counts UTF-16 code units; measuring the HTML source is a safe upper bound."""
    return len(text.encode("utf-16-le")) // 2


def chat_id_value(recipient: str) -> int | str:
    """Numeric chat ids as int, @channel usernames as they are."""
    return int(recipient) if recipient.lstrip("-").isdigit() else recipient


class TelegramNotifier(Notifier):
    name: ClassVar[str] = "telegram"
    max_length: ClassVar[int] = MAX_MESSAGE
    workers: ClassVar[int] = 8  # the pacer, not the worker count, bounds the rate
    concurrent_chats: ClassVar[int] = 32
    batch_size: ClassVar[int] = 100  # merged per chat and sent concurrently under the pacer

    def __init__(
        self,
        *,
        token: str,
        api_base_url: str = "https://api.telegram.org",
        language: Language = "ja",
        clock: Clock | None = None,
        pacer: Pacer | None = None,
        request: BaseRequest | None = None,
        timeout: float = 10.0,
        max_flood_waits: int = 5,
        link_preview: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.language: Language = language
        self.clock = clock or SystemClock()
        self.pacer = pacer or Pacer(self.clock)
        self.max_flood_waits = max_flood_waits
        self.link_preview = link_preview
        self.rng = rng or random.Random()
        # Before the Bot exists: its constructor already logs the URL holding the token.
        self._secrets = SecretScope([token])
        self.bot = Bot(
            token=token,
            base_url=f"{api_base_url.rstrip('/')}/bot",
            request=request or _default_request(timeout),
        )
        self._started = False
        self._start_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        result = await self._ensure_started()
        if result is not None:
            SEND_LOG.error("telegram: bot not ready: %s", result.detail)

    async def aclose(self) -> None:
        try:
            # Also after a failed start: the connections opened before getMe failed.
            await self.bot.shutdown()
        except Exception as exc:  # shutting down must not fail the caller's shutdown
            SEND_LOG.warning("telegram: shutdown: %s", self._secrets.mask(repr(exc)))
        finally:
            self._secrets.close()

    async def _ensure_started(self) -> SendResult | None:
        """Initialise the bot (getMe) once; a failure comes back as a result, never raised."""
        async with self._start_lock:
            if self._started:
                return None
            try:
                await self.bot.initialize()
            except Exception as exc:
                return self._judge_error(exc, attempt=1)
            self._started = True
            return None

    # --- sending -----------------------------------------------------------------------------

    async def send(self, notice: Notice) -> SendResult:
        return (await self.send_batch([notice]))[0]

    async def send_batch(self, notices: Sequence[Notice]) -> list[SendResult]:
        return await self.send_streaming(notices, _ignore)

    async def send_streaming(
        self, notices: Sequence[Notice], report: ResultSink
    ) -> list[SendResult]:
        not_ready = await self._ensure_started()
        if not_ready is not None:
            return [self._logged(n, not_ready, 0.0) for n in notices]
        results: dict[int, SendResult] = {}
        gate = asyncio.Semaphore(self.concurrent_chats)

        async def run(chat: str, group: list[Notice]) -> None:
            async with gate:
                # Drafted inside the task: the first chat's message leaves before the last
                # chat's is rendered.
                for draft in self.drafts(chat, group):
                    result = await self._deliver(draft)
                    for notice in draft.notices:
                        results[id(notice)] = result
                        report(notice, result)

        by_chat: dict[str, list[Notice]] = {}
        for notice in notices:
            by_chat.setdefault(notice.recipient, []).append(notice)
        await asyncio.gather(*(run(chat, group) for chat, group in by_chat.items()))
        return [results[id(n)] for n in notices]

    def drafts(self, chat: str, notices: Sequence[Notice]) -> list[Draft]:
        """Pack one chat's notices into as few messages as fit, shortening only titles."""
        packed: list[Draft] = []
        pending: list[Notice] = []
        for notice in notices:
            trial = self._draft(chat, [*pending, notice])
            if pending and (trial is None or len(pending) >= MAX_EVENTS_PER_MESSAGE):
                packed.append(self._draft(chat, pending) or self._oversize(chat, pending))
                pending = [notice]
            else:
                pending.append(notice)
        if pending:
            packed.append(self._draft(chat, pending) or self._oversize(chat, pending))
        return packed

    def _draft(self, chat: str, notices: Sequence[Notice]) -> Draft | None:
        """The message for `notices` with the longest titles that fit, or None if none fit."""
        floor = MIN_TITLE if len(notices) > 1 else 1
        title_max = TITLE_MAX
        while title_max >= floor:
            text = "\n\n".join(
                render_telegram(n.event, self._language(n), title_max) for n in notices
            )
            if telegram_length(text) <= MAX_MESSAGE:
                return Draft(
                    chat, tuple(notices), text, self._buttons(notices), self._preview(notices)
                )
            title_max = title_max // 2 if title_max > 2 * floor else title_max - 10
        return None

    def _oversize(self, chat: str, notices: Sequence[Notice]) -> Draft:
        # Only a pathological URL or seller can get here; sending it would be refused anyway.
        return Draft(chat, tuple(notices), "", None, None)

    def _buttons(self, notices: Sequence[Notice]) -> InlineKeyboardMarkup | None:
        rows = []
        language = self._language(notices[0])
        open_label = label("open", language)
        for notice in notices:
            url = canonical_url(notice.event.url)
            if not url:
                continue
            text = open_label
            if len(notices) > 1:
                title = facts(notice.event, language, BUTTON_TITLE).title
                text = f"{open_label}: {shorten(title, BUTTON_TITLE)}"
            rows.append([InlineKeyboardButton(text=text, url=url)])
        return InlineKeyboardMarkup(rows) if rows else None

    def _language(self, notice: Notice) -> Language:
        return pick_language(notice.language, self.language)

    def _preview(self, notices: Sequence[Notice]) -> str | None:
        if not self.link_preview:
            return None
        return next((u for n in notices if (u := canonical_url(n.event.url))), None)

    async def _deliver(self, draft: Draft) -> SendResult:
        started = self.clock.monotonic()
        if not draft.text:
            result = SendResult.failed("message too long even with titles cut")
        else:
            result = await self._send_with_flood_waits(draft)
        latency = (self.clock.monotonic() - started) * 1000
        for notice in draft.notices:
            self._logged(notice, result, latency)
        return result

    async def _send_with_flood_waits(self, draft: Draft) -> SendResult:
        chat = draft.chat
        moved: str | None = None
        flood_waits = 0
        attempt = max(n.attempt for n in draft.notices)
        while True:
            await self.pacer.acquire(chat, Priority.NOTIFICATION)
            try:
                await self._post(chat, draft)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                flood_waits += 1
                if flood_waits > self.max_flood_waits:
                    at = self.clock.now() + timedelta(seconds=wait)
                    return _moved(SendResult.retry(at, "flood control", http_status=429), moved)
                SEND_LOG.warning("telegram: 429, pausing all sends for %.1f s", wait)
                self.pacer.pause_for(wait)
                continue
            except ChatMigrated as exc:
                if moved is not None:  # migrated twice in one send: do not chase it forever
                    return SendResult.failed("chat migrated twice", http_status=400)
                chat = moved = str(exc.new_chat_id)
                continue
            except Exception as exc:
                return _moved(self._judge_error(exc, attempt), moved)
            return _moved(SendResult.sent(http_status=200), moved)

    async def _post(self, chat: str, draft: Draft) -> None:
        preview = (
            LinkPreviewOptions(url=draft.preview_url)
            if draft.preview_url
            else LinkPreviewOptions(is_disabled=True)
        )
        await self.bot.send_message(
            chat_id=chat_id_value(chat),
            text=draft.text,
            parse_mode=ParseMode.HTML,
            reply_markup=draft.buttons,
            link_preview_options=preview,
        )

    def _judge_error(self, exc: BaseException, attempt: int) -> SendResult:
        """Map a library exception to a result; the detail never carries the token."""
        detail = self._secrets.mask(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, Forbidden):
            return SendResult.failed(detail, http_status=403, deactivate_recipient=True)
        if isinstance(exc, BadRequest):
            gone = "chat not found" in str(exc).lower()
            return SendResult.failed(detail, http_status=400, deactivate_recipient=gone)
        if isinstance(exc, InvalidToken):
            return SendResult.failed("bot token rejected by the Bot API", http_status=401)
        if isinstance(exc, TimedOut | NetworkError):
            at = self.clock.now() + timedelta(seconds=backoff_seconds(attempt, self.rng))
            return SendResult.retry(at, detail)
        if isinstance(exc, TelegramError):
            return SendResult.failed(detail)
        return SendResult.failed(f"unexpected {detail}")

    def _logged(self, notice: Notice, result: SendResult, latency_ms: float) -> SendResult:
        log_send(self.name, notice, result, latency_ms)
        return result


def _ignore(notice: Notice, result: SendResult) -> None:
    """A sink for callers that take the results when the batch ends."""


def _moved(result: SendResult, new_recipient: str | None) -> SendResult:
    if new_recipient is None:
        return result
    if result.outcome is Outcome.FAILED and result.deactivate_recipient:
        return result
    return replace(result, new_recipient=new_recipient)


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds to wait, whichever type this PTB version hands out (int or timedelta)."""
    with warnings.catch_warnings():
        # PTB 22 warns while it moves `retry_after` from int to timedelta; both are handled.
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _default_request(timeout: float) -> HTTPXRequest:
    return HTTPXRequest(
        connection_pool_size=64,
        read_timeout=timeout,
        write_timeout=timeout,
        connect_timeout=min(timeout, 5.0),
        pool_timeout=timeout,
    )
