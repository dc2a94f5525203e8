"""LINE webhook bodies as typed events. Pure; the body was already verified by its signature.

Only what the bot uses is read: the event's id and redelivery flag, the user, the reply token,
a text message or a postback's data. Anything malformed inside one event makes that event
`OTHER` (ignored); a body that is not LINE's shape at all is a `BodyError` (answered 400).
Shapes as LINE documents them (developers.line.biz, Messaging API reference, "Webhook Event
Objects").
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, replace
from typing import Any

USER_ID = re.compile(r"U[0-9a-f]{32}")
EVENT_ID_MAX = 64
REPLY_TOKEN_MAX = 256
POSTBACK_MAX = 300  # LINE's own limit on postback data


class BodyError(ValueError):
    """The body is not a LINE webhook body."""


class Kind(enum.StrEnum):
    MESSAGE = "message"  # a text message
    POSTBACK = "postback"  # a button we sent was pressed
    FOLLOW = "follow"  # added as a friend, or unblocked
    UNFOLLOW = "unfollow"  # blocked (or the friend was removed)
    OTHER = "other"  # anything else: stickers, images, groups, joins, malformed events


@dataclass(frozen=True, slots=True)
class LineEvent:
    kind: Kind
    event_id: str | None  # webhookEventId: the same across redeliveries
    redelivery: bool = False
    user_id: str | None = None
    reply_token: str | None = None
    text: str | None = None
    data: str | None = None  # postback data
    active: bool = True  # mode "standby": another channel answers; we must not reply


def parse_body(body: bytes) -> list[LineEvent]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nesting deeper than Python's stack
        raise BodyError("not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise BodyError("no events list")
    return [parse_event(item) for item in document["events"]]


def parse_event(item: Any) -> LineEvent:
    if not isinstance(item, dict):
        return LineEvent(Kind.OTHER, None)
    event_id = _text(item.get("webhookEventId"), EVENT_ID_MAX)
    context = item.get("deliveryContext")
    redelivery = isinstance(context, dict) and context.get("isRedelivery") is True
    active = item.get("mode", "active") == "active"
    base = LineEvent(Kind.OTHER, event_id, redelivery, active=active)
    user_id = _user(item.get("source"))
    kind = _KINDS.get(str(item.get("type")))
    if kind is None or user_id is None:
        return base
    reply_token = _text(item.get("replyToken"), REPLY_TOKEN_MAX)
    found = LineEvent(kind, event_id, redelivery, user_id, reply_token, active=active)
    if kind is Kind.MESSAGE:
        return _message(found, item.get("message"))
    if kind is Kind.POSTBACK:
        return _postback(found, item.get("postback"))
    return found


_KINDS = {kind.value: kind for kind in Kind if kind is not Kind.OTHER}


def _message(found: LineEvent, message: Any) -> LineEvent:
    """A text message; stickers, images and the like are OTHER (the user still gets help)."""
    if not isinstance(message, dict) or message.get("type") != "text":
        return replace(found, kind=Kind.OTHER)
    # Any length: the body's size cap bounds it, and the bot answers an overlong text itself.
    text = message.get("text")
    return replace(found, text=text if isinstance(text, str) else None)


def _postback(found: LineEvent, postback: Any) -> LineEvent:
    data = _text(postback.get("data"), POSTBACK_MAX) if isinstance(postback, dict) else None
    return replace(found, data=data)


def _user(source: Any) -> str | None:
    """The user of a one-to-one chat; group and room messages are not for this bot."""
    if not isinstance(source, dict) or source.get("type") != "user":
        return None
    user_id = source.get("userId")
    return user_id if isinstance(user_id, str) and USER_ID.fullmatch(user_id) else None


def _text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None
