"""Workers on PostgreSQL: their standing links (duties held as session advisory locks, LISTEN
for new deliveries and reloads, a beat in `workers`), and each host's request budget shared
through rows.

A duty is a session advisory lock on the worker's own connection: when the worker dies, the
server ends its session and the lock is free at once; the next worker to try takes it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from watcher.storage.codec import from_epoch, required_time, to_epoch
from watcher.storage.coordination import HostGrant, WorkerInfo
from watcher.storage.postgres.connection import DatabaseErrors, PostgresStore, dsn_of
from watcher.storage.postgres.signals import LOCK_KEY_SQL, OUTBOX_CHANNEL_SQL, RELOAD_CHANNEL_SQL

DUTY_PREFIX = "duty:"
CONNECT_TIMEOUT = 10.0


class PostgresCoordinator:
    """One worker's dedicated connection (outside the pool: it must outlive every borrow)."""

    def __init__(self, url: str, worker: str) -> None:
        self._url = url
        self.worker = worker
        self._conn: asyncpg.Connection | None = None
        self._held: set[str] = set()
        self._started_at: float | None = None

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    async def start(
        self, on_outbox: Callable[[], None], on_reload: Callable[[], None] | None = None
    ) -> None:
        self._held.clear()
        conn = await asyncpg.connect(dsn_of(self._url), timeout=CONNECT_TIMEOUT)
        try:
            await _listen(conn, OUTBOX_CHANNEL_SQL, on_outbox)
            if on_reload is not None:
                await _listen(conn, RELOAD_CHANNEL_SQL, on_reload)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn

    async def hold(self, duty: str) -> bool:
        if duty in self._held:
            return True
        if self._conn is None:
            return False
        try:
            got: bool = await self._conn.fetchval(
                f"SELECT pg_try_advisory_lock({LOCK_KEY_SQL})", DUTY_PREFIX + duty
            )
        except DatabaseErrors:
            await self._lost()
            return False
        if got:
            self._held.add(duty)
        return got

    async def let_go(self, duty: str) -> None:
        if duty not in self._held or self._conn is None:
            return
        self._held.discard(duty)
        try:
            await self._conn.fetchval(
                f"SELECT pg_advisory_unlock({LOCK_KEY_SQL})", DUTY_PREFIX + duty
            )
        except DatabaseErrors:
            await self._lost()

    async def beat(self, now: datetime, ttl: timedelta) -> bool:
        if self._conn is None:
            return False
        stamp = to_epoch(now)
        if self._started_at is None:
            self._started_at = stamp
        try:
            await self._conn.execute(
                """
                INSERT INTO workers AS w (name, host, pid, started_at, seen_at, expires_at, duties)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at,
                    expires_at = excluded.expires_at, duties = excluded.duties
                """,
                self.worker,
                socket.gethostname(),
                os.getpid(),
                self._started_at,
                stamp,
                stamp + ttl.total_seconds(),
                ",".join(sorted(self._held)),
            )
        except DatabaseErrors:
            await self._lost()
            return False
        return True

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is None:
            return
        try:
            await conn.execute("DELETE FROM workers WHERE name = $1", self.worker)
            await conn.close()  # ends the session: every advisory lock it held is free
        except DatabaseErrors:
            conn.terminate()

    async def _lost(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            conn.terminate()


async def _listen(conn: asyncpg.Connection, channel_sql: str, heard: Callable[[], None]) -> None:
    channel: str = await conn.fetchval(f"SELECT {channel_sql}")

    def notified(*_: Any) -> None:
        heard()

    await conn.add_listener(channel, notified)


class PostgresWorkers(PostgresStore):
    """Live workers, and per-host request slots shared by them."""

    url: str

    def coordinator(self, worker: str) -> PostgresCoordinator:
        return PostgresCoordinator(self.url, worker)

    async def live_workers(self, now: datetime) -> list[WorkerInfo]:
        async with self._read():
            rows = await self._rows(
                "SELECT * FROM workers WHERE expires_at > $1 ORDER BY name", to_epoch(now)
            )
        return [
            WorkerInfo(
                name=row["name"],
                host=row["host"],
                pid=row["pid"],
                started_at=required_time(row["started_at"]),
                seen_at=required_time(row["seen_at"]),
                duties=tuple(d for d in row["duties"].split(",") if d),
            )
            for row in rows
        ]

    async def release_dead_workers(self, now: datetime) -> list[str]:
        """Give back the leases of workers whose beat expired (killed, or cut off), at once.

        Only workers that beat once and then stopped: one that has not beaten yet is left alone.
        A worker merely cut off for longer than its beat's life loses its products (its checks
        are then dropped as lease-lost) and its deliveries (a send in flight may repeat).
        """
        async with self._write():
            rows = await self._rows(
                "DELETE FROM workers WHERE name IN (SELECT name FROM workers"
                " WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED) RETURNING name",
                to_epoch(now),
            )
            names = sorted(row["name"] for row in rows)
            if names:
                await self._run(
                    "UPDATE products SET lease_owner = NULL, lease_until = NULL"
                    " WHERE lease_owner = ANY($1::text[])",
                    names,
                )
                await self._run(
                    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
                    " attempts = GREATEST(attempts - 1, 0)"
                    " WHERE lease_owner = ANY($1::text[]) AND status = 'pending'",
                    names,
                )
                await self._run("DELETE FROM host_slots WHERE owner = ANY($1::text[])", names)
        return names

    async def acquire_host_slot(
        self,
        host: str,
        owner: str,
        now: datetime,
        *,
        concurrency: int,
        min_delay: timedelta,
        hold: timedelta,
    ) -> HostGrant:
        async with self._read():  # one statement, its own transaction
            row = await self._row(
                "SELECT * FROM restock_grant_host_slot($1, $2, $3, $4, $5, $6)",
                host,
                owner,
                to_epoch(now),
                concurrency,
                min_delay.total_seconds(),
                hold.total_seconds(),
            )
        assert row is not None  # a function with OUT parameters returns one row
        if row["backoff_until"] is not None:
            return HostGrant(backoff_until=from_epoch(row["backoff_until"]))
        if row["slot_id"] is None:
            return HostGrant()
        return HostGrant(slot_id=row["slot_id"], start_at=required_time(row["start_at"]))

    async def release_host_slot(self, slot_id: int) -> None:
        async with self._read():  # one statement, its own transaction
            await self._run("DELETE FROM host_slots WHERE id = $1", slot_id)
