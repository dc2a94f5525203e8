"""Leases on SQLite: given back at a graceful stop, or listed to find dead workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.storage.codec import (
    ids_json,
    to_epoch,
)
from watcher.storage.sqlite.connection import SQLiteStore


class SQLiteLeases(SQLiteStore):
    """Product and delivery leases across workers."""

    async def release_leases(self, owner: str) -> None:
        async with self._write():
            await self._run(
                "UPDATE products SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                (owner,),
            )
            # The attempt these deliveries were claimed for was never made.
            await self._run(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
                " attempts = MAX(attempts - 1, 0) WHERE lease_owner = ? AND status = 'pending'",
                (owner,),
            )

    async def release_deliveries(self, owner: str, delivery_ids: Sequence[int]) -> None:
        if not delivery_ids:
            return
        async with self._write():
            # As in release_leases: the attempt these deliveries were claimed for was never made.
            await self._run(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
                " attempts = MAX(attempts - 1, 0) WHERE lease_owner = ? AND status = 'pending'"
                " AND id IN (SELECT value FROM json_each(?))",
                (owner, ids_json(delivery_ids)),
            )

    async def lease_owners(self, now: datetime) -> list[str]:
        stamp = to_epoch(now)
        async with self._read():
            rows = await self._rows(
                "SELECT lease_owner FROM products WHERE lease_owner IS NOT NULL"
                " AND lease_until > ?"
                " UNION SELECT lease_owner FROM deliveries WHERE status = 'pending'"
                " AND lease_owner IS NOT NULL AND lease_until > ?",
                (stamp, stamp),
            )
        return sorted(row["lease_owner"] for row in rows)
