"""The LINE chat bot end to end: signed webhook requests over loopback HTTP, a real database,
the LINE stand-in answering replies, a fake DNS resolver.

Webhook bodies follow the shape LINE documents (developers.line.biz, Messaging API reference,
"Webhook Event Objects"); the ids and tokens in them are made up.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from test_line import FakeClock

from notifiers.line_api import LineApi
from tests.line_standin import TOKEN, LineStandIn
from watcher.bot.texts import stores_text
from watcher.config.schema import DEFAULT_ALLOWED_HOSTS as ALLOWED
from watcher.core.model import ConditionFilter
from watcher.line.bot import LineBot, LineBotSettings
from watcher.line.commands import parse_text
from watcher.line.signature import sign, verify
from watcher.line.texts import TEXTS
from watcher.line.webhook import MAX_BODY, LineWebhook
from watcher.net.netguard import URLGuard
from watcher.net.politeness import Politeness
from watcher.secret import Secret
from watcher.service.metrics import Metrics
from watcher.storage import open_repository
from watcher.storage.interface import LineChatStore, Repository
from watcher.storage.postgres.connection import storable_text
from watcher.subscriptions import SubscriptionRules, Subscriptions
from watcher.web.server import StatusServer

SECRET = "line-channel-secret-for-tests"
ALICE = "U" + "a1" * 16
BOB = "U" + "b2" * 16
PUBLIC_IP = "52.119.168.48"
ITEM = "https://www.amazon.co.jp/dp/B0DX000000"
_ids = itertools.count(1)


class FakeResolver:
    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        return self.answers.get(host, [PUBLIC_IP])


def event(
    kind: str, user: str = ALICE, *, redelivery: bool = False, **extra: Any
) -> dict[str, Any]:
    found = {
        "type": kind,
        "mode": "active",
        "timestamp": 1764817200000,
        "source": {"type": "user", "userId": user},
        "webhookEventId": f"01JEXAMPLE{next(_ids):016d}",
        "deliveryContext": {"isRedelivery": redelivery},
    }
    if kind != "unfollow":
        found["replyToken"] = f"reply-{next(_ids)}"
    return {**found, **extra}


def text(words: str, user: str = ALICE) -> dict[str, Any]:
    return event("message", user, message={"type": "text", "id": str(next(_ids)), "text": words})


def postback(data: str, user: str = ALICE) -> dict[str, Any]:
    return event("postback", user, postback={"data": data})


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"destination": "U" + "0" * 32, "events": list(events)}).encode()


@dataclass
class Harness:
    url: str
    line: LineStandIn
    store: LineChatStore
    repo: Repository
    database: str
    resolver: FakeResolver
    client: httpx.AsyncClient

    async def post(
        self, raw: bytes, signature: str | None = "sign", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent: dict[str, str | bytes] = dict(headers or {})
        if signature == "sign":
            sent["X-Line-Signature"] = sign(SECRET, raw)
        elif signature is not None:
            sent["X-Line-Signature"] = signature.encode()  # raw bytes: any header a peer sends
        return await self.client.post(self.url, content=raw, headers=sent)

    async def say(self, words: str, user: str = ALICE) -> str:
        """Send one text message; the text of the bot's first reply."""
        before = len(self.line.replies)
        response = await self.post(body(text(words, user)))
        assert response.status_code == 200
        [reply] = self.line.replies[before:]
        return str(reply["messages"][0]["text"])

    def last_reply(self) -> dict[str, Any]:
        return dict(self.line.replies[-1])


@pytest.fixture
async def h(database: str, repo: Repository) -> AsyncIterator[Harness]:
    assert isinstance(repo, LineChatStore)  # every backend keeps LINE chats
    clock = FakeClock()
    resolver = FakeResolver()
    async with LineStandIn() as line:
        api = LineApi(token=TOKEN, clock=clock, base_url=line.url)
        store = repo
        settings = LineBotSettings(max_watches_per_user=3, command_limit=20)
        guard = URLGuard(settings.allowed_hosts, resolver=resolver)
        # The shared rules, as the composition root builds them (its quota is Telegram's).
        rules = SubscriptionRules(max_per_chat=20, jan_search=True)
        shared = Subscriptions(repo, guard, rules, refused_url_hint=stores_text(ALLOWED))
        bot = LineBot(store, api, settings, subscriptions=shared, clock=clock)
        webhook = LineWebhook(Secret(SECRET), bot.handle)
        server = StatusServer(repo, Metrics(), Politeness(), line_webhook=webhook)
        await server.start("127.0.0.1:0")
        async with httpx.AsyncClient() as client:
            yield Harness(
                f"http://127.0.0.1:{server.port}/line/webhook",
                line,
                store,
                repo,
                database,
                resolver,
                client,
            )
        await server.stop()
        await api.aclose()


