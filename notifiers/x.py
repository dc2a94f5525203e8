"""The X channel: one public post per event, through tweepy, run off the event loop.

Checked before any request: the event's age (`max_age`), the `include_url` switch, and a daily
budget of post cost units in a rolling 24 hours (X bills per post, a post with a URL costs more).
The budget (`notifiers.post_budget`) is the database's under `restock run`, so it survives a
restart and every worker spends from the same one; X's own 24-hour limit (429 with
`x-user-limit-24hour-reset`) stays the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
import tweepy

from notifiers.base import Notice, Notifier, SendResult
from notifiers.pacing import backoff_seconds, log_send
from notifiers.post_budget import BudgetUnavailable, LocalPostBudget, PostBudget
from notifiers.render import Language, pick_language, render_x
from watcher.clock import Clock, SystemClock

log = logging.getLogger(__name__)

DUPLICATE = "duplicate content"
# (connect, read) seconds for each request, and a bound on a whole send: requests has no default
# timeout, so a stalled connection would otherwise hold a worker thread (and shutdown) forever.
REQUEST_TIMEOUT = (5.0, 15.0)
SEND_TIMEOUT = 30.0


class TimeoutSession(requests.Session):
    """A requests session that gives every request a timeout unless the caller set one."""

    def __init__(self, timeout: tuple[float, float] = REQUEST_TIMEOUT) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(*args, **kwargs)


class XNotifier(Notifier):
    name: ClassVar[str] = "x"
    max_length: ClassVar[int] = 280

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        access_token: str,
        access_token_secret: str,
        language: Language = "ja",
        include_url: bool = True,
        daily_budget: int = 17,
        budget: PostBudget | None = None,
        url_post_cost: int = 1,
        max_age: timedelta = timedelta(minutes=15),
        request_timeout: tuple[float, float] = REQUEST_TIMEOUT,
        send_timeout: float = SEND_TIMEOUT,
        clock: Clock | None = None,
        client: tweepy.Client | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.language: Language = language
        self.include_url = include_url
        # Without a shared budget (no database: `restock notify-test`), one in memory.
        self.budget = budget or LocalPostBudget(daily_budget)
        self.url_post_cost = url_post_cost
        self.max_age = max_age
        self.send_timeout = send_timeout
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        # Never wait_on_rate_limit: a sleeping thread would hide the reset time from the dispatcher.
        self.client = client or tweepy.Client(
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            wait_on_rate_limit=False,
        )
        if client is None:
            self.client.session = TimeoutSession(request_timeout)

    @property
    def daily_budget(self) -> int:
        return self.budget.limit

    async def budget_left(self) -> int:
        """Cost units still free in the rolling 24 hours (BudgetUnavailable if unreadable)."""
        return await self.budget.left(self.clock.now())

    async def send(self, notice: Notice) -> SendResult:
        started = self.clock.monotonic()
        result = await self._send(notice)
        log_send(self.name, notice, result, (self.clock.monotonic() - started) * 1000)
        return result

    async def _send(self, notice: Notice) -> SendResult:
        age = self.clock.now() - notice.event.observed_at
        if age > self.max_age:
            return SendResult.skipped(f"stale: observed {int(age.total_seconds())} s ago")
        with_url = self.include_url and bool(notice.event.url)
        cost = self.url_post_cost if with_url else 1
        # Taken before the post, check and record in one step: two workers never both post on
        # the budget's last unit.
        try:
            spend = await self.budget.take(cost, self.clock.now())
        except BudgetUnavailable as exc:
            return self._backoff(notice, f"post budget unreadable: {exc}", None)
        if spend is None:
            return SendResult.skipped("daily post budget spent")
        language = pick_language(notice.language, self.language)
        text = render_x(notice.event, language, include_url=with_url)
        try:
            response = await asyncio.wait_for(
                asyncio.to_thread(self.client.create_tweet, text=text, user_auth=True),
                self.send_timeout,
            )
        except TimeoutError:
            # The thread may still finish the post, so its spend is kept; a retry of it is
            # refused as a duplicate.
            return self._backoff(notice, f"X timed out after {self.send_timeout:g} s", None)
        except tweepy.HTTPException as exc:
            await self._give_back(spend)
            return self._judge(exc, notice)
        except (tweepy.TweepyException, requests.RequestException, OSError) as exc:
            await self._give_back(spend)
            return self._backoff(notice, f"X unreachable: {type(exc).__name__}", None)
        post_id = getattr(response, "data", None) or {}
        return SendResult.sent(f"post {post_id.get('id', '?')}", http_status=201)

    async def _give_back(self, spend: int) -> None:
        try:
            await self.budget.give_back(spend)
        except BudgetUnavailable as exc:  # the units stay spent until the window rolls past
            log.warning("X: the spend of a post that did not go stays counted: %s", exc)

    def _judge(self, exc: tweepy.HTTPException, notice: Notice) -> SendResult:
        status = exc.response.status_code
        messages = " ".join(exc.api_messages) or str(exc)
        if status == 403 and DUPLICATE in messages.lower():
            return SendResult.skipped("duplicate content")
        if status in (401, 403):
            return SendResult.failed(f"X refused ({status}): {messages}", http_status=status)
        if status == 429:
            return SendResult.retry(self._reset_time(exc), "X rate limit", http_status=429)
        if status >= 500:
            return self._backoff(notice, f"X server error {status}", status)
        return SendResult.failed(f"X rejected ({status}): {messages}", http_status=status)

    def _reset_time(self, exc: tweepy.HTTPException) -> datetime:
        """When X will take posts again: the 24-hour reset if that budget is spent."""
        headers = exc.response.headers
        reset = headers.get("x-rate-limit-reset")
        if headers.get("x-user-limit-24hour-remaining") == "0":
            reset = headers.get("x-user-limit-24hour-reset") or reset
        if reset and reset.isdigit():
            return datetime.fromtimestamp(int(reset), UTC)
        return self.clock.now() + timedelta(minutes=15)

    def _backoff(self, notice: Notice, detail: str, status: int | None) -> SendResult:
        at = self.clock.now() + timedelta(seconds=backoff_seconds(notice.attempt, self.rng))
        return SendResult.retry(at, detail, http_status=status)
