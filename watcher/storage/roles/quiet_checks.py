"""Quiet checks (no event, no watch finished) written for a whole group: a statement for the
group where `roles.checks` runs several per check, since every statement is a trip to the
database (a hop to SQLite's thread, a round trip to a server).

Most quiet checks are repeats (they read what their product's last recorded observation read):
those only update their product's row, so a group of them is one statement. The others add an
observation each, in one more statement for the group (and one to prune now and then); watches
whose state moved add one.

A group's rows travel as one parameter per statement (`Connector.table`): a JSON array SQLite
opens with `json_each`, an array per column PostgreSQL opens with `unnest`.
"""

from __future__ import annotations

from collections.abc import Sequence

from watcher.core.model import Availability
from watcher.errors import StorageError
from watcher.storage.codec import dump_json
from watcher.storage.connector import Query, Role
from watcher.storage.group_commit import LEASE_LOST, CheckWrite, Written
from watcher.storage.interface import RecordedCheck
from watcher.storage.roles import checks as single
from watcher.storage.roles.checks import CheckCounts

_CHECK_COLUMNS = (
    "id",
    "due_at",
    "etag",
    "modified",
    "hash",
    "store",
    "state",
    "known",
    "price",
    "title",
    "at",
    "error",
    "blocked",
    "owner",
    "reading",
)
_SQLITE_CHECKS = ", ".join(
    f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(_CHECK_COLUMNS)
)
_POSTGRES_CHECKS = """unnest(:checks_id::bigint[], :checks_due_at::double precision[],
    :checks_etag::text[], :checks_modified::text[], :checks_hash::text[], :checks_store::text[],
    :checks_state::text[], :checks_known::boolean[], :checks_price::integer[],
    :checks_title::text[], :checks_at::double precision[], :checks_error::boolean[],
    :checks_blocked::integer[], :checks_owner::text[], :checks_reading::text[])
    AS c (id, due_at, etag, modified, hash, store, state, known, price, title, at, error,
          blocked, owner, reading)"""
# As `roles.checks.UPDATE_CHECKED_PRODUCT` for a group: a product whose lease passed to another
# check is left as it is, and is not among those returned.
_UPDATE_CHECKED_PRODUCTS = """
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
        consecutive_errors = CASE WHEN c.error THEN products.consecutive_errors + 1 ELSE 0 END,
        checks = products.checks + 1,
        blocks = products.blocks + c.blocked,
        reading = c.reading,
        reading_check = CASE WHEN products.reading = c.reading THEN products.reading_check
                             ELSE products.checks + 1 END,
        repeats = products.repeats + CASE WHEN products.reading = c.reading THEN 1 ELSE 0 END
    FROM {checks}
    WHERE products.id = c.id AND (c.owner IS NULL OR products.lease_owner = c.owner)
    RETURNING products.id, products.checks, products.reading_check, products.repeats
"""
UPDATE_CHECKED_PRODUCTS = Query(
    sqlite=_UPDATE_CHECKED_PRODUCTS.format(
        checks=f"(SELECT {_SQLITE_CHECKS} FROM json_each(:checks)) AS c"
    ),
    postgres=_UPDATE_CHECKED_PRODUCTS.format(checks=_POSTGRES_CHECKS),
)
_OBSERVATION_COLUMNS = (
    "product_id",
    "at",
    "state",
    "price",
    "reason",
    "status",
    "bytes",
    "ms",
    "blocked",
    "repeats",
)
INSERT_OBSERVATIONS = Query(
    sqlite="INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms,"
    " blocked, repeats) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_OBSERVATION_COLUMNS)))
    + " FROM json_each(:observations) ORDER BY key",
    postgres="INSERT INTO observations (product_id, at, state, price, reason, status, bytes, ms,"
    " blocked, repeats) SELECT * FROM unnest(:observations_product_id::bigint[],"
    " :observations_at::double precision[], :observations_state::text[],"
    " :observations_price::integer[], :observations_reason::text[],"
    " :observations_status::integer[], :observations_bytes::integer[],"
    " :observations_ms::double precision[], :observations_blocked::boolean[],"
    " :observations_repeats::integer[])",
)
# Keep the newest `OBSERVATIONS_KEPT` rows of these products (as `roles.checks`).
PRUNE_OBSERVATIONS = Query(
    sqlite="DELETE FROM observations WHERE id IN (SELECT o.id FROM json_each(:ids) p"
    " JOIN observations o ON o.product_id = p.value WHERE o.id < (SELECT id FROM"
    " observations WHERE product_id = p.value ORDER BY id DESC LIMIT 1 OFFSET :keep))",
    postgres="DELETE FROM observations o USING unnest(:ids::bigint[]) AS p (id)"
    " WHERE o.product_id = p.id AND o.id < (SELECT id FROM observations"
    " WHERE product_id = p.id ORDER BY id DESC LIMIT 1 OFFSET :keep)",
)
STORE_QUIET_DECISIONS = Query(
    sqlite="WITH d AS (SELECT json_extract(value, '$[0]') AS id,"
    " json_extract(value, '$[1]') AS state, json_extract(value, '$[2]') AS at"
    " FROM json_each(:decisions))"
    " UPDATE watches SET detector_state = d.state, updated_at = d.at"
    " FROM d WHERE watches.id = d.id RETURNING watches.id",
    postgres="UPDATE watches w SET detector_state = d.state, updated_at = d.at"
    " FROM unnest(:decisions_id::bigint[], :decisions_state::text[],"
    " :decisions_at::double precision[]) AS d (id, state, at)"
    " WHERE w.id = d.id RETURNING w.id",
)


