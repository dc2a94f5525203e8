"""`restock check` end to end: saved pages, a loopback shop, JAN codes and usage errors."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.demo.shop import DemoShop, ShopProduct, Shows, timeline

PAGES = Path(__file__).parent / "fixtures" / "pages"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main([*argv, "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_saved_page_json_has_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    page = PAGES / "amazon_jp" / "in-stock-sold-by-amazon.html"
    data = run_json(capsys, "check", "--file", str(page), "https://www.amazon.co.jp/dp/B0TEST0001")
    for key in ("state", "price", "currency", "title", "seller", "condition", "reason"):
        assert key in data
    assert data["state"] == "in_stock"
    assert data["price"] == 5400
    assert data["store"] == "amazon_jp"


def test_saved_page_without_url_is_recognised_from_its_markup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = PAGES / "amazon_jp" / "out-of-stock-no-restock-planned.html"
    data = run_json(capsys, "check", "--file", str(page))
    assert data["store"] == "amazon_jp"
    assert data["state"] == "out_of_stock"


def test_forced_store_wins(capsys: pytest.CaptureFixture[str]) -> None:
    page = PAGES / "amazon_jp" / "in-stock-sold-by-amazon.html"
    data = run_json(capsys, "check", "--file", str(page), "--store", "generic")
    assert data["store"] == "generic"


def test_readable_summary_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    page = PAGES / "amazon_jp" / "in-stock-sold-by-amazon.html"
    assert main(["check", "--file", str(page)]) == 0
    out = capsys.readouterr().out
    assert "state:     in_stock" in out
    assert "5,400" in out


def test_captcha_page_is_unknown_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    page = PAGES / "amazon_jp" / "captcha-enter-characters.html"
    data = run_json(capsys, "check", "--file", str(page))
    assert data["state"] == "unknown"
    assert str(data["reason"]).startswith("blocked:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check"], "needs a URL or JAN"),
        (["check", "4901234567890"], "check digit"),
        (["check", "ftp://example.com/x"], "not a URL or JAN"),
        (["check", "--file", "/nonexistent/page.html"], "cannot read"),
        (
            ["check", "--file", str(PAGES / "amazon_jp" / "used-only.html"), "--store", "nope"],
            "nope",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert "\n" not in err


def test_jan_without_credentials_names_the_skipped_sources(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAKUTEN_APPLICATION_ID", raising=False)
    monkeypatch.delenv("RAKUTEN_ACCESS_KEY", raising=False)
    monkeypatch.delenv("YAHOO_APP_ID", raising=False)
    data = run_json(capsys, "check", "4901234567894")
    assert data["state"] == "unknown"
    assert "rakuten" in str(data["reason"])
    assert "yahoo_shopping" in str(data["reason"])


def test_jan_check_takes_rakutens_application_id_and_access_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from watcher.commands.check import _env_search_setup

    monkeypatch.setenv("RAKUTEN_APPLICATION_ID", "app-1")
    monkeypatch.delenv("RAKUTEN_ACCESS_KEY", raising=False)
    monkeypatch.delenv("YAHOO_APP_ID", raising=False)
    usable, skipped = _env_search_setup().usable(["rakuten"])
    assert usable == [] and skipped == ["rakuten: no credentials in sources.rakuten"]

    monkeypatch.setenv("RAKUTEN_ACCESS_KEY", "pk_env")
    setup = _env_search_setup()
    assert setup.credentials["rakuten"] == {"application_id": "app-1", "access_key": "pk_env"}
    usable, skipped = setup.usable(["rakuten"])
    assert [source.name for source in usable] == ["rakuten"] and skipped == []


@pytest.fixture
def loopback_shop() -> Iterator[DemoShop]:
    """A shop on a thread of its own, so the CLI's own event loop can fetch from it."""
    shop = DemoShop()
    shop.add(ShopProduct("mug", "マグカップ <b>限定</b>", 1980, timeline((0, Shows.IN_STOCK))))
    shop.add(ShopProduct("cap", "キャップ", 2500, timeline((0, Shows.CAPTCHA))))
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(shop.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(5)
    yield shop
    asyncio.run_coroutine_threadsafe(shop.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_url_is_fetched_and_read(
    capsys: pytest.CaptureFixture[str], loopback_shop: DemoShop
) -> None:
    data = run_json(capsys, "check", loopback_shop.url("mug"))
    assert data["state"] == "in_stock"
    assert data["price"] == 1980
    assert data["title"] == "マグカップ <b>限定</b>"
    fetch = data["fetch"]
    assert isinstance(fetch, dict) and fetch["status"] == 200


def test_captcha_url_never_reads_buyable(
    capsys: pytest.CaptureFixture[str], loopback_shop: DemoShop
) -> None:
    data = run_json(capsys, "check", loopback_shop.url("cap"))
    assert data["state"] == "unknown"
    assert data["blocked"] is True


def test_unreachable_url_is_unknown_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "check", "http://127.0.0.1:9/items/none")
    assert data["state"] == "unknown"
    assert "connect" in str(data["reason"])


def test_json_carries_the_lottery_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    page = PAGES / "generic" / "biccamera-lottery-window.html"
    data = run_json(capsys, "check", "--file", str(page), "--store", "generic")
    assert data["state"] == "lottery"
    assert data["lottery_deadline"] == "2026-12-10T23:59:00+09:00"


def test_json_has_no_lottery_deadline_for_an_ordinary_page(
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = PAGES / "amazon_jp" / "in-stock-sold-by-amazon.html"
    data = run_json(capsys, "check", "--file", str(page), "https://www.amazon.co.jp/dp/B0TEST0001")
    assert data["lottery_deadline"] is None


def test_summary_names_the_lottery_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    page = PAGES / "generic" / "biccamera-lottery-window.html"
    assert main(["check", "--file", str(page), "--store", "generic"]) == 0
    out = capsys.readouterr().out
    assert "state:     lottery" in out
    assert "deadline:  2026-12-10T23:59:00+09:00" in out
