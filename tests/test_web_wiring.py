"""`restock run` with `server.web`: refused off loopback without a token; guarded when exposed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from watcher.config.load import load_config
from watcher.core.model import Origin
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage.sqlite.repository import open_repository
from watcher.web.security import WEB_TOKEN_ENV, WebTokenMissing


def watchlist(tmp_path: Path, listen: str) -> Path:
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        f"""
settings:
  database: {tmp_path / "restock.sqlite3"}
  server: {{listen: "{listen}", web: true}}
notifiers:
  console: {{}}
watches:
  - name: Mug
    url: https://example.base.shop/items/1
    notify: {{console: true}}
""",
        encoding="utf-8",
    )
    return path


async def make_app(tmp_path: Path, listen: str) -> App:
    config = load_config(watchlist(tmp_path, listen))
    repository = await open_repository(config.settings.database)
    return App(config, repository, Overrides(stop=asyncio.Event(), install_signals=False))


async def test_off_loopback_without_a_token_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEB_TOKEN_ENV, raising=False)
    app = await make_app(tmp_path, "0.0.0.0:8787")
    try:
        with pytest.raises(WebTokenMissing):
            await app.run(asyncio.Event())
    finally:
        await app.repository.close()


async def test_exposed_web_watches_fetch_under_the_chat_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEB_TOKEN_ENV, "a-long-token")
    app = await make_app(tmp_path, "192.0.2.10:8787")
    try:
        assert app.engine.guarded_origins == {Origin.CHAT}
        server = app.config.settings.server
        assert server is not None
        assert app._web_ui(server) is not None
        assert app.engine.guarded_origins == {Origin.CHAT, Origin.WEB}
    finally:
        await app.close()
        await app.repository.close()


async def test_on_loopback_web_watches_are_the_operators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEB_TOKEN_ENV, raising=False)
    app = await make_app(tmp_path, "127.0.0.1:8787")
    try:
        server = app.config.settings.server
        assert server is not None
        assert app._web_ui(server) is not None
        assert app.engine.guarded_origins == {Origin.CHAT}
    finally:
        await app.close()
        await app.repository.close()


async def test_with_a_token_on_loopback_web_watches_are_guarded_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEB_TOKEN_ENV, "behind-a-proxy")
    app = await make_app(tmp_path, "127.0.0.1:8787")
    try:
        server = app.config.settings.server
        assert server is not None
        assert app._web_ui(server) is not None
        assert app.engine.guarded_origins == {Origin.CHAT, Origin.WEB}
    finally:
        await app.close()
        await app.repository.close()
