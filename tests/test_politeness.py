"""Per-host politeness on virtual time: slots, delays, backoff and the circuit breaker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from watcher.net.politeness import (
    Backoff,
    Breaker,
    HostBackingOff,
    HostPolicy,
    PolicyBook,
    Politeness,
)
from watcher.stores._base import HostLimits


class FakeClock:
    """Virtual monotonic time: sleeping moves the clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        target = self.now + seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would
        self.now = max(self.now, target)


def gate(clock: FakeClock, policy: HostPolicy, *, rng: float = 0.5, **options: Any) -> Politeness:
    return Politeness(
        lambda host: policy, clock=clock, sleep=clock.sleep, rng=lambda: rng, **options
    )


# --- policy resolution ------------------------------------------------------------------------

AMAZON = HostLimits(
    concurrency=1, min_delay=timedelta(seconds=3), min_interval=timedelta(minutes=1)
)


def amazon_store(host: str) -> HostLimits | None:
    return AMAZON if host == "www.amazon.co.jp" else None


@pytest.mark.parametrize(
    ("host", "default", "hosts", "expected"),
    [
        ("shop.example", None, None, HostPolicy(2, 1.0, 30.0)),
        ("shop.example", {"concurrency": 4, "min_delay": 0.5}, None, HostPolicy(4, 0.5, 30.0)),
        ("www.amazon.co.jp", None, None, HostPolicy(1, 3.0, 60.0)),
        # the default is for hosts no store knows: it does not loosen a store's own limits
        ("www.amazon.co.jp", {"concurrency": 4, "min_delay": 0}, None, HostPolicy(1, 3.0, 60.0)),
        (
            "WWW.Amazon.co.jp.",
            None,
            {"www.amazon.co.jp": {"concurrency": 2, "min_interval": timedelta(seconds=20)}},
            HostPolicy(2, 3.0, 20.0),
        ),
        (
            "127.0.0.1",
            {"concurrency": 2},
            {"127.0.0.1": {"concurrency": 64, "min_delay": 0, "min_interval": 0}},
            HostPolicy(64, 0.0, 0.0),
        ),
        ("a.base.shop", None, {"*.base.shop": {"concurrency": 1}}, HostPolicy(1, 1.0, 30.0)),
        (
            "shop.example",
            SimpleNamespace(concurrency=3, min_delay=None, min_interval=timedelta(minutes=2)),
            None,
            HostPolicy(3, 1.0, 120.0),
        ),
    ],
)
def test_policy_resolution(host: str, default: Any, hosts: Any, expected: HostPolicy) -> None:
    book = PolicyBook(default=default, hosts=hosts, store_limits=amazon_store)
    assert book.policy(host) == expected


@pytest.mark.parametrize(
    "override",
    [
        {"concurrency": 0},
        {"concurrency": 1.5},
        {"min_delay": -1},
        {"min_delay": "1s"},
        {"concurrency": True},
    ],
)
def test_policy_rejects_nonsense(override: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="politeness"):
        PolicyBook(default=override).policy("shop.example")


def test_registered_stores_bring_their_limits() -> None:
    book = PolicyBook(default={"concurrency": 8, "min_delay": 0})
    assert book.policy("unknown-shop.example") == HostPolicy(8, 0.0, 30.0)
    amazon = book.policy("www.amazon.co.jp")
    assert amazon != book.policy("unknown-shop.example")
    assert amazon.concurrency <= 2


def test_from_settings_and_blocked_until() -> None:
    clock = FakeClock()
    wall = datetime(2025, 1, 6, 3, 0, tzinfo=UTC)
    politeness = Politeness.from_settings(
        default={"concurrency": 2, "min_delay": timedelta(seconds=1)},
        hosts={"127.0.0.1": {"concurrency": 64, "min_delay": timedelta(0)}},
        store_limits=amazon_store,
        global_concurrency=8,
        clock=clock,
        rng=lambda: 0.5,
        wall_clock=lambda: wall,
    )
    assert politeness.policy("127.0.0.1") == HostPolicy(64, 0.0, 30.0)
    assert politeness.policy("www.amazon.co.jp").min_interval == 60.0
    assert politeness.blocked_until("www.amazon.co.jp") is None
    politeness.report("www.amazon.co.jp", blocked=True, retry_after=120)
    assert politeness.blocked_until("www.amazon.co.jp") == wall + timedelta(seconds=120)
    state = politeness.snapshot()["www.amazon.co.jp"]
    assert state.backoff_until == wall + timedelta(seconds=120)
    assert state.backoff_remaining == 120.0


