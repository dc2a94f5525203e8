"""Subcommands of `restock`. Each module has `add_parser(subparsers)`; one line registers it."""

from __future__ import annotations

from types import ModuleType

from watcher.commands import schema, validate

COMMANDS: list[ModuleType] = [
    validate,
    schema,
]
