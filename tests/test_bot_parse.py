"""Pure parsing of chat input, and the per-user rate limit, as tables of rows."""

from __future__ import annotations

from datetime import time

import pytest

from watcher.bot.limits import AdminCache, CommandRateLimiter, Verdict
from watcher.bot.parse import (
    ButtonAction,
    ButtonPress,
    Command,
    InputError,
    Selector,
    callback_data,
    input_problem,
    language_for,
    looks_like_target,
    parse_callback,
    parse_command,
    parse_price,
    parse_quiet,
    parse_selector,
    parse_watch,
    start_payload,
    watch_key_from_payload,
)
from watcher.core.model import DEFAULT_EVENTS, ConditionFilter, EventKind, QuietHours, QuietMode


@pytest.mark.parametrize(
    ("text", "yen"),
    [
        ("6000", 6000),
        ("6,000", 6000),
        ("¥6000", 6000),
        ("￥6,000", 6000),
        ("6000円", 6000),
        ("６０００", 6000),
        ("６，０００円", 6000),
        ("\\1980", 1980),
    ],
)
def test_prices(text: str, yen: int) -> None:
    assert parse_price(text) == yen


@pytest.mark.parametrize(
    ("text", "key"),
    [("0", "bad_price"), ("-5", "bad_arg"), ("6k", "bad_arg"), ("1e9", "bad_arg"), ("", "bad_arg")],
)
def test_bad_prices(text: str, key: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_price(text)
    assert caught.value.key == key


def test_price_above_any_budget_is_refused() -> None:
    with pytest.raises(InputError):
        parse_price("999999999999")


def test_watch_with_every_option_in_any_order() -> None:
    request = parse_watch(("https://www.amazon.co.jp/dp/X", "always", "新品", "6,000円"))
    assert request.url == "https://www.amazon.co.jp/dp/X"
    assert (request.max_price, request.condition, request.standing) == (
        6000,
        ConditionFilter.NEW,
        True,
    )


def test_watch_defaults_to_one_shot_any_condition() -> None:
    request = parse_watch(("4901234567894",))
    assert request.target == "jan:4901234567894"
    assert (request.max_price, request.condition, request.standing) == (
        None,
        ConditionFilter.ANY,
        False,
    )


def test_watch_without_scheme_gets_https() -> None:
    assert parse_watch(("www.amazon.co.jp/dp/X",)).url == "https://www.amazon.co.jp/dp/X"


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ((), "watch_usage"),
        (("hello",), "bad_target"),
        (("6000",), "bad_target"),
        (("4901234567890",), "bad_jan"),
        (("https://a.example/x", "6000", "7000"), "duplicate_arg"),
        (("https://a.example/x", "new", "used"), "duplicate_arg"),
        (("https://a.example/x", "cheap"), "bad_arg"),
    ],
)
def test_watch_refusals(args: tuple[str, ...], key: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_watch(args)
    assert caught.value.key == key


def test_bad_jan_carries_the_reason() -> None:
    with pytest.raises(InputError) as caught:
        parse_watch(("4901234567890",))
    assert "check digit" in str(caught.value.values["reason"])


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/watch a b", Command("watch", ("a", "b"), None, "a b")),
        ("/WATCH@RestockBot  a", Command("watch", ("a",), "RestockBot", "a")),
        ("/list", Command("list")),
        ("/broadcast hi\nthere", Command("broadcast", ("hi", "there"), None, "hi\nthere")),
        (
            "/watch　https://x.example",
            Command("watch", ("https://x.example",), None, "https://x.example"),
        ),
    ],
)
def test_commands(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize("text", ["hello", "/", "/watch-x", "/a.b", "//x", " not /cmd"])
def test_not_commands(text: str) -> None:
    assert parse_command(text) is None


def test_command_for_another_bot() -> None:
    command = parse_command("/list@OtherBot")
    assert command is not None
    assert not command.for_bot("RestockBot")
    assert command.for_bot("otherbot")


@pytest.mark.parametrize(
    ("args", "quiet"),
    [
        (("23:00-07:00",), QuietHours(time(23), time(7), QuietMode.HOLD)),
        (("22:30〜6:15", "drop"), QuietHours(time(22, 30), time(6, 15), QuietMode.DROP)),
        (("２３：００～０７：００",), QuietHours(time(23), time(7))),
        (("1", "-", "5", "hold"), QuietHours(time(1), time(5))),
        (("24:00-6",), QuietHours(time(0), time(6))),
        (("off",), None),
    ],
)
def test_quiet_hours(args: tuple[str, ...], quiet: QuietHours | None) -> None:
    assert parse_quiet(args) == quiet


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ((), "quiet_usage"),
        (("23:00",), "quiet_usage"),
        (("23:00-07:00-08:00",), "quiet_usage"),
        (("25:00-07:00",), "bad_time"),
        (("23:60-07:00",), "bad_time"),
        (("7:00-7:00",), "quiet_empty"),
    ],
)
def test_bad_quiet_hours(args: tuple[str, ...], key: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_quiet(args)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("text", "selector"),
    [
        ("2", Selector(position=2)),
        ("#15", Selector(subscription_id=15)),
        ("３", Selector(position=3)),
    ],
)
def test_selectors(text: str, selector: Selector) -> None:
    assert parse_selector(text) == selector


@pytest.mark.parametrize("text", ["0", "-1", "#", "a", "1" * 19, "#x"])
def test_bad_selectors(text: str) -> None:
    with pytest.raises(InputError):
        parse_selector(text)


