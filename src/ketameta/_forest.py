"""The layout engine of the forest plots: a table of text columns around a plot panel.

:mod:`ketameta.plot` turns each result into a :class:`Table` (columns, rows, the marks of
each row); :func:`draw` measures every text, sizes the figure to fit them (labels are never
cut), places the columns left and right of the plot panel, and draws squares (areas
proportional to the weights), diamonds, the prediction interval, the axis with its ticks
and the "favours" labels.

All text is placed in inches from the plot panel's edges (x) and in rows (y, the panel's
data coordinates), so the table stays aligned with the marks whatever the figure's size.
Every artist carries a ``gid`` naming what it is (``"square"``, ``"diamond"``, ``"pi"``,
``"ci"``, ``"refline"``, ``"cell:<column>"``, ``"span"``, ...), for tests and for users who
restyle a figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from ._typing import IntArray

#: text size (points) of the table, and the height of a row in inches
FONT_SIZE = 9.0
ROW_HEIGHT = 0.22
#: gap between two columns, and the width of the plot panel (inches)
GAP = 0.16
PART_GAP = 0.03  # between the parts of a number column ("0.41" "[0.13," "1.26]")
PANEL_WIDTH = 2.6
#: the side of the largest square, as a fraction of the row height
MAX_SQUARE = 0.82
#: the side (points) below which a square is drawn at this side, so that every study's
#: estimate stays visible (a weight under 5.3% of the largest, in a 0.22-inch row)
MIN_SQUARE_PT = 3.0
#: space below the panel for the axis, its tick labels, the favours labels and a title
AXIS_SPACE = 0.36
FAVOURS_SPACE = 0.2
XLABEL_SPACE = 0.2
MARGIN = 0.2


@attrs.define
class Column:
    """A text column: its key, header (a second line above it: `group`, shared by the
    adjacent columns of the same group), alignment and side of the plot panel."""

    key: str
    header: str
    side: str = "left"  # "left" or "right" of the panel
    align: str = "left"  # "left", "right" or "center"
    group: str = ""
    #: parts of a numeric column, each right-aligned (estimate | [lower, | upper])
    parts: int = 1


@attrs.define
class Row:
    """A row of the table: the texts of its cells and what the panel draws in it.

    ``kind``: ``"study"`` (a square and its CI), ``"diamond"`` (a pooled estimate),
    ``"pi"`` (a prediction interval), ``"marker"`` (a point estimate without weight, e.g.
    leave-one-out), ``"text"`` (nothing drawn), ``"span"`` (one text from the left edge
    across the columns: heterogeneity, tests), ``"header"`` (a bold subgroup title).
    """

    kind: str
    cells: dict[str, Any] = attrs.field(factory=dict)
    est: float = math.nan  # (est, lo, hi: on the drawn scale)
    lo: float = math.nan
    hi: float = math.nan
    arrow_lo: bool = False  # the interval goes on beyond the axis
    arrow_hi: bool = False
    weight: float | None = None
    #: a second, grey estimate beneath (Bayesian shrinkage)
    second: tuple[float, float, float] | None = None
    bold: bool = False
    italic: bool = False
    color: str = "black"
    text: str = ""  # the text of a "span" or "header" row
    shade: str = "black"  # diamond colour


@attrs.define
class Table:
    """Everything a forest plot shows (see :func:`draw`)."""

    columns: list[Column]
    rows: list[Row]
    panel_header: str = ""
    log_axis: bool = False
    refline: float | None = None  # (drawn scale)
    overall_line: float | None = None  # a dashed vertical line (drawn scale)
    favours: tuple[str, str] | None = None
    xlabel: str | None = None


def _measure() -> Callable[[str, bool], float]:
    """Text width in inches (hinted Agg at 100 dpi: never narrower than on screen)."""
    from matplotlib.backends import backend_agg
    from matplotlib.font_manager import FontProperties

    agg: Any = backend_agg  # (matplotlib's renderer is untyped)
    renderer = agg.RendererAgg(10, 10, 100)
    normal = FontProperties(size=FONT_SIZE)
    bold = FontProperties(size=FONT_SIZE, weight="bold")
    cache: dict[tuple[str, bool], float] = {}

    def width(text: str, is_bold: bool = False) -> float:
        key = (text, is_bold)
        if key not in cache:
            w = renderer.get_text_width_height_descent(text, bold if is_bold else normal, False)[0]
            cache[key] = w / 100.0 + (0.01 if text else 0.0)
        return cache[key]

    return width


def _cell_parts(value: Any, parts: int) -> list[str]:
    if parts == 1:
        return [str(value)]
    if isinstance(value, tuple | list):
        out = [str(v) for v in value] + [""] * (parts - len(value))
        return out[:parts]
    return [str(value)] + [""] * (parts - 1)


def draw(table: Table, ax: Any = None) -> Any:
    """Draw `table`: a new figure sized to its content, or into `ax` (the plot panel of a
    figure the caller sized: the columns are placed around it)."""
    from matplotlib import transforms
    from matplotlib.patches import Polygon

    width_of = _measure()
    columns, rows = table.columns, table.rows
    # -- column widths (inches): headers, group headers and every cell, part by part
    part_widths: dict[str, list[float]] = {}
    for col in columns:
        widths = [0.0] * col.parts
        for row in rows:
            if col.key in row.cells and row.kind not in ("span", "header"):
                for j, text in enumerate(_cell_parts(row.cells[col.key], col.parts)):
                    widths[j] = max(widths[j], width_of(text, row.bold))
        total = sum(widths) + PART_GAP * (col.parts - 1)
        head = max((width_of(line, True) for line in col.header.split("\n")), default=0.0)
        if head > total:  # a wide header: the parts share the extra width at the left
            widths[0] += head - total
        part_widths[col.key] = widths
    col_width = {k: sum(w) + PART_GAP * (len(w) - 1) for k, w in part_widths.items()}
    # groups spanning adjacent columns need room for their title
    for side in ("left", "right"):
        side_cols = [c for c in columns if c.side == side]
        i = 0
        while i < len(side_cols):
            g = side_cols[i].group
            j = i
            while j + 1 < len(side_cols) and g and side_cols[j + 1].group == g:
                j += 1
            if g:
                span = sum(col_width[c.key] for c in side_cols[i : j + 1]) + GAP * (j - i)
                need = width_of(g, True)
                if need > span:
                    col_width[side_cols[j].key] += need - span
                    part_widths[side_cols[j].key][0] += need - span
            i = j + 1
    left = [c for c in columns if c.side == "left"]
    right = [c for c in columns if c.side == "right"]
    left_width = sum(col_width[c.key] for c in left) + GAP * len(left)
    right_width = sum(col_width[c.key] for c in right) + GAP * len(right)
    # span rows start at the left edge; they may reach under the panel, not beyond it
    span_width = max(
        (width_of(r.text, r.bold) for r in rows if r.kind in ("span", "header")), default=0.0
    )
    left_width = max(left_width, min(span_width, left_width) if left else span_width)
    extra = max(0.0, span_width - (left_width + PANEL_WIDTH + right_width))
    # -- the figure
    n_rows = len(rows)
    has_groups = any(c.group for c in columns)
    header_rows = (
        1
        + (1 if has_groups else 0)
        + max(h.count("\n") for h in [table.panel_header, *(c.header for c in columns)])
    )
    bottom = AXIS_SPACE + (FAVOURS_SPACE if table.favours else 0.0)
    bottom += XLABEL_SPACE if table.xlabel else 0.0
    panel_height = ROW_HEIGHT * (n_rows + header_rows + 0.4)
    if ax is None:
        import matplotlib.pyplot as plt

        fig_w = MARGIN + left_width + PANEL_WIDTH + right_width + MARGIN + extra
        fig_h = MARGIN + panel_height + bottom + MARGIN * 0.5
        fig = plt.figure(figsize=(fig_w, fig_h))
        ax = fig.add_axes(
            (
                (MARGIN + left_width) / fig_w,
                (bottom + MARGIN * 0.5) / fig_h,
                PANEL_WIDTH / fig_w,
                panel_height / fig_h,
            )
        )
    else:
        _fit_table_into(ax, left_width, right_width + extra)
    fig = ax.figure
    # rows: y = n_rows (top row) ... 1; the headers above
    top = n_rows + 0.5 + header_rows
    ax.set_ylim(0.3, top)
    ypos = {i: float(n_rows - i) for i in range(n_rows)}
    blend = transforms.blended_transform_factory(ax.transAxes, ax.transData)

    def put(x_in: float, y: float, text: str, *, edge: float, **kw: Any) -> Any:
        trans = transforms.offset_copy(blend, fig=fig, x=x_in, y=0.0, units="inches")
        kw.setdefault("fontsize", FONT_SIZE)
        kw.setdefault("va", "center")
        return ax.text(edge, y, text, transform=trans, parse_math=False, clip_on=False, **kw)

    # x of each column's left edge, in inches from the panel's left (left side: negative)
    # or right edge (right side)
    x_left: dict[str, tuple[float, float]] = {}
    x = -left_width
    for col in left:
        x_left[col.key] = (0.0, x)
        x += col_width[col.key] + GAP
    x = GAP
    for col in right:
        x_left[col.key] = (1.0, x)
        x += col_width[col.key] + GAP
    # -- headers
    header_y = n_rows + 0.5 + 0.5
    for col in columns:
        edge, x0 = x_left[col.key]
        lines = col.header.split("\n")
        for j, line in enumerate(reversed(lines)):
            y = header_y + j
            ha = col.align if col.parts == 1 else "center"
            xx = x0 if ha == "left" else x0 + col_width[col.key]
            if ha == "center":
                xx = x0 + col_width[col.key] / 2
            put(xx, y, line, edge=edge, ha=ha, fontweight="bold", gid=f"header:{col.key}")
    if has_groups:
        done: set[str] = set()
        for side_cols in (left, right):
            for col in side_cols:
                if not col.group or col.group in done:
                    continue
                members = [c for c in side_cols if c.group == col.group]
                edge, x0 = x_left[members[0].key]
                x1 = x_left[members[-1].key][1] + col_width[members[-1].key]
                y = header_y + 1 + max(c.header.count("\n") for c in members)
                put(
                    (x0 + x1) / 2,
                    y,
                    col.group,
                    edge=edge,
                    ha="center",
                    fontweight="bold",
                    gid=f"group:{col.group}",
                )
                _rule(ax, fig, blend, y - 0.45, x0, x1 - x0, edge=edge)
                done.add(col.group)
    if table.panel_header:
        for j, line in enumerate(reversed(table.panel_header.split("\n"))):
            put(
                0.0,
                header_y + j,
                line,
                edge=0.5,
                ha="center",
                fontweight="bold",
                gid="header:panel",
            )
    # one rule under the headers, across table and panel
    _rule(ax, fig, blend, n_rows + 0.5, -left_width, left_width + right_width, end_edge=1.0)
    # -- cells
    for i, row in enumerate(rows):
        y = ypos[i]
        style = {
            "fontweight": "bold" if row.bold else "normal",
            "fontstyle": "italic" if row.italic else "normal",
            "color": row.color,
        }
        if row.kind in ("span", "header"):
            put(-left_width, y, row.text, edge=0.0, ha="left", gid=row.kind, **style)
            continue
        for col in columns:
            if col.key not in row.cells:
                continue
            edge, x0 = x_left[col.key]
            texts = _cell_parts(row.cells[col.key], col.parts)
            if col.parts == 1:
                xx = {
                    "left": x0,
                    "right": x0 + col_width[col.key],
                    "center": x0 + col_width[col.key] / 2,
                }[col.align]
                put(xx, y, texts[0], edge=edge, ha=col.align, gid=f"cell:{col.key}", **style)
                continue
            xx = x0
            for j, (text, w) in enumerate(zip(texts, part_widths[col.key], strict=True)):
                xx += w + (PART_GAP if j else 0.0)
                put(xx, y, text, edge=edge, ha="right", gid=f"cell:{col.key}:{j}", **style)
    # -- the panel
    weights = [r.weight for r in rows if r.kind == "study" and r.weight is not None]
    w_max = max([w for w in weights if w is not None and math.isfinite(w)], default=0.0)
    row_pt = ROW_HEIGHT * 72.0
    drawn: list[float] = []
    graphic = ("study", "diamond", "pi", "marker")
    graphic_rows = [ypos[i] for i, r in enumerate(rows) if r.kind in graphic]
    for i, row in enumerate(rows):
        y = ypos[i]
        if row.kind in ("study", "marker") and math.isfinite(row.est):
            dy = 0.12 if row.second is not None else 0.0
            ax.plot(
                [row.lo, row.hi],
                [y + dy, y + dy],
                color="black",
                lw=0.9,
                zorder=2,
                gid="ci",
                solid_capstyle="butt",
            )
            for end, marker, outside in ((row.lo, "<", row.arrow_lo), (row.hi, ">", row.arrow_hi)):
                if outside:
                    ax.plot(
                        [end],
                        [y + dy],
                        marker=marker,
                        color="black",
                        ms=4,
                        zorder=3,
                        gid="arrow",
                        linestyle="none",
                    )
            if row.kind == "study" and row.weight is not None and w_max > 0:
                square = MAX_SQUARE * row_pt * math.sqrt(max(row.weight, 0.0) / w_max)
                square = max(square, MIN_SQUARE_PT)
            else:
                square = 0.32 * row_pt
            ax.plot(
                [row.est],
                [y + dy],
                marker="s",
                markersize=square,
                markeredgewidth=0.0,
                color="0.2",
                linestyle="none",
                zorder=3,
                gid="square",
            )
            drawn += [row.lo, row.hi, row.est]
            if row.second is not None:
                m, a, b = row.second
                ax.plot(
                    [a, b], [y - 0.18, y - 0.18], color="0.5", lw=0.9, zorder=2, gid="shrinkage-ci"
                )
                ax.plot(
                    [m],
                    [y - 0.18],
                    marker="o",
                    markersize=0.25 * row_pt,
                    markeredgewidth=0.0,
                    color="0.5",
                    linestyle="none",
                    zorder=3,
                    gid="shrinkage",
                )
                drawn += [a, b]
        elif row.kind == "diamond" and math.isfinite(row.est):
            ax.add_patch(
                Polygon(
                    [(row.lo, y), (row.est, y + 0.34), (row.hi, y), (row.est, y - 0.34)],
                    closed=True,
                    facecolor=row.shade,
                    edgecolor=row.shade,
                    lw=0.5,
                    zorder=3,
                    gid="diamond",
                )
            )
            drawn += [row.lo, row.hi]
        elif row.kind == "pi" and math.isfinite(row.lo):
            ax.add_patch(
                Polygon(
                    [
                        (row.lo, y - 0.15),
                        (row.hi, y - 0.15),
                        (row.hi, y + 0.15),
                        (row.lo, y + 0.15),
                    ],
                    closed=True,
                    facecolor="0.8",
                    edgecolor="black",
                    lw=0.7,
                    zorder=3,
                    gid="pi",
                )
            )
            drawn += [row.lo, row.hi]
    # -- reference and overall lines over the graphic rows only
    if graphic_rows:
        y0, y1 = min(graphic_rows) - 0.5, max(graphic_rows) + 0.5
        if table.refline is not None:
            xr = float(table.refline)
            ax.plot([xr, xr], [y0, y1], color="black", lw=0.7, zorder=1, gid="refline")
            drawn.append(xr)
        if table.overall_line is not None and math.isfinite(table.overall_line):
            xo = float(table.overall_line)
            ax.plot(
                [xo, xo],
                [y0, y1],
                color="0.4",
                lw=0.7,
                ls=(0, (3, 2)),
                zorder=1,
                gid="overall-line",
            )
    # -- the axis
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_bounds(*(_bounds(drawn)))
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=FONT_SIZE - 0.5, length=3)
    finite = [v for v in drawn if math.isfinite(v) and (not table.log_axis or v > 0)]
    if table.log_axis:
        ax.set_xscale("log")
        _ratio_ticks(ax, finite)
    else:
        _linear_ticks(ax, finite)
    ax.patch.set_visible(False)
    if table.favours:
        null = float(table.refline if table.refline is not None else np.mean(ax.get_xlim()))
        for text, ha, dx in ((table.favours[0], "right", -6), (table.favours[1], "left", 6)):
            ax.annotate(
                text,
                (null, 0),
                xycoords=("data", "axes fraction"),
                xytext=(dx, -(AXIS_SPACE * 72 - 4)),
                textcoords="offset points",
                ha=ha,
                va="top",
                fontsize=FONT_SIZE - 0.5,
                gid="favours",
                annotation_clip=False,
            )
    if table.xlabel:
        ax.set_xlabel(
            table.xlabel,
            fontsize=FONT_SIZE,
            labelpad=4 + (FAVOURS_SPACE * 72 if table.favours else 0),
        )
    return fig


def _fit_table_into(ax: Any, left: float, right: float) -> None:
    """An Axes of the caller's: its box holds the table and the plot panel, so the panel
    shrinks to leave `left` and `right` inches beside it for the columns (the figure grows
    wider when the box cannot hold them beside a panel of the default width; other Axes
    keep their fractions of it)."""
    fig = ax.figure
    fig_w, fig_h = (float(v) for v in fig.get_size_inches())
    box = ax.get_position()
    need = left + right + PANEL_WIDTH
    if box.width * fig_w < need:
        fig_w = need / box.width
        fig.set_size_inches(fig_w, fig_h)
    x0, width = box.x0 * fig_w, box.width * fig_w
    ax.set_position(((x0 + left) / fig_w, box.y0, (width - left - right) / fig_w, box.height))


def _rule(
    ax: Any,
    fig: Any,
    blend: Any,
    y: float,
    x0: float,
    width: float,
    edge: float = 0.0,
    end_edge: float | None = None,
) -> None:
    """A horizontal rule at row `y` from `x0` inches off the panel's `edge` to `x0 + width`
    inches off `end_edge` (the same edge unless given)."""
    from matplotlib import transforms

    start = transforms.offset_copy(blend, fig=fig, x=x0, y=0.0, units="inches")
    end = transforms.offset_copy(blend, fig=fig, x=x0 + width, y=0.0, units="inches")
    ax.annotate(
        "",
        xy=(edge if end_edge is None else end_edge, y),
        xycoords=end,
        xytext=(edge, y),
        textcoords=start,
        arrowprops={"arrowstyle": "-", "lw": 0.6, "shrinkA": 0, "shrinkB": 0, "color": "black"},
        annotation_clip=False,
        gid="rule",
    )


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    return (min(finite), max(finite)) if finite else (0.0, 1.0)


def _linear_ticks(ax: Any, values: Sequence[float]) -> None:
    """A linear axis over the drawn range (a little beyond it), ticked at round numbers
    (steps of 1, 2 or 5 times a power of ten) inside it."""
    from matplotlib.ticker import MaxNLocator

    if not values:
        return
    lo, hi = min(values), max(values)
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.03 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    ticks = [
        t
        for t in MaxNLocator(nbins=5, steps=[1, 2, 5, 10]).tick_values(lo, hi)
        if lo - 1e-9 * (hi - lo) <= t <= hi + 1e-9 * (hi - lo)
    ]
    step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    ax.set_xlim(lo, hi)
    ax.set_xticks(ticks, [_tick_text(t, step) for t in ticks])
    ax.spines["bottom"].set_bounds(lo, hi)


def _tick_text(value: float, step: float) -> str:
    decimals = 0
    while decimals < 10 and abs(round(step, decimals) - step) > 1e-9 * max(step, 1.0):
        decimals += 1
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def ratio_ticks(low: float, high: float) -> list[float]:
    """Ticks of a log axis over [low, high]: 0.1, 0.2, 0.5, 1, 2, 5, 10, ... inside the
    range (1, 1.25, 1.5, 2, ... when it spans less than a factor of 4; the decades only
    when 1-2-5 would give more than 9 ticks, every other decade beyond 9 decades)."""
    if high / low < 4.0:
        subs: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    else:
        subs = (1.0, 2.0, 5.0)
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)

    def inside(ss: tuple[float, ...]) -> list[float]:
        grid = [float(f"{s * 10.0**d:.12g}") for d in decades for s in ss]
        return [v for v in grid if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)]

    ticks = inside(subs)
    if len(ticks) > 9:
        ticks = inside((1.0,))
        while len(ticks) > 9:
            ticks = ticks[::2]
    if len(ticks) < 2:  # a range inside one tick interval: its ends
        ticks = [low, high]
    return ticks


def _ratio_label(value: float) -> str:
    if 1e-4 <= value < 1e5:
        return f"{value:.6g}"
    exponent = math.floor(math.log10(value) + 1e-12)
    mantissa = value / 10.0**exponent
    head = "" if abs(mantissa - 1) < 1e-9 else f"{mantissa:g}×"
    return f"{head}10^{exponent}".replace("-", "−")


def _ratio_ticks(ax: Any, values: Sequence[float]) -> None:
    """A log axis over the drawn range (a little beyond it), ticked at 0.1, 0.2, 0.5, 1,
    2, 5, 10 inside it, printed plainly."""
    from matplotlib.ticker import NullLocator

    if not values:
        return
    low, high = min(values), max(values)
    if high <= low:
        low, high = low / 2, high * 2
    pad = (high / low) ** 0.03
    low, high = low / pad, high * pad
    ticks = ratio_ticks(low, high)
    ax.set_xlim(low, high)
    ax.set_xticks(ticks, [_ratio_label(v) for v in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.spines["bottom"].set_bounds(low, high)


# =============================================================================================
# tables of the results


#: the two groups of two-group data, when not named
ARMS = ("Experimental", "Control")


def p_text(p: float) -> str:
    """A p-value as a journal prints it: "p < 0.001", "p = 0.012", "p = 0.39"."""
    if not math.isfinite(p):
        return "p = NA"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def stat_text(value: float, decimals: int = 2) -> str:
    """A statistic with a true minus sign (never "−0.00")."""
    if not math.isfinite(value):
        return "NA"
    text = f"{value:.{decimals}f}"
    if float(text) == 0.0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def sig_text(value: float) -> str:
    """τ² and the like: 3 significant digits, plainly ("0.313", "0.0012", "12.4")."""
    if not math.isfinite(value):
        return "NA"
    if value == 0:
        return "0"
    text = f"{value:#.3g}".rstrip(".") if 1e-4 <= abs(value) < 1e5 else f"{value:.2e}"
    return text.replace("-", "−")


def column_texts(values: Sequence[float]) -> list[str]:
    """Numbers of one column (τ² of leave-one-out rows, ...) with common decimals: 3
    decimals when the largest is at least 0.01 ("0.087", "0.105", "0.000"), else 3
    significant digits each (see :func:`sig_text`)."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    if finite and 0.01 <= max(finite) < 1e5:
        return [stat_text(v, 3) for v in values]
    return [sig_text(v) for v in values]


