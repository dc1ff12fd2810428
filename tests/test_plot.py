"""Forest and funnel plots, rendered with the Agg backend and read back: the texts of the
table (by column and row), the marks (squares, diamonds, intervals) and their sizes, the
axis; and a snapshot of each plot kind (tests/plot_helpers.py)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import ketameta

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")
from ketameta.plot import forest, funnel  # noqa: E402

from .conftest import load_reference  # noqa: E402
from .plot_helpers import (  # noqa: E402
    check_snapshot,
    inside_figure,
    marks,
    render,
    rows,
    squares,
    texts,
)

_render = render
#: metafor 3.8.1, rma(yi, vi) of the BCG log risk ratios (validation/metafor/make_reference.R)
BCG_REML = next(
    c["value"]
    for c in load_reference("metafor_pool.json")["cases"]
    if c["dataset"] == "bcg_logRR" and c["method"] == "REML" and c["test"] == "z"
)
FAVOURS = ("Favours vaccine", "Favours control")
ARMS = ("Vaccinated", "Not vaccinated")


@pytest.fixture
def bcg() -> tuple[ketameta.EffectSizes, list[str], dict[str, list[object]]]:
    data = ketameta.datasets.bcg()
    labels = [f"{a} ({y})" for a, y in zip(data["author"], data["year"], strict=True)]
    es = ketameta.escalc(
        "RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg", labels=labels
    )
    return es, labels, data


def _ci_text(est: float, lo: float, hi: float) -> str:
    """What a row prints, from values computed independently (2 decimals, true minus)."""

    def f(x: float) -> str:
        text = f"{x:.2f}"
        return (text.lstrip("-") if float(text) == 0 else text).replace("-", "−")

    return f"{f(est)} [{f(lo)}, {f(hi)}]"


def test_forest_of_the_bcg_trials_prints_the_table_of_a_paper(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, data = bcg
    res = ketameta.pool(es)
    fig = forest(res, favours=FAVOURS, arms=ARMS)
    table = rows(fig)
    # the studies in input order, labels in full, the data of each study (Colditz et al.
    # 1994: events and totals per group, as in the table of the BCG trials)
    studies = table[:13]
    assert [r["study"] for r in studies] == labels
    a, b = np.asarray(data["tpos"]), np.asarray(data["tneg"])
    c, d = np.asarray(data["cpos"]), np.asarray(data["cneg"])
    assert [r["e1"] for r in studies] == [str(x) for x in a]
    assert [r["n1"] for r in studies] == [str(x) for x in a + b]
    assert [r["e2"] for r in studies] == [str(x) for x in c]
    assert [r["n2"] for r in studies] == [str(x) for x in c + d]
    # each study's risk ratio and 95% Wald CI, from the cells: RR = (a/n1)/(c/n2),
    # var(log RR) = 1/a - 1/n1 + 1/c - 1/n2 (Fleiss & Berlin 2009)
    log_rr = np.log((a / (a + b)) / (c / (c + d)))
    se = np.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    z = 1.959963984540054
    expected = [
        _ci_text(np.exp(y), np.exp(y - z * s), np.exp(y + z * s))
        for y, s in zip(log_rr, se, strict=True)
    ]
    assert [r["effect"] for r in studies] == expected
    # the weights of metafor's weights(rma(yi, vi)), one decimal
    assert [r["weight"] for r in studies] == [f"{w:.1f}%" for w in BCG_REML["weights"]]
    # the pooled row: metafor's estimate and CI back-transformed, the participants, 100%
    pooled, events, pi, het, test = table[13:18]
    m = BCG_REML
    assert pooled == {
        "study": "Random-effects model",
        "n1": str(int((a + b).sum())),
        "n2": str(int((c + d).sum())),
        "effect": _ci_text(*np.exp([m["estimate"], m["ci_lower"], m["ci_upper"]])),
        "weight": "100.0%",
    }
    assert pooled["effect"] == "0.49 [0.34, 0.70]"
    assert events == {"study": "Total events", "e1": str(a.sum()), "e2": str(c.sum())}
    assert pi == {
        "study": "Prediction interval",
        "effect": _ci_text(np.nan, *np.exp([m["pred_lower"], m["pred_upper"]]))[4:],
    }
    assert pi["effect"] == "[0.15, 1.55]"
    assert het["span"] == (
        f"Heterogeneity: τ² = {m['tau2']:.3f} (REML); Q = {m['q']:.2f}, df = 12 (p < 0.001); "
        f"I² = {m['i2']:.0f}%"
    )
    assert test["span"] == f"Test for overall effect: z = −{-m['statistic']:.2f} (p < 0.001)"
    assert len(table) == 18
    # column headers: the groups over their columns, the effect on the natural scale
    assert texts(fig, "group:") == ["Vaccinated", "Not vaccinated"]
    assert texts(fig, "header:study") == ["Study"]
    assert texts(fig, "header:e1") == ["Events"]
    assert texts(fig, "header:effect") == ["Risk ratio", "IV, Random, 95% CI"]
    assert texts(fig, "header:weight") == ["Weight"]
    # square areas proportional to the weights (a ratio of 2.6 between the largest and the
    # smallest weight is drawn as 2.6 in area, not in side)
    sq = squares(fig)
    sides = np.array([s[2] for s in sq])
    w = np.asarray(BCG_REML["weights"])
    np.testing.assert_allclose(sides**2 / sides.max() ** 2, w / w.max(), rtol=1e-12)
    np.testing.assert_allclose([s[0] for s in sq], np.exp(log_rr), rtol=1e-12)
    # the diamond spans the CI, its tips at the estimate; the prediction interval its own bar
    (diamond,) = marks(fig, "diamond")
    xs = diamond.get_xy()[:, 0]
    np.testing.assert_allclose(
        [xs.min(), xs.max()], np.exp([m["ci_lower"], m["ci_upper"]]), rtol=1e-8
    )
    (bar,) = marks(fig, "pi")
    np.testing.assert_allclose(
        [bar.get_xy()[:, 0].min(), bar.get_xy()[:, 0].max()],
        np.exp([m["pred_lower"], m["pred_upper"]]),
        rtol=1e-8,
    )
    # a log axis ticked at 0.1, 0.2, 0.5, 1, 2, 5; the null at 1; favours labels beside it
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.2", "0.5", "1", "2", "5"]
    (null,) = marks(fig, "refline")
    assert list(null.get_xdata()) == [1.0, 1.0]
    left, right = sorted(
        (t for t in ax.texts if t.get_gid() == "favours"),
        key=lambda t: t.xy[0] - 2 * (t.get_ha() == "right"),
    )
    assert (left.get_text(), left.get_ha(), left.xy[0]) == ("Favours vaccine", "right", 1.0)
    assert (right.get_text(), right.get_ha(), right.xy[0]) == ("Favours control", "left", 1.0)
    assert not inside_figure(fig)
    check_snapshot(fig, "forest_bcg_rr")
    assert render(fig).startswith(b"\x89PNG")


def test_forest_number_columns_align_and_never_print_minus_zero() -> None:
    # effects around 0 on the analysis scale (no back-transformation): -0.001 prints as
    # 0.00, negatives with a true minus sign; the parts of the effect column are
    # right-aligned on common edges, so decimal points line up whatever the signs
    y = [-0.001, -1.25, 0.5, 12.3]
    v = [0.04, 0.09, 0.05, 0.2]
    fig = forest(ketameta.pool(y, v, method="DL"))
    effects = [r["effect"] for r in rows(fig)[:4]]
    assert effects[0].startswith("0.00 [")
    assert effects[1] == _ci_text(
        -1.25, -1.25 - 1.959963984540054 * 0.3, -1.25 + 1.959963984540054 * 0.3
    )
    assert all("-" not in e for e in effects)
    ax = fig.axes[0]
    for part in range(3):
        cells = [t for t in ax.texts if t.get_gid() == f"cell:effect:{part}"]
        anchors = {round(t.get_transform().transform(t.get_position())[0], 6) for t in cells}
        assert len(anchors) == 1, part
        assert {t.get_ha() for t in cells} == {"right"}
    assert all("−0.00" not in t.get_text() for t in ax.texts)
    render(fig)


def test_forest_labels_are_never_cut_and_the_figure_fits_the_rows() -> None:
    y = [0.1, 0.3, -0.2, 0.25]
    v = [0.02, 0.03, 0.05, 0.04]
    short = forest(ketameta.pool(y, v, labels=["A", "B", "C", "D"]))
    name = "Diaz et al. (2015), a multicentre randomised trial in four countries and 12 sites"
    long = forest(ketameta.pool(y, v, labels=["A", "B", "C", name]))
    assert texts(long, "cell:study")[3] == name  # in full
    assert not inside_figure(long)
    # the figure makes room for the label beside the plot panel (2.6 inches)
    renderer = long.canvas.get_renderer()
    (label,) = [t for t in long.axes[0].texts if t.get_text() == name]
    width = label.get_window_extent(renderer).width / long.dpi
    assert width > 4.0
    assert long.get_size_inches()[0] > width + 2.6 > short.get_size_inches()[0]
    assert long.get_size_inches()[1] == pytest.approx(short.get_size_inches()[1])
    heights = []
    for k in (1, 10, 60):
        rng = np.random.default_rng(k)
        vk = rng.uniform(0.01, 0.1, k)
        with pytest.warns(ketameta.SmallSampleWarning) if k == 1 else _nothing():
            res = ketameta.pool(rng.normal(0.2, np.sqrt(vk)), vk)
        fig = forest(res)
        assert len(squares(fig)) == k
        assert not inside_figure(fig)
        heights.append(fig.get_size_inches()[1])
        plt.close(fig)
    # a fixed row height: the figure grows linearly with the rows (k = 1 has no PI row)
    assert (heights[2] - heights[1]) / 50 == pytest.approx(0.22)
    render(short)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def test_forest_shows_omitted_studies_by_name_with_their_data(bcg) -> None:  # type: ignore[no-untyped-def]
    _, labels, data = bcg
    tpos = np.asarray(data["tpos"], dtype=float)
    tpos[2] = np.nan
    es = ketameta.escalc(
        "RR", ai=tpos, bi=data["tneg"], ci=data["cpos"], di=data["cneg"], labels=labels
    )
    with pytest.warns(
        ketameta.OmittedStudiesWarning, match=r"Rosenthal et al \(1960\) \(index 2\) has missing"
    ):
        res = ketameta.pool(es)
    table = rows(forest(res))
    row = table[2]
    assert row["study"] == labels[2]
    assert row["effect"] == "missing data"
    assert "weight" not in row
    assert row["e2"] == "11"
    # the others carry the weights of the model of the 12 studies used (which sum to 100;
    # the printed ones, rounded to 0.1 each, to within 12 x 0.05)
    shown = [r["weight"] for r in table[:13] if "weight" in r]
    assert shown == [f"{w:.1f}%" for w in res.weights]
    assert float(np.sum(res.weights)) == pytest.approx(100, rel=1e-12)
    assert sum(float(w[:-1]) for w in shown) == pytest.approx(100, abs=12 * 0.05)
    # without the omitted rows
    table = rows(forest(res, show_omitted=False))
    assert labels[2] not in [r.get("study") for r in table]
    # labels for the studies used only, or for every input study
    fig = forest(res, labels=[f"S{i}" for i in range(12)])
    assert texts(fig, "cell:study")[:4] == ["S0", "S1", labels[2], "S2"]
    with pytest.raises(ValueError, match=r"`labels` has 3 entries but the model has 12 \(or 13"):
        forest(res, labels=["a", "b", "c"])
    plt.close("all")


def test_forest_of_subgroups(bcg) -> None:  # type: ignore[no-untyped-def]
    es, _, data = bcg
    sub = ketameta.subgroups(es, groups="alloc", data=data)
    fig = forest(sub, favours=FAVOURS, arms=ARMS)
    table = rows(fig)
    # a block per subgroup: its title, its studies, the subtotal, heterogeneity and test
    assert table[0] == {"header": "alternate"}
    assert [r["study"] for r in table[1:3]] == [
        "Frimodt-Moller et al (1973)",
        "Stein & Aronson (1953)",
    ]
    alt = sub.per_group[0]
    subtotal = table[3]
    assert subtotal["study"] == "Subtotal (2 studies)"
    assert subtotal["effect"] == _ci_text(*np.exp([alt.estimate, alt.ci_lower, alt.ci_upper]))
    w = sub.overall.weights
    assert subtotal["weight"] == f"{w[sub.group == 0].sum():.1f}%"
    assert subtotal["n1"] == str(33 + 5036 + 180 + 1361)
    assert table[5]["span"].startswith(f"Heterogeneity: τ² = {alt.tau2:.3f}; Q = 5.56, df = 1")
    assert table[6]["span"] == "Test for overall effect: z = −1.92 (p = 0.055)"
    headers = [r["header"] for r in table if "header" in r]
    assert headers == ["alternate", "random", "systematic"]
    # the overall model, then the test for subgroup differences (the values of
    # test_subgroups.py: Q = 1.8614, df = 2, p = 0.3943)
    assert table[-1]["span"] == "Test for subgroup differences: Q = 1.86, df = 2 (p = 0.39)"
    assert "Random-effects model (all studies)" in [r.get("study") for r in table]
    diamonds = marks(fig, "diamond")
    assert len(diamonds) == 4
    assert len(squares(fig)) == 13
    assert not inside_figure(fig)
    check_snapshot(fig, "forest_bcg_subgroups")
    render(fig)
    # one common tau^2: the subgroup diamonds are the cell means under it; the F test
    common = ketameta.subgroups(es, groups="alloc", data=data, tau2="common", test="knha")
    fig = forest(common)
    table = rows(fig)
    subtotal = next(r for r in table if r.get("study", "").startswith("Subtotal"))
    cm = common.common
    assert subtotal["effect"] == _ci_text(
        *np.exp([cm.estimate[0], cm.ci_lower[0], cm.ci_upper[0]])
    )
    assert table[-1]["span"].startswith(
        f"Test for subgroup differences: F = {common.q_between:.2f}, df = 2, 10 "
    )
    assert table[-1]["span"].endswith(f"(common to the subgroups: {cm.tau2:.3f})")
    plt.close(fig)
    # a PoolResult drawn by groups: the same analysis
    fig = forest(ketameta.pool(es), groups=data["alloc"])
    assert rows(fig)[-1]["span"] == "Test for subgroup differences: Q = 1.86, df = 2 (p = 0.39)"
    plt.close(fig)
    with pytest.raises(ValueError, match="`groups` cannot be given with a SubgroupResult"):
        forest(sub, groups=data["alloc"])


def test_forest_by_groups_shows_the_studies_the_model_left_out(bcg) -> None:  # type: ignore[no-untyped-def]
    # forest(pool(...), groups=) draws the same figure as forest(subgroups(...)) of the
    # same studies: a study the model omitted stays in the figure, greyed under "Omitted"
    # (before: it vanished without a word)
    _, labels, data = bcg
    ai = np.array(data["tpos"], dtype=float)
    ai[3] = np.nan
    es = ketameta.escalc(
        "RR", ai=ai, bi=data["tneg"], ci=data["cpos"], di=data["cneg"], labels=labels
    )
    with pytest.warns(ketameta.OmittedStudiesWarning, match=r"\(index 3\)"):
        res = ketameta.pool(es)
    with pytest.warns(ketameta.OmittedStudiesWarning, match=r"\(index 3\)"):
        sub = ketameta.subgroups(es, groups=data["alloc"])
    used_groups = [g for i, g in enumerate(data["alloc"]) if i != 3]
    expected = rows(forest(sub))
    for groups in (data["alloc"], used_groups):  # (one label per input study or per study used)
        fig = forest(res, groups=groups)
        table = rows(fig)
        assert table == expected
        i = [r.get("header") for r in table].index("Omitted")
        assert table[i + 1]["study"] == labels[3]
        assert table[i + 1]["effect"] == "missing data"
        plt.close(fig)
    plt.close("all")


def test_forest_single_study_subgroup_and_missing_group_labels() -> None:
    y = [0.1, 0.3, 0.2, 0.6, 0.5]
    v = [0.01, 0.02, 0.015, 0.03, 0.02]
    with (
        pytest.warns(ketameta.SmallSampleWarning, match="one study each"),
        pytest.warns(ketameta.OmittedStudiesWarning),
    ):
        sub = ketameta.subgroups(
            y,
            v,
            groups=["a", "a", "a", "b", None],
            method="DL",
            labels=["s1", "s2", "s3", "s4", "s5"],
        )
    fig = forest(sub)
    table = rows(fig)
    assert {"study": "Subtotal (1 study)"}.items() <= table[6].items() or any(
        r.get("study") == "Subtotal (1 study)" for r in table
    )
    assert "Heterogeneity: not applicable (one study)" in [r.get("span") for r in table]
    # the study without a group label is shown, greyed, under "Omitted"
    i = [r.get("header") for r in table].index("Omitted")
    assert table[i + 1]["study"] == "s5"
    assert table[i + 1]["effect"] == "missing data"
    assert len(marks(fig, "diamond")) == 3
    plt.close(fig)


def test_forest_of_leave_one_out_and_cumulative(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, data = bcg
    loo = ketameta.leave_one_out(es)
    fig = forest(loo)
    table = rows(fig)
    assert texts(fig, "header:study") == ["Study left out"]
    assert [r["study"] for r in table[:13]] == labels
    assert table[0]["effect"] == _ci_text(
        *np.exp([loo.estimate[0], loo.ci_lower[0], loo.ci_upper[0]])
    )
    assert table[0]["tau2"] == f"{loo.tau2[0]:.3f}"
    assert table[0]["i2"] == f"{loo.i2[0]:.0f}%"
    # the model with all studies: a diamond and a dashed line at its estimate (metafor)
    m = BCG_REML
    assert table[13]["study"] == "All studies (k = 13)"
    assert table[13]["effect"] == "0.49 [0.34, 0.70]"
    (line,) = marks(fig, "overall-line")
    assert line.get_xdata()[0] == pytest.approx(np.exp(m["estimate"]), rel=1e-10)
    assert len(marks(fig, "diamond")) == 1
    # the weight column: the weight of the study left out in the model of all studies
    # (metafor's weights(rma(yi, vi))), 100% for all studies; tau^2 with common decimals
    assert [r["weight"] for r in table[:13]] == [f"{w:.1f}%" for w in m["weights"]]
    assert table[13]["weight"] == "100.0%"
    assert table[13]["tau2"] == f"{m['tau2']:.3f}"
    check_snapshot(fig, "forest_bcg_leave_one_out")
    render(fig)
    cm = ketameta.cumulative(es, order=data["year"])
    fig = forest(cm)
    table = rows(fig)
    assert texts(fig, "header:study") == ["Study added"]
    assert table[0]["study"] == "+ Aronson (1948)"
    assert [r["k"] for r in table[:13]] == [str(k) for k in range(1, 14)]
    assert table[12]["effect"] == "0.49 [0.34, 0.70]"  # all studies: metafor's rma
    (line,) = marks(fig, "overall-line")
    assert line.get_xdata()[0] == pytest.approx(np.exp(m["estimate"]), rel=1e-10)
    check_snapshot(fig, "forest_bcg_cumulative")
    render(fig)
    # an Axes of one's own: the table and the panel inside its box, nothing cut; a box
    # too narrow for them makes the figure wider
    fig, ax = plt.subplots(figsize=(12, 6))
    box = ax.get_position()
    assert forest(loo, ax=ax) is fig
    assert texts(fig, "cell:study")[0] == labels[0]
    assert not inside_figure(fig)
    assert tuple(fig.get_size_inches()) == (12, 6)
    assert box.x0 < ax.get_position().x0 < ax.get_position().x1 < box.x1
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 6))
    forest(ketameta.pool(es), ax=ax, favours=FAVOURS)
    assert not inside_figure(fig)
    assert fig.get_size_inches()[0] > 6
    assert ax.get_position().width * fig.get_size_inches()[0] == pytest.approx(2.6)
    plt.close(fig)


def test_forest_exp_of_huge_log_ratios_draws_and_prints_exactly() -> None:
    # a study with almost no information (vi = 1e6: CI of the log OR ±1960) and one with a
    # log ratio of 800 (its ratio, e^800, overflows a double): no overflow warning (pytest
    # turns warnings into errors), the intervals end in arrows at the edge of the axis, and
    # the printed numbers are exact (e^800 = 10^347.43..., written from the logarithm)
    y, v = np.array([-0.5, -0.2, 0.1, 3.0]), np.array([0.04, 0.09, 0.05, 1e6])
    res = ketameta.pool(y, v, measure="OR")
    fig = forest(res)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert low > 1e-5  # the axis follows the informative studies
    assert high < 1e5
    assert len(marks(fig, "arrow")) == 2
    lo, hi = 3.0 - 1.959963984540054 * 1e3, 3.0 + 1.959963984540054 * 1e3
    assert rows(fig)[3]["effect"] == f"20.09 [{_sci(lo)}, {_sci(hi)}]"
    render(fig)
    fig = forest(ketameta.pool([-0.5, -0.2, 800.0], [0.04, 0.09, 0.05]), transf="exp")
    assert rows(fig)[2]["effect"].startswith(_sci(800.0) + " [")
    assert max(fig.axes[0].get_xlim()) < 1e110
    render(fig)


def _sci(log_value: float) -> str:
    """exp(log_value) in scientific notation from the logarithm (exact: mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(30):
        text = mpmath.nstr(mpmath.exp(mpmath.mpf(log_value)), 3, min_fixed=1, max_fixed=0)
    mantissa, exponent = text.split("e")
    return f"{float(mantissa):.2f}e{int(exponent):+03d}".replace("-", "−")


def test_forest_scales_and_transformations() -> None:
    # logit proportions back-transformed (no null line, no test against 0), with the
    # events and totals; Fisher's z back to correlations
    es = ketameta.escalc("PLO", xi=[3, 10, 25], ni=[20, 40, 60], labels=["A", "B", "C"])
    fig = forest(ketameta.pool(es))
    table = rows(fig)
    p = np.array([3 / 20, 10 / 40, 25 / 60])
    assert [r["effect"].split()[0] for r in table[:3]] == [f"{x:.2f}" for x in p]
    assert (table[0]["e"], table[0]["n"]) == ("3", "20")
    assert not marks(fig, "refline")
    assert not any(r.get("span", "").startswith("Test for overall") for r in table)
    assert texts(fig, "header:effect")[0] == "Proportion"
    plt.close(fig)
    es = ketameta.escalc("ZCOR", ri=[0.2, 0.5, -0.1], ni=[50, 80, 40])
    fig = forest(ketameta.pool(es))
    assert [r["effect"].split()[0] for r in rows(fig)[:3]] == ["0.20", "0.50", "−0.10"]
    assert texts(fig, "header:effect")[0] == "Correlation"
    plt.close(fig)
    # the analysis scale on request; a linear axis ticked at round numbers, its null at 0
    fig = forest(ketameta.pool(es), transf=None)
    assert texts(fig, "header:effect")[0] == "Fisher's z"
    assert fig.axes[0].get_xscale() == "linear"
    (null,) = marks(fig, "refline")
    assert list(null.get_xdata()) == [0.0, 0.0]
    plt.close(fig)
    # continuous outcomes: mean, SD and total per group, decimals as the column needs
    es = ketameta.escalc(
        "MD",
        m1i=[10.1, 12.3],
        sd1i=[2.1, 3.0],
        n1i=[30, 45],
        m2i=[11.5, 13.0],
        sd2i=[2.0, 2.8],
        n2i=[31, 44],
    )
    table = rows(forest(ketameta.pool(es)))
    assert {k: table[1][k] for k in ("m1", "s1", "n1", "m2", "s2", "n2")} == {
        "m1": "12.3",
        "s1": "3.0",
        "n1": "45",
        "m2": "13.0",
        "s2": "2.8",
        "n2": "44",
    }
    assert table[2]["n1"] == "75"
    plt.close("all")


def test_forest_bad_input(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, _ = bcg
    res = ketameta.pool(es)
    with pytest.raises(TypeError, match="cannot draw a forest plot of list"):
        forest([1, 2])
    with pytest.raises(ValueError, match="`labels` has 2 entries but the model has 13"):
        forest(res, labels=labels[:2])
    with pytest.raises(ValueError, match="unknown `transf`"):
        forest(res, transf="log10")
    with pytest.raises(ValueError, match="unknown `transform`"):
        forest(res, transform="log10")
    with pytest.raises(ValueError, match="`favours` must be two labels"):
        forest(res, favours="Favours vaccine")
    with pytest.raises(ValueError, match="`arms` must name the two groups"):
        forest(res, arms=("a", "b", "c"))
    with pytest.raises(ValueError, match="`digits` must be an integer from 0 to 6"):
        forest(res, digits=-1)
    with pytest.raises(ValueError, match="`refline` must be a finite number"):
        forest(res, refline=float("inf"))
    with pytest.raises(TypeError, match="cannot draw a funnel plot"):
        funnel(ketameta.leave_one_out(es))
    plt.close("all")


def test_forest_earlier_transform_name_and_xlabel(bcg) -> None:  # type: ignore[no-untyped-def]
    es, _, _ = bcg
    res = ketameta.pool(es.yi, es.vi)  # raw log ratios: the analysis scale by default
    fig = forest(res)
    assert fig.axes[0].get_xscale() == "linear"
    assert texts(fig, "header:effect")[0] == "Effect size"
    plt.close(fig)
    fig = forest(res, transform="exp", xlabel="Risk ratio")
    assert fig.axes[0].get_xscale() == "log"
    assert fig.axes[0].get_xlabel() == "Risk ratio"
    assert rows(fig)[13]["effect"] == "0.49 [0.34, 0.70]"
    plt.close(fig)


# ---- funnel plots -----------------------------------------------------------------------


def test_funnel_with_trim_and_fill(bcg) -> None:  # type: ignore[no-untyped-def]
    es, _, _ = bcg
    tf = ketameta.trim_and_fill(es)
    fig = funnel(tf)
    ax = fig.axes[0]
    assert ax.yaxis_inverted()
    assert ax.get_ylim()[1] == 0.0
    (observed,) = marks(fig, "studies")
    (filled,) = marks(fig, "filled")
    assert len(observed.get_offsets()) == 13
    assert len(filled.get_offsets()) == tf.k0 == 1
    np.testing.assert_allclose(
        filled.get_offsets()[0], [tf.filled_yi[0], np.sqrt(tf.filled_vi[0])]
    )
    # the contour bands named as the ranges of p they hold (Peters et al. 2008)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "studies",
        "filled (trim and fill)",
        "p > 0.10",
        "0.05 < p < 0.10",
        "0.01 < p < 0.05",
        "p < 0.01",
        "95% pseudo-confidence region",
    ]
    # the legend beside the axes: it covers no study
    renderer = fig.canvas.get_renderer()
    assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    # the x axis named from the measure; the vertical line at the (filled) estimate
    assert ax.get_xlabel() == "Log risk ratio"
    assert ax.get_ylabel() == "Standard error"
    (line,) = marks(fig, "estimate")
    assert line.get_xdata()[0] == pytest.approx(tf.estimate)
    check_snapshot(fig, "funnel_bcg_trimfill")
    render(fig)


@pytest.mark.parametrize(
    ("yaxis", "f", "inverted"),
    [
        ("vi", lambda v, n: v, True),
        ("seinv", lambda v, n: 1 / np.sqrt(v), False),
        ("vinv", lambda v, n: 1 / v, False),
        ("ni", lambda v, n: n, False),
        ("sqrtninv", lambda v, n: 1 / np.sqrt(n), True),
    ],
)
def test_funnel_y_axes(bcg, yaxis, f, inverted) -> None:  # type: ignore[no-untyped-def]
    es, _, data = bcg
    res = ketameta.pool(es)
    fig = funnel(res, yaxis=yaxis)
    ax = fig.axes[0]
    (points,) = marks(fig, "studies")
    n = np.sum([data[c] for c in ("tpos", "tneg", "cpos", "cneg")], axis=0)
    np.testing.assert_allclose(points.get_offsets()[:, 1], f(res.vi, n), rtol=1e-12)
    assert bool(ax.yaxis_inverted()) is inverted
    assert (len(marks(fig, "region")) == 2) is (yaxis in ("vi", "seinv", "vinv"))
    plt.close(fig)


def test_funnel_weights_axis(bcg) -> None:  # type: ignore[no-untyped-def]
    # metafor's funnel(res, yaxis = "wi"): the weights in percent (weights(res)), the
    # filled studies of a trim and fill with their weights in the filled model
    es, _, _ = bcg
    fig = funnel(ketameta.pool(es), yaxis="wi")
    (points,) = marks(fig, "studies")
    np.testing.assert_allclose(points.get_offsets()[:, 1], BCG_REML["weights"], rtol=1e-8)
    assert fig.axes[0].get_ylabel() == "Weight (in %)"
    assert not fig.axes[0].yaxis_inverted()
    assert not marks(fig, "region")
    plt.close(fig)
    tf = ketameta.trim_and_fill(es)
    fig = funnel(tf, yaxis="wi")
    (filled,) = marks(fig, "filled")
    assert filled.get_offsets()[0, 1] == pytest.approx(tf.pooled.weights[-1], rel=1e-12)
    assert filled.get_offsets()[0, 0] == pytest.approx(tf.filled_yi[0], rel=1e-12)
    plt.close(fig)


def test_funnel_options_and_bad_input(bcg) -> None:  # type: ignore[no-untyped-def]
    es, _, _ = bcg
    fig = funnel(ketameta.pool(es), contours=None, legend=False, xlabel="log RR")
    assert not marks(fig, "contour")
    assert fig.axes[0].get_legend() is None
    assert fig.axes[0].get_xlabel() == "log RR"
    plt.close(fig)
    with pytest.raises(ValueError, match="unknown `yaxis`"):
        funnel(ketameta.pool(es), yaxis="n")
    with pytest.raises(ValueError, match="needs the studies' sample sizes"):
        funnel(ketameta.pool(es.yi, es.vi), yaxis="ni")


@pytest.mark.parametrize("contours", [(0.9, 95), (0.0,), (1.0,), (float("nan"),)])
def test_funnel_contours_must_be_levels(bcg, contours) -> None:  # type: ignore[no-untyped-def]
    es, _, _ = bcg
    with pytest.raises(ValueError, match=r"`contours` must be in \(0, 1\)"):
        funnel(ketameta.pool(es), contours=contours)


@pytest.fixture
def schools() -> ketameta.BayesPoolResult:
    y = [28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16]
    se = [14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6]
    return ketameta.bayes_pool(
        y, sei=se, tau_prior=ketameta.priors.HalfCauchy(25), mu_prior=(0, 50)
    )


def test_posterior_density_plots(schools: ketameta.BayesPoolResult) -> None:
    from ketameta.plot import posterior

    fig = posterior(schools, "tau")
    ax = fig.axes[0]
    curve = ax.get_lines()[0]
    x, dens = curve.get_xdata(), curve.get_ydata()
    assert x[0] == 0.0
    assert np.allclose(dens, schools.pdf("tau", x))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["posterior", "95% shortest interval", "prior"]
    assert _render(fig).startswith(b"\x89PNG")
    flat = ketameta.bayes_pool([0.1, 0.4, 0.2], [0.02, 0.03, 0.04], tau_prior="uniform")
    fig = posterior(flat, "mu")
    assert "prior: flat (improper), not drawn" in [
        t.get_text() for t in fig.axes[0].get_legend().get_texts()
    ]
    plt.close(fig)
    with pytest.raises(ValueError, match="unknown `param`"):
        posterior(schools, "sigma")
    with pytest.raises(TypeError, match="BayesPoolResult"):
        posterior(ketameta.pool([0.1, 0.2], [0.1, 0.1]))


def test_bayes_forest_shows_shrinkage(schools: ketameta.BayesPoolResult) -> None:
    from ketameta.plot import bayes_forest

    fig = bayes_forest(schools, labels=list("ABCDEFGH"), xlabel="Score change")
    circles = marks(fig, "shrinkage")
    assert [float(c.get_xdata()[0]) for c in circles] == pytest.approx(
        sorted(schools.theta_median, key=lambda x: 0) and list(schools.theta_median)
    )
    table = rows(fig)
    assert [r["study"] for r in table[:8]] == list("ABCDEFGH")
    assert table[0]["shrink"] == _ci_text(
        schools.theta_median[0], schools.theta_ci_lower[0], schools.theta_ci_upper[0]
    )
    mu = table[8]
    assert mu["study"] == "Overall effect μ"
    assert mu["shrink"] == _ci_text(schools.mu_median, schools.mu_ci_lower, schools.mu_ci_upper)
    assert table[9]["study"] == "Effect in a new study"
    assert table[10]["span"].startswith("Heterogeneity: τ = ")
    assert fig.axes[0].get_xlabel() == "Score change"
    check_snapshot(fig, "forest_bayes_schools")
    assert render(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="`labels` has 2 entries"):
        bayes_forest(schools, labels=["A", "B"])
    with pytest.raises(TypeError, match="draws a BayesPoolResult"):
        bayes_forest(ketameta.pool([0.1, 0.2], [0.1, 0.1]))


# ---- bubble plots of meta-regressions (metafor's regplot) ---------------------------------
# Reference: tests/reference/metafor_regplot.json, written by
# validation/metafor/make_regplot_reference.R (metafor 3.8.1): the points regplot() draws and
# the first and last vertex of its regression line and CI/PI bounds (traced while it draws).

from ketameta.plot import bubble  # noqa: E402

REGPLOT = {case["id"]: case for case in load_reference("metafor_regplot.json")["cases"]}


def _by_gid(ax: object, gid: str) -> list[object]:
    return [a for a in ax.get_children() if a.get_gid() == gid]  # type: ignore[attr-defined]


def _band(ax: object, gid: str) -> np.ndarray:
    (band,) = _by_gid(ax, gid)
    return np.asarray(band.get_paths()[0].vertices)  # type: ignore[attr-defined]


def _bcg_model(formula: str) -> tuple[ketameta.MetaRegResult, dict[str, list[object]]]:
    data = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    return ketameta.metareg(es, mods=formula, data=data), data


def _check_line_against_metafor(
    ax: object, ref: dict[str, list[float]], f: object = np.asarray
) -> None:
    (line,) = _by_gid(ax, "fit")
    x, y = line.get_xdata(), line.get_ydata()  # type: ignore[attr-defined]
    assert [x[0], x[-1]] == ref["line_x"]
    np.testing.assert_allclose([y[0], y[-1]], f(ref["line_pred"]), rtol=1e-8)  # type: ignore[operator]
    for gid, lo, hi in (("ci", "line_ci_lb", "line_ci_ub"), ("pi", "line_pi_lb", "line_pi_ub")):
        vertices = _band(ax, gid)
        for end, xe in enumerate(ref["line_x"]):
            at = vertices[vertices[:, 0] == xe, 1]
            expected = np.sort(f([ref[lo][end], ref[hi][end]]))  # type: ignore[operator]
            np.testing.assert_allclose([at.min(), at.max()], expected, rtol=1e-8)


def test_bubble_bcg_latitude_log_risk_ratios() -> None:
    res, data = _bcg_model("~ ablat")
    ref = REGPLOT["bcg ~ ablat"]
    fig = bubble(res)
    ax = fig.axes[0]
    # the studies: at (latitude, log RR), as metafor's regplot draws them
    (points,) = _by_gid(ax, "studies")
    offsets = points.get_offsets()  # type: ignore[attr-defined]
    np.testing.assert_array_equal(offsets[:, 0], data["ablat"])
    np.testing.assert_array_equal(offsets[:, 1], res.yi)
    np.testing.assert_allclose(offsets[:, 0], ref["xi"])
    np.testing.assert_allclose(offsets[:, 1], ref["yi"], rtol=1e-12)
    # areas proportional to the weights (metafor's weights(res), percent)
    sizes = points.get_sizes()  # type: ignore[attr-defined]
    np.testing.assert_allclose(sizes / sizes.max(), res.weights / res.weights.max(), rtol=1e-12)
    np.testing.assert_allclose(res.weights, ref["weights"], rtol=1e-8)
    assert sizes.max() <= 700.0
    # the line, CI and PI from the lowest to the highest latitude: metafor's regplot values,
    # which are also our own predict() there
    _check_line_against_metafor(ax, ref)
    pred = res.predict([13.0, 55.0])
    (line,) = _by_gid(ax, "fit")
    np.testing.assert_allclose(line.get_ydata()[[0, -1]], pred.pred, rtol=1e-13)  # type: ignore[attr-defined]
    # the null, default titles, the legend
    (null,) = _by_gid(ax, "refline")
    assert list(null.get_ydata()) == [0.0, 0.0]  # type: ignore[attr-defined]
    assert ax.get_xlabel() == "ablat"
    assert ax.get_ylabel() == "Effect size"
    assert ax.get_yscale() == "linear"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "studies (area ∝ weight)",
        "meta-regression line",
        "95% prediction interval",
        "95% CI",
    ]
    assert ax.get_legend().get_title().get_text() == ""
    assert _render(fig).startswith(b"\x89PNG")


