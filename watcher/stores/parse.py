"""The one way to read a fetched page.

`parse_page` is what the engine and `restock check` call: it turns a failed fetch into `unknown`
before any adapter sees it, picks the adapter, applies a watch's own text rules, and makes sure a
hostile page can never crash a check (any exception inside an adapter becomes `unknown`).
"""

from __future__ import annotations

from dataclasses import replace

from watcher.core.model import Observation, Page, TextRules
from watcher.stores import generic
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import blocked_observation, detect_block
from watcher.stores.registry import adapter_for

_BLOCK_STATUSES = frozenset({403, 429, 503})
_GONE_STATUSES = frozenset({404, 410})
_REASON_MAX = 300


def parse_page(page: Page, store: str | None = None, rules: TextRules | None = None) -> Observation:
    """Read one fetched page into an observation carrying the fetch facts. Never raises for the
    page's content (an unknown `store` name raises `UsageError`)."""
    adapter = adapter_for(page.final_url or page.url, forced=store, page=page)
    observation = failed_fetch(page, adapter.name)
    if observation is None:
        observation = _safe_parse(adapter, page, rules)
    if observation.store is None:
        observation = replace(observation, store=adapter.name)
    return observation.with_fetch(page)


def failed_fetch(page: Page, store: str | None = None) -> Observation | None:
    """The `unknown` reading of a fetch that brought no page to read, or None for a good one.

    403/429/503 are the shop refusing us (blocked, with its Retry-After); 404/410 say "gone" but
    are not read as discontinued, since a shop's 404 is often a passing glitch.
    """
    if page.error is not None or page.status is None:
        return Observation.unknown(f"fetch error: {page.error or 'no response'}", store=store)
    if page.not_modified:
        return Observation.unknown("not modified", store=store)
    if page.ok:
        return None
    if page.status in _BLOCK_STATUSES:
        why = detect_block(page) or f"http {page.status}"
        return blocked_observation(page, why, store=store)
    if page.status in _GONE_STATUSES:
        return Observation.unknown(f"gone: {page.status}", store=store)
    return Observation.unknown(f"http {page.status}", store=store)


def _safe_parse(adapter: StoreAdapter, page: Page, rules: TextRules | None) -> Observation:
    try:
        observation = adapter.parse_product(page)
        if rules is not None:
            observation = generic.apply_rules(observation, page, rules)
    except Exception as exc:  # a hostile or changed page must never crash a check
        detail = f"parse error: {adapter.name}: {type(exc).__name__}: {exc}"
        return Observation.unknown(detail[:_REASON_MAX], store=adapter.name)
    return observation
