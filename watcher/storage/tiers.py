"""A product's priority tier as SQL: `watcher.core.schedule.priority` in a form both databases
compute.

Products keep their tier in a generated column (`products.tier`), so a claim reads the due
products of each tier in due order from an index instead of sorting the whole backlog. The
column's expression is written here, from the same thresholds `priority` draws (a tier per
doubling of subscribers, capped at MAX_TIER); the tests compare the stored column with
`priority` on both backends. A released migration keeps the expression it was written with:
changing MAX_TIER takes a new migration that redefines the column.
"""

from __future__ import annotations

from watcher.core.schedule import MAX_TIER

# The fewest subscribers of tiers 1..MAX_TIER: tier t starts at 2**(t - 1).
TIERS: tuple[int, ...] = tuple(1 << (tier - 1) for tier in range(1, MAX_TIER + 1))


def tier_of(column: str) -> str:
    """SQL for the tier of the subscriber count in `column` (small counts decide first)."""
    below = " ".join(f"WHEN {column} < {low} THEN {tier}" for tier, low in enumerate(TIERS))
    return f"CASE {below} ELSE {MAX_TIER} END"
