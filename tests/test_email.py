"""E-mail notifier against a real aiosmtpd server on loopback; we parse what it received."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from notifiers.base import Notice
from notifiers.email import EmailNotifier
from watcher.core.model import Availability, Event, EventKind, Outcome
from watcher.unsubscribe import unsubscribe_token

REJECTED = "gone@example.net"


@dataclass
class Received:
    envelope_to: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """An SMTP handler: keeps every message, refuses one address at RCPT."""

    messages: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ):
        if address == REJECTED:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(Received(list(envelope.rcpt_tos), parsed))
        return "250 queued"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def event(
    title: str = "ポケモンカード 拡張パック BOX", kind: EventKind = EventKind.RESTOCK
) -> Event:
    return Event(
        kind=kind,
        watch_key="pkmn-box",
        watch_name="Pokémon card box",
        state=Availability.IN_STOCK,
        observed_at=datetime(2026, 11, 22, 18, 30, tzinfo=UTC),
        url="https://item.rakuten.co.jp/shop/pkmn/?utm_source=x",
        store="rakuten",
        price=5980,
        title=title,
        seller="ホビーショップ<テスト>",
        id=31,
    )


def notifier(port: int, **kw: Any) -> EmailNotifier:
    return EmailNotifier(
        host="127.0.0.1", port=port, tls="none", sender="Restock <restock@example.com>", **kw
    )


async def test_one_message_per_recipient_with_both_parts(smtp_server: tuple[Inbox, int]):
    inbox, port = smtp_server
    n = notifier(port)
    to = ["a@example.com", "b@example.com"]
    results = await n.send_batch([Notice(i, event(), addr) for i, addr in enumerate(to)])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert [m.envelope_to for m in inbox.messages] == [["a@example.com"], ["b@example.com"]]
    msg = inbox.messages[0].message
    assert msg["Subject"] == "【再入荷】ポケモンカード 拡張パック BOX"
    assert msg["To"] == "a@example.com"
    assert "b@example.com" not in str(msg)
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert "¥5,980" in plain.get_content()
    assert "ホビーショップ&lt;テスト&gt;" in html.get_content()
    assert "utm_source" not in plain.get_content()
    assert msg["List-Unsubscribe"] == "<mailto:restock@example.com?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_injected_bcc_never_becomes_a_header(smtp_server: tuple[Inbox, int]):
    inbox, port = smtp_server
    hostile = "Switch 2\r\nBcc: x@evil.example\r\n\r\nbody <b>"
    await notifier(port).send(Notice(1, event(hostile), "a@example.com"))
    msg = inbox.messages[0].message
    assert msg["Bcc"] is None
    assert inbox.messages[0].envelope_to == ["a@example.com"]
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert msg["Subject"].startswith("【再入荷】Switch 2 Bcc: x@evil.example")


async def test_rejected_rcpt_fails_that_address_only(smtp_server: tuple[Inbox, int]):
    inbox, port = smtp_server
    to = ["a@example.com", REJECTED, "c@example.com"]
    results = await notifier(port).send_batch([Notice(i, event(), a) for i, a in enumerate(to)])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert results[1].http_status == 550
    assert [m.envelope_to for m in inbox.messages] == [["a@example.com"], ["c@example.com"]]


async def test_english_subject_and_other_kinds(smtp_server: tuple[Inbox, int]):
    inbox, port = smtp_server
    n = notifier(port, language="en")
    await n.send(Notice(1, event("Mug"), "a@example.com"))
    await n.send(Notice(2, event("Mug", EventKind.PRICE_DROP), "a@example.com"))
    assert [m.message["Subject"] for m in inbox.messages] == ["[Restock] Mug", "[Price drop] Mug"]


async def test_long_title_is_cut_in_the_subject(smtp_server: tuple[Inbox, int]):
    inbox, port = smtp_server
    await notifier(port).send(Notice(1, event("長" * 500), "a@example.com"))
    subject = inbox.messages[0].message["Subject"]
    assert subject.endswith("…")
    assert len(subject) <= len("【再入荷】") + 80


async def test_https_unsubscribe_when_public_url_and_secret(smtp_server: tuple[Inbox, int]):
    inbox, port = smtp_server
    n = notifier(port, public_url="https://restock.example.com/", unsubscribe_secret="s3")
    await n.send(Notice(1, event(), "a@example.com"))
    header = inbox.messages[0].message["List-Unsubscribe"]
    token = unsubscribe_token("s3", "a@example.com", "pkmn-box")
    assert "<mailto:restock@example.com?subject=unsubscribe>" in header
    assert (
        f"https://restock.example.com/unsubscribe?watch=pkmn-box&to=a%40example.com&token={token}"
        in header
    )
    assert unsubscribe_token("s3", "b@example.com", "pkmn-box") != token


async def test_no_server_is_a_retry():
    results = await notifier(free_port()).send_batch([Notice(1, event(), "a@example.com")])
    assert results[0].outcome is Outcome.RETRY
    assert results[0].retry_at is not None


def test_tls_mode_is_checked():
    with pytest.raises(ValueError, match="tls must be one of"):
        EmailNotifier(host="h", sender="s@example.com", tls="plain")  # type: ignore[arg-type]
