"""The watchlist: typed settings and watches, every problem reported with its line and path."""

from __future__ import annotations

import json
from datetime import time, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config.load import Config, load_config, parse_config
from watcher.config.schema import json_schema
from watcher.config.types import parse_duration
from watcher.core.keys import watch_key
from watcher.core.model import (
    DEFAULT_EVENTS,
    Availability,
    ConditionFilter,
    EventKind,
    Notify,
    SellerFilter,
    TextRules,
    Watch,
    WatchConditions,
)
from watcher.errors import ConfigError
from watcher.secret import Secret
from watcher.stores._base import HostLimits

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).parent / "fixtures" / "config"
WATCHLISTS = ROOT / "watchlists"
SHARED_EXAMPLE = ROOT.parent / "shared" / "watchlist-example.yaml"

# Values for every variable the shipped watchlists name; a test never reads the real environment.
WATCHLIST_ENV = {
    "TELEGRAM_BOT_TOKEN": "123456:telegram-token",
    "SMTP_USER": "mailer",
    "SMTP_PASSWORD": "smtp-password",
    "X_CONSUMER_KEY": "ck",
    "X_CONSUMER_SECRET": "cs",
    "X_ACCESS_TOKEN": "at",
    "X_ACCESS_TOKEN_SECRET": "ats",
    "LINE_CHANNEL_ACCESS_TOKEN": "line-token",
    "LINE_CHANNEL_SECRET": "line-secret",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/discord-token",
}
GOOD_ENV = {"TG_TOKEN": "tg-secret-token", "HOOK_TOKEN": "hook-secret", "X_SECRET": "x-secret"}


def problems_of(text: str, env: dict[str, str] | None = None) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "watch.yaml", env=env or {})
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def only_problem(text: str, env: dict[str, str] | None = None) -> tuple[int | None, str, str]:
    problems = problems_of(text, env)
    assert len(problems) == 1, problems
    return problems[0]


# -- good files --------------------------------------------------------------------------------


@pytest.fixture
def everything() -> Config:
    return load_config(CONFIGS / "good-everything.yaml", env=GOOD_ENV)


def test_settings_are_typed_and_relative_database_is_beside_the_file(everything: Config) -> None:
    settings = everything.settings
    assert settings.database == str(CONFIGS.absolute() / "data" / "watch.db")
    assert settings.timezone == "Europe/London"
    assert settings.zone.key == "Europe/London"
    assert settings.default_interval == timedelta(hours=1, minutes=30)
    assert settings.user_agent == "test-agent/1.0"
    assert (settings.debounce.confirm, settings.debounce.rearm) == (3, 1)
    assert settings.debounce.cooldown == timedelta(seconds=90)
    assert settings.adaptive is True
    assert settings.server is not None and settings.server.listen == "0.0.0.0:9000"
    assert (settings.global_concurrency, settings.language) == (4, "en")
    assert settings.x.daily_budget == 3 and settings.x.include_url is False
    assert settings.x.max_age == timedelta(minutes=5)
    assert settings.dispatch.max_attempts == 2


def test_politeness_host_entry_overrides_store_defaults_key_by_key(everything: Config) -> None:
    politeness = everything.settings.politeness
    amazon = politeness.limits_for("www.amazon.co.jp")  # written WWW.Amazon.co.jp
    assert amazon == HostLimits(1, timedelta(seconds=2), timedelta(minutes=1))
    store = HostLimits(2, timedelta(seconds=1), timedelta(seconds=30))
    base = politeness.limits_for("someone.base.shop", store)
    assert base == HostLimits(2, timedelta(seconds=1), timedelta(minutes=2))
    assert politeness.limits_for("example.org", store) == store
    assert politeness.limits_for("example.org") == HostLimits(
        4, timedelta(seconds=2), timedelta(minutes=1)
    )


def test_hot_window_may_run_past_midnight(everything: Config) -> None:
    (window,) = everything.settings.hot_windows
    assert window.days == frozenset({4, 5, 6, 0})  # fri-mon
    assert window.interval == timedelta(seconds=30)
    assert window.contains(4, time(23, 0))  # friday night
    assert window.contains(1, time(1, 0))  # early tuesday: monday's window
    assert not window.contains(1, time(23, 0))  # tuesday night
    assert not window.contains(0, time(2, 0))  # the end is not included


