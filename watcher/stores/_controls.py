"""Buy controls on a page: what a button says, and whether a shopper can press it."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborNode

from watcher.core.model import Availability
from watcher.stores._text import classify_wording

# Image buttons count by their alt text (EC-CUBE's <a><img alt="カゴに入れる"></a>).
CONTROLS = (
    "button, input[type=submit i], input[type=button i], input[type=image i],"
    " a[class*=cart i], a[id*=cart i], a[class*=buy i], a[id*=buy i], [role=button],"
    " a img[alt], button img[alt]"
)
LABEL_MAX = 200  # a "label" longer than this is a container, not a control's caption
_DISABLED_CLASS = re.compile(r"(?:^|[\s_-])disabled(?:$|[\s_-])", re.IGNORECASE)


def control_label(node: LexborNode) -> str:
    """What a control says: an input's value or alt, else its text, aria-label or title."""
    attrs = node.attributes
    if node.tag == "input":
        return attrs.get("value") or attrs.get("alt") or ""
    if node.tag == "img":
        return attrs.get("alt") or ""
    return node.text(separator=" ") or attrs.get("aria-label") or attrs.get("title") or ""


def disabled(node: LexborNode) -> bool:
    """Disabled by the attribute, aria-disabled="true", or a class holding the word disabled
    (an image button: on its link or button)."""
    if node.tag == "img" and node.parent is not None:
        node = node.parent
    attrs = node.attributes
    return (
        "disabled" in attrs
        or (attrs.get("aria-disabled") or "").strip().lower() == "true"
        or _DISABLED_CLASS.search(attrs.get("class") or "") is not None
    )


def control_state(node: LexborNode) -> tuple[Availability, str] | None:
    """The state a control states and its phrase: a disabled buy control says out of stock
    (phrase ``disabled:<label>``); None for a control that says nothing about stock."""
    label = control_label(node)
    if len(label) > LABEL_MAX * 4:
        return None
    found = classify_wording(label)
    if found is None:
        return None
    state, phrase = found
    if state.orderable and disabled(node):
        return Availability.OUT_OF_STOCK, f"disabled:{phrase}"
    return state, phrase
