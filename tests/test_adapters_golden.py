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
KNOWN_KEYS = {
    *COMPARED,
    "reason_prefix",
    "condition",
    "page",
    "lottery_deadline",
    "offer_states",
    "seen",
}


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
        headers={k.lower(): v for k, v in fetched.get("headers", {}).items()},
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
    if "lottery_deadline" in expected:
        deadline = obs.lottery_deadline.isoformat() if obs.lottery_deadline else None
        assert deadline == expected["lottery_deadline"], obs.reason
    if "offer_states" in expected:
        states = [o.state.value for o in obs.offers if not o.summary]
        assert states == expected["offer_states"], obs.reason
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


def _corpus() -> list[tuple[Path, dict[str, Any], str]]:
    return [(p, _expected(p), p.read_text("utf-8", errors="replace")) for p in _cases()]


_FAILURE_CLASSES: dict[str, Any] = {
    "structured buyable, visible page not (conflict)": lambda e, html: str(
        e.get("reason_prefix", "")
    ).startswith("conflict:"),
    "structured not buyable, visible wording and cart agree": lambda e, html: (
        "disagreed" in str(e.get("reason_prefix", ""))
    ),
    "variation table": lambda e, html: "offer_states" in e,
    "reference price beside the selling price": lambda e, html: (
        e.get("price") is not None
        and any(w in html for w in ("参考基準価格", "希望小売価格", "定価", "通常価格", "参考価格"))
    ),
    "block page with stock wording": lambda e, html: (
        e.get("blocked") is True and ("在庫あり" in html or "カートに入れる" in html)
    ),
    "lottery": lambda e, html: e["state"] == "lottery",
    "backorder (ship-later wording)": lambda e, html: e["state"] == "backorder",
    "absurd price": lambda e, html: (
        "price" in e
        and e["price"] is None
        and any(w in html for w in ("1e+25", "NaN", "999,999,999"))
    ),
}


@pytest.mark.parametrize("name", sorted(_FAILURE_CLASSES))
def test_every_failure_class_has_golden_pages(name: str) -> None:
    matches = [p for p, e, html in _corpus() if _FAILURE_CLASSES[name](e, html)]
    assert len(matches) >= 2, f"{name}: {len(matches)} saved pages"


def test_the_corpus_is_wide_and_says_where_structures_were_seen() -> None:
    corpus = _corpus()
    seen = [e["seen"] for _, e, _ in corpus if "seen" in e]
    assert len(corpus) >= 80
    assert len(seen) >= 70
    assert all(isinstance(s, str) and len(s) > 10 for s in seen)


def test_every_adapter_has_a_block_page_with_stock_wording() -> None:
    blocked = {p.parent.name for p, e, html in _corpus() if e.get("blocked") and "在庫あり" in html}
    assert blocked == set(ADAPTERS)