def test_notifiers_are_typed_and_hold_secrets(everything: Config) -> None:
    notifiers = everything.notifiers
    assert everything.channels == ("console", "webhook", "telegram", "email", "x")
    assert notifiers.telegram is not None
    assert notifiers.telegram.token.reveal() == "tg-secret-token"
    assert notifiers.telegram.admins == [1, -1002]
    assert notifiers.telegram.api_base_url == "http://127.0.0.1:8081"
    assert notifiers.webhook is not None
    assert notifiers.webhook.headers["Authorization"].reveal() == "Bearer hook-secret"
    assert notifiers.webhook.timeout == timedelta(seconds=3)
    assert notifiers.email is not None
    assert (notifiers.email.tls, notifiers.email.port) == ("none", 25)
    assert notifiers.x is not None and notifiers.x.access_token_secret.reveal() == "x-secret"


def test_source_without_credential_is_skipped_with_a_warning(everything: Config) -> None:
    assert everything.sources.credentials("rakuten") == {
        "application_id": "1234567890",
        "access_key": "pk_rakuten-secret",
    }
    assert everything.sources.yahoo_shopping is None
    assert everything.sources.credentials("yahoo_shopping") is None
    (warning,) = everything.warnings
    assert (warning.line, warning.path) == (46, "sources.yahoo_shopping")
    assert "JAN search skips yahoo_shopping" in warning.message


def test_watches_become_frozen_model_watches(everything: Config) -> None:
    cards, mug = everything.watches
    assert cards == Watch(
        key="pokémon-card-box",
        name="Pokémon card box",
        jan="4521329400006",
        stores=("rakuten", "yahoo_shopping"),
        interval=timedelta(minutes=2),
        conditions=WatchConditions(
            max_price=6000,
            condition=ConditionFilter.NEW,
            seller=SellerFilter.OFFICIAL,
            exclude_sellers=("Scalper Shop",),
            buyable=frozenset({Availability.PREORDER, Availability.IN_STOCK}),
            stores=frozenset({"rakuten", "yahoo_shopping"}),
        ),
        notify=Notify(telegram=(42,), email=("a@example.com",), x=True, console=True, webhook=True),
        once=True,
        notify_on_first=True,
        rules=TextRules(
            selector="#stock",
            phrases=(
                ("売り切れ", Availability.OUT_OF_STOCK),
                ("在庫あり", Availability.IN_STOCK),
                ("残りわずか", Availability.IN_STOCK),
            ),
        ),
    )
    assert mug.notify == Notify(console=True)  # no notify: the console
    assert mug.interval == timedelta(hours=1, minutes=30)  # settings.default_interval
    assert (mug.store, mug.target) == ("generic", "http://127.0.0.1:8000/items/1")


def test_defaults_of_a_minimal_file(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("watches:\n  - {name: A, url: 'https://example.com/a'}\n", encoding="utf-8")
    config = load_config(path, env={})
    settings = config.settings
    assert settings.database == str(tmp_path / "restock.sqlite3")
    assert (settings.timezone, settings.default_interval) == ("Asia/Tokyo", timedelta(minutes=5))
    assert (settings.debounce.confirm, settings.debounce.rearm) == (2, 2)
    assert settings.debounce.cooldown == timedelta(minutes=10)
    assert settings.politeness.default.limits() == HostLimits()
    assert (settings.adaptive, settings.global_concurrency, settings.language) == (False, 16, "ja")
    windows = [(w.days, w.start, w.end, w.interval) for w in settings.hot_windows]
    assert windows == [
        (frozenset(range(7)), time(0), time(5), timedelta(minutes=1)),
        (frozenset(range(5)), time(10), time(17), timedelta(minutes=2)),
    ]
    (watch,) = config.watches
    assert watch.conditions == WatchConditions()
    assert config.channels == ("console",)
    assert config.source_path == path
    assert config.warnings == ()


def test_empty_hot_windows_turn_them_off() -> None:
    config = parse_config("settings:\n  hot_windows: []\n", env={})
    assert config.settings.hot_windows == []
    assert config.watches == []


def test_fingerprint_follows_the_text() -> None:
    first = parse_config("watches: []\n", env={})
    again = parse_config("watches: []\n", env={})
    changed = parse_config("watches: []  # edited\n", env={})
    assert first.fingerprint == again.fingerprint != changed.fingerprint


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Nintendo Switch 2", "nintendo-switch-2"),
        ("Pokémon card box", "pokémon-card-box"),
        ("  Handmade mug (BASE shop) ", "handmade-mug-base-shop"),
        ("ポケモンカード　BOX", "ポケモンカード-box"),
    ],
)
def test_watch_key_is_a_slug_of_the_name(name: str, key: str) -> None:
    assert watch_key(name) == key


