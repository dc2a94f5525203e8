"""One restock to many Telegram chats through a local Bot API stand-in; prints figures.

The stand-in answers 429 (with retry_after) whenever Telegram's limits would be broken: more
than 30 messages in any second overall, more than one a second to a chat, more than 20 a minute
to a group. Run: python -m bench.fanout [--chats 1000] [--groups 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs

from notifiers.base import Notice, SendResult
from notifiers.telegram import TelegramNotifier
from watcher.core.model import Availability, Event, EventKind, Outcome

TOKEN = "999999:bench-token"


@dataclass
class StandIn:
    """Counts what arrives and refuses what breaks the limits, like the real Bot API would."""

    arrivals: list[float] = field(default_factory=list)
    too_many: int = 0
    _all: deque[float] = field(default_factory=deque)
    _chats: dict[str, deque[float]] = field(default_factory=dict)

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        if path.endswith("/getMe"):
            return 200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "b"}}
        now = time.monotonic()
        chat = form.get("chat_id", "0")
        if self._over_limit(chat, now):
            self.too_many += 1
            return 429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1}}
        self.arrivals.append(now)
        self._all.append(now)
        self._chats.setdefault(chat, deque()).append(now)
        message = {
            "message_id": len(self.arrivals),
            "date": int(time.time()),
            "text": "x",
            "chat": {"id": int(chat), "type": "private"},
        }
        return 200, {"ok": True, "result": message}

    def _over_limit(self, chat: str, now: float) -> bool:
        recent = sum(1 for t in self._all if t > now - 1.0)
        while self._all and self._all[0] <= now - 60:
            self._all.popleft()
        mine = self._chats.get(chat, deque())
        per_second = sum(1 for t in mine if t > now - 1.0)
        per_minute = sum(1 for t in mine if t > now - 60.0)
        return recent >= 30 or per_second >= 1 or (chat.startswith("-") and per_minute >= 20)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await _read_request(reader):
                path, body = request
                status, payload = self.answer(path, {k: v[0] for k, v in parse_qs(body).items()})
                data = json.dumps(payload).encode()
                head = (
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                )
                writer.write(head.encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """One HTTP/1.1 request with a Content-Length body (all PTB sends); None at end of stream."""
    line = await reader.readline()
    if not line:
        return None
    path = line.decode().split(" ")[1]
    length = 0
    while (header := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return path, body.decode()


def restock() -> Event:
    return Event(
        kind=EventKind.RESTOCK,
        watch_key="bench",
        watch_name="Bench",
        id=1,
        state=Availability.IN_STOCK,
        observed_at=datetime.now(UTC),
        url="https://www.amazon.co.jp/dp/B0BENCH000",
        store="amazon_jp",
        price=49980,
        title="ベンチマーク商品",
        seller="Amazon.co.jp",
    )


async def main(chats: int, groups: int) -> None:
    stand_in = StandIn()
    server = await asyncio.start_server(stand_in.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    notifier = TelegramNotifier(token=TOKEN, api_base_url=f"http://127.0.0.1:{port}")
    await notifier.start()
    ids = [str(i + 1) for i in range(chats - groups)] + [str(-(i + 1)) for i in range(groups)]
    event = restock()
    notices = [Notice(delivery_id=i, event=event, recipient=c) for i, c in enumerate(ids)]
    started = time.monotonic()
    results = await notifier.send_batch(notices)
    finished = time.monotonic()
    await notifier.aclose()
    server.close()
    await server.wait_closed()
    report(stand_in, results, started, finished, chats)


def report(
    stand_in: StandIn, results: list[SendResult], started: float, finished: float, chats: int
) -> None:
    rate = 25  # notifications per second the pacer allows (30 minus headroom for replies)
    floor = max(chats - 1, 0) / rate  # evenly spaced: the first leaves at once
    sent = sum(1 for r in results if r.outcome is Outcome.SENT)
    first = (stand_in.arrivals[0] - started) * 1000 if stand_in.arrivals else float("nan")
    total = finished - started
    print(f"chats: {chats}, sent: {sent}, other outcomes: {len(results) - sent}")
    print(f"429 answers: {stand_in.too_many}")
    print(
        f"total time: {total:.2f} s; pacer floor: {floor:.2f} s; "
        f"over floor: {(total / floor - 1) * 100 if floor else 0:.1f} %"
    )
    print(f"first message after the event: {first:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=0, help="how many of the chats are groups")
    args = parser.parse_args()
    asyncio.run(main(args.chats, args.groups))
