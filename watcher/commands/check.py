"""`restock check`: read one product (URL, JAN code or saved page) and print what it says."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.errors import UsageError

if TYPE_CHECKING:
    from watcher.core.model import Observation
    from watcher.reading.read import SearchSetup

# Where `restock check` finds JAN search credentials when no watchlist is given.
SOURCE_ENV = {
    "rakuten": {"application_id": "RAKUTEN_APPLICATION_ID", "access_key": "RAKUTEN_ACCESS_KEY"},
    "yahoo_shopping": {"app_id": "YAHOO_APP_ID"},
}


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "check",
        help="read one product page or JAN code and print its availability",
        description="Read one product (a URL, a 13-digit JAN code, or a saved page with --file) "
        "and print its availability, price, title, seller and the rule that decided.",
    )
    parser.add_argument("target", nargs="?", help="product URL or JAN code")
    parser.add_argument("--store", help="force the store adapter (e.g. amazon_jp, generic)")
    parser.add_argument("--file", type=Path, help="parse a saved page instead of fetching")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    observation = asyncio.run(_observe(args))
    if args.json:
        print(json.dumps(observation.to_json(), ensure_ascii=False, indent=2))
    else:
        print(render_summary(observation))
    return 0


async def _observe(args: argparse.Namespace) -> Observation:
    from watcher.core.jan import looks_like_jan, parse_jan
    from watcher.net.fetch import Fetcher
    from watcher.net.transport import build_client
    from watcher.reading.read import read_jan, read_url

    if args.file is not None:
        return _read_file(args.file, args.target, args.store)
    if not args.target:
        raise UsageError("check needs a URL or JAN code (or --file PATH)")
    target = args.target.strip()
    async with build_client() as client:
        fetcher = Fetcher(client)
        if looks_like_jan(target):
            jan = parse_jan(target)
            stores = [args.store] if args.store else []
            reading = await read_jan(fetcher, jan, stores=stores, setup=_env_search_setup())
        else:
            _require_http_url(target)
            reading = await read_url(fetcher, target, store=args.store)
    return reading.observation


def _read_file(path: Path, url: str | None, store: str | None) -> Observation:
    from watcher.core.model import Page
    from watcher.net.decode import decode_body
    from watcher.reading.read import read_page

    try:
        body = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    text, encoding = decode_body(body, None)
    page_url = url or page_address(text) or f"file://{path.resolve()}"
    page = Page(url=page_url, text=text, status=200, encoding=encoding, bytes=len(body))
    return read_page(page, store=store)


def page_address(text: str) -> str | None:
    """The address a saved page gives for itself (canonical link or og:url), to pick its store."""
    from selectolax.lexbor import LexborHTMLParser

    head = text[: text.find("</head>") + 7] if "</head>" in text else text[:200_000]
    tree = LexborHTMLParser(head)
    for selector, attribute in (
        ('link[rel="canonical"]', "href"),
        ('meta[property="og:url"]', "content"),
    ):
        node = tree.css_first(selector)
        value = (node.attributes.get(attribute) or "").strip() if node else ""
        if value.lower().startswith(("http://", "https://")):
            return value
    return None


def _require_http_url(target: str) -> None:
    if not target.lower().startswith(("http://", "https://")):
        raise UsageError(f"not a URL or JAN code: {target!r} (URLs start with http:// or https://)")


def _env_search_setup() -> SearchSetup:
    from watcher.reading.read import SearchSetup

    credentials = {
        source: {key: os.environ.get(env, "") for key, env in keys.items()}
        for source, keys in SOURCE_ENV.items()
    }
    return SearchSetup(credentials=credentials)


def render_summary(obs: Observation) -> str:
    price = f"{obs.currency or ''} {obs.price:,}".strip() if obs.price is not None else "-"
    lines = [
        f"state:     {obs.state.value}",
        f"reason:    {obs.reason}",
        f"title:     {obs.title or '-'}",
        f"price:     {price}",
        f"seller:    {obs.seller or '-'}",
        f"condition: {obs.condition.value if obs.condition else '-'}",
    ]
    if obs.store:
        lines.insert(1, f"store:     {obs.store}")
    if obs.quantity is not None:
        lines.append(f"quantity:  {obs.quantity}")
    if obs.lottery_deadline is not None:
        lines.append(f"deadline:  {obs.lottery_deadline.isoformat()}")
    lines.extend(_offer_lines(obs))
    return "\n".join(lines)


def _offer_lines(obs: Observation) -> list[str]:
    if not obs.offers:
        return []
    lines = [f"offers:    {len(obs.offers)}"]
    for offer in obs.offers[:10]:
        price = f"{offer.price:,}" if offer.price is not None else "-"
        who = offer.shop or offer.seller or offer.variant or "-"
        lines.append(f"  {offer.state.value:<12} {price:>10}  {offer.store}  {who}  {offer.url}")
    return lines
