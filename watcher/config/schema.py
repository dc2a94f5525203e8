"""The watchlist format: the pydantic models of its sections, and its JSON Schema.

The models are the format's single definition: validation (`watcher.config.load`), the JSON
Schema (`restock schema`) and its descriptions come from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import PydanticCustomError

from watcher.config.types import (
    BuyableState,
    ChatId,
    ClockTime,
    Count,
    Duration,
    EmailAddress,
    EventName,
    HttpUrl,
    Jan,
    LineUserId,
    Listen,
    Mailbox,
    NonNegative,
    Port,
    PositiveDuration,
    StoreName,
    Timezone,
    Weekdays,
    Workers,
    Yen,
    format_duration,
)
from watcher.core.model import (
    DEFAULT_EVENTS,
    Availability,
    ConditionFilter,
    EventKind,
    Notify,
    SellerFilter,
    TextRules,
)
from watcher.secret import Secret
from watcher.stores._base import HostLimits


def _non_empty_secret(value: Secret) -> Secret:
    if not value:
        raise PydanticCustomError("empty_secret", "is empty")
    return value


def _non_empty_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("empty_text", "must not be empty")
    return value


def _enum_schema(enum: type[StrEnum]) -> WithJsonSchema:
    # The schema describes the values here, not through the shared enum's docstring.
    return WithJsonSchema({"type": "string", "enum": [member.value for member in enum]})


RequiredSecret = Annotated[Secret, AfterValidator(_non_empty_secret)]
Text = Annotated[str, AfterValidator(_non_empty_text)]


class _Section(BaseModel):
    """Every part of the file: unknown keys are errors, values are read-only once loaded."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True
    )


# -- settings ----------------------------------------------------------------------------------


class Debounce(_Section):
    """How sure the watcher must be before it tells anyone."""

    confirm: Count = 2
    """Consecutive buyable observations before a restock fires (the confirming re-check runs at
    once)."""
    rearm: Count = 2
    """Consecutive not-buyable observations before the watch may fire again."""
    cooldown: Duration = timedelta(minutes=10)
    """Least time between two restock events of one watch."""


class HostPoliteness(_Section):
    """Limits for a host that neither a store nor a `hosts` entry sets."""

    concurrency: Count = 2
    """Most requests in flight to one host."""
    min_delay: Duration = timedelta(seconds=1)
    """Least delay between two requests to one host."""
    min_interval: Duration = timedelta(seconds=30)
    """Floor on any product's check interval on this host."""

    def limits(self) -> HostLimits:
        return HostLimits(self.concurrency, self.min_delay, self.min_interval)


class HostOverride(_Section):
    """One host's limits; each key given overrides the store's own gentle default."""

    concurrency: Count | None = None
    """Most requests in flight to this host."""
    min_delay: Duration | None = None
    """Least delay between two requests to this host."""
    min_interval: Duration | None = None
    """Floor on any product's check interval on this host."""


class Politeness(_Section):
    """Per-host limits: shops block floods."""

    default: HostPoliteness = HostPoliteness()
    """Limits of hosts that no store adapter knows (the generic adapter)."""
    hosts: dict[str, HostOverride] = {}
    """Host name (or `*.domain` for its subdomains) -> limits that override the store's."""

    @field_validator("hosts")
    @classmethod
    def _lower_hosts(cls, hosts: dict[str, HostOverride]) -> dict[str, HostOverride]:
        return {host.lower().rstrip("."): limits for host, limits in hosts.items()}

    def limits_for(self, host: str, store_limits: HostLimits | None = None) -> HostLimits:
        """A host's limits: its `hosts` entry over the store's defaults over `default`."""
        base = store_limits or self.default.limits()
        entry = self._entry_for(host.lower().rstrip("."))
        if entry is None:
            return base
        given = {k: v for k, v in entry.model_dump().items() if v is not None}
        return replace(base, **given)

    def _entry_for(self, host: str) -> HostOverride | None:
        if host in self.hosts:
            return self.hosts[host]
        for pattern, entry in self.hosts.items():
            if pattern.startswith("*.") and (host.endswith(pattern[1:]) or host == pattern[2:]):
                return entry
        return None


