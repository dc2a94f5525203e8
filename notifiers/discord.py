"""The Discord channel: one embed per event, posted to a channel's webhook.

Decisions a reader needs:
- Events that queue up go out together, up to 10 embeds (and 6,000 characters) in one message.
- Shop text is hostile: every dynamic text is escaped for Discord's markdown and every `@` is
  broken with a zero-width space, and `allowed_mentions` is empty, so a title such as
  "@everyone **FREE**" neither pings nor formats anything.
- Discord allows a webhook about 5 requests in 2 seconds; we keep under that with a sliding
  window, and when its headers say the bucket is empty (`X-RateLimit-Remaining: 0`) we wait
  `X-RateLimit-Reset-After`. A 429 means the message was not taken: we wait its `retry_after`
  and resend, a few times, then hand the wait to the outbox.
- `?wait=true` makes Discord answer only once the message exists, so a 2xx means delivered.
  A timeout is retried (at least once: a missed restock is worse than a repeated one).
- The webhook URL holds its token; it is masked in every log line.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from notifiers.base import Notice, Notifier, SendResult
from notifiers.pacing import SlidingWindow, Window, backoff_seconds, log_send
from notifiers.render import Facts, Language, facts, pick_language, shorten
from watcher.clock import Clock, SystemClock
from watcher.core.model import EventKind
from watcher.logredact import MIN_PART, SecretScope
from watcher.net.headers import parse_retry_after

USER_AGENT = "restock-watcher (+discord)"
EMBEDS_MAX = 10
MESSAGE_CHARS_MAX = 6000  # all embeds' text together
TITLE_MAX = 256
FIELD_MAX = 1024
URL_MAX = 2048
WEBHOOK_WINDOW = Window(5, 2.0)
MAX_RETRY_WAIT = 60.0  # longer waits go back to the outbox

# Markdown Discord reads in embeds, escaped with a backslash; `@` is broken separately.
_MARKDOWN = re.compile(r"([\\*_~`|>#\[\]()<:-])")
_ZERO_WIDTH_SPACE = "\u200b"
_COLOURS: dict[EventKind, int] = {
    EventKind.RESTOCK: 0xD32F2F,
    EventKind.PREORDER_OPEN: 0x1565C0,
    EventKind.PRICE_DROP: 0x2E7D32,
    EventKind.OUT_OF_STOCK: 0x616161,
}


def escape_discord(text: str) -> str:
    """Shown literally by Discord: no markdown, no mention, no masked link."""
    return _MARKDOWN.sub(r"\\\1", text).replace("@", "@" + _ZERO_WIDTH_SPACE)


def wait_url(webhook_url: str) -> str:
    """The webhook URL with `wait=true` (other query parameters, e.g. thread_id, kept)."""
    parts = urlsplit(webhook_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit((*parts[:3], urlencode(query), parts.fragment))


def embed(notice: Notice, language: Language) -> dict[str, Any]:
    """One event as an embed; every text escaped and cut to Discord's limits."""
    f = facts(notice.event, language, TITLE_MAX)
    item: dict[str, Any] = {
        "title": _cut(f"{f.headline} {f.title}", TITLE_MAX),
        "color": _COLOURS.get(notice.event.kind, 0x212121),
        "fields": _fields(f),
        "timestamp": notice.event.observed_at.isoformat(),
    }
    if f.url and len(f.url) <= URL_MAX:
        item["url"] = f.url
        link = f.url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
        item["description"] = f"[{escape_discord(f.labels['open'])}]({link})"
    return item


def _fields(f: Facts) -> list[dict[str, Any]]:
    return [
        {"name": _cut(name, TITLE_MAX), "value": _cut(value, FIELD_MAX), "inline": True}
        for name, value in f.detail_lines()
    ]


def _cut(text: str, limit: int) -> str:
    """Escaped text within `limit` characters (cut before escaping, so no escape is split)."""
    room = limit
    while True:
        escaped = escape_discord(shorten(text, room))
        if len(escaped) <= limit:
            return escaped or "-"
        room -= len(escaped) - limit


def embed_chars(item: dict[str, Any]) -> int:
    fields = item.get("fields", [])
    texts = [item.get("title", ""), item.get("description", "")]
    texts += [part for field in fields for part in (field["name"], field["value"])]
    return sum(len(text) for text in texts)