# --- slots ------------------------------------------------------------------------------------


async def test_concurrency_is_never_exceeded() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=2, min_delay=0.0), global_concurrency=3)
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    peaks: dict[str, int] = {"a": 0, "b": 0, "all": 0}

    async def request(host: str) -> None:
        async with politeness.slot(host):
            in_flight[host] += 1
            peaks[host] = max(peaks[host], in_flight[host])
            peaks["all"] = max(peaks["all"], sum(in_flight.values()))
            await clock.sleep(1.0)  # the request takes a while
            in_flight[host] -= 1

    await asyncio.gather(*(request(host) for host in "ab" * 10))
    assert peaks == {"a": 2, "b": 2, "all": 3}
    assert politeness.snapshot()["a"].in_flight == 0


async def test_min_delay_spaces_request_starts() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=5, min_delay=3.0))
    starts: list[float] = []

    async def request() -> None:
        async with politeness.slot("shop.example"):
            starts.append(clock())

    await asyncio.gather(*(request() for _ in range(4)))
    assert starts == [0.0, 3.0, 6.0, 9.0]


async def test_hosts_do_not_delay_each_other() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=1, min_delay=5.0))
    starts: dict[str, float] = {}

    async def request(host: str) -> None:
        async with politeness.slot(host):
            starts[host] = clock()

    await asyncio.gather(request("a.example"), request("b.example"))
    assert starts == {"a.example": 0.0, "b.example": 0.0}


async def test_a_failing_request_frees_its_slot() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=1, min_delay=0.0))
    with pytest.raises(RuntimeError):
        async with politeness.slot("shop.example"):
            raise RuntimeError("adapter bug")
    async with politeness.slot("shop.example"):
        assert politeness.snapshot()["shop.example"].in_flight == 1


# --- backoff and breaker ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "rng", "delay"),
    [
        (1, 0.5, 30.0),
        (2, 0.5, 60.0),
        (3, 0.5, 120.0),
        (8, 0.5, 3600.0),
        (20, 0.5, 3600.0),
        (1, 0.0, 27.0),
        (1, 1.0, 33.0),
        (8, 1.0, 3600.0),
    ],
)
def test_backoff_delay(blocks: int, rng: float, delay: float) -> None:
    assert Backoff().delay(blocks, lambda: rng) == pytest.approx(delay)


async def test_blocked_host_backs_off_exponentially() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=2, min_delay=0.0))
    for expected in (30.0, 60.0):
        async with politeness.slot("shop.example"):
            politeness.report("shop.example", blocked=True)
        assert politeness.retry_in("shop.example") == expected
        with pytest.raises(HostBackingOff) as refused:
            async with politeness.slot("shop.example"):
                pass
        assert refused.value.retry_in == expected
        assert refused.value.breaker is Breaker.CLOSED
        clock.now += expected
    state = politeness.snapshot()["shop.example"]
    assert (state.consecutive_blocks, state.breaker, state.backoff_remaining) == (
        2,
        Breaker.CLOSED,
        0,
    )


async def test_success_resets_the_count() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=1, min_delay=0.0))
    politeness.report("shop.example", blocked=True)
    clock.now += 30
    politeness.report("shop.example", blocked=False)
    politeness.report("shop.example", blocked=True)
    assert politeness.retry_in("shop.example") == 30.0  # back to the first step