# --- signature ---------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_base64_of_the_raw_body() -> None:
    # Computed independently: printf '{"events":[]}' | openssl dgst -sha256 -hmac s -binary | base64
    assert sign("s", b'{"events":[]}') == "81aQBZSnF3PR2xA0bcX2xlQ2h5e3HOPLHtIQY2wBn7g="
    assert verify("s", b'{"events":[]}', "81aQBZSnF3PR2xA0bcX2xlQ2h5e3HOPLHtIQY2wBn7g=")
    assert not verify("s", b'{"events": []}', "81aQBZSnF3PR2xA0bcX2xlQ2h5e3HOPLHtIQY2wBn7g=")
    assert not verify("s", b"{}", None)
    assert not verify("s", b"{}", "")
    assert not verify("s", b"{}", "ñ" * 44)
    assert not verify("", b"{}", sign("", b"{}"))


async def test_valid_signature_runs_the_command(h: Harness) -> None:
    reply = await h.say(f"登録 {ITEM} 6000 新品")
    assert reply.startswith("🔔 登録しました")
    [sub] = await h.store.line_subscriptions(ALICE)
    assert sub.target == ITEM and sub.channel == "line" and sub.recipient == ALICE
    assert sub.conditions.max_price == 6000 and sub.conditions.condition is ConditionFilter.NEW
    assert sub.language == "ja"
    assert h.line.replies[-1]["replyToken"].startswith("reply-")


@pytest.mark.parametrize(
    "signature",
    [None, "", "bm90IGEgc2lnbmF0dXJl", sign("another-secret", body(text("一覧"))), "署名"],
    ids=["missing", "empty", "wrong", "other-secret", "non-ascii"],
)
async def test_bad_or_missing_signature_is_401_and_changes_nothing(
    h: Harness, signature: str | None
) -> None:
    response = await h.post(body(text(f"登録 {ITEM}")), signature=signature)
    assert response.status_code == 401
    assert h.line.replies == [] and await h.store.line_subscriptions(ALICE) == []
    assert h.resolver.asked == []


async def test_tampered_body_is_401(h: Harness) -> None:
    genuine = body(text("一覧"))
    tampered = body(text(f"登録 {ITEM}"))
    response = await h.post(tampered, signature=sign(SECRET, genuine))
    assert response.status_code == 401
    assert await h.store.line_subscriptions(ALICE) == []


async def test_oversized_body_is_refused_before_reading(h: Harness) -> None:
    huge = body(text("x" * (MAX_BODY + 10)))
    response = await h.post(huge)
    assert response.status_code == 413
    assert h.line.replies == []


async def test_signed_garbage_is_400(h: Harness) -> None:
    deep = b'{"events": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    garbage = (b"not json", b"[]", b'{"events": {}}', "\udcff".encode("utf-8", "surrogatepass"))
    for raw in (*garbage, deep):
        assert (await h.post(raw)).status_code == 400


async def test_get_is_405_and_verification_request_is_200(h: Harness) -> None:
    assert (await h.client.get(h.url)).status_code == 405
    assert (await h.post(body())).status_code == 200  # LINE's "Verify" button sends no events


# --- redelivery --------------------------------------------------------------------------------


async def test_a_redelivered_event_is_handled_once(h: Harness) -> None:
    first = text(f"登録 {ITEM}")
    again = {**first, "deliveryContext": {"isRedelivery": True}}
    assert (await h.post(body(first))).status_code == 200
    assert (await h.post(body(again))).status_code == 200
    assert len(h.line.replies) == 1
    assert len(await h.store.line_subscriptions(ALICE)) == 1


async def test_redelivery_is_remembered_across_restarts(h: Harness) -> None:
    first = postback("r:999")
    await h.post(body(first))
    # Another process on the same database: what was handled is in the database, not in memory.
    other = await open_repository(h.database)
    assert isinstance(other, LineChatStore)
    try:
        assert not await other.claim_line_event(first["webhookEventId"], datetime.now(UTC))
    finally:
        await other.close()


