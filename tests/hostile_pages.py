"""Pages shaped to make a parser slow, each built to about a given size in characters.

Each shape is a structure a shop owner who writes their own HTML (a BASE or Shopify shop page)
could serve; none states a buyable product, so a sane reading of any of them is not buyable.
Used by `tests/test_hostile_pages.py` (growth ratios) and `bench/parse.py` (figures).
"""

from __future__ import annotations

from collections.abc import Callable

HEAD = "<!DOCTYPE html><html><head><title>木製ブロック</title></head><body><h1>木製ブロック</h1>"
TAIL = "</body></html>"


def _fill(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


def price_digits(size: int) -> str:
    """A price label followed by one long run of digits, in a price element and in the text."""
    digits = "1" * (size // 2)
    return f'{HEAD}<p class="price">販売価格 {digits}</p><p>価格 ¥{digits}</p>{TAIL}'


def price_groups(size: int) -> str:
    """Thousands groups that never end: 1,111,111,... with no yen sign after them."""
    groups = _fill(",111", size // 2)
    return f'{HEAD}<p class="price">販売価格 1{groups}</p><p>特価 ¥1{groups}</p>{TAIL}'


def many_yen(size: int) -> str:
    """A single price element holding a yen amount over and over."""
    return f'{HEAD}<div class="price">{_fill("¥1,980 ", size)}</div>{TAIL}'


def deep_divs(size: int) -> str:
    return HEAD + _fill("<div>", size) + "木製ブロック" + TAIL


def deep_spans_then_blocks(size: int) -> str:
    """Inline elements nested deep, then block elements, each of which walks the open stack."""
    return HEAD + _fill("<span>", size // 2) + _fill("<p>x</p>", size // 2) + TAIL


def deep_lists(size: int) -> str:
    return HEAD + _fill("<ul><li>", size) + TAIL


def nested_microdata(size: int) -> str:
    """Product and Offer scopes nested in each other, with names and prices but no state."""
    unit = (
        '<div itemscope itemtype="https://schema.org/Product"><span itemprop="name">x</span>'
        '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
        '<span itemprop="price">1</span>'
    )
    return HEAD + _fill(unit, size) + TAIL


def sibling_microdata(size: int) -> str:
    """One product with a great many offers that state no availability."""
    offer = (
        '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
        '<span itemprop="price">1980</span></div>'
    )
    return (
        f'{HEAD}<div itemscope itemtype="https://schema.org/Product">'
        f'<span itemprop="name">木製ブロック</span>{_fill(offer, size)}</div>{TAIL}'
    )


def far_microdata_props(size: int) -> str:
    """A product whose name props all belong to a nested scope deep below it: each is tested
    for whether the product owns it."""
    props = _fill('<span itemprop="name">x</span>', size)
    return (
        f'{HEAD}<div itemscope itemtype="https://schema.org/Product"><div itemscope>'
        f"{'<div>' * 200}{props}</div></div>{TAIL}"
    )


def unclosed_formatting(size: int) -> str:
    """Formatting elements left open by a misnested end tag, each distinct (no merging)."""
    parts, total, index = [], 0, 0
    while total < size:
        part = f"<p><b id=b{index}></p>"
        parts.append(part)
        total += len(part)
        index += 1
    return HEAD + "".join(parts) + "<p>x</p>" + TAIL


def many_attributes(size: int) -> str:
    names = " ".join(f"a{i}" for i in range(size // 6))
    return f"{HEAD}<div {names}>x</div>{TAIL}"


def long_attribute(size: int) -> str:
    return f'{HEAD}<div class="stock {"a" * size}">x</div>{TAIL}'


def many_jsonld(size: int) -> str:
    script = (
        '<script type="application/ld+json">{"@type":"Product","name":"x",'
        '"offers":{"@type":"Offer","price":"1"}}</script>'
    )
    return HEAD + _fill(script, size) + TAIL


def huge_jsonld(size: int) -> str:
    items = _fill('{"@type":"Thing","name":"x"},', size)
    return f'{HEAD}<script type="application/ld+json">[{items}{{}}]</script>{TAIL}'


def deep_jsonld(size: int) -> str:
    depth = size // 8
    body = '{"a":' * depth + "1" + "}" * depth
    return f'{HEAD}<script type="application/ld+json">{body}</script>{TAIL}'


def sibling_elements(size: int) -> str:
    return HEAD + _fill('<div class="stock">x</div>', size) + TAIL


def sibling_controls(size: int) -> str:
    """Very many controls: a listing's worth and more, none of them a stock word."""
    return HEAD + _fill('<button class="cart">詳細を見る</button>', size) + TAIL


def long_word(size: int) -> str:
    return f"{HEAD}<p>{'あ' * size}</p>{TAIL}"


def many_scripts(size: int) -> str:
    return HEAD + _fill("<script>var a = 1;</script>", size) + TAIL


def unclosed_tags(size: int) -> str:
    return HEAD + _fill("<p><li><td><option><a><i>", size) + TAIL


def stock_words_text(size: int) -> str:
    """One huge text node, sold-out wording first, then buy wording forever."""
    return f"{HEAD}<p>売り切れ {_fill('在庫あり カートに入れる ', size)}</p>{TAIL}"


SHAPES: dict[str, Callable[[int], str]] = {
    "price_digits": price_digits,
    "price_groups": price_groups,
    "many_yen": many_yen,
    "deep_divs": deep_divs,
    "deep_spans_then_blocks": deep_spans_then_blocks,
    "deep_lists": deep_lists,
    "nested_microdata": nested_microdata,
    "sibling_microdata": sibling_microdata,
    "far_microdata_props": far_microdata_props,
    "unclosed_formatting": unclosed_formatting,
    "many_attributes": many_attributes,
    "long_attribute": long_attribute,
    "many_jsonld": many_jsonld,
    "huge_jsonld": huge_jsonld,
    "deep_jsonld": deep_jsonld,
    "sibling_elements": sibling_elements,
    "sibling_controls": sibling_controls,
    "long_word": long_word,
    "many_scripts": many_scripts,
    "unclosed_tags": unclosed_tags,
    "stock_words_text": stock_words_text,
}
