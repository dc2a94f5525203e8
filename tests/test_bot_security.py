"""Hostile input to the chat bot: SSRF attempts, floods, oversize and forged input, escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_bot import ADMIN, ALICE, BOB, PRODUCT, Call, Harness, bot_harness

# Tags the bot's own texts use; anything else in a reply would be injected markup.
_OWN_TAGS = re.compile(r"</?(b|i|code)>")


def assert_safe_html(call: Call) -> None:
    without_own = _OWN_TAGS.sub("", call.text)
    assert "<" not in without_own and ">" not in without_own, call.text


async def assert_refused_url(h: Harness, url: str) -> None:
    [reply] = await h.say(f"/watch {url}")
    assert "このURLは登録できません" in reply.text
    assert_safe_html(reply)
    assert await h.repo.list_subscriptions(ALICE) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://10.0.0.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",  # 127.0.0.1 in decimal
        "http://0177.0.0.1/",  # 127.0.0.1 in octal
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://www.аmazon.co.jp/dp/B0DX000000",  # Cyrillic "а": an IDN look-alike
        "https://www.amazon.co.jp.evil.example/dp/B0DX000000",
        "https://www.amazon.co.jp@evil.example/",
        "https://www.amazon.co.jp:8443/dp/B0DX000000",
        "file:///etc/passwd",
        "gopher://www.amazon.co.jp/",
        "http://localhost/",
        "https://example.com/product",
    ],
)
async def test_unsafe_urls_are_refused(tmp_path: Path, url: str) -> None:
    async with bot_harness(tmp_path) as h:
        await assert_refused_url(h, url)


@pytest.mark.parametrize("answer", ["10.1.2.3", "127.0.0.1", "::ffff:169.254.169.254", "fd00::1"])
async def test_store_host_resolving_to_a_private_address_is_refused(
    tmp_path: Path, answer: str
) -> None:
    async with bot_harness(tmp_path) as h:
        h.resolver.answers["www.amazon.co.jp"] = ["52.119.168.48", answer]
        await assert_refused_url(h, PRODUCT)
        assert h.resolver.asked == ["www.amazon.co.jp"]


async def test_allowed_hosts_come_from_settings(tmp_path: Path) -> None:
    async with bot_harness(tmp_path, allowed_hosts=("item.rakuten.co.jp",)) as h:
        await assert_refused_url(h, PRODUCT)
        [reply] = await h.say("/watch https://item.rakuten.co.jp/shop/item-1/")
        assert "登録しました" in reply.text


async def test_huge_message_gets_a_short_plain_answer(tmp_path: Path) -> None:
    async with bot_harness(tmp_path) as h:
        [reply] = await h.say("/watch " + "A" * 10_000)
        assert reply.text == "メッセージが長すぎます。"
        [reply] = await h.say("x" * 10_000)
        assert reply.text == "メッセージが長すぎます。"
        assert await h.repo.list_subscriptions(ALICE) == []
        assert h.resolver.asked == []


@pytest.mark.parametrize(
    "text", ["/watch https://www.amazon.co.jp/\x00", "/list\u202e", "\x1b[31m"]
)
async def test_control_characters_get_a_short_answer(tmp_path: Path, text: str) -> None:
    async with bot_harness(tmp_path) as h:
        [reply] = await h.say(text)
        assert reply.text == "読めない文字が含まれています。"
        assert await h.repo.list_subscriptions(ALICE) == []


@pytest.mark.parametrize(
    "text",
    [
        "/watch <b>bold</b>",
        "/watch 4901234567890",  # wrong check digit
        f"/watch {PRODUCT} <script>alert(1)</script>",
        "/unwatch <img src=x onerror=alert(1)>",
        "/quiet <b>22:00</b>-07:00",
        "/pause &amp;",
    ],
)
async def test_user_text_echoed_back_is_escaped(tmp_path: Path, text: str) -> None:
    async with bot_harness(tmp_path) as h:
        [reply] = await h.say(text)
        assert_safe_html(reply)
        assert reply.form["parse_mode"] == "HTML"


async def test_invalid_jan_says_why(tmp_path: Path) -> None:
    async with bot_harness(tmp_path) as h:
        [reply] = await h.say("/watch 4901234567890")
        assert reply.text.startswith("JANコードが正しくありません: ")
        assert "should be 4" in reply.text
        [reply] = await h.say("/watch 49012345")
        assert "8-digit" in reply.text


async def test_html_in_a_yaml_watch_name_is_escaped(tmp_path: Path) -> None:
    from watcher.model import Watch

    async with bot_harness(tmp_path) as h:
        watch = Watch(key="w1", name="<a href='https://evil.example'>win</a>", url=PRODUCT)
        await h.repo.sync_yaml_watches([watch], h.clock.now())
        [reply] = await h.say("/start w_w1")
        [listing] = await h.say("/list")
        for call in (reply, listing):
            assert_safe_html(call)
            assert "&lt;a href=" in call.text


async def test_watch_quota(tmp_path: Path) -> None:
    async with bot_harness(tmp_path, max_watches_per_user=2) as h:
        await h.say("/watch 4901234567894")
        await h.say(f"/watch {PRODUCT}")
        [reply] = await h.say("/watch https://item.rakuten.co.jp/shop/item-1/")
        assert "2件まで" in reply.text
        assert len(await h.repo.list_subscriptions(ALICE)) == 2
        [reply] = await h.say("/start w_anything")
        assert len(await h.repo.list_subscriptions(ALICE)) == 2
        await h.say(f"/watch {PRODUCT}", user=BOB)  # quotas are per user
        assert len(await h.repo.list_subscriptions(BOB)) == 1


async def test_rate_limit_answers_once_then_stays_silent(tmp_path: Path) -> None:
    async with bot_harness(tmp_path, command_limit=3, command_window=60.0) as h:
        for _ in range(3):
            assert len(await h.say("/help")) == 1
        [warning] = await h.say("/help")
        assert warning.text == "コマンドが多すぎます。1分ほど待ってから送ってください。"
        assert await h.say("/help") == []
        assert await h.say("x" * 10_000) == []  # silence, whatever is sent
        assert len(await h.say("/help", user=BOB)) == 1  # limits are per user
        h.clock.t += 61
        [reply] = await h.say("/help")
        assert "/watch" in reply.text


async def test_rate_limit_covers_buttons(tmp_path: Path) -> None:
    async with bot_harness(tmp_path, command_limit=1, command_window=60.0) as h:
        await h.say(f"/watch {PRODUCT}")
        [sub] = await h.repo.list_subscriptions(ALICE)
        calls = await h.press(f"p:{sub.id}")
        assert [c.method for c in calls] == ["answerCallbackQuery"]
        assert not (await h.repo.list_subscriptions(ALICE))[0].paused


async def test_buttons_for_another_users_subscription_are_refused(tmp_path: Path) -> None:
    async with bot_harness(tmp_path) as h:
        await h.say(f"/watch {PRODUCT}")
        [alices] = await h.repo.list_subscriptions(ALICE)
        for data in (f"r:{alices.id}", f"p:{alices.id}"):
            calls = await h.press(data, user=BOB)
            assert [c.method for c in calls] == ["answerCallbackQuery"]
            assert calls[0].form["text"] == "この登録はもうありません"
        [still] = await h.repo.list_subscriptions(ALICE)
        assert still.active and not still.paused
        # Bob cannot reach it by number or id either.
        [reply] = await h.say(f"/unwatch #{alices.id}", user=BOB)
        assert "見つかりません" in reply.text
        assert len(await h.repo.list_subscriptions(ALICE)) == 1


@pytest.mark.parametrize("data", ["x:1", "p:abc", "p:-1", "p:1:2", "r:" + "9" * 60, ""])
async def test_forged_button_data_changes_nothing(tmp_path: Path, data: str) -> None:
    async with bot_harness(tmp_path) as h:
        await h.say(f"/watch {PRODUCT}")
        calls = await h.press(data)
        assert [c.method for c in calls] == ["answerCallbackQuery"]
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.active and not sub.paused


async def test_admin_commands_look_unknown_to_others(tmp_path: Path) -> None:
    async with bot_harness(tmp_path) as h:
        await h.say(f"/watch {PRODUCT}")
        [unknown] = await h.say("/frobnicate")
        [stats] = await h.say("/stats")
        [broadcast] = await h.say("/broadcast hello")
        assert stats.text == broadcast.text == unknown.text
        assert [c.chat_id for c in h.api.sent()].count(ALICE) == 4
        [admin_stats] = await h.say("/stats", user=ADMIN)
        assert "統計" in admin_stats.text


async def test_token_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from test_bot import TOKEN

    caplog.set_level("DEBUG")
    async with bot_harness(tmp_path) as h:
        h.api.failures["sendMessage"] = [(400, {"ok": False, "description": f"bad {TOKEN}"})]
        await h.say("/help")
    assert TOKEN not in caplog.text
