"""What a watchlist reload changes: the channels to rebuild, the live settings to apply, and the
settings that wait for a restart (kept at their running values, said so in the log)."""

from __future__ import annotations

from pathlib import Path

from watcher.config.load import Config
from watcher.config.schema import Server, Settings
from watcher.service.wiring import search_setup


def changed_channels(old: Config, new: Config) -> set[str]:
    """Channels a reload adds, removes or configures differently (secrets compare by value)."""
    names = set(old.channels) | set(new.channels)
    shared = ("language", "x", "server")
    if any(getattr(old.settings, k) != getattr(new.settings, k) for k in shared):
        return names
    return {n for n in names if getattr(old.notifiers, n) != getattr(new.notifiers, n)}


# Settings a reload applies to the running engine, politeness and dispatcher.
LIVE_SETTINGS = (
    "timezone",
    "default_interval",
    "user_agent",
    "debounce",
    "politeness",
    "adaptive",
    "hot_windows",
    "global_concurrency",
    "dispatch",
)
# Settings of the channels: a reload rebuilds the channels they shape (`changed_channels`).
CHANNEL_SETTINGS = ("language", "x")
# Settings that only a restart applies (`server.public_url` alone is a channel setting).
RESTART_SETTINGS = ("database", "parse_workers", "server")


def changed_settings(old: Config, new: Config) -> set[str]:
    """The live settings a reload changes; `sources` when the JAN search credentials change."""
    changed = {k for k in LIVE_SETTINGS if getattr(old.settings, k) != getattr(new.settings, k)}
    if search_setup(old) != search_setup(new):
        changed.add("sources")
    return changed


def held_for_restart(running: Settings, new: Settings) -> tuple[list[str], Settings]:
    """The restart-only settings `new` changes, and `new` with their running values kept."""
    kept: dict[str, object] = {}
    for name in ("database", "parse_workers"):
        if getattr(running, name) != getattr(new, name):
            kept[name] = getattr(running, name)
    server = running_server(running.server, new.server)
    if server != new.server:
        kept["server"] = server
    return sorted(kept), new.model_copy(update=kept)


def running_server(running: Server | None, new: Server | None) -> Server | None:
    """The `server` section that holds until a restart: the endpoint starts, stops and moves
    only then; a new `public_url` (a channel setting: e-mail links) applies at once."""
    if running is None or new is None:
        return running
    return new.model_copy(update={"listen": running.listen})


def mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
