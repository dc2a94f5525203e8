"""The restock-hour forecast in restock messages: every channel's text, the webhook, storage,
and the real engine telling it when a product's past restocks cluster."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from test_engine import (
    IN,
    OUT,
    Lever,
    Start,
    eventually,
    shop_with,
    start,  # noqa: F401  (the fixture this test asks for)
    url_watch,
)

from notifiers.base import Notice
from notifiers.discord import embed, escape_discord
from notifiers.line_flex import flex_message
from notifiers.render import (
    render_email_html,
    render_telegram,
    render_text,
    render_x,
)
from notifiers.x_text import X_MAX_WEIGHT, weighted_length
from watcher.core.forecast import RestockForecast, Scope, describe_forecast
from watcher.core.model import Availability, Event, EventKind
from watcher.storage.codec import event_from_json, event_to_json

TOKYO = ZoneInfo("Asia/Tokyo")
FORECAST = RestockForecast(
    weekday=1, start_hour=2, width=2, hits=5, total=7, zone_label="JST", scope=Scope.PRODUCT
)
EN = "usually back on Tue 02:00–04:00 JST (5 of 7 restocks)"
JA = "再入荷は火曜 02:00–04:00 JSTが多い（7回中5回）"


def event(forecast: RestockForecast | None = FORECAST, **kw: object) -> Event:
    base: dict[str, object] = {
        "kind": EventKind.RESTOCK,
        "watch_key": "k",
        "watch_name": "Watch name",
        "state": Availability.IN_STOCK,
        "observed_at": datetime(2026, 11, 24, 17, 30, tzinfo=UTC),
        "url": "https://shop.example/item/1",
        "store": "base",
        "price": 1980,
        "title": "テスト商品",
        "seller": "公式ストア",
        "forecast": forecast,
    }
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


def test_the_forecast_wording_is_the_one_the_lists_show() -> None:
    assert describe_forecast(FORECAST, "en") == EN
    assert describe_forecast(FORECAST, "ja") == JA


def test_plain_text_telegram_and_email_tell_the_forecast_in_both_languages() -> None:
    assert f"再入荷予報: {JA}" in render_text(event())
    assert f"Forecast: {EN}" in render_text(event(), "en")
    assert f"再入荷予報: {JA}" in render_telegram(event())
    assert f"<th align=left>Forecast</th><td>{EN}</td>" in render_email_html(event(), "en")


def test_without_a_forecast_no_channel_mentions_one() -> None:
    bare = event(None)
    for text in (
        render_text(bare),
        render_text(bare, "en"),
        render_telegram(bare),
        render_email_html(bare, "en"),
        render_x(bare),
        json.dumps(flex_message(bare), ensure_ascii=False),
    ):
        assert "予報" not in text and "Forecast" not in text and "usually" not in text


def test_line_and_discord_show_the_forecast_as_a_row() -> None:
    flex = json.dumps(flex_message(event(), "ja"), ensure_ascii=False)
    assert "再入荷予報" in flex and JA in flex
    fields = embed_fields(event())
    assert {"name": "Forecast", "value": escape_discord(EN), "inline": True} in fields


def embed_fields(e: Event) -> list[dict[str, object]]:
    notice = Notice(delivery_id=1, event=e, recipient="-")
    return list(embed(notice, "en")["fields"])


def test_x_keeps_the_forecast_when_it_fits_and_drops_it_before_the_title() -> None:
    short = render_x(event(), "ja")
    assert JA in short and "テスト商品" in short
    assert weighted_length(short) <= X_MAX_WEIGHT
    crowded = event(title="長い商品名" * 60, seller="販売元" * 20)
    post = render_x(crowded, "ja")
    assert weighted_length(post) <= X_MAX_WEIGHT
    assert "予報" not in post  # the forecast went first ...
    assert "長い商品名" * 3 in post  # ... so the title keeps its room
    assert "販売元: 販売元販売元" in post  # ... and the seller, a fact of the sale, stays


def test_the_webhook_carries_the_forecast_text_and_counts() -> None:
    payload = event().to_webhook_json()
    assert payload["forecast"] == {
        "weekday": 1,
        "start_hour": 2,
        "end_hour": 4,
        "restocks_in_window": 5,
        "restocks": 7,
        "zone": "JST",
        "scope": "product",
        "text": EN,
        "text_ja": JA,
    }
    assert event(None).to_webhook_json()["forecast"] is None
    json.dumps(payload)  # plain JSON all through


def test_a_stored_event_keeps_its_forecast() -> None:
    stored = event(forecast=RestockForecast(None, 23, 3, 4, 6, "UTC+0900", Scope.STORE))
    back = event_from_json(7, event_to_json(stored))
    assert back.forecast == stored.forecast
    assert back == replace(stored, id=7)
    assert event_from_json(8, event_to_json(event(None))).forecast is None


def test_events_stored_before_forecasts_or_with_a_bad_one_read_back_without_one() -> None:
    data = json.loads(event_to_json(event(None)))
    del data["forecast"]  # as stored by an earlier version
    old = event_from_json(1, json.dumps(data))
    assert old.forecast is None and old.title == "テスト商品"
    good = json.loads(event_to_json(event()))["forecast"]
    for bad in (
        "tuesday",
        [1, 2],
        {**good, "start_hour": 24},
        {**good, "weekday": 9},
        {**good, "hits": "5"},
        {**good, "hits": 8},  # more in the window than there are restocks
        {**good, "scope": "galaxy"},
        {k: v for k, v in good.items() if k != "total"},
    ):
        data["forecast"] = bad
        read = event_from_json(2, json.dumps(data))
        assert read.forecast is None and read.kind is EventKind.RESTOCK


async def test_a_restock_message_tells_the_hour_past_restocks_clustered_in(
    start: Start,  # noqa: F811
) -> None:
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    url = shop.url("box")
    h = await start([url_watch("box", url)], shop=shop)
    await eventually(lambda: h.requests("box") >= 1, what="the baseline check")
    product_id = await h.repo.ensure_product(url, None, datetime.now(UTC))
    # Four past restocks, each between 02:00 and 03:00 in Tokyo, on four different weekdays.
    first = datetime(2026, 11, 2, 2, 10, tzinfo=TOKYO)
    for day in range(4):
        await h.repo.record_restock(product_id, None, first + timedelta(days=day, minutes=day))
    lever.shows = IN
    await eventually(lambda: bool(h.recorder.notices), what="the restock message")
    [notice] = h.recorder.notices
    assert notice.event.kind is EventKind.RESTOCK
    told = notice.event.forecast
    assert told is not None
    assert (told.weekday, told.start_hour, told.width, told.hits, told.total) == (None, 2, 1, 4, 4)
    assert "再入荷は毎日 02:00–03:00 JSTが多い（4回中4回）" in render_text(notice.event)


async def test_too_few_past_restocks_tell_no_forecast(start: Start) -> None:  # noqa: F811
    lever = Lever(OUT)
    shop = await shop_with(start, box=lever)
    url = shop.url("box")
    h = await start([url_watch("box", url)], shop=shop)
    await eventually(lambda: h.requests("box") >= 1, what="the baseline check")
    product_id = await h.repo.ensure_product(url, None, datetime.now(UTC))
    first = datetime(2026, 11, 2, 2, 10, tzinfo=TOKYO)
    for day in range(3):
        await h.repo.record_restock(product_id, None, first + timedelta(days=day))
    lever.shows = IN
    await eventually(lambda: bool(h.recorder.notices), what="the restock message")
    [notice] = h.recorder.notices
    assert notice.event.forecast is None
    assert "予報" not in render_text(notice.event)
