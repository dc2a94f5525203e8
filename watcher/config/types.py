"""Value types of the watchlist: each parses what a person writes and says what it expects.

Every type is an `Annotated` pydantic type whose validator raises one `PydanticCustomError` with
a message meant for the person editing the file ("must be ..., got ...").
"""

from __future__ import annotations

import difflib
import json
import re
import zoneinfo
from collections.abc import Callable, Iterable
from datetime import time, timedelta
from email.utils import parseaddr
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from watcher.core.jan import parse_jan
from watcher.core.model import ORDERABLE_STATES, Availability, EventKind
from watcher.errors import InvalidJAN

STORE_NAMES = ("amazon_jp", "rakuten", "yahoo_shopping", "base", "shopify", "generic")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BUYABLE_NAMES = tuple(s.value for s in Availability if s in ORDERABLE_STATES)
EVENT_NAMES = tuple(kind.value for kind in EventKind)

DURATION_FORMS = "30s, 5m, 1h, 1h30m or a whole number of seconds"
_DURATION = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
_CLOCK = re.compile(r"(?P<h>[01]?\d|2[0-4]):(?P<m>[0-5]\d)")
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+")
_INTEGER = re.compile(r"-?\d+")


def shown(value: object) -> str:
    """A value as the person wrote it, for "got ..." in messages."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fail(kind: str, expectation: str, value: object) -> PydanticCustomError:
    return PydanticCustomError(
        kind, "{expectation}, got {got}", {"expectation": expectation, "got": shown(value)}
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean "x"?)` when a choice is close to `word`, else ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def choice(value: object, choices: Iterable[str], kind: str) -> str:
    """`value` when it is one of `choices`, else an error listing them (with a close match)."""
    options = list(choices)
    if isinstance(value, str) and value in options:
        return value
    hint = did_you_mean(value, options) if isinstance(value, str) else ""
    context = {"options": ", ".join(options), "got": shown(value), "hint": hint}
    raise PydanticCustomError(kind, "must be one of {options}, got {got}{hint}", context)


# -- durations ---------------------------------------------------------------------------------


def parse_duration(value: object) -> timedelta:
    """ "30s", "5m", "1h", "1h30m" or whole seconds (an int or a string of digits)."""
    try:
        return _duration(value)
    except PydanticCustomError:
        raise
    except (OverflowError, ValueError):  # more digits or days than Python's types hold
        raise fail("duration", "is far longer than any duration a watchlist needs", value) from None


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return timedelta(seconds=int(text))
        match = _DURATION.fullmatch(text)
        if text and match:
            hours, minutes, seconds = (int(match.group(g) or 0) for g in "hms")
            return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    raise fail("duration", f"must be a duration like {DURATION_FORMS}", value)


def format_duration(value: timedelta) -> str:
    """The shortest written form: 90 s -> "1m30s"; zero -> "0s"."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise fail("duration", "must be longer than 0s", format_duration(value))
    return value


_DURATION_SCHEMA = {
    "anyOf": [
        {
            "type": "string",
            "pattern": r"^(\d+h)?(\d+m)?(\d+s)?$",
            "examples": ["30s", "5m", "1h30m"],
        },
        {"type": "integer", "minimum": 0},
    ]
}
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(_DURATION_SCHEMA),
]
PositiveDuration = Annotated[Duration, AfterValidator(_positive_duration)]


# -- integers ----------------------------------------------------------------------------------


def _integer(value: object, expectation: str, kind: str) -> int:
    # Digit strings are accepted: `${VAR}` values always arrive as strings.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise fail(kind, expectation, value)


def _bounded(
    expectation: str, kind: str, low: int | None, high: int | None = None
) -> Callable[[object], int]:
    def check(value: object) -> int:
        number = _integer(value, expectation, kind)
        if (low is not None and number < low) or (high is not None and number > high):
            raise fail(kind, expectation, value)
        return number

    return check


def _int_schema(low: int | None, high: int | None = None) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "integer"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return WithJsonSchema(schema)


_YEN = "must be a positive integer (yen)"
Yen = Annotated[int, BeforeValidator(_bounded(_YEN, "yen", 1)), _int_schema(1)]
_COUNT = "must be a whole number of at least 1"
Count = Annotated[int, BeforeValidator(_bounded(_COUNT, "count", 1)), _int_schema(1)]
_NON_NEGATIVE = "must be a whole number of at least 0"
NonNegative = Annotated[int, BeforeValidator(_bounded(_NON_NEGATIVE, "count", 0)), _int_schema(0)]
_PORT = "must be a port number from 1 to 65535"
Port = Annotated[int, BeforeValidator(_bounded(_PORT, "port", 1, 65535)), _int_schema(1, 65535)]
_WORKERS = 'must be a whole number of at least 0 or "auto"'


def _workers(value: object) -> int | str:
    if value == "auto":
        return "auto"
    return _bounded(_WORKERS, "workers", 0)(value)


# A count of worker processes, or "auto" for one that suits the machine's cores.
Workers = Annotated[
    int | Literal["auto"],
    BeforeValidator(_workers),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}]}),
]
_CHAT = "must be an integer chat id"
ChatId = Annotated[int, BeforeValidator(_bounded(_CHAT, "chat_id", None)), _int_schema(None)]


# -- times and days ----------------------------------------------------------------------------


def parse_clock(value: object) -> time:
    """ "HH:MM" on a 24-hour clock; "24:00" is midnight at the end of the day (00:00)."""
    if isinstance(value, time):
        return value
    match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or (match.group("h") == "24" and match.group("m") != "00"):
        raise fail("clock", 'must be a time "HH:MM" (quote it in YAML)', value)
    return time(int(match.group("h")) % 24, int(match.group("m")))