class DiscordNotifier(Notifier):
    name: ClassVar[str] = "discord"
    max_length: ClassVar[int] = MESSAGE_CHARS_MAX
    batch_size: ClassVar[int] = 50

    def __init__(
        self,
        *,
        webhook_url: str,
        language: Language = "ja",
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        max_rate_waits: int = 3,
        rng: random.Random | None = None,
    ) -> None:
        self.url = wait_url(webhook_url)
        self.language: Language = language
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.max_rate_waits = max_rate_waits
        self.window = SlidingWindow(WEBHOOK_WINDOW)
        self._blocked_until = 0.0  # monotonic time the webhook's bucket refills
        self._secrets = SecretScope([webhook_url, self.url, *_token_of(webhook_url)])
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        finally:
            self._secrets.close()

    async def send(self, notice: Notice) -> SendResult:
        return (await self.send_batch([notice]))[0]

    async def send_batch(self, notices: Sequence[Notice]) -> list[SendResult]:
        results: list[SendResult] = []
        for message in self.messages(notices):
            began = self.clock.monotonic()
            result = await self._post(message)
            latency = (self.clock.monotonic() - began) * 1000
            results += [log_send(self.name, n, result, latency) for n in message]
        return results

    def messages(self, notices: Sequence[Notice]) -> list[list[Notice]]:
        """Notices packed in order into messages of at most 10 embeds and 6,000 characters."""
        packed: list[list[Notice]] = []
        size = 0
        for notice in notices:
            chars = embed_chars(embed(notice, self._language(notice)))
            if not packed or len(packed[-1]) >= EMBEDS_MAX or size + chars > MESSAGE_CHARS_MAX:
                packed.append([])
                size = 0
            packed[-1].append(notice)
            size += chars
        return packed

    def payload(self, notices: Sequence[Notice]) -> dict[str, Any]:
        return {
            "embeds": [embed(n, self._language(n)) for n in notices],
            "allowed_mentions": {"parse": []},
        }

    def _language(self, notice: Notice) -> Language:
        return pick_language(notice.language, self.language)

    async def _post(self, notices: Sequence[Notice]) -> SendResult:
        body = self.payload(notices)
        attempt = max(n.attempt for n in notices)
        for _ in range(self.max_rate_waits + 1):
            await self._pace()
            try:
                response = await self.client.post(self.url, json=body)
            except httpx.HTTPError as exc:
                return self._backoff(attempt, f"Discord unreachable: {type(exc).__name__}", None)
            self._read_bucket(response)
            if response.status_code != 429:
                return self._judge(response, attempt)
            wait = self._retry_after(response)
            if wait > MAX_RETRY_WAIT:
                break
            self._blocked_until = max(self._blocked_until, self.clock.monotonic() + wait)
        at = self.clock.now() + timedelta(seconds=self._retry_after_or(response, attempt))
        return SendResult.retry(at, "Discord rate limit", http_status=429)

    async def _pace(self) -> None:
        while True:
            now = self.clock.monotonic()
            ready = max(self.window.next_free(now), self._blocked_until)
            if ready <= now:
                self.window.record(now)
                return
            await self.clock.sleep(ready - now)

    def _read_bucket(self, response: httpx.Response) -> None:
        """An empty bucket (remaining 0) waits for its reset before the next request."""
        if response.headers.get("x-ratelimit-remaining") != "0":
            return
        reset = _seconds(response.headers.get("x-ratelimit-reset-after"))
        if reset is not None:
            until = self.clock.monotonic() + min(reset, MAX_RETRY_WAIT)
            self._blocked_until = max(self._blocked_until, until)

    def _retry_after(self, response: httpx.Response) -> float:
        try:
            body = response.json()
        except (ValueError, RecursionError):
            body = None
        if isinstance(body, dict):
            value = _seconds(body.get("retry_after"))
            if value is not None:
                return value
        header = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
        return header if header is not None else 1.0

    def _retry_after_or(self, response: httpx.Response, attempt: int) -> float:
        wait = self._retry_after(response)
        return wait if wait > 0 else backoff_seconds(attempt, self.rng)

    def _judge(self, response: httpx.Response, attempt: int) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return SendResult.sent(http_status=status)
        if status >= 500:
            return self._backoff(attempt, f"Discord answered {status}", status)
        if status == 404:
            return SendResult.failed("the webhook no longer exists", http_status=404)
        detail = self._secrets.mask(response.text[:200])
        return SendResult.failed(f"Discord refused ({status}): {detail}", http_status=status)

    def _backoff(self, attempt: int, detail: str, status: int | None) -> SendResult:
        at = self.clock.now() + timedelta(seconds=backoff_seconds(attempt, self.rng))
        return SendResult.retry(at, detail, http_status=status)


def _seconds(value: Any) -> float | None:
    """A non-negative number of seconds from a header or JSON value; None if it is not one."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < 86_400 else None


def _token_of(webhook_url: str) -> list[str]:
    """The webhook's token (the last path part), masked on its own too."""
    last = urlsplit(webhook_url).path.rstrip("/").rpartition("/")[2]
    return [last] if len(last) >= MIN_PART else []
