"""The e-mail channel: one UTF-8 multipart message per recipient over one SMTP connection a batch.

TLS is explicit: `starttls` or `implicit`; `none` only when the operator writes it (a local
relay). Titles are cleaned to one line before they reach the subject, so a shop's title can never
add a header. A refused recipient fails for that address alone; a lost connection is a retry.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import ClassVar, Literal
from urllib.parse import urlencode

import aiosmtplib

from notifiers.base import Notice, Notifier, ResultSink, SendResult
from notifiers.pacing import backoff_seconds, log_send
from notifiers.render import Language, email_subject, pick_language, render_email_html, render_text
from watcher.clock import Clock, SystemClock
from watcher.unsubscribe import unsubscribe_token

Tls = Literal["starttls", "implicit", "none"]
TLS_MODES: tuple[Tls, ...] = ("starttls", "implicit", "none")
SUBJECT_TITLE_MAX = 80


class EmailNotifier(Notifier):
    name: ClassVar[str] = "email"
    max_length: ClassVar[int] = 100_000

    def __init__(
        self,
        *,
        host: str,
        sender: str,
        port: int | None = None,
        tls: Tls = "starttls",
        username: str | None = None,
        password: str | None = None,
        language: Language = "ja",
        public_url: str | None = None,
        unsubscribe_secret: str | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, got {tls!r}")
        self.host = host
        self.port = port or {"starttls": 587, "implicit": 465, "none": 25}[tls]
        self.tls: Tls = tls
        self.sender = sender
        self.sender_address = parseaddr(sender)[1]
        self.username = username
        self._password = password
        self.language: Language = language
        self.public_url = public_url.rstrip("/") if public_url else None
        self._unsubscribe_secret = unsubscribe_secret
        self.timeout = timeout
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()

    async def send(self, notice: Notice) -> SendResult:
        return (await self.send_batch([notice]))[0]

    async def send_batch(self, notices: Sequence[Notice]) -> list[SendResult]:
        return await self.send_streaming(notices, _ignore)

    async def send_streaming(
        self, notices: Sequence[Notice], report: ResultSink
    ) -> list[SendResult]:
        """Connect once, send one message per notice, each to its own recipient only."""
        if not notices:
            return []
        started = self.clock.monotonic()
        smtp = self._client()
        try:
            await smtp.connect()
            if self.username:
                await smtp.login(self.username, self._password or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            failed = SendResult.failed(f"SMTP login refused: {exc.code}", http_status=exc.code)
            return [self._logged(n, failed, started) for n in notices]
        except (aiosmtplib.SMTPException, OSError) as exc:
            return [self._logged(n, self._retry(n, exc), started) for n in notices]
        try:
            results = []
            for notice in notices:
                results.append(await self._send_one(smtp, notice))
                report(notice, results[-1])
            return results
        finally:
            await _quit(smtp)

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "implicit",
            start_tls=self.tls == "starttls",
            timeout=self.timeout,
        )

    async def _send_one(self, smtp: aiosmtplib.SMTP, notice: Notice) -> SendResult:
        started = self.clock.monotonic()
        try:
            if not smtp.is_connected:
                raise aiosmtplib.SMTPServerDisconnected("connection lost earlier in the batch")
            await smtp.send_message(
                self.message(notice), sender=self.sender_address, recipients=[notice.recipient]
            )
            result = SendResult.sent(http_status=250)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            result = self._refused(exc, notice)
        except aiosmtplib.SMTPResponseException as exc:
            result = (
                SendResult.failed(f"SMTP refused: {exc.code} {exc.message}", http_status=exc.code)
                if exc.code >= 500
                else self._retry(notice, exc)
            )
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            result = self._retry(notice, exc)
        return self._logged(notice, result, started)

    def message(self, notice: Notice) -> EmailMessage:
        """The message for one recipient: plain and HTML parts, List-Unsubscribe headers."""
        event = notice.event
        language = pick_language(notice.language, self.language)
        msg = EmailMessage()
        msg["Subject"] = email_subject(event, language, SUBJECT_TITLE_MAX)
        msg["From"] = self.sender
        msg["To"] = Address(addr_spec=notice.recipient)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender_address.rpartition("@")[2] or None)
        msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in self.unsubscribe_links(notice))
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(render_text(event, language), charset="utf-8")
        msg.add_alternative(render_email_html(event, language), subtype="html", charset="utf-8")
        return msg

    def unsubscribe_links(self, notice: Notice) -> list[str]:
        links = [f"mailto:{self.sender_address}?subject=unsubscribe"]
        if self.public_url and self._unsubscribe_secret:
            key = notice.event.watch_key
            token = unsubscribe_token(self._unsubscribe_secret, notice.recipient, key)
            query = urlencode({"watch": key, "to": notice.recipient, "token": token})
            links.append(f"{self.public_url}/unsubscribe?{query}")
        return links

    def _refused(self, exc: aiosmtplib.SMTPRecipientsRefused, notice: Notice) -> SendResult:
        """A 5xx RCPT refusal is final for this address; 4xx (greylisting, full box) retries."""
        code = exc.recipients[0].code if exc.recipients else None
        if code is not None and code < 500:
            return self._retry(notice, exc)
        return SendResult.failed(f"recipient refused: {code}", http_status=code)

    def _retry(self, notice: Notice, exc: BaseException) -> SendResult:
        at = self.clock.now() + timedelta(seconds=backoff_seconds(notice.attempt, self.rng))
        code = getattr(exc, "code", None)
        return SendResult.retry(
            at, f"SMTP: {type(exc).__name__}", http_status=code if isinstance(code, int) else None
        )

    def _logged(self, notice: Notice, result: SendResult, started: float) -> SendResult:
        log_send(self.name, notice, result, (self.clock.monotonic() - started) * 1000)
        return result


def _ignore(notice: Notice, result: SendResult) -> None:
    """A sink for callers that take the results when the batch ends."""


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
