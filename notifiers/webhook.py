"""The webhook channel: POSTs `Event.to_webhook_json()` to one URL, once per event.

2xx is sent; 429 and 5xx come back as a retry (at Retry-After when the server gives one, else
after a jittered backoff); any other 4xx is a permanent failure. The receiver can drop repeats by
the `Idempotency-Key` header, which stays the same across retries of one delivery.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar

import httpx

from notifiers.base import Notice, Notifier, SendResult
from notifiers.pacing import backoff_seconds, log_send
from watcher.clock import Clock, SystemClock
from watcher.net.headers import parse_retry_after

USER_AGENT = "restock-watcher (+webhook)"


class WebhookNotifier(Notifier):
    name: ClassVar[str] = "webhook"
    workers: ClassVar[int] = 4

    def __init__(
        self,
        *,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            follow_redirects=False,
        )

    async def send(self, notice: Notice) -> SendResult:
        started = self.clock.monotonic()
        result = await self._post(notice)
        log_send(self.name, notice, result, (self.clock.monotonic() - started) * 1000)
        return result

    async def _post(self, notice: Notice) -> SendResult:
        try:
            response = await self.client.post(
                self.url,
                json=notice.event.to_webhook_json(),
                headers={"Idempotency-Key": notice.idempotency_key},
            )
        except httpx.HTTPError as exc:
            return self._retry(notice, None, f"webhook unreachable: {type(exc).__name__}")
        return self._judge(notice, response)

    def _judge(self, notice: Notice, response: httpx.Response) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return SendResult.sent(http_status=status)
        if status == 429 or status >= 500:
            wait = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
            return self._retry(notice, status, f"webhook answered {status}", wait)
        return SendResult.failed(f"webhook refused: {status}", http_status=status)

    def _retry(
        self, notice: Notice, status: int | None, detail: str, wait: float | None = None
    ) -> SendResult:
        if wait is None:
            wait = backoff_seconds(notice.attempt, self.rng)
        at = self.clock.now() + timedelta(seconds=wait)
        return SendResult.retry(at, detail, http_status=status)

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
