"""The chat bot driven offline: updates fed to the PTB application, the Bot API faked with respx,
a real database on each backend. Whole conversations, from /watch to the remove button."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from notifiers.pacing import Pacer
from watcher.bot.telegram import BotSettings, ChatBot
from watcher.core.model import (
    Availability,
    ConditionFilter,
    Event,
    EventKind,
    Observation,
    QuietMode,
    Watch,
)
from watcher.net.netguard import URLGuard
from watcher.secret import Secret
from watcher.storage import open_repository
from watcher.storage.interface import CheckOutcome, Repository, WatchDecision

TOKEN = "654321:AAH-chat-bot-secret_token"
API = "https://tg.example.test"
BOT_URL = f"{API}/bot{TOKEN}"
T0 = datetime(2026, 11, 23, 3, 0, 0, tzinfo=UTC)
PUBLIC_IP = "52.119.168.48"
ADMIN = 999
ALICE = 1001
BOB = 1002
PRODUCT = "https://www.amazon.co.jp/dp/B0DX000000"
GROUP = -100123456
ANONYMOUS_ADMIN_BOT = 1087968824  # the "from" Telegram shows for an admin writing as the group


class FakeClock:
    """Time moves only when someone sleeps (the pacer) or a test advances it."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


class FakeResolver:
    """Host -> addresses; every store host resolves to a public address unless told otherwise."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        return self.answers.get(host, [PUBLIC_IP])


@dataclass
class Call:
    method: str
    form: dict[str, str]

    @property
    def text(self) -> str:
        return self.form.get("text", "")

    @property
    def chat_id(self) -> int:
        return int(self.form["chat_id"])

    @property
    def markup(self) -> dict[str, Any] | None:
        raw = self.form.get("reply_markup")
        return json.loads(raw) if raw else None

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of every inline button."""
        rows = (self.markup or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for row in rows for b in row]


ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)


