"""Names the PostgreSQL backend signals and locks under. Each depends on the schema, so several
deployments can share one database in separate schemas; the channel is a short hash of it
(a channel name has at most 63 bytes)."""

from __future__ import annotations

# SQL giving the channel NOTIFY'd when a transaction commits deliveries no dispatcher holds yet.
OUTBOX_CHANNEL_SQL = "'restock_outbox_' || left(md5(current_schema()), 16)"

# SQL giving the channel NOTIFY'd when a transaction bumps the reload counter.
RELOAD_CHANNEL_SQL = "'restock_reload_' || left(md5(current_schema()), 16)"

# SQL giving the advisory lock key of the named lock $1 (a duty, the migration, the watchlist).
LOCK_KEY_SQL = "hashtext(current_schema() || ':' || $1)"
