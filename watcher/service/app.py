"""The composition root: builds every part from a watchlist and runs them in one event loop.

`restock run` and `restock demo` both come through here. SIGINT/SIGTERM set one stop event: the
engine stops claiming work and finishes (or releases) what is in flight, the dispatcher finishes
its current sends, leases are given back, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from telegram.error import InvalidToken

from notifiers.base import Notifier
from notifiers.registry import NOTIFIERS
from watcher.bot.telegram import BotSettings, ChatBot
from watcher.config.load import Config, load_config
from watcher.config.schema import DEFAULT_ALLOWED_HOSTS, Server, Settings
from watcher.core.detector import DebounceSettings
from watcher.core.schedule import HotWindow, stable_phase
from watcher.errors import ConfigError
from watcher.net.fetch import Fetcher, build_client
from watcher.net.netguard import URLGuard
from watcher.net.politeness import Backoff, HostPolicy, PolicyBook, Politeness
from watcher.net.shared_budget import HostBudget, SharedPoliteness
from watcher.reading.pool import page_reader
from watcher.reading.read import SearchSetup
from watcher.service.dispatch import Dispatcher, DispatchSettings
from watcher.service.engine import Engine, EngineSettings
from watcher.service.metrics import Metrics
from watcher.service.workers import (
    SINGLE_SENDER_CHANNELS,
    TELEGRAM_BOT_DUTY,
    Duty,
    Membership,
    channel_duty,
)
from watcher.storage.coordination import Coordinated
from watcher.storage.interface import Repository
from watcher.stores._base import HostLimits
from watcher.stores.registry import ADAPTERS
from watcher.web.server import StatusServer, unsubscribe_secret_from_env

log = logging.getLogger("restock.app")

RELOAD_POLL_SECONDS = 2.0
STOP_GRACE_SECONDS = 8.0
BOT_RETRY_FIRST = 5.0
BOT_RETRY_CAP = 300.0


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
    reload_poll: float = RELOAD_POLL_SECONDS  # seconds between looks at the watchlist file
    parse_workers: int | Literal["auto"] | None = None  # instead of the watchlist's setting
    extra_tasks: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=list
    )


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_notifiers(
    config: Config,
    *,
    only: Collection[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Notifier]:
    """One notifier per configured channel (or per configured channel in `only`).

    Built from the watchlist's `notifiers` section. The secret of one-click unsubscribe links
    comes from the environment (`RESTOCK_UNSUBSCRIBE_SECRET`), like every other secret; `env`
    replaces `os.environ` for tests.
    """
    n = config.notifiers
    language = config.settings.language
    wanted = set(n.channels if only is None else only)
    built: dict[str, Notifier] = {}
    if "console" in wanted:
        built["console"] = NOTIFIERS["console"](language=language)  # type: ignore[call-arg]
    if "webhook" in wanted and n.webhook is not None:
        built["webhook"] = NOTIFIERS["webhook"](  # type: ignore[call-arg]
            url=n.webhook.url,
            headers={k: v.reveal() for k, v in n.webhook.headers.items()},
            timeout=n.webhook.timeout.total_seconds(),
        )
    if "telegram" in wanted and n.telegram is not None:
        built["telegram"] = NOTIFIERS["telegram"](  # type: ignore[call-arg]
            token=n.telegram.token.reveal(), api_base_url=n.telegram.api_base_url, language=language
        )
    if "email" in wanted and n.email is not None:
        server = config.settings.server
        built["email"] = NOTIFIERS["email"](  # type: ignore[call-arg]
            host=n.email.host,
            port=n.email.port,
            tls=n.email.tls,
            username=n.email.username,
            password=n.email.password.reveal() if n.email.password else None,
            sender=n.email.sender,
            language=language,
            public_url=n.email.public_url or (server.public_url if server else None),
            # Links only when the server that answers them runs (settings.server).
            unsubscribe_secret=unsubscribe_secret_from_env(env) if server else None,
        )
    if "x" in wanted and n.x is not None:
        posting = config.settings.x
        built["x"] = NOTIFIERS["x"](  # type: ignore[call-arg]
            consumer_key=n.x.consumer_key.reveal(),
            consumer_secret=n.x.consumer_secret.reveal(),
            access_token=n.x.access_token.reveal(),
            access_token_secret=n.x.access_token_secret.reveal(),
            language=language,
            include_url=posting.include_url,
            daily_budget=posting.daily_budget,
            max_age=posting.max_age,
        )
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


def store_limits(host: str) -> HostLimits | None:
    """The gentle defaults of the store that serves `host`, if a store does."""
    for adapter in ADAPTERS.values():
        if adapter.serves(host):
            return adapter.limits
    return None


def tuned(settings: EngineSettings, overrides: Overrides) -> EngineSettings:
    """The engine settings with the overrides' shorter timings (tests and the demo)."""
    if overrides.error_backoff is not None:
        settings = replace(settings, error_backoff_base=overrides.error_backoff)
    if overrides.recheck_delay is not None:
        settings = replace(settings, recheck_delay=overrides.recheck_delay)
    if overrides.idle_poll is not None:
        settings = replace(settings, idle_poll=overrides.idle_poll)
    return settings


