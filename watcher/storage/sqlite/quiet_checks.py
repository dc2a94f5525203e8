"""SQLite's group commit of quiet checks (no event, no watch finished): a few statements for a
whole group instead of several per check, since every statement is a trip to the database
thread, which costs the event loop more than the statement costs SQLite.

The rows travel as one JSON parameter each statement opens with `json_each`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from watcher.core.model import Availability
from watcher.errors import StorageError
from watcher.storage.codec import dump_json, ids_json
from watcher.storage.connector import Query, Role
from watcher.storage.group_commit import LEASE_LOST, CheckWrite, Written
from watcher.storage.interface import RecordedCheck
from watcher.storage.roles.checks import OBSERVATIONS_KEPT, PRUNE_EVERY

# As `roles.checks.UPDATE_CHECKED_PRODUCT` for a group: a product whose lease passed to another
# check is left as it is, and is not among those returned.
UPDATE_CHECKED_PRODUCTS = Query(
    """
    WITH c AS (SELECT
        json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS due_at,
        json_extract(value, '$[2]') AS etag, json_extract(value, '$[3]') AS modified,
        json_extract(value, '$[4]') AS hash, json_extract(value, '$[5]') AS store,
        json_extract(value, '$[6]') AS state, json_extract(value, '$[7]') AS known,
        json_extract(value, '$[8]') AS price, json_extract(value, '$[9]') AS title,
        json_extract(value, '$[10]') AS at, json_extract(value, '$[11]') AS error,
        json_extract(value, '$[12]') AS blocked, json_extract(value, '$[13]') AS owner
        FROM json_each(:checks))
    UPDATE products SET
        due_at = c.due_at, lease_owner = NULL, lease_until = NULL,
        etag = COALESCE(c.etag, products.etag),
        last_modified = COALESCE(c.modified, products.last_modified),
        content_hash = COALESCE(c.hash, products.content_hash),
        store = COALESCE(products.store, c.store),
        last_state = c.state,
        last_price = CASE WHEN c.known THEN c.price ELSE products.last_price END,
        last_title = COALESCE(c.title, products.last_title),
        last_checked_at = c.at,
        consecutive_errors = CASE WHEN c.error THEN products.consecutive_errors + 1
                                  ELSE 0 END,
        checks = products.checks + 1,
        blocks = products.blocks + c.blocked
    FROM c
    WHERE products.id = c.id AND (c.owner IS NULL OR products.lease_owner = c.owner)
    RETURNING products.id, products.checks
    """,
    only="sqlite",
)
INSERT_OBSERVATIONS = Query(
    "INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms,"
    " blocked) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'),"
    " json_extract(value, '$[4]'), json_extract(value, '$[5]'),"
    " json_extract(value, '$[6]'), json_extract(value, '$[7]'),"
    " json_extract(value, '$[8]') FROM json_each(:observations) ORDER BY key",
    only="sqlite",
)
# Keep the newest OBSERVATIONS_KEPT rows of these products (as `roles.checks`).
PRUNE_OBSERVATIONS = Query(
    "DELETE FROM observations WHERE id IN (SELECT o.id FROM json_each(:ids) p"
    " JOIN observations o ON o.product_id = p.value WHERE o.id < (SELECT id FROM"
    " observations WHERE product_id = p.value ORDER BY id DESC LIMIT 1 OFFSET :keep))",
    only="sqlite",
)
STORE_QUIET_DECISIONS = Query(
    "WITH d AS (SELECT json_extract(value, '$[0]') AS id,"
    " json_extract(value, '$[1]') AS state, json_extract(value, '$[2]') AS at"
    " FROM json_each(:decisions))"
    " UPDATE watches SET detector_state = d.state, updated_at = d.at"
    " FROM d WHERE watches.id = d.id RETURNING watches.id",
    only="sqlite",
)


class SQLiteQuietChecks(Role):
    """`group_commit.RecordQuiet` on SQLite."""

    async def _record_quiet_checks(self, writes: Sequence[CheckWrite]) -> list[Written]:
        """Quiet checks (no events, distinct products), inside the caller's transaction, with
        three or four statements for the whole group."""
        updated = await self._update_checked_products(writes)
        kept = [w for w in writes if w.product_id in updated]
        for write in writes:
            if write.product_id not in updated and write.outcome.lease_owner is None:
                raise StorageError(f"record_check: no product with id {write.product_id}")
        await self._insert_observations(kept, updated)
        await self._store_quiet_decisions(kept)
        quiet = Written(RecordedCheck(events=(), deliveries=0))
        return [quiet if w.product_id in updated else LEASE_LOST for w in writes]

    async def _update_checked_products(self, writes: Sequence[CheckWrite]) -> dict[int, int]:
        """Checks by product id of those updated."""
        values = []
        for write in writes:
            obs, outcome = write.observation, write.outcome
            values.append(
                (
                    write.product_id,
                    write.next_due,
                    outcome.etag,
                    outcome.last_modified,
                    outcome.content_hash,
                    obs.store,
                    obs.state.value,
                    obs.state is not Availability.UNKNOWN,
                    obs.price,
                    obs.title,
                    write.stamp,
                    outcome.error,
                    int(obs.blocked),
                    outcome.lease_owner,
                )
            )
        rows = await self._db.rows(
            UPDATE_CHECKED_PRODUCTS, checks=json.dumps(values, ensure_ascii=False)
        )
        return {int(row[0]): int(row[1]) for row in rows}

    async def _insert_observations(
        self, writes: Sequence[CheckWrite], checks: dict[int, int]
    ) -> None:
        """The group's observations in one statement (and one more to prune)."""
        if not writes:
            return
        values = []
        for write in writes:
            obs, facts = write.observation, write.observation.fetch
            values.append(
                (
                    write.product_id,
                    write.stamp,
                    obs.state.value,
                    obs.price,
                    obs.reason,
                    facts.status if facts else None,
                    facts.bytes if facts else 0,
                    facts.elapsed_ms if facts else 0.0,
                    int(obs.blocked),
                )
            )
        await self._db.execute(
            INSERT_OBSERVATIONS, observations=json.dumps(values, ensure_ascii=False)
        )
        pruned = [w.product_id for w in writes if not checks[w.product_id] % PRUNE_EVERY]
        if pruned:
            await self._db.execute(
                PRUNE_OBSERVATIONS, ids=ids_json(pruned), keep=OBSERVATIONS_KEPT - 1
            )

    async def _store_quiet_decisions(self, writes: Sequence[CheckWrite]) -> None:
        """The group's detector states (no quiet check finishes its watch)."""
        values = [(d.watch_id, dump_json(d.state), w.stamp) for w in writes for d in w.decisions]
        if not values:
            return
        rows = await self._db.rows(
            STORE_QUIET_DECISIONS, decisions=json.dumps(values, ensure_ascii=False)
        )
        if len(rows) != len({v[0] for v in values}):
            missing = ", ".join(str(v[0]) for v in values)
            raise StorageError(f"record_check: a watch among ids {missing} does not exist")
