"""Per-host politeness on PostgreSQL: one row per host, its slots and backoff shared by every
worker (the upsert locks the row for the moment it takes, so reservations queue up)."""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.storage.codec import required_time, to_epoch
from watcher.storage.interface import HostState
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.rows import host_state


class PostgresHosts(PostgresStore):
    """One row per host, shared by workers."""

    async def reserve_host_slot(self, host: str, now: datetime, min_delay: timedelta) -> datetime:
        stamp, delay = to_epoch(now), min_delay.total_seconds()
        async with self._write():
            next_allowed: float = await self._conn().fetchval(
                """
                INSERT INTO host_state AS h (host, next_allowed_at)
                VALUES ($1, $2::double precision + $3::double precision)
                ON CONFLICT (host) DO UPDATE SET next_allowed_at =
                    GREATEST($2, COALESCE(h.next_allowed_at, 0), COALESCE(h.backoff_until, 0))
                    + $3
                RETURNING next_allowed_at
                """,
                host,
                stamp,
                delay,
            )
        return required_time(next_allowed - delay)

    async def save_host_state(self, state: HostState) -> None:
        next_allowed = None if state.next_allowed_at is None else to_epoch(state.next_allowed_at)
        backoff = None if state.backoff_until is None else to_epoch(state.backoff_until)
        async with self._write():
            await self._run(
                """
                INSERT INTO host_state AS h (host, next_allowed_at, backoff_until,
                    consecutive_blocks, last_reason) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (host) DO UPDATE SET
                    next_allowed_at = COALESCE(excluded.next_allowed_at, h.next_allowed_at),
                    backoff_until = excluded.backoff_until,
                    consecutive_blocks = excluded.consecutive_blocks,
                    last_reason = excluded.last_reason
                """,
                state.host,
                next_allowed,
                backoff,
                state.consecutive_blocks,
                state.last_reason,
            )

    async def host_states(self) -> list[HostState]:
        async with self._read():
            rows = await self._rows("SELECT * FROM host_state ORDER BY host")
        return [host_state(row) for row in rows]
