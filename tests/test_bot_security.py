"""Hostile input to the chat bot: SSRF attempts, floods, oversize and forged input, escaping."""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_bot import (
    ADMIN,
    ALICE,
    BOB,
    GROUP,
    PRODUCT,
    TOKEN,
    Call,
    Harness,
    bot_harness,
    record_restock,
)

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
async def test_unsafe_urls_are_refused(database: str, url: str) -> None:
    async with bot_harness(database) as h:
        await assert_refused_url(h, url)


@pytest.mark.parametrize("answer", ["10.1.2.3", "127.0.0.1", "::ffff:169.254.169.254", "fd00::1"])
async def test_store_host_resolving_to_a_private_address_is_refused(
    database: str, answer: str
) -> None:
    async with bot_harness(database) as h:
        h.resolver.answers["www.amazon.co.jp"] = ["52.119.168.48", answer]
        await assert_refused_url(h, PRODUCT)
        assert h.resolver.asked == ["www.amazon.co.jp"]


async def test_allowed_hosts_come_from_settings(database: str) -> None:
    async with bot_harness(database, allowed_hosts=("item.rakuten.co.jp",)) as h:
        await assert_refused_url(h, PRODUCT)
        [reply] = await h.say("/watch https://item.rakuten.co.jp/shop/item-1/")
        assert "登録しました" in reply.text


