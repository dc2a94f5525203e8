"""The web UI's routes: pages for people, `/api/` for scripts, behind `WebAccess`.

`WebApp.handle` answers the paths it owns and returns None for the others, so it hooks into the
status server beside /healthz, /metrics and /unsubscribe.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from watcher.core.forecast import RestockForecast, describe_forecast, forecast_for
from watcher.core.model import Availability, Observation
from watcher.net.netguard import URLGuard
from watcher.net.politeness import HostSnapshot
from watcher.storage.interface import Repository
from watcher.storage.views import Reading, WatchRow, WebViews
from watcher.subscriptions import Refused, Subscriptions, WatchRequest
from watcher.web import api
from watcher.web.budgets import ChannelBudget
from watcher.web.channels import MIN_GAP, TOO_SOON, ChannelTester
from watcher.web.forms import AddForm, FormError, parse_add_form
from watcher.web.i18n import (
    FORM_ERRORS,
    STATE_LABELS,
    WORDS,
    Language,
    form_error,
    language_of,
)
from watcher.web.listener import Request, Response
from watcher.web.quota import PER_DAY, TOTAL, WebQuota
from watcher.web.security import (
    CSRF_FIELD,
    LANGUAGE_COOKIE,
    SECURITY_HEADERS,
    WebAccess,
    cookies_of,
    language_cookie,
    proxied,
    session_cookie,
)
from watcher.web.svg import price_svg, strip_svg, timeline_svg
from watcher.web.timeline import bands, day_strip, merge_history, price_points

log = logging.getLogger("restock.web")

Checker = Callable[[AddForm], Awaitable[Observation]]
Clock = Callable[[], datetime]
RANGES = (7, 30, 90)
PAGE_SIZE = 100  # rows per page of the watches and forecast lists
UNKNOWN_WINDOW = timedelta(hours=24)
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}
PROXIED_REFUSAL = b"this request came through a proxy: set RESTOCK_WEB_TOKEN to use the web UI\n"
_ACTION = re.compile(r"^/watch/(?P<key>[^/]+)/(?P<verb>check|pause|resume|remove)$")
_VERB_WORDS = {"check": "check_now", "pause": "pause", "resume": "resume", "remove": "remove"}
_RETRY = re.compile(r"^/deliveries/(?P<id>\d{1,18})/retry$")


def utc_now() -> datetime:
    return datetime.now(UTC)


async def no_budgets() -> Sequence[ChannelBudget]:
    return ()


@dataclass(slots=True)
class WebSetup:
    """What the UI knows of the running service besides the database."""

    language: Language
    zone: tzinfo
    channels: Sequence[str] = ()  # channels a web watch may notify
    hosts: Callable[[], Mapping[str, HostSnapshot]] = dict
    budgets: Callable[[], Awaitable[Sequence[ChannelBudget]]] = no_budgets
    clock: Clock = utc_now
    # Off loopback (or behind a proxy): added targets pass the chat users' rules (the URL guard,
    # canonical URLs, JAN codes only with a search source).
    rules: Subscriptions | None = None
    tester: ChannelTester | None = None  # sends the sample message of the channel test page
    secure_cookies: bool = False  # people reach it over https (server.public_url): Secure cookies
    # Where the rules apply, the most watches added in 24 hours and the most at once.
    max_added_per_day: int = PER_DAY
    max_web_watches: int = TOTAL

    @property
    def guard(self) -> URLGuard | None:
        return self.rules.guard if self.rules is not None else None


def watch_path(key: str) -> str:
    return "/watch/" + quote(key, safe="")


class WebApp:
    def __init__(
        self,
        store: WebViews,
        repository: Repository,
        access: WebAccess,
        setup: WebSetup,
        checker: Checker,
    ) -> None:
        self.store = store
        self.repository = repository
        self.access = access
        self.setup = setup
        self.checker = checker
        self.quota = WebQuota(repository, setup.max_added_per_day, setup.max_web_watches)
        self.templates = Environment(
            loader=PackageLoader("watcher.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals["watch_path"] = watch_path
        self._css = resources.files("watcher.web").joinpath("templates/app.css").read_bytes()

    # --- dispatch --------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response | None:
        """The answer for a path this app owns; None for any other path."""
        path, _, query = request.path.partition("?")
        if not _owned(path):
            return None
        try:
            return await self._answer(request, path, query)
        except Exception:  # one broken page must not take the listener's connection down
            log.exception("web: %s %s failed", request.method, path)
            return Response(500, b"internal error\n", {**_TEXT, **SECURITY_HEADERS})

    async def _answer(self, request: Request, path: str, query: str) -> Response:
        if path == "/favicon.ico":  # browsers ask for it on every page; there is none
            return Response(204, b"", dict(SECURITY_HEADERS))
        if path == "/static/app.css":
            return Response(200, self._css, {"Content-Type": "text/css", **SECURITY_HEADERS})
        if not self.access.needs_login and proxied(request.headers):
            # Loopback without a token trusts whoever reaches the port; through a proxy that
            # may be anyone, so the UI stays closed until a token guards it.
            return Response(403, PROXIED_REFUSAL, {**_TEXT, **SECURITY_HEADERS})
        if path == "/login":
            return await self._login(request)
        if not self.access.authorized(request.headers):
            return self._unauthorized(path)
        if request.method == "POST":
            return await self._post(request, path)
        if request.method != "GET":
            return Response(405, b"method not allowed\n", {"Allow": "GET, POST", **_TEXT})
        params = dict(parse_qsl(query))
        if path.startswith("/api/"):
            return await self._api(path, params)
        return await self._page(request, path, params)

    def _unauthorized(self, path: str) -> Response:
        if path.startswith("/api/"):
            return _json(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        return Response(303, b"", {"Location": "/login", **SECURITY_HEADERS})

    async def _page(self, request: Request, path: str, params: dict[str, str]) -> Response:
        view = _View(self, request, params)
        if path == "/":
            return await view.watches()
        if path.startswith("/watch/") and path.count("/") == 2:
            return await view.watch(unquote(path.removeprefix("/watch/")))
        pages = {
            "/forecast": view.forecasts,
            "/add": view.add_form,
            "/health": view.health,
            "/channels": view.channels,
        }
        page = pages.get(path)
        if page is None:
            return view.message(404, "page_missing")
        return await page()

    async def _api(self, path: str, params: Mapping[str, str]) -> Response:
        now = self.setup.clock()
        parts = [unquote(p) for p in path.removeprefix("/api/").split("/")]
        if parts == ["watches"]:
            rows = await self.store.watches()
            offset, limit = _count(params.get("offset"), 0), _count(params.get("limit"), len(rows))
            shown = rows[offset : offset + limit]
            body = {
                "total": len(rows),
                "offset": offset,
                "watches": [api.watch_json(r) for r in shown],
            }
            return _json(200, body)
        if len(parts) in (2, 3) and parts[0] == "watches":
            row = await self.store.watch(parts[1])
            if row is None:
                return _json(404, {"error": "no such watch"})
            if len(parts) == 2:
                forecast = await self.forecast(row)
                counts = await self.store.subscribers_per_channel(row.id)
                return _json(200, api.watch_detail_json(row, forecast, counts, self.setup.language))
            if parts[2] == "history":
                history = await self.repository.history(row.key, limit=200)
                assert history is not None  # the watch was just read
                return _json(200, api.history_json(history, now))
        return _json(404, {"error": "not found"})

    # --- POST ------------------------------------------------------------------------------------

    async def _post(self, request: Request, path: str) -> Response:
        fields = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        form = dict(fields)
        view = _View(self, request, {})
        if not self.access.csrf_ok(request.headers, form.get(CSRF_FIELD, "")):
            return view.message(403, "csrf_refused")
        now = self.setup.clock()
        if path == "/add":
            return await view.add(fields)
        if path == "/channels/test":
            return await view.test_channel(form.get("channel", ""))
        action = _ACTION.match(path)
        if action is not None:
            return await self._watch_action(view, unquote(action["key"]), action["verb"], now)
        retry = _RETRY.match(path)
        if retry is not None:
            await self.store.retry_delivery(int(retry["id"]), now)
            return _redirect("/health")
        return view.message(404, "page_missing")

    async def _watch_action(self, view: _View, key: str, verb: str, now: datetime) -> Response:
        done = {
            "check": lambda: self.store.check_now(key, now),
            "pause": lambda: self.store.set_paused(key, True),
            "resume": lambda: self.store.set_paused(key, False),
            "remove": lambda: self.store.remove(key, now),
        }
        if not await done[verb]():
            return view.message(409, "action_refused", action=view.t[_VERB_WORDS[verb]])
        log.info("web: %s %s", verb, key)
        return _redirect("/" if verb == "remove" else watch_path(key))

    async def _login(self, request: Request) -> Response:
        view = _View(self, request, {})
        if request.method == "GET" or not self.access.needs_login:
            return view.render("login.html", error=None)
        now = self.setup.clock()
        if self.access.login_paused(now):
            return view.render("login.html", status=429, error=view.t["login_paused"])
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        if not self.access.token_matches(form.get("token", "")):
            self.access.login_failed(now)
            log.warning("web: a login with a wrong token")
            return view.render("login.html", status=403, error=view.t["forbidden"])
        cookie = session_cookie(self.access.session_value(), secure=self.setup.secure_cookies)
        headers = {"Location": "/", "Set-Cookie": cookie}
        return Response(303, b"", {**headers, **SECURITY_HEADERS})

    # --- shared ----------------------------------------------------------------------------------

    async def forecast(
        self, row: WatchRow, stores: dict[str, list[datetime]] | None = None
    ) -> RestockForecast | None:
        """The watch's forecast; `stores` caches store-wide restock times across watches."""
        own = await self.repository.restock_times(product_id=row.product_id)
        store: list[datetime] = []
        if row.store:
            cache = {} if stores is None else stores
            if row.store not in cache:
                cache[row.store] = await self.repository.restock_times(store=row.store)
            store = cache[row.store]
        return forecast_for(own, store, self.setup.zone)

    async def check(self, form: AddForm) -> Observation:
        """What `restock check` reads for the form's target; a failure is an `unknown` reading."""
        try:
            return await self.checker(form)
        except Exception as exc:  # the page shows the reason rather than an error page
            log.warning("web: checking %r failed: %s", form.target, type(exc).__name__)
            return Observation.unknown(f"check failed: {type(exc).__name__}: {exc}")


