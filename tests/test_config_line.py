"""The watchlist's LINE and Discord keys."""

from __future__ import annotations

import pytest

from watcher.config.load import parse_config
from watcher.errors import ConfigError

USER = "U4af4980629e1c2b0d9d8f2e1a3b4c5d6"
ENV = {
    "LINE_TOKEN": "line-access-token",
    "LINE_SECRET": "line-channel-secret",
    "DISCORD_URL": "https://discord.com/api/webhooks/1/tok",
}


def config_text(line: str = "", discord: str = "", notify: str = "") -> str:
    return f"""
notifiers:
  line:
    channel_access_token: ${{LINE_TOKEN}}
    channel_secret: ${{LINE_SECRET}}
{line}
  discord:
    webhook_url: ${{DISCORD_URL}}
{discord}
watches:
  - name: Switch
    url: https://www.amazon.co.jp/dp/B0DX000000
    notify:
      line: [{USER}]
      discord: true
{notify}
"""


def problems(text: str, env: dict[str, str] = ENV) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "watch.yaml", env=env)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


SERVER = "settings:\n  server: {listen: 127.0.0.1:8787}\n"


def test_line_and_discord_keys_are_read() -> None:
    text = SERVER + config_text(line="    bot: true\n    quota_policy: oldest_first")
    config = parse_config(text, env=ENV)
    line = config.notifiers.line
    assert line is not None and line.bot and line.quota_policy == "oldest_first"
    assert line.channel_access_token.reveal() == "line-access-token"
    assert "line-channel-secret" not in repr(line)
    assert line.api_base_url == "https://api.line.me"
    assert config.channels == ("console", "line", "discord")
    [watch] = config.watches
    assert watch.notify.line == (USER,) and watch.notify.discord


def test_bot_needs_the_server() -> None:
    [(_, path, message)] = problems(config_text(line="    bot: true"))
    assert path == "notifiers.line.bot"
    assert "settings.server" in message


def test_bot_needs_the_channel_secret() -> None:
    text = config_text(line="    bot: true").replace("    channel_secret: ${LINE_SECRET}\n", "")
    text = SERVER + text
    [(_, path, message)] = problems(text)
    assert path == "notifiers.line"
    assert "channel_secret" in message


def test_bad_line_user_id_is_named() -> None:
    [(_, path, message)] = problems(config_text().replace(USER, "someone"))
    assert path == "watches[0].notify.line[0]"
    assert "LINE user id" in message


def test_unknown_quota_policy() -> None:
    [(_, path, _)] = problems(config_text(line="    quota_policy: random"))
    assert path == "notifiers.line.quota_policy"


def test_discord_url_must_be_http() -> None:
    env = {**ENV, "DISCORD_URL": "discord-token-only"}
    [(_, path, message)] = problems(config_text(), env)
    assert path == "notifiers.discord.webhook_url"
    assert "discord-token-only" not in message  # a secret is never echoed


def test_notify_line_needs_the_channel() -> None:
    text = f"""
watches:
  - name: Switch
    url: https://www.amazon.co.jp/dp/B0DX000000
    notify:
      line: [{USER}]
      discord: true
"""
    found = {path for _, path, _ in problems(text)}
    assert found == {"watches[0].notify.line", "watches[0].notify.discord"}
