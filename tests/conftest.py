"""Shared test fixtures. No test reaches the internet: loopback servers and mock transports only."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_PAGES = Path(__file__).resolve().parents[2] / "shared" / "pages"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