async def test_concurrent_deliveries_of_one_event_are_handled_once(h: Harness) -> None:
    one = text(f"登録 {ITEM}")
    raw = body(one)
    await asyncio.gather(*(h.post(raw) for _ in range(5)))
    assert len(h.line.replies) == 1


async def test_old_event_ids_are_forgotten_after_a_week(h: Harness) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert await h.store.claim_line_event("old", now)
    assert not await h.store.claim_line_event("old", now + timedelta(days=1))
    await h.store.claim_line_event("other", now + timedelta(days=8))  # prunes the week-old ids
    assert await h.store.claim_line_event("old", now + timedelta(days=8))


# --- commands ----------------------------------------------------------------------------------


async def test_commands_in_japanese(h: Harness) -> None:
    await h.say(f"登録 {ITEM}")
    await h.say("登録 4902370551495 中古")
    listing = await h.say("一覧")
    assert listing.startswith("登録一覧（2件）")
    assert "1. www.amazon.co.jp/dp/B0DX000000" in listing and "JAN 4902370551495" in listing
    assert "中古" in listing
    assert (await h.say("停止 1")).startswith("⏸ 一時停止しました")
    assert "⏸ 停止中" in await h.say("一覧")
    assert (await h.say("再開")).startswith("▶️ 1件を再開しました")
    assert (await h.say("解除 2")).startswith("🗑 解除しました: JAN 4902370551495")
    assert len(await h.store.line_subscriptions(ALICE)) == 1
    assert (await h.say("ヘルプ")).startswith("再入荷お知らせボット")


async def test_commands_in_english(h: Harness) -> None:
    assert (await h.say(f"watch {ITEM} 5000 any")).startswith("🔔 Watching")
    assert (await h.say("list")).startswith("Your watches (1)")
    assert (await h.say("pause")).startswith("⏸ Paused 1 watches")
    assert (await h.say("resume 1")).startswith("▶️ Resumed")
    assert (await h.say("unwatch 1")).startswith("🗑 Removed")
    assert (await h.say("help")).startswith("Restock alert bot")
    assert (await h.say("/list")).startswith("No watches yet")


async def test_a_bare_link_is_a_watch_in_the_users_language(h: Harness) -> None:
    await h.say(f"watch {ITEM}")
    reply = await h.say("https://www.amazon.co.jp/dp/B0DX000001")
    assert reply.startswith("🔔 Watching")  # English, as the user wrote before


async def test_list_offers_postback_buttons_that_work_only_on_own_entries(h: Harness) -> None:
    await h.say(f"登録 {ITEM}")
    await h.say("一覧")
    items = h.last_reply()["messages"][0]["quickReply"]["items"]
    actions = [i["action"] for i in items]
    [sub] = await h.store.line_subscriptions(ALICE)
    assert actions[0] == {"type": "postback", "label": "⏸ 停止 1", "data": f"p:{sub.id}"}
    assert actions[1]["data"] == f"r:{sub.id}"
    assert all(len(a["label"]) <= 20 for a in actions)

    await h.post(body(postback(f"r:{sub.id}", user=BOB)))  # not Bob's
    assert h.last_reply()["messages"][0]["text"] == TEXTS["ja"]["button_gone"]
    assert len(await h.store.line_subscriptions(ALICE)) == 1

    await h.post(body(postback(f"p:{sub.id}")))
    [paused] = await h.store.line_subscriptions(ALICE)
    assert paused.paused
    await h.post(body(postback(f"r:{sub.id}")))
    assert await h.store.line_subscriptions(ALICE) == []
    await h.post(body(postback("forged-data")))
    assert h.last_reply()["messages"][0]["text"] == TEXTS["ja"]["button_gone"]


async def test_url_guard_and_quota_like_telegram(h: Harness) -> None:
    assert (await h.say("登録 https://evil.example/item")).startswith("このURLは登録できません")
    h.resolver.answers["www.amazon.co.jp"] = ["127.0.0.1"]
    assert (await h.say(f"登録 {ITEM}")).startswith("このURLは登録できません")
    assert (await h.say("登録 http://169.254.169.254/latest")).startswith("このURLは登録できません")
    del h.resolver.answers["www.amazon.co.jp"]
    for n in range(3):
        await h.say(f"登録 {ITEM}{n}")
    assert (await h.say(f"登録 {ITEM}9")).startswith("登録できるのは3件までです")
    assert len(await h.store.line_subscriptions(ALICE)) == 3