class Server(_Section):
    """The optional HTTP endpoint: /healthz, /metrics, one-click unsubscribe, the web UI."""

    listen: Listen = "127.0.0.1:8787"
    """Address and port to listen on."""
    public_url: HttpUrl | None = None
    """The URL people reach the server at (used in List-Unsubscribe links)."""
    web: bool = False
    """Serve the web UI at / and its JSON API at /api/ (off loopback it needs RESTOCK_WEB_TOKEN)."""
    web_adds_per_day: Count = 50
    """Exposed web UI (off loopback, or with RESTOCK_WEB_TOKEN): most watches added in 24 hours."""
    web_watches: Count = 500
    """Exposed web UI: most watches added through it that may be active at once."""


class HotWindow(_Section):
    """A time window (in `settings.timezone`) in which products are polled faster."""

    days: Weekdays
    """Days it applies: mon-sun, mon-fri, sat,sun or a comma list of days and ranges."""
    start: ClockTime = Field(alias="from")
    """Start, "HH:MM"."""
    end: ClockTime = Field(alias="to")
    """End, "HH:MM" (not included); earlier than `from` means the window runs past midnight,
    "24:00" is the end of the day."""
    interval: PositiveDuration
    """Check interval inside the window (a product's own interval still wins when shorter)."""

    @model_validator(mode="after")
    def _not_empty(self) -> HotWindow:
        if self.start == self.end:
            raise PydanticCustomError("window", "`from` and `to` are the same time")
        return self

    def contains(self, weekday: int, moment: time) -> bool:
        """True when `moment` on `weekday` (mon = 0) falls inside the window."""
        if self.start < self.end:
            return weekday in self.days and self.start <= moment < self.end
        if moment >= self.start:
            return weekday in self.days
        return (weekday - 1) % 7 in self.days and moment < self.end


# Restocks cluster at night (cancellations, inventory runs) and in office hours on weekdays.
_DEFAULT_HOT_WINDOWS_JSON: list[JsonValue] = [
    {"days": "mon-sun", "from": "00:00", "to": "05:00", "interval": "1m"},
    {"days": "mon-fri", "from": "10:00", "to": "17:00", "interval": "2m"},
]


def _default_hot_windows() -> list[HotWindow]:
    return [HotWindow.model_validate(window) for window in _DEFAULT_HOT_WINDOWS_JSON]


class XPosting(_Section):
    """How the public X account posts."""

    daily_budget: NonNegative = 15
    """Most posts per day (X's free API tier allows roughly 500 a month); 0 stops posting."""
    include_url: bool = True
    """Put the product link in the post."""
    max_age: PositiveDuration = timedelta(minutes=30)
    """An event older than this when its turn comes is not posted (old news on X)."""


class Dispatch(_Section):
    """Delivery of messages."""

    max_attempts: Count = 8
    """Tries per delivery before it is given up as dead."""


class Settings(_Section):
    """How the watcher runs."""

    database: str = "restock.sqlite3"
    """SQLite file path (relative: to the watchlist file's folder), or a database URL
    (`sqlite:///path`, `postgresql://user@host/db`)."""
    timezone: Timezone = "Asia/Tokyo"
    """IANA time zone of hot windows and message times."""
    default_interval: PositiveDuration = timedelta(minutes=5)
    """Check interval of a watch that sets none."""
    user_agent: str | None = None
    """User-Agent header of fetches; null: the project's default."""
    debounce: Debounce = Debounce()
    politeness: Politeness = Politeness()
    adaptive: bool = False
    """Bias polling towards the hours when this product or store restocked before."""
    server: Server | None = None
    hot_windows: list[HotWindow] = Field(
        default_factory=_default_hot_windows,
        json_schema_extra={"default": _DEFAULT_HOT_WINDOWS_JSON},
    )
    """Windows of faster polling; absent: nights 0-5 daily at 1m and weekdays 10-17 at 2m;
    [] turns them off."""
    global_concurrency: Count = 64
    """Most fetches in flight over all hosts (each host's own `concurrency` still holds); 64
    keeps the engine busy while fetches wait on the network, measured by bench/compare.py."""
    parse_workers: Workers = "auto"
    """Processes that fetch and parse pages beside the main one; 0 fetches and parses in the
    main process; auto: none on one core, else one per core, at most 2."""
    language: Literal["ja", "en"] = "ja"
    """Language of messages."""
    x: XPosting = XPosting()
    dispatch: Dispatch = Dispatch()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# -- notifiers ---------------------------------------------------------------------------------


