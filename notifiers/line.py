"""The LINE channel: alerts as Flex messages through the Messaging API, within the monthly quota.

Decisions a reader needs:
- One event's recipients who read the same language get one identical message: a multicast of
  at most 500 user ids per request, or a push when there is one recipient.
- Every request carries `X-Line-Retry-Key`, a UUID derived from the event, the language and the
  exact recipients. A resend after a timeout, a 5xx or a crash between the send and the record
  therefore carries the same key, and LINE answers 409 instead of delivering it twice: 409 is
  success.
- 429 (rate limit) and 5xx come back as retries for the outbox, at Retry-After or after a
  jittered backoff. A 429 saying the monthly limit is reached is the quota, not a rate limit.
- The monthly quota is a budget (`line_quota`): read from LINE at start and every few minutes,
  counted down by what we send in between. When an event's fan-out is larger than what is left,
  `quota_policy` decides (stop: nobody; oldest_first: the longest-standing subscriptions) and
  the rest fail for good with a detail starting `quota`, so they are listed as dead letters.
  A quota that cannot be read does not hold alerts back: LINE refuses what is over it anyway.
- The policy sees what one batch holds of an event, so batches are large (`batch_size`): an
  event of up to 1,500 LINE recipients is decided at once.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import httpx

from notifiers.base import Notice, Notifier, SendResult
from notifiers.line_api import MULTICAST_MAX, Answer, LineApi
from notifiers.line_flex import flex_message
from notifiers.line_quota import QUOTA_REASON, Quota, QuotaPolicy, plan_fan_out
from notifiers.pacing import backoff_seconds, log_send
from notifiers.render import Language, pick_language
from watcher.clock import Clock, SystemClock
from watcher.logredact import SecretScope
from watcher.net.headers import parse_retry_after

log = logging.getLogger("restock.notify")

RETRY_KEY_NAMESPACE = uuid.UUID("6f1c8e1a-3b7d-5c2e-9a4f-0d8b7e6c5a41")
MONTHLY_LIMIT_HINT = "monthly limit"  # LINE's 429 message when the quota is spent


@dataclass(frozen=True, slots=True)
class _Group:
    """One event's recipients in one language: they all get the identical message."""

    language: Language
    notices: list[Notice]


def retry_key(event_key: str, language: str, recipients: Sequence[str]) -> str:
    """The same request (event, language, recipients) always gets the same key."""
    name = f"{event_key}\n{language}\n" + "\n".join(sorted(recipients))
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, name))


