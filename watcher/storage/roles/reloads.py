"""The reload counter: a worker that reloads its watchlist bumps it, and every worker that sees it
move reloads its own. On PostgreSQL the bump is also announced (NOTIFY), so the other workers
react at once; on SQLite they see it at their next look."""

from __future__ import annotations

from watcher.storage.connector import Query, Role

BUMP_RELOADS = Query(
    """
    INSERT INTO reloads AS r (id, counter) VALUES (1, 1)
    ON CONFLICT (id) DO UPDATE SET counter = r.counter + 1
    RETURNING counter
    """
)
RELOADS = Query("SELECT counter FROM reloads WHERE id = 1")


class Reloads(Role):
    """One counter for every worker on the database."""

    async def bump_reloads(self) -> int:
        async with self._db.write():
            counter: int = await self._db.value(BUMP_RELOADS)
            await self._db.announce_reload()
        return counter

    async def reload_count(self) -> int:
        async with self._db.read():
            counter = await self._db.value(RELOADS)
        return 0 if counter is None else int(counter)
