"""Forest plots of Mantel-Haenszel and Peto results: events/N columns, pooled diamond."""

from __future__ import annotations

import io

import numpy as np
import pytest

import ketameta

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")
from ketameta.plot import forest  # noqa: E402


def test_forest_of_a_mantel_haenszel_result() -> None:
    data = ketameta.datasets.bcg()
    res = ketameta.pool_mh(ai="tpos", bi="tneg", ci="cpos", di="cneg", data=data, labels="author")
    fig = forest(res, transform="exp", xlabel="Odds ratio")
    ax = fig.axes[0]
    squares = [line for line in ax.get_lines() if line.get_marker() == "s"]
    assert len(squares) == 13
    right = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert right[0].split()[:4] == ["Events/N", "1", "Events/N", "2"]
    assert right[1].split()[:2] == ["4/123", "11/139"]  # Aronson: events / total per group
    assert right[1].endswith(f"{res.weights[0]:5.1f}%")  # the MH weight
    (diamond,) = ax.patches
    xs = diamond.get_xy()[:, 0]
    assert xs.min() == pytest.approx(np.exp(res.ci_lower))
    assert xs.max() == pytest.approx(np.exp(res.ci_upper))
    left = [t.get_text() for t in ax.get_yticklabels()]
    assert "Mantel-Haenszel (EE model)" in left
    assert any(t.startswith("Q(12) = 163.94") for t in left)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    assert buf.getvalue().startswith(b"\x89PNG")


def test_forest_of_peto_with_double_zeros_and_person_time() -> None:
    res = ketameta.pool_peto(ai=[0, 3, 1], n1i=[20, 40, 30], ci=[0, 6, 4], n2i=[20, 41, 30])
    fig = forest(res, transform="exp")
    right = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert right[1].split() == ["0/20", "0/20", "not", "estimable"]  # no events: no effect
    assert len([ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "s"]) == 2
    plt.close(fig)
    irr = ketameta.pool_mh(x1i=[9, 8], t1i=[413, 263], x2i=[19, 19], t2i=[398, 245], measure="IRR")
    fig = forest(irr, transform="exp")
    right = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert right[0].split()[0] == "Events/Time"
    assert right[1].split()[:2] == ["9/413", "19/398"]
    plt.close(fig)
    with pytest.raises(ValueError, match="`groups` is not supported"):
        forest(irr, groups=["a", "b"])
    with pytest.raises(ValueError, match="`labels` has 1 entries"):
        forest(irr, labels=["only one"])