def test_merge_keys_share_settings_between_watches() -> None:
    text = """
watches:
  - &cheap {name: A, url: "https://example.com/a", max_price: 1000, condition: new}
  - <<: *cheap
    name: B
    url: https://example.com/b
"""
    first, second = parse_config(text, env={}).watches
    assert (second.name, second.url) == ("B", "https://example.com/b")
    assert second.conditions == first.conditions


# -- bad files: every problem, with its line and path -------------------------------------------

BAD_FILES = {
    "bad-watches.yaml": [
        (11, "watches[0].max_price", 'must be a positive integer (yen), got "6,000"'),
        (12, "watches[0].condition", 'got "nwe" (did you mean "new"?)'),
        (14, "watches[1].jan", "check digit of 4521329400007 should be 6"),
        (15, "watches[1].stores[1]", 'got "amazon" (did you mean "amazon_jp"?)'),
        (16, "watches[1].max_prise", 'unknown key (did you mean "max_price"?)'),
        (17, "watches[2].name", 'the same key "switch" as watches[0]'),
        (18, "watches[2].url", "must be an http(s) URL with a host"),
        (20, "watches[2].notify.telegram", "telegram channel is not configured"),
        (21, "watches[2].notify.email[0]", "must be an e-mail address"),
        (22, "watches[3]", "needs exactly one of `url`"),
        (27, "watches[4].buyable[1]", 'orderable state (in_stock, backorder, preorder), got "out'),
        (28, "watches[4].interval", "like 30s, 5m, 1h, 1h30m or a whole number of seconds"),
    ],
    "bad-settings.yaml": [
        (2, "settings.timezon", 'unknown key (did you mean "timezone"?)'),
        (3, "settings.default_interval", 'must be longer than 0s, got "0s"'),
        (5, "settings.debounce.confirm", "at least 1, got 0"),
        (8, 'settings.politeness.hosts["www.amazon.co.jp"].concurency', '"concurrency"?'),
        (10, "settings.hot_windows[0].days", 'got "mon-fry"'),
        (11, "settings.hot_windows[1].from", 'must be a time "HH:MM"'),
        (12, "settings.hot_windows[2]", "`from` and `to` are the same time"),
        (13, "settings.language", 'must be one of ja, en, got "de"'),
        (16, "notifiers.telegram.token", "is empty"),
        (17, "notifiers.email.password", "is empty (required with a username)"),
        (19, "notifiers.email.tls", '(did you mean "starttls"?)'),
        (21, "notifiers.email.sender", 'got "nobody"'),
        (22, "watchs", 'unknown key (did you mean "watches"?)'),
    ],
    "bad-syntax.yaml": [(5, "", "YAML syntax error: expected ',' or ']'")],
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_lists_every_problem(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIGS / name, env={})
    problems = caught.value.problems
    assert [(p.line, p.path) for p in problems] == [(ln, path) for ln, path, _ in BAD_FILES[name]]
    for problem, (_, _, fragment) in zip(problems, BAD_FILES[name], strict=True):
        assert problem.file == str(CONFIGS / name)
        assert fragment in problem.message, problem


def test_problem_reads_as_file_line_path_reason() -> None:
    text = "watches:\n  - name: A\n    url: https://e.com/a\n    max_price: '6,000'\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "watch.yaml", env={})
    expected = 'watch.yaml:4: watches[0].max_price: must be a positive integer (yen), got "6,000"'
    assert str(caught.value) == expected


BAD_SNIPPETS = [
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    notify: {webhook: true}\n",
        (4, "watches[0].notify.webhook", "webhook channel is not configured under `notifiers`"),
        id="channel-not-configured",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    stores: [rakuten]\n",
        (4, "watches[0].stores", "a URL watch forces one with `store`"),
        id="stores-on-url-watch",
    ),
    pytest.param(
        "watches:\n  - name: A\n    jan: '4521329400006'\n    store: rakuten\n",
        (4, "watches[0].store", "a JAN watch lists `stores`"),
        id="store-on-jan-watch",
    ),
    pytest.param(
        "watches:\n  - name: A\n\n    url: https://e.com/a\n  - name: A\n    url: https://e.com/b\n",
        (5, "watches[1].name", 'the same name as watches[0] ("A"); names must be unique'),
        id="duplicate-name",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    url: https://e.com/b\n",
        (4, "watches[0].url", "duplicate key 'url' (first given on line 3)"),
        id="duplicate-key",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    notify: {}\n",
        (4, "watches[0].notify", "names no one to notify"),
        id="notify-no-one",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    rules: {selector: p}\n",
        (4, "watches[0].rules", "gives no phrases"),
        id="rules-without-phrases",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    buyable: []\n",
        (4, "watches[0].buyable", "must not be empty"),
        id="empty-buyable",
    ),
    pytest.param(
        "watches:\n  - url: https://e.com/a\n",
        (2, "watches[0].name", "is required"),
        id="missing-name",
    ),
    pytest.param(
        "watches:\n  - name: '!!!'\n    url: https://e.com/a\n",
        (2, "watches[0].name", "must contain a letter or digit"),
        id="name-without-letters",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    notify: {telegram: [12a]}\n"
        "notifiers:\n  telegram: {token: t}\n",
        (4, "watches[0].notify.telegram[0]", 'must be an integer chat id, got "12a"'),
        id="chat-id-not-integer",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    once: maybe\n",
        (4, "watches[0].once", 'must be true or false, got "maybe"'),
        id="not-a-bool",
    ),
    pytest.param(
        "watches:\n  - name: A\n    url: https://e.com/a\n    jan: 4521329400006\n",
        (2, "watches[0]", "needs exactly one of `url`"),
        id="url-and-jan",
    ),
    pytest.param(
        "watches:\n  - name: A\n    jan: '12345'\n",
        (3, "watches[0].jan", "a JAN code has 13 digits, got 5"),
        id="short-jan",
    ),
    pytest.param(
        "settings:\n  timezone: Asia/Tokio\n",
        (2, "settings.timezone", 'IANA time zone like Asia/Tokyo, got "Asia/Tokio"'),
        id="timezone",
    ),
    pytest.param(
        "settings:\n  server: {listen: localhost}\n",
        (2, "settings.server.listen", 'must be "host:port"'),
        id="listen",
    ),
    pytest.param(
        "notifiers:\n  x: {consumer_key: a, consumer_secret: b, access_token: c}\n",
        (2, "notifiers.x.access_token_secret", "is required"),
        id="x-secret-missing",
    ),
    pytest.param(
        "notifiers:\n  webhook: {}\n",
        (2, "notifiers.webhook.url", "is required"),
        id="webhook-url-required",
    ),
    pytest.param(
        "watches: {name: A}\n",
        (1, "watches", "must be a list of watches"),
        id="watches-not-a-list",
    ),
    pytest.param("- a\n- b\n", (1, "", "the top level must be a mapping"), id="top-level-list"),
    pytest.param(
        "settings:\n  database: !!binary aGVsbG8=\n",
        (2, "settings.database", "unsupported YAML tag !!binary"),
        id="unsupported-tag",
    ),
    pytest.param(
        "settings:\n  user_agent: 'a ${b c}'\n",
        (2, "settings.user_agent", "write ${NAME} or ${NAME:-default}"),
        id="malformed-reference",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_SNIPPETS)
def test_bad_snippet(text: str, expected: tuple[int, str, str]) -> None:
    line, path, message = only_problem(text)
    assert (line, path) == expected[:2]
    assert expected[2] in message


# -- environment interpolation -----------------------------------------------------------------


def test_references_are_filled_from_the_environment() -> None:
    text = """
settings:
  user_agent: "bot/${VERSION} (${CONTACT:-ops@example.com}) $${LITERAL}"
notifiers:
  telegram:
    token: ${TOKEN}
    admins: ["${ADMIN}"]
  email:
    host: ${SMTP_HOST:-localhost}
    port: ${SMTP_PORT}
    sender: restock@example.com
"""
    env = {"VERSION": "2", "TOKEN": "tok", "ADMIN": "-100", "SMTP_PORT": "2525", "CONTACT": ""}
    config = parse_config(text, env=env)
    assert config.settings.user_agent == "bot/2 (ops@example.com) ${LITERAL}"
    telegram, email = config.notifiers.telegram, config.notifiers.email
    assert telegram is not None and telegram.token.reveal() == "tok"
    assert telegram.admins == [-100]
    assert email is not None and (email.host, email.port) == ("localhost", 2525)


def test_missing_variable_names_the_variable_and_line() -> None:
    text = "notifiers:\n  telegram:\n    token: ${TELEGRAM_BOT_TOKEN}\n"
    line, path, message = only_problem(text)
    assert (line, path) == (3, "notifiers.telegram.token")
    assert "environment variable TELEGRAM_BOT_TOKEN not set" in message


def test_variable_set_but_empty_makes_a_required_secret_an_error() -> None:
    text = "notifiers:\n  telegram:\n    token: ${TELEGRAM_BOT_TOKEN}\n"
    line, path, message = only_problem(text, env={"TELEGRAM_BOT_TOKEN": ""})
    assert (line, path) == (3, "notifiers.telegram.token")
    assert message == "is empty (written as ${TELEGRAM_BOT_TOKEN})"


def test_missing_source_credential_is_a_warning_not_an_error() -> None:
    text = (
        "sources:\n  rakuten:\n    application_id: ${RAKUTEN_APPLICATION_ID}\n"
        "    access_key: ${RAKUTEN_ACCESS_KEY}\n"
    )
    config = parse_config(text, "w.yaml", env={})
    assert config.sources.rakuten is None
    (warning,) = config.warnings
    assert str(warning) == (
        "w.yaml:2: sources.rakuten: no application_id or access_key "
        "(RAKUTEN_APPLICATION_ID, RAKUTEN_ACCESS_KEY not set); JAN search skips rakuten"
    )


def test_rakuten_without_its_access_key_is_skipped_and_the_key_is_named() -> None:
    old_style = "sources:\n  rakuten:\n    application_id: ${RAKUTEN_APPLICATION_ID}\n"
    config = parse_config(old_style, "w.yaml", env={"RAKUTEN_APPLICATION_ID": "app-1"})
    assert config.sources.rakuten is None
    (warning,) = config.warnings
    assert str(warning) == "w.yaml:2: sources.rakuten: no access_key; JAN search skips rakuten"

    text = old_style + "    access_key: ${RAKUTEN_ACCESS_KEY}\n"
    env = {"RAKUTEN_APPLICATION_ID": "app-1"}
    (warning,) = parse_config(text, "w.yaml", env=env).warnings
    assert "no access_key (RAKUTEN_ACCESS_KEY not set)" in str(warning)

    env["RAKUTEN_ACCESS_KEY"] = "pk_live"
    config = parse_config(text, "w.yaml", env=env)
    assert not config.warnings
    assert config.sources.credentials("rakuten") == {
        "application_id": "app-1",
        "access_key": "pk_live",
    }


def test_load_config_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("settings:\n  user_agent: ${RESTOCK_TEST_AGENT}\n", encoding="utf-8")
    monkeypatch.setenv("RESTOCK_TEST_AGENT", "from-env")
    assert load_config(path).settings.user_agent == "from-env"


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2h0m5s", timedelta(hours=2, seconds=5)),
        ("0s", timedelta(0)),
        (45, timedelta(seconds=45)),
        ("120", timedelta(minutes=2)),
    ],
)
def test_duration_forms(written: object, expected: timedelta) -> None:
    assert parse_duration(written) == expected


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("5 min", '"5 min"'),
        ("1.5h", '"1.5h"'),
        ("m5", '"m5"'),
        ('""', '""'),
        ("", "null"),
        ("30m1h", '"30m1h"'),
        ("-5", "-5"),
        ("1.5", "1.5"),
        ("true", "true"),
    ],
)
def test_bad_duration_shows_the_accepted_forms(written: str, shown: str) -> None:
    line, path, message = only_problem(f"settings:\n  default_interval: {written}\n")
    assert (line, path) == (2, "settings.default_interval")
    assert message == (
        "must be a duration like 30s, 5m, 1h, 1h30m or a whole number of seconds, got " + shown
    )


