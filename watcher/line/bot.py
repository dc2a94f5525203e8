"""The shoppers' LINE chat bot: verified webhook events in, answers through the reply API.

The same rules as the Telegram bot hold, since anyone can add the account as a friend:
- a URL must pass the shared subscription rules (`watcher.subscriptions`): allowed store hosts,
  public addresses after DNS resolution (the engine asks the same guard again on every redirect
  when it fetches the product), canonical URLs, JAN codes only with a search source;
- each user has `max_watches_per_user` watches at most and `command_limit` messages per
  `command_window` seconds (the first refused one gets one short answer, then silence);
- overlong messages and control characters get a short answer and are not read further.
Each event is claimed by its `webhookEventId` before it is handled, so a redelivery (LINE sends
one when our answer was late or lost) changes nothing twice. Answers use the event's reply token
(free of quota); only alerts are pushed, by the notifier. An unfollow (which is also what a
block looks like) ends every subscription of the user. Events in standby mode (another channel
answers this chat) are recorded but not answered.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from notifiers.line_api import LineApi
from watcher.bot.limits import CommandRateLimiter, Verdict
from watcher.bot.parse import (
    ButtonAction,
    InputError,
    Language,
    input_problem,
    parse_watch,
    select_subscription,
)
from watcher.bot.texts import stores_text, subscription_name
from watcher.clock import Clock, SystemClock
from watcher.config.schema import DEFAULT_ALLOWED_HOSTS
from watcher.core.model import WatchConditions
from watcher.line import texts
from watcher.line.commands import LineCommand, parse_postback, parse_text
from watcher.line.events import Kind, LineEvent
from watcher.redact import recipient_hash
from watcher.storage.interface import LineChatStore, Subscription
from watcher.subscriptions import Refused, Subscriptions

LOG = logging.getLogger("restock.line")
DEFAULT_LANGUAGE: Language = "ja"

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LineBotSettings:
    """What the operator configures for the LINE bot (`notifiers.line` with `bot: true`)."""

    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    max_watches_per_user: int = 20
    command_limit: int = 10
    command_window: float = 60.0  # seconds
    max_message_chars: int = 1000


@dataclass(frozen=True, slots=True)
class Turn:
    """One user's message or button press being answered."""

    user_id: str
    language: Language
    reply_token: str | None
    args: tuple[str, ...] = field(default=())


Handler = Callable[[Turn], Awaitable[list[Message]]]


