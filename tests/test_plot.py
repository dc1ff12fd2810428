"""Forest and funnel plots, rendered with the Agg backend and inspected."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest

import ketameta

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")
from ketameta.plot import forest, funnel  # noqa: E402


@pytest.fixture
def bcg() -> tuple[ketameta.EffectSizes, list[str], dict[str, list[object]]]:
    data = ketameta.datasets.bcg()
    es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    labels = [f"{a} ({y})" for a, y in zip(data["author"], data["year"], strict=True)]
    return es, labels, data


def _squares(ax: object) -> list[object]:
    return [line for line in ax.get_lines() if line.get_marker() == "s"]  # type: ignore[attr-defined]


def _render(fig: object) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buf.getvalue()


def test_forest_of_a_pooled_result(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, _ = bcg
    res = ketameta.pool(es)
    fig = forest(res, labels=labels, transform="exp", xlabel="Risk ratio")
    ax = fig.axes[0]
    squares = _squares(ax)
    assert len(squares) == 13
    # square size grows with the weight
    sizes = np.array([sq.get_markersize() for sq in squares])
    assert np.argmax(sizes) == np.argmax(res.weights)
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Risk ratio"
    left = [t.get_text() for t in ax.get_yticklabels()]
    assert left[1] == "Aronson (1948)"
    assert "RE model (REML)" in left
    assert any(t.startswith("tau² = 0.313, I² = 92%, Q(12) = 152.23") for t in left)
    right = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert right[0].startswith("Estimate [95% CI]")
    # the pooled row prints the back-transformed estimate and CI (exp of metafor's values)
    assert (
        f"{np.exp(res.estimate):.2f} [{np.exp(res.ci_lower):.2f}, {np.exp(res.ci_upper):.2f}]"
        in right
    )
    assert right[1].endswith(f"{res.weights[0]:5.1f}%")
    # one filled diamond (the pooled estimate) spanning the CI
    (diamond,) = ax.patches
    xs = diamond.get_xy()[:, 0]
    assert xs.min() == pytest.approx(np.exp(res.ci_lower))
    assert xs.max() == pytest.approx(np.exp(res.ci_upper))
    assert _render(fig).startswith(b"\x89PNG")


def test_forest_subgroups_and_long_labels(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, data = bcg
    long_labels = [label + " and a very long description of the trial" for label in labels]
    fig = forest(ketameta.pool(es, method="DL"), labels=long_labels, groups=data["alloc"])
    ax = fig.axes[0]
    left = [t.get_text() for t in ax.get_yticklabels()]
    assert {"random", "alternate", "systematic"} <= set(left)
    assert "Subgroup systematic" in left
    # the test for subgroup differences beneath the overall model (values: test_subgroups.py)
    sub = ketameta.subgroups(es, groups=data["alloc"], method="DL")
    test_line = (
        f"Test for subgroup differences: Q(2) = {sub.q_between:.2f}, "
        f"p = {sub.q_between_pvalue:.4f}"
    )
    assert left[-1] == test_line
    notes = ("tau", "Test for subgroup")
    assert all(len(t) <= 32 for t in left if not t.startswith(notes))
    assert any(t.endswith("…") for t in left)
    assert len(ax.patches) == 4  # three subgroup diamonds and the overall one
    _render(fig)


def test_forest_of_a_subgroup_result(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, data = bcg
    sub = ketameta.subgroups(es, groups="alloc", data=data, tau2="common", test="knha")
    fig = forest(sub, labels=labels, transform="exp")
    ax = fig.axes[0]
    left = [t.get_text() for t in ax.get_yticklabels()]
    assert left[1:4] == ["alternate", "Frimodt-Moller et al (1973)", "Stein & Aronson (1953)"]
    assert sub.common is not None
    # each subgroup diamond spans the CI of the cell mean under the common τ²
    diamonds = ax.patches[:3]
    for g, diamond in enumerate(diamonds):
        xs = diamond.get_xy()[:, 0]
        assert xs.min() == pytest.approx(np.exp(sub.common.ci_lower[g]))
        assert xs.max() == pytest.approx(np.exp(sub.common.ci_upper[g]))
    assert f"tau² = {sub.common.tau2:.3g} (common), Q(1) = 5.56, p = 0.0183" in left
    assert left[-1] == (
        f"Test for subgroup differences: F(2, 10) = {sub.q_between:.2f}, "
        f"p = {sub.q_between_pvalue:.4f}"
    )
    assert len(_squares(ax)) == 13
    _render(fig)
    with pytest.raises(ValueError, match="`groups` cannot be given with a SubgroupResult"):
        forest(sub, groups=data["alloc"])


def test_forest_single_study_subgroup_and_missing_labels() -> None:
    y = [0.1, 0.3, 0.2, 0.6, 0.5]
    v = [0.01, 0.02, 0.015, 0.03, 0.02]
    with (
        pytest.warns(ketameta.SmallSampleWarning, match="one study each"),
        pytest.warns(ketameta.OmittedStudiesWarning),
    ):
        sub = ketameta.subgroups(y, v, groups=["a", "a", "a", "b", None], method="DL")
    fig = forest(sub, labels=["s1", "s2", "s3", "s4"])
    left = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "Subgroup b (1 study)" in left
    assert len(fig.axes[0].patches) == 3
    plt.close(fig)
    # a PoolResult with `groups`: a study without a label is left out with the warning
    res = ketameta.pool(y, v, method="DL")
    with (
        pytest.warns(ketameta.OmittedStudiesWarning, match=r"studies \[4\] have a missing"),
        pytest.warns(ketameta.SmallSampleWarning),
    ):
        fig = forest(res, labels=["s1", "s2", "s3", "s4", "s5"], groups=["a", "a", "a", "b", None])
    left = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "s5" not in left
    plt.close(fig)


@pytest.mark.parametrize("k", [1, 60])
def test_forest_scales_with_the_number_of_studies(k: int) -> None:
    rng = np.random.default_rng(k)
    v = rng.uniform(0.01, 0.1, k)
    y = rng.normal(0.2, np.sqrt(v))
    with pytest.warns(ketameta.SmallSampleWarning) if k == 1 else _nothing():
        res = ketameta.pool(y, v)
    fig = forest(res)
    height = fig.get_size_inches()[1]
    assert height == pytest.approx(1.4 + 0.25 * (k + 3))
    assert len(_squares(fig.axes[0])) == k
    _render(fig)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def test_forest_of_sensitivity_results_and_own_axes(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, data = bcg
    fig, ax = plt.subplots()
    out = forest(ketameta.leave_one_out(es), labels=labels, ax=ax)
    assert out is fig
    left = [t.get_text() for t in ax.get_yticklabels()]
    assert left[1] == "Omitting Aronson (1948)"
    assert len(_squares(ax)) == 13
    plt.close(fig)
    cm = ketameta.cumulative(es, order=data["year"])
    fig = forest(cm, labels=[labels[int(i)] for i in cm.study])
    assert fig.axes[0].get_yticklabels()[1].get_text() == "+ Aronson (1948)"
    _render(fig)


def test_funnel_with_trim_and_fill(bcg) -> None:  # type: ignore[no-untyped-def]
    es, _, _ = bcg
    tf = ketameta.trim_and_fill(es)
    fig = funnel(tf, xlabel="log risk ratio")
    ax = fig.axes[0]
    assert ax.yaxis_inverted()
    assert ax.get_ylim()[1] == 0.0
    observed, filled = ax.collections[-2], ax.collections[-1]
    assert len(observed.get_offsets()) == 13
    assert len(filled.get_offsets()) == tf.k0 == 1
    np.testing.assert_allclose(
        filled.get_offsets()[0], [tf.filled_yi[0], np.sqrt(tf.filled_vi[0])]
    )
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == [
        "p < 0.1",
        "p < 0.05",
        "p < 0.01",
    ]
    # the vertical line is at the (filled) pooled estimate
    assert ax.get_lines()[-1].get_xdata()[0] == pytest.approx(tf.estimate)
    _render(fig)


def test_funnel_without_contours(bcg) -> None:  # type: ignore[no-untyped-def]
    es, _, _ = bcg
    fig = funnel(ketameta.pool(es), contours=None)
    ax = fig.axes[0]
    assert len(ax.collections) == 1
    _render(fig)


def test_bad_input(bcg) -> None:  # type: ignore[no-untyped-def]
    es, labels, _ = bcg
    with pytest.raises(TypeError, match="cannot draw a forest plot of list"):
        forest([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`labels` has 2 entries but the model has 13"):
        forest(ketameta.pool(es), labels=labels[:2])
    with pytest.raises(ValueError, match="unknown `transform`"):
        forest(ketameta.pool(es), transform="log10")
    with pytest.raises(TypeError, match="cannot draw a funnel plot"):
        funnel(ketameta.leave_one_out(es))  # type: ignore[arg-type]
    plt.close("all")


def test_forest_exp_of_huge_log_ratios_draws_and_prints_exactly() -> None:
    # a study with almost no information (vi = 1e6: CI of the log OR ±1960) and one with a
    # log ratio of 800 (its ratio, e^800, overflows a double): no overflow warning (pytest
    # turns warnings into errors), the intervals end in arrows at the edge of the axis, and
    # the printed numbers are exact (e^800 = 10^347.43..., written from the logarithm)
    y, v = np.array([-0.5, -0.2, 0.1, 3.0]), np.array([0.04, 0.09, 0.05, 1e6])
    res = ketameta.pool(y, v)
    fig = forest(res, transform="exp")
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert low > 1e-5  # the axis follows the informative studies
    assert high < 1e5
    arrows = [line for line in ax.get_lines() if line.get_marker() in ("<", ">")]
    assert len(arrows) == 2
    right = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    lo, hi = 3.0 - 1.959963984540054 * 1e3, 3.0 + 1.959963984540054 * 1e3
    assert right[4].startswith(f"20.09 [{_sci(lo)}, {_sci(hi)}]")
    _render(fig)
    fig = forest(ketameta.pool([-0.5, -0.2, 800.0], [0.04, 0.09, 0.05]), transform="exp")
    right = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert right[3].startswith(_sci(800.0) + " [")
    assert max(fig.axes[0].get_xlim()) < 1e110
    _render(fig)


def _sci(log_value: float) -> str:
    """exp(log_value) in scientific notation from the logarithm (exact: mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(30):
        text = mpmath.nstr(mpmath.exp(mpmath.mpf(log_value)), 3, min_fixed=1, max_fixed=0)
    mantissa, exponent = text.split("e")
    return f"{float(mantissa):.2f}e{int(exponent):+d}"


def test_forest_refline_must_be_finite(bcg) -> None:  # type: ignore[no-untyped-def]
    es, _, _ = bcg
    with pytest.raises(ValueError, match="`refline` must be a finite number"):
        forest(ketameta.pool(es), refline=float("inf"))


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
    ax = fig.axes[0]
    circles = [
        line for line in ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata())
    ]
    assert [float(c.get_xdata()[0]) for c in circles] == pytest.approx(list(schools.theta_median))
    right = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert right[-2] == (
        f"{schools.mu_median:.2f} [{schools.mu_ci_lower:.2f}, {schools.mu_ci_upper:.2f}]"
    )
    assert _render(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="`labels` has 2 entries"):
        bayes_forest(schools, labels=["A", "B"])


# ---- bubble plots of meta-regressions (metafor's regplot) ---------------------------------
# Reference: tests/reference/metafor_regplot.json, written by
# validation/metafor/make_regplot_reference.R (metafor 3.8.1): the points regplot() draws and
# the first and last vertex of its regression line and CI/PI bounds (traced while it draws).

from ketameta.plot import bubble  # noqa: E402

from .conftest import load_reference  # noqa: E402

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