class LineNotifier(Notifier):
    name: ClassVar[str] = "line"
    max_length: ClassVar[int] = 5000
    batch_size: ClassVar[int] = 3 * MULTICAST_MAX
    fans_out: ClassVar[bool] = True

    def __init__(
        self,
        *,
        channel_access_token: str,
        api_base_url: str = "https://api.line.me",
        quota_policy: QuotaPolicy | str = QuotaPolicy.STOP,
        language: Language = "ja",
        quota_refresh: timedelta = timedelta(minutes=5),
        on_quota: Callable[[Quota], None] | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.language: Language = language
        self.quota_policy = QuotaPolicy(quota_policy)
        self.quota_refresh = quota_refresh
        self.on_quota = on_quota
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.quota: Quota | None = None
        self._secrets = SecretScope([channel_access_token])
        self.api = LineApi(
            token=channel_access_token,
            clock=self.clock,
            base_url=api_base_url,
            transport=transport,
            timeout=timeout,
        )

    async def start(self) -> None:
        await self.refresh_quota()

    async def aclose(self) -> None:
        try:
            await self.api.aclose()
        finally:
            self._secrets.close()

    # --- quota ---------------------------------------------------------------------------------

    async def refresh_quota(self) -> Quota | None:
        """Read this month's figures from LINE; on failure keep the last ones (and say so)."""
        read = await self.api.quota()
        if isinstance(read, Answer):
            log.warning("line: quota not read (%s %s)", read.status or "-", read.message)
            return self.quota
        self._set_quota(read if self.quota is None else self.quota.merged_with(read))
        return self.quota

    async def _quota_left(self) -> int | None:
        quota = self.quota
        if quota is None or self.clock.now() - quota.read_at >= self.quota_refresh:
            quota = await self.refresh_quota()
        return None if quota is None else quota.left

    def _set_quota(self, quota: Quota) -> None:
        self.quota = quota
        if self.on_quota is not None:
            self.on_quota(quota)

    def _spend(self, messages: int) -> None:
        if self.quota is not None:
            self._set_quota(self.quota.spend(messages))

    # --- sending -------------------------------------------------------------------------------

    async def send(self, notice: Notice) -> SendResult:
        return (await self.send_batch([notice]))[0]

    async def send_batch(self, notices: Sequence[Notice]) -> list[SendResult]:
        results: dict[int, SendResult] = {}
        for group in self._groups(notices):
            await self._send_group(group, results)
        return [results[id(n)] for n in notices]

    def _groups(self, notices: Sequence[Notice]) -> list[_Group]:
        """Recipients per (event, language), older events first."""
        groups: dict[tuple[int, str, Language], _Group] = {}
        for notice in notices:
            language = pick_language(notice.language, self.language)
            key = (notice.event.id or 0, notice.event.watch_key, language)
            groups.setdefault(key, _Group(language, [])).notices.append(notice)
        return [groups[key] for key in sorted(groups, key=lambda k: (k[0], k[1], k[2]))]

    async def _send_group(self, group: _Group, results: dict[int, SendResult]) -> None:
        left = await self._quota_left()
        plan = plan_fan_out(group.notices, left, self.quota_policy)
        if plan.refused:
            refusal = SendResult.failed(
                f"{QUOTA_REASON}: {left} messages left this month, the event needs "
                f"{len(group.notices)} (quota_policy {self.quota_policy.value})"
            )
            for notice in plan.refused:
                results[id(notice)] = log_send(self.name, notice, refusal, 0.0)
        ordered = sorted(plan.send, key=lambda n: n.delivery_id)
        for start in range(0, len(ordered), MULTICAST_MAX):
            chunk = ordered[start : start + MULTICAST_MAX]
            began = self.clock.monotonic()
            result = await self._deliver(chunk, group.language)
            latency = (self.clock.monotonic() - began) * 1000
            for notice in chunk:
                results[id(notice)] = log_send(self.name, notice, result, latency)

    async def _deliver(self, chunk: Sequence[Notice], language: Language) -> SendResult:
        event = chunk[0].event
        recipients = [n.recipient for n in chunk]
        key = retry_key(_event_key(chunk[0]), language, recipients)
        messages = [flex_message(event, language)]
        if len(recipients) == 1:
            answer = await self.api.push(recipients[0], messages, key)
        else:
            answer = await self.api.multicast(recipients, messages, key)
        return self._judge(answer, len(recipients), max(n.attempt for n in chunk))

    def _judge(self, answer: Answer, count: int, attempt: int) -> SendResult:
        status = answer.status
        if answer.ok or status == 409:
            # 409: this very request (same retry key) was accepted before; the quota was spent.
            self._spend(count)
            detail = "accepted earlier (retry key)" if status == 409 else ""
            return SendResult.sent(detail, http_status=status)
        if status == 429 and MONTHLY_LIMIT_HINT in answer.message.lower():
            if self.quota is not None:
                self._set_quota(self.quota.exhausted())
            return SendResult.failed(f"{QUOTA_REASON}: LINE's monthly limit is reached", 429)
        if status is None or status == 429 or status >= 500:
            return self._retry(answer, attempt)
        if status == 401:
            return SendResult.failed("channel access token rejected by LINE", http_status=401)
        detail = self._secrets.mask(answer.message or "no message")
        return SendResult.failed(f"LINE refused ({status}): {detail}", http_status=status)

    def _retry(self, answer: Answer, attempt: int) -> SendResult:
        wait = parse_retry_after(answer.retry_after, self.clock.now())
        if wait is None:
            wait = backoff_seconds(attempt, self.rng)
        what = f"LINE answered {answer.status}" if answer.status else "LINE unreachable"
        detail = f"{what}: {answer.message}" if answer.message else what
        at = self.clock.now() + timedelta(seconds=wait)
        return SendResult.retry(at, detail, http_status=answer.status)


def _event_key(notice: Notice) -> str:
    event = notice.event
    if event.id is not None:
        return f"event:{event.id}"
    return f"{event.watch_key}:{event.kind.value}:{event.observed_at.isoformat()}"