async def test_huge_message_gets_a_short_plain_answer(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say("/watch " + "A" * 10_000)
        assert reply.text == "メッセージが長すぎます。"
        [reply] = await h.say("x" * 10_000)
        assert reply.text == "メッセージが長すぎます。"
        assert await h.repo.list_subscriptions(ALICE) == []
        assert h.resolver.asked == []


@pytest.mark.parametrize(
    "text", ["/watch https://www.amazon.co.jp/\x00", "/list\u202e", "\x1b[31m"]
)
async def test_control_characters_get_a_short_answer(database: str, text: str) -> None:
    async with bot_harness(database) as h:
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
async def test_user_text_echoed_back_is_escaped(database: str, text: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say(text)
        assert_safe_html(reply)
        assert reply.form["parse_mode"] == "HTML"


async def test_invalid_jan_says_why(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say("/watch 4901234567890")
        assert reply.text.startswith("JANコードが正しくありません: ")
        assert "should be 4" in reply.text
        [reply] = await h.say("/watch 49012345")
        assert "8-digit" in reply.text


async def test_html_in_a_yaml_watch_name_is_escaped(database: str) -> None:
    from watcher.core.model import Watch

    async with bot_harness(database) as h:
        watch = Watch(key="w1", name="<a href='https://evil.example'>win</a>", url=PRODUCT)
        await h.repo.sync_yaml_watches([watch], h.clock.now())
        [reply] = await h.say("/start w_w1")
        [listing] = await h.say("/list")
        for call in (reply, listing):
            assert_safe_html(call)
            assert "&lt;a href=" in call.text


async def test_watch_quota(database: str) -> None:
    async with bot_harness(database, max_watches_per_user=2) as h:
        await h.say("/watch 4901234567894")
        await h.say(f"/watch {PRODUCT}")
        [reply] = await h.say("/watch https://item.rakuten.co.jp/shop/item-1/")
        assert "2件まで" in reply.text
        assert len(await h.repo.list_subscriptions(ALICE)) == 2
        [reply] = await h.say("/start w_anything")
        assert len(await h.repo.list_subscriptions(ALICE)) == 2
        await h.say(f"/watch {PRODUCT}", user=BOB)  # quotas are per user
        assert len(await h.repo.list_subscriptions(BOB)) == 1


async def test_rate_limit_answers_once_then_stays_silent(database: str) -> None:
    async with bot_harness(database, command_limit=3, command_window=60.0) as h:
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


async def test_rate_limit_covers_buttons(database: str) -> None:
    async with bot_harness(database, command_limit=1, command_window=60.0) as h:
        await h.say(f"/watch {PRODUCT}")
        [sub] = await h.repo.list_subscriptions(ALICE)
        calls = await h.press(f"p:{sub.id}")
        assert [c.method for c in calls] == ["answerCallbackQuery"]
        assert not (await h.repo.list_subscriptions(ALICE))[0].paused


async def test_buttons_for_another_users_subscription_are_refused(database: str) -> None:
    async with bot_harness(database) as h:
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
async def test_forged_button_data_changes_nothing(database: str, data: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        calls = await h.press(data)
        assert [c.method for c in calls] == ["answerCallbackQuery"]
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.active and not sub.paused


async def test_admin_commands_look_unknown_to_others(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        [unknown] = await h.say("/frobnicate")
        [stats] = await h.say("/stats")
        [broadcast] = await h.say("/broadcast hello")
        assert stats.text == broadcast.text == unknown.text
        assert [c.chat_id for c in h.api.sent()].count(ALICE) == 4
        [admin_stats] = await h.say("/stats", user=ADMIN)
        assert "統計" in admin_stats.text


async def test_token_never_logged(database: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    async with bot_harness(database) as h:
        h.api.failures["sendMessage"] = [(400, {"ok": False, "description": f"bad {TOKEN}"})]
        await h.say("/help")
    assert TOKEN not in caplog.text


# --- groups: only the group's administrators change what it watches ---------------------------

REFUSED = "グループの登録を変更できるのは、このグループの管理者だけです。"
TRY_AGAIN = "管理者かどうかを確認できませんでした。少し待ってからもう一度お試しください。"


async def in_group(h: Harness, text: str, user: int = BOB, **options: Any) -> list[Call]:
    return await h.say(text, user, chat=GROUP, chat_type="supergroup", **options)


async def group_with_one_watch(h: Harness) -> int:
    """Alice, the group's creator, subscribes it to PRODUCT; returns the subscription id."""
    h.api.members[(GROUP, ALICE)] = "creator"
    [reply] = await in_group(h, f"/watch {PRODUCT}", user=ALICE)
    assert "登録しました" in reply.text
    [sub] = await h.repo.list_subscriptions(GROUP)
    h.api.clear()
    return sub.id


async def test_a_members_watch_in_a_group_is_refused_and_writes_nothing(database: str) -> None:
    async with bot_harness(database) as h:
        for chat_type in ("group", "supergroup"):
            [reply] = await h.say(f"/watch {PRODUCT}", BOB, chat=GROUP, chat_type=chat_type)
            assert reply.chat_id == GROUP and reply.text == REFUSED
        [english] = await in_group(h, f"/watch@RestockBot {PRODUCT}", language="en")
        assert english.text == "Only this group's admins can change its watches."
        assert h.api.member_checks() == [(GROUP, BOB)]  # asked once, then remembered
        assert h.resolver.asked == []  # refused before the URL was even looked at
        assert await h.repo.list_subscriptions(GROUP) == []
        assert (await h.repo.stats()).users == 0  # not even the chat was recorded


@pytest.mark.parametrize(
    "command",
    ["/unwatch 1", "/pause", "/pause 1", "/resume", "/quiet 23:00-07:00", "/stop", "/start w_w1"],
)
async def test_every_change_to_a_groups_watches_needs_an_admin(database: str, command: str) -> None:
    from watcher.core.model import Watch

    async with bot_harness(database) as h:
        await h.repo.sync_yaml_watches([Watch(key="w1", name="w1", url=PRODUCT)], h.clock.now())
        await group_with_one_watch(h)
        if command == "/resume":
            await in_group(h, "/pause", user=ALICE)
        before = await h.repo.list_subscriptions(GROUP)
        [reply] = await in_group(h, command)
        assert reply.text == REFUSED
        assert await h.repo.list_subscriptions(GROUP) == before
        assert (GROUP, BOB) in h.api.member_checks()


@pytest.mark.parametrize("status", ["creator", "administrator"])
async def test_a_group_admin_changes_the_groups_watches(database: str, status: str) -> None:
    async with bot_harness(database) as h:
        h.api.members[(GROUP, BOB)] = status
        [reply] = await in_group(h, f"/watch {PRODUCT}")
        assert "登録しました" in reply.text
        [sub] = await h.repo.list_subscriptions(GROUP)
        assert sub.target == PRODUCT
        [reply] = await in_group(h, "/pause 1")
        assert "一時停止しました" in reply.text
        [reply] = await in_group(h, "/stop")
        assert "1件の登録を終了" in reply.text
        assert h.api.member_checks() == [(GROUP, BOB)]  # three changes, one question


async def test_an_anonymous_admin_writing_as_the_group_is_an_admin(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await in_group(h, f"/watch {PRODUCT}", as_group=True, language=None)
        assert "登録しました" in reply.text
        assert len(await h.repo.list_subscriptions(GROUP)) == 1
        [reply] = await in_group(h, "/unwatch 1", as_group=True, language=None)
        assert "削除しました" in reply.text
        assert await h.repo.list_subscriptions(GROUP) == []
        assert h.api.member_checks() == []  # only an admin can write as the group


async def test_a_bot_posing_as_someone_else_in_a_group_is_still_ignored(database: str) -> None:
    async with bot_harness(database) as h:
        from test_bot import ANONYMOUS_ADMIN_BOT

        sender = {"id": ANONYMOUS_ADMIN_BOT, "is_bot": True, "first_name": "Group"}
        channel = {"id": -100999, "type": "channel", "title": "Other"}
        message = {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": GROUP, "type": "supergroup"},
            "sender_chat": channel,  # a linked channel's post: not the group's own admins
            "from": sender,
            "text": f"/watch {PRODUCT}",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        }
        await h.feed({"update_id": 1, "message": message})
        assert h.api.sent() == []
        assert await h.repo.list_subscriptions(GROUP) == []


async def test_members_still_read_the_groups_list_and_help(database: str) -> None:
    async with bot_harness(database) as h:
        await group_with_one_watch(h)
        [listing] = await in_group(h, "/list")
        assert "（1件）" in listing.text and listing.buttons()
        [helping] = await in_group(h, "/help", language="en")
        assert "Restock alert bot" in helping.text
        [start] = await in_group(h, "/start", language="en")
        assert "Restock alert bot" in start.text
        assert h.api.member_checks() == []  # reading never asks who is an admin
        # A member's /start does not switch the group's alerts to their language.
        assert (await h.repo.ensure_chat_user(GROUP, h.clock.now())).language == "ja"


async def test_a_members_button_press_on_the_groups_list_is_refused_with_an_alert(
    database: str,
) -> None:
    async with bot_harness(database) as h:
        sub_id = await group_with_one_watch(h)
        for data in (f"p:{sub_id}", f"r:{sub_id}"):
            calls = await h.press(data, user=BOB, chat=GROUP, chat_type="supergroup")
            assert [c.method for c in calls] in (
                ["getChatMember", "answerCallbackQuery"],
                ["answerCallbackQuery"],  # the second press: the answer is remembered
            )
            answer = calls[-1]
            assert answer.form["text"] == REFUSED
            assert answer.form["show_alert"] == "true"
        [sub] = await h.repo.list_subscriptions(GROUP)
        assert sub.active and not sub.paused
        assert h.api.member_checks() == [(GROUP, BOB)]
        # Alice, the creator (known since her /watch), may press it.
        calls = await h.press(f"p:{sub_id}", user=ALICE, chat=GROUP, chat_type="supergroup")
        assert [c.method for c in calls] == ["answerCallbackQuery", "editMessageText"]
        assert calls[0].form["text"] == "一時停止しました"
        assert calls[0].form.get("show_alert") != "true"
        assert (await h.repo.list_subscriptions(GROUP))[0].paused


async def test_forged_buttons_in_a_group_do_not_ask_telegram(database: str) -> None:
    async with bot_harness(database) as h:
        calls = await h.press("x:1", user=BOB, chat=GROUP, chat_type="supergroup")
        assert [c.method for c in calls] == ["answerCallbackQuery"]


@pytest.mark.parametrize(
    "failure",
    [
        (400, {"ok": False, "error_code": 400, "description": "Bad Request: user not found"}),
        (403, {"ok": False, "error_code": 403, "description": f"Forbidden: {TOKEN}"}),
        "unreachable",
    ],
)
async def test_a_failed_admin_check_refuses_and_asks_to_try_again(
    database: str, caplog: pytest.LogCaptureFixture, failure: Any
) -> None:
    caplog.set_level("INFO")
    async with bot_harness(database) as h:
        h.api.members[(GROUP, BOB)] = "administrator"
        if failure == "unreachable":
            h.api.unreachable.add("getChatMember")
        else:
            h.api.failures["getChatMember"] = [failure, failure]
        [reply] = await in_group(h, f"/watch {PRODUCT}")
        assert reply.text == TRY_AGAIN
        assert await h.repo.list_subscriptions(GROUP) == []
        calls = await h.press("p:1", user=BOB, chat=GROUP, chat_type="supergroup")
        assert calls[-1].form["text"] == TRY_AGAIN and calls[-1].form["show_alert"] == "true"
        assert "bot: admin check failed" in caplog.text
        assert TOKEN not in caplog.text
        # A failure is not remembered: once Telegram answers, the admin gets through.
        h.api.unreachable.clear()
        h.api.failures.clear()
        [reply] = await in_group(h, f"/watch {PRODUCT}")
        assert "登録しました" in reply.text
        assert len(h.api.member_checks()) == 3


async def test_admin_answers_are_remembered_for_five_minutes(database: str) -> None:
    async with bot_harness(database, command_limit=100) as h:
        h.api.members[(GROUP, BOB)] = "administrator"
        await in_group(h, f"/watch {PRODUCT}")
        h.clock.t += 299
        await in_group(h, "/pause")
        assert h.api.member_checks() == [(GROUP, BOB)]
        # Five minutes on, Telegram is asked again and a demotion takes effect.
        h.api.members[(GROUP, BOB)] = "member"
        h.clock.t += 2
        [reply] = await in_group(h, "/resume")
        assert reply.text == REFUSED
        assert h.api.member_checks() == [(GROUP, BOB), (GROUP, BOB)]
        # Each user of each group is asked about separately.
        await in_group(h, "/resume", user=ALICE)
        await h.say("/resume", BOB, chat=GROUP - 1, chat_type="group")
        assert h.api.member_checks()[2:] == [(GROUP, ALICE), (GROUP - 1, BOB)]


async def test_private_chats_never_ask_who_is_an_admin(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        await h.say("/watch 4901234567894")
        [sub, _] = await h.repo.list_subscriptions(ALICE)
        await h.say("/pause 1")
        await h.say("/resume")
        await h.say("/quiet 23:00-07:00")
        await h.say("/list")
        await h.press(f"p:{sub.id}")
        await h.press(f"r:{sub.id}")
        await h.say("/unwatch 1")
        await h.say("/stop")
        assert [c.method for c in h.api.calls if c.method == "getChatMember"] == []
        assert await h.repo.list_subscriptions(ALICE) == []


async def test_bot_wide_admin_commands_work_in_a_group_without_an_admin_check(
    database: str,
) -> None:
    async with bot_harness(database) as h:
        await group_with_one_watch(h)
        assert await record_restock(h, GROUP) == 1
        [stats] = await in_group(h, "/stats", user=ADMIN)
        assert "統計" in stats.text
        assert h.api.member_checks() == []
