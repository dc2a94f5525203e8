"""A short stable stand-in for a recipient in logs: chat ids and addresses are personal.

Secrets are masked elsewhere (`watcher.logredact`), in every log record whichever library made it.
"""

from __future__ import annotations

import hashlib


def recipient_hash(recipient: str) -> str:
    """A stable, short stand-in for a recipient in logs."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:12]
