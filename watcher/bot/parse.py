"""Pure parsing of what chat users type: commands, prices, conditions, quiet hours, buttons.

Nothing here does I/O. Every refusal is an `InputError` carrying a text key (and the values the
message needs), so the bot can answer in the user's language.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import time
from typing import Literal, Protocol, TypeVar

from watcher.core.jan import looks_like_jan, parse_jan
from watcher.core.model import ConditionFilter, QuietHours, QuietMode
from watcher.errors import InvalidJAN
from watcher.subscriptions import Refused, WatchRequest

Language = Literal["ja", "en"]

MAX_PRICE = 100_000_000  # yen; anything above is a typo, not a budget
CALLBACK_MAX_BYTES = 64  # Telegram's limit on callback_data
START_PAYLOAD_MAX = 64  # Telegram's limit on a /start deep-link parameter
_START_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")

# Control characters a person never types: C0 (except line break and tab), DEL, C1, and the
# bidi overrides and line separators that disguise text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?")
_CALLBACK = re.compile(r"([pur]):([0-9]{1,18})")
_CLOCK = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?")
_RANGE_SEPARATORS = re.compile(r"\s*[-~〜–—]\s*")

_CONDITION_WORDS = {
    "new": ConditionFilter.NEW,
    "新品": ConditionFilter.NEW,
    "used": ConditionFilter.USED,
    "中古": ConditionFilter.USED,
    "any": ConditionFilter.ANY,
    "all": ConditionFilter.ANY,
    "すべて": ConditionFilter.ANY,
}
_STANDING_WORDS = frozenset({"always", "standing", "ずっと", "毎回", "常時"})
_ONCE_WORDS = frozenset({"once", "一回", "1回"})
_LOTTERY_WORDS = frozenset({"lottery", "抽選"})
_QUIET_MODES = {"hold": QuietMode.HOLD, "保留": QuietMode.HOLD, "drop": QuietMode.DROP}
_OFF_WORDS = frozenset({"off", "none", "解除", "オフ"})


class InputError(Refused):
    """Something a chat user typed that cannot be used; `key` names the answer to give."""


def language_for(code: str | None) -> Language:
    """Japanese unless the user's Telegram client says another language (then English)."""
    if not code or code.lower().startswith("ja"):
        return "ja"
    return "en"


def normalise(text: str) -> str:
    """Full-width digits, letters and signs as their ASCII forms (what users type on phones)."""
    return unicodedata.normalize("NFKC", text).strip()


def input_problem(text: str, max_chars: int) -> str | None:
    """Why a message is refused before reading it ("too_long", "control"), or None."""
    if len(text) > max_chars:
        return "too_long"
    if _CONTROL.search(text):
        return "control"
    return None


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # lower case, without the slash
    args: tuple[str, ...] = ()
    bot_username: str | None = None  # "/watch@SomeBot": who the command is for
    rest: str = ""  # the text after the command, as typed (for /broadcast)

    def for_bot(self, username: str | None) -> bool:
        """False when the command names another bot (in a group)."""
        if self.bot_username is None or username is None:
            return True
        return self.bot_username.casefold() == username.casefold()


def parse_command(text: str) -> Command | None:
    """A "/name@bot args..." message as a Command; None when the text is not a command."""
    stripped = text.strip()
    match = _COMMAND.match(stripped)
    if match is None:
        return None
    rest = stripped[match.end() :]
    if rest and not rest[0].isspace():
        return None  # "/watch2x" or "/a.b": not a command we know how to read
    rest = rest.strip()
    return Command(
        name=match.group(1).lower(),
        args=tuple(rest.split()),
        bot_username=match.group(2),
        rest=rest,
    )


def parse_price(text: str) -> int:
    """Yen from "6000", "6,000", "¥6000", "￥６，０００", "6000円"; InputError otherwise."""
    value = normalise(text).replace(",", "").replace("_", "")
    value = value.removeprefix("¥").removeprefix("\\").removesuffix("円").strip()
    if not value.isascii() or not value.isdigit():
        raise InputError("bad_arg", arg=text)
    price = int(value)
    if not 1 <= price <= MAX_PRICE:
        raise InputError("bad_price", arg=text)
    return price


def parse_watch(args: tuple[str, ...]) -> WatchRequest:
    """`<url|JAN> [max price] [new|used|any] [always] [lottery]` (options in any order after the
    target)."""
    if not args:
        raise InputError("watch_usage")
    url, jan = parse_target(args[0])
    request = WatchRequest(url=url, jan=jan)
    seen: set[str] = set()
    for arg in args[1:]:
        name, request = _with_option(request, arg)
        if name in seen:
            raise InputError("duplicate_arg", arg=arg)
        seen.add(name)
    return request


def parse_target(text: str) -> tuple[str | None, str | None]:
    """(url, None) or (None, jan). A URL is only shaped here; the guard decides if it is safe.

    Invisible marks that copying a link picks up (zero-width spaces, joiners, LRM/RLM, BOMs)
    are dropped first, so the guard and the store see the link the user sees.
    """
    text = without_invisible_marks(text)
    if looks_like_jan(text):
        try:
            return None, parse_jan(text)
        except InvalidJAN as exc:
            raise InputError("bad_jan", reason=str(exc)) from None
    if "://" in text:
        return text, None
    if "." in text and not text.startswith(("/", ".")):
        return "https://" + text, None  # "www.amazon.co.jp/dp/..." typed without the scheme
    raise InputError("bad_target", arg=text)


