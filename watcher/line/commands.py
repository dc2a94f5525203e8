"""What a LINE user types, read as a command, in Japanese or English. Pure.

The commands are the Telegram bot's, written as words (LINE has no slash commands):
`登録 / watch <URL or JAN> [上限価格] [新品|中古|指定なし]`, `一覧 / list`, `停止 / pause [番号]`,
`再開 / resume [番号]`, `解除 / unwatch 番号`, `ヘルプ / help`. A leading slash is allowed, a bare
link or JAN code means `watch`. The command word also picks the answer's language.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from watcher.bot.parse import ButtonAction, Language, looks_like_target

# Command words: (command, the language it is written in).
_WORDS: dict[str, tuple[str, Language]] = {
    "登録": ("watch", "ja"),
    "追加": ("watch", "ja"),
    "watch": ("watch", "en"),
    "add": ("watch", "en"),
    "一覧": ("list", "ja"),
    "リスト": ("list", "ja"),
    "list": ("list", "en"),
    "停止": ("pause", "ja"),
    "一時停止": ("pause", "ja"),
    "pause": ("pause", "en"),
    "再開": ("resume", "ja"),
    "resume": ("resume", "en"),
    "解除": ("unwatch", "ja"),
    "削除": ("unwatch", "ja"),
    "unwatch": ("unwatch", "en"),
    "remove": ("unwatch", "en"),
    "ヘルプ": ("help", "ja"),
    "使い方": ("help", "ja"),
    "help": ("help", "en"),
}
# Condition words of the LINE bot that the shared parser spells differently.
_SYNONYMS = {"指定なし": "any", "なし": "any"}
_POSTBACK = re.compile(r"([pur]):([0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class LineCommand:
    name: str  # watch, list, pause, resume, unwatch, help
    args: tuple[str, ...] = ()
    language: Language | None = None  # None: no command word said which (a bare link)


def parse_text(text: str) -> LineCommand | None:
    """The command in a message, or None for a message that is none."""
    words = unicodedata.normalize("NFKC", text).split()
    if not words:
        return None
    head = words[0].removeprefix("/").casefold()
    found = _WORDS.get(head)
    if found is not None:
        name, language = found
        return LineCommand(name, tuple(_SYNONYMS.get(w, w) for w in words[1:]), language)
    if looks_like_target(words[0]):
        return LineCommand("watch", tuple(_SYNONYMS.get(w, w) for w in words))
    return None


def postback_data(action: ButtonAction, subscription_id: int) -> str:
    return f"{action.value}:{subscription_id}"


def parse_postback(data: str | None) -> tuple[ButtonAction, int] | None:
    """A postback we wrote ourselves, or None for anything else."""
    match = _POSTBACK.fullmatch(data or "")
    if match is None:
        return None
    return ButtonAction(match.group(1)), int(match.group(2))
