"""Shared test fixtures. No test reaches the internet: loopback servers and mock transports only.

Repository tests run once per storage backend: `repo` and `database` are parametrized by
`backend`. A backend is one entry in `BACKENDS` and one fixture `<backend>_database` that gives
a fresh, empty database URL for a test (and cleans up after it); `other_database` is a second one
on the same backend, for tests that compare two databases. Tests that read a SQLite file directly
ask for `db_path`, which only the SQLite backend has.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from watcher.storage import open_repository
from watcher.storage.interface import Repository

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_PAGES = Path(__file__).resolve().parents[2] / "shared" / "pages"

BACKENDS = ["sqlite", "postgresql"]

# The PostgreSQL server the PostgreSQL tests use (trust auth on loopback). `.ci/run` sets
# RESTOCK_TEST_REQUIRE_POSTGRES=1, which turns a missing server into a failure, not a skip.
POSTGRES_SERVER = os.environ.get(
    "RESTOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_REQUIRED = os.environ.get("RESTOCK_TEST_REQUIRE_POSTGRES") == "1"
NO_POSTGRES = (
    "no PostgreSQL answers at {url} ({error}): start one (trust auth for user postgres) or set"
    " RESTOCK_TEST_POSTGRES to run the PostgreSQL tests"
)


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


@pytest.fixture(scope="session")
def postgres_session_database() -> Iterator[str]:
    """A database made for this test run on the PostgreSQL server, dropped at its end."""
    try:
        import asyncpg  # noqa: F401  (the test extra installs it)
    except ModuleNotFoundError as exc:
        _no_postgres(f"asyncpg is not installed: {exc}")
    name = f"restock_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_admin(POSTGRES_SERVER, f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        _no_postgres(str(exc) or type(exc).__name__)
    base = POSTGRES_SERVER.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_admin(POSTGRES_SERVER, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _no_postgres(error: str) -> None:
    message = NO_POSTGRES.format(url=POSTGRES_SERVER, error=error)
    if POSTGRES_REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def postgresql_database(postgres_session_database: str) -> AsyncIterator[str]:
    """A fresh, empty schema in the test run's database, as a URL; dropped after the test."""
    async with _fresh_schema(postgres_session_database) as url:
        yield url


@asynccontextmanager
async def _fresh_schema(session_database: str) -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    await _admin(session_database, f"CREATE SCHEMA {schema}")
    try:
        yield f"{session_database}?search_path={schema}"
    finally:
        await _admin(session_database, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh database URL on `backend`."""
    return str(request.getfixturevalue(f"{backend}_database"))


@pytest.fixture
async def other_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A second fresh database URL on `backend`, apart from `database`."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'other.sqlite3'}"
        return
    async with _fresh_schema(request.getfixturevalue("postgres_session_database")) as url:
        yield url


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