def value_text(value: float) -> str:
    """An input value (events, totals, means, SDs) as given: integers without decimals."""
    if not math.isfinite(value):
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value)}".replace("-", "−")
    return f"{value:.4g}".replace("-", "−")


@attrs.define
class Scale:
    """How the numbers of a forest are drawn and printed: the back-transformation, the
    window of the axis (analysis scale) and the number of decimals."""

    resolved: Any  # _transf.Resolved
    exp: bool
    digits: int
    window: tuple[float, float] = (-math.inf, math.inf)
    ratio: bool = False

    def draw(self, value: float, n: Any = None) -> float:
        v = min(max(float(value), self.window[0]), self.window[1])
        with np.errstate(over="ignore", invalid="ignore"):
            return float(self.resolved(v, n))

    def text(self, value: float, n: Any = None) -> str:
        from ._transf import format_number

        if not math.isfinite(value):
            return "NA"
        if self.exp:
            return exp_text(value, self.digits)
        with np.errstate(over="ignore", invalid="ignore"):
            shown = float(self.resolved(value, n))
        return format_number(shown, self.digits, ratio=self.ratio)

    def cell(self, est: float, lo: float, hi: float, n: Any = None) -> tuple[str, str, str]:
        return (self.text(est, n), f"[{self.text(lo, n)},", f"{self.text(hi, n)}]")

    def row(self, kind: str, est: float, lo: float, hi: float, n: Any = None, **kw: Any) -> Row:
        """A row with its marks on the drawn scale (intervals beyond the axis: arrows)."""
        return Row(
            kind,
            est=self.draw(est, n) if math.isfinite(est) else math.nan,
            lo=self.draw(lo, n) if math.isfinite(lo) else math.nan,
            hi=self.draw(hi, n) if math.isfinite(hi) else math.nan,
            arrow_lo=bool(lo < self.window[0]),
            arrow_hi=bool(hi > self.window[1]),
            **kw,
        )