# -- secrets -----------------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == str(secret) == f"{secret}" == "***"
    assert secret.reveal() == "hunter2"
    assert Secret("").reveal() == "" and not Secret("")


def test_numeric_credential_is_kept_as_text() -> None:
    text = "sources:\n  rakuten: {application_id: 1017123456789012345, access_key: k}\n"
    config = parse_config(text, env={})
    assert config.sources.credentials("rakuten") == {
        "application_id": "1017123456789012345",
        "access_key": "k",
    }


def test_secrets_stay_hidden_in_reprs_and_dumps(everything: Config) -> None:
    secrets = ["tg-secret-token", "hook-secret", "x-secret", "1234567890", "pk_rakuten-secret"]
    dumps = [
        repr(everything),
        str(everything.notifiers),
        json.dumps(everything.notifiers.model_dump(mode="json")),
        everything.notifiers.model_dump_json(),
        repr(everything.notifiers.model_dump()),
        everything.sources.model_dump_json(),
    ]
    for text in dumps:
        assert "***" in text
        for secret in secrets:
            assert secret not in text


def test_problems_do_not_show_secret_values() -> None:
    text = "notifiers:\n  telegram:\n    token: [not-a-token]\n    bot: nope\n"
    problems = problems_of(text)
    assert [(line, path) for line, path, _ in problems] == [
        (3, "notifiers.telegram.token"),
        (4, "notifiers.telegram.bot"),
    ]
    assert "not-a-token" not in problems[0][2]


