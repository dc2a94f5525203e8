"""`restock status` shows LINE's monthly message quota, read from the Messaging API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import respx

from tests.test_cli_status import make_database
from watcher.cli import main

LINE_API = "https://line.example.test"


def with_line(tmp_path: Path, database: str) -> str:
    config = make_database(tmp_path, database)
    text = config.read_text(encoding="utf-8")
    line = (
        f"notifiers:\n  line: {{channel_access_token: tok-123456789, api_base_url: '{LINE_API}'}}\n"
    )
    config.write_text(text + line, encoding="utf-8")
    return str(config)


def test_status_shows_the_line_quota(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_line(tmp_path, database)
    with respx.mock() as router:
        router.get(f"{LINE_API}/v2/bot/message/quota").respond(
            json={"type": "limited", "value": 1000}
        )
        router.get(f"{LINE_API}/v2/bot/message/quota/consumption").respond(json={"totalUsage": 250})
        assert main(["status", "--config", config]) == 0
        assert "line quota: 250 of 1,000 messages this month (750 left)" in capsys.readouterr().out
        assert main(["status", "--config", config, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["line_quota"] == {"limit": 1000, "used": 250, "left": 750}


def test_status_says_when_the_quota_cannot_be_read(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_line(tmp_path, database)
    with respx.mock() as router:
        router.get(f"{LINE_API}/v2/bot/message/quota").respond(
            401, json={"message": "Authentication failed"}
        )
        assert main(["status", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "line quota: not read (401 Authentication failed)" in out
    assert "tok-123456789" not in out