def exp_text(log_value: float, digits: int = 2) -> str:
    """exp(log_value) printed with `digits` decimals, from the logarithm (exact where the
    ratio overflows a double); scientific notation below 0.5e-digits and from 1e5 on."""
    from ._transf import format_number

    if not math.isfinite(log_value):
        return "NA"
    if abs(log_value) < 700:
        return format_number(math.exp(log_value), digits, ratio=True)
    decimal = log_value / math.log(10)
    exponent = math.floor(decimal)
    mantissa = round(10 ** (decimal - exponent), digits)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{digits}f}e{exponent:+03d}".replace("-", "−")


#: with exp, log ratios are drawn within ±log(1e100): their exponentials overflow from
#: 709.8 on, and a log axis needs room for its margins and tick decades
LOG_CAP = math.log(1e100)


def window(core: Sequence[float], log_ratios: bool) -> tuple[float, float]:
    """The range of the effect axis, on the analysis scale: every study estimate and every
    pooled interval, and study intervals up to twice that span beyond it (clipped there,
    with an arrow), so that one uninformative study cannot shrink the others to a point."""
    values = [x for x in core if math.isfinite(x)]
    if not values:
        return (-math.inf, math.inf)
    low, high = min(values), max(values)
    width = high - low if high > low else max(abs(low), 1.0)
    low, high = low - 2 * width, high + 2 * width
    if log_ratios:
        low, high = max(low, -LOG_CAP), min(high, LOG_CAP)
    return (low, high)


