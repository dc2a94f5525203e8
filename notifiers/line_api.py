"""A small client of LINE's Messaging API: the calls this project makes, each within its rate limit.

LINE limits every endpoint on its own, per channel (multicast 200 requests a second, push, reply
and the quota reads 2,000); a request over the limit is refused with 429. `EndpointPacer` keeps a
sliding one-second window per endpoint, a little under LINE's figure, and waits through the
injected clock. Answers come back as values (`Answer`); transport errors as `Answer(status=None)`.
The channel access token is only ever in the Authorization header, never in a URL or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from notifiers.line_quota import Quota
from notifiers.pacing import SlidingWindow, Window
from watcher.clock import Clock

DEFAULT_API = "https://api.line.me"
MULTICAST = "/v2/bot/message/multicast"
PUSH = "/v2/bot/message/push"
REPLY = "/v2/bot/message/reply"
QUOTA = "/v2/bot/message/quota"
CONSUMPTION = "/v2/bot/message/quota/consumption"
MULTICAST_MAX = 500  # user ids in one multicast request
MESSAGES_MAX = 5  # message objects in one request

# LINE's published per-channel limits (requests per second), with a tenth kept as headroom for
# other workers and clock skew.
RATE_LIMITS: Mapping[str, int] = {MULTICAST: 180, PUSH: 1800, REPLY: 1800}
DEFAULT_RATE = 1800
USER_AGENT = "restock-watcher (+line)"


@dataclass(frozen=True, slots=True)
class Answer:
    """LINE's answer to one request; `status` None when no answer came (network, timeout)."""

    status: int | None
    message: str = ""  # LINE's error message, or the transport error's name
    retry_after: str | None = None
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class EndpointPacer:
    """At most `RATE_LIMITS[path]` requests in any one second, per endpoint."""

    def __init__(self, clock: Clock, limits: Mapping[str, int] = RATE_LIMITS) -> None:
        self.clock = clock
        self.limits = dict(limits)
        self._windows: dict[str, SlidingWindow] = {}

    async def acquire(self, path: str) -> None:
        window = self._windows.get(path)
        if window is None:
            rule = Window(self.limits.get(path, DEFAULT_RATE), 1.0)
            window = self._windows[path] = SlidingWindow(rule)
        while True:
            now = self.clock.monotonic()
            ready = window.next_free(now)
            if ready <= now:
                window.record(now)
                return
            await self.clock.sleep(ready - now)


class LineApi:
    def __init__(
        self,
        *,
        token: str,
        clock: Clock,
        base_url: str = DEFAULT_API,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        pacer: EndpointPacer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.pacer = pacer or EndpointPacer(clock)
        self._token = token
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def multicast(self, to: Sequence[str], messages: Sequence[Any], retry_key: str) -> Answer:
        body = {"to": list(to), "messages": list(messages)}
        return await self._call("POST", MULTICAST, body, retry_key)

    async def push(self, to: str, messages: Sequence[Any], retry_key: str) -> Answer:
        return await self._call("POST", PUSH, {"to": to, "messages": list(messages)}, retry_key)

    async def reply(self, reply_token: str, messages: Sequence[Any]) -> Answer:
        body = {"replyToken": reply_token, "messages": list(messages)}
        return await self._call("POST", REPLY, body)

    async def quota(self) -> Quota | Answer:
        """This month's limit and use, or the failed answer that kept us from reading them."""
        limit = await self._call("GET", QUOTA)
        if not limit.ok:
            return limit
        used = await self._call("GET", CONSUMPTION)
        if not used.ok:
            return used
        return quota_from(limit.body, used.body, self.clock) or Answer(
            limit.status, "unreadable quota answer"
        )

    async def _call(
        self, method: str, path: str, body: Any = None, retry_key: str | None = None
    ) -> Answer:
        await self.pacer.acquire(path)
        headers = {"Authorization": f"Bearer {self._token}"}
        if retry_key is not None:
            headers["X-Line-Retry-Key"] = retry_key
        content = None
        if body is not None:
            # ensure_ascii=False: Japanese text as UTF-8, a third of the escaped size.
            content = json.dumps(body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            response = await self.client.request(
                method, self.base_url + path, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            return Answer(None, type(exc).__name__)
        return _answer(response)


def _answer(response: httpx.Response) -> Answer:
    try:
        body = response.json() if response.content else None
    except (ValueError, RecursionError):
        body = None
    message = ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"][:300]
    return Answer(response.status_code, message, response.headers.get("retry-after"), body)


def quota_from(limit: Any, consumption: Any, clock: Clock) -> Quota | None:
    """The two quota answers as one `Quota`; None when either is not what LINE sends."""
    if not isinstance(limit, dict) or not isinstance(consumption, dict):
        return None
    used = _count(consumption.get("totalUsage"))
    if used is None:
        return None
    if limit.get("type") == "none":
        return Quota(None, used, clock.now())
    value = _count(limit.get("value"))
    if limit.get("type") != "limited" or value is None:
        return None
    return Quota(value, used, clock.now())


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
