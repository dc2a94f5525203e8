"""YAML text -> plain data plus the line of every key and item, so errors can say where.

The document is composed into nodes (a composer builds no Python objects from tags) and turned
into dicts, lists and scalars here, remembering each node's line. `${VAR}` references in string
values are filled from the environment on the way. Scalars are read as YAML 1.2 (`on` and `10:00`
stay text). libyaml's composer does the reading where PyYAML ships it (a 100,000-watch file in
seconds), ruamel's pure-Python one elsewhere, with the same YAML 1.2 rules. Whatever the text,
the result is data or problems: never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode as RuamelMapping
from ruamel.yaml.nodes import ScalarNode as RuamelScalar
from ruamel.yaml.nodes import SequenceNode as RuamelSequence
from ruamel.yaml.resolver import VersionedResolver

from watcher.config.env import expand, has_reference

Node = Any  # a composed node: ruamel's or PyYAML's (libyaml's), read alike
_MAPPINGS = (RuamelMapping, pyyaml.MappingNode)
_SEQUENCES = (RuamelSequence, pyyaml.SequenceNode)
_SCALARS = (RuamelScalar, pyyaml.ScalarNode)

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
    expanded: dict[YamlPath, str] = field(default_factory=dict)  # the same values, filled in
    syntax_error: bool = False


def load_yaml(text: str, env: Mapping[str, str]) -> LoadedYaml:
    """Read one YAML document. Syntax errors come back as a problem, never as an exception."""
    yaml = YAML(typ="safe", pure=True)
    try:
        root = _compose(text, yaml)
    except (YAMLError, pyyaml.YAMLError) as exc:
        return _unreadable(_syntax_problem(exc, text))
    except RecursionError:
        return _unreadable(Located((), 1, f"nested more than {MAX_DEPTH} levels deep"))
    builder = _Builder(yaml, env)
    try:
        data = builder.build(root, ()) if root is not None else None
    except _TooLarge:
        message = (
            f"with its aliases the file expands to more than {MAX_VALUES:,} values "
            "(aliases of aliases?); a watchlist needs far fewer"
        )
        return _unreadable(Located((), 1, message))
    return LoadedYaml(
        data, builder.marks, builder.problems, builder.gaps, builder.references, builder.expanded
    )


def _unreadable(problem: Located) -> LoadedYaml:
    return LoadedYaml(problems=[problem], syntax_error=True)


# Aliases may repeat a node many times over (a "billion laughs" file): building stops once
# they have added this many values to those the file itself holds.
MAX_VALUES = 200_000
# No watchlist key is nested more than a few levels; deeper data is refused, not recursed into.
MAX_DEPTH = 64


class _TooLarge(Exception):
    pass


class _Yaml12Resolver(pyyaml.resolver.BaseResolver):  # type: ignore[misc]
    """libyaml's scalars resolved by ruamel's YAML 1.2 rules, as the pure-Python reader does."""


_Yaml12Resolver.yaml_implicit_resolvers = {
    first: list(rules)
    for first, rules in VersionedResolver(version=(1, 2)).versioned_resolver.items()
}


try:
    from yaml.cyaml import CParser
except ImportError:  # PyYAML built without libyaml
    CParser = None


def _compose(text: str, yaml: YAML) -> Any:
    if CParser is None:
        return yaml.compose(text)

    class Composer(CParser, _Yaml12Resolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Yaml12Resolver.__init__(self)

    return pyyaml.compose(text, Loader=Composer)


def _syntax_problem(exc: Exception, text: str) -> Located:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    position = getattr(exc, "position", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(position, int):
        line = text.count("\n", 0, position) + 1
    else:
        line = 1
    character = getattr(exc, "character", None)
    if isinstance(character, int | str) and position is not None:
        code = character if isinstance(character, int) else ord(character[:1] or "\0")
        return Located((), line, f"character U+{code:04X} is not allowed in a watchlist")
    problem, context = getattr(exc, "problem", None), getattr(exc, "context", None)
    # "expected a single document" + "but found another document" reads in that order.
    parts = (context, problem) if str(problem).startswith("but ") else (problem, context)
    reason = " ".join(str(part) for part in parts if part) or type(exc).__name__
    reason = reason.replace("did not find expected", "expected")  # libyaml's wording, shortened
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
        self.expanded: dict[YamlPath, str] = {}
        self._built = 0
        self._nodes: set[int] = set()  # the file's own nodes; building more means aliases

    def build(self, node: Node, path: YamlPath) -> Any:
        self._built += 1
        self._nodes.add(id(node))
        if self._built > MAX_VALUES + len(self._nodes):
            raise _TooLarge
        if len(path) > MAX_DEPTH:
            message = f"nested more than {MAX_DEPTH} levels deep"
            self.problems.append(Located(path[:6], _line(node), message))
            return None
        if isinstance(node, _MAPPINGS):
            return self._mapping(node, path)
        if isinstance(node, _SEQUENCES):
            return [self._item(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _item(self, node: Node, path: YamlPath) -> Any:
        self.marks.lines[path] = _line(node)
        return self.build(node, path)

    def _mapping(self, node: Node, path: YamlPath) -> dict[str, Any]:
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
        if isinstance(node, _SCALARS):
            return str(node.value)
        self.problems.append(Located(path, _line(node), "a key must be a plain name"))
        return None

    def _merge(self, result: dict[str, Any], source: Node, path: YamlPath) -> None:
        sources = source.value if isinstance(source, _SEQUENCES) else [source]
        for node in sources:
            if not isinstance(node, _MAPPINGS):
                self.problems.append(Located(path, _line(node), "`<<` must merge a mapping"))
                continue
            for key, value in self._mapping(node, path).items():
                result.setdefault(key, value)

    def _scalar(self, node: Node, path: YamlPath) -> Any:
        if node.tag in _TYPED_SCALARS:
            return self._typed(node, path)
        if node.tag not in _TEXT_SCALARS:
            tag = str(node.tag).replace(_TAG, "!!")
            self.problems.append(Located(path, _line(node), f"unsupported YAML tag {tag}"))
            return None
        text = str(node.value)
        return self._expand(text, path, node) if has_reference(text) else text

    def _expand(self, text: str, path: YamlPath, node: Node) -> str:
        expansion = expand(text, self._env)
        self.references[path] = text
        self.expanded[path] = expansion.text
        line = self.marks.line_for(path) if path else _line(node)
        if expansion.malformed:
            message = "write ${NAME} or ${NAME:-default} (and $${ for a literal ${)"
            self.problems.append(Located(path, line, message))
        if expansion.missing:
            self.gaps.append(EnvGap(path, line, expansion.missing))
        return expansion.text

    def _typed(self, node: Node, path: YamlPath) -> Any:
        try:
            return self._constructor.construct_object(RuamelScalar(node.tag, node.value), deep=True)
        except (ValueError, OverflowError):  # 5,000 digits: Python refuses to read them
            digits = len(str(node.value))
            message = f"a number of {digits:,} characters is far too long; write a real value"
            self.problems.append(Located(path, _line(node), message))
            return None


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1
