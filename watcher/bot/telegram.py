"""The shoppers' Telegram chat bot: /watch, /list and friends, run inside the engine's event loop.

The bot is open to anyone, so every input is hostile until checked:
- a URL must pass the chat guard (allowed store hosts, public addresses after DNS resolution;
  the engine asks the same guard again on every redirect when it fetches the product);
- each user gets `command_limit` commands per `command_window` seconds: the first refused
  command gets one short answer, the rest get silence, so a flood costs one message;
- overlong messages and control characters get a short answer and are not read further;
- every dynamic text in a reply is escaped for Telegram's HTML mode (`watcher.bot.texts.say`);
- in a group, only its creator and administrators (asked with getChatMember, answers cached for a
  few minutes; an anonymous admin writing as the group counts) change what the group watches;
  members may still read /list and /help. When Telegram cannot say, the change is refused.
A user who blocks the bot (my_chat_member "kicked", or 403 on a reply) has their subscriptions
ended, and nothing else is touched.

Replies go through the notifiers' `Pacer` (when one is shared) at reply priority, so a person
waiting for an answer goes before queued restock messages and both stay within Telegram's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import traceback
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from telegram import (
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackContext,
    CallbackQueryHandler,
    ChatMemberHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from notifiers.pacing import Pacer, Priority
from notifiers.render import escape_html, shorten
from notifiers.telegram import retry_after_seconds
from watcher.bot.limits import AdminCache, CommandRateLimiter, Verdict
from watcher.bot.parse import (
    ButtonAction,
    ButtonPress,
    Command,
    InputError,
    Language,
    callback_data,
    input_problem,
    language_for,
    looks_like_target,
    parse_callback,
    parse_command,
    parse_quiet,
    parse_watch,
    select_subscription,
    start_payload,
    watch_key_from_payload,
)
from watcher.bot.texts import (
    LIST_MAX,
    Html,
    details_line,
    help_text,
    list_page,
    plain,
    quiet_text,
    say,
    stats_text,
    stores_text,
    subscription_name,
)
from watcher.clock import Clock, SystemClock
from watcher.config.schema import DEFAULT_ALLOWED_HOSTS
from watcher.core.forecast import describe_forecast, forecast_for
from watcher.core.model import EventKind
from watcher.logredact import SecretScope
from watcher.net.netguard import URLGuard
from watcher.redact import recipient_hash
from watcher.secret import Secret
from watcher.storage.interface import Repository, Subscription
from watcher.subscriptions import Refused, SubscriptionRules, Subscriptions

LOG = logging.getLogger("restock.bot")

ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")
CONCURRENT_UPDATES = 32
ECHO_MAX = 80  # characters of a user's own input quoted back in an error
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
GONE_STATUSES = frozenset({ChatMemberStatus.BANNED, ChatMemberStatus.LEFT})
GROUP_TYPES = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})
JST = ZoneInfo("Asia/Tokyo")
ADMIN_STATUSES = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})
ADMIN_CACHE_SECONDS = 300.0
ADMIN_CACHE_SIZE = 4096  # (group, user) answers remembered at most
# Commands that change a chat's subscriptions or their settings; /start does when it carries a
# shared watch's deep link (`_changes_subscriptions`), and the /list buttons always do.
CHANGING_COMMANDS = frozenset({"watch", "unwatch", "pause", "resume", "quiet", "stop"})

BotApplication = Application[Any, Any, Any, Any, Any, Any]
Context = CallbackContext[Any, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class BotSettings:
    """What the operator configures for the chat bot (`notifiers.telegram` with `bot: true`)."""

    token: Secret = field(repr=False)
    api_base_url: str = "https://api.telegram.org"
    admins: frozenset[int] = frozenset()
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    max_watches_per_user: int = 20
    command_limit: int = 10
    command_window: float = 60.0  # seconds
    max_message_chars: int = 1000
    max_broadcast_chars: int = 3500
    poll_timeout: int = 30  # seconds Telegram holds a getUpdates call open
    jan_search: bool = True  # a JAN search source is configured (else JAN codes are refused)
    zone: tzinfo = JST  # restock-hour forecasts are told in this zone (settings.timezone)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One command from one user in one chat, already admitted (rate limit, size, characters)."""

    chat_id: int
    user_id: int | None  # None for an anonymous group admin (Telegram hides who it is)
    language: Language
    args: tuple[str, ...] = ()
    rest: str = ""
    admin: bool = False  # a bot-wide admin (settings.admins), not a group's administrator
    group: bool = False


