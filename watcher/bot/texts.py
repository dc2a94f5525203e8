"""What the chat bot says, in Japanese and English (Telegram HTML).

`say` escapes every value it fills in, so a product title or a user's own words can never become
markup; only values wrapped in `Html` (built here from escaped parts) go in as they are. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from notifiers.render import clean_text, escape_html, format_price, shorten, store_name
from watcher.bot.parse import Language
from watcher.core.model import Availability, ConditionFilter, EventKind, QuietHours, QuietMode
from watcher.storage.interface import AwaitedProduct, Stats, Subscription
from watcher.stores.registry import adapter_for

LIST_MAX = 25  # subscriptions shown in one /list message at most
LIST_BUDGET = 3800  # characters of HTML for them, leaving room under Telegram's 4096
LIST_TITLE_MAX = 60
AWAITED_TITLE_MAX = 50


class Html(str):
    """Text that is already safe Telegram HTML (built from escaped parts)."""

    __slots__ = ()


_HELP_JA = """<b>再入荷お知らせボット</b>
商品ページのURLかJANコードを送ると、在庫が戻ったときにお知らせします。

/watch URLかJAN [上限価格] [new|used|any] [always] [抽選]
  例: <code>/watch https://www.amazon.co.jp/dp/B0DX000000 6000 new</code>
  通知は1回だけ（always を付けると毎回）
  抽選 を付けると抽選販売の受付開始もお知らせ
/list 登録の一覧（一時停止・削除ボタン付き）
/unwatch 番号 — 登録を削除
/pause [番号] / /resume [番号] — 一時停止・再開（番号なしで全部）
/quiet 23:00-07:00 [hold|drop] — 通知しない時間帯（hold: あとで送る / drop: 送らない）
/quiet off — 解除
/stop — すべての通知を停止
対応ストア: {stores}"""

_HELP_EN = """<b>Restock alert bot</b>
Send a product page URL or a JAN code and I will tell you when it is back in stock.

/watch URL-or-JAN [max price] [new|used|any] [always] [lottery]
  e.g. <code>/watch https://www.amazon.co.jp/dp/B0DX000000 6000 new</code>
  one message by default (add always for every restock)
  add lottery to hear when a lottery sale opens too