ClockTime = Annotated[
    time,
    BeforeValidator(parse_clock),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^([01]?\d|2[0-4]):[0-5]\d$"}),
]


def parse_days(value: object) -> frozenset[int]:
    """Written days ("mon-fri", "sat,sun", "mon,wed-fri" or a list) -> weekdays (mon = 0)."""
    if isinstance(value, frozenset):
        return value
    parts: list[object] = [value]
    if isinstance(value, str):
        parts = list(value.split(","))
    elif isinstance(value, list) and value:
        parts = list(value)
    days: set[int] = set()
    for part in parts:
        span = _day_span(part)
        if span is None:
            raise fail("days", "must be days like mon-sun, mon-fri or sat,sun", value)
        days.update(span)
    return frozenset(days)


def _day_span(part: object) -> list[int] | None:
    if not isinstance(part, str):
        return None
    ends = [
        WEEKDAY_NAMES.index(e) if e in WEEKDAY_NAMES else -1
        for e in part.strip().lower().split("-")
    ]
    if len(ends) not in (1, 2) or -1 in ends:
        return None
    first, last = ends[0], ends[-1]
    return [(first + i) % 7 for i in range((last - first) % 7 + 1)]


def format_days(days: frozenset[int]) -> str:
    return ",".join(WEEKDAY_NAMES[d] for d in sorted(days))


_DAY = "(mon|tue|wed|thu|fri|sat|sun)"
_DAYS_PATTERN = rf"^{_DAY}(-{_DAY})?(,\s*{_DAY}(-{_DAY})?)*$"
Weekdays = Annotated[
    frozenset[int],
    BeforeValidator(parse_days),
    PlainSerializer(format_days, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": _DAYS_PATTERN, "examples": ["mon-sun", "mon-fri", "sat,sun"]}
    ),
]


# -- text with a shape -------------------------------------------------------------------------


def _http_url(value: object) -> str:
    if isinstance(value, str) and _URL_CONTROL.search(value):
        # A newline or NUL in a URL splits or cuts the request line and headers it goes into.
        raise fail("url", "must not contain control characters (newline, tab, NUL)", value)
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail("url", "must be an http(s) URL with a host", value)
    return str(value)


_URL_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _email_address(value: object) -> str:
    if isinstance(value, str) and _EMAIL.fullmatch(value.strip()):
        return value.strip()
    raise fail("email", "must be an e-mail address like me@example.com", value)


def _mailbox(value: object) -> str:
    # A sender may carry a display name: "Restock <restock@example.com>".
    address = parseaddr(value)[1] if isinstance(value, str) else ""
    if _EMAIL.fullmatch(address):
        return str(value).strip()
    raise fail("email", 'must be an address like "Restock <restock@example.com>"', value)


def _listen(value: object) -> str:
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not port.isdigit() or not 0 < int(port) < 65536 or " " in host:
        raise fail("listen", 'must be "host:port", like 127.0.0.1:8787', value)
    return str(value)


def _timezone(value: object) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise fail("timezone", "must be an IANA time zone like Asia/Tokyo", value) from None
    return str(value)


def _jan(value: object) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        raise fail("jan", "must be a 13-digit JAN code", value)
    try:
        return parse_jan(text)
    except InvalidJAN as exc:
        raise PydanticCustomError("jan", "{reason}", {"reason": str(exc)}) from None


def _store(value: object) -> str:
    return choice(value, STORE_NAMES, "store")


def _buyable_state(value: object) -> Availability:
    if isinstance(value, str) and value in BUYABLE_NAMES:
        return Availability(value)
    raise fail("buyable", f"must be an orderable state ({', '.join(BUYABLE_NAMES)})", value)


def _event_kind(value: object) -> EventKind:
    return EventKind(choice(value, EVENT_NAMES, "event"))


_LINE_USER_ID = re.compile(r"U[0-9a-f]{32}")


def _line_user_id(value: object) -> str:
    if isinstance(value, str) and _LINE_USER_ID.fullmatch(value.strip()):
        return value.strip()
    raise fail("line_user_id", 'must be a LINE user id ("U" and 32 hex digits)', value)


LineUserId = Annotated[
    str,
    BeforeValidator(_line_user_id),
    WithJsonSchema({"type": "string", "pattern": "^U[0-9a-f]{32}$"}),
]


HttpUrl = Annotated[
    str,
    BeforeValidator(_http_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://"}),
]
EmailAddress = Annotated[
    str, BeforeValidator(_email_address), WithJsonSchema({"type": "string", "format": "email"})
]
Mailbox = Annotated[str, BeforeValidator(_mailbox), WithJsonSchema({"type": "string"})]
Listen = Annotated[
    str, BeforeValidator(_listen), WithJsonSchema({"type": "string", "pattern": r"^.*:\d+$"})
]
Timezone = Annotated[
    str, BeforeValidator(_timezone), WithJsonSchema({"type": "string", "examples": ["Asia/Tokyo"]})
]
Jan = Annotated[
    str, BeforeValidator(_jan), WithJsonSchema({"type": "string", "pattern": r"^\d{13}$"})
]
StoreName = Annotated[
    str, BeforeValidator(_store), WithJsonSchema({"type": "string", "enum": list(STORE_NAMES)})
]
BuyableState = Annotated[
    Availability,
    BeforeValidator(_buyable_state),
    WithJsonSchema({"type": "string", "enum": list(BUYABLE_NAMES)}),
]
EventName = Annotated[
    EventKind,
    BeforeValidator(_event_kind),
    WithJsonSchema({"type": "string", "enum": list(EVENT_NAMES)}),
]