_PAGES = frozenset(
    {"/", "/forecast", "/add", "/health", "/channels", "/channels/test", "/login"}
    | {"/static/app.css", "/favicon.ico"}
)


def _owned(path: str) -> bool:
    if path in _PAGES:
        return True
    return path.startswith(("/watch/", "/api/", "/deliveries/"))


def _count(text: str | None, default: int) -> int:
    """A non-negative count from a query parameter; anything else is `default`."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 9:
        return default
    return int(text)


def _json(status: int, body: object, extra: Mapping[str, str] | None = None) -> Response:
    headers = {"Content-Type": "application/json", **SECURITY_HEADERS, **(extra or {})}
    return Response(status, json.dumps(body, ensure_ascii=False).encode(), headers)


async def _checked(form: AddForm, rules: Subscriptions) -> AddForm:
    """The form with its target as the chat users' rules accept it (canonical URL, store)."""
    request = WatchRequest(url=form.url, jan=None if form.url else form.target.removeprefix("jan:"))
    target, store = await rules.checked_target(request)
    return replace(form, target=target, store=store)


def _redirect(location: str) -> Response:
    return Response(303, b"", {"Location": location, **SECURITY_HEADERS})


@dataclass(frozen=True, slots=True)
class Paging:
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def page_of(rows: Sequence[WatchRow], requested: str | None) -> tuple[list[WatchRow], Paging]:
    """One page of `rows` (pages count from 1; anything else is page 1)."""
    number = int(requested) if requested and requested.isdigit() and len(requested) < 7 else 1
    number = max(number, 1)
    start = (number - 1) * PAGE_SIZE
    return list(rows[start : start + PAGE_SIZE]), Paging(number, len(rows) > start + PAGE_SIZE)


