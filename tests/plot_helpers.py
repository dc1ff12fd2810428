"""Reading a drawn forest or funnel plot back: its table (texts by column and row), its
marks, and a snapshot of both for regression tests.

A snapshot (``tests/snapshots/<name>.json``) records every text (its gid, string,
alignment and anchor position in inches), the marks in data coordinates (squares with their
sizes, diamonds, prediction intervals, lines, scatter points, the extent of filled bands),
the tick labels, axis titles and limits, the legend's entries and the figure size. It is
compared with tolerances that matplotlib versions and fonts do not exceed (0.06 inch for
positions derived from measured text, 1e-6 relative for data coordinates), so it catches
layout regressions, not rendering noise. It was written from figures looked at and judged
by eye; regenerate one after an intended change with ``KETAMETA_UPDATE_SNAPSHOTS=1 pytest
tests/test_plot.py`` and look at the figure again.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

SNAPSHOTS = Path(__file__).parent / "snapshots"
#: tolerance of text positions (inches): text widths differ slightly between versions
POSITION_TOL = 0.06


def _inches(fig: Any, artist: Any) -> tuple[float, float]:
    x, y = artist.get_transform().transform(artist.get_position())
    return float(x / fig.dpi), float(y / fig.dpi)


def texts(fig: Any, gid: str) -> list[str]:
    """The texts with this gid (or gid prefix ending in ':'), top to bottom."""
    ax = fig.axes[0]
    found = [
        t
        for t in ax.texts
        if t.get_gid() == gid or (gid.endswith(":") and str(t.get_gid()).startswith(gid))
    ]
    found.sort(key=lambda t: (-_inches(fig, t)[1], _inches(fig, t)[0]))
    return [t.get_text() for t in found]


def rows(fig: Any) -> list[dict[str, str]]:
    """The table row by row (top to bottom): column key -> text, the parts of a number
    column joined with spaces ("0.41 [0.13, 1.26]"); span and header rows under their
    gid."""
    ax = fig.axes[0]
    by_row: dict[float, list[Any]] = {}
    for t in ax.texts:
        gid = str(t.get_gid())
        if gid.startswith(("cell:", "span", "header")) and not gid.startswith("header:"):
            y = round(float(t.get_position()[1]), 6)
            by_row.setdefault(y, []).append(t)
    out = []
    for y in sorted(by_row, reverse=True):
        row: dict[str, str] = {}
        parts: dict[str, list[tuple[int, str]]] = {}
        for t in by_row[y]:
            gid = t.get_gid().split(":")
            if gid[0] in ("span", "header"):
                row[gid[0]] = t.get_text()
            elif len(gid) == 3:
                parts.setdefault(gid[1], []).append((int(gid[2]), t.get_text()))
            else:
                row[gid[1]] = t.get_text()
        for key, items in parts.items():
            row[key] = " ".join(text for _, text in sorted(items) if text)
        out.append(row)
    return out


def marks(fig: Any, gid: str) -> list[Any]:
    ax = fig.axes[0]
    return [a for a in ax.get_children() if a.get_gid() == gid]


def squares(fig: Any) -> list[tuple[float, float, float]]:
    """(x, y, side in points) of the study squares, top to bottom."""
    out = [
        (float(line.get_xdata()[0]), float(line.get_ydata()[0]), float(line.get_markersize()))
        for line in marks(fig, "square")
    ]
    return sorted(out, key=lambda s: -s[1])


def render(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def inside_figure(fig: Any) -> list[str]:
    """Texts reaching beyond the figure's edges (none may: labels are never cut)."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches() * fig.dpi
    out = []
    for t in fig.axes[0].texts:
        if not t.get_text():
            continue
        box = t.get_window_extent(renderer)
        if box.x0 < -0.5 or box.x1 > width + 0.5 or box.y0 < -0.5 or box.y1 > height + 0.5:
            out.append(t.get_text())
    return out


def _round(values: Any, digits: int = 9) -> Any:
    arr = np.asarray(values, dtype=float)
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in arr.ravel()]


