"""The store adapters, one registry line each, and how a product finds its adapter."""

from __future__ import annotations

from urllib.parse import urlsplit

from watcher.core.model import Page
from watcher.errors import UsageError
from watcher.stores import amazon_jp, base_shop, generic, rakuten, shopify, yahoo_shopping
from watcher.stores._base import StoreAdapter

ADAPTERS: dict[str, StoreAdapter] = {
    "generic": generic.ADAPTER,
    "amazon_jp": amazon_jp.ADAPTER,
    "rakuten": rakuten.ADAPTER,
    "yahoo_shopping": yahoo_shopping.ADAPTER,
    "base": base_shop.ADAPTER,
    "shopify": shopify.ADAPTER,
}


def adapter_for(url: str, forced: str | None = None, page: Page | None = None) -> StoreAdapter:
    """The adapter for a product: a forced name wins, then the URL's host, then (given a page)
    the first adapter that recognises the markup, then generic."""
    if forced is not None:
        try:
            return ADAPTERS[forced]
        except KeyError:
            valid = ", ".join(sorted(ADAPTERS))
            raise UsageError(f"unknown store {forced!r}: expected one of {valid}") from None
    host = _host(url)
    if host:
        for adapter in ADAPTERS.values():
            if adapter.serves(host):
                return adapter
    if page is not None and page.ok:
        for adapter in ADAPTERS.values():
            if adapter.recognise is not None and _recognises(adapter, page):
                return adapter
    return ADAPTERS["generic"]


def _recognises(adapter: StoreAdapter, page: Page) -> bool:
    assert adapter.recognise is not None
    try:
        return adapter.recognise(page)
    except Exception:  # recognising is a guess; a failing guess is a "no"
        return False


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
