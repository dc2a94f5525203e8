"""A loopback stand-in for LINE's Messaging API: records requests, honours retry keys, counts quota.

Its answers follow LINE's documented shapes (developers.line.biz, Messaging API reference):
`{"type": "limited", "value": N}` / `{"type": "none"}` for the quota, `{"totalUsage": N}` for its
consumption, 409 for a retry key already accepted, 429 `You have reached your monthly limit.`
when a send would pass the quota, and `{"message": ...}` bodies for errors.

    async with LineStandIn(limit=1000) as line:
        notifier = LineNotifier(channel_access_token=TOKEN, api_base_url=line.url)
        line.script = [500]            # the next message request answers 500 ...
        line.accept_then_fail = True   # ... after accepting it (a lost answer)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from watcher.web.listener import Listener, Request, Response, serve

TOKEN = "line-channel-token-0123456789abcdef"
MESSAGE_PATHS = ("/v2/bot/message/multicast", "/v2/bot/message/push")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class LineStandIn:
    limit: int | None = None  # None: no monthly limit (`type: none`)
    used: int = 0
    script: list[int] = field(default_factory=list)  # statuses for the next message requests
    accept_then_fail: bool = False  # a scripted 5xx happens after the request was accepted
    retry_after: str | None = None  # Retry-After on scripted 429s
    quota_status: int = 200
    requests: list[Seen] = field(default_factory=list)
    accepted: dict[str, list[str]] = field(default_factory=dict)  # retry key -> recipients
    delivered: list[str] = field(default_factory=list)  # one entry per message that reached a user
    replies: list[Any] = field(default_factory=list)
    _server: Listener | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}"

    async def __aenter__(self) -> LineStandIn:
        self._server = await serve(self.handle)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        await self._server.close()

    def message_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path in MESSAGE_PATHS]

    async def handle(self, request: Request) -> Response:
        body = json.loads(request.body) if request.body else None
        self.requests.append(Seen(request.method, request.path, request.headers, body))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _json(401, {"message": "Authentication failed"})
        if request.path == "/v2/bot/message/quota":
            if self.quota_status != 200:
                return _json(self.quota_status, {"message": "unavailable"})
            shown = (
                {"type": "none"} if self.limit is None else {"type": "limited", "value": self.limit}
            )
            return _json(200, shown)
        if request.path == "/v2/bot/message/quota/consumption":
            return _json(self.quota_status, {"totalUsage": self.used})
        if request.path == "/v2/bot/message/reply":
            self.replies.append(body)
            return _json(200, {})
        if request.path in MESSAGE_PATHS:
            return self._message(request, body)
        return _json(404, {"message": "Not found"})

    def _message(self, request: Request, body: Any) -> Response:
        key = request.headers.get("x-line-retry-key")
        if not key:
            return _json(400, {"message": "no retry key"})
        to = body["to"] if isinstance(body["to"], list) else [body["to"]]
        if len(to) > 500 or not 1 <= len(body["messages"]) <= 5:
            return _json(400, {"message": "The request body has 1 error(s)"})
        if self.script:
            status = self.script.pop(0)
            if status >= 500 and self.accept_then_fail:
                self._accept(key, to)
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return _json(status, {"message": "scripted failure"}, headers)
        if key in self.accepted:
            return _json(409, {"message": "The retry key is already accepted"})
        if self.limit is not None and self.used + len(to) > self.limit:
            return _json(429, {"message": "You have reached your monthly limit."})
        self._accept(key, to)
        return _json(200, {"sentMessages": [{"id": "1", "quoteToken": "q"}]})

    def _accept(self, key: str, to: list[str]) -> None:
        self.accepted[key] = to
        self.used += len(to)
        self.delivered += to


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