def fast_transport(overrides: Overrides) -> httpx.AsyncBaseTransport | None:
    """The transport for trusted URLs: aiohttp's when it is installed, else httpx's default.

    httpx's own pool loses throughput as concurrency grows; the aiohttp transport keeps it.
    """
    if overrides.transport is not None:
        return overrides.transport
    try:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None

    def session() -> aiohttp.ClientSession:
        # No cookie jar: a shop's session cookie must not follow later checks (the fetcher
        # carries cookies within one redirect chain itself).
        connector = aiohttp.TCPConnector(
            limit=100, keepalive_timeout=5.0, ssl=httpx.create_ssl_context()
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )

    transport: httpx.AsyncBaseTransport = AiohttpTransport(trust_env=False, client=session)
    return transport


def chat_guard(config: Config) -> URLGuard:
    """The guard of chat users' URLs: used whether or not the bot runs now, because products
    that chat users subscribed to stay in the database when the bot is switched off."""
    telegram = config.notifiers.telegram
    hosts = telegram.allowed_hosts if telegram is not None else DEFAULT_ALLOWED_HOSTS
    return URLGuard(allowed_hosts=hosts)


class App:
    """Everything `restock run` runs, wired together."""

    def __init__(self, config: Config, repository: Repository, overrides: Overrides) -> None:
        self.config = config
        self.repository = repository
        self.overrides = overrides
        self.owner = worker_id()
        self.metrics = Metrics()
        self.notifiers = overrides.notifiers or build_notifiers(config)
        # With several workers on one database, some channels send from one worker at a time.
        self.coordinated = isinstance(repository, Coordinated)
        self.sending_alone: set[str] = set()
        self.dispatcher = Dispatcher(
            repository,
            self._dispatching(),
            owner=self.owner,
            settings=dispatch_settings(config),
            metrics=self.metrics,
        )
        self.politeness = politeness_for(
            config,
            overrides.host_backoff,
            shared=repository if isinstance(repository, Coordinated) else None,
            owner=self.owner,
        )
        settings = engine_settings(config)
        settings = tuned(settings, overrides)
        # One guard for the bot's checks and the engine's fetches of chat users' products.
        self.guard = chat_guard(config)
        self.client = build_client(transport=fast_transport(overrides))
        # Tests hand in one transport for everything; otherwise chat URLs get the guarded one.
        self.guarded_client = self.client if overrides.transport is not None else build_client()
        self.engine = Engine(
            repository,
            self._fetcher(config),
            self.politeness,
            owner=self.owner,
            settings=settings,
            chat_guard=self.guard,
            # New deliveries go to the dispatcher claimed and in memory; the claim follows its
            # channels through reloads.
            on_deliveries=self.dispatcher.hand,
            claim_for=self.dispatcher.claim_request,
            metrics=self.metrics,
            reader=page_reader(
                config.settings.parse_workers
                if overrides.parse_workers is None
                else overrides.parse_workers
            ),
        )
        self.bot = self._chat_bot(config)
        self.membership = self._membership(repository)
        self._bot_run: tuple[asyncio.Event, asyncio.Task[None]] | None = None

    def _dispatching(self) -> dict[str, Notifier]:
        """The channels this worker's dispatcher sends on now (single-sender ones while held)."""
        if not self.coordinated:
            return dict(self.notifiers)
        return {
            name: notifier
            for name, notifier in self.notifiers.items()
            if name not in SINGLE_SENDER_CHANNELS or name in self.sending_alone
        }

    def _membership(self, repository: Repository) -> Membership | None:
        if not isinstance(repository, Coordinated):
            return None
        duties = [self._sender_duty(channel) for channel in sorted(SINGLE_SENDER_CHANNELS)]
        if self.bot is not None:
            duties.append(Duty(TELEGRAM_BOT_DUTY, self._start_bot, self._stop_bot))
        return Membership(
            repository.coordinator(self.owner),
            duties,
            self.dispatcher.wake,
            reap=repository.release_dead_workers,
        )

    def _sender_duty(self, channel: str) -> Duty:
        async def gained() -> None:
            self.sending_alone.add(channel)
            self.dispatcher.replace_notifiers(self._dispatching())

        async def lost() -> None:
            self.sending_alone.discard(channel)
            self.dispatcher.replace_notifiers(self._dispatching())

        return Duty(channel_duty(channel), gained, lost)

    async def _start_bot(self) -> None:
        if self.bot is None or self._bot_run is not None:
            return
        stop = asyncio.Event()
        self._bot_run = (stop, asyncio.create_task(self._run_bot(self.bot, stop)))

    async def _stop_bot(self) -> None:
        if self._bot_run is None:
            return
        (stop, task), self._bot_run = self._bot_run, None
        stop.set()
        await asyncio.gather(task, return_exceptions=True)

    def _fetcher(self, config: Config) -> Fetcher:
        # It only borrows the clients' transports: a new one per User-Agent costs nothing.
        return Fetcher(
            self.client, guarded_client=self.guarded_client, user_agent=config.settings.user_agent
        )

    def _chat_bot(self, config: Config) -> ChatBot | None:
        telegram = config.notifiers.telegram
        if telegram is None or not telegram.bot:
            return None
        notifier = self.notifiers.get("telegram")
        return ChatBot(
            self.repository,
            BotSettings(
                token=telegram.token,
                api_base_url=telegram.api_base_url,
                admins=frozenset(telegram.admins),
                allowed_hosts=tuple(telegram.allowed_hosts),
                max_watches_per_user=telegram.max_watches_per_user,
                jan_search=bool(search_setup(config).credentials),
            ),
            guard=self.guard,
            # Replies and alerts share one pacer, so together they stay under Telegram's limits.
            pacer=getattr(notifier, "pacer", None),
        )

    async def sync_watches(self, config: Config) -> None:
        now = datetime.now(UTC)
        default = config.settings.default_interval

        def first_due(target: str) -> datetime:
            # A stable phase spreads first checks over the interval, so a restart does not
            # fire every check at once; capped so a new watch is read soon.
            return now + min(stable_phase(target, default), timedelta(seconds=5))

        await self.repository.sync_yaml_watches(config.watches, now, first_due)

    async def run(self, stop: asyncio.Event) -> None:
        for notifier in self.notifiers.values():
            await notifier.start()
        server = await self._start_server()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.engine.run(stop, grace=STOP_GRACE_SECONDS))
                group.create_task(self.dispatcher.run(stop))
                group.create_task(self._watch_config(stop))
                if self.membership is not None:
                    # The bot and single-sender channels run while this worker holds them.
                    group.create_task(self.membership.run(stop))
                elif self.bot is not None:
                    group.create_task(self._run_bot(self.bot, stop))
                for extra in self.overrides.extra_tasks:
                    group.create_task(extra(stop))
        finally:
            if server is not None:
                await server.stop()
            await self.close()

    async def close(self) -> None:
        for notifier in self.notifiers.values():
            with contextlib.suppress(Exception):
                await notifier.aclose()
        await self.engine.reader.aclose()
        await self.client.aclose()
        if self.guarded_client is not self.client:
            await self.guarded_client.aclose()

    async def _run_bot(self, bot: ChatBot, stop: asyncio.Event) -> None:
        """Run the chat bot beside the engine; Telegram being unreachable must not stop watching."""
        delay = BOT_RETRY_FIRST
        while not stop.is_set():
            try:
                await bot.start()
                break
            except InvalidToken:
                log.error("chat bot not started: Telegram rejected the bot token")
                return
            except Exception as exc:
                log.warning("chat bot not started (%s); trying again in %.0f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, BOT_RETRY_CAP)
        if not stop.is_set() or bot.application.running:
            await stop.wait()
            with contextlib.suppress(Exception):
                await bot.stop()

    async def _start_server(self) -> StatusServer | None:
        listen = self.config.settings.server
        if listen is None:
            return None
        server = StatusServer(
            self.repository,
            self.metrics,
            self.politeness,
            unsubscribe_secret=unsubscribe_secret_from_env(),
        )
        await server.start(listen.listen)
        return server

    async def _watch_config(self, stop: asyncio.Event) -> None:
        """Reload the watchlist when its file changes; a broken file keeps the old config."""
        path = self.config.source_path
        if path is None:
            return
        seen = _mtime(path)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.overrides.reload_poll)
            current = _mtime(path)
            if current == seen or stop.is_set():
                continue
            seen = current
            await self._reload(path)

    async def _reload(self, path: Path) -> None:
        try:
            # Off the event loop: a pathological file must not stall checks and sends.
            config = await asyncio.to_thread(load_config, path)
        except (ConfigError, OSError) as exc:
            log.error("watchlist %s not reloaded, keeping the running one:\n%s", path, exc)
            return
        if config.fingerprint == self.config.fingerprint:
            return
        config = self._hold_for_restart(config)
        # Channels first: deliveries the new watches cause need a notifier to claim them.
        await self._reload_channels(config)
        self._reload_settings(config)
        await self.sync_watches(config)
        self.config = config
        log.info("watchlist %s reloaded: %d watches", path, len(config.watches))

    def _hold_for_restart(self, config: Config) -> Config:
        """The new watchlist with the running values of settings only a restart can change."""
        held, settings = held_for_restart(self.config.settings, config.settings)
        if not held:
            return config
        names = ", ".join(f"settings.{name}" for name in held)
        them = "it" if len(held) == 1 else "them"
        log.error("%s changed: restart `restock run` to apply %s", names, them)
        return replace(config, settings=settings)

    def _reload_settings(self, config: Config) -> None:
        """Apply the settings a reload changes to the running parts; their state is kept."""
        changed = changed_settings(self.config, config)
        if not changed:
            return
        if {"politeness", "global_concurrency"} & changed:
            self.politeness.reconfigure(
                host_policies(config), global_concurrency=config.settings.global_concurrency
            )
        if "user_agent" in changed:
            self.engine.fetcher = self._fetcher(config)
        # Built as at the start, with the overrides' timings (tests and the demo) kept.
        self.engine.apply_settings(tuned(engine_settings(config), self.overrides))
        # The dispatcher's other settings are not the watchlist's: they stay as they were built.
        dispatch = config.settings.dispatch
        self.dispatcher.apply_settings(
            replace(
                self.dispatcher.settings,
                max_attempts=dispatch.max_attempts,
                timezone=config.settings.timezone,
            )
        )
        if self.bot is not None and "sources" in changed:
            jan_search = bool(search_setup(config).credentials)
            self.bot.settings = replace(self.bot.settings, jan_search=jan_search)
        log.info("settings reloaded: %s", ", ".join(sorted(changed)))

    async def _reload_channels(self, config: Config) -> None:
        """Build the channels a reload adds or changes; Telegram changes need a restart."""
        if self.overrides.notifiers is not None:
            return  # notifiers handed in by a test or the demo stay as they are
        changed = changed_channels(self.config, config)
        if "telegram" in changed and "telegram" in self.notifiers:
            log.error("notifiers.telegram changed: restart `restock run` to apply it")
            changed.discard("telegram")
        if not changed:
            return
        fresh = build_notifiers(config, only=changed)
        for notifier in fresh.values():
            await notifier.start()
        kept = {k: v for k, v in self.notifiers.items() if k not in changed}
        self.notifiers = {**kept, **fresh}
        for old in self.dispatcher.replace_notifiers(self._dispatching()):
            with contextlib.suppress(Exception):
                await old.aclose()
        log.info("channels reloaded: %s", ", ".join(sorted(changed)))