class FakeBotApi:
    """Answers every Bot API method the bot uses and records what was asked.

    getChatMember answers from `members` ((chat, user) -> status), "member" for anyone not in it.
    """

    def __init__(self, router: respx.MockRouter) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.unreachable: set[str] = set()  # methods whose requests fail to connect
        self.members: dict[tuple[int, int], str] = {}
        self.updates: list[dict[str, Any]] = []  # what the next getUpdates hands out
        self.delivered = asyncio.Event()  # set when a sendMessage arrives
        self._ids = itertools.count(100)
        router.post(url__regex=rf"^{BOT_URL}/(?P<method>\w+)$").mock(side_effect=self.answer)

    def answer(self, request: httpx.Request, method: str) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.calls.append(Call(method, form))
        if method == "sendMessage":
            self.delivered.set()
        if method in self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        scripted = self.failures.get(method)
        if scripted:
            status, body = scripted.pop(0)
            return httpx.Response(status, json=body)
        return httpx.Response(200, json={"ok": True, "result": self._result(method, form)})

    def _result(self, method: str, form: dict[str, str]) -> Any:
        if method == "getMe":
            return {"id": 654321, "is_bot": True, "first_name": "Restock", "username": "RestockBot"}
        if method in ("sendMessage", "editMessageText"):
            return {
                "message_id": int(form.get("message_id") or next(self._ids)),
                "date": 1_700_000_000,
                "chat": {"id": int(form["chat_id"]), "type": "private"},
                "text": form.get("text", ""),
            }
        if method == "getUpdates":
            updates, self.updates = self.updates, []
            return updates
        if method == "getChatMember":
            return self._member(int(form["chat_id"]), int(form["user_id"]))
        return True

    def _member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        status = self.members.get((chat_id, user_id), "member")
        member: dict[str, Any] = {
            "user": {"id": user_id, "is_bot": False, "first_name": "U"},
            "status": status,
        }
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member |= dict.fromkeys(ADMIN_RIGHTS, True)
            member |= {"can_be_edited": False, "is_anonymous": False}
        return member

    def member_checks(self) -> list[tuple[int, int]]:
        """(chat, user) of every getChatMember asked, in order."""
        return [
            (int(c.form["chat_id"]), int(c.form["user_id"])) for c in self.sent("getChatMember")
        ]

    def sent(self, method: str = "sendMessage") -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def last(self, method: str = "sendMessage") -> Call:
        return self.sent(method)[-1]

    def clear(self) -> None:
        self.calls.clear()

    def block_next_send(self) -> None:
        self.failures.setdefault("sendMessage", []).append(
            (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"})
        )


@dataclass
class Harness:
    bot: ChatBot
    api: FakeBotApi
    repo: Repository
    clock: FakeClock
    resolver: FakeResolver
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def say(
        self,
        text: str,
        user: int = ALICE,
        *,
        language: str | None = "ja",
        chat: int | None = None,
        chat_type: str = "private",
        as_group: bool = False,
    ) -> list[Call]:
        """Send `text` as `user` (or, `as_group`, as an anonymous admin of the group `chat`);
        returns the messages the bot sent in answer."""
        before = len(self.api.calls)
        sender: dict[str, Any] = {"id": user, "is_bot": False, "first_name": "U"}
        if language is not None:
            sender["language_code"] = language
        where = {"id": chat or user, "type": chat_type}
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": 1_700_000_000,
            "chat": where,
            "from": sender,
            "text": text,
        }
        if as_group:
            where["title"] = "Restock fans"
            message["sender_chat"] = where
            message["from"] = {
                "id": ANONYMOUS_ADMIN_BOT,
                "is_bot": True,
                "first_name": "Group",
                "username": "GroupAnonymousBot",
            }
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        await self.feed({"update_id": next(self._ids), "message": message})
        return [c for c in self.api.calls[before:] if c.method == "sendMessage"]

    async def press(
        self,
        data: str,
        user: int = ALICE,
        message_id: int = 100,
        *,
        chat: int | None = None,
        chat_type: str = "private",
    ) -> list[Call]:
        """Press an inline button carrying `data` under message `message_id` in `chat`."""
        before = len(self.api.calls)
        sender = {"id": user, "is_bot": False, "first_name": "U", "language_code": "ja"}
        query = {
            "id": f"q{next(self._ids)}",
            "from": sender,
            "chat_instance": "ci",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": 1_700_000_000,
                "chat": {"id": chat or user, "type": chat_type},
                "from": {"id": 654321, "is_bot": True, "first_name": "Restock"},
                "text": "list",
            },
        }
        await self.feed({"update_id": next(self._ids), "callback_query": query})
        return self.api.calls[before:]

    async def feed(self, data: dict[str, Any]) -> None:
        from telegram import Update

        update = Update.de_json(data, self.bot.application.bot)
        assert update is not None
        await self.bot.process(update)


@contextlib.asynccontextmanager
async def bot_harness(database: str, **settings: Any) -> AsyncIterator[Harness]:
    """A bot on a fresh database with a fake Bot API and a fake resolver."""
    clock = FakeClock()
    resolver = FakeResolver()
    config = BotSettings(token=Secret(TOKEN), api_base_url=API, admins=frozenset({ADMIN}))
    config = replace(config, **settings)
    repo = await open_repository(database)
    guard = URLGuard(config.allowed_hosts, resolver=resolver)
    bot = ChatBot(repo, config, guard=guard, clock=clock, pacer=Pacer(clock))
    try:
        with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
            api = FakeBotApi(router)
            await bot.initialize()
            try:
                yield Harness(bot, api, repo, clock, resolver)
            finally:
                await bot.stop()
    finally:
        await repo.close()


def restock_event(sub_key: str, title: str = "Switch 2") -> Event:
    return Event(
        kind=EventKind.RESTOCK,
        watch_key=sub_key,
        watch_name=sub_key,
        state=Availability.IN_STOCK,
        observed_at=T0,
        url=PRODUCT,
        store="amazon_jp",
        price=5980,
        title=title,
    )


async def record_restock(h: Harness, chat_id: int, title: str = "Switch 2") -> int:
    """Write a restock check for the chat's first subscription; returns the deliveries created."""
    sub = (await h.repo.list_subscriptions(chat_id))[0]
    product_id = await h.repo.ensure_product(sub.target, sub.store, h.clock.now())
    observation = Observation(state=Availability.IN_STOCK, reason="test", price=5980, title=title)
    decision = WatchDecision(
        watch_id=sub.watch_id, state={"armed": False}, events=(restock_event(sub.watch_key),)
    )
    outcome = CheckOutcome(next_due_at=h.clock.now() + timedelta(minutes=5))
    recorded = await h.repo.record_check(
        product_id, observation, [decision], outcome, h.clock.now()
    )
    return recorded.deliveries


