"""The watchlist: YAML -> typed settings, notifiers, sources and watches, validated once.

`load_config(path)` reads a file and returns a `Config`, or raises `ConfigError` listing every
problem as ``file:line: path: reason``. The format itself is defined in `watcher.config.schema`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ValidationError,
)

from watcher.config import checks as config_checks
from watcher.config.errors import Finding, Report, problems_from_validation
from watcher.config.schema import (
    Notifiers,
    Settings,
    Sources,
    WatchEntry,
    Watchlist,
)
from watcher.config.types import (
    did_you_mean,
)
from watcher.config.yaml import LoadedYaml, YamlPath, load_yaml
from watcher.core.keys import watch_key
from watcher.core.model import (
    Notify,
    Watch,
    WatchConditions,
)
from watcher.errors import ConfigError, ConfigProblem
from watcher.storage.url import resolve_database


@dataclass(frozen=True, slots=True)
class Config:
    """A validated watchlist, as the engine uses it."""

    settings: Settings
    notifiers: Notifiers
    sources: Sources
    watches: list[Watch]
    source_path: Path | None
    fingerprint: str  # sha256 of the file text: a reload with the same text changes nothing
    warnings: tuple[ConfigProblem, ...] = field(default=())

    @property
    def channels(self) -> tuple[str, ...]:
        return self.notifiers.channels


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a watchlist file. Raises ConfigError, or OSError when it cannot be read."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        reason = f"is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        raise ConfigError([ConfigProblem(str(file), None, "", reason)]) from None
    return parse_config(text, str(file), env=env, base_dir=file.absolute().parent, source_path=file)


def parse_config(
    text: str,
    filename: str = "<watchlist>",
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    source_path: Path | None = None,
) -> Config:
    """Validate watchlist text; `filename` is used in messages. Raises ConfigError."""
    try:
        with _no_cyclic_gc():
            return _parse_config(text, filename, env, base_dir, source_path)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError([ConfigProblem(filename, 1, "", "nested far too deep")]) from None
    except Exception as exc:  # a shape no rule foresaw still gets a named problem
        reason = f"could not be read ({type(exc).__name__}); check the file's structure"
        raise ConfigError([ConfigProblem(filename, 1, "", reason)]) from exc


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Reading builds millions of small objects and no cycles: the cyclic collector would walk
    them all again and again (half the time of a 100,000-watch file)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_config(
    text: str,
    filename: str,
    env: Mapping[str, str] | None,
    base_dir: Path | None,
    source_path: Path | None,
) -> Config:
    environ = os.environ if env is None else env
    loaded = load_yaml(text, environ)
    report = Report(filename, loaded)
    parts = _validate_sections(loaded, report) if not loaded.syntax_error else None
    if parts is None or report.errors:
        raise ConfigError(report.sorted_errors())
    settings, notifiers, sources, watches = parts
    directory = base_dir if base_dir is not None else Path(filename).absolute().parent
    return Config(
        settings=_resolve_database(settings, directory, environ.get(DATABASE_ENV)),
        notifiers=notifiers,
        sources=_usable_sources(sources, report),
        watches=[watch_from_entry(w, settings.default_interval) for w in watches],
        source_path=source_path,
        fingerprint=fingerprint(text),
        warnings=tuple(report.warnings),
    )


DATABASE_ENV = "RESTOCK_DATABASE"  # overrides `settings.database` (e.g. a container's volume)


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def watch_from_entry(entry: WatchEntry, default_interval: timedelta) -> Watch:
    """The engine's frozen `Watch` for one validated YAML watch."""
    conditions = WatchConditions(
        max_price=entry.max_price,
        condition=entry.condition,
        seller=entry.seller,
        exclude_sellers=tuple(entry.exclude_sellers),
        buyable=frozenset(entry.buyable),
        events=frozenset(entry.events),
        stores=frozenset(entry.stores),
        variant=entry.variant,
    )
    notify = entry.notify.to_model() if entry.notify else Notify(console=True)
    return Watch(
        key=watch_key(entry.name),
        name=entry.name,
        url=entry.url,
        jan=entry.jan,
        store=entry.store,
        stores=tuple(entry.stores),
        interval=entry.interval or default_interval,
        conditions=conditions,
        notify=notify,
        once=entry.once,
        notify_on_first=entry.notify_on_first,
        rules=entry.rules.to_model() if entry.rules else None,
    )