async def test_a_stale_success_does_not_end_a_backoff() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy())
    politeness.report("shop.example", blocked=True)
    politeness.report("shop.example", blocked=False)  # a request that began before the block
    assert politeness.retry_in("shop.example") == 30.0
    assert politeness.snapshot()["shop.example"].consecutive_blocks == 1


@pytest.mark.parametrize(("retry_after", "wait"), [(600.0, 600.0), (5.0, 30.0), (None, 30.0)])
async def test_retry_after_is_honoured(retry_after: float | None, wait: float) -> None:
    politeness = gate(FakeClock(), HostPolicy())
    politeness.report("shop.example", blocked=True, retry_after=retry_after)
    assert politeness.retry_in("shop.example") == wait


async def test_retry_after_on_an_unblocked_answer_still_waits() -> None:
    politeness = gate(FakeClock(), HostPolicy())
    politeness.report("shop.example", blocked=False, retry_after=90.0)
    assert politeness.retry_in("shop.example") == 90.0
    assert politeness.snapshot()["shop.example"].consecutive_blocks == 0


async def test_breaker_opens_after_three_blocks_and_probes_once() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=4, min_delay=0.0))
    for _ in range(3):
        politeness.report("shop.example", blocked=True)
    assert politeness.snapshot()["shop.example"].breaker is Breaker.OPEN
    with pytest.raises(HostBackingOff) as refused:
        async with politeness.slot("shop.example"):
            pass
    assert refused.value.breaker is Breaker.OPEN
    clock.now += politeness.retry_in("shop.example")

    probe_running = asyncio.Event()
    finish_probe = asyncio.Event()
    order: list[str] = []

    async def probe() -> None:
        async with politeness.slot("shop.example"):
            order.append("probe")
            assert politeness.snapshot()["shop.example"].breaker is Breaker.HALF_OPEN
            probe_running.set()
            await finish_probe.wait()
            politeness.report("shop.example", blocked=False)

    async def follower() -> None:
        await probe_running.wait()
        async with politeness.slot("shop.example"):
            order.append("follower")

    tasks = [asyncio.create_task(probe()), asyncio.create_task(follower())]
    await probe_running.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["probe"]  # the follower waits for the probe's verdict
    finish_probe.set()
    await asyncio.gather(*tasks)
    assert order == ["probe", "follower"]
    state = politeness.snapshot()["shop.example"]
    assert (state.breaker, state.consecutive_blocks) == (Breaker.CLOSED, 0)


async def test_failed_probe_reopens_with_a_longer_backoff() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=4, min_delay=0.0))
    for _ in range(3):
        politeness.report("shop.example", blocked=True)
    clock.now += 120.0
    probe_running = asyncio.Event()
    finish_probe = asyncio.Event()

    async def probe() -> None:
        async with politeness.slot("shop.example"):
            probe_running.set()
            await finish_probe.wait()
            politeness.report("shop.example", blocked=True, retry_after=10.0)

    async def follower() -> None:
        await probe_running.wait()
        async with politeness.slot("shop.example"):
            pass

    probing = asyncio.create_task(probe())
    following = asyncio.create_task(follower())
    await probe_running.wait()
    await asyncio.sleep(0)
    finish_probe.set()
    await probing
    with pytest.raises(HostBackingOff) as refused:
        await following
    assert refused.value.breaker is Breaker.OPEN
    assert refused.value.retry_in == 240.0
    assert politeness.snapshot()["shop.example"].consecutive_blocks == 4


async def test_probe_without_a_verdict_lets_the_next_request_probe() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=4, min_delay=0.0), breaker_threshold=1)
    politeness.report("shop.example", blocked=True)
    clock.now += 30.0
    async with politeness.slot("shop.example"):
        pass  # e.g. a connection error: nothing reported
    async with politeness.slot("shop.example"):
        assert politeness.snapshot()["shop.example"].breaker is Breaker.HALF_OPEN


