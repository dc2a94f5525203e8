"""`restock notify-test --config FILE --channel NAME [--to RECIPIENT]`: check a channel's setup.

Builds the channel's notifier exactly as `restock run` does and sends it one sample restock,
marked as a test in its title, to the recipients the watchlist names for that channel (or to
`--to`). One line per recipient says what happened; the exit code is 0 only if every one was sent.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.errors import UsageError

if TYPE_CHECKING:
    from notifiers.base import Notifier, SendResult
    from watcher.config.load import Config
    from watcher.core.model import Event

EXIT_ALL_SENT = 0
EXIT_NOT_ALL_SENT = 1

CHANNELS = ("telegram", "line", "discord", "x", "email", "webhook", "console")
# Channels whose one recipient is fixed: X posts on the operator's account, the others have none.
FIXED_RECIPIENTS = {"x": "public", "webhook": "-", "console": "-", "discord": "-"}
LINE_USER_ID = re.compile(r"U[0-9a-f]{32}")

SAMPLE_TITLE = "【テスト通知】restock-watcher の通知テストです / Test notification"
SAMPLE_URL = "https://example.com/restock-watcher/notify-test"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "notify-test",
        help="send a sample notification to check a channel's setup",
        description="Send one sample restock message, marked as a test, through a configured "
        "channel to the recipients the watchlist names for it (or to --to). Exit status: 0 when "
        "every message was sent, 1 when one was not, 2 for a usage error.",
    )
    parser.add_argument("--config", "-c", type=Path, required=True, help="the watchlist YAML")
    parser.add_argument("--channel", required=True, choices=CHANNELS, help="the channel to test")
    parser.add_argument(
        "--to",
        action="append",
        metavar="RECIPIENT",
        help="a Telegram chat id, a LINE user id or an e-mail address to send to instead "
        "(repeatable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from watcher.core.model import Outcome
    from watcher.service.wiring import build_notifiers

    config = _load(args.config)
    channel: str = args.channel
    if channel not in config.channels:
        raise UsageError(
            f"{channel} is not configured in {args.config}: add a `notifiers: {channel}:` section "
            f"(configured: {', '.join(config.channels)})"
        )
    recipients = recipients_for(config, channel, args.to or [], str(args.config))
    notifier = build_notifiers(config, only=[channel])[channel]
    now = datetime.now(UTC)
    results = asyncio.run(send_sample(notifier, sample_event(now), recipients))
    for recipient, result in zip(recipients, results, strict=True):
        print(result_line(channel, recipient, result))
    all_sent = all(r.outcome is Outcome.SENT for r in results)
    return EXIT_ALL_SENT if all_sent else EXIT_NOT_ALL_SENT


def _load(path: Path) -> Config:
    from watcher import logredact
    from watcher.config.load import load_config

    try:
        config = load_config(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    logredact.install()  # a channel's library may log a URL or an error holding a secret
    logredact.MASKED.set("watchlist", logredact.config_secrets(config))
    return config


def recipients_for(config: Config, channel: str, given: Sequence[str], source: str) -> list[str]:
    """`--to` when given, else every distinct recipient of `channel` across the watches."""
    from watcher.core.keys import notify_recipients

    if channel in FIXED_RECIPIENTS:
        if given:
            raise UsageError(f"--to does not apply to {channel}: it has no recipients to choose")
        return [FIXED_RECIPIENTS[channel]]
    if given:
        return [_checked_recipient(channel, text) for text in dict.fromkeys(given)]
    named = [r for w in config.watches for c, r in notify_recipients(w) if c == channel]
    if not named:
        raise UsageError(f"no watch in {source} notifies {channel}: pass --to RECIPIENT")
    return list(dict.fromkeys(named))


def _checked_recipient(channel: str, text: str) -> str:
    value = text.strip()
    if channel == "telegram" and not (value.lstrip("-").isdigit() or value.startswith("@")):
        raise UsageError(f"--to {text!r}: a Telegram recipient is a chat id like 123456789")
    if channel == "line" and not LINE_USER_ID.fullmatch(value):
        raise UsageError(f"--to {text!r}: a LINE recipient is a user id like U4af49806...")
    if channel == "email" and "@" not in value.strip("@"):
        raise UsageError(f"--to {text!r}: expected an e-mail address like me@example.com")
    return value


def sample_event(now: datetime) -> Event:
    """A restock of a sample product; its title says it is a test wherever it shows up.

    The id is negative, so it is no stored event's id, and differs from run to run, so a webhook
    receiver that deduplicates by Idempotency-Key still sees every test.
    """
    from watcher.core.model import Availability, Event, EventKind

    return Event(
        kind=EventKind.RESTOCK,
        watch_key="notify-test",
        watch_name="テスト通知 / notify-test",
        state=Availability.IN_STOCK,
        observed_at=now,
        url=SAMPLE_URL,
        price=4980,
        title=SAMPLE_TITLE,
        seller="restock-watcher",
        id=-int(now.timestamp()),
    )


async def send_sample(
    notifier: Notifier, event: Event, recipients: Sequence[str]
) -> list[SendResult]:
    from notifiers.base import Notice, SendResult

    notices = [Notice(delivery_id=0, event=event, recipient=r) for r in recipients]
    await notifier.start()
    try:
        results = await notifier.send_batch(notices)
    except Exception as exc:  # a notifier must not raise; say so instead of a traceback
        results = [SendResult.failed(f"notifier raised {type(exc).__name__}")] * len(notices)
    finally:
        await notifier.aclose()
    return results


def result_line(channel: str, recipient: str, result: SendResult) -> str:
    from watcher.core.model import Outcome

    line = f"{channel} {recipient}: {result.outcome.value}"
    if result.outcome is Outcome.RETRY and result.retry_at is not None:
        line += f", would be retried at {result.retry_at.isoformat(timespec='seconds')}"
    return f"{line} ({result.detail})" if result.detail else line