/list your watches (with pause and remove buttons)
/unwatch number — remove a watch
/pause [number] / /resume [number] — pause or resume (all without a number)
/quiet 23:00-07:00 [hold|drop] — quiet hours (hold: send later / drop: skip)
/quiet off — no quiet hours
/stop — stop every alert
Stores: {stores}"""

TEXTS: dict[Language, dict[str, str]] = {
    "ja": {
        "help": _HELP_JA,
        "unknown_command": "知らないコマンドです。/help をご覧ください。",
        "not_a_command": "商品ページのURLかJANコードを送ってください。使い方は /help",
        "too_long": "メッセージが長すぎます。",
        "control": "読めない文字が含まれています。",
        "rate_limited": "コマンドが多すぎます。1分ほど待ってから送ってください。",
        "watch_usage": "使い方: /watch URLかJAN [上限価格] [new|used|any] [always] [抽選]",
        "bad_target": "URLかJANコードを指定してください: {arg}",
        "bad_jan": "JANコードが正しくありません: {reason}",
        "jan_unavailable": "JANコードでの登録は現在使えません。商品ページのURLを送ってください。",
        "bad_url": "このURLは登録できません。対応ストア: {stores}",
        "bad_arg": "わからない指定です: {arg}（価格・new/used/any・always・抽選 が使えます）",
        "bad_price": "価格が正しくありません: {arg}",
        "duplicate_arg": "同じ種類の指定が2回あります: {arg}",
        "quota": "登録できるのは{max}件までです。/list から不要なものを削除してください。",
        "subscribed": "🔔 登録しました: <b>{name}</b>\n{details}\n/list で確認・停止できます。",
        "once": "1回だけ通知",
        "standing": "毎回通知",
        "max_price": "{price}以下",
        "new": "新品",
        "used": "中古",
        "paused_mark": "⏸ 停止中",
        "lottery_alerts": "抽選も通知",
        "lottery_now": "🎟 抽選受付中",
        "list_header": "<b>登録一覧</b>（{count}件）",
        "list_more": "…ほか{count}件（/unwatch や /pause で番号を指定できます）",
        "list_empty": "登録はありません。/watch URLかJAN で登録できます。",
        "bad_selector": "番号が正しくありません: {arg}",
        "not_found": "その登録は見つかりません。/list で番号を確認してください。",
        "unwatch_usage": "使い方: /unwatch 番号（/list の番号）",
        "removed": "🗑 削除しました: <b>{name}</b>",
        "paused_one": "⏸ 一時停止しました: <b>{name}</b>",
        "resumed_one": "▶️ 再開しました: <b>{name}</b>",
        "paused_all": "⏸ {count}件を一時停止しました。",
        "resumed_all": "▶️ {count}件を再開しました。",
        "quiet_usage": "使い方: /quiet 23:00-07:00 [hold|drop] または /quiet off",
        "quiet_empty": "開始と終了が同じ時刻です。",
        "bad_time": "時刻が正しくありません: {arg}（例: 23:00）",
        "quiet_set": "🌙 {start}〜{end} は通知しません（{mode}）。",
        "quiet_hold": "その間のお知らせはあとで送ります",
        "quiet_drop": "その間のお知らせは送りません",
        "quiet_off": "通知しない時間帯を解除しました。",
        "stopped": "通知を停止しました（{count}件の登録を終了）。"
        "また使うときは /watch で登録してください。",
        "link_unknown": "このリンクの商品は現在登録できません。",
        "admins_only": "グループの登録を変更できるのは、このグループの管理者だけです。",
        "admin_check_failed": "管理者かどうかを確認できませんでした。"
        "少し待ってからもう一度お試しください。",
        "broadcast_usage": "使い方: /broadcast 本文",
        "broadcast_started": "{count}件のチャットに送信します。",
        "broadcast_done": "送信完了: {sent}件成功、{failed}件失敗。",
        "button_paused": "一時停止しました",
        "button_resumed": "再開しました",
        "button_removed": "削除しました",
        "button_gone": "この登録はもうありません",
        "pause_button": "⏸ {n}",
        "resume_button": "▶️ {n}",
        "remove_button": "🗑 {n}",
        "stats": "<b>統計</b>\nユーザー: {users}（有効 {active}、ブロック {blocked}）\n"
        "ウォッチ: {watches}\n購読: {subscriptions}\n"
        "<b>ストア別 チェック / ブロック</b>\n{stores}\n<b>待っている人が多い商品</b>\n{awaited}",
        "none": "なし",
    },
    "en": {
        "help": _HELP_EN,
        "unknown_command": "Unknown command. See /help.",
        "not_a_command": "Send a product page URL or a JAN code. See /help.",
        "too_long": "That message is too long.",
        "control": "That message contains characters I cannot read.",
        "rate_limited": "Too many commands. Please wait a minute.",
        "watch_usage": "Usage: /watch URL-or-JAN [max price] [new|used|any] [always] [lottery]",
        "bad_target": "Please give a URL or a JAN code: {arg}",
        "bad_jan": "Invalid JAN code: {reason}",
        "jan_unavailable": "Watching by JAN code is not available here; send the product page URL.",
        "bad_url": "That URL cannot be watched. Stores: {stores}",
        "bad_arg": "I do not understand {arg} (a price, new/used/any, always or lottery)",
        "bad_price": "Invalid price: {arg}",
        "duplicate_arg": "The same kind of option twice: {arg}",
        "quota": "You can have at most {max} watches. Remove some from /list first.",
        "subscribed": "🔔 Watching: <b>{name}</b>\n{details}\nSee /list to check or stop.",
        "once": "one message",
        "standing": "every restock",
        "max_price": "up to {price}",
        "new": "new",
        "used": "used",
        "paused_mark": "⏸ paused",
        "lottery_alerts": "lottery alerts too",
        "lottery_now": "🎟 lottery open (抽選受付中)",
        "list_header": "<b>Your watches</b> ({count})",
        "list_more": "…and {count} more (/unwatch and /pause take their numbers)",
        "list_empty": "No watches. Add one with /watch URL-or-JAN.",
        "bad_selector": "Invalid number: {arg}",
        "not_found": "No such watch. See /list for the numbers.",
        "unwatch_usage": "Usage: /unwatch number (from /list)",
        "removed": "🗑 Removed: <b>{name}</b>",
        "paused_one": "⏸ Paused: <b>{name}</b>",
        "resumed_one": "▶️ Resumed: <b>{name}</b>",
        "paused_all": "⏸ Paused {count} watches.",
        "resumed_all": "▶️ Resumed {count} watches.",
        "quiet_usage": "Usage: /quiet 23:00-07:00 [hold|drop] or /quiet off",
        "quiet_empty": "The quiet hours start and end at the same time.",
        "bad_time": "Invalid time: {arg} (e.g. 23:00)",
        "quiet_set": "🌙 Quiet from {start} to {end} ({mode}).",
        "quiet_hold": "alerts in between are sent afterwards",
        "quiet_drop": "alerts in between are skipped",
        "quiet_off": "Quiet hours are off.",
        "stopped": "Stopped ({count} watches ended). Use /watch to start again.",
        "link_unknown": "This link's product cannot be watched right now.",
        "admins_only": "Only this group's admins can change its watches.",
        "admin_check_failed": "I could not check that you are an admin here. Please try again "
        "in a moment.",
        "broadcast_usage": "Usage: /broadcast text",
        "broadcast_started": "Sending to {count} chats.",
        "broadcast_done": "Broadcast done: {sent} sent, {failed} failed.",
        "button_paused": "Paused",
        "button_resumed": "Resumed",
        "button_removed": "Removed",
        "button_gone": "This watch no longer exists",
        "pause_button": "⏸ {n}",
        "resume_button": "▶️ {n}",
        "remove_button": "🗑 {n}",
        "stats": "<b>Stats</b>\nUsers: {users} (active {active}, blocked {blocked})\n"
        "Watches: {watches}\nSubscriptions: {subscriptions}\n"
        "<b>Checks / blocks per store</b>\n{stores}\n<b>Most awaited</b>\n{awaited}",
        "none": "none",
    },
}


def say(language: Language, key: str, **values: object) -> str:
    """The text `key` in `language`, every value escaped unless it is `Html`."""
    template = TEXTS[language][key]
    return template.format_map({name: _safe(value) for name, value in values.items()})


def plain(language: Language, key: str, **values: object) -> str:
    """A text for places that take no markup (button labels, callback answers)."""
    template = TEXTS[language][key]
    return template.format_map({name: str(value) for name, value in values.items()})


def _safe(value: object) -> str:
    if isinstance(value, Html):
        return str(value)
    return escape_html(str(value))


def help_text(language: Language, stores: str) -> str:
    return say(language, "help", stores=stores)


def stores_text(allowed_hosts: Sequence[str]) -> str:
    """The allowed hosts as shoppers know them: "Amazon.co.jp, 楽天市場, BASE"."""
    names: dict[str, None] = {}
    for pattern in allowed_hosts:
        host = pattern.removeprefix("*.")
        store = adapter_for(f"https://{host}/").name
        names[store_label(store, f"https://{host}/") or host] = None
    return ", ".join(names)


def target_label(target: str, max_chars: int = LIST_TITLE_MAX) -> str:
    """A subscription's product as a person reads it: "JAN 4901234567894" or a short URL."""
    if target.startswith("jan:"):
        return "JAN " + target[4:]
    parts = urlsplit(target)
    shown = (parts.hostname or "") + parts.path
    if parts.query:
        shown += "?" + parts.query
    return shorten(clean_text(shown or target), max_chars)