class QuietChecks(Role):
    """`group_commit.RecordQuiet` on every backend."""

    async def _record_quiet_checks(self, writes: Sequence[CheckWrite]) -> list[Written]:
        """Quiet checks (no events, distinct products), inside the caller's transaction: one
        statement for a group of repeats, up to four for any group."""
        counts = await self._update_checked_products(writes)
        kept = [w for w in writes if w.product_id in counts]
        for write in writes:
            if write.product_id not in counts and write.outcome.lease_owner is None:
                raise StorageError(f"record_check: no product with id {write.product_id}")
        await self._insert_observations([w for w in kept if counts[w.product_id].recorded], counts)
        await self._store_quiet_decisions(kept)
        quiet = Written(RecordedCheck(events=(), deliveries=0))
        return [quiet if w.product_id in counts else LEASE_LOST for w in writes]

    async def _update_checked_products(
        self, writes: Sequence[CheckWrite]
    ) -> dict[int, CheckCounts]:
        """The counts of the products updated, by id."""
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
                    obs.reading(),
                )
            )
        rows = await self._db.rows(
            UPDATE_CHECKED_PRODUCTS, **self._db.table("checks", _CHECK_COLUMNS, values)
        )
        return {int(row[0]): CheckCounts(int(row[1]), int(row[2]), int(row[3])) for row in rows}

    async def _insert_observations(
        self, writes: Sequence[CheckWrite], counts: dict[int, CheckCounts]
    ) -> None:
        """The observations of the group's checks that record one, in one statement (and one
        more to prune)."""
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
                    obs.blocked,
                    counts[write.product_id].repeats,
                )
            )
        await self._db.execute(
            INSERT_OBSERVATIONS, **self._db.table("observations", _OBSERVATION_COLUMNS, values)
        )
        pruned = [w.product_id for w in writes if counts[w.product_id].prunes]
        if pruned:
            await self._db.execute(
                PRUNE_OBSERVATIONS, ids=self._db.ids(pruned), keep=single.OBSERVATIONS_KEPT - 1
            )

    async def _store_quiet_decisions(self, writes: Sequence[CheckWrite]) -> None:
        """The group's detector states (no quiet check finishes its watch)."""
        values = [(d.watch_id, dump_json(d.state), w.stamp) for w in writes for d in w.decisions]
        if not values:
            return
        rows = await self._db.rows(
            STORE_QUIET_DECISIONS, **self._db.table("decisions", ("id", "state", "at"), values)
        )
        if len(rows) != len({v[0] for v in values}):
            missing = ", ".join(str(v[0]) for v in values)
            raise StorageError(f"record_check: a watch among ids {missing} does not exist")
