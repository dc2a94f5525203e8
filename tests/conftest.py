"""Shared test fixtures. No test reaches the internet: loopback servers and mock transports only.

Repository tests run once per storage backend: `repo` and `database` are parametrized by
`backend`. A backend is one entry in `BACKENDS` and one fixture `<backend>_database` that gives
a fresh, empty database URL for a test (and cleans up after it). Tests that read a SQLite file
directly ask for `db_path`, which only the SQLite backend has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from watcher.storage import open_repository
from watcher.storage.interface import Repository

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_PAGES = Path(__file__).resolve().parents[2] / "shared" / "pages"

BACKENDS = ["sqlite"]


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend a repository test runs on."""
    return str(request.param)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'restock.sqlite3'}"


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh database URL on `backend`."""
    return str(request.getfixturevalue(f"{backend}_database"))


@pytest.fixture
def db_path(backend: str, tmp_path: Path) -> Path:
    """Where a test's real SQLite database lives (tests that read the file itself)."""
    if backend != "sqlite":
        pytest.skip("reads the SQLite file itself")
    return tmp_path / "restock.sqlite3"


@pytest.fixture
async def repo(database: str) -> AsyncIterator[Repository]:
    """A real repository on `database`, closed after the test."""
    repository = await open_repository(database)
    yield repository
    await repository.close()