def describe(fig: Any) -> dict[str, Any]:
    """What a snapshot records (see the module docstring)."""
    ax = fig.axes[0]
    texts_out = []
    from matplotlib.collections import PathCollection
    from matplotlib.text import Annotation

    for t in ax.texts:
        if t.get_text() == "" or t.get_gid() == "rule":
            continue
        if isinstance(t, Annotation):  # (favours labels: anchored at the null, below the axis)
            x, y = (float(v) for v in t.xy)
        else:
            x, y = _inches(fig, t)
        texts_out.append([str(t.get_gid()), t.get_text(), t.get_ha(), round(x, 3), round(y, 3)])
    texts_out.sort(key=lambda r: (-r[4], r[3], r[1]))
    geometry: dict[str, list[Any]] = {}
    for artist in ax.get_children():
        gid = artist.get_gid()
        if gid in (None, "rule") or gid.startswith(("cell", "header", "group", "span")):
            continue
        if isinstance(artist, PathCollection):  # (scatter points)
            geometry.setdefault(gid, []).append(_round(artist.get_offsets()))
        elif hasattr(artist, "get_paths") and not hasattr(artist, "get_xdata"):
            # filled bands: the extent of each path (its vertex order and count are
            # matplotlib's business)
            for path in artist.get_paths():
                v = np.asarray(path.vertices, dtype=float)
                v = v[np.isfinite(v).all(axis=1)]
                if len(v):
                    geometry.setdefault(gid, []).append(
                        _round([v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max()])
                    )
        elif hasattr(artist, "get_xy") and callable(artist.get_xy):
            geometry.setdefault(gid, []).append(_round(artist.get_xy()))
        elif hasattr(artist, "get_xdata"):
            item = _round(np.concatenate([artist.get_xdata(), artist.get_ydata()]))
            if artist.get_marker() not in (None, "None", "none", ""):
                item.append(round(float(artist.get_markersize()), 4))
            geometry.setdefault(gid, []).append(item)
    for key in geometry:
        geometry[key].sort(key=lambda v: json.dumps(v))
    legend = ax.get_legend()
    return {
        "size": [round(float(v), 2) for v in fig.get_size_inches()],
        "xscale": ax.get_xscale(),
        "xlim": _round(ax.get_xlim()),
        "ylim": _round(ax.get_ylim()),
        "labels": [ax.get_xlabel(), ax.get_ylabel()],
        "legend": [t.get_text() for t in legend.get_texts()] if legend is not None else [],
        "xticks": [t.get_text() for t in ax.get_xticklabels()],
        "texts": texts_out,
        "geometry": geometry,
    }


def _close(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [m for k in a for m in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items, the snapshot has {len(b)}"]
        return [
            m
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for m in _close(x, y, f"{path}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float | int):
        if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9):
            return [f"{path}: {a} != {b}"]
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def check_snapshot(fig: Any, name: str) -> None:
    """Compare the figure with ``snapshots/<name>.json`` (write it when asked to)."""
    now = describe(fig)
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("KETAMETA_UPDATE_SNAPSHOTS") or not path.exists():
        if not os.environ.get("KETAMETA_UPDATE_SNAPSHOTS"):
            msg = f"no snapshot {path.name}: run with KETAMETA_UPDATE_SNAPSHOTS=1 and look at it"
            raise AssertionError(msg)
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(now, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    if (
        abs(now["size"][0] - saved["size"][0]) > 2 * POSITION_TOL
        or abs(now["size"][1] - saved["size"][1]) > 2 * POSITION_TOL
    ):
        problems.append(f"size {now['size']} != {saved['size']}")
    for key in ("xscale", "xticks", "labels", "legend"):
        if now[key] != saved[key]:
            problems.append(f"{key}: {now[key]} != {saved[key]}")
    problems += _close(now["xlim"], saved["xlim"], "xlim")
    problems += _close(now["ylim"], saved["ylim"], "ylim")
    a, b = now["texts"], saved["texts"]
    if [t[:3] for t in a] != [t[:3] for t in b]:
        missing = {tuple(t[:3]) for t in b} - {tuple(t[:3]) for t in a}
        extra = {tuple(t[:3]) for t in a} - {tuple(t[:3]) for t in b}
        problems.append(f"texts differ: missing {sorted(missing)[:5]}, new {sorted(extra)[:5]}")
    else:
        for t, u in zip(a, b, strict=True):
            if abs(t[3] - u[3]) > POSITION_TOL or abs(t[4] - u[4]) > POSITION_TOL:
                problems.append(f"text {t[1]!r} at ({t[3]}, {t[4]}), snapshot ({u[3]}, {u[4]})")
    problems += _close(now["geometry"], saved["geometry"], "geometry")
    assert not problems, f"{name}: " + "; ".join(problems[:8])
