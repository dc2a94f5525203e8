"""Builds the web UI from what `restock run` already has: database, clients, guard, channels."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from notifiers.base import Notifier
from watcher.config.load import Config
from watcher.core.keys import notify_recipients
from watcher.core.model import Observation
from watcher.errors import RestockError
from watcher.net.fetch import Fetcher
from watcher.net.netguard import URLGuard
from watcher.net.politeness import Politeness
from watcher.reading.read import SearchSetup, read_jan, read_url
from watcher.storage.interface import Repository
from watcher.storage.views import WebViewsSource
from watcher.subscriptions import Subscriptions
from watcher.web.app import WebApp, WebSetup, utc_now
from watcher.web.budgets import channel_budgets
from watcher.web.channels import ChannelTester, fixed_or_listed
from watcher.web.forms import AddForm, web_channels
from watcher.web.security import WebAccess, is_loopback, web_token_from_env
from watcher.web.server import split_listen


class WebUnavailable(RestockError):
    """The web UI cannot run on this setup (its database offers no web views)."""


def build_web_app(
    config: Config,
    repository: Repository,
    *,
    client: httpx.AsyncClient,
    guarded_client: httpx.AsyncClient,
    guard: URLGuard,
    politeness: Politeness,
    notifiers: Mapping[str, Notifier],
    search: SearchSetup,
    subscriptions: Subscriptions,
    env: Mapping[str, str] | None = None,
) -> WebApp:
    """The UI for `settings.server`; when exposed, added targets pass the chat users' rules
    (`subscriptions`, whose guard is `guard`)."""
    server = config.settings.server
    assert server is not None and server.web
    host, _ = split_listen(server.listen)
    token = web_token_from_env(env)
    access = WebAccess.for_listen(host, token)
    if not isinstance(repository, WebViewsSource):
        raise WebUnavailable("the web UI needs a database that offers its views")
    # Off loopback, or behind a proxy (what a token is for), whoever adds a URL may not be the
    # operator: added URLs then pass the chat users' rules.
    untrusted = not is_loopback(host) or token is not None
    fetcher = Fetcher(client, guarded_client=guarded_client, user_agent=config.settings.user_agent)

    async def check(form: AddForm) -> Observation:
        if form.url is None:
            jan = form.target.removeprefix("jan:")
            return (await read_jan(fetcher, jan, setup=search)).observation
        return (await read_url(fetcher, form.url, guard=guard if untrusted else None)).observation

    setup = WebSetup(
        language=config.settings.language,
        zone=config.settings.zone,
        channels=web_channels(list(notifiers)),
        hosts=politeness.snapshot,
        budgets=lambda: channel_budgets(notifiers),
        rules=subscriptions if untrusted else None,
        secure_cookies=str(server.public_url or "").startswith("https://"),
        max_added_per_day=server.web_adds_per_day,
        max_web_watches=server.web_watches,
        tester=ChannelTester(notifiers, fixed_or_listed(listed_recipients(config)), utc_now),
    )
    return WebApp(repository.web_views(), repository, access, setup, check)


def listed_recipients(config: Config) -> Callable[[str], list[str]]:
    """A channel's recipients as the watchlist's watches name them."""

    def listed(channel: str) -> list[str]:
        return [r for w in config.watches for c, r in notify_recipients(w) if c == channel]

    return listed
