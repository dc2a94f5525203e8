"""Identities derived from the model: who a YAML watch notifies, which chat watch is shared.

Pure: the storage keys its rows by these, the front-ends and `restock notify-test` read them.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

from watcher.core.model import DEFAULT_EVENTS, Watch, WatchConditions

TELEGRAM = "telegram"


def canonical_conditions(conditions: WatchConditions) -> str:
    """A canonical JSON text: equal conditions give equal text (chat watches are keyed by it).

    `events` is written only when it differs from the default, so the texts (and the chat
    watch keys) of watches written before it existed stay what they were.
    """
    data: dict[str, Any] = {
        "max_price": conditions.max_price,
        "condition": conditions.condition.value,
        "seller": conditions.seller.value,
        "exclude_sellers": sorted(conditions.exclude_sellers),
        "buyable": sorted(state.value for state in conditions.buyable),
        "stores": sorted(conditions.stores),
    }
    if conditions.events != DEFAULT_EVENTS:
        data["events"] = sorted(kind.value for kind in conditions.events)
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def notify_recipients(watch: Watch) -> list[tuple[str, str]]:
    """A YAML watch's notify lists as (channel, recipient) subscriptions."""
    notify = watch.notify
    pairs = [(TELEGRAM, str(chat_id)) for chat_id in notify.telegram]
    pairs += [("email", address) for address in notify.email]
    if notify.x:
        pairs.append(("x", "public"))
    if notify.console:
        pairs.append(("console", "-"))
    if notify.webhook:
        pairs.append(("webhook", "-"))
    pairs += [("line", user_id) for user_id in notify.line]
    if notify.discord:
        pairs.append(("discord", "-"))
    return list(dict.fromkeys(pairs))


def chat_watch_key(target: str, conditions: WatchConditions) -> str:
    """The identity of the shared chat watch for a product under some conditions."""
    digest = hashlib.sha256(f"{target}\n{canonical_conditions(conditions)}".encode()).hexdigest()
    return f"chat:{digest[:24]}"


def web_watch_key(target: str, conditions: WatchConditions) -> str:
    """The identity of a watch added through the web: its product under its conditions."""
    digest = hashlib.sha256(f"{target}\n{canonical_conditions(conditions)}".encode()).hexdigest()
    return f"web:{digest[:24]}"


def watch_key(name: str) -> str:
    """A stable identity from a watch name: "Pokémon card box" -> "pokémon-card-box"."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[\W_]+", "-", folded).strip("-")