def _decimals(values: Any) -> int:
    """The decimals a column of numbers needs to show each as given (at most 3)."""
    out = 0
    for v in np.asarray(values, dtype=float).ravel():
        if math.isfinite(v):
            for d in range(4):
                if abs(round(v, d) - v) <= 1e-9 * max(1.0, abs(v)):
                    out = max(out, d)
                    break
            else:
                out = 3
    return out


def data_columns(
    names: Sequence[str], arms: Sequence[str], inputs: Any = None
) -> tuple[list[Column], Callable[[Sequence[float]], dict[str, str]], str]:
    """The columns of the data a study contributes (from escalc's or a 2x2 model's input
    columns `names`), a function giving a row's cells from its inputs, and the kind of
    data (``"binary"``, ``"continuous"``, ``"rate"``, ``"single"``, ``"n"`` or ``""``).
    Means and SDs are printed with the decimals their column needs (`inputs`)."""
    idx = {n: j for j, n in enumerate(names)}
    a1, a2 = arms
    if {"ai", "ci"} <= set(idx) and ({"bi", "di"} <= set(idx) or {"n1i", "n2i"} <= set(idx)):

        def total1(x: Sequence[float]) -> float:
            return x[idx["ai"]] + x[idx["bi"]] if "bi" in idx else x[idx["n1i"]]

        def total2(x: Sequence[float]) -> float:
            return x[idx["ci"]] + x[idx["di"]] if "di" in idx else x[idx["n2i"]]

        cols = [
            Column("e1", "Events", align="right", group=a1),
            Column("n1", "Total", align="right", group=a1),
            Column("e2", "Events", align="right", group=a2),
            Column("n2", "Total", align="right", group=a2),
        ]
        return (
            cols,
            lambda x: {
                "e1": value_text(x[idx["ai"]]),
                "n1": value_text(total1(x)),
                "e2": value_text(x[idx["ci"]]),
                "n2": value_text(total2(x)),
            },
            "binary",
        )
    if {"m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"} <= set(idx):
        cols = [
            Column("m1", "Mean", align="right", group=a1),
            Column("s1", "SD", align="right", group=a1),
            Column("n1", "Total", align="right", group=a1),
            Column("m2", "Mean", align="right", group=a2),
            Column("s2", "SD", align="right", group=a2),
            Column("n2", "Total", align="right", group=a2),
        ]
        keys = {"m1": "m1i", "s1": "sd1i", "n1": "n1i", "m2": "m2i", "s2": "sd2i", "n2": "n2i"}
        x_all = np.asarray(inputs, dtype=float) if inputs is not None else np.empty((0, len(idx)))
        dec = {k: _decimals(x_all[:, idx[v]]) if k[0] in "ms" else 0 for k, v in keys.items()}

        def cells(x: Sequence[float]) -> dict[str, str]:
            out = {}
            for k, v in keys.items():
                value = float(x[idx[v]])
                out[k] = (
                    f"{value:.{dec[k]}f}".replace("-", "−")
                    if math.isfinite(value) and k[0] in "ms"
                    else value_text(value)
                )
            return out

        return cols, cells, "continuous"
    if {"x1i", "t1i", "x2i", "t2i"} <= set(idx):
        cols = [
            Column("e1", "Events", align="right", group=a1),
            Column("n1", "Time", align="right", group=a1),
            Column("e2", "Events", align="right", group=a2),
            Column("n2", "Time", align="right", group=a2),
        ]
        keys = {"e1": "x1i", "n1": "t1i", "e2": "x2i", "n2": "t2i"}
        return cols, lambda x: {k: value_text(x[idx[v]]) for k, v in keys.items()}, "rate"
    if {"xi", "ni"} <= set(idx) or {"xi", "ti"} <= set(idx):
        size = "ni" if "ni" in idx else "ti"
        cols = [
            Column("e", "Events", align="right"),
            Column("n", "Total" if size == "ni" else "Time", align="right"),
        ]
        return (
            cols,
            lambda x: {
                "e": value_text(x[idx["xi"]]),
                "n": value_text(x[idx[size]]),
            },
            "single",
        )
    if "ni" in idx:
        return [Column("n", "N", align="right")], lambda x: {"n": value_text(x[idx["ni"]])}, "n"
    return [], lambda x: {}, ""


