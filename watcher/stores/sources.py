"""JAN search sources: the stores' own search APIs, asked for every offer of one JAN code.

Rakuten's API lives on Rakuten Web Service's current system (`openapi.rakuten.co.jp`, version
2026-04-01): the application id and its access key are both query parameters (`applicationId`,
`accessKey`). The key is sent as a secret parameter, so the fetcher leaves it out of every URL it
records. The retired `app.rakuten.co.jp` endpoint no longer answers, and a retired API version
answers `wrong_parameter: API Configuration not found`, which the reason then explains.

Yahoo! Shopping's v3 itemSearch takes the Client ID as `appid` and allows 30 requests a minute
per Client ID, hence its two-second spacing.

Both APIs are asked to include sold-out offers (Rakuten `availability=0`; Yahoo without the
`in_stock` filter) and each offer's own stock flag is read, because a sold-out offer coming back
is exactly the change a watch waits for. An API answer that refuses us (rate limit, maintenance)
is an `unknown` observation, never an empty list: "no offers" and "could not ask" differ.

Amazon has no source here: its Product Advertising API is being retired for the Creators API,
which needs an affiliate account with sales, so Amazon products are watched by page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from watcher.core.model import Availability, FetchPlan, ItemCondition, Observation, Offer, Page
from watcher.stores._base import HostLimits, SearchSource
from watcher.stores._text import clean_title, parse_amount

RAKUTEN_SEARCH_URL = "https://openapi.rakuten.co.jp/ichibams/api/IchibaItem/Search/20260401"
YAHOO_SEARCH_URL = "https://shopping.yahooapis.jp/ShoppingWebService/V3/itemSearch"
RAKUTEN_MIN_DELAY = timedelta(seconds=1)  # one request a second per application id
YAHOO_MIN_DELAY = timedelta(seconds=2)  # 30 requests a minute per Client ID
DEFAULT_RETRY_AFTER = 1.0
_RETIRED_VERSION = "API Configuration not found"  # Rakuten's answer to a retired API version

_A = Availability
_OFFICIAL = re.compile(r"公式|オフィシャル|official|直営|楽天ブックス", re.IGNORECASE)
_USED = re.compile(r"[【\[(（]\s*中古|中古品")


# --- Rakuten Ichiba Item Search API ------------------------------------------------------------


def rakuten_request(jan: str, credentials: dict[str, str]) -> FetchPlan:
    """One search for the JAN, sold-out items included, cheapest first."""
    params = {
        "applicationId": credentials["application_id"],
        "keyword": jan,
        "availability": "0",  # the default (1) drops sold-out items: exactly what we watch for
        "hits": "30",
        "sort": "+itemPrice",
        "format": "json",
        "formatVersion": "2",  # items as flat objects
    }
    if credentials.get("affiliate_id"):
        params["affiliateId"] = credentials["affiliate_id"]
    secret = {"accessKey": credentials["access_key"]}
    return FetchPlan(url=RAKUTEN_SEARCH_URL, params=params, secret_params=secret)


def parse_rakuten(page: Page, jan: str) -> Sequence[Offer] | Observation:
    """Offers whose name, caption or URL carries the JAN (the keyword search is loose)."""
    data = _json(page)
    refusal = _rakuten_refusal(page, data)
    if refusal is not None:
        return refusal
    if isinstance(data, dict) and data.get("error") == "not_found":
        return []  # no item at all: an answer, not a failure
    items = _rakuten_items(data)
    if items is None:
        return Observation.unknown("rakuten api: unexpected answer", store="rakuten")
    offers = (_rakuten_offer(entry, jan) for entry in items)
    return [offer for offer in offers if offer is not None]


def _rakuten_items(data: Any) -> list[Any] | None:
    """The item list: `Items` as served, `items` as the documentation spells it."""
    if not isinstance(data, dict):
        return None
    items = data.get("Items", data.get("items"))
    return items if isinstance(items, list) else None


def _rakuten_refusal(page: Page, data: Any) -> Observation | None:
    error, detail = _rakuten_error(data)
    if page.status == 429 or error in ("too_many_requests", "429"):
        return _rate_limited("rakuten", page)
    if error == "not_found":
        return None
    if error or (page.status is not None and page.status >= 400):
        if not detail and not isinstance(data, dict):
            detail = _short(page.text)  # the gateway answers some refusals in plain text
        if _RETIRED_VERSION in detail:
            detail += f" (the API version in {RAKUTEN_SEARCH_URL} may be retired)"
        return Observation.unknown(
            f"rakuten api: {error or page.status}: {detail}".rstrip(": "), store="rakuten"
        )
    return None


def _rakuten_error(data: Any) -> tuple[str, str]:
    """(code, description) of an error answer: `error`/`error_description`, or the gateway's
    `errors: {errorCode, errorMessage}`; empty strings for an answer that is no error."""
    if not isinstance(data, dict):
        return "", ""
    if isinstance(data.get("error"), str):
        return data["error"], _str(data.get("error_description")) or ""
    errors = data.get("errors")
    if isinstance(errors, dict):
        code = errors.get("errorCode")
        code_text = str(code) if isinstance(code, int | str) and not isinstance(code, bool) else ""
        return code_text or "error", _str(errors.get("errorMessage")) or ""
    return "", ""


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat[:limit]


def _rakuten_offer(entry: Any, jan: str) -> Offer | None:
    item = entry.get("Item", entry) if isinstance(entry, dict) else None
    if not isinstance(item, dict):
        return None
    name = _str(item.get("itemName")) or ""
    haystack = " ".join(_str(item.get(k)) or "" for k in ("itemName", "itemCaption", "itemUrl"))
    if jan not in haystack:
        return None
    shop = _str(item.get("shopName"))
    return Offer(
        store="rakuten",
        url=_str(item.get("itemUrl")) or "",
        state=_A.IN_STOCK if item.get("availability") == 1 else _A.OUT_OF_STOCK,
        price=parse_amount(item.get("itemPrice")),
        currency="JPY",
        title=clean_title(name),
        shop=shop,
        seller=shop,
        official=bool(_OFFICIAL.search(shop)) if shop else None,
        condition=ItemCondition.USED if _USED.search(name) else ItemCondition.NEW,
        jan=jan,
    )


# --- Yahoo! Shopping Web API v3 itemSearch -----------------------------------------------------


def yahoo_request(jan: str, credentials: dict[str, str]) -> FetchPlan:
    """One search by JAN code; no `in_stock` filter, so sold-out offers come back too."""
    params = {"appid": credentials["app_id"], "jan_code": jan, "results": "50", "sort": "+price"}
    return FetchPlan(url=YAHOO_SEARCH_URL, params=params)


def parse_yahoo(page: Page, jan: str) -> Sequence[Offer] | Observation:
    """Every hit for the JAN with its own `inStock` flag."""
    if "API_MAINTENANCE" in page.text or page.status == 503:
        return Observation.unknown(
            "yahoo api: maintenance", store="yahoo_shopping", retry_after=page.retry_after
        )
    data = _json(page)
    if page.status == 429 or _yahoo_error(data).lower().startswith(("too many", "rate")):
        return _rate_limited("yahoo_shopping", page)
    if (page.status is not None and page.status >= 400) or _yahoo_error(data):
        detail = _yahoo_error(data) or f"http {page.status}"
        return Observation.unknown(f"yahoo api: {detail}", store="yahoo_shopping")
    if not isinstance(data, dict) or not isinstance(data.get("hits"), list):
        return Observation.unknown("yahoo api: unexpected answer", store="yahoo_shopping")
    offers = (_yahoo_offer(hit, jan) for hit in data["hits"])
    return [offer for offer in offers if offer is not None]


def _yahoo_error(data: Any) -> str:
    error = data.get("Error") if isinstance(data, dict) else None
    message = error.get("Message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else ""


def _yahoo_offer(hit: Any, jan: str) -> Offer | None:
    if not isinstance(hit, dict):
        return None
    code = _str(hit.get("janCode"))
    if code and code != jan:
        return None  # a hit for another product (bundles list several codes)
    seller = hit.get("seller")
    shop = _str(seller.get("name")) if isinstance(seller, dict) else None
    return Offer(
        store="yahoo_shopping",
        url=_str(hit.get("url")) or "",
        state=_A.IN_STOCK if hit.get("inStock") is True else _A.OUT_OF_STOCK,
        price=parse_amount(hit.get("price")),
        currency="JPY",
        title=clean_title(_str(hit.get("name"))),
        shop=shop,
        seller=shop,
        official=bool(_OFFICIAL.search(shop)) if shop else None,
        condition=ItemCondition.USED if hit.get("condition") == "used" else ItemCondition.NEW,
        jan=jan,
    )


# --- shared ------------------------------------------------------------------------------------


def _rate_limited(store: str, page: Page) -> Observation:
    """A back-off, not a state: unknown, carrying the wait the API asked for."""
    return Observation.unknown(
        "blocked:rate_limited",
        store=store,
        blocked=True,
        retry_after=page.retry_after or DEFAULT_RETRY_AFTER,
    )


def _json(page: Page) -> Any:
    try:
        return json.loads(page.text)
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


SOURCES: dict[str, SearchSource] = {
    "rakuten": SearchSource(
        name="rakuten",
        credential_keys=("application_id", "access_key"),
        search_request=rakuten_request,
        parse_search=parse_rakuten,
        min_delay=RAKUTEN_MIN_DELAY,
    ),
    "yahoo_shopping": SearchSource(
        name="yahoo_shopping",
        credential_keys=("app_id",),
        search_request=yahoo_request,
        parse_search=parse_yahoo,
        min_delay=YAHOO_MIN_DELAY,
    ),
}

# The one politeness slot JAN searches share: one search at a time, spaced for the slowest API.
SEARCH_LIMITS = HostLimits(
    concurrency=1,
    min_delay=max(source.min_delay for source in SOURCES.values()),
    min_interval=timedelta(seconds=30),
)
