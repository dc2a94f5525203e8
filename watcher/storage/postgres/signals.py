"""Names the PostgreSQL backend signals and locks under; each is suffixed with the schema's name,
so several deployments can share one database in separate schemas."""

from __future__ import annotations

# NOTIFY'd when a transaction commits deliveries no dispatcher holds yet.
OUTBOX_CHANNEL = "restock_outbox_"
