"""The package layering holds: the core and the adapters do no I/O, and nothing imports in a cycle.

Read from the source (every import statement, function-local ones too), so an import added
anywhere in those packages is seen even if no test runs the code that holds it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_PACKAGES = ("watcher/core", "watcher/stores")
# Standard-library modules a pure package may use: none of them touch files, sockets or processes.
PURE_STDLIB = frozenset(
    {
        "__future__",
        "bisect",
        "collections",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "functools",
        "hashlib",
        "html",
        "itertools",
        "json",
        "math",
        "random",
        "re",
        "statistics",
        "string",
        "typing",
        "unicodedata",
        "urllib",  # urllib.parse only (checked below)
        "zoneinfo",
    }
)
# Third-party libraries the adapters use to read markup: parsers, no I/O.
PURE_THIRD_PARTY = frozenset({"selectolax"})
OWN_PURE = ("watcher.core", "watcher.stores", "watcher.errors")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def pure_sources() -> list[Path]:
    return sorted(p for package in PURE_PACKAGES for p in (ROOT / package).rglob("*.py"))


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    if module.startswith("urllib") and module not in ("urllib", "urllib.parse"):
        return False
    if top in PURE_STDLIB or top in PURE_THIRD_PARTY:
        return True
    return any(module == own or module.startswith(own + ".") for own in OWN_PURE)


def test_the_pure_packages_import_no_io() -> None:
    sources = pure_sources()
    assert len(sources) >= 10  # the packages were found (a check of nothing must not pass)
    offending = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sources
        for module in imported_modules(path)
        if not allowed(module)
    }
    assert not offending, sorted(offending)


@pytest.mark.parametrize(
    "module", ["asyncio", "socket", "sqlite3", "httpx", "subprocess", "os.path"]
)
def test_the_rule_catches_io_imports(module: str) -> None:
    assert not allowed(module)


def test_importing_the_core_loads_no_io_library() -> None:
    code = (
        "import sys, pkgutil, importlib, watcher.core as core\n"
        "for m in pkgutil.iter_modules(core.__path__):\n"
        "    importlib.import_module('watcher.core.' + m.name)\n"
        "io = ('asyncio', 'socket', 'sqlite3', 'httpx', 'aiosqlite')\n"
        "print(','.join(sorted(m for m in io if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == ""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports when it is loaded: top-level statements only (not
    function-local imports, not `if TYPE_CHECKING:`), each with its parent packages."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            found.update(p for i in range(1, len(parts) + 1) if (p := ".".join(parts[:i])) in known)
    return found


def test_no_import_cycles() -> None:
    paths = [p for top in ("watcher", "notifiers") for p in (ROOT / top).rglob("*.py")]
    known = {module_name(p) for p in paths}
    graph = {module_name(p): load_time_imports(p, known) - {module_name(p)} for p in paths}
    assert len(graph) > 50 and sum(len(v) for v in graph.values()) > 100
    # A module importing its own package's __init__ is how Python loads it: not a cycle unless
    # the __init__ imports the module back, which the graph shows as the reverse edge.
    cycles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start and not start.startswith(node + "."):
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen and nxt > start:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not cycles, cycles


HEAVY_LIBRARIES = ("httpx", "telegram", "tweepy", "aiosqlite", "aiohttp", "aiosmtplib", "asyncio")


def modules_loaded_by(*argv: str) -> set[str]:
    """The top-level packages a `restock` command line loads (run in a fresh interpreter)."""
    code = (
        "import sys\n"
        "from watcher.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\n' + ','.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(result.stdout.strip().splitlines()[-1].split(","))


def test_help_imports_only_the_command_line() -> None:
    loaded = modules_loaded_by("--help")
    assert "watcher" in loaded and "argparse" in loaded  # the probe saw the command line load
    assert not loaded & {*HEAVY_LIBRARIES, "pydantic", "ruamel", "selectolax", "notifiers"}


def test_validate_imports_the_config_and_nothing_that_does_io() -> None:
    loaded = modules_loaded_by("validate", str(ROOT / "watchlists" / "minimal.yaml"))
    assert {"pydantic", "ruamel"} <= loaded
    assert not loaded & set(HEAVY_LIBRARIES)