def test_bubble_bcg_latitude_risk_ratio_scale() -> None:
    res, data = _bcg_model("~ ablat")
    ref = REGPLOT["bcg ~ ablat"]
    labels = [f"{a} ({y})" for a, y in zip(data["author"], data["year"], strict=True)]
    fig = bubble(
        res,
        "ablat",
        transf="exp",
        xlabel="Absolute latitude",
        ylabel="Risk ratio (log scale)",
        labels=labels,
    )
    ax = fig.axes[0]
    (points,) = _by_gid(ax, "studies")
    np.testing.assert_allclose(points.get_offsets()[:, 1], np.exp(res.yi), rtol=1e-15)  # type: ignore[attr-defined]
    _check_line_against_metafor(ax, ref, np.exp)
    (null,) = _by_gid(ax, "refline")
    assert list(null.get_ydata()) == [1.0, 1.0]  # type: ignore[attr-defined]
    assert ax.get_yscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Absolute latitude", "Risk ratio (log scale)")
    png = _render(fig)
    # ticked at 0.1, 0.2, 0.5, 1, 2, ..., printed plainly; the axis ends at the ticks beyond
    # what is drawn (the prediction band runs from 0.133 to 1.66)
    low, high = ax.get_ylim()
    assert (low, high) == pytest.approx((0.1, 2.0))
    ticks = [t for t in ax.get_yticks() if low <= t <= high]
    assert ticks == pytest.approx([0.1, 0.2, 0.5, 1.0, 2.0])
    assert [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high] == [
        "0.1",
        "0.2",
        "0.5",
        "1",
        "2",
    ]
    assert len(ax.yaxis.get_minor_locator().tick_values(low, high)) == 0
    # one label per study, above a study above the line and below one beneath it
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == set(labels)
    fitted_line = res.coef[0] + res.coef[1] * np.asarray(data["ablat"])
    for label, y, fit in zip(labels, res.yi, fitted_line, strict=True):
        dy = texts[label].xyann[1]  # type: ignore[attr-defined]
        assert (dy > 0) == (y >= fit), label
    assert png.startswith(b"\x89PNG")


