"""Checks that span several keys or watches, run after each part validated on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from watcher.core.keys import watch_key

if TYPE_CHECKING:
    from watcher.config.schema import WatchEntry
    from watcher.config.yaml import YamlPath

# Channels a watch may name under `notify`, and the `notifiers` key each one needs.
_CHANNELS = ("telegram", "email", "x", "webhook", "line", "discord")


class Reporter(Protocol):
    def error(self, path: YamlPath, message: str, line: int | None = None) -> None: ...


def check(
    data: dict[str, Any],
    watches: list[tuple[int, WatchEntry]],
    report: Reporter,
) -> None:
    """Report what no single key shows wrong: watch targets, names, channels, rules.

    Watch checks read the raw mappings, so a watch with a bad value still gets them.
    """
    configured = _configured_channels(data.get("notifiers"))
    raw = _raw_watches(data.get("watches"))
    for index, watch in raw:
        path: YamlPath = ("watches", index)
        _check_target(watch, path, report)
        _check_notify(watch.get("notify"), (*path, "notify"), configured, report)
    for index, entry in watches:
        _check_rules(entry, ("watches", index), report)
    _check_unique_names(raw, report)
    _check_line_bot(data, report)


def _raw_watches(value: Any) -> list[tuple[int, dict[str, Any]]]:
    items = value if isinstance(value, list) else []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _check_target(watch: dict[str, Any], path: YamlPath, report: Reporter) -> None:
    has_url, has_jan = watch.get("url") is not None, watch.get("jan") is not None
    if has_url == has_jan:
        report.error(path, "needs exactly one of `url` (a product page) or `jan` (a JAN code)")
    if has_url and has_jan:
        return
    if has_url and watch.get("stores"):
        message = "lists the stores a JAN is searched in; a URL watch forces one with `store`"
        report.error((*path, "stores"), message)
    if has_jan and watch.get("store") is not None:
        report.error((*path, "store"), "forces a URL watch's adapter; a JAN watch lists `stores`")


def _configured_channels(notifiers: Any) -> set[str]:
    return set(notifiers) if isinstance(notifiers, dict) else set()


def _check_notify(notify: Any, path: YamlPath, configured: set[str], report: Reporter) -> None:
    if not isinstance(notify, dict):
        return
    wanted = [name for name in _CHANNELS if notify.get(name)]
    if not wanted and notify.get("console") is not True:
        report.error(path, "names no one to notify (leave it out for the console)")
    for name in wanted:
        if name not in configured:
            message = f"the {name} channel is not configured under `notifiers`"
            report.error((*path, name), message)


def _check_line_bot(data: dict[str, Any], report: Reporter) -> None:
    notifiers, settings = data.get("notifiers"), data.get("settings")
    line = notifiers.get("line") if isinstance(notifiers, dict) else None
    if not isinstance(line, dict) or line.get("bot") is not True:
        return
    if not (isinstance(settings, dict) and settings.get("server")):
        message = "needs settings.server: LINE posts its webhook to /line/webhook there"
        report.error(("notifiers", "line", "bot"), message)


def _check_rules(entry: WatchEntry, path: YamlPath, report: Reporter) -> None:
    if entry.rules is not None and not entry.rules.to_model().phrases:
        message = "gives no phrases (list some under in_stock, out_of_stock, preorder, ...)"
        report.error((*path, "rules"), message)


def _check_unique_names(watches: list[tuple[int, dict[str, Any]]], report: Reporter) -> None:
    seen: dict[str, tuple[int, str]] = {}
    for index, watch in watches:
        name = watch.get("name")
        if not isinstance(name, str) or not name.strip():
            continue  # the model reports a missing or empty name
        key, path = watch_key(name), ("watches", index, "name")
        if not key:
            report.error(path, "must contain a letter or digit (it makes the watch's key)")
        elif key in seen:
            first, other = seen[key]
            same = "the same name" if other == name else f'the same key "{key}"'
            report.error(path, f'{same} as watches[{first}] ("{other}"); names must be unique')
        else:
            seen[key] = (index, name)