def totals(
    kind: str, names: Sequence[str], inputs: Any, rows: Sequence[int] | IntArray
) -> tuple[dict[str, str], dict[str, str]]:
    """The totals of the data columns over the input rows `rows`: participants (in the
    pooled row) and events (a "Total events" row), as RevMan prints them."""
    if not kind or not len(rows):
        return {}, {}
    idx = {n: j for j, n in enumerate(names)}
    x = np.asarray(inputs, dtype=float)[list(rows)]

    def col(name: str) -> Any:
        return x[:, idx[name]]

    with np.errstate(invalid="ignore"):
        if kind == "binary":
            n1 = col("ai") + col("bi") if "bi" in idx else col("n1i")
            n2 = col("ci") + col("di") if "di" in idx else col("n2i")
            return (
                {"n1": value_text(np.nansum(n1)), "n2": value_text(np.nansum(n2))},
                {"e1": value_text(np.nansum(col("ai"))), "e2": value_text(np.nansum(col("ci")))},
            )
        if kind == "continuous":
            return {
                "n1": value_text(np.nansum(col("n1i"))),
                "n2": value_text(np.nansum(col("n2i"))),
            }, {}
        if kind == "rate":
            return (
                {"n1": value_text(np.nansum(col("t1i"))), "n2": value_text(np.nansum(col("t2i")))},
                {"e1": value_text(np.nansum(col("x1i"))), "e2": value_text(np.nansum(col("x2i")))},
            )
        if kind == "single":
            size = "ni" if "ni" in idx else "ti"
            return {"n": value_text(np.nansum(col(size)))}, {"e": value_text(np.nansum(col("xi")))}
        return {"n": value_text(np.nansum(col("ni")))}, {}
