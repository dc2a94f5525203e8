"""Amazon product pages, Amazon.co.jp first, any Amazon locale's buy box alike.

Only the buy box decides. Amazon pages carry "Currently unavailable" and "Pre-order" strings for
other variations and other offers in scripts and side widgets, so this adapter reads a few known
elements (#availability, #outOfStock, the cart and buy-now buttons, the seller features and the
buy box price) and never searches the page's whole text.

The buy box's witnesses are reconciled like any page's: "No featured offers" / "See all buying
options" (おすすめ出品がありません, すべての出品を見る, in any locale) anywhere in the buy box
means no offer is featured, so the page is not buyable even beside a leftover cart button;
一時的に在庫切れ is a backorder only next to a cart or buy-now button; ship-later wording of any
locale (通常2～3日以内に発送, "Gewöhnlich versandfertig in 2 bis 3 Tagen") is a backorder. A block
page (captcha, dogs, access denied) is `unknown` before anything is read. A struck list price
(参考価格) is never the price.

The other-sellers summary ("新品 (5)点：￥89,800より", "Used (3) from $20.00") is kept as offers
marked `summary=True`: shown to people, never bought. It is a "from" price of sellers one has not
chosen, so it must never make a sold-out buy box buyable nor keep a watch from re-arming; the
observation's own state, price and seller are the buy box's alone (a summary price printed inside
the buy box is not its price).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from watcher.core.model import Availability, FetchPlan, ItemCondition, Observation, Offer, Page
from watcher.stores._base import HostLimits, StoreAdapter
from watcher.stores._blocked import screened
from watcher.stores._text import (
    classify_wording,
    clean_title,
    normalise,
    parse_amount,
    quantity_hint,
)

NAME = "amazon_jp"

HOSTS = (
    "*.amazon.co.jp",
    "*.amazon.com",
    "*.amazon.co.uk",
    "*.amazon.de",
    "*.amazon.fr",
    "*.amazon.it",
    "*.amazon.es",
    "*.amazon.nl",
    "*.amazon.ca",
    "*.amazon.com.mx",
    "*.amazon.com.br",
    "*.amazon.com.au",
    "*.amazon.in",
    "*.amazon.sa",
    "*.amazon.ae",
    "*.amazon.sg",
    "*.amazon.pl",
    "*.amazon.se",
    "*.amazon.com.tr",
    "*.amazon.com.be",
    "*.amazon.eg",
)

# Amazon blocks eager clients quickly: one request at a time, a pause between them.
LIMITS = HostLimits(
    concurrency=1, min_delay=timedelta(seconds=3), min_interval=timedelta(minutes=1)
)

_A = Availability
# "No featured offers", in any locale: Amazon picked no seller for the buy box, so there is no
# offer to buy here, only other sellers' (kept as the summary).
_NO_FEATURED_WORDING = (
    r"available from these sellers|こちらからご購入いただけます|see all buying options"
    r"|no featured offers|おすすめ出品(?:が|は)?ありません|すべての出品を見る"
    r"|すべての購入オプションを見る"
    r"|keine empfohlenen angebote|alle kaufoptionen anzeigen|aucune offre en vedette"
    r"|voir toutes les options d'achat|nessuna offerta in evidenza"
    r"|visualizza tutte le opzioni di acquisto|ninguna oferta destacada"
    r"|ver todas las opciones de compra|nenhuma oferta em destaque|ver todas as opções de compra"
)
_NO_FEATURED = re.compile(_NO_FEATURED_WORDING, re.IGNORECASE)
# Sale by invitation: the buy box offers an application ("招待リクエスト"), not a purchase; one
# may buy only once invited, so it reads as a lottery, whatever cart button is left beside it.
_INVITATION = re.compile(
    r"招待(?:を)?リクエスト(?![^。]{0,12}(?:終了|締め?切))|request (?:an )?invitation",
    re.IGNORECASE,
)
# The buy box in today's and older layouts: "no featured offer" anywhere in it decides.
_BUY_BOX = ("#buybox", "#desktop_buybox", "#buyBoxAccordion", "#exports_desktop_buybox")
_TEMPORARILY_OUT = "temporarily_out"  # orderable (backorder) only when a cart button is there
_AVAILABILITY_MAX = 2_000  # characters of #availability read (a real one says a sentence)
_BUY_BOX_MAX = 20_000  # characters of the buy box searched for "no featured offers"
_NO_FEATURED_OFFER = "no_featured_offer"

# Amazon's own buy-box wording, tried before the shared rules. Order matters: a negative phrase
# often contains a positive one ("back in stock" in an out-of-stock sentence, متوفر in غير متوفر).
_AMAZON_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), verdict)
    for pattern, verdict in (
        (
            r"一時的に在庫切れ|temporarily out of stock"
            r"|temporariamente (?:fora de estoque|indisponível)|derzeit nicht auf lager"
            r"|momentanément en rupture de stock|temporaneamente non disponibile"
            r"|temporalmente sin stock|tijdelijk niet op voorraad|tymczasowo niedostępny",
            _TEMPORARILY_OUT,
        ),
        (r"お取り扱いできません", _A.DISCONTINUED.value),
        (
            r"現在在庫切れ|在庫切れ|currently unavailable|out of stock|fora de estoque|indisponível"
            r"|não disponível|actuellement indisponible|derzeit nicht verfügbar|non disponibile"
            r"|no disponible|غير متوفر|niet op voorraad|momenteel niet verkrijgbaar"
            r"|obecnie niedostępny|tillfälligt slut|inte i lager|stokta yok|şu anda mevcut değil",
            _A.OUT_OF_STOCK.value,
        ),
        (_NO_FEATURED_WORDING, _NO_FEATURED_OFFER),
        (
            r"予約受付中|予約注文|発売予定日|pre-?order|will be released on|pré-venda",
            _A.PREORDER.value,
        ),
        (
            r"通常\s*\d+\s*(?:[～〜~\-]\s*\d+\s*)?(?:営業日|日|週間|か月|ヶ月)以内に発送"
            r"|usually (?:ships|dispatched) within|in stock on "
            r"|gewöhnlich versandfertig in|habituellement expédié sous|di solito spedito entro"
            r"|normalmente se envía en|geralmente enviado em|meestal verzonden binnen",
            _A.BACKORDER.value,
        ),
        (
            r"在庫あり|残り\s*\d+\s*点|in stock|only \d+ left|em estoque|en stock|auf lager"
            r"|disponibile|disponible|متوفر|op voorraad|\bdostępny\b|\bi lager\b|stokta",
            _A.IN_STOCK.value,
        ),
    )
)

_CART_BUTTONS = (
    "#add-to-cart-button",
    "#add-to-cart-button-ubb",
    '[id="submit.add-to-cart"]',
    'input[name="submit.add-to-cart"]',
    "#add-to-cart-button-preorder",
)
_BUY_NOW_BUTTONS = ("#buy-now-button", '[id="submit.buy-now"]', "#buyNow")

# Where the price a buyer pays sits, best first. Side widgets (sponsored cards, other variations,
# the "other sellers" link) also carry .a-price, so the buy box and the core price block come first.
_PRICE_SELECTORS = (
    "#tp_price_block_total_price_ww",
    "#corePrice_feature_div .a-price",
    "#corePriceDisplay_desktop_feature_div .priceToPay",
    "#corePriceDisplay_mobile_feature_div .priceToPay",
    "#apex_desktop .apex-pricetopay-value",
    "#price_inside_buybox",
    "#newBuyBoxPrice",
    "#priceblock_ourprice",
    "#priceblock_dealprice",
    "#usedBuySection .offer-price",
    "#usedBuySection .a-color-price",
    "#buybox .a-price",
)

# The other-sellers summary widgets: their prices are "from" prices, never the buy box's.
_SUMMARY_WIDGETS = ("#olp_feature_div", "#olpLinkWidget_feature_div", "#usedAndNewBuyBox")
_SUMMARY_IDS = frozenset(
    {"olp_feature_div", "olpLinkWidget_feature_div", "usedAndNewBuyBox", "olp", "aod-ingress-link"}
)

_PRODUCT_MARKERS = (
    "#productTitle",
    "#dp",
    "#ppd",
    "#buybox",
    "#availability",
    "#outOfStock",
    "#add-to-cart-button",
    "input#ASIN",
)
_SEARCH_MARKERS = (".s-main-slot", ".s-result-item", '[data-component-type="s-search-result"]')

_ASIN_IN_PATH = re.compile(
    r"/(?:dp|gp/product|gp/aw/d|exec/obidos/ASIN|o/ASIN|product)/([A-Z0-9]{10})(?:[/?]|$)",
    re.IGNORECASE,
)

_OFFICIAL_SELLER = re.compile(
    r"amazon(?:\.[a-z]{2,3}){0,2}(?: services.*| export sales.*| japan.*)?", re.IGNORECASE
)

# (symbol, ISO code), longest symbols first so "R$" is not read as "$".
_CURRENCY_SYMBOLS = (
    ("R$", "BRL"),
    ("CDN$", "CAD"),
    ("MX$", "MXN"),
    ("A$", "AUD"),
    ("S$", "SGD"),
    ("SAR", "SAR"),
    ("AED", "AED"),
    ("₹", "INR"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("￥", "JPY"),
    ("円", "JPY"),
    ("$", "USD"),
)
_HOST_CURRENCY = {
    "co.jp": "JPY",
    "com": "USD",
    "co.uk": "GBP",
    "de": "EUR",
    "fr": "EUR",
    "it": "EUR",
    "es": "EUR",
    "nl": "EUR",
    "ca": "CAD",
    "com.mx": "MXN",
    "com.br": "BRL",
    "com.au": "AUD",
    "in": "INR",
    "sa": "SAR",
    "ae": "AED",
    "sg": "SGD",
    "pl": "PLN",
    "se": "SEK",
    "com.tr": "TRY",
    "com.be": "EUR",
    "eg": "EGP",
}

_SHIPS_LABEL = re.compile(
    r"出荷元|ships from|enviado|shipper|expédié|versand|dispatches from", re.I
)
_SELLER_LABEL = re.compile(r"販売元|sold by|vendido|seller|vendu|verkäufer|verkauf", re.I)


@dataclass(frozen=True, slots=True)
class BuyBox:
    """What the buy box says, read once; the verdict is decided from this alone."""

    availability: str
    has_cart: bool
    has_buy_now: bool
    out_of_stock_box: bool
    used_only: bool
    no_featured_offer: str | None = None  # the phrase, when the buy box says so anywhere
    invitation: str | None = None  # the phrase, when the buy box offers an invitation request


def product_request(url: str) -> FetchPlan:
    """The canonical /dp/ASIN URL (tracking and slug dropped), asking for the shop's language."""
    parts = urlsplit(url)
    match = _ASIN_IN_PATH.search(parts.path)
    headers = {"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"} if _is_jp(parts.hostname) else {}
    if not match:
        return FetchPlan(url=url, headers=headers)
    host = parts.hostname or "www.amazon.co.jp"
    return FetchPlan(url=f"https://{host}/dp/{match.group(1).upper()}", headers=headers)