def test_bubble_factor_and_continuous_moderator_marginal_line() -> None:
    # metafor: rma(yi, vi, mods = ~ ablat + factor(alloc)); regplot(res, mod = "ablat"):
    # the line at the means of the other columns (the allocation indicators at the
    # proportions of random and systematic allocation, 7/13 and 4/13)
    res, data = _bcg_model("~ ablat + C(alloc)")
    ref = REGPLOT["bcg ~ ablat + factor(alloc)"]
    np.testing.assert_allclose(res.X.mean(axis=0), ref["colmeans"], rtol=1e-15)
    assert ref["colmeans"][2:] == pytest.approx([7 / 13, 4 / 13])
    fig = bubble(res, "ablat", transf="exp")
    ax = fig.axes[0]
    _check_line_against_metafor(ax, ref, np.exp)
    assert ax.get_legend().get_title().get_text() == "(other moderators held at their means)"
    assert ax.get_ylabel() == "Ratio (log scale)"
    _render(fig)
    # a moderator by its 0-based index (as btt): the same figure
    fig = bubble(res, 1, transf="exp")
    (line,) = _by_gid(fig.axes[0], "fit")
    np.testing.assert_allclose(line.get_ydata()[[0, -1]], np.exp(ref["line_pred"]), rtol=1e-8)  # type: ignore[attr-defined]
    plt.close(fig)
    # an indicator as the x axis: points at 0 and 1
    fig = bubble(res, "factor(alloc)random")
    (points,) = _by_gid(fig.axes[0], "studies")
    expected = [1.0 if a == "random" else 0.0 for a in data["alloc"]]
    np.testing.assert_array_equal(points.get_offsets()[:, 0], expected)  # type: ignore[attr-defined]
    _render(fig)


