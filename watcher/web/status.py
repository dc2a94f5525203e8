"""The status report: what `restock status` prints (as text or JSON), built from the status reads
of any storage backend, so the web endpoint can serve the same report."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from watcher.core.drift import STORE_ROW_PREFIX
from watcher.storage.coordination import Coordinated
from watcher.storage.interface import HostState, HostStore, StatusReader


class StatusReport(StatusReader, HostStore, Protocol):
    """What the report reads."""


async def status_report(repo: StatusReport) -> dict[str, Any]:
    """Watches, hosts backing off, stores whose pages stopped parsing, the outbox, dead letters."""
    rows = await repo.host_states()
    return {
        "watches": [plain(w) for w in await repo.watch_statuses()],
        "hosts": [plain(h) for h in rows if not h.host.startswith(STORE_ROW_PREFIX)],
        "stores": [_store_health(h) for h in rows if h.host.startswith(STORE_ROW_PREFIX)],
        "outbox": await repo.outbox_depth(),
        "dead_letters": [plain(d) for d in await repo.dead_letters(20)],
        "workers": await _workers(repo),
    }


async def _workers(repo: StatusReport) -> list[dict[str, Any]] | None:
    """The live workers sharing a server database (None on SQLite, which has one process)."""
    if not isinstance(repo, Coordinated):
        return None
    return [plain(w) for w in await repo.live_workers(datetime.now(UTC))]


def _store_health(row: HostState) -> dict[str, Any]:
    """A store's layout-drift row: how many pages in a row gave no signal, and the warning."""
    return {
        "store": row.host.removeprefix(STORE_ROW_PREFIX),
        "layout_misses": row.consecutive_blocks,
        "warning": row.last_reason,
    }


def status_text(report: dict[str, Any]) -> str:
    lines = [f"{'watch':<28} {'state':<13} {'price':>9}  {'last check':<20} {'next check':<20}"]
    for w in report["watches"]:
        price = f"{w['last_price']:,}" if w["last_price"] is not None else "-"
        lines.append(
            f"{w['key'][:28]:<28} {w['last_state'] or '-':<13} {price:>9}  "
            f"{short_time(w['last_checked_at']):<20} {short_time(w['next_check_at']):<20}"
        )
        if w["last_state"] == "lottery":
            lines.append(f"  {_lottery_line(w['last_events'])}")
    outbox = ", ".join(f"{k} {v}" for k, v in report["outbox"].items()) or "empty"
    lines.append(f"outbox: {outbox}")
    for host in report["hosts"]:
        if host["consecutive_blocks"] or host["backoff_until"]:
            lines.append(
                f"host {host['host']}: {host['consecutive_blocks']} blocks, backing off until "
                f"{short_time(host['backoff_until'])} ({host['last_reason'] or '-'})"
            )
    for worker in report.get("workers") or ():
        duties = ", ".join(worker["duties"]) or "no single-owner duty"
        lines.append(
            f"worker {worker['name']} (pid {worker['pid']} on {worker['host']}): {duties};"
            f" seen {short_time(worker['seen_at'])}"
        )
    for store in report["stores"]:
        if store["warning"]:
            lines.append(f"store {store['store']}: {store['warning']}")
    if "line_quota" in report:
        lines.append(f"line quota: {_quota_text(report['line_quota'])}")
    for dead in report["dead_letters"]:
        lines.append(
            f"dead letter #{dead['id']} {dead['channel']}: {dead['status']} after "
            f"{dead['attempts']} tries: {dead['last_error'] or '-'}"
        )
    return "\n".join(lines)


def _lottery_line(events: list[dict[str, Any]]) -> str:
    """A lottery sale is on: its deadline from the latest `lottery_open` (events come newest
    first), when the page stated one."""
    opened = next((e for e in events if e["kind"] == "lottery_open"), None)
    deadline = opened.get("lottery_deadline") if opened else None
    until = f", apply by {with_offset(deadline)}" if deadline else ""
    return f"lottery open (抽選受付中){until}"


def _quota_text(quota: dict[str, Any]) -> str:
    if "error" in quota:
        return str(quota["error"])
    if quota["limit"] is None:
        return f"{quota['used']:,} messages this month (no monthly limit)"
    return f"{quota['used']:,} of {quota['limit']:,} messages this month ({quota['left']:,} left)"


async def history_report(
    repo: StatusReader, watch_key: str, limit: int = 20
) -> dict[str, Any] | None:
    """A watch's recent observations and events as plain values; None for an unknown key."""
    found = await repo.history(watch_key, limit=limit)
    return None if found is None else dict(plain(found))


def plain(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON-friendly values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def short_time(moment: Any) -> str:
    return str(moment)[:19].replace("T", " ") if moment else "-"


def with_offset(moment: str) -> str:
    """An ISO time to the minute with its offset: a deadline's zone matters."""
    return f"{moment[:16].replace('T', ' ')} {moment[19:]}".rstrip()
