"""What the LINE bot says, in Japanese and English: plain text (LINE shows text literally). Pure.

Values filled in are cleaned of control characters and cut short; nothing needs escaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notifiers.render import clean_text, format_price, shorten
from watcher.bot.parse import ButtonAction, Language
from watcher.bot.texts import store_label, subscription_name
from watcher.core.model import ConditionFilter
from watcher.line.commands import postback_data
from watcher.storage.interface import Subscription

ECHO_MAX = 80  # characters of a user's own input quoted back
ECHOED = frozenset({"arg", "reason"})  # values that quote what the user typed
LIST_MAX = 20  # subscriptions in one list message
QUICK_MAX = 13  # LINE's limit on quick reply buttons
LABEL_MAX = 20  # LINE's limit on a quick reply button's label
TEXT_MAX = 5000  # LINE's limit on a text message

_HELP_JA = """再入荷お知らせボット
商品ページのURLかJANコードを送ると、在庫が戻ったときにお知らせします。

登録 URLかJAN [上限価格] [新品|中古|指定なし]
  例: 登録 https://www.amazon.co.jp/dp/B0DX000000 6000 新品
一覧 … 登録の一覧
停止 [番号] / 再開 [番号] … 一時停止・再開（番号なしで全部）
解除 番号 … 登録を削除
ヘルプ … この説明
対応ストア: {stores}"""

_HELP_EN = """Restock alert bot
Send a product page URL or a JAN code and I will tell you when it is back in stock.

watch URL-or-JAN [max price] [new|used|any]
  e.g. watch https://www.amazon.co.jp/dp/B0DX000000 6000 new