class ConsoleNotifier(_Section):
    """Prints messages to standard output; always available."""

    @model_validator(mode="before")
    @classmethod
    def _blank_is_empty(cls, data: Any) -> Any:
        return {} if data is None or data is True else data


class WebhookNotifier(_Section):
    """POSTs one JSON object per event."""

    url: HttpUrl
    """Where to POST."""
    headers: dict[str, Secret] = {}
    """Extra request headers (values are kept secret, e.g. an Authorization token)."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """Give up on a request after this long (it is retried later)."""


DEFAULT_ALLOWED_HOSTS = (
    "www.amazon.co.jp",
    "amazon.co.jp",
    "item.rakuten.co.jp",
    "store.shopping.yahoo.co.jp",
    "paypaymall.yahoo.co.jp",
    "*.base.shop",
    "*.thebase.in",
)


class TelegramNotifier(_Section):
    """Telegram messages, and optionally the shoppers' chat bot."""

    token: RequiredSecret
    """Bot token from @BotFather (use ${TELEGRAM_BOT_TOKEN})."""
    api_base_url: HttpUrl = "https://api.telegram.org"
    """Bot API server (a self-hosted one works too)."""
    bot: bool = False
    """Run the shoppers' chat bot (/watch, /list, ...)."""
    admins: list[ChatId] = []
    """Chat ids allowed /stats and /broadcast."""
    allowed_hosts: list[str] = list(DEFAULT_ALLOWED_HOSTS)
    """Hosts chat users may watch (`*.domain` for subdomains); private addresses never."""
    max_watches_per_user: Count = 20
    """Most watches one chat user may hold."""


_TLS_PORTS = {"starttls": 587, "implicit": 465, "none": 25}


class EmailNotifier(_Section):
    """E-mail through an SMTP server or a local relay."""

    host: Text
    """SMTP server host."""
    port: Port = 587
    """SMTP port; default from `tls`: 587 starttls, 465 implicit, 25 none."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """starttls | implicit | none (none only for a local relay)."""
    username: str | None = None
    """Login name; null for a relay without login."""
    password: Secret | None = Field(default=None, validate_default=True)
    """Login password (use ${SMTP_PASSWORD}); required with a username."""
    sender: Mailbox
    """From: header, e.g. "Restock <restock@example.com>"."""
    public_url: HttpUrl | None = None
    """Base URL of one-click unsubscribe links (defaults to settings.server.public_url)."""

    @model_validator(mode="before")
    @classmethod
    def _port_from_tls(cls, data: Any) -> Any:
        if isinstance(data, dict) and "port" not in data and data.get("tls") in _TLS_PORTS:
            return {**data, "port": _TLS_PORTS[data["tls"]]}
        return data

    @field_validator("password")
    @classmethod
    def _password_with_username(cls, value: Secret | None, info: Any) -> Secret | None:
        if info.data.get("username") and not value:
            raise PydanticCustomError("empty_secret", "is empty (required with a username)")
        return value


class XNotifier(_Section):
    """Posts on the operator's public X account (OAuth 1.0a user context)."""

    consumer_key: RequiredSecret
    consumer_secret: RequiredSecret
    access_token: RequiredSecret
    access_token_secret: RequiredSecret


