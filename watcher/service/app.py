"""The composition root: builds every part from a watchlist and runs them in one event loop.

`restock run` and `restock demo` both come through here. SIGINT/SIGTERM set one stop event: the
engine stops claiming work and finishes (or releases) what is in flight, the dispatcher finishes
its current sends, leases are given back, and the process exits 0.

A reload reaches every worker on the database: the worker whose watchlist changed (or that got
SIGHUP) bumps the database's reload counter, and every worker that sees it move reads its own
watchlist again (at once where the database tells it, NOTIFY; else at its next look).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from telegram.error import InvalidToken

from notifiers.base import Notifier
from notifiers.line import LineNotifier
from notifiers.line_api import LineApi
from watcher import logredact
from watcher.bot.telegram import BotSettings, ChatBot
from watcher.bot.texts import stores_text
from watcher.clock import SystemClock
from watcher.config.load import Config, load_config
from watcher.config.schema import Server
from watcher.core.model import Origin
from watcher.core.schedule import stable_phase
from watcher.errors import ConfigError, StorageError
from watcher.line.bot import LineBot, LineBotSettings
from watcher.line.webhook import LineWebhook
from watcher.net.fetch import Fetcher
from watcher.net.transport import build_client, fast_transport
from watcher.reading.pool import page_reader
from watcher.service.dispatch import Dispatcher
from watcher.service.engine import Engine
from watcher.service.leases import release_dead_local_leases, worker_id
from watcher.service.metrics import Metrics
from watcher.service.reload import changed_channels, changed_settings, held_for_restart, mtime
from watcher.service.wiring import (
    Overrides,
    build_notifiers,
    chat_guard,
    chat_hosts,
    dispatch_settings,
    engine_settings,
    host_policies,
    politeness_for,
    search_setup,
    subscription_rules,
    tuned,
)
from watcher.service.workers import (
    SINGLE_SENDER_CHANNELS,
    TELEGRAM_BOT_DUTY,
    Duty,
    Membership,
    channel_duty,
)
from watcher.storage.coordination import Coordinated
from watcher.storage.interface import LineChatStore, Repository
from watcher.subscriptions import Subscriptions
from watcher.unsubscribe import unsubscribe_secret_from_env
from watcher.web.server import StatusServer, WebHandler

log = logging.getLogger("restock.app")

STOP_GRACE_SECONDS = 8.0
BOT_RETRY_FIRST = 5.0
BOT_RETRY_CAP = 300.0


class App:
    """Everything `restock run` runs, wired together."""

    def __init__(self, config: Config, repository: Repository, overrides: Overrides) -> None:
        self.config = config
        self.repository = repository
        self.overrides = overrides
        self.owner = worker_id()
        # Before anything is built: a library may log a URL holding a token as it starts.
        logredact.install()
        logredact.MASKED.set(self.owner, logredact.config_secrets(config))
        self.metrics = Metrics()
        # Wakes the watchlist's watch early: a reload asked for here (SIGHUP) or on another worker.
        self._reload_wake = asyncio.Event()
        self._reload_asked_here = False
        self.reloads_seen: int | None = None  # the reload counter as this worker last read it
        self.notifiers = overrides.notifiers or build_notifiers(config, spends=repository)
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
        self.subscriptions = Subscriptions(
            repository,
            self.guard,
            subscription_rules(config),
            refused_url_hint=stores_text(chat_hosts(config)),
        )
        self.client = build_client(transport=overrides.transport or fast_transport())
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
                else overrides.parse_workers,
                # Workers fetch trusted pages over their own connections; a transport handed in
                # (tests) lives in this process only, so then the loop fetches everything.
                fetching=overrides.transport is None,
            ),
        )
        self.bot = self._chat_bot(config)
        self._count_quotas(self.notifiers)
        self.line_api: LineApi | None = None
        self.line_webhook = self._line_webhook(config)
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
            on_reload=self._reload_wake.set,
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

    def _count_quotas(self, notifiers: Mapping[str, Notifier]) -> None:
        """Channels with a monthly quota report its figures to /metrics."""
        line = notifiers.get("line")
        if isinstance(line, LineNotifier):
            line.on_quota = lambda q: self.metrics.set_message_quota("line", q.limit, q.used)

    def _line_webhook(self, config: Config) -> LineWebhook | None:
        """The LINE bot behind `/line/webhook`, when `notifiers.line.bot` asks for it."""
        line = config.notifiers.line
        if line is None or not line.bot or not line.channel_secret:
            return None
        if config.settings.server is None:
            log.error("the LINE bot needs settings.server (LINE posts to /line/webhook there)")
            return None
        if not isinstance(self.repository, LineChatStore):
            log.error("the LINE bot needs a database that keeps LINE chats")
            return None
        self.line_api = LineApi(
            token=line.channel_access_token.reveal(),
            clock=SystemClock(),
            base_url=line.api_base_url,
        )
        bot = LineBot(
            self.repository,
            self.line_api,
            LineBotSettings(
                allowed_hosts=chat_hosts(config),
                max_watches_per_user=line.max_watches_per_user,
            ),
            subscriptions=self.subscriptions,
        )
        return LineWebhook(line.channel_secret, bot.handle)

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
                zone=config.settings.zone,
            ),
            guard=self.guard,
            subscriptions=self.subscriptions,
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
        try:
            server = await self._start_server()
        except BaseException:  # e.g. the web UI refused to listen off loopback without a token
            await self.close()
            raise
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
        if self.line_api is not None:
            await self.line_api.aclose()
        await self.client.aclose()
        if self.guarded_client is not self.client:
            await self.guarded_client.aclose()
        logredact.MASKED.forget(self.owner)

    async def _run_bot(self, bot: ChatBot, stop: asyncio.Event) -> None:
        await keep_bot_running(bot, stop)

    async def _start_server(self) -> StatusServer | None:
        listen = self.config.settings.server
        if listen is None:
            return None
        server = StatusServer(
            self.repository,
            self.metrics,
            self.politeness,
            unsubscribe_secret=unsubscribe_secret_from_env(),
            line_webhook=self.line_webhook,
            web=self._web_ui(listen),
        )
        await server.start(listen.listen)
        return server

    def _web_ui(self, listen: Server) -> WebHandler | None:
        if not listen.web:
            return None
        from watcher.web.wiring import build_web_app

        web = build_web_app(
            self.config,
            self.repository,
            client=self.client,
            guarded_client=self.guarded_client,
            guard=self.guard,
            politeness=self.politeness,
            notifiers=self.notifiers,
            search=search_setup(self.config),
            subscriptions=self.subscriptions,
        )
        if web.setup.guard is not None:  # exposed: its watches fetch like chat users' ones
            self.engine.guarded_origins.add(Origin.WEB)
        return web.handle

    def ask_reload(self) -> None:
        """Read the watchlist again now, and have every other worker on the database do so."""
        self._reload_asked_here = True
        self._reload_wake.set()

    async def _watch_config(self, stop: asyncio.Event) -> None:
        """Reload the watchlist when its file changes, when asked (`ask_reload`), or when another
        worker reloaded (the reload counter moved); a broken file keeps the old config."""
        path = self.config.source_path
        if path is None:
            return
        seen = mtime(path)
        self.reloads_seen = await self._reload_count()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._next_wake(stop), self.overrides.reload_poll)
            if stop.is_set():
                break
            self._reload_wake.clear()
            current = mtime(path)
            here = current != seen or self._reload_asked_here
            seen, self._reload_asked_here = current, False
            if here:
                # Counted before reloading: the others start reading theirs meanwhile.
                self.reloads_seen = await self._bump_reloads() or self.reloads_seen
                await self._reload(path)
                continue
            count = await self._reload_count()
            if count is not None and count != self.reloads_seen:
                self.reloads_seen = count
                log.info("another worker reloaded: reading watchlist %s again", path)
                await self._reload(path)

    async def _next_wake(self, stop: asyncio.Event) -> None:
        """Until `stop` or a reload wake-up, whichever comes first."""
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, self._reload_wake)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _reload_count(self) -> int | None:
        try:
            return await self.repository.reload_count()
        except StorageError as exc:
            log.warning("cannot read the reload counter (reloads of other workers wait): %s", exc)
            return None

    async def _bump_reloads(self) -> int | None:
        try:
            return await self.repository.bump_reloads()
        except StorageError as exc:
            log.warning("reloading here only, the other workers were not told: %s", exc)
            return None

    async def _reload(self, path: Path) -> None:
        try:
            # Off the event loop: a pathological file must not stall checks and sends.
            config = await asyncio.to_thread(load_config, path)
        except (ConfigError, OSError) as exc:
            log.error("watchlist %s not reloaded, keeping the running one:\n%s", path, exc)
            return
        except Exception:  # whatever an edit holds, the running config stays
            log.exception("watchlist %s not reloaded, keeping the running one", path)
            return
        if config.fingerprint == self.config.fingerprint:
            return
        # The old secrets stay masked too: they may still show up until a restart.
        secrets = logredact.config_secrets(self.config) | logredact.config_secrets(config)
        logredact.MASKED.set(self.owner, secrets)
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
            self.engine.use_fetcher(self._fetcher(config))
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
        self.subscriptions.apply_rules(subscription_rules(config))
        log.info("settings reloaded: %s", ", ".join(sorted(changed)))

    async def _reload_channels(self, config: Config) -> None:
        """Build the channels a reload adds or changes; Telegram changes need a restart."""
        if self.overrides.notifiers is not None:
            return  # notifiers handed in by a test or the demo stay as they are
        changed = changed_channels(self.config, config)
        if "telegram" in changed and "telegram" in self.notifiers:
            log.error("notifiers.telegram changed: restart `restock run` to apply it")
            changed.discard("telegram")
        if "line" in changed and _line_bot_section(self.config) != _line_bot_section(config):
            # The alerts' channel is rebuilt now; the bot behind the running endpoint is not.
            log.error("notifiers.line's bot changed: restart `restock run` to apply it")
        if not changed:
            return
        fresh = build_notifiers(config, only=changed, spends=self.repository)
        self._count_quotas(fresh)
        for notifier in fresh.values():
            await notifier.start()
        kept = {k: v for k, v in self.notifiers.items() if k not in changed}
        self.notifiers = {**kept, **fresh}
        for old in self.dispatcher.replace_notifiers(self._dispatching()):
            with contextlib.suppress(Exception):
                await old.aclose()
        log.info("channels reloaded: %s", ", ".join(sorted(changed)))


async def keep_bot_running(
    bot: ChatBot,
    stop: asyncio.Event,
    *,
    first_retry: float = BOT_RETRY_FIRST,
    retry_cap: float = BOT_RETRY_CAP,
) -> None:
    """Run the chat bot beside the engine until `stop`; Telegram being unreachable must not stop
    watching. A failed start is retried with doubling waits; the bot is stopped in every case."""
    delay = first_retry
    try:
        while not stop.is_set():
            try:
                await bot.start()
                break
            except InvalidToken:
                log.error("chat bot not started: Telegram rejected the bot token")
                break
            except Exception as exc:
                log.warning("chat bot not started (%s); trying again in %.0f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, retry_cap)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await bot.stop()


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
        if overrides.install_signals:
            _install_reload_signal(app.ask_reload)
        await app.sync_watches(config)
        await release_dead_local_leases(repository, app.owner, datetime.now(UTC))
        log.info("running %d watches (worker %s)", len(config.watches), app.owner)
        await app.run(stop)
    finally:
        if overrides.install_signals:
            _remove_reload_signal()
        await repository.close()
    return 0


def _install_signals(stop: asyncio.Event) -> None:
    # Loops without signal handlers (Windows' own, or one off the main thread) raise
    # NotImplementedError or RuntimeError: there Ctrl-C's KeyboardInterrupt stops the run.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _install_reload_signal(ask_reload: Callable[[], None]) -> None:
    """SIGHUP reloads the watchlist, here and on every other worker.

    Where there is no SIGHUP (Windows: AttributeError) or no signal handling on this loop,
    the file watch and `restock reload` still reload it."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, ask_reload)


def _remove_reload_signal() -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.remove_signal_handler(signal.SIGHUP)


def _line_bot_section(config: Config) -> tuple[object, ...] | None:
    """What the running LINE bot was built from (a change needs a restart)."""
    line = config.notifiers.line
    if line is None or not line.bot:
        return None
    return (
        line.channel_secret,
        line.channel_access_token,
        line.api_base_url,
        line.max_watches_per_user,
    )