def subscription_name(sub: Subscription) -> str:
    """The watch's own name when it has one, else its product."""
    if sub.watch_name and sub.watch_name != sub.target:
        return shorten(clean_text(sub.watch_name), LIST_TITLE_MAX)
    return target_label(sub.target)


def store_label(store: str | None, target: str) -> str | None:
    """The store's display name; the host for stores read by the generic adapter."""
    if store in (None, "generic"):
        host = urlsplit(target).hostname
        return host if host and not target.startswith("jan:") else None
    return store_name(store)


def details_line(
    language: Language,
    *,
    store: str | None,
    target: str,
    max_price: int | None,
    condition: ConditionFilter,
    one_shot: bool,
    paused: bool = False,
    lottery: bool = False,
    state: Availability | None = None,
) -> str:
    """ "Amazon.co.jp · up to ¥6,000 · new · one message" (escaped); `lottery`: the watch asks
    for lottery sales too; `state`: the product's last known state (a lottery is shown)."""
    texts = TEXTS[language]
    parts = [store_label(store, target) or ""]
    if max_price is not None:
        parts.append(texts["max_price"].format(price=format_price(max_price)))
    if condition is not ConditionFilter.ANY:
        parts.append(texts[condition.value])
    parts.append(texts["once"] if one_shot else texts["standing"])
    if lottery:
        parts.append(texts["lottery_alerts"])
    if state is Availability.LOTTERY:
        parts.append(texts["lottery_now"])
    if paused:
        parts.append(texts["paused_mark"])
    return escape_html(" · ".join(p for p in parts if p))


