"""The notification channels, one line each.

`NOTIFIERS` maps a channel name (as used in the watchlist's `notifiers:` section) to its class;
one line per channel, nothing registers itself on import.
"""

from __future__ import annotations

from notifiers.base import Notifier
from notifiers.console import ConsoleNotifier
from notifiers.discord import DiscordNotifier
from notifiers.email import EmailNotifier
from notifiers.line import LineNotifier
from notifiers.telegram import TelegramNotifier
from notifiers.webhook import WebhookNotifier
from notifiers.x import XNotifier

NOTIFIERS: dict[str, type[Notifier]] = {
    "console": ConsoleNotifier,
    "webhook": WebhookNotifier,
    "telegram": TelegramNotifier,
    "x": XNotifier,
    "email": EmailNotifier,
    "line": LineNotifier,
    "discord": DiscordNotifier,
}
