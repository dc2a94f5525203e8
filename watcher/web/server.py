"""The optional HTTP endpoint: `/healthz`, Prometheus `/metrics` and one-click unsubscribe.

`/unsubscribe` serves the https links of e-mail `List-Unsubscribe` headers (RFC 8058). A GET only
shows a confirmation page with a button: mail scanners and link previews follow links, so a GET
must never unsubscribe anyone. The POST (from that button, or a mail client's one-click request
with the body `List-Unsubscribe=One-Click`) ends the subscription. Each link carries an HMAC of
its address and watch, so nobody can unsubscribe someone else. Without a secret the endpoint
does not exist (404), and the e-mail notifier offers no https link.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Awaitable, Callable
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from watcher.clock import WallClock, utc_now
from watcher.line.webhook import PATH as LINE_WEBHOOK_PATH
from watcher.net.politeness import Politeness
from watcher.redact import recipient_hash
from watcher.service.metrics import Metrics
from watcher.storage.interface import Repository
from watcher.unsubscribe import UnsubscribeLink
from watcher.web import miniserver
from watcher.web.miniserver import Handler, Request, Response

log = logging.getLogger("restock.server")

ONE_CLICK = ("List-Unsubscribe", "One-Click")
EMAIL = "email"

# The web UI's handler: the answer for a path it owns, None for the others.
WebHandler = Callable[[Request], Awaitable[Response | None]]

# The page needs no script, image or outside style; the token in its URL must not leak onwards.
_PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


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
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, listen: str) -> None:
        host, port = split_listen(listen)
        self._server = await miniserver.start(self.handle, host, port)
        extra = ", /unsubscribe" if self._unsubscribe_secret else ""
        extra += f", {LINE_WEBHOOK_PATH}" if self._line_webhook else ""
        extra += ", web UI at /" if self._web is not None else ""
        log.info("status endpoint on http://%s:%d (/healthz, /metrics%s)", host, self.port, extra)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle(self, request: Request) -> Response:
        path, _, query = request.path.partition("?")
        if path == LINE_WEBHOOK_PATH and self._line_webhook is not None:
            return await self._line_webhook(request)
        if path == "/unsubscribe" and self._unsubscribe_secret is not None:
            return await self._unsubscribe(request, query, self._unsubscribe_secret)
        if self._web is not None and path not in ("/healthz", "/metrics"):
            answer = await self._web(request)
            if answer is not None:
                return answer
        if path not in ("/healthz", "/metrics"):
            return Response(404, b"not found\n", _TEXT)
        if request.method != "GET":
            return Response(405, b"method not allowed\n", {"Allow": "GET"})
        if path == "/healthz":
            return await self._health()
        return await self._metrics()

    async def _health(self) -> Response:
        try:
            depth = await self.repository.outbox_depth()
        except Exception as exc:  # the database is what health means here
            body = json.dumps({"status": "error", "error": type(exc).__name__})
            return Response(503, body.encode(), {"Content-Type": "application/json"})
        body = json.dumps({"status": "ok", "outbox": depth})
        return Response(200, body.encode(), {"Content-Type": "application/json"})

    async def _metrics(self) -> Response:
        depth = await self.repository.outbox_depth()
        self.metrics.outbox.read = lambda: {(("status", k),): float(v) for k, v in depth.items()}
        body = self.metrics.render().encode()
        return Response(200, body, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    # --- one-click unsubscribe ------------------------------------------------------------------

    async def _unsubscribe(self, request: Request, query: str, secret: str) -> Response:
        if request.method not in ("GET", "POST"):
            return Response(405, b"method not allowed\n", {"Allow": "GET, POST", **_TEXT})
        fields = dict(parse_qsl(query))
        if request.method == "POST":
            form = form_fields(request)
            if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
                return Response(400, b"expected the body List-Unsubscribe=One-Click\n", _TEXT)
            fields.update(form)
        link = UnsubscribeLink.from_fields(fields)
        if link is None:
            return Response(400, b"this unsubscribe link is incomplete\n", _TEXT)
        if not link.signed_with(secret):
            return Response(403, b"this unsubscribe link is not valid\n", _TEXT)
        if request.method == "GET":
            return _page(confirmation_page(link, await self._watch_name(link.watch)))
        return await self._end(link)

    async def _end(self, link: UnsubscribeLink) -> Response:
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


def form_fields(request: Request) -> dict[str, str]:
    """A POST body's fields: urlencoded or multipart/form-data (RFC 8058 allows either)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        return _multipart_fields(content_type, request.body)
    return dict(parse_qsl(request.body.decode("utf-8", "replace")))


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and isinstance(part, Message):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                fields[name] = payload.decode("utf-8", "replace")
    return fields


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


def _page(document: str) -> Response:
    return Response(200, document.encode("utf-8"), dict(_PAGE_HEADERS))
