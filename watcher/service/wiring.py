"""Wiring: the watchlist's sections turned into the settings and parts the service runs.

Pure construction, no running: the composition root (`app`) calls these at start and on reload.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import httpx

from watcher.config.load import Config
from watcher.config.schema import DEFAULT_ALLOWED_HOSTS
from watcher.core.detector import DebounceSettings
from watcher.core.schedule import HotWindow
from watcher.net.netguard import URLGuard
from watcher.net.politeness import (
    Backoff,
    HostPolicy,
    PolicyBook,
    Politeness,
    registered_store_limits,
)
from watcher.net.shared_budget import HostBudget, SharedPoliteness
from watcher.reading.read import SearchSetup
from watcher.service.dispatch import DispatchSettings
from watcher.service.engine import JAN_SEARCH_HOST, EngineSettings
from watcher.storage.interface import SpendStore
from watcher.stores._base import HostLimits
from watcher.stores.sources import SEARCH_LIMITS
from watcher.subscriptions import SubscriptionRules
from watcher.unsubscribe import unsubscribe_secret_from_env

if TYPE_CHECKING:
    from notifiers.base import Notifier

RELOAD_POLL_SECONDS = 2.0
X_BUDGET = "x"  # the key of X's post budget among the database's spends


@dataclass
class Overrides:
    """Seams for tests and the demo: a transport, ready-made notifiers, a stop event."""

    transport: httpx.AsyncBaseTransport | None = None
    notifiers: dict[str, Notifier] | None = None
    stop: asyncio.Event | None = None
    install_signals: bool = True
    host_backoff: Backoff | None = None  # the demo's short spells want a short backoff
    error_backoff: timedelta | None = None
    recheck_delay: tuple[timedelta, timedelta] | None = None  # confirming re-checks, sooner
    idle_poll: float | None = None  # seconds between looks for due products
    reload_poll: float = RELOAD_POLL_SECONDS  # seconds between looks at the watchlist, the counter
    parse_workers: int | Literal["auto"] | None = None  # instead of the watchlist's setting
    extra_tasks: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=list
    )


@dataclass(frozen=True, slots=True)
class Surroundings:
    """What a channel's notifier is built with besides the watchlist: the environment (None:
    `os.environ`) and the database's spends (None: no database, budgets kept in memory)."""

    env: Mapping[str, str] | None = None
    spends: SpendStore | None = None


# One builder per channel: each imports its notifier when the channel is configured, so a
# watchlist without X never loads tweepy. None when the channel's section is missing.
NotifierBuilder = Callable[[Config, Surroundings], "Notifier | None"]


def _console(config: Config, around: Surroundings) -> Notifier | None:
    from notifiers.console import ConsoleNotifier

    return ConsoleNotifier(language=config.settings.language)


def _webhook(config: Config, around: Surroundings) -> Notifier | None:
    from notifiers.webhook import WebhookNotifier

    section = config.notifiers.webhook
    if section is None:
        return None
    return WebhookNotifier(
        url=section.url,
        headers={k: v.reveal() for k, v in section.headers.items()},
        timeout=section.timeout.total_seconds(),
    )


def _telegram(config: Config, around: Surroundings) -> Notifier | None:
    from notifiers.telegram import TelegramNotifier

    section = config.notifiers.telegram
    if section is None:
        return None
    return TelegramNotifier(
        token=section.token.reveal(),
        api_base_url=section.api_base_url,
        language=config.settings.language,
    )


def _email(config: Config, around: Surroundings) -> Notifier | None:
    from notifiers.email import EmailNotifier

    section, server = config.notifiers.email, config.settings.server
    if section is None:
        return None
    return EmailNotifier(
        host=section.host,
        port=section.port,
        tls=section.tls,
        username=section.username,
        password=section.password.reveal() if section.password else None,
        sender=section.sender,
        language=config.settings.language,
        public_url=section.public_url or (server.public_url if server else None),
        # Links only when the server that answers them runs (settings.server).
        unsubscribe_secret=unsubscribe_secret_from_env(around.env) if server else None,
    )


def _x(config: Config, around: Surroundings) -> Notifier | None:
    from notifiers.x import XNotifier

    section, posting = config.notifiers.x, config.settings.x
    if section is None:
        return None
    budget = None
    if around.spends is not None:
        from watcher.service.post_budget import StoredPostBudget

        budget = StoredPostBudget(around.spends, X_BUDGET, posting.daily_budget)
    return XNotifier(
        consumer_key=section.consumer_key.reveal(),
        consumer_secret=section.consumer_secret.reveal(),
        access_token=section.access_token.reveal(),
        access_token_secret=section.access_token_secret.reveal(),
        language=config.settings.language,
        include_url=posting.include_url,
        daily_budget=posting.daily_budget,
        budget=budget,
        max_age=posting.max_age,
    )


def _line(config: Config, around: Surroundings) -> Notifier | None:
    from notifiers.line import LineNotifier

    section = config.notifiers.line
    if section is None:
        return None
    return LineNotifier(
        channel_access_token=section.channel_access_token.reveal(),
        api_base_url=section.api_base_url,
        quota_policy=section.quota_policy,
        language=config.settings.language,
    )