Handler = Callable[[Incoming], Awaitable[None]]


class ChatBot:
    """The chat bot, built by the composition root and run inside its event loop."""

    def __init__(
        self,
        repository: Repository,
        settings: BotSettings,
        *,
        guard: URLGuard | None = None,
        subscriptions: Subscriptions | None = None,
        clock: Clock | None = None,
        pacer: Pacer | None = None,
        request: BaseRequest | None = None,
        get_updates_request: BaseRequest | None = None,
    ) -> None:
        self.repository = repository
        self.settings = settings
        # The same guard instance goes to the engine, which re-checks every redirect hop.
        self.guard = guard or URLGuard(settings.allowed_hosts)
        self.clock = clock or SystemClock()
        self.subscriptions = subscriptions or Subscriptions(
            repository,
            self.guard,
            SubscriptionRules(settings.max_watches_per_user, settings.jan_search),
            now=self.clock.now,
            refused_url_hint=stores_text(settings.allowed_hosts),
        )
        self.pacer = pacer
        self._stores = stores_text(settings.allowed_hosts)
        self.limiter = CommandRateLimiter(settings.command_limit, settings.command_window)
        self.group_admins = AdminCache(ADMIN_CACHE_SECONDS, ADMIN_CACHE_SIZE)
        # Before PTB logs its first URL (it holds the token).
        self._secrets = SecretScope([settings.token.reveal()])
        self.application = self._build_application(request, get_updates_request)
        self._broadcasts: set[asyncio.Task[None]] = set()
        self._chat_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._commands: dict[str, Handler] = {
            "start": self._cmd_start,
            "help": self._cmd_help,
            "watch": self._cmd_watch,
            "list": self._cmd_list,
            "unwatch": self._cmd_unwatch,
            "pause": functools.partial(self._set_paused, paused=True),
            "resume": functools.partial(self._set_paused, paused=False),
            "quiet": self._cmd_quiet,
            "stop": self._cmd_stop,
        }
        self._admin_commands: dict[str, Handler] = {
            "stats": self._cmd_stats,
            "broadcast": self._cmd_broadcast,
        }

    # --- lifecycle ---------------------------------------------------------------------------

    def _build_application(
        self, request: BaseRequest | None, get_updates_request: BaseRequest | None
    ) -> BotApplication:
        api = self.settings.api_base_url.rstrip("/")
        builder = (
            ApplicationBuilder()
            .token(self.settings.token.reveal())
            .base_url(f"{api}/bot")
            .base_file_url(f"{api}/file/bot")
            .job_queue(None)
            # Chats are served side by side (one user's slow DNS must not stall the others);
            # within one chat, `_chat_lock` keeps updates in order.
            .concurrent_updates(CONCURRENT_UPDATES)
        )
        if request is not None:
            builder = builder.request(request)
        if get_updates_request is not None:
            builder = builder.get_updates_request(get_updates_request)
        application: BotApplication = builder.build()
        application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT, self._on_message)
        )
        application.add_handler(CallbackQueryHandler(self._on_button))
        application.add_handler(
            ChatMemberHandler(self._on_membership, ChatMemberHandler.MY_CHAT_MEMBER)
        )
        application.add_error_handler(self._on_error)
        return application

    async def initialize(self) -> None:
        """Ask Telegram who the bot is (getMe); needed before updates are processed."""
        await self.application.initialize()

    async def start(self) -> None:
        """Start long polling inside the running loop (pending updates are kept, not dropped).

        A start that fails half-way is taken back whole, so the next try starts from scratch:
        PTB refuses to start an application it still counts as running.
        """
        try:
            await self.initialize()
            await self.application.start()
            updater = self.application.updater
            if updater is not None:
                await updater.start_polling(
                    drop_pending_updates=False,
                    allowed_updates=list(ALLOWED_UPDATES),
                    timeout=self.settings.poll_timeout,
                )
        except BaseException:
            await self._undo_start()
            raise

    async def _undo_start(self) -> None:
        application = self.application
        updater = application.updater
        with contextlib.suppress(Exception):
            if updater is not None and updater.running:
                await updater.stop()
        with contextlib.suppress(Exception):
            if application.running:
                await application.stop()
        with contextlib.suppress(Exception):
            await application.shutdown()
        with contextlib.suppress(Exception):
            # An application whose getMe failed counts as shut down; its bot's
            # connections are open all the same.
            await application.bot.shutdown()

    async def stop(self) -> None:
        """Stop polling, finish the update in hand, and close the connections."""
        try:
            updater = self.application.updater
            if updater is not None and updater.running:
                await updater.stop()
            for task in list(self._broadcasts):
                task.cancel()
            await asyncio.gather(*self._broadcasts, return_exceptions=True)
            if self.application.running:
                await self.application.stop()
            await self.application.shutdown()
        finally:
            self._secrets.close()

    async def process(self, update: Update) -> None:
        """Handle one update (what polling does for each; tests call it directly)."""
        await self.application.process_update(update)

    async def wait_broadcasts(self) -> None:
        """Wait for broadcasts in flight (tests, and a graceful stop that wants them sent)."""
        await asyncio.gather(*list(self._broadcasts))

    def deep_link(self, watch_key: str) -> str | None:
        """A t.me link that subscribes to `watch_key` in one tap, or None if the key cannot fit."""
        payload = start_payload(watch_key)
        username = self.application.bot.username
        return f"https://t.me/{username}?start={payload}" if payload else None

    # --- updates -----------------------------------------------------------------------------

    async def _on_message(self, update: Update, context: Context) -> None:
        message, chat, user = update.message, update.effective_chat, update.effective_user
        if message is None or message.text is None or chat is None or user is None:
            return
        anonymous = _anonymous_admin(message, chat)
        if user.is_bot and not anonymous:  # an anonymous admin's "from" is a stand-in bot
            return
        text = message.text
        private = chat.type == ChatType.PRIVATE
        command = parse_command(text)
        if command is None and not private:
            return  # group chatter is not addressed to us
        if command is not None and not command.for_bot(self.application.bot.username):
            return  # "/list@OtherBot" in a group
        language = language_for(user.language_code)
        # Every anonymous admin shares one stand-in user: they are limited per group instead.
        if not await self._admit(chat.id if anonymous else user.id, chat.id, language):
            return
        admin = not anonymous and user.id in self.settings.admins
        problem = input_problem(text, self._max_chars(command, admin))
        if problem is not None:
            await self._send(chat.id, say(language, problem))
            return
        incoming = Incoming(
            chat_id=chat.id,
            user_id=None if anonymous else user.id,
            language=language,
            args=command.args if command else (text.strip(),),
            rest=command.rest if command else text.strip(),
            admin=admin,
            group=chat.type in GROUP_TYPES,
        )
        async with self._chat_lock(chat.id):
            if incoming.group and not anonymous and _changes_subscriptions(command):
                refusal = await self._group_refusal(chat.id, user.id)
                if refusal is not None:
                    await self._send(chat.id, say(language, refusal))
                    return
            try:
                await self._dispatch(incoming, command)
            except Refused as exc:
                await self._send(chat.id, _error_text(language, exc))

    async def _dispatch(self, incoming: Incoming, command: Command | None) -> None:
        if command is None:
            if looks_like_target(incoming.rest):
                await self._cmd_watch(incoming)
            else:
                await self._send(incoming.chat_id, say(incoming.language, "not_a_command"))
            return
        handler = self._commands.get(command.name)
        if handler is None and incoming.admin:
            handler = self._admin_commands.get(command.name)
        if handler is None:
            # Admin commands answer non-admins exactly like a command that does not exist.
            await self._send(incoming.chat_id, say(incoming.language, "unknown_command"))
            return
        await handler(incoming)

    def _chat_lock(self, chat_id: int) -> asyncio.Lock:
        """One lock per chat while it is in use: a chat's updates are handled one at a time."""
        lock = self._chat_locks.get(chat_id)
        if lock is None:
            lock = asyncio.Lock()
            self._chat_locks[chat_id] = lock
        return lock

    def _max_chars(self, command: Command | None, admin: bool) -> int:
        if admin and command is not None and command.name == "broadcast":
            return self.settings.max_broadcast_chars
        return self.settings.max_message_chars

    async def _admit(self, user_id: int, chat_id: int, language: Language) -> bool:
        verdict = self.limiter.check(user_id, self.clock.monotonic())
        if verdict is Verdict.WARN:
            await self._send(chat_id, say(language, "rate_limited"))
        return verdict is Verdict.ALLOW

    async def _on_button(self, update: Update, context: Context) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        language = language_for(user.language_code)
        chat_id = query.message.chat.id if query.message is not None else user.id
        verdict = self.limiter.check(user.id, self.clock.monotonic())
        if verdict is not Verdict.ALLOW:
            warn = plain(language, "rate_limited") if verdict is Verdict.WARN else None
            await self._answer(query.id, warn)
            return
        press = parse_callback(query.data)
        async with self._chat_lock(chat_id):
            chat = query.message.chat if query.message is not None else None
            if press is not None and chat is not None and chat.type in GROUP_TYPES:
                refusal = await self._group_refusal(chat.id, user.id)
                if refusal is not None:
                    await self._answer(query.id, plain(language, refusal), alert=True)
                    return
            done = press is not None and await self._apply_press(press, chat_id)
            await self._answer(query.id, plain(language, _toast_key(press, done)))
            if done and query.message is not None:
                await self._refresh_list(chat_id, query.message.message_id, language)

    async def _apply_press(self, press: ButtonPress, chat_id: int) -> bool:
        """Apply a button to the chat's own subscription; False if it is not theirs (any more)."""
        if press.action is ButtonAction.REMOVE:
            return await self.subscriptions.remove(chat_id, press.subscription_id)
        paused = press.action is ButtonAction.PAUSE
        return await self.subscriptions.set_paused(chat_id, press.subscription_id, paused)

    async def _on_membership(self, update: Update, context: Context) -> None:
        change = update.my_chat_member
        if change is None:
            return
        status = change.new_chat_member.status
        if status in GONE_STATUSES:
            await self._chat_gone(change.chat.id)
        elif status == ChatMemberStatus.MEMBER:
            await self.repository.ensure_chat_user(change.chat.id, self.clock.now())

    async def _on_error(self, update: object, context: Context) -> None:
        # The traceback is formatted here so the token can be masked in it too.
        error = context.error
        detail = "".join(traceback.format_exception(error)) if error else "unknown error"
        LOG.error("bot: update failed: %s", self._secrets.mask(detail))

    # --- commands ----------------------------------------------------------------------------

    async def _cmd_start(self, incoming: Incoming) -> None:
        key = watch_key_from_payload(incoming.args[0]) if incoming.args else None
        if key is not None:
            await self._remember(incoming)
            await self._subscribe_shared(incoming, key)
            return
        if incoming.group:
            # Anyone may read the help; only a change by an admin sets the group's language.
            await self.repository.ensure_chat_user(incoming.chat_id, self.clock.now())
        else:
            await self._remember(incoming)
        await self._send(incoming.chat_id, help_text(incoming.language, self._stores))

    async def _cmd_help(self, incoming: Incoming) -> None:
        await self._send(incoming.chat_id, help_text(incoming.language, self._stores))

    async def _cmd_watch(self, incoming: Incoming) -> None:
        accepted = await self.subscriptions.accept(incoming.chat_id, parse_watch(incoming.args))
        await self._remember(incoming)
        sub = await self.subscriptions.subscribe(incoming.chat_id, accepted)
        await self._send(incoming.chat_id, _subscribed_text(incoming.language, sub))

    async def _cmd_list(self, incoming: Incoming) -> None:
        subs = await self.subscriptions.list(incoming.chat_id)
        forecasts = await self._forecasts(subs[:LIST_MAX], incoming.language)
        text, shown = list_page(incoming.language, subs, forecasts)
        await self._send(
            incoming.chat_id, text, markup=_list_keyboard(incoming.language, subs[:shown])
        )

    async def _cmd_unwatch(self, incoming: Incoming) -> None:
        if len(incoming.args) != 1:
            raise InputError("unwatch_usage")
        sub = await self._select(incoming, incoming.args[0])
        if not await self.subscriptions.remove(incoming.chat_id, sub.id):
            raise InputError("not_found")
        await self._send(
            incoming.chat_id, say(incoming.language, "removed", name=subscription_name(sub))
        )

    async def _set_paused(self, incoming: Incoming, *, paused: bool) -> None:
        if len(incoming.args) > 1:
            raise InputError("bad_selector", arg=" ".join(incoming.args))
        if incoming.args:
            sub = await self._select(incoming, incoming.args[0])
            if not await self.subscriptions.set_paused(incoming.chat_id, sub.id, paused):
                raise InputError("not_found")
            key = "paused_one" if paused else "resumed_one"
            await self._send(
                incoming.chat_id, say(incoming.language, key, name=subscription_name(sub))
            )
            return
        changed = await self.subscriptions.set_all_paused(incoming.chat_id, paused)
        key = "paused_all" if paused else "resumed_all"
        await self._send(incoming.chat_id, say(incoming.language, key, count=changed))

    async def _cmd_quiet(self, incoming: Incoming) -> None:
        quiet = parse_quiet(incoming.args)
        await self._remember(incoming)
        await self.repository.set_quiet(incoming.chat_id, quiet)
        text = (
            say(incoming.language, "quiet_off")
            if quiet is None
            else quiet_text(incoming.language, quiet)
        )
        await self._send(incoming.chat_id, text)

    async def _cmd_stop(self, incoming: Incoming) -> None:
        ended = await self.repository.deactivate_chat(incoming.chat_id, self.clock.now())
        await self._send(incoming.chat_id, say(incoming.language, "stopped", count=ended))

    async def _cmd_stats(self, incoming: Incoming) -> None:
        stats = await self.repository.stats(top=10)
        await self._send(incoming.chat_id, stats_text(incoming.language, stats))

    async def _cmd_broadcast(self, incoming: Incoming) -> None:
        if not incoming.rest:
            raise InputError("broadcast_usage")
        chats = await self.repository.chat_ids()
        await self._send(
            incoming.chat_id, say(incoming.language, "broadcast_started", count=len(chats))
        )
        task = asyncio.create_task(self._broadcast(incoming, escape_html(incoming.rest), chats))
        self._broadcasts.add(task)
        task.add_done_callback(self._broadcasts.discard)

    async def _broadcast(self, incoming: Incoming, text: str, chats: Sequence[int]) -> None:
        sent = 0
        for chat_id in chats:
            sent += await self._send(chat_id, text, priority=Priority.NOTIFICATION)
        done = say(incoming.language, "broadcast_done", sent=sent, failed=len(chats) - sent)
        await self._send(incoming.chat_id, done)

    # --- helpers -----------------------------------------------------------------------------

    async def _group_refusal(self, chat_id: int, user_id: int) -> str | None:
        """None when `user_id` administers the group, else the text key of the refusal."""
        admin = await self._administers(chat_id, user_id)
        if admin is None:
            return "admin_check_failed"
        return None if admin else "admins_only"

    async def _administers(self, chat_id: int, user_id: int) -> bool | None:
        """Whether the user is the group's creator or an administrator; None if Telegram failed.

        A failure is not cached: the user is asked to try again, and the next try asks again.
        """
        now = self.clock.monotonic()
        cached = self.group_admins.get(chat_id, user_id, now)
        if cached is not None:
            return cached
        try:
            member = await self.application.bot.get_chat_member(chat_id, user_id)
        except TelegramError as exc:
            LOG.warning(
                "bot: admin check failed in chat %s: %s",
                recipient_hash(str(chat_id)),
                self._secrets.mask(str(exc)),
            )
            return None
        admin = member.status in ADMIN_STATUSES
        self.group_admins.put(chat_id, user_id, admin, self.clock.monotonic())
        return admin

    async def _remember(self, incoming: Incoming) -> None:
        """Create or refresh the chat user, keeping the language its alerts will use."""
        await self.repository.ensure_chat_user(
            incoming.chat_id,
            self.clock.now(),
            user_id=incoming.user_id,
            language=incoming.language,
        )

    async def _subscribe_shared(self, incoming: Incoming, watch_key: str) -> None:
        """Subscribe to a watch the operator shares by link (see `Subscriptions.join_shared`)."""
        sub = await self.subscriptions.join_shared(incoming.chat_id, watch_key)
        await self._send(incoming.chat_id, _subscribed_text(incoming.language, sub))

    async def _select(self, incoming: Incoming, text: str) -> Subscription:
        return select_subscription(text, await self.subscriptions.list(incoming.chat_id))

    async def _forecasts(self, subs: Sequence[Subscription], language: Language) -> dict[int, str]:
        """The restock-hour forecast of each subscription's product, where there is one."""
        found: dict[int, str] = {}
        store_times: dict[str, list[datetime]] = {}
        for sub in subs:
            if sub.product_id is None:
                continue
            own = await self.repository.restock_times(product_id=sub.product_id)
            if sub.store and sub.store not in store_times:
                store_times[sub.store] = await self.repository.restock_times(store=sub.store)
            forecast = forecast_for(own, store_times.get(sub.store or "", []), self.settings.zone)
            if forecast is not None:
                found[sub.id] = describe_forecast(forecast, language)
        return found

    async def _refresh_list(self, chat_id: int, message_id: int, language: Language) -> None:
        subs = await self.subscriptions.list(chat_id)
        text, shown = list_page(language, subs, await self._forecasts(subs[:LIST_MAX], language))
        await self._pace(chat_id, Priority.REPLY)
        try:
            await self.application.bot.edit_message_text(
                text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=_list_keyboard(language, subs[:shown]),
                link_preview_options=NO_PREVIEW,
            )
        except Forbidden:
            await self._chat_gone(chat_id)
        except TelegramError as exc:  # too old to edit, unchanged...: the toast already told
            LOG.info("bot: list not refreshed: %s", self._secrets.mask(str(exc)))

    async def _answer(self, query_id: str, text: str | None, *, alert: bool = False) -> None:
        try:
            await self.application.bot.answer_callback_query(query_id, text=text, show_alert=alert)
        except TelegramError as exc:  # an expired query: nothing to tell anyone
            LOG.info("bot: callback not answered: %s", self._secrets.mask(str(exc)))

    async def _send(
        self,
        chat_id: int,
        text: str,
        *,
        markup: InlineKeyboardMarkup | None = None,
        priority: Priority = Priority.REPLY,
    ) -> bool:
        """Send one HTML message, paced; False when it did not go out."""
        for _ in range(2):  # one resend after a flood wait
            await self._pace(chat_id, priority)
            try:
                await self.application.bot.send_message(
                    chat_id=chat_id,
                    text=text,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup,
                    link_preview_options=NO_PREVIEW,
                )
                return True
            except RetryAfter as exc:
                await self._flood_wait(retry_after_seconds(exc))
            except Forbidden:
                await self._chat_gone(chat_id)
                return False
            except BadRequest as exc:
                LOG.warning("bot: message refused: %s", self._secrets.mask(str(exc)))
                return False
            except TelegramError as exc:
                LOG.warning("bot: send failed: %s", self._secrets.mask(str(exc)))
                return False
        return False

    async def _pace(self, chat_id: int, priority: Priority) -> None:
        if self.pacer is not None:
            await self.pacer.acquire(chat_id, priority)

    async def _flood_wait(self, seconds: float) -> None:
        if self.pacer is not None:
            self.pacer.pause_for(seconds)  # the pacer holds every sender, not just this one
        else:
            await self.clock.sleep(seconds)

    async def _chat_gone(self, chat_id: int) -> None:
        """The user blocked the bot or removed it: end the chat's subscriptions, keep the rest."""
        ended = await self.repository.deactivate_chat(chat_id, self.clock.now(), blocked=True)
        LOG.info("bot: chat %s gone, %d subscriptions ended", recipient_hash(str(chat_id)), ended)