def test_callback_data_round_trip_within_telegram_limit() -> None:
    for action in ButtonAction:
        data = callback_data(action, 10**17)
        assert len(data.encode()) <= 64
        assert parse_callback(data) == ButtonPress(action, 10**17)


@pytest.mark.parametrize("data", [None, "", "x:1", "p:", "p:1 ", "p:01x", "p:1:2", "P:1"])
def test_foreign_callback_data(data: str | None) -> None:
    assert parse_callback(data) is None


@pytest.mark.parametrize("key", ["switch2-amazon", "chat:0123456789abcdef01234567", "鬼滅_1"])
def test_start_payload_round_trip(key: str) -> None:
    payload = start_payload(key)
    assert payload is not None and len(payload) <= 64
    assert all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in payload)
    assert watch_key_from_payload(payload) == key


def test_start_payload_plain_keys_stay_readable() -> None:
    assert start_payload("switch2") == "w_switch2"
    assert start_payload("x" * 100) is None


@pytest.mark.parametrize("payload", ["", "w_", "b_", "hello", "b_!!", "w_a b", "w_" + "x" * 70])
def test_payloads_that_name_no_watch(payload: str) -> None:
    assert watch_key_from_payload(payload) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/watch x", None),
        ("line one\nline two\ttab", None),
        ("x" * 1001, "too_long"),
        ("a\x00b", "control"),
        ("a\x1bb", "control"),
        ("a\u202eb", "control"),
        ("a\x85b", "control"),
    ],
)
def test_input_problems(text: str, problem: str | None) -> None:
    assert input_problem(text, 1000) == problem


@pytest.mark.parametrize(
    ("code", "language"), [(None, "ja"), ("ja", "ja"), ("ja-JP", "ja"), ("en", "en"), ("fr", "en")]
)
def test_language(code: str | None, language: str) -> None:
    assert language_for(code) == language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://www.amazon.co.jp/dp/X", True),
        ("4901234567894", True),
        ("hello", False),
        ("https://a.example/x and more", False),
        ("", False),
    ],
)
def test_looks_like_target(text: str, expected: bool) -> None:
    assert looks_like_target(text) is expected


def test_rate_limit_window_warns_once() -> None:
    limiter = CommandRateLimiter(limit=2, seconds=60)
    verdicts = [limiter.check(1, t) for t in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert verdicts == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN, Verdict.SILENT, Verdict.SILENT]
    assert limiter.check(2, 4.0) is Verdict.ALLOW
    assert limiter.check(1, 60.5) is Verdict.ALLOW  # the first command left the window
    assert limiter.check(1, 60.6) is Verdict.WARN  # a new limited spell warns again


def test_rate_limit_forgets_idle_users() -> None:
    limiter = CommandRateLimiter(limit=1, seconds=1)
    for user in range(5000):
        limiter.check(user, float(user) * 2)
    assert len(limiter._users) < 5000


def test_rate_limit_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        CommandRateLimiter(limit=0, seconds=60)


def test_admin_cache_keeps_answers_per_group_and_user_until_they_expire() -> None:
    cache = AdminCache(seconds=300, max_entries=10)
    assert cache.get(-100, 1, 0.0) is None
    cache.put(-100, 1, True, 0.0)
    cache.put(-100, 2, False, 0.0)
    assert cache.get(-100, 1, 299.0) is True
    assert cache.get(-100, 2, 299.0) is False  # a "no" is remembered too
    assert cache.get(-200, 1, 299.0) is None  # admin of one group is nobody in another
    assert cache.get(-100, 1, 300.0) is None  # expired: Telegram is asked again
    assert len(cache) == 1


def test_admin_cache_is_bounded_and_drops_expired_answers_first() -> None:
    cache = AdminCache(seconds=10, max_entries=3)
    cache.put(-1, 1, True, 0.0)
    cache.put(-1, 2, True, 5.0)
    cache.put(-1, 3, True, 6.0)
    cache.put(-1, 4, True, 11.0)  # full: the expired (-1, 1) goes
    assert len(cache) == 3
    assert cache.get(-1, 2, 11.0) is True
    cache.put(-1, 5, False, 12.0)  # full, nothing expired: the oldest (-1, 2) goes
    assert len(cache) == 3
    assert cache.get(-1, 2, 12.0) is None
    assert [cache.get(-1, u, 12.0) for u in (3, 4, 5)] == [True, True, False]
    cache.put(-1, 3, False, 13.0)  # a fresh answer replaces the old one and its place
    cache.put(-1, 6, True, 14.0)
    assert cache.get(-1, 4, 14.0) is None
    assert cache.get(-1, 3, 14.0) is False


def test_admin_cache_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        AdminCache(seconds=0, max_entries=10)
    with pytest.raises(ValueError):
        AdminCache(seconds=300, max_entries=0)


@pytest.mark.parametrize("word", ["lottery", "LOTTERY", "抽選", "ｌｏｔｔｅｒｙ"])
def test_watch_lottery_option_asks_for_lottery_alerts_too(word: str) -> None:
    request = parse_watch(("https://www.amazon.co.jp/dp/B0DX000000", "6000", word))
    assert request.lottery
    assert request.events == DEFAULT_EVENTS | {EventKind.LOTTERY_OPEN}
    assert request.max_price == 6000


def test_watch_without_the_lottery_option_keeps_the_default_events() -> None:
    request = parse_watch(("https://www.amazon.co.jp/dp/B0DX000000",))
    assert not request.lottery and request.events == DEFAULT_EVENTS


def test_watch_lottery_option_given_twice_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        parse_watch(("4901234567894", "lottery", "抽選"))
    assert caught.value.key == "duplicate_arg"