# -- assembling --------------------------------------------------------------------------------


_Parts = tuple[Settings, Notifiers, Sources, list[WatchEntry]]


def _validate_sections(loaded: LoadedYaml, report: Report) -> _Parts | None:
    data = {} if loaded.data is None else loaded.data
    if not isinstance(data, dict):
        report.error((), "the top level must be a mapping of settings, notifiers, sources, watches")
        return None
    for key in data:
        if key not in Watchlist.model_fields:
            report.error((key,), "unknown key" + did_you_mean(key, Watchlist.model_fields))
    settings = _section(Settings, data, "settings", report)
    notifiers = _section(Notifiers, data, "notifiers", report)
    sources = _section(Sources, data, "sources", report)
    watches = _watch_entries(data.get("watches"), report)
    config_checks.check(data, watches, report)
    if settings is None or notifiers is None or sources is None:
        return None
    return settings, notifiers, sources, [w for _, w in watches]


_M = TypeVar("_M", bound=BaseModel)


def _section(model: type[_M], data: dict[str, Any], key: str, report: Report) -> _M | None:
    value = data.get(key)
    return _validated(model, {} if value is None else value, (key,), report)


def _watch_entries(value: Any, report: Report) -> list[tuple[int, WatchEntry]]:
    if value is None:
        return []
    if not isinstance(value, list):
        report.error(("watches",), "must be a list of watches (each starting with `- name: ...`)")
        return []
    entries = [
        (i, _validated(WatchEntry, item, ("watches", i), report)) for i, item in enumerate(value)
    ]
    return [(i, entry) for i, entry in entries if entry is not None]


def _validated(model: type[_M], value: Any, prefix: YamlPath, report: Report) -> _M | None:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        for finding in problems_from_validation(exc, model, prefix):
            report.error(finding.path, _with_origin(finding, report))
        return None


def _with_origin(finding: Finding, report: Report) -> str:
    written = report.written(finding.path)
    if written is None or not finding.message.startswith("is empty"):
        return finding.message
    return f"{finding.message} (written as {written})"


def _resolve_database(settings: Settings, directory: Path, override: str | None) -> Settings:
    # A container keeps its database on a volume whatever the mounted watchlist says.
    database = resolve_database(override or settings.database, directory)
    return settings.model_copy(update={"database": database})


def _usable_sources(sources: Sources, report: Report) -> Sources:
    """Drop sources whose credentials are empty, saying so: JAN search then skips them."""
    kept: dict[str, Any] = {}
    for name in Sources.model_fields:
        section = getattr(sources, name)
        if section is None:
            continue
        if sources.credentials(name) is None:
            report.warn(("sources", name), _skipped_source_message(name, section, report))
        else:
            kept[name] = section
    return Sources(**kept)


def _skipped_source_message(name: str, section: BaseModel, report: Report) -> str:
    empty = [key for key in type(section).model_fields if not getattr(section, key)]
    unset = [n for key in empty for n in report.unset.get(("sources", name, key), ())]
    blank = [
        n
        for key in empty
        if not report.unset.get(("sources", name, key))
        for n in _ENV_NAME.findall(report.written(("sources", name, key)) or "")
    ]
    details = [f"{', '.join(unset)} not set"] if unset else []
    details += [f"{', '.join(blank)} not set or empty"] if blank else []
    detail = f" ({'; '.join(details)})" if details else ""
    return f"no {' or '.join(empty)}{detail}; JAN search skips {name}"


_ENV_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