list … your watches
pause [number] / resume [number] … pause or resume (all without a number)
unwatch number … remove a watch
help … this text
Stores: {stores}"""

TEXTS: dict[Language, dict[str, str]] = {
    "ja": {
        "help": _HELP_JA,
        "welcome": "友だち追加ありがとうございます。\n\n" + _HELP_JA,
        "not_a_command": "商品ページのURLかJANコードを送ってください。使い方は「ヘルプ」",
        "too_long": "メッセージが長すぎます。",
        "control": "読めない文字が含まれています。",
        "rate_limited": "メッセージが多すぎます。1分ほど待ってから送ってください。",
        "watch_usage": "使い方: 登録 URLかJAN [上限価格] [新品|中古|指定なし]",
        "bad_target": "URLかJANコードを指定してください: {arg}",
        "bad_jan": "JANコードが正しくありません: {reason}",
        "jan_unavailable": "JANコードでの登録は現在使えません。商品ページのURLを送ってください。",
        "bad_url": "このURLは登録できません。対応ストア: {stores}",
        "bad_arg": "わからない指定です: {arg}（価格・新品/中古/指定なし が使えます）",
        "bad_price": "価格が正しくありません: {arg}",
        "duplicate_arg": "同じ種類の指定が2回あります: {arg}",
        "quota": "登録できるのは{max}件までです。「一覧」から不要なものを解除してください。",
        "subscribed": "🔔 登録しました: {name}\n{details}\n「一覧」で確認・停止できます。",
        "max_price": "{price}以下",
        "new": "新品",
        "used": "中古",
        "once": "1回だけ通知",
        "standing": "毎回通知",
        "paused_mark": "⏸ 停止中",
        "list_header": "登録一覧（{count}件）",
        "list_more": "…ほか{count}件",
        "list_empty": "登録はありません。「登録 URLかJAN」で登録できます。",
        "bad_selector": "番号が正しくありません: {arg}",
        "not_found": "その登録は見つかりません。「一覧」で番号を確認してください。",
        "unwatch_usage": "使い方: 解除 番号（「一覧」の番号）",
        "removed": "🗑 解除しました: {name}",
        "paused_one": "⏸ 一時停止しました: {name}",
        "resumed_one": "▶️ 再開しました: {name}",
        "paused_all": "⏸ {count}件を一時停止しました。",
        "resumed_all": "▶️ {count}件を再開しました。",
        "button_gone": "この登録はもうありません。",
        "pause_button": "⏸ 停止 {n}",
        "resume_button": "▶️ 再開 {n}",
        "remove_button": "🗑 解除 {n}",
        "list_button": "一覧",
        "help_button": "ヘルプ",
    },
    "en": {
        "help": _HELP_EN,
        "welcome": "Thanks for adding me.\n\n" + _HELP_EN,
        "not_a_command": "Send a product page URL or a JAN code. Send help for more.",
        "too_long": "That message is too long.",
        "control": "That message contains characters I cannot read.",
        "rate_limited": "Too many messages. Please wait a minute.",
        "watch_usage": "Usage: watch URL-or-JAN [max price] [new|used|any]",
        "bad_target": "Please give a URL or a JAN code: {arg}",
        "bad_jan": "Invalid JAN code: {reason}",
        "jan_unavailable": "Watching by JAN code is not available here; send the product page URL.",
        "bad_url": "That URL cannot be watched. Stores: {stores}",
        "bad_arg": "I do not understand {arg} (a price, new/used/any)",
        "bad_price": "Invalid price: {arg}",
        "duplicate_arg": "The same kind of option twice: {arg}",
        "quota": "You can have at most {max} watches. Remove some first (send list).",
        "subscribed": "🔔 Watching: {name}\n{details}\nSend list to check or stop.",
        "max_price": "up to {price}",
        "new": "new",
        "used": "used",
        "once": "one message",
        "standing": "every restock",
        "paused_mark": "⏸ paused",
        "list_header": "Your watches ({count})",
        "list_more": "…and {count} more",
        "list_empty": "No watches yet. Send watch URL-or-JAN to add one.",
        "bad_selector": "Not a valid number: {arg}",
        "not_found": "No such watch. Send list to see the numbers.",
        "unwatch_usage": "Usage: unwatch number (from list)",
        "removed": "🗑 Removed: {name}",
        "paused_one": "⏸ Paused: {name}",
        "resumed_one": "▶️ Resumed: {name}",
        "paused_all": "⏸ Paused {count} watches.",
        "resumed_all": "▶️ Resumed {count} watches.",
        "button_gone": "That watch is gone.",
        "pause_button": "⏸ pause {n}",
        "resume_button": "▶️ resume {n}",
        "remove_button": "🗑 remove {n}",
        "list_button": "list",
        "help_button": "help",
    },
}


def say(language: Language, key: str, **values: object) -> str:
    """The text `key` with its values cleaned (one line, no control characters, short)."""
    cleaned = {
        name: clean_text(v, ECHO_MAX if name in ECHOED else None) if isinstance(v, str) else v
        for name, v in values.items()
    }
    return TEXTS[language][key].format_map(cleaned)


def text_message(text: str, quick: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "text", "text": shorten(text, TEXT_MAX)}
    if quick:
        message["quickReply"] = {"items": list(quick[:QUICK_MAX])}
    return message


def details(language: Language, sub: Subscription) -> str:
    """ "Amazon.co.jp · up to ¥6,000 · new · one message"."""
    texts = TEXTS[language]
    parts = [store_label(sub.store, sub.target) or ""]
    if sub.conditions.max_price is not None:
        parts.append(texts["max_price"].format(price=format_price(sub.conditions.max_price)))
    if sub.conditions.condition is ConditionFilter.NEW:
        parts.append(texts["new"])
    elif sub.conditions.condition is ConditionFilter.USED:
        parts.append(texts["used"])
    parts.append(texts["once"] if sub.one_shot else texts["standing"])
    if sub.paused:
        parts.append(texts["paused_mark"])
    return " · ".join(p for p in parts if p)


def subscribed(language: Language, sub: Subscription) -> str:
    texts = TEXTS[language]
    return texts["subscribed"].format(name=subscription_name(sub), details=details(language, sub))


def list_text(language: Language, subs: Sequence[Subscription]) -> str:
    if not subs:
        return TEXTS[language]["list_empty"]
    lines = [TEXTS[language]["list_header"].format(count=len(subs))]
    for number, sub in enumerate(subs[:LIST_MAX], start=1):
        lines.append(f"{number}. {subscription_name(sub)}\n    {details(language, sub)}")
    if len(subs) > LIST_MAX:
        lines.append(TEXTS[language]["list_more"].format(count=len(subs) - LIST_MAX))
    return "\n".join(lines)


def list_buttons(language: Language, subs: Sequence[Subscription]) -> list[dict[str, Any]]:
    """Quick replies for the first entries: pause or resume, and remove, as postbacks."""
    items: list[dict[str, Any]] = []
    for number, sub in enumerate(subs, start=1):
        if len(items) + 2 > QUICK_MAX - 1:  # one place kept for "help"
            break
        action = ButtonAction.RESUME if sub.paused else ButtonAction.PAUSE
        toggle = "resume_button" if sub.paused else "pause_button"
        items.append(_postback(language, toggle, number, action, sub.id))
        items.append(_postback(language, "remove_button", number, ButtonAction.REMOVE, sub.id))
    items.append(word_button(language, "help_button"))
    return items


def menu_buttons(language: Language) -> list[dict[str, Any]]:
    return [word_button(language, "list_button"), word_button(language, "help_button")]


def word_button(language: Language, key: str) -> dict[str, Any]:
    """A quick reply that sends a command word, as if the user had typed it."""
    label = TEXTS[language][key]
    return {"type": "action", "action": {"type": "message", "label": label, "text": label}}


def _postback(
    language: Language, key: str, number: int, action: ButtonAction, sub_id: int
) -> dict[str, Any]:
    label = shorten(TEXTS[language][key].format(n=number), LABEL_MAX)
    return {
        "type": "action",
        "action": {"type": "postback", "label": label, "data": postback_data(action, sub_id)},
    }
