"""Shared test fixtures. No test reaches the internet: loopback servers and mock transports only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from watcher.db import SQLiteRepository, open_repository

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_PAGES = Path(__file__).resolve().parents[2] / "shared" / "pages"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's real SQLite database lives."""
    return tmp_path / "restock.sqlite3"


@pytest.fixture
async def repo(db_path: Path) -> AsyncIterator[SQLiteRepository]:
    """A real SQLite repository at `db_path`, closed after the test."""
    repository = await open_repository(db_path)
    yield repository
    await repository.close()