def changed_channels(old: Config, new: Config) -> set[str]:
    """Channels a reload adds, removes or configures differently (secrets compare by value)."""
    names = set(old.channels) | set(new.channels)
    shared = ("language", "x", "server")
    if any(getattr(old.settings, k) != getattr(new.settings, k) for k in shared):
        return names
    return {n for n in names if getattr(old.notifiers, n) != getattr(new.notifiers, n)}


# Settings a reload applies to the running engine, politeness and dispatcher.
LIVE_SETTINGS = (
    "timezone",
    "default_interval",
    "user_agent",
    "debounce",
    "politeness",
    "adaptive",
    "hot_windows",
    "global_concurrency",
    "dispatch",
)
# Settings of the channels: a reload rebuilds the channels they shape (`changed_channels`).
CHANNEL_SETTINGS = ("language", "x")
# Settings that only a restart applies (`server.public_url` alone is a channel setting).
RESTART_SETTINGS = ("database", "parse_workers", "server")


def changed_settings(old: Config, new: Config) -> set[str]:
    """The live settings a reload changes; `sources` when the JAN search credentials change."""
    changed = {k for k in LIVE_SETTINGS if getattr(old.settings, k) != getattr(new.settings, k)}
    if search_setup(old) != search_setup(new):
        changed.add("sources")
    return changed


