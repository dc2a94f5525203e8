"""`restock notify-test` for the LINE and Discord channels, against respx stand-ins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from watcher.cli import main

LINE_API = "https://line.example.test"
HOOK = "https://discord.example.test/api/webhooks/1/discord-hook-token"
USER_A = "U" + "a" * 32
USER_B = "U" + "b" * 32
TEST_MARK = "テスト通知"


def watchlist(tmp_path: Path, notifiers: str, notify: str) -> str:
    path = tmp_path / "watch.yaml"
    path.write_text(
        f"""notifiers:
{notifiers}
watches:
  - name: Switch 2
    url: https://www.amazon.co.jp/dp/B0DX000000
    notify: {notify}
""",
        encoding="utf-8",
    )
    return str(path)


LINE = f"  line: {{channel_access_token: line-token-123456789, api_base_url: '{LINE_API}'}}"


@pytest.fixture
def line_api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{LINE_API}/v2/bot/message/quota").respond(
            json={"type": "limited", "value": 200}
        )
        router.get(f"{LINE_API}/v2/bot/message/quota/consumption").respond(json={"totalUsage": 3})
        yield router


def test_line_sends_one_multicast_to_the_configured_users(
    tmp_path: Path, line_api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    route = line_api.post(f"{LINE_API}/v2/bot/message/multicast").respond(json={})
    config = watchlist(tmp_path, LINE, f"{{line: [{USER_A}, {USER_B}]}}")
    assert main(["notify-test", "-c", config, "--channel", "line"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"line {USER_A}: sent", f"line {USER_B}: sent"]
    [call] = route.calls
    body = json.loads(call.request.content)
    assert body["to"] == [USER_A, USER_B]
    assert TEST_MARK in body["messages"][0]["altText"]
    assert call.request.headers["x-line-retry-key"]


def test_line_to_a_given_user_is_a_push_and_a_bad_id_is_refused(
    tmp_path: Path, line_api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    route = line_api.post(f"{LINE_API}/v2/bot/message/push").respond(
        400, json={"message": "The property, 'to', in the request body is invalid"}
    )
    config = watchlist(tmp_path, LINE, f"{{line: [{USER_A}]}}")
    assert main(["notify-test", "-c", config, "--channel", "line", "--to", USER_B]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"line {USER_B}: failed (LINE refused (400)")
    assert json.loads(route.calls[0].request.content)["to"] == USER_B
    assert "line-token-123456789" not in out
    assert main(["notify-test", "-c", config, "--channel", "line", "--to", "bob"]) == 2


def test_discord_posts_one_embed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with respx.mock() as router:
        route = router.post(HOOK, params={"wait": "true"}).mock(
            return_value=httpx.Response(200, json={"id": "1"})
        )
        config = watchlist(tmp_path, f"  discord: {{webhook_url: '{HOOK}'}}", "{discord: true}")
        assert main(["notify-test", "-c", config, "--channel", "discord"]) == 0
    assert capsys.readouterr().out.splitlines() == ["discord -: sent"]
    body = json.loads(route.calls[0].request.content)
    assert TEST_MARK in body["embeds"][0]["title"]
    assert body["allowed_mentions"] == {"parse": []}
