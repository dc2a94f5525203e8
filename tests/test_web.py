"""The web UI and its JSON API over a real loopback server: pages, escaping, token, CSRF."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from notifiers.console import ConsoleNotifier
from notifiers.webhook import WebhookNotifier
from tests import dbrows
from tests.httpserver import LoopbackServer, Reply
from tests.webkit import (
    HOSTILE,
    HOSTILE_REASON,
    HOSTILE_TITLE,
    NOW,
    Running,
    observe,
    running_web,
)
from watcher.core.model import Availability, Event, EventKind, Observation, Origin
from watcher.net.netguard import URLGuard
from watcher.storage.codec import event_to_json
from watcher.storage.interface import HostState
from watcher.web.channels import ChannelTester, fixed_or_listed
from watcher.web.forms import AddForm
from watcher.web.security import CONTENT_SECURITY_POLICY, WebAccess, WebTokenMissing

RAW_HOSTILE = ("<script>", "<img src=x", "<svg onload")


def assert_escaped(text: str) -> None:
    for raw in RAW_HOSTILE:
        assert raw not in text, raw


def error_of(page: str) -> str:
    """The form error a page shows, unescaped."""
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
    assert found is not None, page[:500]
    return html.unescape(found.group(1))


async def rows(database: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """What `sql` selects, each row a tuple, on either backend."""
    return [tuple(row.values()) for row in await dbrows.fetch(database, sql, *args)]


# --- pages and escaping -----------------------------------------------------------------------


async def test_watches_page_lists_badges_strips_and_escapes_shop_text(
    tmp_path: Path, database: str
) -> None:
    async with running_web(tmp_path, database=database) as web:
        page = await web.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY  # default-src 'none': no script at all
    text = page.text
    assert_escaped(text)
    assert "Card box &lt;script&gt;" in text
    assert "在庫あり" in text and 'title="amazon:#availability &lt;img' in text
    assert text.count('class="strip"') == 2
    # What just came back is on top: both are back, the list then goes by name.
    assert text.index('data-key="box"') < text.index('data-key="mug"')


async def test_language_switch_and_filters(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database) as web:
        english = await web.client.get("/?lang=en")
        remembered = await web.client.get("/")
        filtered = await web.client.get("/?state=out_of_stock")
        by_store = await web.client.get("/?store=nowhere")
    assert "In stock" in english.text and "restock_lang=en" in english.headers["set-cookie"]
    assert "Watches" in remembered.text  # the cookie keeps the choice
    assert 'data-key="box"' not in filtered.text
    assert 'data-key="' not in by_store.text


async def test_watch_page_draws_timeline_price_forecast_and_counts(
    tmp_path: Path, database: str
) -> None:
    async with running_web(tmp_path, database=database) as web:
        page = await web.client.get("/watch/box?lang=en&days=30")
    assert page.status_code == 200
    text = page.text
    assert_escaped(text)
    assert '<svg class="timeline"' in text and 'class="s-out_of_stock"' in text
    assert 'class="s-in_stock"' in text
    assert '<polyline class="price-line"' in text and "¥6,400" in text and "¥5,980" in text
    assert "usually back on Tue 02:00–03:00 JST (5 of 6 restocks)" in text
    assert "console: 1" in text and "webhook: 1" in text
    assert HOSTILE_REASON.replace("<", "&lt;").replace(">", "&gt;") in text


PAGES = ("/", "/watch/box", "/watch/mug", "/forecast", "/add", "/health", "/channels", "/login")


async def test_every_page_escapes_hostile_shop_text(tmp_path: Path, database: str) -> None:
    tester = ChannelTester(
        {"console": ConsoleNotifier(stream=io.StringIO())}, lambda channel: [HOSTILE], lambda: NOW
    )
    async with running_web(tmp_path, database=database, tester=tester) as web:
        for path in PAGES + tuple(f"{p}?lang=en" for p in PAGES):
            page = await web.client.get(path)
            assert page.status_code == 200, path
            assert_escaped(page.text)
        # The shop's hostile texts are on the pages, as text.
        watch_page = (await web.client.get("/watch/box?days=90")).text
        assert html.unescape(HOSTILE_TITLE) in html.unescape(watch_page)
        assert "&lt;svg onload" in watch_page or "&#34;&gt;&lt;svg" in watch_page
        filtered = await web.client.get("/", params={"store": HOSTILE, "state": HOSTILE})
        assert filtered.status_code == 200
        assert_escaped(filtered.text)
        tested = await web.client.post(
            "/channels/test", data={"csrf": await web.csrf("/channels"), "channel": "console"}
        )
        assert tested.status_code == 200
        assert_escaped(tested.text)
        check = await web.client.post(
            "/add", data={"csrf": await web.csrf(), "target": "https://www.amazon.co.jp/dp/B0X"}
        )
    assert check.status_code == 200
    assert_escaped(check.text)
    assert "&lt;script&gt;" in check.text  # the verdict's hostile title, shown as text


# --- JSON API ---------------------------------------------------------------------------------


async def test_api_watches_detail_and_history(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database) as web:
        listing = (await web.client.get("/api/watches")).json()
        detail = (await web.client.get("/api/watches/box")).json()
        history = (await web.client.get("/api/watches/box/history")).json()
        missing = await web.client.get("/api/watches/" + quote("nope/x", safe=""))
    assert {w["key"] for w in listing["watches"]} == {"box", "mug"}
    assert detail["name"] == f"Card box {HOSTILE}"  # JSON carries the text as it is
    assert detail["state"] == "in_stock" and detail["price"] == 5980
    assert detail["forecast"]["weekday"] == 1 and detail["forecast"]["restocks"] == 6
    assert detail["subscribers"] == {"console": 1, "webhook": 1}
    assert history["observations"][0]["state"] == "in_stock"
    # Ten daily readings, all alike: the first is recorded and nine repeat it.
    assert [o["repeats"] for o in history["observations"]] == [0, 9]
    assert history["events"][0]["kind"] == "restock"
    assert history["events"][0]["title"] == HOSTILE_TITLE
    assert missing.status_code == 404


# --- token ------------------------------------------------------------------------------------


def test_off_loopback_needs_a_token() -> None:
    with pytest.raises(WebTokenMissing, match="RESTOCK_WEB_TOKEN"):
        WebAccess.for_listen("0.0.0.0", None)
    assert not WebAccess.for_listen("127.0.0.1", None).needs_login
    assert not WebAccess.for_listen("::1", None).needs_login
    assert WebAccess.for_listen("192.168.1.5", "t").needs_login


async def test_token_by_bearer_or_login_cookie(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database, token="s3cret-token") as web:
        assert (await web.client.get("/")).status_code == 303
        assert (await web.client.get("/api/watches")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await web.client.get("/api/watches", headers=wrong)).status_code == 401
        odd = {"Authorization": "Bearer s3cret-tokén".encode()}
        assert (await web.client.get("/api/watches", headers=odd)).status_code == 401
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert (await web.client.get("/api/watches", headers=bearer)).status_code == 200
        refused = await web.client.post("/login", data={"token": "guess"})
        assert refused.status_code == 403 and "restock_session" not in refused.headers.get(
            "set-cookie", ""
        )
        login = await web.client.post("/login", data={"token": "s3cret-token"})
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "s3cret-token" not in cookie
        assert (await web.client.get("/")).status_code == 200  # the client keeps the cookie
        # /healthz keeps its contract: no token.
        web.client.cookies.clear()
        assert (await web.client.get("/healthz")).status_code == 200


# --- CSRF and actions -------------------------------------------------------------------------


async def test_state_changes_need_post_and_a_csrf_token(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database) as web:
        assert (await web.client.get("/watch/box/pause")).status_code == 404
        assert (await web.client.post("/watch/box/pause")).status_code == 403
        bad = await web.client.post("/watch/box/pause", data={"csrf": "0" * 64})
        assert bad.status_code == 403
        token = await web.csrf()
        foreign = await web.client.post(
            "/watch/box/pause", data={"csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert await rows(database, "SELECT COUNT(*) FROM subscriptions WHERE paused") == [(0,)]
        paused = await web.client.post("/watch/box/pause", data={"csrf": token})
        assert paused.status_code == 303 and paused.headers["location"] == "/watch/box"
        assert await rows(database, "SELECT COUNT(*) FROM subscriptions WHERE paused") == [(2,)]
        assert "一時停止中" in (await web.client.get("/watch/box")).text
        await web.client.post("/watch/box/resume", data={"csrf": token})
        assert await rows(database, "SELECT COUNT(*) FROM subscriptions WHERE paused") == [(0,)]


async def test_a_session_csrf_token_is_bound_to_that_session(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database, token="tok") as web:
        await web.client.post("/login", data={"token": "tok"})
        token = await web.csrf()
        bearer_only = {"Authorization": "Bearer tok"}
        cookies = dict(web.client.cookies)
        web.client.cookies.clear()
        refused = await web.client.post(
            "/watch/box/check", data={"csrf": token}, headers=bearer_only
        )
        assert refused.status_code == 403
        web.client.cookies.update(cookies)
        assert (await web.client.post("/watch/box/check", data={"csrf": token})).status_code == 303


async def test_check_now_makes_the_product_due(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database) as web:
        web.clock[0] = NOW.replace(year=2020)  # earlier than any stored due time
        answer = await web.client.post("/watch/mug/check", data={"csrf": await web.csrf()})
    assert answer.status_code == 303
    due = await rows(
        database,
        "SELECT p.due_at FROM products p JOIN watches w ON w.product_id = p.id WHERE w.key = 'mug'",
    )
    assert due == [(NOW.replace(year=2020).timestamp(),)]


NEW_PRODUCT_ACTIVE = "SELECT active FROM products WHERE target LIKE '%B0NEW%'"


async def test_add_shows_the_verdict_then_saves_a_web_watch(tmp_path: Path, database: str) -> None:
    form = {
        "target": "https://www.amazon.co.jp/dp/B0NEW00000",
        "name": "New <b>thing</b>",
        "max_price": "5,500",
        "condition": "new",
        "buyable": "in_stock",
        "channel": "console",
    }
    async with running_web(tmp_path, database=database) as web:
        token = await web.csrf()
        checked = await web.client.post("/add", data={**form, "csrf": token, "action": "check"})
        assert checked.status_code == 200
        assert "在庫あり" in checked.text and 'value="save"' in checked.text
        assert await rows(database, "SELECT COUNT(*) FROM watches WHERE origin = 'web'") == [(0,)]
        saved = await web.client.post("/add", data={**form, "csrf": token, "action": "save"})
        assert saved.status_code == 303
        location = saved.headers["location"]
        page = await web.client.get(location)
        assert page.status_code == 200 and "New &lt;b&gt;thing&lt;/b&gt;" in page.text
        [(key, conditions)] = await rows(
            database, "SELECT key, conditions FROM watches WHERE origin = 'web'"
        )
        assert str(key).startswith("web:") and '"max_price":5500' in str(conditions)
        assert await rows(
            database,
            "SELECT channel, recipient, origin FROM subscriptions WHERE watch_id ="
            " (SELECT id FROM watches WHERE origin = 'web')",
        ) == [("console", "-", "web")]
        assert await rows(database, NEW_PRODUCT_ACTIVE) == [(1,)]
        # A YAML watch is the operator's file: it cannot be removed here; a web one can.
        assert (await web.client.post("/watch/box/remove", data={"csrf": token})).status_code == 409
        removed = await web.client.post(location + "/remove", data={"csrf": token})
        assert removed.status_code == 303
        assert await rows(database, "SELECT active FROM watches WHERE origin = 'web'") == [(0,)]
        assert await rows(database, NEW_PRODUCT_ACTIVE) == [(0,)]


@pytest.mark.parametrize(
    ("fields", "english", "japanese"),
    [
        ({"target": ""}, "URL or JAN: give a product URL", "13 桁の JAN コードを入力"),
        (
            {"target": "ftp://x.example/1"},
            "starts with http://",
            "http:// か https:// で始まります",
        ),
        ({"target": "4901234567890"}, "check digit should be 4, got 0", "4 のはずですが 0"),
        (
            {"target": "12345678"},
            "short (8-digit) JAN codes",
            "短縮 JAN には未対応",
        ),
        ({"target": "1234567890"}, "13 digits, got 10", "10 桁でした"),
        ({"target": "https://a.example/1", "max_price": "6千"}, "Max price: whole yen", "上限価格"),
        ({"target": "https://a.example/1", "max_price": "-5"}, "whole yen", "円の整数"),
        (
            {"target": "https://a.example/1", "buyable": "unknown"},
            "not an orderable state",
            "注文できる状態",
        ),
        (
            {"target": "https://a.example/1", "condition": "mint"},
            "Condition: one of new, used, any",
            "状態（新品/中古）",
        ),
        (
            {"target": "https://a.example/1", "channel": "telegram"},
            "'telegram' is not",
            "「telegram」",
        ),
        ({"target": "https://a.example/1", "name": "n" * 201}, "Name: at most 200", "200 文字まで"),
    ],
)
async def test_add_refuses_bad_fields_clearly_in_either_language(
    tmp_path: Path, database: str, fields: dict[str, str], english: str, japanese: str
) -> None:
    async with running_web(tmp_path, database=database) as web:
        csrf = await web.csrf()
        answer = await web.client.post("/add", data={**fields, "csrf": csrf})
        assert answer.status_code == 400
        said = error_of(answer.text)
        assert japanese in said and english not in said  # settings.language
        web.client.cookies.set("restock_lang", "en")  # the language switch's cookie
        answer = await web.client.post("/add", data={**fields, "csrf": csrf})
        assert answer.status_code == 400
        assert english in error_of(answer.text)


async def test_off_loopback_added_urls_pass_the_chat_url_guard(
    tmp_path: Path, database: str
) -> None:
    async def resolver(host: str) -> list[str]:
        return {"www.amazon.co.jp": ["52.119.168.48"], "evil.amazon.co.jp": ["127.0.0.1"]}[host]

    guard = URLGuard(["www.amazon.co.jp", "*.amazon.co.jp"], resolver=resolver)
    async with running_web(tmp_path, database=database, guard=guard) as web:
        token = await web.csrf()
        for url in (
            "http://127.0.0.1:8787/",
            "https://shop.example/1",
            "https://evil.amazon.co.jp/x",
        ):
            answer = await web.client.post(
                "/add", data={"target": url, "csrf": token, "action": "save"}
            )
            assert answer.status_code == 400, url
        ok = await web.client.post(
            "/add",
            data={
                "target": "https://www.amazon.co.jp/dp/B0OK?tag=aff-22&utm_source=x",
                "csrf": token,
                "action": "save",
            },
        )
        assert ok.status_code == 303
    assert await rows(database, "SELECT COUNT(*) FROM watches WHERE origin = 'web'") == [(1,)]
    # Stored as the chat users' products are: canonical (one product, one fetch), with its store.
    assert await rows(
        database,
        "SELECT p.target, p.store FROM watches w JOIN products p ON p.id = w.product_id"
        " WHERE w.origin = 'web'",
    ) == [("https://www.amazon.co.jp/dp/B0OK", "amazon_jp")]


def amazon_guard() -> URLGuard:
    async def resolver(host: str) -> list[str]:
        return ["52.119.168.48"]

    return URLGuard(["www.amazon.co.jp"], resolver=resolver)


async def save(web: Running, target: str) -> httpx.Response:
    data = {"target": target, "csrf": await web.csrf(), "action": "save"}
    return await web.client.post("/add", data=data)


def amazon(n: int) -> str:
    return f"https://www.amazon.co.jp/dp/B0QUOTA{n:03d}"


async def test_an_exposed_ui_adds_at_most_its_daily_quota(tmp_path: Path, database: str) -> None:
    async with running_web(
        tmp_path, guard=amazon_guard(), quota=(2, 100), database=database
    ) as web:
        assert [(await save(web, amazon(n))).status_code for n in range(2)] == [303, 303]
        refused = await save(web, amazon(2))
        assert refused.status_code == 400
        assert "24 時間で 2 件まで" in error_of(refused.text)
        web.client.cookies.set("restock_lang", "en")
        refused = await save(web, amazon(3))
        assert "at most 2 watches a day" in error_of(refused.text)
        # A preview is refused too: nothing is fetched for a watch that could not be saved.
        data = {"target": amazon(3), "csrf": await web.csrf(), "action": "check"}
        assert (await web.client.post("/add", data=data)).status_code == 400
        web.clock[0] += timedelta(hours=24)
        assert (await save(web, amazon(4))).status_code == 303
        added = [w.target for w in await web.repo.web_views().watches() if w.origin is Origin.WEB]
    assert sorted(added) == [amazon(0), amazon(1), amazon(4)]


async def test_an_exposed_ui_keeps_at_most_its_total_of_web_watches(
    tmp_path: Path, database: str
) -> None:
    async with running_web(tmp_path, database=database, guard=amazon_guard(), quota=(50, 2)) as web:
        assert [(await save(web, amazon(n))).status_code for n in range(2)] == [303, 303]
        refused = await save(web, amazon(2))
        assert refused.status_code == 400
        assert "上限の 2 件" in error_of(refused.text)
        # Removing one makes room again.
        [first, *_] = [w for w in await web.repo.web_views().watches() if w.origin is Origin.WEB]
        remove = {"csrf": await web.csrf()}
        removed = await web.client.post(f"/watch/{quote(first.key, safe='')}/remove", data=remove)
        assert removed.status_code == 303
        assert (await save(web, amazon(3))).status_code == 303


async def test_the_operators_own_ui_on_loopback_has_no_quota(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database, quota=(1, 1)) as web:
        statuses = [(await save(web, amazon(n))).status_code for n in range(3)]
    assert statuses == [303, 303, 303]


async def test_exposed_ui_refuses_a_jan_without_a_search_source(
    tmp_path: Path, database: str
) -> None:
    guard = URLGuard(["www.amazon.co.jp"])
    async with running_web(tmp_path, database=database, guard=guard, jan_search=False) as web:
        answer = await web.client.post(
            "/add", data={"target": "4901234567894", "csrf": await web.csrf(), "action": "save"}
        )
    assert answer.status_code == 400
    assert "JAN には検索元" in error_of(answer.text)
    assert await rows(database, "SELECT COUNT(*) FROM watches WHERE origin = 'web'") == [(0,)]


async def test_health_lists_dead_letters_escaped_and_retries_them(
    tmp_path: Path, database: str
) -> None:
    async with running_web(tmp_path, database=database) as web:
        [(delivery_id,)] = await rows(database, "SELECT MIN(id) FROM deliveries")
        await web.repo.mark_failed(int(str(delivery_id)), "HTTP 400 <b>bad</b>", NOW)
        page = await web.client.get("/health")
        assert "HTTP 400 &lt;b&gt;bad&lt;/b&gt;" in page.text
        assert "x: 残り 12 / 15" in page.text
        retry = await web.client.post(
            f"/deliveries/{delivery_id}/retry", data={"csrf": await web.csrf("/health")}
        )
        assert retry.status_code == 303
    assert await rows(
        database, "SELECT status, attempts FROM deliveries WHERE id = ?", delivery_id
    ) == [("pending", 0)]


# --- testing a channel ------------------------------------------------------------------------


async def test_a_channel_test_shows_each_channels_real_answer(
    tmp_path: Path, database: str
) -> None:
    printed = io.StringIO()
    with LoopbackServer() as hook:
        hook.add("/hook", Reply(status=401, body=b'{"error": "<b>bad key</b>"}'))
        notifiers = {
            "console": ConsoleNotifier(stream=printed),
            "webhook": WebhookNotifier(url=hook.url("/hook")),
            "telegram": ConsoleNotifier(stream=io.StringIO()),
        }
        clock = [NOW]
        listed = {"telegram": ["123456789", "123456789", "-100200300"]}
        tester = ChannelTester(
            notifiers, fixed_or_listed(lambda c: listed.get(c, [])), lambda: clock[0]
        )
        async with running_web(tmp_path, database=database, tester=tester) as web:
            token = await web.csrf("/channels")
            sent = await web.client.post(
                "/channels/test", data={"csrf": token, "channel": "console"}
            )
            failed = await web.client.post(
                "/channels/test", data={"csrf": token, "channel": "webhook"}
            )
            again = await web.client.post(
                "/channels/test", data={"csrf": token, "channel": "webhook"}
            )
            private = await web.client.post(
                "/channels/test", data={"csrf": token, "channel": "telegram"}
            )
            unknown = await web.client.post(
                "/channels/test", data={"csrf": token, "channel": "line"}
            )
            no_csrf = await web.client.post("/channels/test", data={"channel": "console"})
            web.client.cookies.set("restock_lang", "en")
            clock[0] += timedelta(seconds=5)
            again_en = await web.client.post(
                "/channels/test", data={"csrf": token, "channel": "webhook"}
            )
            await notifiers["webhook"].aclose()
    assert sent.status_code == 200 and 'class="outcome">sent<' in sent.text
    assert "テスト通知" in printed.getvalue()
    assert failed.status_code == 200 and "401" in failed.text
    assert 'class="outcome">sent<' not in failed.text
    assert "<b>" not in failed.text
    assert again.status_code == 429  # a second test within seconds sends nothing
    assert "テストは 10 秒に 1 回までです" in error_of(again.text)
    assert "one test every 10 s at most" in error_of(again_en.text)
    assert len(hook.requests) == 1
    assert private.text.count('class="outcome">sent<') == 2  # deduplicated recipients
    assert "123456789" not in private.text  # numbered, never named
    assert unknown.status_code == 404 and no_csrf.status_code == 403


async def test_long_lists_come_in_pages(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("watcher.web.app.PAGE_SIZE", 1)
    async with running_web(tmp_path, database=database) as web:
        first = await web.client.get("/?store=generic")
        everything = await web.client.get("/")
        second = await web.client.get("/?page=2")
        beyond = await web.client.get("/?page=99")
        silly = await web.client.get("/?page=-1")
        forecast = await web.client.get("/forecast?page=2")
    assert 'data-key="' not in first.text  # no store named generic here
    assert everything.text.count('data-key="') == 1 and 'href="/?page=2"' in everything.text
    assert 'data-key="mug"' in second.text and 'href="/?page=1"' in second.text
    assert 'data-key="' not in beyond.text
    assert silly.text == everything.text
    assert forecast.status_code == 200 and "Mug" in forecast.text
    assert 'href="/forecast?page=1"' in forecast.text


async def test_the_long_timeline_falls_back_on_events_once_observations_are_pruned(
    tmp_path: Path,
    database: str,
) -> None:
    async with running_web(tmp_path, database=database) as web:
        old = Event(EventKind.RESTOCK, "box", "Card box", Availability.IN_STOCK,
                    NOW - timedelta(days=40), price=5200)  # fmt: skip
        gone = Event(EventKind.OUT_OF_STOCK, "box", "Card box", Availability.OUT_OF_STOCK,
                     NOW - timedelta(days=39))  # fmt: skip
        for event in (old, gone):
            await dbrows.execute(
                database,
                "INSERT INTO events (watch_id, kind, payload, created_at)"
                " SELECT id, ?, ?, ? FROM watches WHERE key = 'box'",
                event.kind.value,
                event_to_json(event),
                event.observed_at.timestamp(),
            )
        # Pruning kept only the last day of observations.
        await dbrows.execute(
            database, "DELETE FROM observations WHERE at < ?", NOW.timestamp() - 86400
        )
        page = await web.client.get("/watch/box?days=90&lang=en")
        listing = await web.client.get("/")
    timeline = page.text.split('<svg class="timeline"', 1)[1].split("</svg>", 1)[0]
    assert timeline.count('class="s-in_stock"') == 2  # 40 days ago, and today
    assert 'class="s-out_of_stock"' in timeline
    assert "¥5,200" in page.text  # the old event's price starts the price line
    box_row = listing.text.split('data-key="box"', 1)[1].split("</tr>", 1)[0]
    assert box_row.count('class="s-out_of_stock"') == 6  # known sold out from the events


async def test_logins_pause_after_many_wrong_tokens(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database, token="right-token") as web:
        answers = [
            (await web.client.post("/login", data={"token": f"guess-{n}"})).status_code
            for n in range(10)
        ]
        paused = await web.client.post("/login", data={"token": "right-token"})
        web.clock[0] = NOW + timedelta(minutes=6)
        later = await web.client.post("/login", data={"token": "right-token"})
    assert answers == [403] * 10
    assert paused.status_code == 429 and "restock_session" not in paused.headers.get(
        "set-cookie", ""
    )
    assert later.status_code == 303 and "restock_session=" in later.headers["set-cookie"]


async def test_health_shows_shared_backoff_and_a_failed_check_is_an_unknown_verdict(
    tmp_path: Path,
    database: str,
) -> None:
    async def broken(form: AddForm) -> Observation:
        raise OSError("network is unreachable <b>")

    async with running_web(tmp_path, database=database, checker=broken) as web:
        await web.repo.save_host_state(
            HostState("www.amazon.co.jp", backoff_until=NOW + timedelta(minutes=5),
                      consecutive_blocks=3, last_reason="blocked:captcha <i>")
        )  # fmt: skip
        health = await web.client.get("/health?lang=en")
        checked = await web.client.post(
            "/add", data={"csrf": await web.csrf(), "target": "https://www.amazon.co.jp/dp/B0X"}
        )
    assert "www.amazon.co.jp" in health.text and "blocked:captcha &lt;i&gt;" in health.text
    assert checked.status_code == 200 and ">Unknown<" in checked.text  # English: the cookie
    assert "check failed: OSError: network is unreachable &lt;b&gt;" in checked.text


async def test_api_watches_come_in_slices(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database) as web:
        first = (await web.client.get("/api/watches?limit=1")).json()
        second = (await web.client.get("/api/watches?limit=1&offset=1")).json()
        odd = (await web.client.get("/api/watches?limit=-1&offset=x")).json()
    assert first["total"] == 2 and len(first["watches"]) == 1
    assert second["offset"] == 1 and second["watches"][0]["key"] != first["watches"][0]["key"]
    assert len(odd["watches"]) == 2 and odd["offset"] == 0


def test_session_cookie_is_secure_behind_https() -> None:
    from watcher.web.security import session_cookie

    assert "; Secure" in session_cookie("v", secure=True)
    assert "Secure" not in session_cookie("v")


HOSTILE_PATHS = [
    "/watch/%ZZ",
    "/watch/" + "%F0%9F" * 3,
    "/watch/\u00e9",
    "/watch/" + "a" * 5000,
    "/api/watches/%00/history",
    "/api/watches/box/history/extra",
    "/api/",
    "/?state=<script>&store=%22%3E%3Cscript%3E",
    "/?page=99999999999999999999",
    "/watch/box?days=<svg>",
    "/deliveries/1/retry",
    "/channels",
    "/static/../../etc/passwd",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_hostile_requests_get_a_clear_answer(
    tmp_path: Path, database: str, path: str
) -> None:
    async with running_web(tmp_path, database=database) as web:
        answer = await web.client.get(path)
        assert answer.status_code in (200, 404, 405), answer.status_code
        assert_escaped(answer.text)
        assert (await web.client.get("/healthz")).status_code == 200  # the listener still serves


async def test_hostile_posts_get_a_clear_answer(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database) as web:
        token = await web.csrf()
        for body in (
            b"\xff\xfe\x00csrf=" + token.encode(),
            b"csrf=" + token.encode() + b"&target=%FF",
        ):
            answer = await web.client.post(
                "/add", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
            )
            assert answer.status_code in (400, 403)
        big = await web.client.post("/add", data={"csrf": token, "target": "x" * 60_000})
        assert big.status_code in (400, 413)
        assert (
            await web.client.post("/deliveries/999/retry", data={"csrf": token})
        ).status_code == 303


async def test_a_paused_watch_is_checked_but_sends_nothing(tmp_path: Path, database: str) -> None:
    async with running_web(tmp_path, database=database) as web:
        await web.client.post("/watch/box/pause", data={"csrf": await web.csrf()})
        before = await rows(database, "SELECT COUNT(*) FROM deliveries")
        checks = await rows(database, "SELECT COUNT(*) FROM observations")
        await observe(web.repo, NOW + timedelta(hours=1), Availability.IN_STOCK, 5000, True)
        after = await rows(database, "SELECT COUNT(*) FROM deliveries")
    assert await rows(database, "SELECT COUNT(*) FROM observations") != checks  # still checked
    assert after[0][0] - before[0][0] == 1  # only the mug's x subscription got its delivery


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
async def test_through_a_proxy_the_ui_needs_a_token(
    tmp_path: Path, database: str, other_database: str, header: str
) -> None:
    async with running_web(tmp_path, database=database) as open_ui:
        refused = await open_ui.client.get("/api/watches", headers={header: "203.0.113.9"})
        health = await open_ui.client.get("/healthz", headers={header: "203.0.113.9"})
    assert refused.status_code == 403 and "RESTOCK_WEB_TOKEN" in refused.text
    assert health.status_code == 200  # /healthz keeps its contract
    (tmp_path / "guarded").mkdir()
    async with running_web(tmp_path / "guarded", database=other_database, token="tok") as guarded:
        bearer = {header: "203.0.113.9", "Authorization": "Bearer tok"}
        assert (await guarded.client.get("/api/watches", headers=bearer)).status_code == 200
