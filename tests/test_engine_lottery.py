"""A page that turns to a lottery sale, read by the real engine from a loopback server."""

from __future__ import annotations

import asyncio

import pytest
from httpserver import LoopbackServer, Reply, Request
from test_engine import (
    Start,
    eventually,
    start,  # noqa: F401  (the fixture this test asks for)
    url_watch,
)

from watcher.cli import main
from watcher.core.model import Availability, EventKind

SOLD_OUT = "<p class='stock'>在庫切れ</p><button disabled>売り切れ</button>"
LOTTERY = "<p class='stock'>抽選受付中</p><p>応募はこちらから</p>"
ON_SALE = "<p class='stock'>在庫あり</p><button type='submit'>カートに入れる</button>"


class Shelf:
    """The product page; the test changes what it shows."""

    def __init__(self) -> None:
        self.shows = SOLD_OUT
        self.requests = 0

    def __call__(self, _request: Request) -> Reply:
        self.requests += 1
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>ゲーム機 本体</title></head>"
            f"<body><h1>ゲーム機 本体</h1><p class='price'>49,980円</p>{self.shows}</body></html>"
        )
        return Reply(body=body.encode(), headers={"content-type": "text/html; charset=utf-8"})


RULES = "rules: {lottery: [抽選受付中]}"


async def test_a_page_that_turns_to_a_lottery_fires_lottery_open_only_where_asked(
    start: Start,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    shelf = Shelf()
    with LoopbackServer() as server:
        server.add("/console", shelf)
        url = server.url("/console")
        asks = url_watch("lottery fan", url, f"events: [restock, lottery_open]\n    {RULES}")
        default = url_watch("restock only", url, RULES)
        h = await start([asks, default])
        await eventually(lambda: shelf.requests >= 1, what="the baseline check")
        assert h.recorder.notices == []

        shelf.shows = LOTTERY
        await eventually(lambda: bool(h.recorder.notices), what="the lottery message", timeout=20)
        [notice] = h.recorder.notices
        assert notice.event.kind is EventKind.LOTTERY_OPEN
        assert notice.event.watch_key == "lottery-fan"
        assert notice.event.state is Availability.LOTTERY
        assert notice.event.url == url
        assert h.counters.rechecks >= 1  # confirmed at once, like a restock

        checks = shelf.requests
        await eventually(
            lambda: shelf.requests >= checks + 3, what="more lottery checks", timeout=20
        )
        assert h.recorder.kinds() == [EventKind.LOTTERY_OPEN]  # once per lottery

        status_args = ["status", "--config", str(h.config_path)]
        assert await asyncio.to_thread(main, status_args) == 0
        status = capsys.readouterr().out
        assert "lottery-fan" in status and "lottery open (抽選受付中)" in status

        shelf.shows = ON_SALE  # the lottery closed and the sale opened
        await eventually(lambda: len(h.recorder.notices) >= 3, what="the restocks", timeout=20)
        assert h.recorder.kinds("lottery-fan") == [EventKind.LOTTERY_OPEN, EventKind.RESTOCK]
        assert h.recorder.kinds("restock-only") == [EventKind.RESTOCK]

        history = await h.repo.history("lottery-fan", limit=50)
        assert history is not None
        assert {e.kind for e in history.events} == {EventKind.LOTTERY_OPEN, EventKind.RESTOCK}
        states = {o.state for o in history.observations}
        assert {Availability.LOTTERY, Availability.OUT_OF_STOCK, Availability.IN_STOCK} <= states
