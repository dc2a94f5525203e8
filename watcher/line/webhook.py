"""`POST /line/webhook`: LINE's signed webhook, checked before anything is read.

Order matters: method, then size, then the signature over the raw bytes (constant time), and
only then the JSON. A refused request changes nothing: 405, 413, 401 (bad or missing
signature) or 400 (signed, but not a webhook body). A verified body is handled before the
answer, so a crash or a database failure mid-way (500) makes LINE send it again; its events are
claimed by id, so what was done is not done twice. LINE's verification request (no events) gets
200.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from watcher.line.events import BodyError, LineEvent, parse_body
from watcher.line.signature import SIGNATURE_HEADER, verify
from watcher.secret import Secret
from watcher.web.listener import Request, Response

LOG = logging.getLogger("restock.line")
PATH = "/line/webhook"
MAX_BODY = 64 * 1024  # LINE's bodies are a few KiB; anything far larger is not LINE
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}

EventHandler = Callable[[Sequence[LineEvent]], Awaitable[None]]


class LineWebhook:
    def __init__(
        self, channel_secret: Secret, handle: EventHandler, *, max_body: int = MAX_BODY
    ) -> None:
        self._secret = channel_secret
        self._handle = handle
        self.max_body = max_body

    async def __call__(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, b"method not allowed\n", {"Allow": "POST", **_TEXT})
        if len(request.body) > self.max_body:
            return Response(413, b"too large\n", _TEXT)
        if not verify(self._secret.reveal(), request.body, request.headers.get(SIGNATURE_HEADER)):
            LOG.warning("line webhook: refused a request with a bad or missing signature")
            return Response(401, b"bad signature\n", _TEXT)
        try:
            events = parse_body(request.body)
        except BodyError as exc:
            LOG.warning("line webhook: signed body refused: %s", exc)
            return Response(400, b"not a webhook body\n", _TEXT)
        try:
            await self._handle(events)
        except Exception:
            LOG.exception("line webhook: events not handled; LINE will send them again")
            return Response(500, b"try again\n", _TEXT)
        return Response(200, b"{}", {"Content-Type": "application/json"})
