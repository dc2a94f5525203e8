"""The optional HTTP endpoint: `/healthz`, Prometheus `/metrics` and one-click unsubscribe.

One aiohttp application (`watcher.web.listener` keeps its limits) routes these, LINE's webhook
when it is configured, and every other path to the web UI when it is on (else 404).

`/unsubscribe` serves the https links of e-mail `List-Unsubscribe` headers (RFC 8058). A GET only
shows a confirmation page with a button: mail scanners and link previews follow links, so a GET
must never unsubscribe anyone. The POST (from that button, or a mail client's one-click request
with the body `List-Unsubscribe=One-Click`) ends the subscription. Each link carries an HMAC of
its address and watch, so nobody can unsubscribe someone else. Without a secret the endpoint
does not exist (404), and the e-mail notifier offers no https link.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from watcher.clock import WallClock, utc_now
from watcher.line.webhook import PATH as LINE_WEBHOOK_PATH
from watcher.net.politeness import Politeness
from watcher.redact import recipient_hash
from watcher.service.metrics import CONTENT_TYPE, Metrics
from watcher.storage.interface import Repository
from watcher.unsubscribe import UnsubscribeLink
from watcher.web.listener import (
    Handler,
    Listener,
    Request,
    Response,
    aiohttp_response,
    application,
    listen,
    plain_request,
    read_form,
    route,
    text,
)

log = logging.getLogger("restock.server")

ONE_CLICK = ("List-Unsubscribe", "One-Click")
EMAIL = "email"

# The web UI's handler: the answer for a path it owns, None for the others.
WebHandler = Callable[[Request], Awaitable[Response | None]]

# The page needs no script, image or outside style; the token in its URL must not leak onwards.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class StatusServer:
    def __init__(
        self,
        repository: Repository,
        metrics: Metrics,
        politeness: Politeness,
        *,
        unsubscribe_secret: str | None = None,
        line_webhook: Handler | None = None,
        clock: WallClock = utc_now,
        web: WebHandler | None = None,
    ) -> None:
        self.repository = repository
        self.metrics = metrics
        self.politeness = politeness
        self._unsubscribe_secret = unsubscribe_secret or None
        self._line_webhook = line_webhook
        self.clock = clock
        self._web = web
        self._listener: Listener | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.port

    async def start(self, listen_on: str) -> None:
        host, port = split_listen(listen_on)
        self._listener = await listen(self.application(), host, port)
        extra = ", /unsubscribe" if self._unsubscribe_secret else ""
        extra += f", {LINE_WEBHOOK_PATH}" if self._line_webhook else ""
        extra += ", web UI at /" if self._web is not None else ""
        log.info("status endpoint on http://%s:%d (/healthz, /metrics%s)", host, self.port, extra)

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    def application(self) -> web.Application:
        """The routes: health and metrics, then what is configured, then the web UI."""
        app = application()
        app.router.add_route("*", "/healthz", self._health)
        app.router.add_route("*", "/metrics", self._metrics)
        if self._line_webhook is not None:
            app.router.add_route("*", LINE_WEBHOOK_PATH, route(self._line_webhook))
        if self._unsubscribe_secret is not None:
            app.router.add_route("*", "/unsubscribe", self._unsubscribe)
        app.router.add_route("*", "/{tail:.*}", self._other)
        return app

    async def _other(self, request: web.Request) -> web.StreamResponse:
        if self._web is not None:
            answer = await self._web(await plain_request(request))
            if answer is not None:
                return aiohttp_response(answer)
        return text(404, "not found\n")

    async def _health(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return _not_allowed("GET")
        try:
            depth = await self.repository.outbox_depth()
        except Exception as exc:  # the database is what health means here
            body = {"status": "error", "error": type(exc).__name__}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ok", "outbox": depth})

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return _not_allowed("GET")
        self.metrics.set_outbox(await self.repository.outbox_depth())
        body = self.metrics.render().encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    # --- one-click unsubscribe ------------------------------------------------------------------

    async def _unsubscribe(self, request: web.Request) -> web.StreamResponse:
        secret = self._unsubscribe_secret
        assert secret is not None  # the route exists only with a secret
        if request.method not in ("GET", "POST"):
            return _not_allowed("GET, POST")
        fields = dict(request.query)
        if request.method == "POST":
            form = await read_form(request)  # urlencoded or multipart: RFC 8058 allows either
            if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
                return text(400, "expected the body List-Unsubscribe=One-Click\n")
            fields.update(form)
        link = UnsubscribeLink.from_fields(fields)
        if link is None:
            return text(400, "this unsubscribe link is incomplete\n")
        if not link.signed_with(secret):
            return text(403, "this unsubscribe link is not valid\n")
        if request.method == "GET":
            return _page(confirmation_page(link, await self._watch_name(link.watch)))
        return await self._end(link)

    async def _end(self, link: UnsubscribeLink) -> web.StreamResponse:
        ended = await self.repository.end_subscription(EMAIL, link.to, link.watch, self.clock())
        log.info(
            "unsubscribe: %s from watch %s (%s)",
            recipient_hash(link.to.lower()),
            link.watch,
            "ended" if ended else "was not subscribed",
        )
        # The same answer either way: a second click, or a mail client's retry, is no error.
        return _page(done_page(link, await self._watch_name(link.watch)))

    async def _watch_name(self, watch_key: str) -> str:
        history = await self.repository.history(watch_key, limit=1)
        return history.status.name if history is not None else watch_key


def _not_allowed(allow: str) -> web.Response:
    return text(405, "method not allowed\n", {"Allow": allow})


def confirmation_page(link: UnsubscribeLink, watch_name: str) -> str:
    # No action: the form posts back to this very URL, query string (watch, to, token) included,
    # which also holds behind a reverse proxy that serves us under a path prefix.
    body = f"""
<h1>配信停止 / Unsubscribe</h1>
<p>{_e(link.to)} への「{_e(watch_name)}」の再入荷メールを停止しますか？</p>
<p>Stop restock e-mails about “{_e(watch_name)}” to {_e(link.to)}?</p>
<form method="post">
<input type="hidden" name="{ONE_CLICK[0]}" value="{ONE_CLICK[1]}">
<button type="submit">配信を停止する / Unsubscribe</button>
</form>"""
    return _document("配信停止 / Unsubscribe", body)


def done_page(link: UnsubscribeLink, watch_name: str) -> str:
    body = f"""
<h1>配信を停止しました / Unsubscribed</h1>
<p>{_e(link.to)} には「{_e(watch_name)}」の再入荷メールをもう送りません。</p>
<p>{_e(link.to)} will get no more restock e-mails about “{_e(watch_name)}”.</p>"""
    return _document("配信停止 / Unsubscribed", body)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="ja"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em}</style>"
        f"</head><body>{body}\n</body></html>\n"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _page(document: str) -> web.Response:
    return web.Response(text=document, content_type="text/html", headers=_PAGE_HEADERS)
