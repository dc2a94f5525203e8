"""Variation rows become offers; a watch's `variant` and conditions pick among them."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config.load import parse_config
from watcher.core.model import (
    Availability,
    ConditionFilter,
    Observation,
    Offer,
    Page,
    WatchConditions,
    variant_matches,
)
from watcher.stores.parse import parse_page

A = Availability
PAGES = Path(__file__).parent / "fixtures" / "pages"

ROWS_PAGE = """<html><body><div class="item"><h1>Tシャツ</h1>
<table class="sku-table">
<tr><th>カラー</th><th>価格</th><th>在庫</th></tr>
<tr data-sku="TS-BL-M"><td>ブルー Ｍ</td><td>3,300円</td><td>在庫あり</td>
<td><button>カートに入れる</button></td></tr>
<tr data-sku="TS-RD-M"><td>レッド Ｍ</td><td>3,300円</td><td>売り切れ</td>
<td><button disabled>カートに入れる</button></td></tr>
<tr data-sku="TS-BK-L"><td>ブラック Ｌ</td><td>3,800円</td><td>在庫あり</td>
<td><button>カートに入れる</button></td></tr>
</table></div></body></html>"""


def read(html: str) -> Observation:
    return parse_page(Page(url="https://shop.example/item/1", text=html), store="generic")


def test_each_row_is_an_offer_and_one_orderable_row_makes_the_product_orderable() -> None:
    obs = read(ROWS_PAGE)
    assert obs.state is A.IN_STOCK
    assert [(o.sku, o.state, o.price) for o in obs.offers] == [
        ("TS-BL-M", A.IN_STOCK, 3300),
        ("TS-RD-M", A.OUT_OF_STOCK, 3300),
        ("TS-BK-L", A.IN_STOCK, 3800),
    ]
    assert obs.reason == "variations:2 of 3 orderable"


def test_one_sold_out_row_does_not_decide_for_the_product() -> None:
    assert read(ROWS_PAGE.replace("在庫あり", "在庫なし", 1)).state is A.IN_STOCK


def test_every_row_sold_out_is_out_of_stock() -> None:
    html = ROWS_PAGE.replace("在庫あり", "在庫なし").replace("<button>", "<button disabled>")
    obs = read(html)
    assert obs.state is A.OUT_OF_STOCK
    assert not WatchConditions().is_buyable(obs)


@pytest.mark.parametrize(
    "variant,buyable",
    [
        ("ブルー", True),
        ("ﾌﾞﾙｰ", True),  # half-width katakana
        ("レッド", False),
        ("ts-bk-l", True),  # SKU, any letter case
        ("ブラック L", True),  # spaces and full-width letters
        ("グリーン", False),
    ],
)
def test_a_watch_picks_its_variant(variant: str, buyable: bool) -> None:
    conditions = WatchConditions(variant=variant)
    assert conditions.is_buyable(read(ROWS_PAGE)) is buyable


def test_max_price_applies_to_the_matching_rows() -> None:
    obs = read(ROWS_PAGE)
    assert not WatchConditions(variant="ブラック", max_price=3500).is_buyable(obs)
    assert WatchConditions(variant="ブルー", max_price=3500).is_buyable(obs)


def test_a_sold_out_product_is_not_buyable_through_a_row() -> None:
    offer = Offer(store="generic", url="u", state=A.IN_STOCK, title="ブルー")
    obs = Observation(state=A.OUT_OF_STOCK, reason="conflict", offers=(offer,))
    assert not WatchConditions().is_buyable(obs)


def test_without_rows_only_a_title_naming_the_variant_counts() -> None:
    obs = Observation(state=A.IN_STOCK, reason="text", title="マグカップ ブルー")
    assert WatchConditions(variant="ブルー").is_buyable(obs)
    assert not WatchConditions(variant="レッド").is_buyable(obs)


def test_variant_matches_name_or_sku() -> None:
    assert variant_matches("M", "ブルー / Ｍ", None)
    assert variant_matches("abc-1", None, "ABC-1")
    assert not variant_matches("", "anything", None)


def test_a_select_with_a_sold_out_option_gives_rows() -> None:
    path = PAGES / "generic" / "eccube4-select-one-option-sold-out.html"
    obs = read(path.read_text("utf-8"))
    titles = [o.title for o in obs.offers]
    assert obs.state is A.IN_STOCK and len(titles) == 3
    assert WatchConditions(variant="生成り").is_buyable(obs)
    assert not WatchConditions(variant="藍色").is_buyable(obs)


def test_used_rows_and_the_condition_filter_still_apply() -> None:
    path = PAGES / "generic" / "surugaya-new-used-rows.html"
    obs = read(path.read_text("utf-8"))
    assert WatchConditions(variant="中古").is_buyable(obs)
    assert not WatchConditions(variant="新品").is_buyable(obs)
    assert WatchConditions(condition=ConditionFilter.ANY).is_buyable(obs)


def test_the_watchlist_key_reaches_the_watch_conditions() -> None:
    text = (
        "watches:\n  - name: mug\n    url: https://example.base.shop/items/1\n"
        '    variant: "ブルー"\n'
    )
    config = parse_config(text)
    assert config.watches[0].conditions.variant == "ブルー"


def test_an_empty_variant_is_a_config_error() -> None:
    from watcher.errors import ConfigError

    text = 'watches:\n  - name: mug\n    url: https://example.base.shop/items/1\n    variant: ""\n'
    with pytest.raises(ConfigError):
        parse_config(text)


def test_rows_without_their_own_price_carry_the_page_price() -> None:
    path = PAGES / "generic" / "eccube4-select-one-option-sold-out.html"
    obs = read(path.read_text("utf-8"))
    assert {o.price for o in obs.offers} == {5500}
    assert WatchConditions(variant="生成り", max_price=6000).is_buyable(obs)
    assert not WatchConditions(variant="生成り", max_price=5000).is_buyable(obs)


def test_the_variant_is_matched_against_the_row_not_the_product_title() -> None:
    html = ROWS_PAGE.replace("<h1>Tシャツ</h1>", "<h1>Tシャツ レッド柄</h1>")
    obs = read(html)
    assert not WatchConditions(variant="レッド").is_buyable(obs)
