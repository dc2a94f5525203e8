"""The pacer under a fake clock: record send times and check every window."""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

from notifiers.pacing import Pacer, Priority, TelegramLimits, backoff_seconds


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)
        await asyncio.sleep(0)


class EventClock(FakeClock):
    """Discrete-event time: sleepers wake in order of their wake time, once all else is idle."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(seconds, 0.0), self._seq, future))
        self._seq += 1
        await future

    async def drive(self, *jobs: Awaitable[None]) -> None:
        tasks = [asyncio.ensure_future(j) for j in jobs]
        while not all(t.done() for t in tasks):
            for _ in range(5):
                await asyncio.sleep(0)
            if self._sleepers:
                wake, _, future = heapq.heappop(self._sleepers)
                self.t = max(self.t, wake)
                future.set_result(None)
        await asyncio.gather(*tasks)


def most_in_window(times: list[float], window: float) -> int:
    """The largest number of sends inside any half-open window [t, t + window)."""
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


async def send_all(pacer: Pacer, clock: FakeClock, chats: list[str], prio: Priority) -> list[float]:
    sent: list[float] = []
    for chat in chats:
        await pacer.acquire(chat, prio)
        sent.append(clock.t)
    return sent


async def test_notifications_keep_25_per_second_headroom():
    clock = FakeClock()
    pacer = Pacer(clock)
    times = await send_all(pacer, clock, [str(i) for i in range(200)], Priority.NOTIFICATION)
    assert most_in_window(times, 1.0) == 25
    # No slower than the limit allows: 200 sends at 25/s need just under 8 s.
    assert times[-1] < 8.0


async def test_replies_may_use_the_full_30():
    clock = FakeClock()
    pacer = Pacer(clock)
    times = await send_all(pacer, clock, [str(i) for i in range(90)], Priority.REPLY)
    assert most_in_window(times, 1.0) == 30


async def test_one_chat_gets_at_most_one_a_second():
    clock = FakeClock()
    pacer = Pacer(clock)
    times = await send_all(pacer, clock, ["42"] * 5, Priority.NOTIFICATION)
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_a_group_gets_at_most_20_a_minute():
    clock = FakeClock()
    pacer = Pacer(clock)
    times = await send_all(pacer, clock, ["-100777"] * 45, Priority.NOTIFICATION)
    assert most_in_window(times, 60.0) == 20
    assert most_in_window(times, 1.0) == 1
    assert times[20] >= 60.0


async def test_mixed_traffic_respects_every_window_concurrently():
    clock = EventClock()
    pacer = Pacer(clock)
    rng = random.Random(3)
    chats = [
        rng.choice(["1", "2", "3", "-50", "-51"] + [str(i) for i in range(10, 60)])
        for _ in range(300)
    ]
    log: list[tuple[float, str]] = []

    async def one(chat: str) -> None:
        await pacer.acquire(chat)
        log.append((clock.t, chat))

    await clock.drive(*(one(c) for c in chats))
    assert len(log) == 300
    assert most_in_window([t for t, _ in log], 1.0) <= 25
    for chat in set(chats):
        mine = [t for t, c in log if c == chat]
        assert most_in_window(mine, 1.0) == 1
        if chat.startswith("-"):
            assert most_in_window(mine, 60.0) <= 20


async def test_pause_holds_every_send():
    clock = FakeClock()
    pacer = Pacer(clock)
    await pacer.acquire("1")
    pacer.pause_for(12.0)
    await pacer.acquire("2")
    assert clock.t >= 12.0


async def test_replies_go_before_waiting_notifications():
    clock = EventClock()
    pacer = Pacer(clock, TelegramLimits(global_per_second=2, notifications_per_second=1))
    order: list[str] = []

    async def note(i: int) -> None:
        await pacer.acquire(f"n{i}", Priority.NOTIFICATION)
        order.append(f"n{i}")

    async def reply() -> None:
        await pacer.acquire("r", Priority.REPLY)
        order.append("r")

    async def reply_later() -> None:
        await clock.sleep(0.5)  # arrives while two notifications are queued
        await reply()

    await clock.drive(note(0), note(1), note(2), reply_later())
    assert order[:2] == ["n0", "r"]  # the reply overtook the queued notifications


def test_backoff_grows_with_jitter_and_a_cap():
    rng = random.Random(1)
    first, fourth = backoff_seconds(1, rng), backoff_seconds(4, rng)
    assert 2.5 <= first <= 5.0
    assert 20.0 <= fourth <= 40.0
    assert backoff_seconds(50, rng) <= 900.0


async def test_a_reply_waiting_on_its_busy_group_does_not_delay_other_chats():
    clock = EventClock()
    pacer = Pacer(clock)
    group = "-100500"
    done: dict[str, float] = {}

    async def fill_group() -> None:
        for _ in range(20):  # the group's 20 messages for this minute
            await pacer.acquire(group, Priority.REPLY)

    await clock.drive(fill_group())
    start = clock.t

    async def reply() -> None:
        await pacer.acquire(group, Priority.REPLY)  # the 21st: waits for the group's window
        done["reply"] = clock.t - start

    async def alert(chat: str) -> None:
        await clock.sleep(0.01)  # arrives while the reply is already waiting
        await pacer.acquire(chat, Priority.NOTIFICATION)
        done[chat] = clock.t - start

    await clock.drive(reply(), *(alert(str(1000 + i)) for i in range(3)))
    assert done["reply"] >= 60.0 - 19.0  # the group's first reply left 19 s before `start`
    assert all(done[str(1000 + i)] < 0.2 for i in range(3)), done


async def test_a_reply_waiting_on_its_own_chat_does_not_delay_other_chats():
    clock = EventClock()
    pacer = Pacer(clock)
    await pacer.acquire("7", Priority.REPLY)
    done: dict[str, float] = {}

    async def reply() -> None:
        await pacer.acquire("7", Priority.REPLY)  # one a second to the same chat
        done["reply"] = clock.t

    async def alert() -> None:
        await clock.sleep(0.01)
        await pacer.acquire("8", Priority.NOTIFICATION)
        done["alert"] = clock.t

    await clock.drive(reply(), alert())
    assert done["reply"] == 1.0
    assert done["alert"] < 0.1
