"""Subcommands of `restock`. Each module has `add_parser(subparsers)`; one line registers it."""

from __future__ import annotations

from types import ModuleType

from watcher.commands import check, demo, notify_test, reload, run, schema, status, validate

COMMANDS: list[ModuleType] = [
    check,
    run,
    reload,
    demo,
    status,  # also `history`
    notify_test,
    validate,
    schema,
]
