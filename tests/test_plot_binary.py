"""Forest plots of Mantel-Haenszel and Peto results: events/N columns, pooled diamond, read
back from the drawn table (tests/plot_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest

import ketameta

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")
from ketameta.plot import forest  # noqa: E402

from .plot_helpers import check_snapshot, inside_figure, marks, render, rows, squares, texts  # noqa: E402


def _ci(est: float, lo: float, hi: float) -> str:
    return f"{est:.2f} [{lo:.2f}, {hi:.2f}]"


def test_forest_of_a_mantel_haenszel_result() -> None:
    data = ketameta.datasets.bcg()
    res = ketameta.pool_mh(ai="tpos", bi="tneg", ci="cpos", di="cneg", data=data, labels="author")
    fig = forest(res)  # (an odds ratio: back-transformed, on a log axis, by default)
    assert fig.axes[0].get_xscale() == "log"
    assert len(squares(fig)) == 13
    assert texts(fig, "header:e1") == ["Events"]
    assert texts(fig, "header:n1") == ["Total"]
    assert texts(fig, "header:effect") == ["Odds ratio", "M-H, Common, 95% CI"]
    table = rows(fig)
    # Aronson (1948): 4 of 123 vaccinated, 11 of 139 not (Colditz et al. 1994); its odds
    # ratio (4 * 128) / (119 * 11) with the Woolf CI; its Mantel-Haenszel weight
    aronson = table[0]
    assert (aronson["study"], aronson["e1"], aronson["n1"], aronson["e2"], aronson["n2"]) == (
        "Aronson",
        "4",
        "123",
        "11",
        "139",
    )
    log_or = np.log(4 * 128 / (119 * 11))
    se = np.sqrt(1 / 4 + 1 / 119 + 1 / 11 + 1 / 128)
    z = 1.959963984540054
    assert aronson["effect"] == _ci(*np.exp([log_or, log_or - z * se, log_or + z * se]))
    assert aronson["weight"] == f"{res.weights[0]:.1f}%"
    pooled = table[13]
    assert pooled["study"] == "Mantel-Haenszel model (common effect)"
    assert pooled["effect"] == _ci(*np.exp([res.estimate, res.ci_lower, res.ci_upper]))
    assert pooled["weight"] == "100.0%"
    (diamond,) = marks(fig, "diamond")
    xs = diamond.get_xy()[:, 0]
    np.testing.assert_allclose([xs.min(), xs.max()], np.exp([res.ci_lower, res.ci_upper]))
    # square areas proportional to the MH weights, but none smaller than 3 points a side:
    # the four studies under 5.3% of the largest weight (32.6%) stay visible
    sides = np.array([s[2] for s in squares(fig)])
    w = np.asarray(res.weights)
    expected = 0.82 * 0.22 * 72 * np.sqrt(w / w.max())
    np.testing.assert_allclose(sides, np.maximum(expected, 3.0), rtol=1e-12)
    assert (expected < 3.0).sum() == 4
    spans = [r["span"] for r in table if "span" in r]
    assert spans[0].startswith(f"Heterogeneity: Q = {res.q:.2f}, df = 12 (p < 0.001)")
    assert spans[1].startswith("Test for overall effect: z = −")
    assert not inside_figure(fig)
    check_snapshot(fig, "forest_bcg_mh")
    assert render(fig).startswith(b"\x89PNG")


def test_forest_of_peto_with_double_zeros_and_person_time() -> None:
    res = ketameta.pool_peto(ai=[0, 3, 1], n1i=[20, 40, 30], ci=[0, 6, 4], n2i=[20, 41, 30])
    fig = forest(res)
    table = rows(fig)
    # no events in either group: no effect, shown and named
    assert (table[0]["e1"], table[0]["n1"], table[0]["effect"]) == ("0", "20", "not estimable")
    assert "Double zero (no events in either group): Study 1" in [r.get("span") for r in table]
    assert len(squares(fig)) == 2
    plt.close(fig)
    irr = ketameta.pool_mh(x1i=[9, 8], t1i=[413, 263], x2i=[19, 19], t2i=[398, 245], measure="IRR")
    fig = forest(irr)
    assert texts(fig, "header:e1") == ["Events"]
    assert texts(fig, "header:n1") == ["Time"]
    table = rows(fig)
    assert (table[0]["e1"], table[0]["n1"], table[0]["e2"], table[0]["n2"]) == (
        "9",
        "413",
        "19",
        "398",
    )
    # the incidence rate ratio of study 1: (9 / 413) / (19 / 398)
    assert table[0]["effect"].startswith(f"{(9 / 413) / (19 / 398):.2f} [")
    plt.close(fig)
    with pytest.raises(ValueError, match="`groups` is not supported"):
        forest(irr, groups=["a", "b"])
    with pytest.raises(ValueError, match="`labels` has 1 entries"):
        forest(irr, labels=["only one"])
