"""Other products' blocks are recognised by walking up from a node, and stripped on request."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from watcher.stores._asides import Asides, strip_recommendations

PAGE = """<html><body><div id="wrap">
<div class="item"><h1>木のスプーン</h1><p class="price">¥1,200</p>
<a id="js_m_submitRelated" class="cartBtn">カートに入れる</a></div>
<div class="related-items"><p class="stock one">SOLD OUT</p></div>
<ul itemscope itemtype="https://schema.org/ItemList"><li class="two">在庫切れ</li></ul>
<h2>この商品を見た人はこんな商品も見ています</h2>
<div class="cards"><p class="three">売り切れ</p></div>
<section><h2>おすすめ</h2></section>
</div></body></html>"""


def test_nodes_in_other_products_blocks_are_asides() -> None:
    tree = LexborHTMLParser(PAGE)
    asides = Asides.of(tree)
    for selector in (".one", ".two", ".three"):
        node = tree.css_first(selector)
        assert node is not None and asides.holds(node), selector


def test_the_product_its_controls_and_its_wrapper_are_not() -> None:
    tree = LexborHTMLParser(PAGE)
    asides = Asides.of(tree)
    for selector in ("h1", ".price", "#js_m_submitRelated", "#wrap"):
        node = tree.css_first(selector)
        assert node is not None and not asides.holds(node), selector


def test_strip_removes_them_and_keeps_the_product() -> None:
    tree = LexborHTMLParser(PAGE)
    strip_recommendations(tree)
    text = tree.body.text() if tree.body is not None else ""
    assert "SOLD OUT" not in text and "在庫切れ" not in text and "売り切れ" not in text
    assert "木のスプーン" in text and "カートに入れる" in text