def parse_product(page: Page) -> Observation:
    """Read an Amazon product page's buy box into an observation."""
    tree, early = screened(page, NAME)
    if early is not None:
        return early
    if not _has_any(tree, _PRODUCT_MARKERS):
        if _has_any(tree, _SEARCH_MARKERS):
            return _unknown(page, "amazon:search results page, not a product")
        return _unknown(page, "amazon:not a product page")
    return _read_product(page, tree)


def _read_product(page: Page, tree: LexborHTMLParser) -> Observation:
    box = _read_buy_box(tree)
    state, reason = decide(box)
    price, currency = _price(tree, page.url)
    seller, ships_from = _seller_and_ships_from(tree)
    title = _title(tree)
    official = _is_official(seller) if seller else None
    condition = _condition(box, title)
    main = Offer(
        store=NAME,
        url=page.url,
        state=state,
        price=price,
        currency=currency,
        title=title,
        seller=seller,
        official=official,
        condition=condition,
    )
    others = _other_sellers(tree, page.url, title, currency)
    return Observation(
        state=state,
        reason=reason,
        price=price,
        currency=currency,
        title=title,
        seller=seller,
        ships_from=ships_from,
        official=official,
        condition=condition,
        quantity=quantity_hint(box.availability) if state is _A.IN_STOCK else None,
        offers=(main, *others) if others else (),
        store=NAME,
        url=page.url,
    )


