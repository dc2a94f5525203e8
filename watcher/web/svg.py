"""Charts as inline SVG, drawn on the server: no script, no outside resource.

Only numbers and escaped labels go into the markup; colours come from the stylesheet's
`s-<state>` classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from markupsafe import Markup, escape

from watcher.core.model import Availability
from watcher.web.timeline import Band

WIDTH = 720
BAND_HEIGHT = 28
PRICE_HEIGHT = 120
PAD = 4

Label = Callable[[Availability], str]


def _x(moment: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    return round(WIDTH * (moment - start).total_seconds() / span, 1)


def timeline_svg(
    band_list: Sequence[Band],
    start: datetime,
    end: datetime,
    label: Label,
    fmt: Callable[[datetime], str],
) -> Markup:
    """One bar per band, its state and times in a tooltip."""
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {BAND_HEIGHT}" width="100%"'
        f' height="{BAND_HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for band in band_list:
        x0, x1 = _x(band.start, start, end), _x(band.end, start, end)
        tip = f"{label(band.state)} {fmt(band.start)} – {fmt(band.end)}"
        parts.append(
            f'<rect class="s-{band.state.value}" x="{x0}" y="0" width="{max(x1 - x0, 0.5)}"'
            f' height="{BAND_HEIGHT}"><title>{escape(tip)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def price_svg(points: Sequence[tuple[datetime, int]], start: datetime, end: datetime) -> Markup:
    """A stepped price line with its lowest and highest price written at the side."""
    if not points:
        return Markup("")
    low, high = min(p for _, p in points), max(p for _, p in points)
    span = (high - low) or 1

    def y(price: int) -> float:
        return round(PAD + (PRICE_HEIGHT - 2 * PAD) * (high - price) / span, 1)

    coords: list[str] = []
    for (moment, price), following in zip(points, [*points[1:], None], strict=True):
        x0 = _x(moment, start, end)
        x1 = _x(following[0], start, end) if following is not None else WIDTH
        coords += [f"{x0},{y(price)}", f"{x1},{y(price)}"]
    return Markup(
        f'<svg class="price" viewBox="0 0 {WIDTH + 80} {PRICE_HEIGHT}" width="100%"'
        f' height="{PRICE_HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline class="price-line" points="{" ".join(coords)}"/>'
        f'<text x="{WIDTH + 4}" y="{y(high) + 10}">¥{high:,}</text>'
        f'<text x="{WIDTH + 4}" y="{y(low)}">¥{low:,}</text></svg>'
    )


def strip_svg(strip: Sequence[Availability | None], label: Label) -> Markup:
    """Seven small squares, one per day, today on the right."""
    size, gap = 12, 2
    width = len(strip) * (size + gap)
    parts = [
        f'<svg class="strip" viewBox="0 0 {width} {size}" width="{width}" height="{size}"'
        ' role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, state in enumerate(strip):
        css = f"s-{state.value}" if state is not None else "s-none"
        tip = label(state) if state is not None else "-"
        parts.append(
            f'<rect class="{css}" x="{index * (size + gap)}" y="0" width="{size}"'
            f' height="{size}"><title>{escape(tip)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
