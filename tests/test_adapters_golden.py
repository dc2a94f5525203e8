"""Every saved page under tests/fixtures/pages/<store>/ read by its adapter, against what a person
reads on it (<case>.expected.json; the format is in tests/fixtures/pages/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, SHARED_PAGES

from watcher.core.model import Availability, Observation, Page
from watcher.stores.parse import parse_page
from watcher.stores.registry import ADAPTERS

PAGES = FIXTURES / "pages"
MIN_CASES = 25  # the golden test must never pass on an empty or half-found folder
COMPARED = ("state", "price", "currency", "title", "seller", "quantity", "blocked")
KNOWN_KEYS = {*COMPARED, "reason_prefix", "condition", "page"}


def _cases() -> list[Path]:
    return sorted(PAGES.glob("*/*.html"))


def _case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _decode(raw: bytes) -> str:
    try:
        from watcher.net.decode import decode_body
    except ImportError:  # the fetcher is optional for reading saved pages
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("cp932", errors="replace")
    text, _encoding = decode_body(raw, "text/html")
    return text


def load_page(path: Path, spec: dict[str, Any]) -> Page:
    raw = path.read_bytes()
    fetched = spec.get("page", {})
    return Page(
        url=fetched.get("url", f"https://shop.example/{path.parent.name}/{path.stem}"),
        text=_decode(raw),
        status=fetched.get("status", 200),
        retry_after=fetched.get("retry_after"),
        bytes=len(raw),
    )


def _expected(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_suffix(".expected.json").read_text("utf-8"))
    return data


def _actual(obs: Observation, key: str) -> Any:
    value = getattr(obs, key)
    return value.value if isinstance(value, Availability) else value


@pytest.mark.parametrize("path", _cases(), ids=_case_id)
def test_saved_page_reads_as_expected(path: Path) -> None:
    expected = _expected(path)
    assert set(expected) <= KNOWN_KEYS, f"unknown keys: {set(expected) - KNOWN_KEYS}"
    assert "state" in expected
    obs = parse_page(load_page(path, expected), store=path.parent.name)
    for key in COMPARED:
        if key in expected:
            assert _actual(obs, key) == expected[key], f"{key}: {obs.reason}"
    if "condition" in expected:
        assert (obs.condition.value if obs.condition else None) == expected["condition"]
    if "reason_prefix" in expected:
        assert obs.reason.startswith(expected["reason_prefix"]), obs.reason
    assert obs.fetch is not None  # the registry attaches fetch facts to every reading


def test_golden_cases_were_found() -> None:
    assert len(_cases()) >= MIN_CASES


def test_every_case_has_an_expected_file_and_a_registered_store() -> None:
    for path in _cases():
        assert path.with_suffix(".expected.json").is_file(), path
        assert path.parent.name in ADAPTERS, f"{path.parent.name}/ is not a registered adapter"


@pytest.mark.parametrize("store", sorted(ADAPTERS))
def test_every_adapter_has_in_stock_out_of_stock_and_unknown_pages(store: str) -> None:
    states = {_expected(path)["state"] for path in (PAGES / store).glob("*.html")}
    missing = {"in_stock", "out_of_stock", "unknown"} - states
    assert not missing, f"{store}: no saved page reading {sorted(missing)}"


def _shared_labels() -> list[tuple[str, dict[str, Any]]]:
    labels_file = SHARED_PAGES / "labels.json"
    if not labels_file.is_file():
        return []
    labels: dict[str, dict[str, Any]] = json.loads(labels_file.read_text("utf-8"))
    return sorted((name, label) for name, label in labels.items() if label["store"] == "generic")


@pytest.mark.skipif(not (SHARED_PAGES / "labels.json").is_file(), reason="no shared pages here")
@pytest.mark.parametrize("name,label", _shared_labels(), ids=[n for n, _ in _shared_labels()])
def test_shared_real_pages_read_as_labelled(name: str, label: dict[str, Any]) -> None:
    raw = (SHARED_PAGES / name).read_bytes()
    page = Page(url=f"https://shop.example/{name}", text=_decode(raw), bytes=len(raw))
    obs = parse_page(page, store="generic")
    assert obs.state.value == label["state"], obs.reason
    if label.get("price") is not None:
        assert obs.price == label["price"]