# -- schema ------------------------------------------------------------------------------------


def test_schema_describes_keys_for_editors() -> None:
    schema = json_schema()
    watch = schema["$defs"]["WatchEntry"]
    assert watch["additionalProperties"] is False
    assert "yen" in watch["properties"]["max_price"]["description"].lower()
    window = schema["$defs"]["HotWindow"]["properties"]
    assert {"from", "to", "days", "interval"} <= set(window)
    assert schema["$defs"]["Debounce"]["properties"]["cooldown"]["default"] == "10m"
    assert schema["properties"]["settings"]["$ref"] == "#/$defs/Settings"


def test_committed_schema_is_the_generated_one() -> None:
    committed = json.loads((WATCHLISTS / "schema.json").read_text(encoding="utf-8"))
    assert committed == json_schema(), (
        "watchlists/schema.json is stale; regenerate it: restock schema > watchlists/schema.json"
    )


# -- shipped watchlists ------------------------------------------------------------------------


def shipped_watchlists() -> list[Path]:
    files = sorted(WATCHLISTS.glob("*.yaml"))
    assert files, "watchlists/ holds no YAML file"
    return files


@pytest.mark.parametrize("path", shipped_watchlists(), ids=lambda p: p.name)
def test_shipped_watchlist_validates(path: Path) -> None:
    config = load_config(path, env=WATCHLIST_ENV)
    assert config.watches


