"""One reading of one product: plan the request, fetch it, parse it into an `Observation`.

Used by `restock check` and by the engine, so both read a product the same way. Fetch problems come
back as `unknown` observations (see errors.py): this module never raises for the network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from watcher.core.model import Observation, Offer, Page, TextRules
from watcher.core.offers import combine
from watcher.net.fetch import Fetcher
from watcher.net.netguard import URLGuard
from watcher.stores._base import SearchSource
from watcher.stores.parse import parse_page
from watcher.stores.registry import adapter_for
from watcher.stores.sources import SOURCES


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional request needs from the previous fetch of the same product."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """An observation and the page it came from (None for a JAN search across several pages)."""

    observation: Observation
    page: Page | None = None


@dataclass(frozen=True, slots=True)
class SearchSetup:
    """Credentials per JAN search source (`sources.<name>` in the watchlist)."""

    credentials: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def usable(self, wanted: Sequence[str]) -> tuple[list[SearchSource], list[str]]:
        """Sources to query for these store names, and the names skipped with why."""
        names = list(wanted) or list(SOURCES)
        usable: list[SearchSource] = []
        skipped: list[str] = []
        for name in names:
            source = SOURCES.get(name)
            if source is None:
                skipped.append(f"{name}: no search API (watch its product page by URL)")
            elif not self._has_credentials(source):
                skipped.append(f"{name}: no credentials in sources.{name}")
            else:
                usable.append(source)
        return usable, skipped

    def _has_credentials(self, source: SearchSource) -> bool:
        given = self.credentials.get(source.name, {})
        return all(given.get(key) for key in source.credential_keys)


async def read_url(
    fetcher: Fetcher,
    url: str,
    *,
    store: str | None = None,
    rules: TextRules | None = None,
    guard: URLGuard | None = None,
    validators: Validators = Validators(),
    cache_bust: bool = False,
) -> Reading:
    """Fetch and parse one product page."""
    adapter = adapter_for(url, forced=store)
    page = await fetcher.fetch(
        adapter.product_request(url),
        etag=validators.etag,
        last_modified=validators.last_modified,
        cache_bust=cache_bust,
        guard=guard,
    )
    return Reading(read_page(page, store=store, rules=rules), page)


def read_page(
    page: Page,
    *,
    store: str | None = None,
    rules: TextRules | None = None,
    cpu_clock: Callable[[], float] = time.thread_time,
) -> Observation:
    """Parse a fetched or saved page with the adapter its URL (or `store`) names, within the
    parse budget by `cpu_clock` (the reading thread's CPU time: a busy machine does not count)."""
    observation = parse_page(page, store=store, rules=rules, clock=cpu_clock)
    return replace(observation, url=observation.url or page.url)


async def read_jan(
    fetcher: Fetcher,
    jan: str,
    *,
    stores: Sequence[str] = (),
    setup: SearchSetup = SearchSetup(),
    cache_bust: bool = False,
) -> Reading:
    """Search a JAN code in every usable source at once and combine the offers."""
    sources, skipped = setup.usable(stores)
    results = await asyncio.gather(
        *(_search_one(fetcher, source, jan, setup, cache_bust) for source in sources)
    )
    by_source = {source.name: result for source, result in zip(sources, results, strict=True)}
    return Reading(combine(jan, by_source, skipped))


async def _search_one(
    fetcher: Fetcher, source: SearchSource, jan: str, setup: SearchSetup, cache_bust: bool
) -> Sequence[Offer] | Observation:
    credentials = dict(setup.credentials.get(source.name, {}))
    page = await fetcher.fetch(source.search_request(jan, credentials), cache_bust=cache_bust)
    if page.error is not None:
        return Observation.unknown(f"fetch error: {source.name}: {page.error}").with_fetch(page)
    try:
        return source.parse_search(page, jan)
    except Exception as exc:  # a hostile or changed API answer must not crash a check
        return Observation.unknown(f"parse error: {source.name}: {type(exc).__name__}")
