"""`restock notify-test`: the configured notifier sends a sample to fakes of each service."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import responses
import respx
from aiosmtpd.controller import Controller

from watcher.cli import main

TOKEN = "123456:AAH-notify-test-token"
API = "https://tg.example.test"
BOT = f"{API}/bot{TOKEN}"
HOOK = "https://hooks.example.test/restock"
TEST_MARK = "テスト通知"
REFUSED = "gone@example.net"

CONSOLE_ONLY = """
watches:
  - {name: Mug, url: "https://example.base.shop/items/1", notify: {console: true}}
"""


def watches_notifying(channel: str, first: str, second: str) -> str:
    """Two watches; the first recipient follows both (it must get one message, not two)."""
    return f"""
watches:
  - name: Switch 2
    url: https://www.amazon.co.jp/dp/B0DX000000
    notify: {{{channel}: [{first}, {second}]}}
  - name: Mug
    url: https://example.base.shop/items/1
    notify: {{{channel}: [{first}], console: true}}
"""


def watchlist(tmp_path: Path, notifiers: str, watches: str = CONSOLE_ONLY) -> str:
    path = tmp_path / "watch.yaml"
    path.write_text(f"notifiers:\n{notifiers}\n{watches}", encoding="utf-8")
    return str(path)


def notify_test(config: str, channel: str, *extra: str) -> int:
    return main(["notify-test", "--config", config, "--channel", channel, *extra])


def output_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


# --- webhook ----------------------------------------------------------------------------------


@pytest.fixture
def hook() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(HOOK)


def test_webhook_gets_one_sample_restock(
    tmp_path: Path, hook: respx.Route, capsys: pytest.CaptureFixture[str]
) -> None:
    hook.respond(204)
    config = watchlist(tmp_path, f"  webhook: {{url: {HOOK}}}")

    assert notify_test(config, "webhook") == 0

    assert output_lines(capsys) == ["webhook -: sent"]
    [call] = hook.calls
    payload = json.loads(call.request.content)
    assert payload["event"] == "restock"
    assert TEST_MARK in payload["title"]
    assert payload["state"] == "in_stock"
    assert payload["observed_at"].endswith("+00:00")
    assert payload["id"] < 0  # no stored event has a negative id
    assert call.request.headers["idempotency-key"] == f"{payload['id']}:-"


def test_a_refusing_webhook_exits_1(
    tmp_path: Path, hook: respx.Route, capsys: pytest.CaptureFixture[str]
) -> None:
    hook.respond(401)
    config = watchlist(tmp_path, f"  webhook: {{url: {HOOK}}}")
    assert notify_test(config, "webhook") == 1
    assert output_lines(capsys) == ["webhook -: failed (webhook refused: 401)"]


# --- e-mail against a real SMTP server on loopback --------------------------------------------


@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 queued"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def email_section(port: int) -> str:
    return f'  email: {{host: 127.0.0.1, port: {port}, tls: none, sender: "R <r@example.com>"}}'


def test_email_goes_once_to_each_distinct_address(
    tmp_path: Path, smtp: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp
    addresses = watches_notifying("email", "a@example.com", "b@example.com")
    config = watchlist(tmp_path, email_section(port), addresses)

    assert notify_test(config, "email") == 0

    assert output_lines(capsys) == ["email a@example.com: sent", "email b@example.com: sent"]
    assert [to for to, _ in inbox.messages] == [["a@example.com"], ["b@example.com"]]
    message = inbox.messages[0][1]
    assert message["Subject"].startswith("【再入荷】【テスト通知】")
    body = message.get_body(("plain",))
    assert body is not None and TEST_MARK in body.get_content()


def test_email_to_a_refused_address_exits_1(
    tmp_path: Path, smtp: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, port = smtp
    config = watchlist(tmp_path, email_section(port))

    assert notify_test(config, "email", "--to", REFUSED, "--to", "c@example.com") == 1

    lines = output_lines(capsys)
    assert lines[0].startswith(f"email {REFUSED}: failed (recipient refused: 550")
    assert lines[1] == "email c@example.com: sent"
    assert [to for to, _ in inbox.messages] == [["c@example.com"]]


# --- telegram through a faked Bot API ---------------------------------------------------------


class BotApi:
    """getMe and sendMessage; chat 403 has blocked the bot."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.sent: list[dict[str, str]] = []
        me = {"id": 123456, "is_bot": True, "first_name": "Restock", "username": "rb"}
        router.post(f"{BOT}/getMe").respond(json={"ok": True, "result": me})
        router.post(f"{BOT}/sendMessage").mock(side_effect=self.send_message)

    def send_message(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form["chat_id"] == "403":
            body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"}
            return httpx.Response(403, json=body)
        self.sent.append(form)
        chat = {"id": int(form["chat_id"]), "type": "private"}
        result = {"message_id": 1, "date": 1_700_000_000, "chat": chat, "text": "x"}
        return httpx.Response(200, json={"ok": True, "result": result})


@pytest.fixture
def bot_api() -> Iterator[BotApi]:
    with respx.mock(assert_all_called=False) as router:
        yield BotApi(router)


TELEGRAM = f"  telegram: {{token: '{TOKEN}', api_base_url: '{API}'}}"


def test_telegram_messages_each_configured_chat_once(
    tmp_path: Path, bot_api: BotApi, capsys: pytest.CaptureFixture[str]
) -> None:
    config = watchlist(tmp_path, TELEGRAM, watches_notifying("telegram", "111", "222"))
    assert notify_test(config, "telegram") == 0

    assert output_lines(capsys) == ["telegram 111: sent", "telegram 222: sent"]
    assert sorted(m["chat_id"] for m in bot_api.sent) == ["111", "222"]
    assert all(TEST_MARK in m["text"] for m in bot_api.sent)


def test_telegram_to_a_chat_that_blocked_the_bot_exits_1(
    tmp_path: Path, bot_api: BotApi, capsys: pytest.CaptureFixture[str]
) -> None:
    config = watchlist(tmp_path, TELEGRAM)
    assert notify_test(config, "telegram", "--to", "403", "--to", "333") == 1
    lines = output_lines(capsys)
    assert lines[0].startswith("telegram 403: failed")
    assert lines[1] == "telegram 333: sent"
    assert [m["chat_id"] for m in bot_api.sent] == ["333"]
    assert TOKEN not in "\n".join(lines)


# --- x and console ----------------------------------------------------------------------------

X = """  x:
    consumer_key: ck
    consumer_secret: cs
    access_token: at
    access_token_secret: ats"""


def test_x_posts_once_on_the_public_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with responses.RequestsMock() as api:
        api.post(
            "https://api.twitter.com/2/tweets",
            json={"data": {"id": "1", "text": "x"}},
            status=201,
        )
        assert notify_test(watchlist(tmp_path, X), "x") == 0
        [call] = api.calls
    assert output_lines(capsys) == ["x public: sent (post 1)"]
    assert call.request.body is not None
    assert TEST_MARK in json.loads(call.request.body)["text"]


def test_console_prints_the_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert notify_test(watchlist(tmp_path, "  console: {}"), "console") == 0
    out = capsys.readouterr().out
    assert TEST_MARK in out
    assert out.strip().splitlines()[-1] == "console -: sent"


# --- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "extra", "message"),
    [
        pytest.param("email", [], "email is not configured in", id="unconfigured-channel"),
        pytest.param("x", [], "x is not configured in", id="unconfigured-x"),
        pytest.param("webhook", ["--to", "a@b.jp"], "--to does not apply", id="to-for-webhook"),
        pytest.param("telegram", ["--to", "me"], "chat id like", id="bad-chat-id"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    channel: str,
    extra: list[str],
    message: str,
) -> None:
    config = watchlist(tmp_path, f"{TELEGRAM}\n  webhook: {{url: {HOOK}}}")
    assert notify_test(config, channel, *extra) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_a_channel_without_recipients_asks_for_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = watchlist(tmp_path, TELEGRAM, watches="watches: []")
    assert notify_test(config, "telegram") == 2
    assert "no watch in" in capsys.readouterr().err


def test_a_missing_watchlist_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert notify_test(str(tmp_path / "nope.yaml"), "console") == 2
    assert "cannot read" in capsys.readouterr().err


def test_an_unknown_channel_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        notify_test(watchlist(tmp_path, "  console: {}"), "pigeon")
    assert stopped.value.code == 2