def decide(box: BuyBox) -> tuple[Availability, str]:
    """The buy box's verdict and the rule that gave it."""
    if box.no_featured_offer is not None:
        return _A.OUT_OF_STOCK, f"amazon:no featured offer ({box.no_featured_offer})"
    if box.invitation is not None:
        return _A.LOTTERY, f"amazon:invitation ({box.invitation})"
    worded = _classify(box.availability)
    orderable = box.has_cart or box.has_buy_now
    if worded is not None:
        verdict, phrase = worded
        where = f"amazon:#availability {phrase}"
        if verdict == _TEMPORARILY_OUT:
            return (_A.BACKORDER if orderable else _A.OUT_OF_STOCK), where
        if verdict == _NO_FEATURED_OFFER:
            return _A.OUT_OF_STOCK, f"amazon:no featured offer ({phrase})"
        return _A(verdict), where
    if box.out_of_stock_box and not orderable:
        return _A.OUT_OF_STOCK, "amazon:#outOfStock"
    if box.has_cart:
        return _A.IN_STOCK, "amazon:#add-to-cart-button"
    if box.has_buy_now:
        return _A.IN_STOCK, "amazon:#buy-now-button"
    return _A.UNKNOWN, "amazon:no signal"


def _classify(text: str) -> tuple[str, str] | None:
    if not text:
        return None
    text = text[:_AVAILABILITY_MAX]  # a hostile page's giant #availability reads no slower
    for pattern, verdict in _AMAZON_RULES:
        match = pattern.search(text)
        if match:
            return verdict, match.group(0)
    shared = classify_wording(text)
    return (shared[0].value, shared[1]) if shared else None