def subscription_line(
    language: Language, number: int, sub: Subscription, forecast: str | None = None
) -> str:
    details = details_line(
        language,
        store=sub.store,
        target=sub.target,
        max_price=sub.conditions.max_price,
        condition=sub.conditions.condition,
        one_shot=sub.one_shot,
        paused=sub.paused,
        lottery=EventKind.LOTTERY_OPEN in sub.conditions.events,
        state=sub.last_state,
    )
    line = f"{number}. <b>{escape_html(subscription_name(sub))}</b>\n    {details}"
    return f"{line}\n    🕑 {escape_html(forecast)}" if forecast else line


def list_page(
    language: Language,
    subs: Sequence[Subscription],
    forecasts: Mapping[int, str] | None = None,
) -> tuple[str, int]:
    """The /list message and how many subscriptions it shows (as many as fit one message).

    `forecasts` holds the restock-hour forecast of some subscriptions, by subscription id.
    """
    if not subs:
        return say(language, "list_empty"), 0
    lines = [say(language, "list_header", count=len(subs))]
    used = len(lines[0])
    shown = 0
    for number, sub in enumerate(subs[:LIST_MAX], start=1):
        line = subscription_line(language, number, sub, (forecasts or {}).get(sub.id))
        if used + len(line) + 1 > LIST_BUDGET:
            break
        lines.append(line)
        used += len(line) + 1
        shown = number
    if shown < len(subs):
        lines.append(say(language, "list_more", count=len(subs) - shown))
    return "\n".join(lines), shown


def quiet_text(language: Language, quiet: QuietHours) -> str:
    mode_key = "quiet_hold" if quiet.mode is QuietMode.HOLD else "quiet_drop"
    return say(
        language,
        "quiet_set",
        start=quiet.start.strftime("%H:%M"),
        end=quiet.end.strftime("%H:%M"),
        mode=TEXTS[language][mode_key],
    )


def stats_text(language: Language, stats: Stats) -> str:
    none = escape_html(TEXTS[language]["none"])
    watches = ", ".join(f"{origin} {n}" for origin, n in sorted(stats.watches.items()))
    blocks = stats.blocks_by_store
    stores = [
        f"{escape_html(store_name(store) or store)}: {checks} / {blocks.get(store, 0)}"
        for store, checks in sorted(stats.checks_by_store.items())
    ]
    awaited = [_awaited_line(n, p) for n, p in enumerate(stats.most_awaited, start=1)]
    return say(
        language,
        "stats",
        users=stats.users,
        active=stats.active_users,
        blocked=stats.blocked_users,
        watches=watches or TEXTS[language]["none"],
        subscriptions=stats.subscriptions,
        stores=Html("\n".join(stores) or none),
        awaited=Html("\n".join(awaited) or none),
    )


def _awaited_line(number: int, product: AwaitedProduct) -> str:
    """One most-awaited product; its title comes from a shop page, so it is cleaned and escaped."""
    title = clean_text(product.title) or target_label(product.target)
    store = store_label(product.store, product.target) or "-"
    title = shorten(title, AWAITED_TITLE_MAX)
    return f"{number}. {escape_html(title)} ({escape_html(store)}): {product.waiting}"