def _anonymous_admin(message: Message, chat: Chat) -> bool:
    """A message a group admin sent as the group itself: only admins can write that way."""
    return message.sender_chat is not None and message.sender_chat.id == chat.id


def _changes_subscriptions(command: Command | None) -> bool:
    """Whether the message changes what the chat watches (a plain link is a /watch)."""
    if command is None:
        return True
    if command.name == "start":
        return bool(command.args) and watch_key_from_payload(command.args[0]) is not None
    return command.name in CHANGING_COMMANDS


def _error_text(language: Language, error: Refused) -> str:
    """The answer to a refused input, quoting at most a little of what the user typed."""
    values = {
        name: shorten(value, ECHO_MAX) if isinstance(value, str) else value
        for name, value in error.values.items()
    }
    return say(language, error.key, **values)


def _toast_key(press: ButtonPress | None, done: bool) -> str:
    if press is None or not done:
        return "button_gone"
    return {
        ButtonAction.PAUSE: "button_paused",
        ButtonAction.RESUME: "button_resumed",
        ButtonAction.REMOVE: "button_removed",
    }[press.action]


def _subscribed_text(language: Language, sub: Subscription) -> str:
    details = details_line(
        language,
        store=sub.store,
        target=sub.target,
        max_price=sub.conditions.max_price,
        condition=sub.conditions.condition,
        one_shot=sub.one_shot,
        lottery=EventKind.LOTTERY_OPEN in sub.conditions.events,
    )
    return say(language, "subscribed", name=subscription_name(sub), details=Html(details))


def _list_keyboard(language: Language, subs: Sequence[Subscription]) -> InlineKeyboardMarkup | None:
    """One row per subscription: pause or resume, and remove. Data carries only the id."""
    if not subs:
        return None
    rows = []
    for number, sub in enumerate(subs, start=1):
        if sub.paused:
            toggle = (plain(language, "resume_button", n=number), ButtonAction.RESUME)
        else:
            toggle = (plain(language, "pause_button", n=number), ButtonAction.PAUSE)
        rows.append(
            [
                InlineKeyboardButton(toggle[0], callback_data=callback_data(toggle[1], sub.id)),
                InlineKeyboardButton(
                    plain(language, "remove_button", n=number),
                    callback_data=callback_data(ButtonAction.REMOVE, sub.id),
                ),
            ]
        )
    return InlineKeyboardMarkup(rows)
