"""Forest and funnel plots, rendered with the Agg backend and inspected."""

from __future__ import annotations

import io

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