def _discord(config: Config, around: Surroundings) -> Notifier | None:
    from notifiers.discord import DiscordNotifier

    section = config.notifiers.discord
    if section is None:
        return None
    return DiscordNotifier(
        webhook_url=section.webhook_url.reveal(), language=config.settings.language
    )


NOTIFIER_BUILDERS: dict[str, NotifierBuilder] = {
    "console": _console,
    "webhook": _webhook,
    "telegram": _telegram,
    "email": _email,
    "x": _x,
    "line": _line,
    "discord": _discord,
}


def build_notifiers(
    config: Config,
    *,
    only: Collection[str] | None = None,
    env: Mapping[str, str] | None = None,
    spends: SpendStore | None = None,
) -> dict[str, Notifier]:
    """One notifier per configured channel (or per configured channel in `only`).

    Built from the watchlist's `notifiers` section. The secret of one-click unsubscribe links
    comes from the environment (`RESTOCK_UNSUBSCRIBE_SECRET`), like every other secret; `env`
    replaces `os.environ` for tests. X's post budget is kept in `spends` (the database) when
    given, in memory otherwise.
    """
    wanted = set(config.notifiers.channels if only is None else only)
    around = Surroundings(env, spends)
    built: dict[str, Notifier] = {}
    for name, build in NOTIFIER_BUILDERS.items():
        if name in wanted and (notifier := build(config, around)) is not None:
            built[name] = notifier
    return built


def engine_settings(config: Config) -> EngineSettings:
    s = config.settings
    return EngineSettings(
        debounce=DebounceSettings(
            confirm=s.debounce.confirm, rearm=s.debounce.rearm, cooldown=s.debounce.cooldown
        ),
        default_interval=s.default_interval,
        hot_windows=tuple(
            HotWindow(days=w.days, start=w.start, end=w.end, interval=w.interval)
            for w in s.hot_windows
        ),
        timezone=s.timezone,
        adaptive=s.adaptive,
        concurrency=s.global_concurrency,
        search=search_setup(config),
    )


def search_setup(config: Config) -> SearchSetup:
    credentials: dict[str, dict[str, str]] = {}
    for name in ("rakuten", "yahoo_shopping"):
        given = config.sources.credentials(name)
        if given is not None:
            credentials[name] = given
    return SearchSetup(credentials=credentials)


def dispatch_settings(config: Config) -> DispatchSettings:
    return DispatchSettings(
        max_attempts=config.settings.dispatch.max_attempts, timezone=config.settings.timezone
    )


def host_policies(config: Config) -> Callable[[str], HostPolicy]:
    """Each host's limits under the watchlist's `politeness` (a fresh cache per watchlist)."""
    p = config.settings.politeness
    book = PolicyBook(
        default=p.default.model_dump(),
        hosts={host: o.model_dump(exclude_none=True) for host, o in p.hosts.items()},
        store_limits=store_limits,
    )
    return functools.lru_cache(maxsize=4096)(book.policy)  # a policy is asked for every request


def store_limits(host: str) -> HostLimits | None:
    """The gentle defaults of the store that serves `host`, if a store does.

    JAN searches share one slot, paced for the strictest search API (see stores/sources.py).
    """
    if host == JAN_SEARCH_HOST:
        return SEARCH_LIMITS
    return registered_store_limits(host)


def politeness_for(
    config: Config,
    backoff: Backoff | None = None,
    *,
    shared: HostBudget | None = None,
    owner: str = "",
) -> Politeness:
    """Per-host politeness; with `shared` (several workers), its limits hold across workers."""
    options: dict[str, Any] = {
        "global_concurrency": config.settings.global_concurrency,
        "backoff": backoff or Backoff(),
    }
    if shared is not None:
        return SharedPoliteness(host_policies(config), budget=shared, owner=owner, **options)
    return Politeness(host_policies(config), **options)


def tuned(settings: EngineSettings, overrides: Overrides) -> EngineSettings:
    """The engine settings with the overrides' shorter timings (tests and the demo)."""
    if overrides.error_backoff is not None:
        settings = replace(settings, error_backoff_base=overrides.error_backoff)
    if overrides.recheck_delay is not None:
        settings = replace(settings, recheck_delay=overrides.recheck_delay)
    if overrides.idle_poll is not None:
        settings = replace(settings, idle_poll=overrides.idle_poll)
    return settings


def chat_hosts(config: Config) -> tuple[str, ...]:
    """The store hosts chat users (Telegram and LINE alike) may watch."""
    telegram = config.notifiers.telegram
    return tuple(telegram.allowed_hosts if telegram is not None else DEFAULT_ALLOWED_HOSTS)


def chat_guard(config: Config) -> URLGuard:
    """The guard of chat users' URLs: used whether or not the bot runs now, because products
    that chat users subscribed to stay in the database when the bot is switched off."""
    return URLGuard(allowed_hosts=chat_hosts(config))


def subscription_rules(config: Config) -> SubscriptionRules:
    """What chat users may subscribe to: the Telegram section's quota; JAN codes only when a
    search source can look them up."""
    telegram = config.notifiers.telegram
    quota = telegram.max_watches_per_user if telegram is not None else 0
    return SubscriptionRules(max_per_chat=quota, jan_search=bool(search_setup(config).credentials))