async def test_rate_limit_answers_once_then_stays_silent(h: Harness) -> None:
    for _ in range(20):
        await h.say("一覧")
    assert (await h.say("一覧")).startswith("メッセージが多すぎます")
    before = len(h.line.replies)
    await h.post(body(text("一覧")))
    assert len(h.line.replies) == before


async def test_hostile_input(h: Harness) -> None:
    assert await h.say("x" * 1001) == TEXTS["ja"]["too_long"]
    assert await h.say("一覧\u202e") == TEXTS["ja"]["control"]
    reply = await h.say("登録 <script>\x1b[31m")
    assert "\x1b" not in reply
    assert (await h.say("こんにちは")).startswith("商品ページのURLかJANコード")


async def test_unknown_and_malformed_events_are_ignored(h: Harness) -> None:
    group = text("一覧")
    group["source"] = {"type": "group", "groupId": "C" + "1" * 32, "userId": ALICE}
    bad_user = text("一覧", user="U-not-an-id")
    standby = {**text("一覧"), "mode": "standby"}
    raw = body(group, bad_user, standby, {"type": "message"}, "junk", {"type": "beacon"})  # type: ignore[arg-type]
    assert (await h.post(raw)).status_code == 200
    assert h.line.replies == []


# --- follow / unfollow -------------------------------------------------------------------------


async def test_follow_is_welcomed_and_unfollow_ends_every_subscription(h: Harness) -> None:
    await h.post(body(event("follow", follow={"isUnblocked": False})))
    welcome = h.last_reply()["messages"][0]
    assert welcome["text"].startswith("友だち追加ありがとうございます")
    await h.say(f"登録 {ITEM}")
    await h.say(f"登録 {ITEM}", user=BOB)
    replies = len(h.line.replies)
    await h.post(body(event("unfollow")))
    assert await h.store.line_subscriptions(ALICE) == []
    assert len(await h.store.line_subscriptions(BOB)) == 1  # nobody else is touched
    assert len(h.line.replies) == replies  # no reply token, no reply


def test_parse_text_reads_full_width_and_synonyms() -> None:
    command = parse_text("登録\u3000ｈｔｔｐｓ://www.amazon.co.jp/dp/B0　￥６，０００　指定なし")
    assert command is not None and command.name == "watch" and command.language == "ja"
    assert command.args == ("https://www.amazon.co.jp/dp/B0", "¥6,000", "any")
    assert parse_text("LIST") is not None
    assert parse_text("") is None and parse_text("hello") is None


def test_both_languages_say_the_same_things() -> None:
    assert TEXTS["ja"].keys() == TEXTS["en"].keys()


async def test_a_database_failure_is_500_and_the_resend_finishes_the_body(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = text(f"登録 {ITEM}"), text("一覧")
    claim = h.store.claim_line_event
    calls = 0

    async def flaky(event_id: str, now: datetime) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("database is locked")
        return await claim(event_id, now)

    monkeypatch.setattr(h.store, "claim_line_event", flaky)
    raw = body(first, second)
    assert (await h.post(raw)).status_code == 500
    assert len(h.line.replies) == 1  # the first event was handled
    assert (await h.post(raw)).status_code == 200  # LINE sends the body again
    assert len(h.line.replies) == 2  # only the second event is answered now
    assert h.line.replies[1]["messages"][0]["text"].startswith("登録一覧（1件）")
    assert len(await h.store.line_subscriptions(ALICE)) == 1


async def test_an_event_id_no_database_can_hold_is_still_answered_once(h: Harness) -> None:
    # A NUL byte fits no PostgreSQL text: the id is kept in a form each backend stores.
    hostile = text("一覧")
    hostile["webhookEventId"] = "01H\x00EVENT"
    twin = dict(hostile, webhookEventId="01H\x00EVENT")
    for sent in (hostile, twin):
        assert (await h.post(body(sent))).status_code == 200
    assert len(h.line.replies) == 1


def test_stored_event_ids_stay_distinct() -> None:
    ids = ["a\x00", "a\\0", "a\\\x00", "a\\\\0", "a0", "a"]
    assert len({storable_text(i) for i in ids}) == len(ids)
    assert all("\x00" not in storable_text(i) for i in ids)
