"""YAML text -> plain data plus the line of every key and item, so errors can say where.

The document is composed into nodes (the safe loader's composer: no Python objects are built
from tags) and turned into dicts, lists and scalars here, remembering each node's line. `${VAR}`
references in string values are filled from the environment on the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from watcher.config.env import expand, has_reference

PathKey = str | int
YamlPath = tuple[PathKey, ...]

_TAG = "tag:yaml.org,2002:"
_TYPED_SCALARS = {_TAG + name for name in ("null", "bool", "int", "float")}
_TEXT_SCALARS = {_TAG + "str", _TAG + "timestamp"}  # a date stays the text the user wrote
_MERGE = _TAG + "merge"


@dataclass(frozen=True, slots=True)
class Located:
    """A problem found while reading the YAML, at a path and a 1-based line."""

    path: YamlPath
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class EnvGap:
    """A string value whose `${VAR}` references name variables that are not set."""

    path: YamlPath
    line: int
    names: tuple[str, ...]


@dataclass(slots=True)
class Marks:
    """The line of each path's key (mappings) or item (sequences)."""

    lines: dict[YamlPath, int] = field(default_factory=dict)

    def line_for(self, path: YamlPath) -> int:
        """The line of `path`, or of its nearest ancestor present in the file."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


@dataclass(slots=True)
class LoadedYaml:
    data: Any = None
    marks: Marks = field(default_factory=Marks)
    problems: list[Located] = field(default_factory=list)
    gaps: list[EnvGap] = field(default_factory=list)
    references: dict[YamlPath, str] = field(default_factory=dict)  # text as written, with ${...}
    syntax_error: bool = False


def load_yaml(text: str, env: Mapping[str, str]) -> LoadedYaml:
    """Read one YAML document. Syntax errors come back as a problem, never as an exception."""
    yaml = YAML(typ="safe", pure=True)
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        return LoadedYaml(problems=[_syntax_problem(exc)], syntax_error=True)
    builder = _Builder(yaml, env)
    try:
        data = builder.build(root, ()) if root is not None else None
    except _TooLarge:
        message = (
            f"the file expands to more than {MAX_VALUES:,} values "
            "(aliases of aliases?); a watchlist needs far fewer"
        )
        return LoadedYaml(problems=[Located((), 1, message)], syntax_error=True)
    return LoadedYaml(data, builder.marks, builder.problems, builder.gaps, builder.references)


# Aliases may repeat a node many times over (a "billion laughs" file): building stops here.
MAX_VALUES = 200_000


class _TooLarge(Exception):
    pass


def _syntax_problem(exc: MarkedYAMLError) -> Located:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    reason = " ".join(part for part in (exc.problem, exc.context) if part)
    return Located((), line, f"YAML syntax error: {reason}")


class _Builder:
    """Turns composed nodes into plain data, recording lines, problems and missing variables."""

    def __init__(self, yaml: YAML, env: Mapping[str, str]) -> None:
        self._constructor = yaml.constructor
        self._env = env
        self.marks = Marks({(): 1})
        self.problems: list[Located] = []
        self.gaps: list[EnvGap] = []
        self.references: dict[YamlPath, str] = {}
        self._built = 0

    def build(self, node: Node, path: YamlPath) -> Any:
        self._built += 1
        if self._built > MAX_VALUES:
            raise _TooLarge
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self._item(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _item(self, node: Node, path: YamlPath) -> Any:
        self.marks.lines[path] = _line(node)
        return self.build(node, path)

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        # Merged (`<<: *anchor`) entries are built first so that the mapping's own keys, which
        # win over them, also leave their lines in the marks.
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge(merged, value_node, path)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = None if key_node.tag == _MERGE else self._key(key_node, path)
            if key is not None:
                self._add_entry(result, key, key_node, value_node, path)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _add_entry(
        self, result: dict[str, Any], key: str, key_node: Node, value: Node, path: YamlPath
    ) -> None:
        if key in result:
            first = self.marks.lines[(*path, key)]
            message = f"duplicate key {key!r} (first given on line {first})"
            self.problems.append(Located((*path, key), _line(key_node), message))
            return
        self.marks.lines[(*path, key)] = _line(key_node)
        result[key] = self.build(value, (*path, key))

    def _key(self, node: Node, path: YamlPath) -> str | None:
        if isinstance(node, ScalarNode):
            return str(node.value)
        self.problems.append(Located(path, _line(node), "a key must be a plain name"))
        return None

    def _merge(self, result: dict[str, Any], source: Node, path: YamlPath) -> None:
        sources = source.value if isinstance(source, SequenceNode) else [source]
        for node in sources:
            if not isinstance(node, MappingNode):
                self.problems.append(Located(path, _line(node), "`<<` must merge a mapping"))
                continue
            for key, value in self._mapping(node, path).items():
                result.setdefault(key, value)

    def _scalar(self, node: Node, path: YamlPath) -> Any:
        if node.tag in _TYPED_SCALARS:
            return self._constructor.construct_object(node, deep=True)
        if node.tag not in _TEXT_SCALARS:
            tag = str(node.tag).replace(_TAG, "!!")
            self.problems.append(Located(path, _line(node), f"unsupported YAML tag {tag}"))
            return None
        text = str(node.value)
        return self._expand(text, path, node) if has_reference(text) else text

    def _expand(self, text: str, path: YamlPath, node: Node) -> str:
        expansion = expand(text, self._env)
        self.references[path] = text
        line = self.marks.line_for(path) if path else _line(node)
        if expansion.malformed:
            message = "write ${NAME} or ${NAME:-default} (and $${ for a literal ${)"
            self.problems.append(Located(path, line, message))
        if expansion.missing:
            self.gaps.append(EnvGap(path, line, expansion.missing))
        return expansion.text


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1