def _sorted_for_list(rows: Sequence[WatchRow]) -> list[WatchRow]:
    """What just came back on top: buyable first by latest restock, then the rest by name."""

    def key(row: WatchRow) -> tuple[int, float, str]:
        back = row.state is not None and row.state in row.conditions.buyable
        restocked = row.last_restock_at.timestamp() if row.last_restock_at else 0.0
        return (0 if back else 1, -restocked, row.name.casefold())

    return sorted(rows, key=key)


class _View:
    """One page render: the request's language, its CSRF token and the helpers templates use."""

    def __init__(self, app: WebApp, request: Request, params: dict[str, str]) -> None:
        self.app = app
        self.params = params
        cookies = cookies_of(request.headers)
        chosen = params.get("lang")
        self.language = language_of(chosen or cookies.get(LANGUAGE_COOKIE), app.setup.language)
        self.set_language = chosen is not None and chosen == self.language
        self.t = WORDS[self.language]
        self.csrf = app.access.csrf_token(request.headers)
        self.now = app.setup.clock()
        self.path = urlsplit(request.path).path

    def label(self, state: Availability | None) -> str:
        return STATE_LABELS[self.language][state] if state is not None else "-"

    def fmt(self, moment: datetime | None) -> str:
        if moment is None:
            return "-"
        return moment.astimezone(self.app.setup.zone).strftime("%m-%d %H:%M")

    def message(self, status: int, key: str, **fields: str) -> Response:
        """A page holding one sentence of `WORDS`, in the reader's language."""
        return self.render("message.html", status=status, message=self.t[key].format(**fields))

    def render(self, name: str, *, status: int = 200, **context: Any) -> Response:
        template = self.app.templates.get_template(name)
        body = template.render(
            t=self.t,
            lang=self.language,
            label=self.label,
            fmt=self.fmt,
            csrf=self.csrf,
            csrf_field=CSRF_FIELD,
            path=self.path,
            login=self.app.access.needs_login,
            **context,
        )
        headers = {"Content-Type": "text/html; charset=utf-8", **SECURITY_HEADERS}
        if self.set_language:
            headers["Set-Cookie"] = language_cookie(self.language)
        return Response(status, body.encode("utf-8"), headers)

    # --- pages -----------------------------------------------------------------------------------

    async def watches(self) -> Response:
        rows = await self.app.store.watches()
        stores = sorted({row.store or "-" for row in rows})
        state, store = self.params.get("state", ""), self.params.get("store", "")
        matching = [
            row
            for row in _sorted_for_list(rows)
            if (not state or (row.state.value if row.state else "") == state)
            and (not store or (row.store or "-") == store)
        ]
        shown, paging = page_of(matching, self.params.get("page"))
        histories = await self._histories(shown, self.now - timedelta(days=7))
        strips = {
            row.key: strip_svg(
                day_strip(histories[row.id], self.now, self.app.setup.zone), self.label
            )
            for row in shown
        }
        return self.render(
            "watches.html",
            rows=shown,
            strips=strips,
            states=list(Availability),
            stores=stores,
            state=state,
            store=store,
            paging=paging,
            query=urlencode({k: v for k, v in (("state", state), ("store", store)) if v}),
        )

    async def watch(self, key: str) -> Response:
        row = await self.app.store.watch(key)
        if row is None:
            return self.render("message.html", status=404, message=self.t["none"])
        days = int(self.params["days"]) if self.params.get("days") in ("7", "30", "90") else 7
        start = self.now - timedelta(days=days)
        readings = (await self._histories([row], start))[row.id]
        history = await self.app.repository.history(row.key, limit=30)
        forecast = await self.app.forecast(row)
        return self.render(
            "watch.html",
            row=row,
            days=days,
            ranges=RANGES,
            timeline=self._timeline(readings, start),
            prices=price_svg(price_points(readings, start), start, self.now),
            history=history,
            forecast=describe_forecast(forecast, self.language) if forecast else None,
            counts=await self.app.store.subscribers_per_channel(row.id),
        )

    async def _histories(
        self, rows: Sequence[WatchRow], since: datetime
    ) -> dict[int, list[Reading]]:
        """Each watch's readings since `since`, by watch id (see `merge_history`)."""
        store = self.app.store
        observed = await store.readings([row.product_id for row in rows], since)
        events = await store.transitions([row.id for row in rows], since)
        return {
            row.id: merge_history(observed.get(row.product_id, []), events.get(row.id, []))
            for row in rows
        }

    def _timeline(self, readings: Sequence[Reading], start: datetime) -> Any:
        return timeline_svg(bands(readings, start, self.now), start, self.now, self.label, self.fmt)

    async def forecasts(self) -> Response:
        rows = sorted(await self.app.store.watches(), key=lambda r: r.name.casefold())
        shown, paging = page_of(rows, self.params.get("page"))
        stores: dict[str, list[datetime]] = {}
        lines = []
        for row in shown:
            forecast = await self.app.forecast(row, stores)
            text = describe_forecast(forecast, self.language) if forecast else None
            lines.append((row, text))
        return self.render("forecast.html", lines=lines, paging=paging, query="")

    async def add_form(self) -> Response:
        return self.render("add.html", form=None, error=None, verdict=None, **self._add_context())

    def _add_context(self) -> dict[str, Any]:
        orderable = [Availability.IN_STOCK, Availability.BACKORDER, Availability.PREORDER]
        return {"channels": self.app.setup.channels, "orderable": orderable}

    async def add(self, fields: list[tuple[str, str]]) -> Response:
        try:
            form = await self._accepted(fields)
        except FormError as exc:
            error = exc.said_in(self.language)
            return self.render(
                "add.html", status=400, form=None, error=error, verdict=None, **self._add_context()
            )
        if dict(fields).get("action") != "save":
            observation = await self.app.check(form)
            verdict = (observation, form.conditions.is_buyable(observation))
            return self.render(
                "add.html", form=form, error=None, verdict=verdict, **self._add_context()
            )
        try:
            key = await self._save(form)
        except FormError as exc:
            error = exc.said_in(self.language)
            return self.render(
                "add.html", status=400, form=None, error=error, verdict=None, **self._add_context()
            )
        log.info("web: added watch %s", key)
        return _redirect(watch_path(key))

    async def _save(self, form: AddForm) -> str:
        """Save the watch; off loopback it takes one of the day's adds first (given back if the
        save fails), so simultaneous saves never pass the day's limit."""
        spend = None if self.app.setup.rules is None else await self.app.quota.take(self.now)
        try:
            return await self.app.store.add_watch(
                form.target, form.store, form.conditions, form.recipients, self.now, name=form.name
            )
        except BaseException:
            if spend is not None:
                await self.app.quota.give_back(spend)
            raise

    async def _accepted(self, fields: list[tuple[str, str]]) -> AddForm:
        """The form as the rules take it; FormError for a bad field, a refused target or a
        spent quota. Off loopback the quota comes first: a refused add fetches nothing."""
        form = parse_add_form(fields, self.app.setup.channels)
        rules = self.app.setup.rules
        if rules is None:
            return form
        await self.app.quota.check(await self.app.store.watches(), self.now)
        try:
            return await _checked(form, rules)
        except Refused as exc:
            raise FormError(exc.key if exc.key in FORM_ERRORS["en"] else "bad_url") from None

    async def channels(self) -> Response:
        return self.render("channels.html", tested=None, **self._channels_context())

    def _channels_context(self) -> dict[str, Any]:
        tester = self.app.setup.tester
        return {"channels": tester.channels if tester is not None else []}

    async def test_channel(self, channel: str) -> Response:
        tester = self.app.setup.tester
        if tester is None or channel not in tester.channels:
            return self.message(404, "channel_missing")
        tested = await tester.test(channel)
        log.info("web: channel test on %s", channel)
        status = 429 if tested.refused == TOO_SOON else 200
        refusal = None
        if tested.refused is not None:
            seconds = int(MIN_GAP.total_seconds())
            refusal = form_error(self.language, tested.refused, {"seconds": seconds})
        return self.render(
            "channels.html",
            status=status,
            tested=tested,
            refusal=refusal,
            **self._channels_context(),
        )

    async def health(self) -> Response:
        now = self.now
        hosts = [
            h
            for h in self.app.setup.hosts().values()
            if h.backoff_remaining > 0 or h.consecutive_blocks
        ]
        return self.render(
            "health.html",
            hosts=sorted(hosts, key=lambda h: h.host),
            stores=await self.app.store.store_readings(now - UNKNOWN_WINDOW),
            outbox=await self.app.repository.outbox_depth(),
            dead=await self.app.repository.dead_letters(limit=50),
            budgets=await self.app.setup.budgets(),
            shared=[
                h
                for h in await self.app.repository.host_states()
                if h.backoff_until is not None and h.backoff_until > now
            ],
            workers=await self.app.repository.lease_owners(now),
        )