class LineNotifier(_Section):
    """LINE Messaging API: alerts by push and multicast, and optionally the shoppers' chat bot."""

    channel_access_token: RequiredSecret
    """Channel access token of the Messaging API channel (use ${LINE_CHANNEL_ACCESS_TOKEN})."""
    channel_secret: Secret | None = None
    """Channel secret that signs LINE's webhook (use ${LINE_CHANNEL_SECRET}); the bot needs it."""
    api_base_url: HttpUrl = "https://api.line.me"
    """Messaging API server."""
    bot: bool = False
    """Run the shoppers' chat bot on settings.server's /line/webhook (登録, 一覧, ...)."""
    quota_policy: Literal["stop", "oldest_first"] = "stop"
    """When an alert's fan-out exceeds the monthly message quota left: stop (send it to nobody)
    or oldest_first (the longest-standing subscriptions get it); the rest are dead-lettered."""
    max_watches_per_user: Count = 20
    """Most watches one LINE user may hold."""

    @model_validator(mode="after")
    def _bot_needs_secret(self) -> LineNotifier:
        if self.bot and not self.channel_secret:
            raise PydanticCustomError(
                "line_bot_secret", "bot: true needs channel_secret (it verifies LINE's webhook)"
            )
        return self


def _webhook_url_secret(value: Secret) -> Secret:
    if not value.reveal().startswith(("https://", "http://")):
        raise PydanticCustomError("discord_webhook_url", "must be an http(s) webhook URL")
    return value


class DiscordNotifier(_Section):
    """Embeds posted to a Discord channel's webhook."""

    webhook_url: Annotated[RequiredSecret, AfterValidator(_webhook_url_secret)]
    """The channel's webhook URL (it holds a token: use ${DISCORD_WEBHOOK_URL})."""


class Notifiers(_Section):
    """Channels; a watch may only notify a channel configured here (console always is)."""

    console: ConsoleNotifier = ConsoleNotifier()
    webhook: WebhookNotifier | None = None
    telegram: TelegramNotifier | None = None
    email: EmailNotifier | None = None
    x: XNotifier | None = None
    line: LineNotifier | None = None
    discord: DiscordNotifier | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        optional = ("webhook", "telegram", "email", "x", "line", "discord")
        return ("console", *(name for name in optional if getattr(self, name) is not None))


# -- sources -----------------------------------------------------------------------------------


class RakutenSource(_Section):
    """Rakuten Ichiba item search API (Rakuten Web Service's current system)."""

    application_id: Secret | None = None
    """Application ID (use ${RAKUTEN_APPLICATION_ID}); empty: the source is skipped."""
    access_key: Secret | None = None
    """Access key of the same application (use ${RAKUTEN_ACCESS_KEY}); empty: skipped."""


class YahooShoppingSource(_Section):
    """Yahoo! Shopping item search API."""

    app_id: Secret | None = None
    """Client ID (use ${YAHOO_APP_ID}); empty: the source is skipped."""


class Sources(_Section):
    """JAN search sources; one without its credential is skipped (with a warning)."""

    rakuten: RakutenSource | None = None
    yahoo_shopping: YahooShoppingSource | None = None

    def credentials(self, name: str) -> dict[str, str] | None:
        """The revealed credentials of a usable source, keyed as in the file; None if absent."""
        section = getattr(self, name, None) if name in type(self).model_fields else None
        if not isinstance(section, BaseModel):
            return None
        values = {key: getattr(section, key) for key in type(section).model_fields}
        if not all(values.values()):
            return None
        return {key: value.reveal() for key, value in values.items()}


# -- watches -----------------------------------------------------------------------------------


class NotifyTargets(_Section):
    """Who hears about this watch; absent: the console."""

    telegram: list[ChatId] = []
    """Telegram chat ids."""
    email: list[EmailAddress] = []
    """E-mail addresses."""
    x: bool = False
    """Post on the public X account."""
    console: bool = False
    """Print to standard output."""
    webhook: bool = False
    """POST to the configured webhook."""
    line: list[LineUserId] = []
    """LINE user ids (they must have added the official account as a friend)."""
    discord: bool = False
    """Post to the configured Discord webhook."""

    def to_model(self) -> Notify:
        return Notify(
            telegram=tuple(self.telegram),
            email=tuple(self.email),
            x=self.x,
            console=self.console,
            webhook=self.webhook,
            line=tuple(self.line),
            discord=self.discord,
        )