def without_invisible_marks(text: str) -> str:
    """`text` without Unicode format characters (category Cf: U+200B-U+200F, U+2060, U+FEFF,
    U+00AD, the bidi marks), which show nothing and change what a URL names."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def looks_like_target(text: str) -> bool:
    """True for a plain message that is meant as something to watch (a link or a JAN)."""
    word = without_invisible_marks(text).strip()
    if not word or any(ch.isspace() for ch in word):
        return False
    return looks_like_jan(word) or word.lower().startswith(("http://", "https://"))


def _with_option(request: WatchRequest, arg: str) -> tuple[str, WatchRequest]:
    """The option `arg` sets, and the request with it set."""
    word = normalise(arg).lower()
    if word in _CONDITION_WORDS:
        return "condition", replace(request, condition=_CONDITION_WORDS[word])
    if word in _STANDING_WORDS or word in _ONCE_WORDS:
        return "standing", replace(request, standing=word in _STANDING_WORDS)
    if word in _LOTTERY_WORDS:
        return "lottery", replace(request, lottery=True)
    return "max_price", replace(request, max_price=parse_price(arg))


# --- selecting a subscription ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selector:
    """A subscription named by its place in /list (1-based) or by its id ("#12")."""

    position: int | None = None
    subscription_id: int | None = None


def parse_selector(text: str) -> Selector:
    word = normalise(text)
    by_id = word.startswith("#")
    digits = word[1:] if by_id else word
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18 or int(digits) < 1:
        raise InputError("bad_selector", arg=text)
    if by_id:
        return Selector(subscription_id=int(digits))
    return Selector(position=int(digits))


class _Numbered(Protocol):
    @property
    def id(self) -> int: ...


Numbered = TypeVar("Numbered", bound=_Numbered)


def select_subscription(text: str, subs: Sequence[Numbered]) -> Numbered:
    """The entry of the user's own list `subs` that `text` names; InputError if none."""
    selector = parse_selector(text)
    if selector.position is not None and selector.position <= len(subs):
        return subs[selector.position - 1]
    for sub in subs:
        if sub.id == selector.subscription_id:
            return sub
    raise InputError("not_found")


# --- quiet hours -----------------------------------------------------------------------------


def parse_quiet(args: tuple[str, ...]) -> QuietHours | None:
    """`HH:MM-HH:MM [hold|drop]` as QuietHours; `off` as None; InputError otherwise."""
    if not args:
        raise InputError("quiet_usage")
    words = [normalise(a) for a in args]
    if len(words) == 1 and words[0].lower() in _OFF_WORDS:
        return None
    mode = QuietMode.HOLD
    if words[-1].lower() in _QUIET_MODES:
        mode = _QUIET_MODES[words.pop().lower()]
    parts = _RANGE_SEPARATORS.split(" ".join(words).strip())
    if len(parts) != 2:
        raise InputError("quiet_usage")
    start, end = parse_clock(parts[0]), parse_clock(parts[1])
    if start == end:
        raise InputError("quiet_empty")
    return QuietHours(start=start, end=end, mode=mode)


def parse_clock(text: str) -> time:
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise InputError("bad_time", arg=text)
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if hour == 24 and minute == 0:
        hour = 0
    if hour > 23 or minute > 59:
        raise InputError("bad_time", arg=text)
    return time(hour, minute)


# --- inline buttons --------------------------------------------------------------------------


class ButtonAction(enum.StrEnum):
    PAUSE = "p"
    RESUME = "u"
    REMOVE = "r"


@dataclass(frozen=True, slots=True)
class ButtonPress:
    action: ButtonAction
    subscription_id: int


def callback_data(action: ButtonAction, subscription_id: int) -> str:
    data = f"{action.value}:{subscription_id}"
    assert len(data.encode()) <= CALLBACK_MAX_BYTES
    return data


def parse_callback(data: str | None) -> ButtonPress | None:
    """A button's data, or None for anything we did not write ourselves."""
    if not data:
        return None
    match = _CALLBACK.fullmatch(data)
    if match is None:
        return None
    return ButtonPress(ButtonAction(match.group(1)), int(match.group(2)))


# --- deep links ------------------------------------------------------------------------------


def start_payload(watch_key: str) -> str | None:
    """The /start parameter that subscribes to `watch_key`: "w_<key>" when the key fits Telegram's
    alphabet as it is, else "b_<base64url key>"; None when it cannot fit in 64 characters."""
    if _START_ALPHABET.fullmatch(watch_key) and len(watch_key) + 2 <= START_PAYLOAD_MAX:
        return "w_" + watch_key
    encoded = base64.urlsafe_b64encode(watch_key.encode()).decode().rstrip("=")
    payload = "b_" + encoded
    return payload if len(payload) <= START_PAYLOAD_MAX else None


def watch_key_from_payload(payload: str) -> str | None:
    """The watch key a /start parameter names, or None when it names none."""
    if len(payload) > START_PAYLOAD_MAX or not _START_ALPHABET.fullmatch(payload):
        return None
    if payload.startswith("w_") and len(payload) > 2:
        return payload[2:]
    if payload.startswith("b_") and len(payload) > 2:
        body = payload[2:]
        try:
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None