def _read_buy_box(tree: LexborHTMLParser) -> BuyBox:
    availability = _text_of(tree, "#availability") or _text_of(tree, "#outOfStock")
    used_section = _has_any(tree, ("#usedOnlyBuybox", "#usedBuySection"))
    new_offer = _has_any(tree, ("#add-to-cart-button", "#newAccordionRow", "#newBuyBoxPrice"))
    buy_box = _BuyBoxText(tree)
    return BuyBox(
        availability=availability,
        has_cart=_has_any(tree, _CART_BUTTONS),
        has_buy_now=_has_any(tree, _BUY_NOW_BUTTONS),
        out_of_stock_box=tree.css_first("#outOfStock") is not None,
        used_only=used_section and not new_offer,
        no_featured_offer=_buy_box_phrase(buy_box, _NO_FEATURED),
        invitation=_buy_box_phrase(buy_box, _INVITATION),
    )


class _BuyBoxText:
    """The text of each part of the buy box (`_BUY_BOX`, in order), each part found and read
    once, when a search first reaches it."""

    def __init__(self, tree: LexborHTMLParser) -> None:
        self._tree = tree
        self._read: list[str | None] = []  # None: no such part

    def __iter__(self) -> Iterator[str]:
        for index, selector in enumerate(_BUY_BOX):
            if index == len(self._read):
                node = self._tree.css_first(selector)
                self._read.append(_clean(node)[:_BUY_BOX_MAX] if node is not None else None)
            text = self._read[index]
            if text is not None:
                yield text


def _buy_box_phrase(buy_box: _BuyBoxText, phrase: re.Pattern[str]) -> str | None:
    """A phrase ("no featured offers", an invitation request) anywhere in the buy box (its
    other-sellers summary is still read apart, by `_other_sellers`)."""
    for text in buy_box:
        found = phrase.search(text)
        if found is not None:
            return found.group(0)
    return None


def _condition(box: BuyBox, title: str | None) -> ItemCondition:
    if box.used_only:
        return ItemCondition.USED
    if title and re.search(r"整備済み|\(renewed\)|\brenewed\b", title, re.IGNORECASE):
        return ItemCondition.REFURBISHED
    return ItemCondition.NEW


def _price(tree: LexborHTMLParser, url: str) -> tuple[int | None, str | None]:
    host_currency = _host_currency(url)
    for selector in _PRICE_SELECTORS:
        for node in tree.css(selector):
            if _in_summary(node) or _is_reference_price(node):
                continue
            text = _price_text(node)
            currency = _currency_of(text, host_currency)
            amount = _amount(text, currency)
            if amount:
                return amount, currency
    return None, host_currency or "JPY"


def _is_reference_price(node: LexborNode) -> bool:
    """A struck list price (参考価格, "List Price", "Was"): `a-text-price` / `data-a-strike`,
    or inside the basis-price line."""
    attrs = node.attributes
    if "a-text-price" in (attrs.get("class") or "") or attrs.get("data-a-strike") == "true":
        return True
    parent = node.parent
    for _ in range(3):
        if parent is None:
            return False
        if "basisPrice" in (parent.attributes.get("class") or ""):
            return True
        parent = parent.parent
    return False