def held_for_restart(running: Settings, new: Settings) -> tuple[list[str], Settings]:
    """The restart-only settings `new` changes, and `new` with their running values kept."""
    kept: dict[str, object] = {}
    for name in ("database", "parse_workers"):
        if getattr(running, name) != getattr(new, name):
            kept[name] = getattr(running, name)
    server = running_server(running.server, new.server)
    if server != new.server:
        kept["server"] = server
    return sorted(kept), new.model_copy(update=kept)


def running_server(running: Server | None, new: Server | None) -> Server | None:
    """The `server` section that holds until a restart: the endpoint starts, stops and moves
    only then; a new `public_url` (a channel setting: e-mail links) applies at once."""
    if running is None or new is None:
        return running
    return new.model_copy(update={"listen": running.listen})


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


async def run_config(config: Config, overrides: Overrides | None = None) -> int:
    """Run until SIGINT/SIGTERM (or the override's stop event). Returns the exit code."""
    from watcher.storage import open_repository

    overrides = overrides or Overrides()
    stop = overrides.stop or asyncio.Event()
    if overrides.install_signals:
        _install_signals(stop)
    repository = await open_repository(config.settings.database)
    try:
        app = App(config, repository, overrides)
        await app.sync_watches(config)
        await release_dead_local_leases(repository, app.owner, datetime.now(UTC))
        log.info("running %d watches (worker %s)", len(config.watches), app.owner)
        await app.run(stop)
    finally:
        await repository.close()
    return 0


async def release_dead_local_leases(repository: Repository, me: str, now: datetime) -> list[str]:
    """Give back the leases of earlier processes on this machine that died (SIGKILL, OOM).

    Their products and deliveries then resume at once instead of after the leases expire.
    Workers on other machines are left alone: their leases expire by themselves.
    """
    released = []
    for owner in await repository.lease_owners(now):
        if owner != me and is_dead_local_worker(owner):
            await repository.release_leases(owner)
            released.append(owner)
            log.warning("released the leases of worker %s, which is no longer running", owner)
    return released


def is_dead_local_worker(owner: str, host: str | None = None, pid: int | None = None) -> bool:
    """True for a `worker_id` of this machine whose process is gone (or whose pid is now ours)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    if parts[0] != (host or socket.gethostname()):
        return False
    their_pid = int(parts[1])
    if their_pid == (pid or os.getpid()):
        return True  # an earlier process that had our pid (a container restarted)
    try:
        os.kill(their_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