_RULE_STATES = ("in_stock", "out_of_stock", "preorder", "backorder", "discontinued", "lottery")


class Rules(_Section):
    """The watch's own reading rules, for a page the built-in rules misread.

    Phrases are tried in the order written (state by state, as the keys appear) against the
    text of the `selector`'s elements (or the whole page); the first found decides the state.
    """

    selector: str | None = None
    """CSS selector of the elements whose text is read."""
    in_stock: list[Text] = []
    out_of_stock: list[Text] = []
    preorder: list[Text] = []
    backorder: list[Text] = []
    discontinued: list[Text] = []
    lottery: list[Text] = []
    """Wording of a lottery sale (抽選受付中): not buyable; `lottery_open` for watches that ask."""
    _order: tuple[str, ...] = PrivateAttr(default=_RULE_STATES)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler: Any) -> Any:
        rules = handler(data)
        if isinstance(data, Mapping):
            written = tuple(key for key in data if key in _RULE_STATES)
            rules._order = written + tuple(s for s in _RULE_STATES if s not in written)
        return rules

    def to_model(self) -> TextRules:
        phrases = tuple(
            (phrase, Availability(state))
            for state in self._order
            for phrase in getattr(self, state)
        )
        return TextRules(selector=self.selector, phrases=phrases)


class WatchEntry(_Section):
    """A product (a URL or a JAN code) and the buyer's conditions."""

    name: Text
    """Unique name; the watch's identity (its key is derived from it)."""
    url: HttpUrl | None = None
    """Product page (give url or jan, not both)."""
    jan: Jan | None = None
    """13-digit JAN code, searched across `stores` (quote it)."""
    store: StoreName | None = None
    """Force the adapter of a URL watch when the host does not tell it."""
    stores: list[StoreName] = []
    """Stores a JAN is searched in; empty: every store that can search."""
    max_price: Yen | None = None
    """Yen; offers above it do not count as buyable."""
    condition: Annotated[ConditionFilter, _enum_schema(ConditionFilter)] = ConditionFilter.ANY
    """new | used | any."""
    seller: Annotated[SellerFilter, _enum_schema(SellerFilter)] = SellerFilter.ANY
    """official (the store itself or the maker's shop) | any."""
    exclude_sellers: list[Text] = []
    """Sellers (or shops) whose offers never count; matched as case-insensitive parts."""
    buyable: list[BuyableState] = Field(default=[Availability.IN_STOCK], min_length=1)
    """States that count as buyable: in_stock, backorder, preorder."""
    variant: Text | None = None
    """Only this variation of the page (colour, size, SKU): matched against each variation row's
    name, option text or SKU (full-width and half-width alike, any letter case)."""
    interval: PositiveDuration | None = None
    """Check interval; absent: settings.default_interval."""
    once: bool = False
    """Notify once, then stop watching."""
    notify_on_first: bool = False
    """Also notify when it is already buyable at the first check."""
    events: list[EventName] = Field(
        default=[kind for kind in EventKind if kind in DEFAULT_EVENTS], min_length=1
    )
    """Events to send: restock, preorder_open, out_of_stock, price_drop, lottery_open (a lottery
    sale opened); absent: every one but lottery_open."""
    notify: NotifyTargets | None = None
    rules: Rules | None = None


class Watchlist(_Section):
    """A restock-watcher watchlist."""

    model_config = ConfigDict(title="restock-watcher watchlist")

    settings: Settings = Settings()
    notifiers: Notifiers = Notifiers()
    sources: Sources = Sources()
    watches: list[WatchEntry] = []


# -- the loaded configuration ------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the watchlist format (what `restock schema` prints)."""
    schema = Watchlist.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_WatchlistSchema
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_one_line(schema)}


class _WatchlistSchema(GenerateJsonSchema):
    """Shows default durations as they are written in the file ("5m"), not ISO 8601."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def _one_line(node: Any) -> Any:
    # Field docstrings wrap at the code's line length; editors show descriptions as one line.
    if isinstance(node, dict):
        return {
            key: " ".join(value.split()) if key == "description" else _one_line(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_one_line(item) for item in node]
    return node
