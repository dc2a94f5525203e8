"""The one way to read a fetched page.

`parse_page` is what the engine and `restock check` call: it turns a failed fetch into `unknown`
before any adapter sees it, picks the adapter, applies a watch's own text rules, and makes sure a
hostile page can never crash a check (any exception inside an adapter becomes `unknown`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from watcher.core.model import Observation, Page, TextRules
from watcher.stores import generic
from watcher.stores._base import StoreAdapter
from watcher.stores._blocked import blocked_observation, detect_block
from watcher.stores._bounds import MAX_TAGS, bounded_html, too_many_tags
from watcher.stores.registry import adapter_for

_BLOCK_STATUSES = frozenset({403, 429, 503})
_GONE_STATUSES = frozenset({404, 410})
_REASON_MAX = 300
# CPU seconds one page's reading may take, by the clock the caller passes (the reading edge passes
# the reading thread's own CPU time, so a busy machine does not push ordinary pages over). Every
# rule is linear in the page, so a 5 MB page reads in well under this; a page that still takes
# longer is not trusted (its reading is `unknown`, and its product backs off like any failed
# check, so it cannot take the parser's time again soon).
PARSE_BUDGET = 2.0
OVER_BUDGET = "parse: over budget"
TOO_MANY_TAGS = "parse: too many tags"  # a page generated to be slow is not read at all


def parse_page(
    page: Page,
    store: str | None = None,
    rules: TextRules | None = None,
    *,
    clock: Callable[[], float] | None = None,
    budget: float = PARSE_BUDGET,
) -> Observation:
    """Read one fetched page into an observation carrying the fetch facts. Never raises for the
    page's content (an unknown `store` name raises `UsageError`). Given a `clock` (seconds), a
    reading that took longer than `budget` by it is `unknown`: see `PARSE_BUDGET`."""
    started = clock() if clock is not None else 0.0
    tags = too_many_tags(page.text)
    if tags is None and page.text:
        bounded = bounded_html(page.text)
        if bounded is not page.text:  # the same string when nothing needed bounding
            page = replace(page, text=bounded)
    adapter = adapter_for(page.final_url or page.url, forced=store, page=None if tags else page)
    observation = failed_fetch(page, adapter.name) or _not_read(tags, adapter)
    if observation is None:
        observation = _safe_parse(adapter, page, rules)
        if clock is not None:
            observation = _within_budget(observation, clock() - started, budget, adapter)
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


def _not_read(tags: int | None, adapter: StoreAdapter) -> Observation | None:
    """The `unknown` reading of a page with too many tags to read, or None."""
    if tags is None:
        return None
    return Observation.unknown(f"{TOO_MANY_TAGS} ({tags:,} > {MAX_TAGS:,})", store=adapter.name)


def _within_budget(
    observation: Observation, spent: float, budget: float, adapter: StoreAdapter
) -> Observation:
    """The reading, or `unknown` when it took more than `budget` seconds (see PARSE_BUDGET)."""
    if spent <= budget:
        return observation
    detail = f"{OVER_BUDGET} ({spent:.1f}s > {budget:g}s)"
    return Observation.unknown(detail, store=adapter.name, title=observation.title)


def _safe_parse(adapter: StoreAdapter, page: Page, rules: TextRules | None) -> Observation:
    try:
        observation = adapter.parse_product(page)
        if rules is not None:
            observation = generic.apply_rules(observation, page, rules)
    except Exception as exc:  # a hostile or changed page must never crash a check
        detail = f"parse error: {adapter.name}: {type(exc).__name__}: {exc}"
        return Observation.unknown(detail[:_REASON_MAX], store=adapter.name)
    return observation
