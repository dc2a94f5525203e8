"""What a store adapter is: a name, the hosts it knows, and pure functions of a response."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from watcher.core.model import FetchPlan, Observation, Offer, Page


@dataclass(frozen=True, slots=True)
class HostLimits:
    """Politeness for one host: requests in flight, least delay between two, floor on intervals."""

    concurrency: int = 2
    min_delay: timedelta = timedelta(seconds=1)
    min_interval: timedelta = timedelta(seconds=30)


def plain_get(url: str) -> FetchPlan:
    return FetchPlan(url=url)


@dataclass(frozen=True, slots=True)
class StoreAdapter:
    """One store. `parse_product` must be pure: the same page always gives the same observation."""

    name: str
    parse_product: Callable[[Page], Observation]
    hosts: tuple[str, ...] = ()  # exact hosts, or "*.example.com" for any subdomain
    product_request: Callable[[str], FetchPlan] = plain_get
    # Recognises the store from markup when the host does not tell it (shops on own domains).
    recognise: Callable[[Page], bool] | None = None
    limits: HostLimits = field(default_factory=HostLimits)

    def serves(self, host: str) -> bool:
        exact, suffixes = _host_patterns(self.hosts)
        host = host.lower().rstrip(".")
        return host in exact or host.endswith(suffixes)


@dataclass(frozen=True, slots=True)
class SearchSource:
    """A JAN search source (a store's API); skipped, and said so, without its credentials."""

    name: str
    credential_keys: tuple[str, ...]  # keys under `sources.<name>` in the watchlist
    search_request: Callable[[str, dict[str, str]], FetchPlan]  # (jan, credentials) -> request
    parse_search: Callable[[Page, str], Sequence[Offer] | Observation]  # Observation = unknown
    min_delay: timedelta = timedelta(seconds=1)


@functools.lru_cache(maxsize=256)
def _host_patterns(hosts: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """`hosts` as the hosts they match exactly and the suffixes ("*.example.com" matches
    example.com and any host ending ".example.com"), worked out once per tuple: every reading
    asks which adapter serves its host."""
    patterns = [pattern.lower() for pattern in hosts]
    wildcards = [pattern[1:] for pattern in patterns if pattern.startswith("*.")]
    exact = {pattern for pattern in patterns if not pattern.startswith("*.")}
    return frozenset(exact | {suffix[1:] for suffix in wildcards}), tuple(wildcards)