def test_shipped_watchlists_cover_the_documented_kinds() -> None:
    names = {p.name for p in shipped_watchlists()}
    assert {"minimal.yaml", "example.yaml", "jan-across-stores.yaml"} <= names
    minimal = load_config(WATCHLISTS / "minimal.yaml", env={})
    assert minimal.channels == ("console",) and len(minimal.watches) == 1
    jan = load_config(WATCHLISTS / "jan-across-stores.yaml", env={})
    assert all(w.jan for w in jan.watches)


@pytest.mark.skipif(not SHARED_EXAMPLE.exists(), reason="no shared watchlist example here")
def test_shared_example_validates() -> None:
    config = load_config(SHARED_EXAMPLE, env=WATCHLIST_ENV)
    assert [w.key for w in config.watches] == [
        "nintendo-switch-2",
        "pokémon-card-box",
        "handmade-mug-base-shop",
    ]
    assert config.settings.adaptive is True


# -- the commands ------------------------------------------------------------------------------


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    path = WATCHLISTS / "minimal.yaml"
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (1 watch, channels: console)\n"
    assert err == ""


def test_validate_prints_warnings_and_still_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in GOOD_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["validate", str(CONFIGS / "good-everything.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "ok (2 watches, channels: console, webhook, telegram, email, x)" in out
    assert err.startswith("warning: ") and "sources.yahoo_shopping" in err


def test_validate_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    path = CONFIGS / "bad-watches.yaml"
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""
    assert len(lines) == len(BAD_FILES["bad-watches.yaml"])
    assert lines[0] == (
        f'{path}:11: watches[0].max_price: must be a positive integer (yen), got "6,000"'
    )


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{path}: cannot read: No such file or directory\n"


def test_validate_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "sjis.yaml"
    path.write_bytes("watches: []  # 在庫\n".encode("shift_jis"))
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: is not UTF-8 text (byte 15); save it as UTF-8\n"


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_restock_database_env_overrides_the_database_path(tmp_path: Path) -> None:
    text = "settings:\n  database: here.sqlite3\n"
    plain = parse_config(text, str(tmp_path / "w.yaml"), env={}, base_dir=tmp_path)
    assert plain.settings.database == str(tmp_path / "here.sqlite3")
    moved = parse_config(
        text, "w.yaml", env={"RESTOCK_DATABASE": "/data/restock.sqlite3"}, base_dir=tmp_path
    )
    assert moved.settings.database == "/data/restock.sqlite3"


@pytest.mark.parametrize(
    ("written", "resolved"),
    [
        ("here.sqlite3", "{dir}/here.sqlite3"),
        ("/abs/here.sqlite3", "/abs/here.sqlite3"),
        (":memory:", ":memory:"),
        ("sqlite:///here.sqlite3", "sqlite:///{dir}/here.sqlite3"),
        ("sqlite:////abs/here.sqlite3", "sqlite:////abs/here.sqlite3"),
        (
            "postgresql://restock@127.0.0.1:5432/restock",
            "postgresql://restock@127.0.0.1:5432/restock",
        ),
    ],
)
def test_the_database_is_a_path_or_a_url(tmp_path: Path, written: str, resolved: str) -> None:
    text = f"settings:\n  database: '{written}'\n"
    config = parse_config(text, str(tmp_path / "w.yaml"), env={}, base_dir=tmp_path)
    assert config.settings.database == resolved.format(dir=tmp_path)


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    with pytest.raises(ConfigError) as caught:
        parse_config("\n".join(lines) + "\n", "bomb.yaml", env={})
    assert "expands to more than" in str(caught.value)


# -- events ------------------------------------------------------------------------------------

WATCH = "watches:\n  - name: console\n    url: https://shop.example/console\n"


def test_events_default_to_the_restock_like_ones() -> None:
    [watch] = parse_config(WATCH, env={}).watches
    assert watch.conditions.events == DEFAULT_EVENTS
    assert EventKind.LOTTERY_OPEN not in watch.conditions.events


def test_events_may_ask_for_lottery_sales() -> None:
    [watch] = parse_config(WATCH + "    events: [restock, lottery_open]\n", env={}).watches
    assert watch.conditions.events == {EventKind.RESTOCK, EventKind.LOTTERY_OPEN}


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            "[restock, lotery_open]",
            "must be one of restock, preorder_open, out_of_stock, price_drop, lottery_open, "
            'got "lotery_open" (did you mean "lottery_open"?)',
        ),
        ("[lottery]", 'got "lottery" (did you mean "lottery_open"?)'),
        ("[1]", "got 1"),
    ],
)
def test_unknown_event_names_are_refused_with_the_choices(events: str, message: str) -> None:
    line, path, text = only_problem(WATCH + f"    events: {events}\n")
    assert line == 4
    assert path.startswith("watches[0].events")
    assert message in text


def test_events_must_not_be_empty() -> None:
    line, path, message = only_problem(WATCH + "    events: []\n")
    assert (line, path) == (4, "watches[0].events")
    assert "empty" in message


@pytest.mark.skipif(not SHARED_EXAMPLE.exists(), reason="no shared watchlist example here")
def test_shared_example_asks_for_lottery_sales_where_it_says_so() -> None:
    config = load_config(SHARED_EXAMPLE, env=WATCHLIST_ENV)
    switch = config.watches[0]
    assert switch.conditions.events == {EventKind.RESTOCK, EventKind.LOTTERY_OPEN}


def test_a_source_written_with_a_default_names_the_variable_to_set() -> None:
    text = (
        "sources:\n  rakuten:\n    application_id: ${RAKUTEN_APPLICATION_ID:-}\n"
        "    access_key: ${RAKUTEN_ACCESS_KEY:-}\n"
    )
    (warning,) = parse_config(text, "w.yaml", env={"RAKUTEN_APPLICATION_ID": "app"}).warnings
    assert str(warning) == (
        "w.yaml:2: sources.rakuten: no access_key (RAKUTEN_ACCESS_KEY not set or empty); "
        "JAN search skips rakuten"
    )
