"""Pacing for notifiers: the Telegram pacer, backoff, and the send log line.

The pacer keeps sliding windows of past send times, so "never more than N in any W seconds"
holds for every window, not just aligned ones. It only waits through the injected clock, so tests
drive it with a fake clock and never sleep.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections import deque
from dataclasses import dataclass

from notifiers.base import Notice, SendResult
from watcher.clock import Clock
from watcher.redact import recipient_hash

SEND_LOG = logging.getLogger("restock.notify")


class Priority(enum.IntEnum):
    """Command replies (a person is waiting) go before notifications."""

    REPLY = 0
    NOTIFICATION = 1


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` sends in any `seconds`-long window."""

    limit: int
    seconds: float


class SlidingWindow:
    """Past send times for one window rule; says when the next send may go."""

    def __init__(self, rule: Window) -> None:
        self.rule = rule
        self._times: deque[float] = deque()

    def next_free(self, now: float, limit: int | None = None) -> float:
        """Earliest time >= now at which one more send keeps the rule (with `limit` if given)."""
        cap = self.rule.limit if limit is None else limit
        self._forget_before(now - self.rule.seconds)
        if len(self._times) < cap:
            return now
        # The send `cap` places back must have left the window.
        return max(now, self._times[-cap] + self.rule.seconds)

    def record(self, at: float) -> None:
        self._times.append(at)

    def idle(self, now: float) -> bool:
        self._forget_before(now - self.rule.seconds)
        return not self._times

    def _forget_before(self, cutoff: float) -> None:
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()


@dataclass(frozen=True, slots=True)
class TelegramLimits:
    """Telegram's published flood limits, with headroom kept for command replies."""

    global_per_second: int = 30
    notifications_per_second: int = 25
    per_chat: Window = Window(1, 1.0)
    per_group: Window = Window(20, 60.0)


class Pacer:
    """Decides when each Telegram message may leave; waits through the injected clock.

    Global: at most `global_per_second` in any second, of which notifications may use
    `notifications_per_second`, evenly spaced (the rest is for replies, which go first).
    Per chat: one a second. Per group (negative chat id): 20 a minute. A 429 pauses everything
    (`pause_for`).
    """

    def __init__(self, clock: Clock, limits: TelegramLimits | None = None) -> None:
        self.clock = clock
        self.limits = limits or TelegramLimits()
        self._global = SlidingWindow(Window(self.limits.global_per_second, 1.0))
        self._chats: dict[str, SlidingWindow] = {}
        self._groups: dict[str, SlidingWindow] = {}
        self._paused_until = 0.0
        # Notifications are spread evenly (1/25 s apart) rather than sent in bursts at each
        # window edge: the server counts arrivals, and network jitter would push a burst that
        # left at the edge into the next second's count.
        self._notification_gap = 1.0 / self.limits.notifications_per_second
        self._next_notification = 0.0
        self._replies_waiting = 0
        self._no_replies_waiting = asyncio.Event()
        self._no_replies_waiting.set()

    async def acquire(self, chat_id: str | int, priority: Priority = Priority.NOTIFICATION) -> None:
        """Return when a message to `chat_id` may be sent now; the send is counted at once."""
        chat = str(chat_id)
        if priority is Priority.REPLY:
            await self._acquire_reply(chat)
            return
        while True:
            await self._no_replies_waiting.wait()
            now = self.clock.monotonic()
            ready = self._ready_at(chat, priority, now)
            if ready <= now and not self._replies_waiting:
                self._record(chat, priority, now)
                return
            await self.clock.sleep(max(ready - now, 0.0))

    async def _acquire_reply(self, chat: str) -> None:
        # A reply holds notifications back only while it waits for the capacity they share (the
        # global window or a 429 pause). Waiting for its own chat's or group's window, it leaves
        # that capacity to alerts for other chats: a busy group must not delay them.
        holding = False
        try:
            while True:
                now = self.clock.monotonic()
                shared = self._shared_ready_at(Priority.REPLY, now)
                own = self._own_ready_at(chat, now)
                if max(shared, own) <= now:
                    self._record(chat, Priority.REPLY, now)
                    return
                if holding != (shared >= own):
                    holding = not holding
                    self._hold_notifications(+1 if holding else -1)
                await self.clock.sleep(max(shared, own) - now)
        finally:
            if holding:
                self._hold_notifications(-1)

    def _hold_notifications(self, change: int) -> None:
        self._replies_waiting += change
        if self._replies_waiting:
            self._no_replies_waiting.clear()
        else:
            self._no_replies_waiting.set()

    def pause_for(self, seconds: float) -> None:
        """Hold every send (the whole queue) for `seconds`: Telegram said 429."""
        self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)

    def _ready_at(self, chat: str, priority: Priority, now: float) -> float:
        return max(self._shared_ready_at(priority, now), self._own_ready_at(chat, now))

    def _shared_ready_at(self, priority: Priority, now: float) -> float:
        """When the capacity all chats share (pause, global window, spacing) next allows one."""
        share = (
            self.limits.global_per_second
            if priority is Priority.REPLY
            else self.limits.notifications_per_second
        )
        times = [now, self._paused_until, self._global.next_free(now, share)]
        if priority is Priority.NOTIFICATION:
            times.append(self._next_notification)
        return max(times)

    def _own_ready_at(self, chat: str, now: float) -> float:
        """When this chat's own window (and its group's, for a group) next allows one."""
        times = [now, self._chat_window(chat).next_free(now)]
        if chat.startswith("-"):
            times.append(self._group_window(chat).next_free(now))
        return max(times)

    def _record(self, chat: str, priority: Priority, now: float) -> None:
        if priority is Priority.NOTIFICATION:
            # Keep to the ideal schedule when a wake-up was a little late, so small delays
            # do not add up over a long fan-out; after a pause or idle time, start afresh.
            ideal = max(self._next_notification, now - self._notification_gap / 2)
            self._next_notification = ideal + self._notification_gap
        self._global.record(now)
        self._chat_window(chat).record(now)
        if chat.startswith("-"):
            self._group_window(chat).record(now)
        self._forget_idle(now)

    def _chat_window(self, chat: str) -> SlidingWindow:
        return self._chats.setdefault(chat, SlidingWindow(self.limits.per_chat))

    def _group_window(self, chat: str) -> SlidingWindow:
        return self._groups.setdefault(chat, SlidingWindow(self.limits.per_group))

    def _forget_idle(self, now: float) -> None:
        # Keep memory bounded over thousands of chats: drop windows with nothing left in them.
        if len(self._chats) > 4096:
            self._chats = {k: w for k, w in self._chats.items() if not w.idle(now)}
        if len(self._groups) > 4096:
            self._groups = {k: w for k, w in self._groups.items() if not w.idle(now)}


def backoff_seconds(
    attempt: int, rng: random.Random, base: float = 5.0, cap: float = 900.0
) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries spread out."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def log_send(channel: str, notice: Notice, result: SendResult, latency_ms: float) -> SendResult:
    """The one log line every send writes; returns `result` so a send can end with it."""
    SEND_LOG.info(
        "send event=%s channel=%s recipient=%s outcome=%s status=%s latency_ms=%.1f %s",
        notice.event.id,
        channel,
        recipient_hash(notice.recipient),
        result.outcome.value,
        result.http_status if result.http_status is not None else "-",
        latency_ms,
        result.detail,
    )
    return result