def _in_summary(node: LexborNode) -> bool:
    parent: LexborNode | None = node
    while parent is not None:
        if parent.attributes.get("id") in _SUMMARY_IDS:
            return True
        parent = parent.parent
    return False


def _price_text(node: LexborNode) -> str:
    """An .a-price's amount: the screen-reader copy when filled, else the visible pieces."""
    offscreen = node.css_first(".a-offscreen")
    if offscreen is not None and re.search(r"\d", offscreen.text()):
        return normalise(offscreen.text())
    pieces = [
        piece.text()
        for cls in (".a-price-symbol", ".a-price-whole", ".a-price-fraction")
        if (piece := node.css_first(cls)) is not None
    ]
    return normalise("".join(pieces)) if pieces else normalise(node.text())


def _currency_of(text: str, host_currency: str | None) -> str | None:
    for symbol, code in _CURRENCY_SYMBOLS:
        if symbol in text:
            # "$" alone is also the Canadian, Mexican and Australian sign: the host knows better.
            if code == "USD" and host_currency in {"CAD", "MXN", "AUD", "SGD"}:
                return host_currency
            return code
    return host_currency


def _amount(text: str, currency: str | None) -> int | None:
    """The amount in a price text, reading "796,81" and "2.020,21" as decimal commas."""
    match = re.search(r"\d[\d.,\s]*", text)
    if not match:
        return None
    number = re.sub(r"\s", "", match.group(0)).rstrip(".,")
    if currency != "JPY" and re.search(r",\d{2}$", number):
        number = number.replace(".", "").replace(",", ".")
    else:
        number = number.replace(",", "")
    return parse_amount(number, currency)


def _host_currency(url: str) -> str | None:
    host = (urlsplit(url).hostname or "").lower()
    if "amazon." not in host:
        return None
    return _HOST_CURRENCY.get(host.split("amazon.", 1)[1])


def _seller_and_ships_from(tree: LexborHTMLParser) -> tuple[str | None, str | None]:
    found = _offer_display_features(tree)
    if found == (None, None):
        found = _tabular_buy_box(tree)
    if found == (None, None):
        found = _merchant_info(_text_of(tree, "#merchant-info"))
    seller, ships_from = found
    if seller is None:
        seller = _text_of(tree, "#sellerProfileTriggerId") or None
    return seller, ships_from


def _offer_display_features(tree: LexborHTMLParser) -> tuple[str | None, str | None]:
    """Today's layout: labelled features, e.g. 出荷元 Amazon / 販売元 Amazon.co.jp."""
    seller = _feature_value(tree, "#merchantInfoFeature_feature_div")
    ships_from = _feature_value(tree, "#fulfillerInfoFeature_feature_div")
    label = _text_of(tree, "#merchantInfoFeature_feature_div .offer-display-feature-label")
    if ships_from is None and seller and _SHIPS_LABEL.search(label):
        ships_from = seller  # one combined label: "Enviado / Vendido", "Shipper / Seller"
    return seller, ships_from


def _feature_value(tree: LexborHTMLParser, container: str) -> str | None:
    node = tree.css_first(f"{container} .offer-display-feature-text-message")
    return _clean(node) if node is not None else None


def _tabular_buy_box(tree: LexborHTMLParser) -> tuple[str | None, str | None]:
    """The 2021-2023 layout: rows named by a `tabular-attribute-name` attribute."""
    seller = ships_from = None
    for node in tree.css("#tabular-buybox [tabular-attribute-name]"):
        label = node.attributes.get("tabular-attribute-name") or ""
        value = _clean(node) or None
        if ships_from is None and _SHIPS_LABEL.search(label):
            ships_from = value
        if seller is None and _SELLER_LABEL.search(label):
            seller = value
    return seller, ships_from


_MERCHANT_SENTENCES = (
    (re.compile(r"この商品は、\s*(.+?)\s*が販売、発送します"), (1, 1)),
    (re.compile(r"この商品は、\s*(.+?)\s*が販売し、\s*(.+?)\s*が発送します"), (1, 2)),
    (re.compile(r"ships from and sold by\s+(.+?)\.?$", re.IGNORECASE), (1, 1)),
    (re.compile(r"sold by\s+(.+?)\s+and (?:fulfilled|shipped) by\s+(.+?)\.?$", re.I), (1, 2)),
)