def test_bubble_two_continuous_moderators() -> None:
    res, _ = _bcg_model("~ ablat + year")
    ref = REGPLOT["bcg ~ ablat + year"]
    fig = bubble(res, "year")
    _check_line_against_metafor(fig.axes[0], ref)
    _render(fig)


def test_bubble_choosing_the_moderator() -> None:
    res, _ = _bcg_model("~ ablat + C(alloc)")
    names = "['ablat', 'factor(alloc)random', 'factor(alloc)systematic']"
    with pytest.raises(ValueError, match=r"3 moderator coefficients.*" + re.escape(names)):
        bubble(res)
    with pytest.raises(ValueError, match="`mod` names the intercept"):
        bubble(res, "intrcpt")
    with pytest.raises(ValueError, match="`mod` names the intercept"):
        bubble(res, 0)
    with pytest.raises(ValueError, match=r"`mod` indices are 0-based in \[0, 4\), got 4"):
        bubble(res, 4)
    with pytest.raises(ValueError, match="`mod`: no coefficient 'latitude'"):
        bubble(res, "latitude")
    with pytest.raises(TypeError, match="`mod` must be a coefficient name or a 0-based index"):
        bubble(res, True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bubble\\(\\) draws a MetaRegResult"):
        bubble(ketameta.pool([0.1, 0.3, 0.2], [0.01, 0.02, 0.03]))  # type: ignore[arg-type]


def test_bubble_no_intercept_model_any_column_is_a_moderator() -> None:
    # "~ 0 + ablat": the one column is the moderator; the line passes through the origin
    res, data = _bcg_model("~ 0 + ablat")
    fig = bubble(res)
    (line,) = _by_gid(fig.axes[0], "fit")
    x, y = line.get_xdata(), line.get_ydata()  # type: ignore[attr-defined]
    np.testing.assert_allclose(y, res.coef[0] * x, rtol=1e-13)
    assert (x[0], x[-1]) == (min(data["ablat"]), max(data["ablat"]))
    plt.close(fig)


def test_bubble_options_and_bad_input() -> None:
    res, data = _bcg_model("~ ablat")
    fig = bubble(res, ci=False, pi=False, refline=None)
    ax = fig.axes[0]
    assert not _by_gid(ax, "ci")
    assert not _by_gid(ax, "pi")
    assert not _by_gid(ax, "refline")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "studies (area ∝ weight)",
        "meta-regression line",
    ]
    plt.close(fig)
    # an Axes of one's own; a level of 90%
    fig, ax = plt.subplots()
    es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    res90 = ketameta.metareg(es, mods=data["ablat"], level=0.9)
    assert bubble(res90, ax=ax) is fig
    assert "90% CI" in [t.get_text() for t in ax.get_legend().get_texts()]
    vertices = _band(ax, "ci")
    lo = vertices[vertices[:, 0] == 13.0, 1].min()
    assert lo == pytest.approx(float(res90.predict([13.0]).ci_lower[0]), rel=1e-13)
    plt.close(fig)
    # the equal-effects model has no prediction interval: no band
    fig = bubble(ketameta.metareg(es, mods=data["ablat"], method="EE"))
    assert not _by_gid(fig.axes[0], "pi")
    assert _by_gid(fig.axes[0], "ci")
    plt.close(fig)
    # a back-transformation by function
    fig = bubble(res, transf=np.tanh)
    (points,) = _by_gid(fig.axes[0], "studies")
    np.testing.assert_allclose(points.get_offsets()[:, 1], np.tanh(res.yi))  # type: ignore[attr-defined]
    assert fig.axes[0].get_ylabel() == "Transformed effect size"
    plt.close(fig)
    with pytest.raises(ValueError, match="unknown `transf` 'log'"):
        bubble(res, transf="log")
    with pytest.raises(ValueError, match="`labels` has 2 entries but the model has 13 studies"):
        bubble(res, labels=["A", "B"])
    for bad in (math.inf, "0", True):
        with pytest.raises(ValueError, match="`refline` must be a finite number"):
            bubble(res, refline=bad)  # type: ignore[arg-type]


