"""No secret of the watchlist reaches a log, whichever library logs it and at whatever level.

A Bot API stand-in on loopback answers every request with a 502 whose body quotes the request
path (as a proxy's error page does), so the bot token travels back inside error texts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import BaseModel

from notifiers.console import ConsoleNotifier
from watcher import logredact
from watcher.config.load import load_config
from watcher.logredact import SecretMask, SecretScope
from watcher.service.app import App
from watcher.service.wiring import Overrides
from watcher.storage import open_repository
from watcher.web.listener import Listener, Request, Response, serve

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "7001234567:AAHx-secretPartOfTheBotToken_0123"
SECRETS = {
    "TG_TOKEN": TOKEN,
    "SMTP_PASSWORD": "hunter2-smtp-password",
    "X_KEY": "xkey-consumer-AAAA1111",
    "X_SECRET": "xsecret-consumer-BBBB2222",
    "X_TOKEN": "xtoken-access-CCCC3333",
    "X_TOKEN_SECRET": "xtokensecret-DDDD4444",
    "HOOK_TOKEN": "T000/B000/hooktokenEEEE5555",
    "HOOK_AUTH": "Bearer hook-auth-FFFF6666",
}
DB_PASSWORD = "db-password-GGGG7777"


def leaks(text: str) -> list[str]:
    """The secrets (or a bot token's secret part, in any case) that `text` shows."""
    lowered = text.lower()
    parts = [*SECRETS.values(), TOKEN.split(":", 1)[1], quote(SECRETS["HOOK_TOKEN"], safe="")]
    return [p for p in parts if p.lower() in lowered]


class EchoingGateway:
    """Every Bot API call answered 502, quoting the path (and so the token) in the body."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.server: Listener | None = None

    async def handle(self, request: Request) -> Response:
        self.paths.append(request.path)
        body = {
            "ok": False,
            "error_code": 502,
            "description": f"Bad Gateway: upstream failed for {request.path} "
            f"({request.path.upper()})",
        }
        return Response(502, json.dumps(body).encode(), {"Content-Type": "application/json"})

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def gateway() -> AsyncIterator[EchoingGateway]:
    stand_in = EchoingGateway()
    stand_in.server = await serve(stand_in.handle)
    yield stand_in
    await stand_in.server.close()


def watchlist(folder: Path, api: str, database: str = "") -> Path:
    path = folder / "watchlist.yaml"
    path.write_text(
        "settings:\n"
        f"  database: '{database or folder / 'restock.sqlite3'}'\n"
        "  hot_windows: []\n"
        "notifiers:\n"
        "  console: {}\n"
        "  telegram:\n"
        "    token: ${TG_TOKEN}\n"
        f"    api_base_url: {api}\n"
        "    bot: true\n"
        "  webhook:\n"
        "    url: http://127.0.0.1:9/hooks/${HOOK_TOKEN}\n"
        "    headers: {Authorization: '${HOOK_AUTH}'}\n"
        "  email:\n"
        "    host: 127.0.0.1\n"
        "    tls: none\n"
        "    username: restock\n"
        "    password: ${SMTP_PASSWORD}\n"
        "    sender: Restock <restock@example.com>\n"
        "  x:\n"
        "    consumer_key: ${X_KEY}\n"
        "    consumer_secret: ${X_SECRET}\n"
        "    access_token: ${X_TOKEN}\n"
        "    access_token_secret: ${X_TOKEN_SECRET}\n"
        "watches: []\n",
        encoding="utf-8",
    )
    return path


def test_every_secret_of_the_watchlist_is_collected(tmp_path: Path) -> None:
    config = load_config(watchlist(tmp_path, "http://127.0.0.1:9"), env=SECRETS)
    found = logredact.config_secrets(config, env={})
    assert set(SECRETS.values()) - {SECRETS["HOOK_TOKEN"]} <= found
    assert any(SECRETS["HOOK_TOKEN"] in s for s in found)  # inside the webhook URL's path


def test_the_mask_covers_any_case_percent_encoding_and_a_tokens_secret_part() -> None:
    mask = SecretMask()
    mask.set("a", [TOKEN, "abc"])  # too short to mask without masking words
    secret_part = TOKEN.split(":", 1)[1]
    for text in (
        f"/bot{TOKEN}/getMe",
        f"/BOT{TOKEN.upper()}/GETME",
        f"/bot{quote(TOKEN, safe='')}/getMe",
        f"part {secret_part.lower()} alone",
    ):
        assert not leaks(mask.mask(text)), text
    assert mask.mask("abc stays") == "abc stays"
    mask.set("a", ["replaced-secret-value"])  # a reload replaces a source's secrets
    assert mask.mask(TOKEN) == TOKEN
    assert mask.mask("replaced-secret-value") == "***"
    mask.forget("a")
    assert mask.mask("replaced-secret-value") == "replaced-secret-value"


async def test_no_secret_in_any_record_while_the_bot_api_echoes_paths(
    tmp_path: Path, database: str, gateway: EchoingGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = load_config(watchlist(tmp_path, gateway.url, database), env=SECRETS)
    repository = await open_repository(config.settings.database)
    stop = asyncio.Event()
    overrides = Overrides(stop=stop, install_signals=False)
    try:
        app = App(config, repository, overrides)
        app.notifiers["console"] = ConsoleNotifier()
        runner = asyncio.create_task(app.run(stop))
        for _ in range(200):
            if len(gateway.paths) >= 2:
                break
            await asyncio.sleep(0.05)
        # Any library's records are masked too: message, arguments, exception and traceback.
        library = logging.getLogger("aiohttp.client")
        library.debug("POST %s", f"https://hooks.example/hooks/{SECRETS['HOOK_TOKEN']}")
        try:
            raise RuntimeError(f"login failed for {SECRETS['SMTP_PASSWORD']}")
        except RuntimeError:
            logging.getLogger("smtplib.any").exception("with %s", SECRETS["X_TOKEN_SECRET"])
        stop.set()
        await asyncio.wait_for(runner, 20)
    finally:
        await repository.close()
    assert gateway.paths and TOKEN in gateway.paths[0]  # the token did travel
    records = caplog.records
    assert any("Bad Gateway" in r.getMessage() for r in records)  # the echo was logged
    shown = caplog.text + "\n".join(
        logging.Formatter("%(message)s %(exc_text)s %(stack_info)s").format(r) for r in records
    )
    assert not leaks(shown), leaks(shown)
    assert "***" in shown


async def test_restock_run_at_debug_writes_no_secret_to_stderr(
    tmp_path: Path, database: str, gateway: EchoingGateway
) -> None:
    # A PostgreSQL password in the URL (trust auth lets any through) is a secret too.
    database = database.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)
    config = watchlist(tmp_path, gateway.url, database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTOCK_")}
    env |= SECRETS | {"PYTHONPATH": str(ROOT)}
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watcher", "-vv", "run", "--config", str(config),
            cwd=ROOT, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        for _ in range(400):
            if len(gateway.paths) >= 3:
                break
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = log.read_text(errors="replace")
    assert len(gateway.paths) >= 3, text[-2000:]
    assert "Bad Gateway" in text  # the stand-in's answer reached the log, masked
    assert not leaks(text), leaks(text)
    assert DB_PASSWORD not in text


async def test_a_reload_masks_the_new_watchlists_secrets_too(
    tmp_path: Path,
    database: str,
    gateway: EchoingGateway,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # a reload reads the environment
    path = watchlist(tmp_path, gateway.url, database)
    config = load_config(path, env=SECRETS)
    repository = await open_repository(config.settings.database)
    try:
        app = App(config, repository, Overrides(install_signals=False))
        rotated = "rotated-smtp-password-777"
        path.write_text(path.read_text().replace("${SMTP_PASSWORD}", rotated), encoding="utf-8")
        await app._reload(path)
        assert app.config.notifiers.email is not None
        assert app.config.notifiers.email.password.reveal() == rotated  # type: ignore[union-attr]
        logging.getLogger("aiosmtplib.any").debug("AUTH with %s", rotated)
        logging.getLogger("telegram.ext").debug("token %s", TOKEN)  # the old ones stay masked
        await app.close()
    finally:
        await repository.close()
    shown = "\n".join(r.getMessage() for r in caplog.records)
    assert rotated not in shown and TOKEN not in shown
    assert "AUTH with ***" in shown


def test_credentials_inside_any_url_of_the_watchlist_are_secrets() -> None:
    class Section(BaseModel):
        database: str = "postgresql://restock:db-password-123@127.0.0.1/restock"

    class Config(BaseModel):
        settings: Section = Section()
        notifiers: Section = Section(database="https://u:hook-pass-456@hooks.example/x")
        sources: Section = Section(database="plain text")

    found = logredact.config_secrets(Config(), env={"RESTOCK_WEB_TOKEN": "web-token-789"})
    assert {"db-password-123", "hook-pass-456", "web-token-789"} <= found


SCOPE_TOKEN = "123456:AAH-very-Secret-Token_value"
SCOPE_SECRET = SCOPE_TOKEN.split(":")[1]


def test_scope_masks_any_case_and_the_secret_part_alone():
    scope = SecretScope([SCOPE_TOKEN])
    try:
        texts = [
            f"POST https://proxy.test/bot{SCOPE_TOKEN}/sendMessage",
            f"ConnectError: proxy echoed /bot{SCOPE_TOKEN.lower()}/sendmessage",
            f"upstream: /BOT{SCOPE_TOKEN.upper()}/SENDMESSAGE",
            f"encoded: /bot123456%3A{SCOPE_SECRET.lower()}/getMe",
        ]
        for text in texts:
            masked = scope.mask(text)
            assert SCOPE_SECRET.lower() not in masked.lower(), masked
            assert "***" in masked
        assert scope.mask("nothing secret here") == "nothing secret here"
    finally:
        scope.close()
    # a short secret part is not masked alone: it would eat ordinary words
    short = SecretScope(["1:abc"])
    try:
        assert short.mask("abc 1:ABC") == "abc ***"
    finally:
        short.close()


def test_scope_masks_every_log_record_while_it_lives(caplog: pytest.LogCaptureFixture):
    name = "restock.test.scope"
    log = logging.getLogger(name)
    caplog.set_level(logging.DEBUG, logger=name)
    scope = SecretScope([SCOPE_TOKEN])
    try:
        log.warning(
            "request to %s failed", f"https://proxy.test/bot{SCOPE_TOKEN.lower()}/sendmessage"
        )
        try:
            raise ConnectionError(f"proxy refused /bot{SCOPE_TOKEN.lower()}/getme")
        except ConnectionError:
            log.exception("send failed")
    finally:
        scope.close()
    text = caplog.text
    assert "request to" in text and "send failed" in text and "ConnectionError" in text
    assert SCOPE_SECRET.lower() not in text.lower()
    assert text.count("***") == 2
    caplog.clear()
    # Once its owner is closed, a scope's secret is nobody's to hide.
    log.warning("value %s", SCOPE_SECRET)
    assert SCOPE_SECRET in caplog.text


def test_scopes_sharing_a_secret_keep_it_masked_until_the_last_closes(
    caplog: pytest.LogCaptureFixture,
):
    name = "restock.test.scope"
    caplog.set_level(logging.DEBUG, logger=name)
    first, second = SecretScope([SCOPE_TOKEN]), SecretScope([SCOPE_TOKEN])
    first.close()
    logging.getLogger(name).warning("token %s", SCOPE_TOKEN)
    second.close()
    assert SCOPE_SECRET not in caplog.text
