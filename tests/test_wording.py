"""The wording tables: every phrase a shop prints, the state it states, and where it counts."""

from __future__ import annotations

import pytest

from watcher.core.model import Availability
from watcher.stores._text import classify_wording
from watcher.stores._wording import GROUPS, STATE_ORDER, TABLES, Strength

A = Availability

# (text as a shop prints it, the state it states). One row per phrase of the tables.
ROWS = [
    # buy controls
    ("カートに入れる", A.IN_STOCK),
    ("バスケットに入れる", A.IN_STOCK),
    ("カートに追加", A.IN_STOCK),
    ("購入手続きへ", A.IN_STOCK),
    ("今すぐ購入", A.IN_STOCK),
    ("注文する", A.IN_STOCK),
    ("カゴに入れる", A.IN_STOCK),
    ("買い物かごに入れる", A.IN_STOCK),
    ("予約する", A.PREORDER),
    ("予約カートに入れる", A.PREORDER),
    # shipping times
    ("当日出荷", A.IN_STOCK),
    ("翌日出荷", A.IN_STOCK),
    ("3日以内出荷", A.IN_STOCK),
    ("24時間以内に発送", A.IN_STOCK),
    ("出荷目安", A.IN_STOCK),
    ("お届け予定", A.IN_STOCK),
    ("出荷目安：約2週間", A.BACKORDER),
    ("ご注文から7営業日以内に発送", A.BACKORDER),
    ("通常2～3日以内に発送", A.BACKORDER),
    ("1～2か月で発送", A.BACKORDER),
    ("メーカー直送", A.BACKORDER),
    ("お取り寄せ", A.BACKORDER),
    ("受注生産", A.BACKORDER),
    # not buyable
    ("欠品中", A.OUT_OF_STOCK),
    ("品切れ", A.OUT_OF_STOCK),
    ("完売", A.OUT_OF_STOCK),
    ("在庫なし", A.OUT_OF_STOCK),
    ("在庫切れ", A.OUT_OF_STOCK),
    ("在庫がありません", A.OUT_OF_STOCK),
    ("販売休止中です", A.OUT_OF_STOCK),
    ("入荷未定", A.OUT_OF_STOCK),
    ("次回入荷予定：12月上旬", A.OUT_OF_STOCK),
    ("予定数の販売を終了しました", A.OUT_OF_STOCK),
    ("受付は終了しました", A.OUT_OF_STOCK),
    ("再入荷お知らせ", A.OUT_OF_STOCK),
    ("取扱い終了", A.DISCONTINUED),
    ("販売終了", A.DISCONTINUED),
    ("お取り扱いできません", A.DISCONTINUED),
    # lottery
    ("抽選受付中", A.LOTTERY),
    ("抽選販売", A.LOTTERY),
    ("応募受付中", A.LOTTERY),
    ("受付期間", A.LOTTERY),
    ("抽選に申し込む", A.LOTTERY),
    ("抽選販売の受付は終了しました", A.OUT_OF_STOCK),
    # English
    ("Add to Cart", A.IN_STOCK),
    ("In stock", A.IN_STOCK),
    ("Sold Out", A.OUT_OF_STOCK),
    ("Sold Out - Find online", A.OUT_OF_STOCK),
    ("Notify when available", A.OUT_OF_STOCK),
    ("Auto Notify", A.OUT_OF_STOCK),
    ("Currently unavailable", A.OUT_OF_STOCK),
    ("Notify me when it's back in stock", A.OUT_OF_STOCK),
    ("Unavailable online", A.OUT_OF_STOCK),
    ("Not in stock", A.OUT_OF_STOCK),
    ("Temporarily on backorder", A.BACKORDER),
    ("Pre-order", A.PREORDER),
    ("Discontinued", A.DISCONTINUED),
    # other locales
    ("Gewöhnlich versandfertig in 2 bis 3 Tagen", A.BACKORDER),
    ("Habituellement expédié sous 1 à 2 mois", A.BACKORDER),
    ("Auf Lager", A.IN_STOCK),
    ("Derzeit nicht verfügbar", A.OUT_OF_STOCK),
    ("Plus en stock", A.OUT_OF_STOCK),
    ("Op voorraad", A.IN_STOCK),
    ("Niet op voorraad", A.OUT_OF_STOCK),
    ("Tillfälligt slut", A.OUT_OF_STOCK),
    ("Stokta yok", A.OUT_OF_STOCK),
    # stock marks
    ("在庫：○", A.IN_STOCK),
    ("在庫状況：△", A.IN_STOCK),
    ("在庫：×", A.OUT_OF_STOCK),
]


