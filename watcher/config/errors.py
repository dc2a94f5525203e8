"""Problems of a watchlist: paths like ``watches[1].max_price``, lines, messages for people."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from watcher.config.types import did_you_mean, shown
from watcher.config.yaml import LoadedYaml, YamlPath
from watcher.errors import ConfigProblem

PathKey = str | int

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Finding:
    path: YamlPath
    message: str


def format_path(path: YamlPath) -> str:
    """("watches", 1, "max_price") -> "watches[1].max_price"; odd keys are quoted in brackets."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _NAME.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


def problems_from_validation(
    exc: ValidationError, model: type[BaseModel], prefix: YamlPath
) -> list[Finding]:
    """One finding per error pydantic collected, its path rooted at `prefix`."""
    findings = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not _is_marker(part))
        findings.append(Finding(prefix + loc, _message(error, model, loc)))
    return findings


def _is_marker(part: PathKey) -> bool:
    # pydantic adds "[key]" for dict key errors and "function-..." steps; they are not in the file
    return isinstance(part, str) and (part == "[key]" or part.startswith("function-"))


def _message(error: ErrorDetails, model: type[BaseModel], loc: YamlPath) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key" + did_you_mean(str(loc[-1]), _keys_at(model, loc[:-1]))
    if kind in ("literal_error", "enum"):
        return _choices_message(error)
    describe = _DESCRIPTIONS.get(kind)
    if describe is not None:
        return describe(error)
    return error["msg"].removeprefix("Value error, ")


def _got(error: ErrorDetails) -> str:
    text = shown(error.get("input"))
    return text if len(text) <= 60 else text[:57] + "..."


def _expecting(expectation: str) -> Callable[[ErrorDetails], str]:
    return lambda error: f"{expectation}, got {_got(error)}"


_MAPPING = "must be a mapping (key: value lines)"
_DESCRIPTIONS: dict[str, Callable[[ErrorDetails], str]] = {
    "missing": lambda _error: "is required",
    "too_short": lambda _error: "must not be empty",
    "bool_type": _expecting("must be true or false"),
    "bool_parsing": _expecting("must be true or false"),
    "string_type": _expecting("must be text"),
    "list_type": _expecting("must be a list"),
    "path_type": _expecting("must be a file path"),
    "dict_type": _expecting(_MAPPING),
    "model_type": _expecting(_MAPPING),
    "model_attributes_type": _expecting(_MAPPING),
}


def _choices_message(error: ErrorDetails) -> str:
    expected = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
    value = error.get("input")
    hint = did_you_mean(value, expected) if isinstance(value, str) else ""
    return f"must be one of {', '.join(expected)}, got {_got(error)}{hint}"


def _keys_at(model: type[BaseModel], loc: YamlPath) -> list[str]:
    """The keys allowed in the mapping at `loc` under `model` (for "did you mean")."""
    current: Any = model
    for part in loc:
        current = _child(_unwrap(current), part)
        if current is None:
            return []
    target = _unwrap(current)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [field.alias or name for name, field in target.model_fields.items()]
    return []


def _child(annotation: Any, part: PathKey) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that holds keys or items."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = members[0] if len(members) == 1 else annotation
            if len(members) != 1:
                return annotation
        else:
            return annotation


MIN_ECHOED = 4  # shorter filled-in values are not told apart from ordinary words


class Report:
    """Problems and warnings of one file, with lines looked up from the YAML marks."""

    def __init__(self, filename: str, loaded: LoadedYaml) -> None:
        self.filename = filename
        self.loaded = loaded
        self.errors: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []
        self._explained: set[YamlPath] = set()
        self.unset: dict[YamlPath, tuple[str, ...]] = {}
        for problem in loaded.problems:
            self.error(problem.path, problem.message, problem.line)
            self._explained.add(problem.path)
        for gap in loaded.gaps:
            self.unset[gap.path] = gap.names
            if gap.path[:1] != ("sources",):  # a source without credentials is only skipped
                self.error(gap.path, _missing_message(gap.names), gap.line)
                self._explained.add(gap.path)

    def error(self, path: YamlPath, message: str, line: int | None = None) -> None:
        if path in self._explained:
            return  # a problem found while reading the YAML already explains this value
        self.errors.append(self._problem(path, message, line))

    def warn(self, path: YamlPath, message: str) -> None:
        self.warnings.append(self._problem(path, message, None))

    def written(self, path: YamlPath) -> str | None:
        """The text as written when it held ${...} references."""
        return self.loaded.references.get(path)

    def sorted_errors(self) -> list[ConfigProblem]:
        return sorted(self.errors, key=lambda p: p.line or 0)

    def _problem(self, path: YamlPath, message: str, line: int | None) -> ConfigProblem:
        where = line if line is not None else self.loaded.marks.line_for(path)
        return ConfigProblem(self.filename, where, format_path(path), self._as_written(message))

    def _as_written(self, message: str) -> str:
        """`message` with every value filled from the environment shown as it is written
        (`${TOKEN}`): a secret variable put in an ordinary field is not echoed back."""
        loaded = self.loaded
        if not loaded.expanded:
            return message
        for ref_path, value in sorted(loaded.expanded.items(), key=lambda kv: -len(kv[1])):
            if len(value) < MIN_ECHOED:
                continue
            for form in (value, json.dumps(value, ensure_ascii=False)[1:-1]):
                message = message.replace(form, loaded.references[ref_path])
        return message


def _missing_message(names: tuple[str, ...]) -> str:
    listed = ", ".join(names)
    noun = "variable" if len(names) == 1 else "variables"
    return f"environment {noun} {listed} not set (or write ${{{names[0]}:-default}})"