class LineBot:
    def __init__(
        self,
        store: LineChatStore,
        api: LineApi,
        settings: LineBotSettings = LineBotSettings(),
        *,
        subscriptions: Subscriptions,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.api = api
        self.settings = settings
        self.subscriptions = subscriptions
        self.clock = clock or SystemClock()
        self.limiter = CommandRateLimiter(settings.command_limit, settings.command_window)
        self._stores = stores_text(settings.allowed_hosts)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._commands: dict[str, Handler] = {
            "help": self._help,
            "watch": self._watch,
            "list": self._list,
            "pause": self._pause,
            "resume": self._resume,
            "unwatch": self._unwatch,
        }

    async def handle(self, events: Sequence[LineEvent]) -> None:
        """Handle a verified webhook body's events, in order.

        An event that fails once claimed is logged and the rest go on; a claim that fails (the
        database is unavailable) raises, so the request is answered 500 and LINE sends it again:
        the events claimed before it are then skipped, the others handled.
        """
        for event in events:
            if event.user_id is None or (event.kind is Kind.OTHER and event.reply_token is None):
                continue  # nothing of ours: a group, a malformed event, one we cannot answer
            async with self._lock(event.user_id):
                if event.event_id is not None and not await self.store.claim_line_event(
                    event.event_id, self.clock.now()
                ):
                    LOG.info("line: event %s already handled", event.event_id)
                    continue
                try:
                    await self._handle(event, event.user_id)
                except Exception:
                    LOG.exception("line: event %s not handled", event.event_id or "-")

    async def _handle(self, event: LineEvent, user_id: str) -> None:
        """One claimed event (the caller holds the user's lock)."""
        if event.kind is Kind.UNFOLLOW:
            await self._unfollowed(user_id)
            return
        if not event.active:
            return
        messages = await self._answer(event)
        if messages and event.reply_token is not None:
            await self._reply(event.reply_token, messages)

    def _lock(self, user_id: str) -> asyncio.Lock:
        """One lock per user while in use: a user's events are handled one at a time."""
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        return lock

    async def _answer(self, event: LineEvent) -> list[Message]:
        assert event.user_id is not None
        if event.kind is Kind.FOLLOW:
            turn = Turn(event.user_id, DEFAULT_LANGUAGE, event.reply_token)
            return [self._text(turn, "welcome", texts.menu_buttons(turn.language))]
        verdict = self._admit(event.user_id)
        if verdict is Verdict.WARN:
            language = await self._language_of(event.user_id)
            return [texts.text_message(texts.say(language, "rate_limited"))]
        if verdict is Verdict.SILENT:
            return []
        if event.kind is Kind.POSTBACK:
            return await self._button(event)
        return await self._message(event)

    def _admit(self, user_id: str) -> Verdict:
        # LINE user ids are "U" and 32 hex digits: as a number they key the shared limiter.
        return self.limiter.check(int(user_id[1:], 16), self.clock.monotonic())

    async def _message(self, event: LineEvent) -> list[Message]:
        assert event.user_id is not None
        text = event.text or ""
        command = parse_text(text) if event.kind is Kind.MESSAGE else None
        language = command.language if command and command.language else None
        turn = Turn(
            event.user_id,
            language or await self._language_of(event.user_id),
            event.reply_token,
            command.args if command else (),
        )
        problem = input_problem(text, self.settings.max_message_chars)
        if event.kind is Kind.MESSAGE and problem is not None:
            return [self._text(turn, problem)]
        if command is None:
            return [self._text(turn, "not_a_command", texts.menu_buttons(turn.language))]
        return await self._run(command, turn)

    async def _run(self, command: LineCommand, turn: Turn) -> list[Message]:
        try:
            return await self._commands[command.name](turn)
        except Refused as exc:  # parse errors (InputError) and the shared rules' refusals
            return [texts.text_message(texts.say(turn.language, exc.key, **exc.values))]

    # --- commands ------------------------------------------------------------------------------

    async def _help(self, turn: Turn) -> list[Message]:
        text = texts.say(turn.language, "help", stores=self._stores)
        return [texts.text_message(text, texts.menu_buttons(turn.language))]

    async def _watch(self, turn: Turn) -> list[Message]:
        request = parse_watch(turn.args)
        limit = self.settings.max_watches_per_user
        if await self.store.count_line_active(turn.user_id) >= limit:
            raise Refused("quota", max=limit)
        # The shared rules: the URL guard (after DNS), canonical URLs, JAN only with a source.
        target, store = await self.subscriptions.checked_target(request)
        conditions = WatchConditions(max_price=request.max_price, condition=request.condition)
        sub = await self.store.add_line_subscription(
            turn.user_id,
            target,
            store,
            conditions,
            turn.language,
            self.clock.now(),
            one_shot=not request.standing,
        )
        return [texts.text_message(texts.subscribed(turn.language, sub))]

    async def _list(self, turn: Turn) -> list[Message]:
        subs = await self.store.line_subscriptions(turn.user_id)
        return [self._list_message(turn.language, subs)]

    async def _pause(self, turn: Turn) -> list[Message]:
        return await self._set_paused(turn, paused=True)

    async def _resume(self, turn: Turn) -> list[Message]:
        return await self._set_paused(turn, paused=False)

    async def _set_paused(self, turn: Turn, *, paused: bool) -> list[Message]:
        if len(turn.args) > 1:
            raise InputError("bad_selector", arg=" ".join(turn.args))
        if turn.args:
            sub = await self._select(turn, turn.args[0])
            if not await self.store.set_line_paused(turn.user_id, sub.id, paused):
                raise InputError("not_found")
            key = "paused_one" if paused else "resumed_one"
            return [self._text(turn, key, name=subscription_name(sub))]
        changed = 0
        for sub in await self.store.line_subscriptions(turn.user_id):
            if sub.paused != paused:
                changed += await self.store.set_line_paused(turn.user_id, sub.id, paused)
        return [self._text(turn, "paused_all" if paused else "resumed_all", count=changed)]

    async def _unwatch(self, turn: Turn) -> list[Message]:
        if len(turn.args) != 1:
            raise InputError("unwatch_usage")
        sub = await self._select(turn, turn.args[0])
        if not await self.store.remove_line_subscription(turn.user_id, sub.id, self.clock.now()):
            raise InputError("not_found")
        return [self._text(turn, "removed", name=subscription_name(sub))]

    async def _select(self, turn: Turn, text: str) -> Subscription:
        return select_subscription(text, await self.store.line_subscriptions(turn.user_id))

    # --- buttons -------------------------------------------------------------------------------

    async def _button(self, event: LineEvent) -> list[Message]:
        """A list entry's pause, resume or remove button; only the user's own entries."""
        assert event.user_id is not None
        user = event.user_id
        language = await self._language_of(user)
        press = parse_postback(event.data)
        done = False
        if press is not None:
            action, sub_id = press
            if action is ButtonAction.REMOVE:
                done = await self.store.remove_line_subscription(user, sub_id, self.clock.now())
            else:
                done = await self.store.set_line_paused(user, sub_id, action is ButtonAction.PAUSE)
        subs = await self.store.line_subscriptions(user)
        listing = self._list_message(language, subs)
        if done:
            return [listing]
        return [texts.text_message(texts.say(language, "button_gone")), listing]

    # --- helpers -------------------------------------------------------------------------------

    def _list_message(self, language: Language, subs: Sequence[Subscription]) -> Message:
        buttons = texts.list_buttons(language, subs) if subs else texts.menu_buttons(language)
        return texts.text_message(texts.list_text(language, subs), buttons)

    def _text(
        self, turn: Turn, key: str, quick: Sequence[Message] = (), **values: object
    ) -> Message:
        if key in ("help", "welcome"):
            values = {"stores": self._stores, **values}
        return texts.text_message(texts.say(turn.language, key, **values), quick)

    async def _language_of(self, user_id: str) -> Language:
        """The language the user last wrote a command in (kept on their subscriptions)."""
        for sub in await self.store.line_subscriptions(user_id):
            if sub.language in ("ja", "en"):
                return "en" if sub.language == "en" else "ja"
        return DEFAULT_LANGUAGE

    async def _reply(self, reply_token: str, messages: Sequence[Message]) -> None:
        answer = await self.api.reply(reply_token, messages[:5])
        if not answer.ok:
            # An expired or used reply token, or LINE down: the user may send the command again.
            LOG.warning("line: reply not sent (%s %s)", answer.status or "-", answer.message)

    async def _unfollowed(self, user_id: str) -> None:
        ended = await self.store.end_line_subscriptions(user_id, self.clock.now())
        LOG.info("line: user %s unfollowed, %d subscriptions ended", recipient_hash(user_id), ended)
