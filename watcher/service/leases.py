"""Workers and their leases: who this process is, and recovering the leases of dead local workers.

A worker id is `host:pid:random`; a restarted process recognises its dead predecessors on the
same machine by it and gives their leases back at once instead of waiting for them to expire.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime

from watcher.storage.interface import LeaseStore

log = logging.getLogger("restock.app")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def release_dead_local_leases(repository: LeaseStore, me: str, now: datetime) -> list[str]:
    """Give back the leases of earlier processes on this machine that died (SIGKILL, OOM).

    Their products and deliveries then resume at once instead of after the leases expire.
    Workers on other machines are left alone: their leases expire by themselves.
    """
    released = []
    for owner in await repository.lease_owners(now):
        if owner != me and is_dead_local_worker(owner):
            await repository.release_leases(owner)
            released.append(owner)
            log.warning("released the leases of worker %s, which is no longer running", owner)
    return released


def is_dead_local_worker(owner: str, host: str | None = None, pid: int | None = None) -> bool:
    """True for a `worker_id` of this machine whose process is gone (or whose pid is now ours)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    if parts[0] != (host or socket.gethostname()):
        return False
    their_pid = int(parts[1])
    if their_pid == (pid or os.getpid()):
        return True  # an earlier process that had our pid (a container restarted)
    try:
        os.kill(their_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False