@pytest.mark.parametrize("text,state", ROWS, ids=[r[0] for r in ROWS])
def test_each_phrase_states_its_state(text: str, state: Availability) -> None:
    found = classify_wording(text)
    assert found is not None and found[0] is state, found


@pytest.mark.parametrize(
    "text",
    [
        "在庫切れの場合はメールにてご連絡いたします",
        "売り切れ次第終了となります",
        "品切れの際はご容赦ください",
        "If an item is sold out we refund the payment.",
        "在庫状況によりお届けが遅れる場合があります",
        "予約商品と通常商品を同時にご注文の場合は分けてお届けします",
        "お取り寄せ商品はキャンセルできません",
        "Variant sold out or unavailable",
        "※在庫切れのサイズは選択できません",
        "SOLD OUTの場合、再販の予定はありません。",
        "入荷待ちの場合はメールでお知らせします",
        "お取り寄せの場合は1週間ほどかかります",
        "Sold out sizes are shown in grey.",
    ],
)
def test_conditional_sentences_state_nothing(text: str) -> None:
    assert classify_wording(text) is None


@pytest.mark.parametrize(
    "text,state",
    [
        ("在庫ありません", A.OUT_OF_STOCK),  # holds 在庫あり
        ("not in stock", A.OUT_OF_STOCK),  # holds "in stock"
        ("予約受付中 カートに入れる", A.PREORDER),
        ("お取り寄せ カートに入れる", A.BACKORDER),
        ("抽選受付中 在庫なし", A.LOTTERY),
        ("予約受付中 受付終了日 12/10", A.PREORDER),
        ("販売終了日：2026年12月31日 在庫あり", A.IN_STOCK),
        ("予約商品は発売日以降の発送です 在庫あり", A.IN_STOCK),
        ("この商品はお取り寄せとなります", A.BACKORDER),
    ],
)
def test_which_state_wins_in_one_text(text: str, state: Availability) -> None:
    found = classify_wording(text)
    assert found is not None and found[0] is state, found


@pytest.mark.parametrize("text", ["予約する", "応募する", "注文する", "受付期間", "Notify me"])
def test_weak_phrases_count_in_labels_only(text: str) -> None:
    assert classify_wording(text) is not None
    assert classify_wording(f"ご不明点は{text}前にお問い合わせください", Strength.STRONG) is None


def test_every_phrase_belongs_to_an_ordered_state_and_compiles() -> None:
    phrases = [phrase for table in TABLES for phrase in table]
    assert len(phrases) >= 50
    assert {p.state for p in phrases} <= set(STATE_ORDER)
    assert [g.state for g in GROUPS] == list(STATE_ORDER)


def test_negative_states_come_before_orderable_ones() -> None:
    last_negative = max(i for i, s in enumerate(STATE_ORDER) if not s.orderable)
    first_orderable = min(i for i, s in enumerate(STATE_ORDER) if s.orderable)
    assert last_negative < first_orderable


def test_width_and_case_do_not_matter() -> None:
    assert classify_wording("ＳＯＬＤ　ＯＵＴ") == (A.OUT_OF_STOCK, "SOLD OUT")
    assert classify_wording("ｶｰﾄに入れる") == (A.IN_STOCK, "カートに入れる")