def _merchant_info(text: str) -> tuple[str | None, str | None]:
    """The oldest layout: one sentence in #merchant-info."""
    for pattern, (seller_group, ships_group) in _MERCHANT_SENTENCES:
        match = pattern.search(text)
        if match:
            return match.group(seller_group), match.group(ships_group)
    return None, None


def _is_official(seller: str) -> bool:
    """Amazon itself (Amazon.co.jp, Amazon.com, ...) is the official seller."""
    return _OFFICIAL_SELLER.fullmatch(normalise(seller)) is not None


_SUMMARY = re.compile(
    r"(new\s*(?:&|and)\s*used|新品・中古品|new|used|新品|中古品?)\s*\((\d+)\)\s*点?\s*[:：]?\s*"
    r"(?:from\s+)?(\D{0,4}\d[\d.,]*)",
    re.IGNORECASE,
)


def _other_sellers(
    tree: LexborHTMLParser, url: str, title: str | None, currency: str | None
) -> list[Offer]:
    """The other-sellers summary ("新品 (5)点：￥12,800より", "Used (3) from $20.00") as summary
    offers (see the module docstring). A mixed "New & used" summary is left out: its condition
    cannot be told.
    """
    text = " ".join(_text_of(tree, selector) for selector in _SUMMARY_WIDGETS)
    offers: dict[ItemCondition, Offer] = {}
    for match in _SUMMARY.finditer(text):
        word = match.group(1).casefold()
        if "&" in word or "and" in word or "・" in word:
            continue
        condition = ItemCondition.NEW if word in {"new", "新品"} else ItemCondition.USED
        price = _amount(match.group(3), _currency_of(match.group(3), currency))
        offers.setdefault(
            condition,
            Offer(
                store=NAME,
                url=url,
                state=_A.IN_STOCK,
                price=price,
                currency=currency,
                title=title,
                condition=condition,
                summary=True,
            ),
        )
    return list(offers.values())


def _title(tree: LexborHTMLParser) -> str | None:
    for selector in ("#productTitle", "#title", "#title_feature_div h1"):
        text = _text_of(tree, selector)
        if text:
            return clean_title(text)
    meta = tree.css_first('meta[name="title"]') or tree.css_first('meta[property="og:title"]')
    if meta is not None and meta.attributes.get("content"):
        return clean_title(meta.attributes.get("content"))
    title = tree.css_first("title")
    return clean_title(title.text()) if title is not None else None


def _text_of(tree: LexborHTMLParser, selector: str) -> str:
    node = tree.css_first(selector)
    return _clean(node) if node is not None else ""


def _clean(node: LexborNode) -> str:
    """The node's visible text: scripts and styles inside it dropped, whitespace collapsed."""
    for hidden in node.css("script, style, noscript, template"):
        hidden.decompose()
    return normalise(node.text(separator=" "))


def _has_any(tree: LexborHTMLParser, selectors: tuple[str, ...]) -> bool:
    """Whether any of `selectors` matches: one search of the tree for all of them."""
    return tree.css_first(", ".join(selectors)) is not None


_LAYOUT_MARKUP = ('id="dp-container"', 'id="centerCol"', 'id="dp"')
_ASSET_HOSTS = ("m.media-amazon.com", "images-fe.ssl-images-amazon.com")
_ASSET_HOSTS_HOLD = "-amazon.com"  # in each asset host: one search rules both out
_ASSETS_WITHIN = 400_000  # characters of the page's head where its asset hosts are looked for


def recognise(page: Page) -> bool:
    """An Amazon product page saved or served from elsewhere: Amazon's assets and its dp layout."""
    text = page.text
    # Searched in place: a slice of the page's head would copy it first.
    in_head = text.find(_ASSET_HOSTS_HOLD, 0, _ASSETS_WITHIN) >= 0 and any(
        text.find(m, 0, _ASSETS_WITHIN) >= 0 for m in _ASSET_HOSTS
    )
    return in_head and any(m in text for m in _LAYOUT_MARKUP)


def _is_jp(host: str | None) -> bool:
    return bool(host) and (host or "").lower().rstrip(".").endswith("amazon.co.jp")


def _unknown(page: Page, reason: str) -> Observation:
    return Observation.unknown(reason, store=NAME, url=page.url)


ADAPTER = StoreAdapter(
    name=NAME,
    parse_product=parse_product,
    hosts=HOSTS,
    product_request=product_request,
    recognise=recognise,
    limits=LIMITS,
)
