"""Leases on PostgreSQL: given back at a graceful stop, or listed to find dead workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.storage.codec import to_epoch
from watcher.storage.postgres.connection import PostgresStore


class PostgresLeases(PostgresStore):
    """Product and delivery leases across workers."""

    async def release_leases(self, owner: str) -> None:
        async with self._write():
            await self._run(
                "UPDATE products SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
                owner,
            )
            # The attempt these deliveries were claimed for was never made.
            await self._run(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
                " attempts = GREATEST(attempts - 1, 0)"
                " WHERE lease_owner = $1 AND status = 'pending'",
                owner,
            )

    async def release_deliveries(self, owner: str, delivery_ids: Sequence[int]) -> None:
        if not delivery_ids:
            return
        async with self._write():
            await self._run(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
                " attempts = GREATEST(attempts - 1, 0) WHERE lease_owner = $1"
                " AND status = 'pending' AND id = ANY($2::bigint[])",
                owner,
                list(delivery_ids),
            )

    async def lease_owners(self, now: datetime) -> list[str]:
        stamp = to_epoch(now)
        async with self._read():
            rows = await self._rows(
                "SELECT lease_owner FROM products WHERE lease_owner IS NOT NULL"
                " AND lease_until > $1"
                " UNION SELECT lease_owner FROM deliveries WHERE status = 'pending'"
                " AND lease_owner IS NOT NULL AND lease_until > $1",
                stamp,
            )
        return sorted(row["lease_owner"] for row in rows)
