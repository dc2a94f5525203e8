"""The optional local HTTP endpoint: `/healthz` and Prometheus `/metrics`."""

from __future__ import annotations

import asyncio
import json
import logging

from watcher import miniserver
from watcher.metrics import Metrics
from watcher.miniserver import Request, Response
from watcher.politeness import Politeness
from watcher.repository import Repository

log = logging.getLogger("restock.server")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class StatusServer:
    def __init__(self, repository: Repository, metrics: Metrics, politeness: Politeness) -> None:
        self.repository = repository
        self.metrics = metrics
        self.politeness = politeness
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, listen: str) -> None:
        host, port = split_listen(listen)
        self._server = await miniserver.start(self.handle, host, port)
        log.info("status endpoint on http://%s:%d (/healthz, /metrics)", host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        if request.method != "GET":
            return Response(405, b"method not allowed\n", {"Allow": "GET"})
        if path == "/healthz":
            return await self._health()
        if path == "/metrics":
            return await self._metrics()
        return Response(404, b"not found\n", {"Content-Type": "text/plain"})

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