# --- whole conversations -----------------------------------------------------------------------


async def test_watch_restock_pause_remove_conversation(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say(f"/watch {PRODUCT}?tag=aff-22&ref=sr_1 ¥6,000 new always")
        assert "登録しました" in reply.text
        assert "¥6,000以下" in reply.text and "新品" in reply.text and "毎回通知" in reply.text

        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.target == PRODUCT  # tracking parameters dropped: one product for everyone
        assert sub.store == "amazon_jp"
        assert sub.conditions.max_price == 6000
        assert sub.conditions.condition is ConditionFilter.NEW
        assert not sub.one_shot
        assert h.resolver.asked == ["www.amazon.co.jp"]

        assert await record_restock(h, ALICE) == 1  # the restock becomes Alice's delivery

        [listing] = await h.say("/list")
        assert "Amazon.co.jp" in listing.text and "1." in listing.text
        assert listing.buttons() == [("⏸ 1", f"p:{sub.id}"), ("🗑 1", f"r:{sub.id}")]

        calls = await h.press(f"p:{sub.id}")
        assert [c.method for c in calls] == ["answerCallbackQuery", "editMessageText"]
        assert calls[0].form["text"] == "一時停止しました"
        assert "停止中" in calls[1].text
        assert ("▶️ 1", f"u:{sub.id}") in calls[1].buttons()
        assert (await h.repo.list_subscriptions(ALICE))[0].paused
        assert await record_restock(h, ALICE) == 0  # paused: nothing for Alice

        calls = await h.press(f"u:{sub.id}")
        assert not (await h.repo.list_subscriptions(ALICE))[0].paused

        calls = await h.press(f"r:{sub.id}")
        assert calls[0].form["text"] == "削除しました"
        assert "登録はありません" in calls[1].text
        assert await h.repo.list_subscriptions(ALICE) == []


async def test_one_shot_by_default_and_jan_codes(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say("/watch ４９０１２３４５６７８９４")  # full-width digits
        assert "1回だけ通知" in reply.text
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.target == "jan:4901234567894"
        assert sub.one_shot
        assert await record_restock(h, ALICE) == 1
        assert await h.repo.list_subscriptions(ALICE) == []  # one-shot: it ended with its message


async def test_jan_codes_are_refused_when_no_search_source_is_configured(database: str) -> None:
    async with bot_harness(database, jan_search=False) as h:
        [reply] = await h.say("/watch 4901234567894")
        assert "JANコードでの登録は現在使えません" in reply.text
        assert await h.repo.list_subscriptions(ALICE) == []


async def test_same_product_is_shared_by_subscribers(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT} 6000")
        await h.say(f"/watch {PRODUCT}?ref=x 6,000円", user=BOB)
        [alice] = await h.repo.list_subscriptions(ALICE)
        [bob] = await h.repo.list_subscriptions(BOB)
        assert alice.watch_id == bob.watch_id
        assert await record_restock(h, ALICE) == 2  # one check, both told


async def test_plain_link_is_watched_and_english_replies(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say(PRODUCT, language="en-US")
        assert reply.text.startswith("🔔 Watching")
        assert len(await h.repo.list_subscriptions(ALICE)) == 1
        [reply] = await h.say("hello there", language="en")
        assert "Send a product page URL" in reply.text
        [reply] = await h.say("/help", language=None)  # no language: Japanese
        assert "再入荷お知らせボット" in reply.text
        user = await h.repo.ensure_chat_user(ALICE, h.clock.now())
        assert user.language == "en"  # alerts follow the user's language
        assert await record_restock(h, ALICE) == 1
        [delivery] = await h.repo.claim_deliveries("t", h.clock.now(), 10, timedelta(minutes=1))
        assert (delivery.channel, delivery.recipient) == ("telegram", str(ALICE))
        assert delivery.language == "en"


async def test_start_shows_help_with_reply_priority(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say("/start")
        assert "/watch" in reply.text and "/quiet" in reply.text
        assert reply.form["parse_mode"] == "HTML"
        [reply] = await h.say("/start@RestockBot", language="en")
        assert "Restock alert bot" in reply.text


async def test_unwatch_pause_resume_by_number(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        await h.say("/watch 4901234567894")
        [reply] = await h.say("/pause 2")
        assert "一時停止しました" in reply.text and "JAN 4901234567894" in reply.text
        subs = await h.repo.list_subscriptions(ALICE)
        assert [s.paused for s in subs] == [False, True]
        [reply] = await h.say("/pause")
        assert "1件を一時停止" in reply.text
        [reply] = await h.say("/resume")
        assert "2件を再開" in reply.text
        [reply] = await h.say("/unwatch 1")
        assert "削除しました" in reply.text
        [left] = await h.repo.list_subscriptions(ALICE)
        assert left.target == "jan:4901234567894"
        [reply] = await h.say(f"/unwatch #{left.id}")
        assert await h.repo.list_subscriptions(ALICE) == []
        [reply] = await h.say("/unwatch 5")
        assert "見つかりません" in reply.text


async def test_quiet_hours_set_and_cleared(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        [reply] = await h.say("/quiet 23:00〜７:３０ drop")
        assert "23:00〜07:30" in reply.text
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.quiet is not None and sub.quiet.mode is QuietMode.DROP
        assert (sub.quiet.start.hour, sub.quiet.end.hour, sub.quiet.end.minute) == (23, 7, 30)
        [reply] = await h.say("/quiet off")
        assert "解除" in reply.text
        assert (await h.repo.list_subscriptions(ALICE))[0].quiet is None
        [reply] = await h.say("/quiet 25:00-07:00")
        assert "時刻が正しくありません" in reply.text


async def test_stop_ends_subscriptions_only_of_that_chat(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        await h.say(f"/watch {PRODUCT}", user=BOB)
        [reply] = await h.say("/stop")
        assert "1件の登録を終了" in reply.text
        assert await h.repo.list_subscriptions(ALICE) == []
        assert len(await h.repo.list_subscriptions(BOB)) == 1


async def test_blocking_the_bot_deactivates_the_chat(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        await h.say(f"/watch {PRODUCT}", user=BOB)
        bot_user = {"id": 654321, "is_bot": True, "first_name": "Restock"}
        change = {
            "chat": {"id": ALICE, "type": "private"},
            "from": {"id": ALICE, "is_bot": False, "first_name": "A"},
            "date": 1_700_000_000,
            "old_chat_member": {"user": bot_user, "status": "member"},
            "new_chat_member": {"user": bot_user, "status": "kicked", "until_date": 0},
        }
        await h.feed({"update_id": 77, "my_chat_member": change})
        assert await h.repo.list_subscriptions(ALICE) == []
        assert await h.repo.chat_ids() == [BOB]
        assert len(await h.repo.list_subscriptions(BOB)) == 1


async def test_forbidden_reply_deactivates_the_chat(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        h.api.block_next_send()
        await h.say("/list")
        assert await h.repo.list_subscriptions(ALICE) == []
        assert ALICE not in await h.repo.chat_ids()


async def test_shared_deep_link_subscribes_in_one_tap(database: str) -> None:
    async with bot_harness(database) as h:
        shared = Watch(key="switch2-amazon", name="Switch 2 <限定版>", url=PRODUCT)
        private = Watch(key="office-printer", name="printer", url="http://127.0.0.1:8080/ink")
        await h.repo.sync_yaml_watches([shared, private], h.clock.now())
        assert h.bot.deep_link("switch2-amazon") == "https://t.me/RestockBot?start=w_switch2-amazon"

        [reply] = await h.say("/start w_switch2-amazon")
        assert "Switch 2 &lt;限定版&gt;" in reply.text
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.watch_key == "switch2-amazon" and sub.one_shot

        # A guessed key of a private watch, or an unknown one, subscribes to nothing.
        for payload in ("w_office-printer", "w_nope", "b_!!"):
            [reply] = await h.say(f"/start {payload}", user=BOB)
        assert await h.repo.list_subscriptions(BOB) == []


async def test_admin_stats_escape_titles_and_count_demand(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        await h.say(f"/watch {PRODUCT}", user=BOB)
        await record_restock(h, ALICE, title="<b>Switch</b> & <script>alert(1)</script>")
        await h.say(f"/watch {PRODUCT}")  # one-shot ended with the restock; Alice waits again
        [reply] = await h.say("/stats", user=ADMIN)
        assert "&lt;b&gt;Switch&lt;/b&gt; &amp; &lt;script&gt;" in reply.text
        assert "<script>" not in reply.text
        assert "Amazon.co.jp: 1 / 0" in reply.text  # checks / blocks
        assert "ユーザー: " in reply.text


async def test_broadcast_goes_to_every_chat_escaped(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT}")
        await h.say(f"/watch {PRODUCT}", user=BOB)
        h.api.clear()
        [started] = await h.say("/broadcast メンテナンス <i>今夜</i> & 明日", user=ADMIN)
        assert "2件のチャット" in started.text
        await h.bot.wait_broadcasts()
        sent = h.api.sent()
        texts = {c.chat_id: c.text for c in sent}
        assert texts[ALICE] == texts[BOB] == "メンテナンス &lt;i&gt;今夜&lt;/i&gt; &amp; 明日"
        assert "2件成功、0件失敗" in texts[ADMIN]


async def test_group_chatter_and_other_bots_commands_are_ignored(database: str) -> None:
    async with bot_harness(database) as h:
        group = -100123
        assert await h.say("hello everyone", chat=group, chat_type="supergroup") == []
        assert await h.say("/list@OtherBot", chat=group, chat_type="supergroup") == []
        [reply] = await h.say("/list@RestockBot", chat=group, chat_type="supergroup")
        assert reply.chat_id == group


async def test_long_polling_runs_in_the_callers_loop(database: str) -> None:
    async with bot_harness(database) as h:
        h.api.updates.append(
            {
                "update_id": 5000,
                "message": {
                    "message_id": 1,
                    "date": 1_700_000_000,
                    "chat": {"id": ALICE, "type": "private"},
                    "from": {"id": ALICE, "is_bot": False, "first_name": "A"},
                    "text": "/help",
                },
            }
        )
        await h.bot.start()
        await asyncio.wait_for(h.api.delivered.wait(), timeout=5)
        await h.bot.stop()
        assert not h.bot.application.running
        [reply] = h.api.sent()
        assert reply.chat_id == ALICE and "/watch" in reply.text
        polls = [c for c in h.api.calls if c.method == "getUpdates"]
        assert polls and json.loads(polls[0].form["allowed_updates"]) == [
            "message",
            "callback_query",
            "my_chat_member",
        ]
        assert not any(c.form.get("drop_pending_updates") == "true" for c in h.api.calls)


async def test_a_failing_handler_is_logged_without_the_token(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with bot_harness(database) as h:
        await h.repo.close()  # the database is gone: the handler raises
        await h.say("/list")
    assert "bot: update failed" in caplog.text
    assert TOKEN not in caplog.text


async def test_one_chat_waits_for_its_own_updates_only(database: str) -> None:
    async with bot_harness(database) as h:
        release = asyncio.Event()
        real_resolver = h.resolver.__call__

        async def slow_dns(host: str) -> Sequence[str]:
            await release.wait()
            return await real_resolver(host)

        h.bot.guard._resolver = slow_dns
        watching = asyncio.create_task(h.say(f"/watch {PRODUCT}"))
        listing = asyncio.create_task(h.say("/list"))
        [bobs] = await asyncio.wait_for(h.say("/help", user=BOB), timeout=5)
        assert bobs.chat_id == BOB  # Bob is answered while Alice's URL still resolves
        assert not listing.done()  # Alice's /list waits behind her /watch
        release.set()
        await asyncio.gather(watching, listing)
        watched, listed = [c.text for c in h.api.sent() if c.chat_id == ALICE]
        assert "登録しました" in watched
        assert "（1件）" in listed


async def test_long_lists_stay_within_one_message(database: str) -> None:
    from watcher.core.model import WatchConditions

    async with bot_harness(database, max_watches_per_user=40) as h:
        for n in range(30):
            await h.repo.add_chat_subscription(
                ALICE, f"{PRODUCT}{n}?q={'&' * 9}", "amazon_jp", WatchConditions(), h.clock.now()
            )
        [listing] = await h.say("/list")
        assert len(listing.text) < 4096
        shown = listing.text.count("Amazon.co.jp · ")
        assert 5 < shown <= 25
        assert f"ほか{30 - shown}件" in listing.text
        assert len(listing.buttons()) == 2 * shown  # a button for every line, and no more


async def test_quoted_input_is_clipped(database: str) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say("/watch " + "&" * 900)
        assert len(reply.text) < 600
        assert "&amp;" in reply.text


async def test_list_shows_the_restock_hour_forecast_when_known(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(PRODUCT)
        [reply] = await h.say("/list")
        assert "🕑" not in reply.text  # no restocks yet: no forecast
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.product_id is not None
        tuesday_2am_jst = datetime(2026, 5, 4, 17, 30, tzinfo=UTC)
        for week in range(5):
            await h.repo.record_restock(
                sub.product_id, None, tuesday_2am_jst - timedelta(weeks=week)
            )
        [reply] = await h.say("/list")
        assert "🕑 再入荷は火曜 02:00–03:00 JSTが多い（5回中5回）" in reply.text
        [reply] = await h.say("/list", language="en")
        assert "usually back on Tue 02:00–03:00 JST (5 of 5 restocks)" in reply.text


# --- lottery sales -----------------------------------------------------------------------------


async def test_a_shopper_asks_for_lottery_alerts_and_sees_the_lottery_in_list(
    database: str,
) -> None:
    async with bot_harness(database) as h:
        [reply] = await h.say(f"/watch {PRODUCT} 抽選 always")
        assert "抽選も通知" in reply.text
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert EventKind.LOTTERY_OPEN in sub.conditions.events
        assert EventKind.RESTOCK in sub.conditions.events  # restocks are still told

        await h.say(f"/watch {PRODUCT}", user=BOB)  # no lottery option: another watch
        [bob] = await h.repo.list_subscriptions(BOB)
        assert EventKind.LOTTERY_OPEN not in bob.conditions.events
        assert bob.watch_id != sub.watch_id

        product_id = await h.repo.ensure_product(sub.target, sub.store, h.clock.now())
        deadline = datetime(2026, 12, 10, 23, 59, tzinfo=timezone(timedelta(hours=9)))
        lottery = Event(
            kind=EventKind.LOTTERY_OPEN,
            watch_key=sub.watch_key,
            watch_name=sub.watch_key,
            state=Availability.LOTTERY,
            observed_at=T0,
            url=PRODUCT,
            store="amazon_jp",
            lottery_deadline=deadline,
        )
        observation = Observation(state=Availability.LOTTERY, reason="text:抽選受付中")
        decision = WatchDecision(watch_id=sub.watch_id, state={}, events=(lottery,))
        outcome = CheckOutcome(next_due_at=h.clock.now() + timedelta(minutes=5))
        recorded = await h.repo.record_check(
            product_id, observation, [decision], outcome, h.clock.now()
        )
        assert recorded.deliveries == 1  # Alice only: Bob did not ask

        [listing] = await h.say("/list")
        assert "抽選受付中" in listing.text and "抽選も通知" in listing.text
        [listing] = await h.say("/list", user=BOB, language="en")
        assert "lottery open (抽選受付中)" in listing.text
        assert "lottery alerts too" not in listing.text


async def test_a_lottery_does_not_end_a_one_shot_subscription(database: str) -> None:
    async with bot_harness(database) as h:
        await h.say(f"/watch {PRODUCT} lottery", language="en")
        [sub] = await h.repo.list_subscriptions(ALICE)
        assert sub.one_shot
        product_id = await h.repo.ensure_product(sub.target, sub.store, h.clock.now())
        lottery = Event(
            EventKind.LOTTERY_OPEN, sub.watch_key, sub.watch_key, Availability.LOTTERY, T0
        )
        decision = WatchDecision(watch_id=sub.watch_id, state={}, events=(lottery,))
        outcome = CheckOutcome(next_due_at=h.clock.now() + timedelta(minutes=5))
        observation = Observation(state=Availability.LOTTERY, reason="test")
        await h.repo.record_check(product_id, observation, [decision], outcome, h.clock.now())
        assert len(await h.repo.list_subscriptions(ALICE)) == 1  # still waiting for the restock
        assert await record_restock(h, ALICE) == 1
        assert await h.repo.list_subscriptions(ALICE) == []
