"""Stock wording as data: one table per language, phrase -> the state it states and its strength.

A phrase is a regular-expression fragment matched case-insensitively on NFKC-normalised text
(full-width letters and digits already read as ASCII). Fragments stay linear: no nested
quantifiers, only bounded repeats, so a hostile page cannot make matching slow.

Strength says where a phrase counts:

- `STRONG`: a statement about the product wherever the main product area says it (売り切れ,
  在庫あり, "Sold out");
- `WEAK`: only as a short label or a control's caption (予約する on a button is a preorder; in
  running text "予約する場合は" is not).

When several phrases match one text, the state order of `STATE_ORDER` decides: negative wording
first (a negative phrase often holds a positive one: 在庫ありません holds 在庫あり, "not in stock"
holds "in stock"), then the lottery, then preorder and backorder before in stock (an order button
on a preorder page says カートに入れる too). Conditional sentences ("在庫切れの場合はご連絡します",
"sold out when stock runs out") state nothing and are cut out first (`CONDITIONAL`).

Adding a phrase is one line in its language's table plus one row in tests/test_wording.py.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from watcher.core.model import Availability


class Strength(enum.IntEnum):
    WEAK = 1  # counts in a label or a control's caption only
    STRONG = 2  # counts in the main product area's running text too


@dataclass(frozen=True, slots=True)
class Phrase:
    pattern: str
    state: Availability
    strength: Strength = Strength.STRONG


_A = Availability
_S = Strength.STRONG
_W = Strength.WEAK

# Tried first; the states of one text are compared in this order (see the module docstring).
STATE_ORDER: tuple[Availability, ...] = (
    _A.DISCONTINUED,
    _A.LOTTERY,
    _A.OUT_OF_STOCK,
    _A.PREORDER,
    _A.BACKORDER,
    _A.IN_STOCK,
)

_RANGE = r"\d{1,3}\s*(?:[～〜~\-ー]\s*\d{1,3}\s*)?"  # "2", "2～3", "2-3"
_LATER_UNIT = r"(?:週間|か月|ヶ月|カ月|ケ月)"
_LATER_DAYS = r"(?:[4-9]|\d{2})\s*(?:[～〜~\-ー]\s*\d{1,3}\s*)?営?業?日"  # four days or more

JAPANESE: tuple[Phrase, ...] = (
    # discontinued
    Phrase(
        r"販売終了(?!日|予定|時刻|日時)|(?<!予定数の)販売を終了|生産終了|製造終了|生産完了|取扱終了",
        _A.DISCONTINUED,
    ),
    Phrase(
        r"取り?扱い?終了|取り扱いを終了|お取り?扱いできません|取り扱っておりません", _A.DISCONTINUED
    ),
    Phrase(r"掲載終了|販売中止|廃番|廃盤", _A.DISCONTINUED),
    # lottery (an application window; an ended one is out of stock below)
    Phrase(r"抽選(?:受付中|申込受付中|申し込み受付中|応募受付中|販売受付中)", _A.LOTTERY),
    Phrase(r"抽選販売(?![^。]{0,12}(?:終了|締め?切))", _A.LOTTERY),
    Phrase(
        r"応募受付中|抽選に(?:申し?込む|応募する)|抽選(?:申込|応募)(?:フォーム|はこちら)",
        _A.LOTTERY,
    ),
    Phrase(r"(?<!予約)(?<!販売)受付期間", _A.LOTTERY, _W),
    Phrase(r"応募する|抽選(?:申込|応募)", _A.LOTTERY, _W),
    # out of stock
    Phrase(r"在庫(?:が|は)?(?:ありません|ございません|無し|なし|無い|ない|切れ)", _A.OUT_OF_STOCK),
    Phrase(r"品切れ|品切|売り?切れ|売切|完売|欠品", _A.OUT_OF_STOCK),
    Phrase(
        r"再?入荷待ち|入荷未定|入荷予定(?:は)?(?:未定|なし|ありません)|次回入荷予定",
        _A.OUT_OF_STOCK,
    ),
    Phrase(r"予定数の販売を終了|販売休止|販売を一時停止|予約受付終了|予約終了", _A.OUT_OF_STOCK),
    Phrase(r"受付(?:は|を)?終了(?!日|予定|時刻|日時)|受付を締め?切|受付期間外", _A.OUT_OF_STOCK),
    Phrase(r"抽選(?:販売|受付|応募|申込)?(?:の受付)?(?:は)?(?:終了|締め?切)", _A.OUT_OF_STOCK),
    Phrase(r"ご注文いただけません|購入できません|販売期間外|販売開始前", _A.OUT_OF_STOCK),
    Phrase(r"在庫\s*(?:状況)?\s*[:：]?\s*[×✕✖]", _A.OUT_OF_STOCK),  # 在庫：× (parts shops' marks)
    Phrase(r"再?入荷(?:お知らせ|通知)|入荷したらお知らせ|入荷連絡", _A.OUT_OF_STOCK, _W),
    Phrase(r"在庫確認中|ただいま準備中", _A.OUT_OF_STOCK, _W),
    # preorder
    Phrase(r"予約受付中|予約販売|予約注文|予約商品|予約購入|予約受付|ご予約受付", _A.PREORDER),
    Phrase(r"予約する|予約注文する|ご予約|予約カートに入れる|予約へ進む", _A.PREORDER, _W),
    # backorder: orderable, ships later
    Phrase(r"お?取り?寄せ|受注生産|入荷次第(?:の)?(?:発送|出荷)", _A.BACKORDER),
    Phrase(
        r"通常\s*" + _RANGE + r"(?:営業日|日|週間|か月|ヶ月)(?:以内)?に?(?:発送|出荷)", _A.BACKORDER
    ),
    Phrase(r"出荷目安\s*[:：]?\s*(?:約)?\s*" + _RANGE + _LATER_UNIT, _A.BACKORDER),
    Phrase(_RANGE + _LATER_UNIT + r"(?:程度|前後|以内)?(?:で|に)?(?:出荷|発送)", _A.BACKORDER),
    Phrase(_LATER_DAYS + r"(?:程度|前後|以内)?(?:で|に)?(?:出荷|発送)", _A.BACKORDER),
    Phrase(r"メーカー直送|メーカー取寄", _A.BACKORDER, _W),
    # in stock: stock words, ship-soon times, buy controls
    Phrase(
        r"在庫(?:が|は)?(?:あり|有り|ある|ございます)|在庫僅少|在庫わずか|残りわずか", _A.IN_STOCK
    ),
    Phrase(r"残り\s*\d+\s*(?:点|個|枚|本|セット|台|着)|即納|即日(?:発送|出荷)", _A.IN_STOCK),
    Phrase(r"当日(?:発送|出荷)|翌日(?:発送|出荷)|翌営業日(?:発送|出荷)", _A.IN_STOCK),
    Phrase(r"在庫\s*(?:状況)?\s*[:：]?\s*[○◯◎△]", _A.IN_STOCK),  # 在庫：○ / △ (few left)
    Phrase(r"(?:[1-3]|24時間)\s*(?:営業日|日)?以内(?:に)?(?:発送|出荷)", _A.IN_STOCK),
    Phrase(
        r"カートに(?:入れる|追加)|買い物(?:かご|カゴ)に入れる|(?:かご|カゴ)に入れる|バスケットに入れる",
        _A.IN_STOCK,
    ),
    Phrase(r"購入手続きへ|今すぐ購入|ご購入手続きへ", _A.IN_STOCK),
    Phrase(r"注文する|購入する|ご購入はこちら", _A.IN_STOCK, _W),
    Phrase(r"出荷目安|お届け予定", _A.IN_STOCK, _W),
)

ENGLISH: tuple[Phrase, ...] = (
    Phrase(r"\bdiscontinued\b|no longer (?:available|sold|made|carried)", _A.DISCONTINUED),
    Phrase(
        r"\blottery (?:entry )?(?:is )?open\b|\benter the (?:lottery|draw|raffle)\b", _A.LOTTERY
    ),
    Phrase(r"sold[ -]?out|out[ -]of[ -]stock|not in stock|no stock", _A.OUT_OF_STOCK),
    Phrase(r"currently unavailable|temporarily unavailable", _A.OUT_OF_STOCK),
    Phrase(
        r"notify me when (?:available|in stock)|notify when available|auto notify", _A.OUT_OF_STOCK
    ),
    Phrase(r"email (?:me )?when (?:available|back in stock)|back in stock alert", _A.OUT_OF_STOCK),
    Phrase(
        r"when (?:it(?:'s| is) )?back in stock|(?:unavailable|not available) online",
        _A.OUT_OF_STOCK,
    ),
    Phrase(r"notify me|join (?:the )?wait ?list|coming soon|unavailable", _A.OUT_OF_STOCK, _W),
    Phrase(r"pre[ -]?order|pre[ -]?sale", _A.PREORDER),
    Phrase(r"back[ -]?order|ships in \d+\s*(?:-|to)\s*\d+ (?:days|weeks)", _A.BACKORDER),
    Phrase(r"usually ships within \d+\s*(?:-|to)\s*\d+ (?:weeks|months)", _A.BACKORDER),
    Phrase(r"\bin stock\b|only \d+ left|ready to ship|ships today", _A.IN_STOCK),
    Phrase(r"add to (?:cart|bag|basket)|buy (?:it )?now", _A.IN_STOCK),
    Phrase(r"\border now\b", _A.IN_STOCK, _W),
)

# Amazon's other European locales and shops writing like them.
EUROPEAN: tuple[Phrase, ...] = (
    Phrase(r"derzeit nicht verfügbar|nicht auf lager|ausverkauft", _A.OUT_OF_STOCK),
    Phrase(r"niet op voorraad|momenteel niet verkrijgbaar|niet beschikbaar", _A.OUT_OF_STOCK),
    Phrase(
        r"obecnie niedostępny|niedostępny|tillfälligt slut|inte i lager|stokta yok", _A.OUT_OF_STOCK
    ),
    Phrase(r"şu anda mevcut değil|tükendi", _A.OUT_OF_STOCK),
    Phrase(r"actuellement indisponible|en rupture de stock|épuisé|plus en stock", _A.OUT_OF_STOCK),
    Phrase(r"attualmente non disponibile|esaurito|non disponibile", _A.OUT_OF_STOCK),
    Phrase(r"no disponible|agotado|sin stock", _A.OUT_OF_STOCK),
    Phrase(r"fora de estoque|indisponível|esgotado", _A.OUT_OF_STOCK),
    Phrase(r"vorbestellbar|précommande|pre-?ordina|preventa|pré-venda", _A.PREORDER),
    Phrase(r"gewöhnlich versandfertig in \d+ bis \d+ (?:tagen|wochen|monaten)", _A.BACKORDER),
    Phrase(r"habituellement expédié sous \d+ à \d+ (?:jours|semaines|mois)", _A.BACKORDER),
    Phrase(
        r"(?:di solito )?spedito (?:di solito )?entro \d+(?:-| e )\d+ (?:giorni|settimane)",
        _A.BACKORDER,
    ),
    Phrase(r"normalmente se envía en \d+ (?:a|-) ?\d+ (?:días|semanas)", _A.BACKORDER),
    Phrase(r"geralmente enviado em \d+ (?:a|-) ?\d+ (?:dias|semanas)", _A.BACKORDER),
    Phrase(r"auf lager|en stock|disponibilità immediata|em estoque|op voorraad", _A.IN_STOCK),
    Phrase(r"\bdostępny\b|\bi lager\b|stokta var|stokta", _A.IN_STOCK),
    Phrase(
        r"in den einkaufswagen|ajouter au panier|aggiungi al carrello|añadir a la cesta",
        _A.IN_STOCK,
    ),
)

TABLES: tuple[tuple[Phrase, ...], ...] = (JAPANESE, ENGLISH, EUROPEAN)

# Sentences that only say what would happen, or speak of a kind of item in general:
# "在庫切れの場合はメールでご連絡します", "売り切れ次第終了",
# "予約商品と通常商品を同時にご注文の場合", "if sold out we refund". Cut before reading (bounded,
# linear).
CONDITIONAL = re.compile(
    r"(?:在庫切れ|品切れ|売り?切れ|完売|欠品|在庫(?:が|は)?(?:ない|なし|無い|ありません)|在庫あり"
    r"|再?入荷待ち|入荷未定|お?取り?寄せ|予約|sold ?out|out of stock)"
    r"\s*(?:の場合|の際|時は|時には|場合|となる場合|となった場合|になり次第|となり次第|次第|しだい"
    r"|の節|の商品は|商品は|の表示|表示|について)"
    r"|(?:if|when|once) (?:an? |the )?(?:item |product )?(?:is |goes |becomes )?"
    r"(?:sold out|out of stock)"
    r"|(?:在庫|販売)状況(?:により|によって)"
    r"|(?:予約|お?取り?寄せ|受注生産)商品(?:と|は|を|の場合|の際|について|につき|に関して)"
    r"|(?:在庫切れ|品切れ|売り?切れ|完売)(?:の|した)(?:サイズ|カラー|色|商品|アイテム|オプション)"
    r"|(?:sold out|out of stock) (?:sizes|colou?rs|items|options|variants)"
    r"|variant sold out or unavailable|sold out or unavailable",  # a theme's per-option note
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Group:
    state: Availability
    strong: re.Pattern[str] | None
    weak: re.Pattern[str] | None


def _compile(state: Availability, strength: Strength) -> re.Pattern[str] | None:
    parts = [p.pattern for t in TABLES for p in t if p.state is state and p.strength is strength]
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE) if parts else None


GROUPS: tuple[_Group, ...] = tuple(
    _Group(state, _compile(state, _S), _compile(state, _W)) for state in STATE_ORDER
)


def read_wording(norm: str, strength: Strength = Strength.WEAK) -> tuple[Availability, str] | None:
    """The state normalised text states and the phrase that said it (phrases of at least
    `strength`), None when it says nothing."""
    if not norm:
        return None
    text = CONDITIONAL.sub(" ", norm)
    for group in GROUPS:
        for pattern in (group.strong, group.weak if strength is _W else None):
            match = pattern.search(text) if pattern is not None else None
            if match:
                return group.state, match.group(0)
    return None