def test_bubble_labels_of_all_input_studies_drop_the_omitted() -> None:
    data = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    ablat = np.asarray(data["ablat"], dtype=float)
    ablat[2] = np.nan
    with pytest.warns(ketameta.OmittedStudiesWarning):
        res = ketameta.metareg(es, mods=ablat)
    labels = [str(a) for a in data["author"]]
    fig = bubble(res, labels=labels)
    shown = [t.get_text() for t in fig.axes[0].texts]
    assert shown == labels[:2] + labels[3:]
    with pytest.raises(ValueError, match=r"`labels` has 3 entries but the model has 12 \(or 13"):
        bubble(res, labels=labels[:3])
    (points,) = _by_gid(fig.axes[0], "studies")
    np.testing.assert_array_equal(points.get_offsets()[:, 0], np.delete(ablat, 2))  # type: ignore[attr-defined]
    _render(fig)


def test_bubble_ratio_axis_over_a_narrow_and_a_huge_range() -> None:
    # ratios within a factor of 4: ticks at 1, 1.25, 1.5, 2, ... (exact: the ends are ticks)
    x = np.arange(10.0)
    y = np.log([1.05, 0.95, 1.04, 1.0, 1.03, 1.1, 1.02, 1.15, 1.12, 1.3])
    fig = bubble(ketameta.metareg(y, np.full(10, 0.002), mods=x), transf="exp")
    ax = fig.axes[0]
    _render(fig)
    low, high = ax.get_ylim()
    assert (low, high) == pytest.approx((0.8, 1.5))
    assert [t for t in ax.get_yticks() if low <= t <= high] == pytest.approx([0.8, 1.0, 1.25, 1.5])
    # log ratios of ±300 are drawn at ±230 (ratios 1e±100), on powers of ten
    y = np.array([-300.0, 0.5, 300.0, 2.0, -1.0])
    fig = bubble(ketameta.metareg(y, np.ones(5), mods=np.arange(5.0)), transf="exp")
    (points,) = _by_gid(fig.axes[0], "studies")
    drawn = points.get_offsets()[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(drawn[[0, 2]], [1e-100, 1e100], rtol=1e-12)
    assert _render(fig).startswith(b"\x89PNG")
