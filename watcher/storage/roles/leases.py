"""Leases: given back at a graceful stop, or listed to find dead workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.storage.codec import to_epoch
from watcher.storage.connector import Query, Role

RELEASE_PRODUCTS = Query(
    "UPDATE products SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = :owner"
)
# The attempt these deliveries were claimed for was never made: it is given back.
RELEASE_DELIVERIES = Query(
    sqlite="UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
    " attempts = MAX(attempts - 1, 0) WHERE lease_owner = :owner AND status = 'pending'",
    postgres="UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
    " attempts = GREATEST(attempts - 1, 0) WHERE lease_owner = :owner AND status = 'pending'",
)
RELEASE_SOME_DELIVERIES = Query(
    sqlite="UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
    " attempts = MAX(attempts - 1, 0) WHERE lease_owner = :owner AND status = 'pending'"
    " AND id IN (SELECT value FROM json_each(:ids))",
    postgres="UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,"
    " attempts = GREATEST(attempts - 1, 0) WHERE lease_owner = :owner"
    " AND status = 'pending' AND id = ANY(:ids::bigint[])",
)
LEASE_OWNERS = Query(
    "SELECT lease_owner FROM products WHERE lease_owner IS NOT NULL AND lease_until > :now"
    " UNION SELECT lease_owner FROM deliveries WHERE status = 'pending'"
    " AND lease_owner IS NOT NULL AND lease_until > :now"
)


class Leases(Role):
    """Product and delivery leases across workers."""

    async def release_leases(self, owner: str) -> None:
        async with self._db.write():
            await self._db.run(RELEASE_PRODUCTS, owner=owner)
            await self._db.run(RELEASE_DELIVERIES, owner=owner)

    async def release_deliveries(self, owner: str, delivery_ids: Sequence[int]) -> None:
        if not delivery_ids:
            return
        async with self._db.write():
            await self._db.run(RELEASE_SOME_DELIVERIES, owner=owner, ids=self._db.ids(delivery_ids))

    async def lease_owners(self, now: datetime) -> list[str]:
        async with self._db.read():
            rows = await self._db.rows(LEASE_OWNERS, now=to_epoch(now))
        return sorted(row["lease_owner"] for row in rows)