async def test_snapshot_and_forgetting_idle_hosts() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=3, min_delay=1.0), max_hosts=2)
    politeness.report("blocked.example", blocked=True)
    async with politeness.slot("idle.example"):
        pass
    clock.now += 5.0
    async with politeness.slot("new.example"):
        snapshot = politeness.snapshot()
    assert sorted(snapshot) == ["blocked.example", "new.example"]  # the idle host was dropped
    assert snapshot["blocked.example"].backoff_remaining == 25.0
    assert snapshot["blocked.example"].consecutive_blocks == 1
    assert snapshot["new.example"].in_flight == 1
    assert snapshot["new.example"].concurrency == 3


# --- reconfiguring (a watchlist reload) -------------------------------------------------------


async def test_reconfiguring_keeps_each_hosts_backoff_and_breaker() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=2, min_delay=0.0))
    for _ in range(3):
        politeness.report("shop.example", blocked=True)
    before = politeness.snapshot()["shop.example"]
    assert before.breaker is Breaker.OPEN

    politeness.reconfigure(
        lambda host: HostPolicy(concurrency=8, min_delay=0.0), global_concurrency=4
    )

    after = politeness.snapshot()["shop.example"]
    assert (after.consecutive_blocks, after.breaker) == (3, Breaker.OPEN)
    assert after.backoff_remaining == before.backoff_remaining > 0
    assert after.concurrency == 8  # the new policy
    with pytest.raises(HostBackingOff):
        async with politeness.slot("shop.example"):
            pass


async def test_a_lowered_limit_lets_held_slots_finish_and_new_ones_obey_it() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=2, min_delay=0.0))
    release = [asyncio.Event(), asyncio.Event()]
    started: list[str] = []

    async def request(name: str, done: asyncio.Event) -> None:
        async with politeness.slot("shop.example"):
            started.append(name)
            await done.wait()

    held = [asyncio.create_task(request(f"held{i}", release[i])) for i in range(2)]
    await settle()
    politeness.reconfigure(
        lambda host: HostPolicy(concurrency=1, min_delay=0.0), global_concurrency=16
    )
    late_done = asyncio.Event()
    late = asyncio.create_task(request("late", late_done))
    await settle()
    assert started == ["held0", "held1"]  # both held slots go on

    release[0].set()
    await settle()
    assert "late" not in started  # one slot still held: the new limit of one is reached
    release[1].set()
    await settle()
    assert started[-1] == "late"
    assert politeness.snapshot()["shop.example"].in_flight == 1
    late_done.set()
    await asyncio.gather(*held, late)


async def test_a_raised_limit_frees_a_waiting_request_at_once() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=1, min_delay=0.0), global_concurrency=1)
    done = asyncio.Event()
    started: list[str] = []

    async def request(name: str, host: str) -> None:
        async with politeness.slot(host):
            started.append(name)
            await done.wait()

    tasks = [asyncio.create_task(request("first", "a.example"))]
    await settle()
    tasks.append(asyncio.create_task(request("second", "b.example")))  # waits on the global cap
    await settle()
    assert started == ["first"]

    politeness.reconfigure(
        lambda host: HostPolicy(concurrency=1, min_delay=0.0), global_concurrency=2
    )
    await settle()
    assert started == ["first", "second"]
    done.set()
    await asyncio.gather(*tasks)


async def test_a_longer_delay_applies_to_the_next_request() -> None:
    clock = FakeClock()
    politeness = gate(clock, HostPolicy(concurrency=4, min_delay=1.0))
    async with politeness.slot("shop.example"):
        pass
    politeness.reconfigure(
        lambda host: HostPolicy(concurrency=4, min_delay=5.0), global_concurrency=16
    )
    async with politeness.slot("shop.example"):
        assert clock() == 5.0  # spaced by the new delay from the start before the reload


def test_reconfiguring_refuses_a_global_cap_below_one() -> None:
    politeness = gate(FakeClock(), HostPolicy())
    with pytest.raises(ValueError, match="global concurrency"):
        politeness.reconfigure(lambda host: HostPolicy(), global_concurrency=0)


async def settle() -> None:
    """Let every ready task run until it waits."""
    for _ in range(5):
        await asyncio.sleep(0)
