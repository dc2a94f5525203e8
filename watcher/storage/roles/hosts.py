"""Per-host state: one row per host, its backoff shared by every worker (on PostgreSQL the
request slots taken through it are in `watcher.storage.postgres.workers`)."""

from __future__ import annotations

from watcher.storage.codec import to_epoch
from watcher.storage.connector import Query, Role
from watcher.storage.interface import HostState
from watcher.storage.rows import host_state

SAVE_HOST_STATE = Query(
    """
    INSERT INTO host_state AS h (host, next_allowed_at, backoff_until, consecutive_blocks,
        last_reason) VALUES (:host, :next_allowed_at, :backoff_until, :consecutive_blocks,
        :last_reason)
    ON CONFLICT (host) DO UPDATE SET
        next_allowed_at = COALESCE(excluded.next_allowed_at, h.next_allowed_at),
        backoff_until = excluded.backoff_until,
        consecutive_blocks = excluded.consecutive_blocks,
        last_reason = excluded.last_reason
    """
)
HOST_STATES = Query("SELECT * FROM host_state ORDER BY host")


class Hosts(Role):
    """One row per host, shared by workers."""

    async def save_host_state(self, state: HostState) -> None:
        next_allowed = None if state.next_allowed_at is None else to_epoch(state.next_allowed_at)
        backoff = None if state.backoff_until is None else to_epoch(state.backoff_until)
        async with self._db.write():
            await self._db.run(
                SAVE_HOST_STATE,
                host=state.host,
                next_allowed_at=next_allowed,
                backoff_until=backoff,
                consecutive_blocks=state.consecutive_blocks,
                last_reason=state.last_reason,
            )

    async def host_states(self) -> list[HostState]:
        async with self._db.read():
            rows = await self._db.rows(HOST_STATES)
        return [host_state(row) for row in rows]
