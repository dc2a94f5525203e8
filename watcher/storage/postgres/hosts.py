"""Per-host state on PostgreSQL: one row per host, its backoff shared by every worker (the
request slots taken through it are in `workers`)."""

from __future__ import annotations

from watcher.storage.codec import to_epoch
from watcher.storage.interface import HostState
from watcher.storage.postgres.connection import PostgresStore
from watcher.storage.rows import host_state


class PostgresHosts(PostgresStore):
    """One row per host, shared by workers."""

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
