"""The numeric engine: one code path for one analysis (Python floats) and a batch (arrays).

Every statistic is written once, over numbers per analysis that are Python floats for a
single meta-analysis and ``(m,)`` arrays for a batch (``ketameta._engine._num``); these tests
check that the two kinds of number take the same path through it (bit for bit where the
arithmetic is the same), and the reference distributions against SciPy and mpmath.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import special

import ketameta
from ketameta._engine import _num as nm
from ketameta._engine import inference
from ketameta._engine import tau2 as tau2_mod
from ketameta._engine.design import Design
from ketameta._engine.moments import Moments

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
tau2 = st.one_of(st.just(0.0), st.floats(0.0, 1e3, allow_nan=False))
lower = st.one_of(st.just(-1.0), st.floats(0.0, 1e3, allow_nan=False))
upper = st.one_of(st.just(math.inf), st.floats(0.0, 1e3, allow_nan=False))
previous = st.one_of(st.just(math.inf), st.floats(0.0, 1e3, allow_nan=False))
information = st.one_of(st.just(0.0), st.floats(0.0, 1e6, allow_nan=False))


@given(
    t=tau2,
    value=st.one_of(st.just(0.0), finite),
    deriv=st.one_of(st.just(0.0), finite),
    info=information,
    lo=lower,
    hi=upper,
    prev=previous,
    v_scale=st.floats(1e-8, 1e3),
)
@example(t=0.0, value=-1.0, deriv=-2.0, info=1.0, lo=-1.0, hi=math.inf, prev=math.inf, v_scale=1.0)
@example(t=0.5, value=1.0, deriv=0.0, info=0.0, lo=-1.0, hi=math.inf, prev=math.inf, v_scale=1.0)
@example(t=0.5, value=1.0, deriv=0.0, info=0.0, lo=0.1, hi=2.0, prev=math.inf, v_scale=1.0)
@example(t=0.5, value=-1.0, deriv=-0.5, info=1.0, lo=0.2, hi=math.inf, prev=math.inf, v_scale=1.0)
@example(
    t=2.0, value=1e-12, deriv=-1.0, info=1.0, lo=-1.0, hi=math.inf, prev=math.inf, v_scale=1e-3
)
def test_newton_step_on_floats_is_the_step_on_arrays(
    t: float,
    value: float,
    deriv: float,
    info: float,
    lo: float,
    hi: float,
    prev: float,
    v_scale: float,
) -> None:
    threshold = 1e-10
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scalar = tau2_mod.newton_step_scalar(
            t, value, deriv, info, lo, hi, prev, v_scale, threshold
        )
        batch = tau2_mod.newton_step(
            *(np.array([x]) for x in (t, value, deriv, info, lo, hi, prev, v_scale)), threshold
        )
    # the next τ² and the verdict always; the bracket matters only for a further step
    for i in (0, 3) if scalar[3] else (0, 1, 2, 3, 4):
        np.testing.assert_array_equal(np.array([scalar[i]]), batch[i])


@pytest.mark.parametrize("p", [1, 2, 3])
def test_single_analysis_sums_are_python_floats_and_match_the_batch(p: int) -> None:
    """One analysis gets its weighted sums from one matrix product (Python floats); a batch
    row from row sums and products with the shared basis. Both equal the sums computed
    directly from their definition (``XᵀW^jX``, ``XᵀW^jy``, ``yᵀW^jy`` in the basis)."""
    rng = np.random.default_rng(7 + p)
    y, v = rng.normal(size=9), rng.uniform(0.01, 1.0, 9)
    x = None if p == 1 else np.column_stack([np.ones(9), rng.normal(size=(9, p - 1))])
    with np.errstate(all="ignore"):
        single = Design(y, v, x, padded=False, intercept=True)
        batch = Design(y[None, :], v[None, :], x, padded=False, intercept=True)
        mom_single = Moments(single, 0.25)
        mom_batch = Moments(batch, np.array([0.25]), scores=True)
    q = np.ones((9, 1)) if single.basis is None else single.basis
    w = 1.0 / (v + 0.25)
    for j in range(3):
        u = w ** (j + 1)
        xx, xy, yy = q.T @ (u[:, None] * q), q.T @ (u * single.y), single.y @ (u * single.y)
        lay = single.layout
        for row, s in ((mom_single.s[j], True), (mom_batch.s[j], False)):
            got_xx, got_xy = lay.matrix(row), lay.vector(row)
            for a in range(p):
                for b in range(p):
                    value = got_xx[a][b]
                    assert (type(value) is float) == s
                    np.testing.assert_allclose(value, xx[a, b], rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(got_xy[a], xy[a], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(row[lay.yy], yy, rtol=1e-12, atol=1e-12)


def test_zero_weight_sum_divides_with_ieee_semantics() -> None:
    """A τ² of inf gives Σw = 0: the single path must return NaN, not raise."""
    y, v = np.array([0.1, 0.3]), np.array([0.1, 0.2])
    with np.errstate(all="ignore"):
        mom = Moments(Design(y, v, padded=False), math.inf)
        assert math.isnan(mom.delta[0])
        assert math.isnan(mom.trace_p())
        assert nm.div(1.0, 0.0) == math.inf
        assert math.isnan(nm.div(0.0, 0.0))


@pytest.mark.parametrize("df", [*range(1, 70), 2.5, 100.0])
def test_batch_chi_square_tail_equals_incomplete_gamma(df: float) -> None:
    """The closed-form χ² tail (A&S 26.4.4-5), for a batch (arrays) and a single analysis
    (Python floats), equals scipy's incomplete-gamma ``chdtrc`` to 1e-12 relative, from
    p ≈ 1 to p ≈ 1e-300 (non-integer or large df go to ``chdtrc`` itself)."""
    rng = np.random.default_rng(int(df * 10))
    x = np.concatenate([np.geomspace(1e-8, 1400.0, 500), rng.chisquare(df, 500), [0.0]])
    expected = special.chdtrc(df, x)
    got = inference.chi2_sf(np.full(x.size, df), x)
    single = np.array([inference.chi2_sf(float(df), xi) for xi in x.tolist()])
    shown = expected > 1e-300
    for values in (got, single):
        np.testing.assert_allclose(values[shown], expected[shown], rtol=1e-12)
        assert np.all(values[~shown] <= 1e-290)


def test_single_analysis_normal_p_value_equals_scipy() -> None:
    """A single analysis's two-sided p-value, ``erfc(|z|/√2)`` in Python floats, equals
    SciPy's ``2 ndtr(-|z|)`` (which a batch uses) down to p ≈ 1e-300: to 5e-13 relative,
    since both amplify the rounding of ``|z|/√2`` by ``|z|²`` in the far tail (each is
    within ~1.4e-13 of 50-digit mpmath at z = 30-37.5)."""
    z = np.concatenate([np.linspace(-40.0, 40.0, 2001), [0.0, 1e-300, -1e-10]])
    expected = 2.0 * special.ndtr(-np.abs(z))
    got = np.array([inference.two_sided_normal_p(float(x)) for x in z.tolist()])
    shown = expected > 1e-300
    np.testing.assert_allclose(got[shown], expected[shown], rtol=5e-13)
    near = np.abs(z) < 8.0  # p > 1e-15: to a few ulp times |z|²
    np.testing.assert_allclose(got[near], expected[near], rtol=3e-14)
    assert np.all(got[~shown] <= 1e-290)
    assert math.isnan(inference.two_sided_normal_p(math.nan))


def test_batch_chi_square_tail_with_mixed_df() -> None:
    """Ragged batches mix df (and may hold NaN): each row equals ``chdtrc``."""
    rng = np.random.default_rng(3)
    df = rng.integers(1, 90, 3000).astype(float)
    df[::7] += 0.5
    x = rng.chisquare(df) * rng.uniform(0.2, 3.0, df.size)
    x[::11] = np.nan
    expected = special.chdtrc(df, x)
    got = inference.chi2_sf(df, x)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_overflowing_newton_step_never_converges_to_infinity() -> None:
    """Found by fuzzing: variances 1 and 1e-38 made the scaled score's Newton step overflow
    at τ² = 0, and the infinite step passed the (then infinite) tolerance. Now the Fisher
    step takes over and the fit is finite, in pool and in a batch (leave-one-out)."""
    y, v = [0.0, 0.0, 1.0], [1.0, 1.0, 1.1754943508222875e-38]
    res = ketameta.pool(y, v)
    assert 0.0 < res.tau2 < 1.0
    assert 0.0 < res.estimate < 1.0
    assert res.converged
    loo = ketameta.leave_one_out(y, v)
    assert np.all(np.isfinite(loo.se))
    assert np.all(np.isfinite(loo.tau2))


def test_negative_information_with_an_unbounded_bracket_expands() -> None:
    """Found by the meta-regression properties: variances from 1e-6 to 1e6 (a ratio of
    1e12) make the engine's tr P² cancel to a negative number (-62.4; exactly 228.0, by
    rational arithmetic), so at the start τ² = 0, where the REML score is positive, the
    Fisher step went below 0 and the bisection point of [0, ∞) was ∞: every later step
    was NaN and metareg raised ConvergenceError. An unbounded bracket now expands as an
    overflowing step does; the root agrees with bisection of the exactly evaluated score
    (0.14040022030410454 < τ² < 0.1404002203041074, 45 halvings of [0.1, 0.2])."""
    y = np.array([0.2, 0.6, -0.1, 0.4, 0.6, 0.3, 0.6, 0.9])
    v = np.array([1e-6, 1e6, 1e-1, 1e5, 1e4, 1e1, 1e6, 1e-2])
    mods = {"x": [8.0, 9, 5, 1, 2, 5, 2, 0], "g": [0.0, 1, 0, 1, 0, 1, 0, 0]}
    res = ketameta.metareg(y, v, mods=mods, method="REML")
    assert res.converged
    assert res.tau2 == pytest.approx(0.140400220304106, rel=1e-12)  # (the bracket midpoint)
    step = tau2_mod.newton_step(
        np.array([0.0]),
        np.array([2e-9]),
        np.array([5e-4]),
        np.array([-4e-9]),
        np.array([-1.0]),
        np.array([np.inf]),
        np.array([np.inf]),
        np.array([2.6e5]),
        1e-10,
    )
    assert step[0][0] == 2.6e5  # (expanded by the mean variance, as an overflowing step)


def test_chi_square_tail_never_exceeds_one() -> None:
    """Found by the meta-regression properties: the closed-form series of the χ² tail
    summed to 1 + 2^-52 for small x (Q_E = 0.5 on 24 df gave a p-value above 1)."""
    for df in range(1, 65):
        x = np.array([0.0, 1e-10, 0.01, 0.5, 1.0, 2.0])
        assert np.all(inference.chi2_sf(float(df), x) <= 1.0)
        assert all(inference.chi2_sf(float(df), float(t)) <= 1.0 for t in x)
    assert inference.chi2_sf(24.0, 0.5) == 1.0
    assert math.isnan(inference.chi2_sf(24.0, np.array([math.nan]))[0])


def test_shared_design_batch_with_as_many_analyses_as_studies() -> None:
    """Found by the meta-regression properties: a batch of m = k analyses with a shared
    (k, p) design crashed in the root finder (ValueError from matmul), because
    Design.subset took the rows of the shared basis and products, whose first axis has
    length k = m, as if they were analyses."""
    from ketameta._engine.rows import fit_rows

    y = np.array([0.0, 0.0, 0.002, 0.0])
    v = np.array([1e-6, 1e-6, 1e-6, 1e-5])
    x = np.column_stack([np.ones(4), [0.0, 1e-6, 0.0, 0.0]])
    big_y, big_v = np.tile(y, (4, 1)), np.tile(v, (4, 1))
    big_v[1, 0] = np.nan  # (a ragged row: the rows converge at different iterations)
    big_y[2] = [0.1, -0.2, 0.4, 0.3]
    control = dict(ketameta._engine.DEFAULT_CONTROL)
    out = fit_rows(
        big_y, big_v, x, intercept=True, method="REML", test="z", level=0.95, control=control
    )
    for i in range(4):
        present = ~np.isnan(big_v[i])
        one = ketameta.metareg(big_y[i, present], big_v[i, present], mods=x[present, 1])
        np.testing.assert_allclose(out["coef"][i], one.coef, rtol=1e-9, atol=1e-12)
        assert out["tau2"][i] == pytest.approx(one.tau2, rel=1e-8, abs=1e-15)


@given(
    st.lists(st.floats(-9.0, 9.0), min_size=2, max_size=12),
    st.sampled_from([0.0, 12.0, 15.0, 18.0]),
)
def test_typical_variance_against_exact_arithmetic(exps: list[float], heavy: float) -> None:
    """Issue #14: ṽ = (k - 1)Σw/((Σw)² - Σw²) (Higgins & Thompson 2002) cancels when one
    weight carries almost all of Σw (to 0 or below at a variance ratio near 1e15: I² of
    bayes_pool and pool_glmm outside [0, 1)); typical_variance sums positive terms and
    agrees with exact rational arithmetic to rounding."""
    from fractions import Fraction

    from ketameta._engine.moments import typical_variance

    v = 10.0 ** np.array(exps)
    v[0] = v[0] * 10.0**-heavy  # (one study carrying almost all the weight)
    w = 1.0 / v
    fw = [Fraction(t) for t in w.tolist()]
    total, total2 = sum(fw), sum(t * t for t in fw)
    exact = (len(fw) - 1) * total / (total * total - total2)
    got = typical_variance(w)
    assert got > 0.0
    assert got == pytest.approx(float(exact), rel=1e-13)


@pytest.mark.parametrize("method", ["PM", "REML", "DL"])
def test_batch_rows_at_extreme_variance_ratios_equal_single_fits(method: str) -> None:
    """Issue #14 in a batch: per-analysis designs (rows reordered), a row with k = p (so
    the iterative estimators solve a subset of the rows, whose design as given must
    follow), a ragged row and rows whose variances span 1e15, the heavy study alone in a
    factor level: each row equals metareg on its studies (both exact to rounding: the
    pivoted parametrisation where the cheap formulas cancel)."""
    from ketameta._engine.rows import fit_rows

    k = 7
    x = np.column_stack([np.ones(k), [0.0, 1, 0, 0, 0, 0, 0], np.linspace(-1.0, 2.0, k)])
    v = np.array([1e-12, 1e3, 1e-6, 1e-6, 1e-5, 1e-4, 1e-6])
    y = np.array([0.1, 2.0, 0.1002, 0.0995, 0.13, 0.07, 0.12])
    m = 5
    big_x = np.tile(x, (m, 1, 1))
    big_y, big_v = np.tile(y, (m, 1)), np.tile(v, (m, 1))
    order = np.array([3, 0, 6, 1, 5, 2, 4])
    big_x[1], big_y[1], big_v[1] = x[order], y[order], v[order]
    big_v[2, 4:] = np.nan  # (k = p = 3: no residual degrees of freedom)
    big_v[3, 2] = np.nan  # (a ragged row)
    big_v[4, 0] = 1e-15
    control = dict(ketameta._engine.DEFAULT_CONTROL)
    with np.errstate(all="raise"):
        out = fit_rows(
            big_y,
            big_v,
            big_x,
            intercept=True,
            method=method,
            test="z",
            level=0.95,
            control=control,
            vcov=True,
        )
    for i in range(m):
        present = ~np.isnan(big_v[i])
        one = ketameta.metareg(
            big_y[i, present], big_v[i, present], mods=big_x[i, present, 1:], method=method
        )
        se = np.sqrt(np.diag(one.vcov))
        np.testing.assert_allclose(
            out["coef"][i], one.coef, rtol=0, atol=1e-10 * float(np.max(se))
        )
        np.testing.assert_array_less(
            np.abs(out["vcov"][i] - one.vcov), 1e-10 * np.outer(se, se) + 1e-300
        )
        scale = one.tau2 + one.v_typical
        assert abs(out["tau2"][i] - one.tau2) <= 1e-9 * scale
        assert out["i2"][i] == pytest.approx(one.i2, abs=1e-7)
        assert 0.0 <= out["i2"][i] < 100.0
