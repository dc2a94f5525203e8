"""The composition root wires LINE: the bot behind /line/webhook, the notifiers, the metrics."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from notifiers.discord import DiscordNotifier
from notifiers.line import LineNotifier
from tests.line_standin import TOKEN, LineStandIn
from watcher.config.load import load_config
from watcher.line.signature import sign
from watcher.service.app import App
from watcher.service.wiring import Overrides, build_notifiers
from watcher.storage import open_repository

SECRET = "app-line-channel-secret"
USER = "U" + "c3" * 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_watchlist(tmp_path: Path, api: str, port: int, database: str = "") -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(
        f"""settings:
  database: '{database or tmp_path / "db.sqlite3"}'
  server: {{listen: "127.0.0.1:{port}"}}
notifiers:
  line:
    channel_access_token: {TOKEN}
    channel_secret: {SECRET}
    api_base_url: {api}
    bot: true
  discord:
    webhook_url: https://discord.example.test/api/webhooks/1/tok
watches:
  - name: Switch
    url: https://www.amazon.co.jp/dp/B0DX000000
    notify: {{line: [{USER}], discord: true}}
""",
        encoding="utf-8",
    )
    return path


def signed(events: list[dict[str, object]]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps({"destination": "U" + "0" * 32, "events": events}).encode()
    return raw, {"X-Line-Signature": sign(SECRET, raw), "Content-Type": "application/json"}


async def test_the_line_bot_answers_on_the_status_server(tmp_path: Path, database: str) -> None:
    async with LineStandIn() as line:
        port = free_port()
        config = load_config(write_watchlist(tmp_path, line.url, port, database))
        repo = await open_repository(config.settings.database)
        app = App(config, repo, Overrides(install_signals=False))
        server = await app._start_server()
        try:
            assert isinstance(app.notifiers["line"], LineNotifier)
            assert isinstance(app.notifiers["discord"], DiscordNotifier)
            follow = {
                "type": "follow",
                "mode": "active",
                "timestamp": 1,
                "source": {"type": "user", "userId": USER},
                "webhookEventId": "01JAPPTEST0000000000000001",
                "deliveryContext": {"isRedelivery": False},
                "replyToken": "reply-token-1",
                "follow": {"isUnblocked": False},
            }
            raw, headers = signed([follow])
            url = f"http://127.0.0.1:{port}/line/webhook"
            async with httpx.AsyncClient() as client:
                assert (await client.post(url, content=raw, headers=headers)).status_code == 200
                forged = {**headers, "X-Line-Signature": sign("wrong", raw)}
                assert (await client.post(url, content=raw, headers=forged)).status_code == 401
            [reply] = line.replies
            assert reply["replyToken"] == "reply-token-1"
            assert reply["messages"][0]["text"].startswith("友だち追加ありがとうございます")
        finally:
            assert server is not None
            await server.stop()
            await app.close()
            await repo.close()


async def test_build_notifiers_passes_the_quota_policy(tmp_path: Path) -> None:
    config = load_config(write_watchlist(tmp_path, "https://line.example.test", 8787))
    built = build_notifiers(config, only=["line"])
    line = built["line"]
    assert isinstance(line, LineNotifier) and line.quota_policy.value == "stop"
    assert line.api.base_url == "https://line.example.test"
    await line.aclose()


def test_only_the_bots_own_settings_ask_for_a_restart(tmp_path: Path) -> None:
    from watcher.service.app import _line_bot_section

    path = write_watchlist(tmp_path, "https://line.example.test", 8787)
    running = load_config(path)
    path.write_text(
        path.read_text().replace("bot: true", "bot: true\n    quota_policy: oldest_first")
    )
    policy_only = load_config(path)
    path.write_text(path.read_text().replace(SECRET, "a-new-channel-secret"))
    new_secret = load_config(path)
    assert _line_bot_section(running) == _line_bot_section(policy_only)  # the notifier's alone
    assert _line_bot_section(running) != _line_bot_section(new_secret)
