"""JAN search sources (Rakuten, Yahoo! Shopping APIs, faked with respx) and combining offers."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx

from watcher.core.jan import parse_jan
from watcher.core.model import (
    Availability,
    ConditionFilter,
    ItemCondition,
    Observation,
    Offer,
    Page,
    SellerFilter,
    WatchConditions,
)
from watcher.core.offers import combine
from watcher.net.fetch import Fetcher
from watcher.reading.read import SearchSetup, read_jan
from watcher.service.engine import JAN_SEARCH_HOST
from watcher.service.wiring import store_limits
from watcher.stores.sources import (
    RAKUTEN_SEARCH_URL,
    SEARCH_LIMITS,
    SOURCES,
    YAHOO_SEARCH_URL,
    parse_rakuten,
    parse_yahoo,
    rakuten_request,
    yahoo_request,
)

JAN = "4521329400006"
API = Path(__file__).parent / "fixtures" / "api"
ACCESS_KEY = "pk_test-access-key-789"
CREDENTIALS = {
    "rakuten": {"application_id": "app-123", "access_key": ACCESS_KEY},
    "yahoo_shopping": {"app_id": "yahoo-456"},
}


def _api(name: str) -> str:
    return (API / name).read_text("utf-8")


def _page(name: str, status: int = 200, retry_after: float | None = None) -> Page:
    return Page(
        url="https://api.example/search", text=_api(name), status=status, retry_after=retry_after
    )


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_mocked=True, assert_all_called=False)


@pytest.fixture
async def fetcher(router: respx.Router) -> AsyncIterator[Fetcher]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.handler)) as client:
        yield Fetcher(client)


def test_the_fixture_jan_is_valid() -> None:
    assert parse_jan(JAN) == JAN


# --- Rakuten -----------------------------------------------------------------------------------


def test_rakuten_request_includes_sold_out_items_and_searches_the_jan_as_keyword() -> None:
    plan = rakuten_request(JAN, CREDENTIALS["rakuten"])
    assert plan.url == RAKUTEN_SEARCH_URL
    assert plan.url.startswith("https://openapi.rakuten.co.jp/")
    assert plan.url.endswith("/ichibams/api/IchibaItem/Search/20260401")
    assert plan.params["availability"] == "0"
    assert plan.params["keyword"] == JAN
    assert plan.params["applicationId"] == "app-123"
    assert plan.params["hits"] == "30"
    assert plan.params["format"] == "json"
    assert plan.params["formatVersion"] == "2"


def test_rakuten_access_key_is_a_secret_query_parameter() -> None:
    plan = rakuten_request(JAN, CREDENTIALS["rakuten"])
    assert plan.secret_params == {"accessKey": ACCESS_KEY}
    assert ACCESS_KEY not in plan.url
    assert all(ACCESS_KEY not in value for value in plan.params.values())
    assert ACCESS_KEY not in repr(plan)
    assert not plan.headers


async def test_rakuten_search_sends_the_key_but_records_no_url_holding_it(
    router: respx.Router, fetcher: Fetcher
) -> None:
    route = router.get(url__startswith=RAKUTEN_SEARCH_URL).respond(
        200, text=_api("rakuten-openapi-search-v2.json")
    )
    page = await fetcher.fetch(rakuten_request(JAN, CREDENTIALS["rakuten"]))
    sent = route.calls.last.request.url
    assert sent.params["accessKey"] == ACCESS_KEY
    assert sent.params["applicationId"] == "app-123"
    assert page.final_url is not None and ACCESS_KEY not in page.final_url
    assert "applicationId=app-123" in page.final_url  # only the secret is left out


async def test_a_retired_rakuten_api_version_is_named_in_the_reason(
    router: respx.Router, fetcher: Fetcher
) -> None:
    body = '{"error":"wrong_parameter","error_description":"API Configuration not found"}'
    router.get(url__startswith=RAKUTEN_SEARCH_URL).respond(400, text=body)
    setup = SearchSetup(credentials={"rakuten": CREDENTIALS["rakuten"]})
    obs = (await read_jan(fetcher, JAN, stores=["rakuten"], setup=setup)).observation
    assert obs.state is Availability.UNKNOWN
    assert "API Configuration not found" in obs.reason
    assert "retired" in obs.reason


def test_rakuten_reads_the_new_systems_flat_items() -> None:
    offers = parse_rakuten(_page("rakuten-openapi-search-v2.json"), JAN)
    assert not isinstance(offers, Observation)
    assert [(o.shop, o.state, o.price) for o in offers] == [
        ("トイショップまんぼう", Availability.OUT_OF_STOCK, 5980),
        ("カード屋さん", Availability.IN_STOCK, 6480),
    ]  # the sleeve (another JAN) is dropped
    assert offers[1].url == "https://item.rakuten.co.jp/cardya/sv8a-box/"


def test_rakuten_reads_items_spelled_as_the_documentation_spells_them() -> None:
    body = '{"count":1,"items":[{"itemName":"BOX 4521329400006","itemPrice":5000,'
    body += '"itemUrl":"https://item.rakuten.co.jp/a/b/","availability":1,"shopName":"A"}]}'
    offers = parse_rakuten(Page(url="x", text=body), JAN)
    assert not isinstance(offers, Observation)
    assert [(o.price, o.state) for o in offers] == [(5000, Availability.IN_STOCK)]


def test_rakuten_gateway_refusal_is_unknown_and_says_why() -> None:
    page = _page("rakuten-openapi-referrer-missing.json", 403)
    result = parse_rakuten(page, JAN)
    assert isinstance(result, Observation)
    assert result.state is Availability.UNKNOWN
    assert result.reason == "rakuten api: 403: REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING"


def test_rakuten_plain_text_refusal_is_unknown_with_its_words() -> None:
    page = Page(url="x", text="Forbidden\n  access denied", status=403)
    result = parse_rakuten(page, JAN)
    assert isinstance(result, Observation)
    assert result.reason == "rakuten api: 403: Forbidden access denied"


@pytest.mark.parametrize(
    "body",
    ['{"errors": "x"}', '{"errors": {"errorCode": true}}', '{"Items": "none"}', "[]", "null"],
)
def test_rakuten_odd_answers_are_unknown_never_a_crash(body: str) -> None:
    result = parse_rakuten(Page(url="x", text=body, status=200), JAN)
    assert isinstance(result, Observation)
    assert result.state is Availability.UNKNOWN


def test_rakuten_keeps_only_items_carrying_the_jan_with_their_own_stock_flag() -> None:
    offers = parse_rakuten(_page("rakuten-search-mixed.json"), JAN)
    assert not isinstance(offers, Observation)
    by_shop = {offer.shop: offer for offer in offers}
    assert set(by_shop) == {
        "トイショップまんぼう",  # JAN in the caption
        "カード屋さん",  # JAN in the name (its other item, another JAN, is dropped)
        "ポケモン公式ショップ 楽天市場店",  # JAN in the URL
        "リユース館",
    }
    assert by_shop["トイショップまんぼう"].state is Availability.OUT_OF_STOCK  # availability 0
    assert by_shop["カード屋さん"].state is Availability.IN_STOCK
    assert by_shop["カード屋さん"].price == 6480
    assert by_shop["ポケモン公式ショップ 楽天市場店"].official is True
    assert by_shop["カード屋さん"].official is False
    assert by_shop["リユース館"].condition is ItemCondition.USED
    assert all(o.store == "rakuten" and o.jan == JAN and o.seller == o.shop for o in offers)


def test_rakuten_too_many_requests_is_a_back_off_not_a_state() -> None:
    result = parse_rakuten(_page("rakuten-too-many-requests.json", 429, retry_after=5.0), JAN)
    assert isinstance(result, Observation)
    assert result.state is Availability.UNKNOWN
    assert result.blocked is True
    assert result.retry_after == 5.0
    assert result.reason == "blocked:rate_limited"


def test_rakuten_too_many_requests_without_retry_after_waits_one_second() -> None:
    result = parse_rakuten(_page("rakuten-too-many-requests.json", 429), JAN)
    assert isinstance(result, Observation)
    assert result.retry_after == 1.0


def test_rakuten_not_found_is_no_offers_and_other_errors_are_unknown() -> None:
    assert parse_rakuten(_page("rakuten-not-found.json", 404), JAN) == []
    bad = Page(
        url="x", text='{"error":"wrong_parameter","error_description":"keyword"}', status=400
    )
    result = parse_rakuten(bad, JAN)
    assert isinstance(result, Observation)
    assert result.state is Availability.UNKNOWN
    assert "wrong_parameter" in result.reason


def test_rakuten_answer_that_is_not_json_is_unknown() -> None:
    result = parse_rakuten(Page(url="x", text="<html>oops</html>"), JAN)
    assert isinstance(result, Observation)
    assert result.state is Availability.UNKNOWN


# --- Yahoo! Shopping ---------------------------------------------------------------------------


def test_yahoo_request_searches_by_jan_code_without_the_in_stock_filter() -> None:
    plan = yahoo_request(JAN, {"app_id": "yahoo-456"})
    assert plan.url == YAHOO_SEARCH_URL
    assert plan.params["jan_code"] == JAN
    assert plan.params["appid"] == "yahoo-456"
    assert plan.params["results"] == "50"
    assert "in_stock" not in plan.params


def test_yahoo_reads_in_stock_per_hit_and_drops_other_jans() -> None:
    offers = parse_yahoo(_page("yahoo-itemsearch-mixed.json"), JAN)
    assert not isinstance(offers, Observation)
    assert len(offers) == 3
    by_shop = {offer.shop: offer for offer in offers}
    assert by_shop["トレカ専門店 カードキング"].state is Availability.OUT_OF_STOCK
    assert by_shop["トレカ専門店 カードキング"].price == 5400
    assert by_shop["転売ストア"].state is Availability.IN_STOCK
    assert by_shop["リユースのエコモ"].condition is ItemCondition.USED
    assert by_shop["転売ストア"].condition is ItemCondition.NEW


@pytest.mark.parametrize("status", [200, 503])
def test_yahoo_maintenance_is_unknown(status: int) -> None:
    result = parse_yahoo(_page("yahoo-maintenance.xml", status), JAN)
    assert isinstance(result, Observation)
    assert result.state is Availability.UNKNOWN
    assert "maintenance" in result.reason


def test_yahoo_rate_limit_is_blocked_with_a_wait() -> None:
    page = Page(url="x", text='{"Error":{"Message":"Too many requests"}}', status=429)
    result = parse_yahoo(page, JAN)
    assert isinstance(result, Observation)
    assert result.blocked is True
    assert result.retry_after == 1.0


def test_sources_are_registered_with_their_credential_keys() -> None:
    assert SOURCES["rakuten"].credential_keys == ("application_id", "access_key")
    assert SOURCES["yahoo_shopping"].credential_keys == ("app_id",)
    assert "amazon_jp" not in SOURCES


def test_jan_searches_are_paced_for_the_strictest_api() -> None:
    assert SOURCES["rakuten"].min_delay == timedelta(seconds=1)  # one request a second
    assert SOURCES["yahoo_shopping"].min_delay == timedelta(seconds=2)  # 30 a minute
    assert SEARCH_LIMITS.concurrency == 1
    assert SEARCH_LIMITS.min_delay == timedelta(seconds=2)
    assert store_limits(JAN_SEARCH_HOST) == SEARCH_LIMITS


# --- combining ---------------------------------------------------------------------------------


def _offer(store: str, price: int | None, state: Availability, **kw: object) -> Offer:
    return Offer(
        store=store, url=f"https://{store}.example/{price}", state=state, price=price, **kw
    )  # type: ignore[arg-type]


def test_combine_lists_offers_cheapest_first_and_takes_the_best_state() -> None:
    obs = combine(
        JAN,
        {
            "rakuten": [_offer("rakuten", 6480, Availability.IN_STOCK, shop="A")],
            "yahoo_shopping": [
                _offer("yahoo_shopping", 5400, Availability.OUT_OF_STOCK, shop="B"),
                _offer("yahoo_shopping", None, Availability.IN_STOCK, shop="C"),
            ],
        },
        ["amazon_jp: no search API (watch its product page by URL)"],
    )
    assert [o.price for o in obs.offers] == [5400, 6480, None]
    assert obs.state is Availability.IN_STOCK
    assert obs.price == 6480  # the cheapest orderable offer is the headline
    assert obs.jan == JAN
    assert obs.reason.startswith("jan:3 offers from yahoo_shopping, rakuten")
    assert "skipped: amazon_jp" in obs.reason


def test_combine_with_a_failed_source_and_nothing_orderable_is_unknown() -> None:
    limited = Observation.unknown("blocked:rate_limited", blocked=True, retry_after=7.0)
    obs = combine(
        JAN,
        {
            "rakuten": [_offer("rakuten", 5000, Availability.OUT_OF_STOCK)],
            "yahoo_shopping": limited,
        },
    )
    assert obs.state is Availability.UNKNOWN
    assert obs.retry_after == 7.0
    assert "failed: yahoo_shopping blocked:rate_limited" in obs.reason
    assert obs.blocked is False  # one source did answer


def test_combine_with_a_failed_source_still_reports_an_offer_in_stock() -> None:
    limited = Observation.unknown("blocked:rate_limited", blocked=True, retry_after=2.0)
    obs = combine(JAN, {"rakuten": [_offer("rakuten", 5000, Availability.IN_STOCK)], "y": limited})
    assert obs.state is Availability.IN_STOCK
    assert obs.retry_after == 2.0


def test_combine_with_every_source_answering_nothing_is_out_of_stock() -> None:
    obs = combine(JAN, {"rakuten": [], "yahoo_shopping": []})
    assert obs.state is Availability.OUT_OF_STOCK
    assert obs.reason == "jan:0 offers"


def test_combine_with_no_source_at_all_is_unknown_and_names_the_skipped() -> None:
    obs = combine(JAN, {}, ["rakuten: no credentials in sources.rakuten"])
    assert obs.state is Availability.UNKNOWN
    assert "skipped: rakuten: no credentials" in obs.reason


def test_combine_headline_follows_the_watch_conditions_when_given() -> None:
    conditions = WatchConditions(seller=SellerFilter.OFFICIAL)
    obs = combine(
        JAN,
        {
            "rakuten": [
                _offer("rakuten", 4000, Availability.IN_STOCK, shop="安売り", official=False),
                _offer("rakuten", 5400, Availability.IN_STOCK, shop="公式", official=True),
            ]
        },
        conditions=conditions,
    )
    assert obs.price == 5400
    assert obs.official is True


# --- end to end through the fetcher ------------------------------------------------------------


async def test_read_jan_asks_both_apis_and_conditions_pick_the_buyable_offers(
    router: respx.Router, fetcher: Fetcher
) -> None:
    rakuten = router.get(url__startswith=RAKUTEN_SEARCH_URL).respond(
        200, text=_api("rakuten-search-mixed.json"), headers={"content-type": "application/json"}
    )
    yahoo = router.get(url__startswith=YAHOO_SEARCH_URL).respond(
        200, text=_api("yahoo-itemsearch-mixed.json"), headers={"content-type": "application/json"}
    )
    setup = SearchSetup(credentials=CREDENTIALS)
    reading = await read_jan(
        fetcher, JAN, stores=["rakuten", "yahoo_shopping", "amazon_jp"], setup=setup
    )
    obs = reading.observation
    assert rakuten.called and yahoo.called
    sent_request = rakuten.calls.last.request
    sent = sent_request.url.params
    assert sent["availability"] == "0" and sent["keyword"] == JAN
    assert sent["applicationId"] == "app-123"
    assert sent["accessKey"] == ACCESS_KEY
    assert "authorization" not in sent_request.headers
    assert yahoo.calls.last.request.url.params["jan_code"] == JAN
    assert obs.state is Availability.IN_STOCK
    assert len(obs.offers) == 7
    assert "skipped: amazon_jp" in obs.reason

    new_under_6000 = WatchConditions(max_price=6000, condition=ConditionFilter.NEW)
    picked = new_under_6000.buyable_offers(obs)
    assert [(o.shop, o.price) for o in picked] == [("ポケモン公式ショップ 楽天市場店", 5400)]
    assert new_under_6000.is_buyable(obs)

    official_only = WatchConditions(seller=SellerFilter.OFFICIAL, max_price=5000)
    assert not official_only.is_buyable(obs)
    excluded = WatchConditions(exclude_sellers=("転売", "公式", "カード屋", "リユース"))
    assert excluded.buyable_offers(obs) == []


async def test_read_jan_rate_limited_source_reads_unknown_when_nothing_else_sells(
    router: respx.Router, fetcher: Fetcher
) -> None:
    router.get(url__startswith=RAKUTEN_SEARCH_URL).respond(
        429, text=_api("rakuten-too-many-requests.json"), headers={"retry-after": "30"}
    )
    router.get(url__startswith=YAHOO_SEARCH_URL).respond(
        200,
        text='{"totalResultsAvailable":0,"hits":[]}',
        headers={"content-type": "application/json"},
    )
    setup = SearchSetup(credentials=CREDENTIALS)
    obs = (
        await read_jan(fetcher, JAN, stores=["rakuten", "yahoo_shopping"], setup=setup)
    ).observation
    assert obs.state is Availability.UNKNOWN
    assert obs.retry_after == 30
    assert not WatchConditions().is_buyable(obs)


async def test_read_jan_skips_sources_without_credentials_and_names_them(
    router: respx.Router, fetcher: Fetcher
) -> None:
    setup = SearchSetup(credentials={"rakuten": {"application_id": "app-123", "access_key": ""}})
    obs = (
        await read_jan(fetcher, JAN, stores=["rakuten", "yahoo_shopping"], setup=setup)
    ).observation
    assert obs.state is Availability.UNKNOWN
    assert "rakuten: no credentials" in obs.reason
    assert "yahoo_shopping: no credentials" in obs.reason
    assert not router.calls


async def test_the_access_key_never_reaches_logs_reprs_or_the_observation(
    router: respx.Router, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    router.get(url__startswith=RAKUTEN_SEARCH_URL).respond(
        403, text=_api("rakuten-openapi-referrer-missing.json")
    )
    setup = SearchSetup(credentials={"rakuten": CREDENTIALS["rakuten"]})
    obs = (await read_jan(fetcher, JAN, stores=["rakuten"], setup=setup)).observation
    assert obs.state is Availability.UNKNOWN
    assert "REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING" in obs.reason
    assert ACCESS_KEY not in caplog.text
    assert ACCESS_KEY not in json.dumps(obs.to_json(), default=str)
    assert ACCESS_KEY not in repr(rakuten_request(JAN, CREDENTIALS["rakuten"]))
