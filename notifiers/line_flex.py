"""An event as a LINE Flex message: headline, title, the facts as rows, an "open in store" button.

Flex text is shown literally (no markup), so a shop's title cannot format anything; what it could
still do is carry control or bidi characters, or be empty (LINE refuses an empty text), and
`facts` already cleans and fills those. Sizes stay well under LINE's limits (bubble JSON 30 KB,
altText 1,500 characters, a URI action's link 1,000 characters).
"""

from __future__ import annotations

from typing import Any

from notifiers.render import Facts, Language, facts, shorten
from watcher.core.model import Event, EventKind

ALT_TEXT_MAX = 400  # LINE allows 1,500; the notification preview shows far less
URI_MAX = 1000
TITLE_MAX = 200
JSONObject = dict[str, Any]

# Headline colours: attention for a restock, calm for the rest.
_ACCENTS: dict[EventKind, str] = {
    EventKind.RESTOCK: "#D32F2F",
    EventKind.PREORDER_OPEN: "#1565C0",
    EventKind.PRICE_DROP: "#2E7D32",
    EventKind.OUT_OF_STOCK: "#616161",
}


def alt_text(f: Facts) -> str:
    """What the chat list and the notification show: the headline and the title."""
    return shorten(f"{f.headline} {f.title}", ALT_TEXT_MAX)


def flex_message(event: Event, language: Language = "ja") -> JSONObject:
    """One Flex message (a bubble) for `event`, in `language`."""
    f = facts(event, language, TITLE_MAX)
    bubble: JSONObject = {"type": "bubble", "body": _body(event.kind, f)}
    button = _open_button(f)
    if button is not None:
        bubble["footer"] = {"type": "box", "layout": "vertical", "contents": [button]}
    return {"type": "flex", "altText": alt_text(f), "contents": bubble}


def _body(kind: EventKind, f: Facts) -> JSONObject:
    rows = [_row(name, value) for name, value in f.detail_lines()]
    return {
        "type": "box",
        "layout": "vertical",
        "spacing": "md",
        "contents": [
            _text(f.headline, weight="bold", size="sm", color=_ACCENTS.get(kind, "#212121")),
            _text(f.title, weight="bold", size="md", wrap=True, maxLines=4),
            {"type": "box", "layout": "vertical", "spacing": "sm", "contents": rows},
        ],
    }


def _row(name: str, value: str) -> JSONObject:
    return {
        "type": "box",
        "layout": "baseline",
        "spacing": "sm",
        "contents": [
            _text(name, size="sm", color="#8C8C8C", flex=2),
            _text(value, size="sm", color="#212121", flex=5, wrap=True),
        ],
    }


def _open_button(f: Facts) -> JSONObject | None:
    if not f.url or len(f.url) > URI_MAX:
        return None  # LINE refuses the whole message over a link it cannot take
    return {
        "type": "button",
        "style": "primary",
        "height": "sm",
        "action": {"type": "uri", "label": f.labels["open"], "uri": f.url},
    }


def _text(text: str, **style: Any) -> JSONObject:
    return {"type": "text", "text": text or "-", **style}
