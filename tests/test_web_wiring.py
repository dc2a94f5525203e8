"""`restock run` with `server.web`: refused off loopback without a token; guarded when exposed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests import dbrows
from tests.httpserver import LoopbackServer, Reply
from watcher.config.load import load_config
from watcher.core.model import Origin
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage import open_repository
from watcher.web.app import WebApp
from watcher.web.listener import Request
from watcher.web.security import WEB_TOKEN_ENV, WebTokenMissing
from watcher.web.server import WebHandler


def watchlist(tmp_path: Path, database: str, listen: str, server: str = "") -> Path:
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        f"""
settings:
  database: '{database}'
  server: {{listen: "{listen}", web: true{server}}}
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


async def make_app(tmp_path: Path, database: str, listen: str, server: str = "") -> App:
    config = load_config(watchlist(tmp_path, database, listen, server))
    repository = await open_repository(config.settings.database)
    return App(config, repository, Overrides(stop=asyncio.Event(), install_signals=False))


async def test_off_loopback_without_a_token_refuses_to_start(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEB_TOKEN_ENV, raising=False)
    app = await make_app(tmp_path, database, "0.0.0.0:8787")
    try:
        with pytest.raises(WebTokenMissing):
            await app.run(asyncio.Event())
    finally:
        await app.repository.close()


async def test_exposed_web_watches_fetch_under_the_chat_guard(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEB_TOKEN_ENV, "a-long-token")
    app = await make_app(tmp_path, database, "192.0.2.10:8787")
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
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEB_TOKEN_ENV, raising=False)
    app = await make_app(tmp_path, database, "127.0.0.1:8787")
    try:
        server = app.config.settings.server
        assert server is not None
        assert app._web_ui(server) is not None
        assert app.engine.guarded_origins == {Origin.CHAT}
    finally:
        await app.close()
        await app.repository.close()


async def test_with_a_token_on_loopback_web_watches_are_guarded_too(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEB_TOKEN_ENV, "behind-a-proxy")
    app = await make_app(tmp_path, database, "127.0.0.1:8787")
    try:
        server = app.config.settings.server
        assert server is not None
        assert app._web_ui(server) is not None
        assert app.engine.guarded_origins == {Origin.CHAT, Origin.WEB}
    finally:
        await app.close()
        await app.repository.close()


async def form_token(web: WebHandler, auth: dict[str, str]) -> str:
    page = await web(Request("GET", "/add", auth))
    assert page is not None and page.status == 200
    found = re.search(rb'name="csrf" value="([0-9a-f]+)"', page.body)
    assert found is not None
    return found.group(1).decode()


@pytest.mark.parametrize("action", ["check", "save"])
async def test_exposed_ui_refuses_unsafe_targets_without_fetching_them(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """The wiring `restock run` uses: the chat users' allow-list and SSRF rules, before any
    fetch, for a preview as for a save."""
    monkeypatch.setenv(WEB_TOKEN_ENV, "a-long-token")
    app = await make_app(tmp_path, database, "192.0.2.10:8787")
    auth = {"authorization": "Bearer a-long-token", "host": "192.0.2.10:8787"}
    try:
        server = app.config.settings.server
        assert server is not None
        web = app._web_ui(server)
        assert web is not None
        csrf = await form_token(web, auth)
        with LoopbackServer() as shop:
            shop.add("/item", Reply(body=b"<p>in stock</p>"))
            for target in (
                shop.url("/item"),  # loopback
                f"http://localhost:{shop.url('/item').rsplit(':', 1)[1]}",
                "http://[::1]/item",
                "https://10.0.0.1/item",  # a private address
                "https://169.254.169.254/latest/meta-data/",  # cloud metadata
                "https://evil.example/item",  # not an allowed store
                "file:///etc/passwd",
            ):
                body = urlencode({"target": target, "csrf": csrf, "action": action})
                headers = {**auth, "content-type": "application/x-www-form-urlencoded"}
                answer = await web(Request("POST", "/add", headers, body.encode()))
                assert answer is not None and answer.status == 400, target
            assert shop.requests == []
        web_rows = await dbrows.fetch(database, "SELECT key FROM watches WHERE origin = 'web'")
        assert web_rows == []
    finally:
        await app.close()
        await app.repository.close()


async def test_the_exposed_uis_quota_comes_from_the_watchlist(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEB_TOKEN_ENV, "a-long-token")
    quota = ", web_adds_per_day: 3, web_watches: 7"
    app = await make_app(tmp_path, database, "127.0.0.1:8787", quota)
    try:
        server = app.config.settings.server
        assert server is not None
        handle = app._web_ui(server)
        web = getattr(handle, "__self__", None)
        assert isinstance(web, WebApp)
        assert (web.quota.per_day, web.quota.total) == (3, 7)
    finally:
        await app.close()
        await app.repository.close()
