"""Hypothesis properties of meta-regression (``metareg``) and of the engine it runs on.

Issue #13's properties, for every τ² estimator and test, on generated data (k from p + 2
to 30 studies, variances over up to six orders of magnitude, one to three moderators:
continuous, a factor, a year-like column near 2000):

1. the model with only an intercept is :func:`ketameta.pool`;
2. a column that is a linear combination of the others changes nothing but the warning;
3. the order of the studies changes nothing;
4. shifting or scaling a moderator, shifting the effects by ``Xb`` and rescaling effects
   and variances change the coefficients as the algebra says, and nothing else;
5. the rows of a batch (``fit_rows``) are the single fits, whatever the chunks and threads;
6. EE and DL agree with exact rational arithmetic on the double inputs;
7. bounds and orderings (τ² ≥ 0, intervals, Knapp-Hartung/ad hoc, R², predictions).

How close is "the same"
-----------------------
Two fits of the same model by different arithmetic (another order of the studies,
another code path) differ by rounding, measured on each quantity's natural scale and
propagated to the derived statistics (:func:`tolerances`): a coefficient on ``|b| + SE``
(plus, for the intercept, the terms ``mean|x_j| |b_j|`` it is formed from: a year near
2000 makes the intercept a small difference of large numbers), τ² on ``τ² + ṽ`` (ṽ the
typical within-study variance), I² on 100 points, Q on ``Q + df``; statistics, p-values,
Knapp-Hartung's factor, QM and R² by propagation (an exact fit under Knapp-Hartung has
SEs that are rounding noise, and its tests are undetermined). Three further terms:

* the **rounding floor of the residuals** (:func:`floor`): a residual ``y - Xb`` is known
  to ``u max|y|`` at best (u the unit roundoff), which relative to the smallest
  standardised residual scale ``√(v_min + τ²)`` is ``ε``; every statistic is a smooth
  function of the ``k`` standardised residuals, so it moves by at most about ``k ε``
  relative to its scale. It matters only for effects far from 0 compared with their
  spread (e.g. 1000 ± 0.001), and is below 1e-13 otherwise.
* the **root finder's tolerance** (REML, ML, PM, EB; :func:`tau2_gap`): ``solve`` stops
  when ``|Δτ²| ≤ threshold · min(max(1, τ²), max(τ², v̄))`` (``v̄`` the mean variance,
  ``threshold = 1e-10``); a Newton step of that size leaves an error of its square, a
  bisection step leaves at most the bracket's width, and the "predicted step" rule stops
  within ``threshold τ² / 10``; so each of two fits is within that tolerance of the root,
  and they differ by at most the sum of their tolerances. Every other statistic then
  differs by at most ``|∂f/∂τ²|`` times that gap, with the derivative measured by fits at
  fixed τ² (:func:`slack`).
* no allowance for the engine's arithmetic beyond rounding: the coefficients and the
  traces of the residual projector come from cheap formulas (normal equations, sums that
  cancel) only while their error bound is below ``LIMIT u`` (about 2e-13), and from the
  pivoted parametrisation of :mod:`ketameta._engine.pivoted` beyond (variance ratios up
  to 1e15, a heavy study with a hat value near 1); exact rational arithmetic checks both
  (:func:`test_projector_traces_against_exact_arithmetic` and its neighbours).

Found by these properties: the τ² root finder stepped to τ² = ∞ when rounding made the
REML information negative (fixed, tests/test_engine.py); the coefficients' error u
cond(QᵀWQ) and the traces' cancellation at extreme variance ratios, up to a negative tr P₀
(fixed: the pivoted parametrisation); the dependence of ``fit_rows`` on the chunk size in
the last bits (fixed: every sum over the studies of a batch is taken in a fixed order,
``ketameta._engine.design.rowsum``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import special

from ketameta import AccuracyWarning, CollinearityWarning, metareg, pool
from ketameta._engine import DEFAULT_CONTROL, inference
from ketameta._engine.design import Design
from ketameta._engine.moments import Moments
from ketameta._engine.rows import fit_rows
from ketameta.metareg import MetaRegResult

from .strategies import full_rank, metareg_data

# Random data can have a likelihood whose maximum at τ² = 0 beats the interior one reached
# from the start: τ² is then 0, as in metafor (pool warns; see test_invariants.py).
pytestmark = pytest.mark.filterwarnings("ignore::ketameta.LocalMaximumWarning")

METHODS = ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"]
ITERATIVE = ("REML", "ML", "PM", "EB")
TESTS = ["z", "t", "knha", "adhoc"]
U = 2.0**-53  # unit roundoff of float64
THRESHOLD = float(DEFAULT_CONTROL["threshold"])
Data = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]

#: per-coefficient statistics, and per-model statistics (with τ² derived)
COEF_FIELDS = ("coef", "se", "statistic", "pvalue", "ci_lower", "ci_upper", "vcov")
MODEL_FIELDS = ("tau2", "tau2_se", "i2", "h2", "q", "q_pvalue", "qm", "qm_pvalue", "r2")


def fit(
    y: np.ndarray, v: np.ndarray, mods: Any, method: str, test: str, **kw: Any
) -> MetaRegResult:
    return metareg(y, v, mods=mods, method=method, test=test, **kw)


def design(mods: dict[str, np.ndarray]) -> np.ndarray:
    """The moderators as the columns of ``X`` without the intercept."""
    return np.column_stack(list(mods.values()))


# -- tolerances ------------------------------------------------------------------------------


def floor(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    """``4 k ε``: the relative rounding floor of statistics of the residuals of `y` (see the
    module docstring; the factor 4 covers the sums they go through)."""
    eps = U * float(np.max(np.abs(y))) / math.sqrt(float(np.min(v)) + tau2)
    return 4.0 * len(y) * eps


def sampling_se(r: MetaRegResult) -> np.ndarray:
    """``√diag((XᵀWX)⁻¹)`` at τ̂², from the QR decomposition of ``W^½X`` (not from
    ``XᵀWX``, whose condition number is squared: with a year near 2000 and variances from
    1e-8 to 1e4, ``inv(XᵀWX)`` has negative diagonal entries)."""
    w = 1.0 / (r.vi + r.tau2)
    _, rr = np.linalg.qr(np.sqrt(w)[:, None] * r.X)
    inv = np.linalg.solve(rr, np.eye(rr.shape[0]))  # R⁻¹: (XᵀWX)⁻¹ = R⁻¹R⁻ᵀ
    return np.asarray(np.sqrt(np.sum(inv * inv, axis=1)))


def _p_band(p_of: Callable[[float], float], x: float, tol: float) -> float:
    """How far a p-value decreasing in `x` moves when `x` moves by `tol` (both ways; inf
    for an undetermined statistic)."""
    if not (math.isfinite(tol) and math.isfinite(x)):
        return math.inf
    return float(p_of(max(x - tol, 0.0)) - p_of(x + tol))


def tolerances(r: MetaRegResult, rel: float) -> dict[str, Any]:
    """Absolute tolerances of every statistic of `r` when the data's statistics are known
    to `rel` of their natural scales, propagated to the derived ones.

    * a coefficient's scale is ``|b| + SE`` (the sampling SE, without Knapp-Hartung's
      factor); the intercept's adds ``Σ mean|x_j| |b_j|`` (and its SE
      ``Σ mean|x_j| SE_j``), the terms it is formed from;
    * Knapp-Hartung's ``s² = Q(τ̂²)/(k - p)`` is known to ``d = rel (s² + 1)``, so its
      square root to ``min(√d, d/(2s))``: an exact fit (s² at rounding level) has SEs
      that are rounding noise;
    * a statistic ``b/SE`` moves by ``(δb + |z| δSE)/(SE - δSE)`` (undetermined when δSE
      reaches SE), the omnibus ``QM`` by ``2√QM δz`` (δz amplified by the square root of
      the condition number of the tested coefficients' correlation matrix) and
      Knapp-Hartung's 1/s²;
    * a p-value by its distribution's tail over the statistic's tolerance band.
    """
    se = np.asarray(r.se, dtype=float)
    p, k = len(se), r.k
    mean_abs = np.mean(np.abs(r.X), axis=0)

    def spread(s: np.ndarray) -> np.ndarray:  # (the intercept: the terms it is formed from)
        s = s.copy()
        if r.intercept and p > 1:
            s[0] += float(np.sum(mean_abs[1:] * s[1:]))
        return s

    # the sampling SE (without Knapp-Hartung's factor, which is 0 for an exact fit) is the
    # scale of the coefficients
    sd_z = spread(sampling_se(r))
    coef = spread(np.abs(r.coef)) + sd_z
    sd = spread(se)
    t_coef, t_se = rel * coef, rel * sd
    t_vcov = rel * np.outer(sd, sd)
    s2_rel = 0.0  # relative tolerance of Knapp-Hartung's s²
    if r.test == "knha" and k > p:
        w = 1.0 / (r.vi + r.tau2)
        s2 = float(np.sum(w * r.residuals**2)) / (k - p)
        d = rel * (s2 + 1.0)
        root = math.sqrt(d) if s2 <= d else min(math.sqrt(d), d / (2.0 * math.sqrt(s2)))
        t_se = t_se + sd_z * root
        t_vcov = t_vcov + d * np.outer(sd_z, sd_z)
        s2_rel = d / (s2 - d) if s2 > d else math.inf
    crit = float(inference.test_critical_value(r.level, r.df, r.test))
    z = np.abs(np.asarray(r.statistic, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = np.where(se > t_se, (t_coef + z * t_se) / (se - t_se), np.inf)
    df = r.df

    def two_sided(x: float) -> float:
        return float(2.0 * (special.ndtr(-x) if r.test == "z" else special.stdtr(df, -x)))

    t_p = np.array(
        [rel + _p_band(two_sided, float(zj), float(tj)) for zj, tj in zip(z, t_stat, strict=True)]
    )
    tests = list(r.btt)
    m = len(tests)
    with np.errstate(divide="ignore", invalid="ignore"):  # (SE 0: an exact fit, knha)
        corr = r.vcov[np.ix_(tests, tests)] / np.outer(se[tests], se[tests])
    amp = math.sqrt(np.linalg.cond(corr)) if m and np.all(np.isfinite(corr)) else math.inf
    dz = float(np.max(t_stat[tests])) * amp * math.sqrt(m) if m else 0.0
    qm_chi2 = r.qm * (m if r.test != "z" else 1)  # the quadratic form, χ²-scaled
    t_qm_chi2 = rel * (abs(qm_chi2) + m) + 2.0 * math.sqrt(max(qm_chi2, 0.0)) * dz + dz * dz
    t_qm_chi2 += abs(qm_chi2) * s2_rel
    t_qm = t_qm_chi2 / (m if r.test != "z" else 1) if math.isfinite(r.qm) else math.inf

    def qm_tail(x: float) -> float:
        return float(special.chdtrc(m, x) if r.test == "z" else special.fdtrc(m, df, x))

    var = r.tau2 + r.v_typical
    t_q = rel * (r.q + r.q_df)
    return {
        "coef": t_coef,
        "se": t_se,
        "statistic": t_stat,
        "pvalue": t_p,
        "ci_lower": t_coef + crit * t_se,
        "ci_upper": t_coef + crit * t_se,
        "vcov": t_vcov,
        "tau2": rel * var,
        "tau2_se": rel * ((abs(r.tau2_se) if math.isfinite(r.tau2_se) else 0.0) + var),
        "i2": rel * 100.0,
        "h2": rel * (r.h2 + 1.0),
        "q": t_q,
        "q_pvalue": rel
        + (_p_band(lambda x: float(special.chdtrc(r.q_df, x)), r.q, t_q) if r.q_df > 0 else 0.0),
        "qm": t_qm,
        "qm_pvalue": rel + _p_band(qm_tail, r.qm, t_qm),
        "r2": _r2_tolerance(r, rel),
    }


def _r2_tolerance(r: MetaRegResult, rel: float) -> float:
    """R² = 100 max(0, 1 - τ²/τ²₀) moves by ``100 (δτ² + (τ²/τ²₀) δτ²₀)/τ²₀``, with δτ² on
    the scale τ² + ṽ (undetermined while τ²₀ is within its own tolerance of 0); for EE
    (metafor's adjusted R², ``100 max(0, 1 - (Q_E/(k - p))/(Q/(k - 1)))``) by
    ``(100 - R²)(δQ_E/Q_E + δQ/Q)`` with δQ on the scale Q + df."""
    if not math.isfinite(r.r2):
        return 0.0
    null = pool(r.yi, r.vi, method=r.method)
    if r.method == "EE":
        if r.q <= 0.0:
            return math.inf
        if r.r2 == 100.0:  # (0 · inf where Q_E is subnormal: the term is 0)
            return rel * 100.0
        both = (r.q + r.q_df) / r.q + (null.q + null.q_df) / null.q
        return rel * (100.0 + (100.0 - r.r2) * both)
    t0, d0 = null.tau2, rel * (null.tau2 + null.v_typical)
    if t0 <= d0:
        return math.inf
    return 100.0 * rel + 100.0 * (rel * (r.tau2 + r.v_typical) + r.tau2 / t0 * d0) / (t0 - d0)


def solver_tolerance(tau2: float, v: np.ndarray) -> float:
    """``solve``'s stopping tolerance at τ² (ketameta._engine.tau2.solve)."""
    return THRESHOLD * min(max(1.0, tau2), max(tau2, float(np.mean(v))))


def tau2_gap(method: str, a: Any, b: Any, factor: float = 1.0) -> float:
    """How far the τ² of `b` may be from `factor` times the τ² of `a` because each
    stopped within its root finder's tolerance (0 for the closed-form estimators)."""
    if method not in ITERATIVE:
        return 0.0
    return solver_tolerance(b.tau2, b.vi) + factor * solver_tolerance(a.tau2, a.vi)


def slack(refit: Callable[[float], MetaRegResult], r: MetaRegResult, gap: float) -> dict[str, Any]:
    """``2 |∂f/∂τ²| gap`` for every statistic ``f`` of `r`: how much a τ² off by `gap`
    moves it. The derivative is a difference quotient of fits at fixed τ² (`refit(τ²)`)
    a step ``h = 1e-6 (τ² + ṽ)`` apart (its rounding error, ~1e-10 relative, and its
    truncation error, ~h relative, are negligible here); the factor 2 covers the change
    of the derivative over the gap. R² (NaN at fixed τ²) moves by ``100/τ²₀`` per unit
    of τ², and τ²₀ (of the intercept-only model, iterative too) by its own tolerance."""
    if gap == 0.0:
        return {}
    h = 1e-6 * (r.tau2 + r.v_typical)
    lo, hi = max(0.0, r.tau2 - h), r.tau2 + h
    a, b = refit(lo), refit(hi)
    out: dict[str, Any] = {}
    with np.errstate(invalid="ignore"):  # (inf - inf of an exact fit's statistics)
        for name in (*COEF_FIELDS, *MODEL_FIELDS):
            da = np.asarray(getattr(a, name), dtype=float)
            db = np.asarray(getattr(b, name), dtype=float)
            out[name] = np.nan_to_num(2.0 * np.abs(db - da) / (hi - lo) * gap, nan=np.inf)
    out["tau2"] = gap
    if math.isfinite(r.r2) and r.r2 > 0.0:
        tau2_0 = pool(r.yi, r.vi, method=r.method).tau2
        gap_0 = 2.0 * solver_tolerance(tau2_0, r.vi)
        out["r2"] = 100.0 * (gap + r.tau2 * gap_0 / tau2_0) / tau2_0
    return out


def stats_of(r: MetaRegResult) -> dict[str, Any]:
    """The statistics of `r` that the properties compare."""
    return {name: getattr(r, name) for name in (*COEF_FIELDS, *MODEL_FIELDS)}


def assert_fit(
    b: MetaRegResult,
    expected: dict[str, Any],
    method: str,
    *,
    refit: Callable[[float], MetaRegResult],
    gap: float,
    rel: float,
    fields: tuple[str, ...] = COEF_FIELDS + MODEL_FIELDS,
    other: dict[str, Any] | None = None,
) -> None:
    """`b`'s statistics against `expected` to the tolerances of `b` at `rel` (or the larger
    of those and `other`, the expected fit's), plus the root finder's slack of a τ² off by
    `gap` (`refit(τ²)` fits `b`'s data at fixed τ²). Where `expected` is NaN, so must `b`
    be; an infinite tolerance (an undetermined statistic) accepts anything."""
    tol = tolerances(b, rel)
    extra = slack(refit, b, gap)
    for name in fields:
        actual = np.asarray(getattr(b, name), dtype=float)
        want = np.asarray(expected[name], dtype=float)
        limit = np.asarray(tol[name], dtype=float)
        if other is not None:
            limit = np.fmax(limit, np.asarray(other[name], dtype=float))
        limit = np.broadcast_to(limit + np.asarray(extra.get(name, 0.0)), want.shape)
        free = np.isinf(limit)
        assert np.array_equal(np.isnan(actual) & ~free, np.isnan(want) & ~free), (
            name,
            actual,
            want,
        )
        check = ~np.isnan(want) & ~free
        with np.errstate(invalid="ignore"):  # (inf - inf: equal infinities)
            err = np.where(actual == want, 0.0, np.abs(actual - want))
        assert np.all(err[check] <= limit[check]), (
            f"{name}: {actual} != {want} (error {err}, tolerance {limit})"
        )


def quantize(x: np.ndarray, bits: int = 24) -> np.ndarray:
    """`x` rounded to multiples of ``2**-bits`` (so that sums with other such numbers of
    moderate size are exact)."""
    return np.asarray(np.ldexp(np.round(np.ldexp(x, bits)), -bits))


def refitter(
    y: np.ndarray, v: np.ndarray, mods: Any, method: str, test: str
) -> Callable[[float], MetaRegResult]:
    """Fits of these data at a fixed τ² (for :func:`slack`)."""

    def refit(tau2: float) -> MetaRegResult:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CollinearityWarning)
            return fit(y, v, mods, method, test, tau2=tau2)

    return refit


# -- 1. the intercept-only model is pool -------------------------------------------------------


@given(
    metareg_data(max_mods=1),
    st.sampled_from(METHODS),
    st.sampled_from(TESTS),
    st.sampled_from([0.0, 1.0, 3.0, -2.5, 2000.0]),
)
def test_intercept_only_equals_pool(data: Data, method: str, test: str, const: float) -> None:
    # a constant moderator is dropped (metafor's rule), leaving the intercept-only model
    y, v, _ = data
    mods = {"const": np.full(len(y), const)}
    with pytest.warns(CollinearityWarning, match=r"\['const'\]"):
        r = fit(y, v, mods, method, test)
    assert r.names == ("intrcpt",)
    assert r.dropped == ("const",)
    assert math.isnan(r.r2)
    pooled = pool(y, v, method=method, test=test)
    expected = {
        "coef": [pooled.estimate],
        "se": [pooled.se],
        "statistic": [pooled.statistic],
        "pvalue": [pooled.pvalue],
        "ci_lower": [pooled.ci_lower],
        "ci_upper": [pooled.ci_upper],
        "vcov": [[pooled.se**2]],
        **{name: getattr(pooled, name) for name in MODEL_FIELDS if hasattr(pooled, name)},
    }
    rel = 1e-10 + floor(y, v, r.tau2)
    gap = tau2_gap(method, pooled, r)
    assert_fit(
        r,
        expected,
        method,
        refit=refitter(y, v, mods, method, test),
        gap=gap,
        rel=rel,
        fields=tuple(f for f in COEF_FIELDS + MODEL_FIELDS if f in expected),
    )
    if method == "EE":  # (no prediction interval: NaN in predict(), the CI in pool)
        return
    # pool's prediction interval is predict()'s: b ± c √(SE² + τ²)
    pi = r.predict()
    tol = tolerances(r, rel)
    crit = (r.ci_upper[0] - r.coef[0]) / r.se[0] if r.se[0] > 0 else 0.0
    root = math.sqrt(r.se[0] ** 2 + r.tau2)
    limit = tol["ci_lower"][0] + crit * (tol["tau2"] + gap) / (2.0 * root) if root > 0 else 0.0
    assert abs(pi.pred_lower[0] - pooled.pred_lower) <= limit + 1e-15
    assert abs(pi.pred_upper[0] - pooled.pred_upper) <= limit + 1e-15


# -- 2. a linear combination of the columns changes nothing but the warning -----------------


@given(st.data(), metareg_data(), st.sampled_from(METHODS), st.sampled_from(TESTS))
def test_linear_combination_is_dropped_and_changes_nothing(
    data: st.DataObject, reg: Data, method: str, test: str
) -> None:
    y, v, mods = reg
    names = list(mods)
    choices = st.sampled_from([0.0, 1.0, -1.0, 0.5, 3.0, -2.5])
    weights = data.draw(st.lists(choices, min_size=1 + len(names), max_size=1 + len(names)))
    combo = weights[0] + sum(w * mods[n] for w, n in zip(weights[1:], names, strict=True))
    at = data.draw(st.integers(0, len(names)))  # its position among the moderators
    names_with = [*names[:at], "combo", *names[at:]]
    mods_with = {n: (combo if n == "combo" else mods[n]) for n in names_with}
    # metafor's rule: of linearly dependent columns the later goes. The originals are
    # independent, so the one dropped is the last of "combo" and the columns it uses.
    used = {"combo"} | {n for w, n in zip(weights[1:], names, strict=True) if w != 0.0}
    dropped = max(used, key=names_with.index)
    a = fit(y, v, mods, method, test)
    with pytest.warns(CollinearityWarning, match=rf"\['{dropped}'\]"):
        b = fit(y, v, mods_with, method, test)
    assert b.dropped == (dropped,)
    if dropped == "combo":  # the same design, the same arithmetic: the same numbers
        assert b.names == a.names
        for name, value in stats_of(a).items():
            np.testing.assert_array_equal(getattr(b, name), value, err_msg=name)
        return
    # a reparametrisation of the same column space: the model (fitted values, τ², Q,
    # the omnibus test of all moderators, R²) is unchanged; the coefficients are not
    rel = 1e-9 + floor(y, v, min(a.tau2, b.tau2))
    assert_fit(
        b,
        stats_of(a),
        method,
        refit=refitter(y, v, mods_with, method, test),
        gap=tau2_gap(method, a, b),
        rel=rel,
        fields=MODEL_FIELDS,
        other=tolerances(a, rel),
    )
    scale = float(np.max(np.abs(a.fitted))) + float(np.max(np.sqrt(a.vi + a.tau2)))
    np.testing.assert_allclose(b.fitted, a.fitted, rtol=0, atol=rel * scale)


# -- 3. the order of the studies changes nothing --------------------------------------------


@given(st.data(), metareg_data(), st.sampled_from(METHODS), st.sampled_from(TESTS))
def test_order_of_studies_changes_nothing(
    data: st.DataObject, reg: Data, method: str, test: str
) -> None:
    y, v, mods = reg
    order = np.array(data.draw(st.permutations(range(len(y)))))
    mods_p = {n: col[order] for n, col in mods.items()}
    a = fit(y, v, mods, method, test)
    b = fit(y[order], v[order], mods_p, method, test)
    rel = 1e-10 + floor(y, v, min(a.tau2, b.tau2))
    assert_fit(
        b,
        stats_of(a),
        method,
        refit=refitter(y[order], v[order], mods_p, method, test),
        gap=tau2_gap(method, a, b),
        rel=rel,
        other=tolerances(a, rel),
    )


# -- 4. shifting and scaling moderators and effects ---------------------------------------------


def _moderator(data: st.DataObject, mods: dict[str, np.ndarray]) -> tuple[str, int]:
    """A moderator's name and its column in X."""
    name = data.draw(st.sampled_from(list(mods)))
    return name, 1 + list(mods).index(name)


def _transformed(tol: dict[str, Any], m: np.ndarray) -> dict[str, Any]:
    """Tolerances of coefficients ``M b`` (and their covariance ``M V Mᵀ``) computed from
    `b` and `V` with tolerances `tol`."""
    am = np.abs(m)
    out = dict(tol)
    for name in ("coef", "se", "ci_lower", "ci_upper"):
        out[name] = am @ tol[name]
    out["vcov"] = am @ tol["vcov"] @ am.T
    return out


@given(st.data(), metareg_data(), st.sampled_from(METHODS), st.sampled_from(TESTS))
def test_shifting_a_moderator_changes_only_the_intercept(
    data: st.DataObject, reg: Data, method: str, test: str
) -> None:
    # moderators on a grid of 2^-24 and shifts of multiples of 2^-8 (|c| <= 4096): x + c
    # is exact, so any difference is the engine's
    y, v, mods = reg
    mods = {n: quantize(col) for n, col in mods.items()}
    name, j = _moderator(data, mods)
    c = data.draw(st.integers(-(2**20), 2**20)) / 256.0
    shifted = {n: (col + c if n == name else col) for n, col in mods.items()}
    # (metafor's redundancy rule compares a column's part off the span of the others with
    # its uncentred norm: a shift far beyond the moderator's spread makes it a constant,
    # dropped with a warning, as test_intercept_only_equals_pool has it)
    assume(full_rank(np.column_stack([np.ones(len(y)), design(shifted)])))
    a = fit(y, v, mods, method, test)
    b = fit(y, v, shifted, method, test)
    # x_j + c: the intercept absorbs -c b_j; b' = M b, V' = M V Mᵀ with M the identity
    # but M[0, j] = -c
    m = np.eye(len(a.coef))
    m[0, j] = -c
    coef, vcov = m @ a.coef, m @ a.vcov @ m.T
    se = np.sqrt(np.diag(vcov))
    crit = float(inference.test_critical_value(a.level, a.df, a.test))
    expected = stats_of(a) | {
        "coef": coef,
        "vcov": vcov,
        "se": se,
        "ci_lower": coef - crit * se,
        "ci_upper": coef + crit * se,
    }
    # (the intercept's statistic is b_0/SE_0, both compared: the slopes' tests are the same)
    for field in ("statistic", "pvalue"):
        expected[field] = np.concatenate([getattr(b, field)[:1], getattr(a, field)[1:]])
    rel = 1e-10 + floor(y, v, min(a.tau2, b.tau2))
    assert_fit(
        b,
        expected,
        method,
        refit=refitter(y, v, shifted, method, test),
        gap=tau2_gap(method, a, b),
        rel=rel,
        other=_transformed(tolerances(a, rel), m),
    )


@given(st.data(), metareg_data(), st.sampled_from(METHODS), st.sampled_from(TESTS))
def test_scaling_a_moderator_scales_its_coefficient(
    data: st.DataObject, reg: Data, method: str, test: str
) -> None:
    # moderators on a grid of 2^-24 (< 2^12: 36 bits) times c = ±n 2^e, n < 2^10: exact
    y, v, mods = reg
    mods = {n: quantize(col) for n, col in mods.items()}
    name, j = _moderator(data, mods)
    c = data.draw(st.integers(1, 1023)) * 2.0 ** data.draw(st.integers(-10, 10))
    c *= data.draw(st.sampled_from([1.0, -1.0]))
    scaled = {n: (col * c if n == name else col) for n, col in mods.items()}
    a = fit(y, v, mods, method, test)
    b = fit(y, v, scaled, method, test)
    m = np.eye(len(a.coef))
    m[j, j] = 1.0 / c
    d = np.diag(m)
    lo, hi = a.ci_lower * d, a.ci_upper * d
    if c < 0:
        lo[j], hi[j] = hi[j], lo[j]
    expected = stats_of(a) | {
        "coef": a.coef * d,
        "vcov": m @ a.vcov @ m.T,
        "se": a.se * np.abs(d),
        "ci_lower": lo,
        "ci_upper": hi,
        "statistic": a.statistic * np.sign(d),
    }
    rel = 1e-10 + floor(y, v, min(a.tau2, b.tau2))
    assert_fit(
        b,
        expected,
        method,
        refit=refitter(y, v, scaled, method, test),
        gap=tau2_gap(method, a, b),
        rel=rel,
        other=_transformed(tolerances(a, rel), m),
    )


@given(st.data(), metareg_data(), st.sampled_from(METHODS), st.sampled_from(TESTS))
def test_shifting_effects_by_xb_shifts_the_coefficients(
    data: st.DataObject, reg: Data, method: str, test: str
) -> None:
    # y and X on a grid of 2^-24 (|y| < 2^11, |x| < 2^12), b on 2^-8 (|b| <= 16): each
    # product is on 2^-32 and below 2^16 in size, so y + Xb (< 2^19: 51 bits) is exact
    y, v, mods = reg
    y = quantize(y)
    mods = {n: quantize(col) for n, col in mods.items()}
    x = np.column_stack([np.ones(len(y)), design(mods)])
    p = x.shape[1]
    shift = np.array(data.draw(st.lists(st.integers(-4096, 4096), min_size=p, max_size=p)))
    shift = shift / 256.0
    if method == "SJ":
        # Sidik & Jonkman's start, Σ(y - ȳ)²/k, ignores the moderators (as metafor's
        # `var(yi)`): a trend Xb added to y changes it, a constant does not
        shift[1:] = 0.0
    y2 = y + x @ shift
    a = fit(y, v, mods, method, test)
    b = fit(y2, v, mods, method, test)
    expected = stats_of(a) | {
        "coef": a.coef + shift,
        "ci_lower": a.ci_lower + shift,
        "ci_upper": a.ci_upper + shift,
    }
    # (the tests of the coefficients and the omnibus test change, and so does R², whose
    # intercept-only model sees the added trend as heterogeneity)
    fields = ("coef", "se", "vcov", "ci_lower", "ci_upper", *MODEL_FIELDS[:6])
    rel = 1e-10 + max(floor(y, v, min(a.tau2, b.tau2)), floor(y2, v, min(a.tau2, b.tau2)))
    other = tolerances(a, rel)
    for name in ("coef", "ci_lower", "ci_upper"):
        other[name] = other[name] + rel * np.abs(shift)
    assert_fit(
        b,
        expected,
        method,
        refit=refitter(y2, v, mods, method, test),
        gap=tau2_gap(method, a, b),
        rel=rel,
        fields=fields,
        other=other,
    )


@given(st.data(), metareg_data(), st.sampled_from(METHODS), st.sampled_from(TESTS))
def test_rescaling_effects_and_variances(
    data: st.DataObject, reg: Data, method: str, test: str
) -> None:
    # y on 2^-24 (< 2^11: 35 bits) and v to 36 significant bits, times c = n 2^e with
    # n < 2^8 (c² < 2^16): y c and v c² are exact
    y, v, mods = reg
    y = quantize(y)
    mantissa, exponent = np.frexp(v)
    v = np.ldexp(np.round(np.ldexp(mantissa, 36)), exponent - 36)
    c = data.draw(st.integers(1, 255)) * 2.0 ** data.draw(st.integers(-8, 8))
    a = fit(y, v, mods, method, test)
    b = fit(y * c, v * c * c, mods, method, test)
    linear, quadratic = ("coef", "se", "ci_lower", "ci_upper"), ("vcov", "tau2", "tau2_se")
    expected = stats_of(a)
    expected |= {name: expected[name] * c for name in linear}
    expected |= {name: expected[name] * c * c for name in quadratic}
    rel = 1e-10 + floor(y, v, min(a.tau2, b.tau2 / (c * c)))
    other = tolerances(a, rel)
    other |= {name: other[name] * c for name in linear}
    other |= {name: other[name] * c * c for name in quadratic}
    assert_fit(
        b,
        expected,
        method,
        refit=refitter(y * c, v * c * c, mods, method, test),
        gap=tau2_gap(method, a, b, factor=c * c),
        rel=rel,
        other=other,
    )


# -- 7. bounds and orderings ----------------------------------------------------------------------


@given(metareg_data(), st.sampled_from(METHODS))
def test_bounds_intervals_and_predictions(reg: Data, method: str) -> None:
    y, v, mods = reg
    fits = {test: fit(y, v, mods, method, test) for test in TESTS}
    z = fits["z"]
    q0 = pool(y, v, method="EE").q
    for test, r in fits.items():
        assert r.tau2 >= 0.0
        assert r.tau2 == z.tau2  # (the test does not touch τ²)
        assert np.all(r.ci_lower <= r.coef)
        assert np.all(r.coef <= r.ci_upper)
        # (an exact fit under Knapp-Hartung has the residual variance 0: SE 0 and the
        # statistic of a coefficient of exactly 0 is 0/0, NaN as metafor; docs/contract.md)
        exact = test == "knha" and np.all(r.se == 0.0)
        p_values = np.append(r.pvalue, [r.qm_pvalue, r.q_pvalue])
        assert np.all(((p_values >= 0.0) & (p_values <= 1.0)) | (exact & np.isnan(p_values)))
        assert r.q >= 0.0
        assert 0.0 <= r.i2 < 100.0
        assert r.h2 >= 1.0 or method == "EE"  # (EE: H² = Q_E/(k - p), as metafor)
        # R² in percent; for EE (metafor's adjusted R²) undefined without heterogeneity
        assert 0.0 <= r.r2 <= 100.0 or (math.isnan(r.r2) and method == "EE" and q0 <= 0.0)
        # predictions at the studies' own moderators are the fitted values, and the
        # prediction interval contains the confidence interval
        subnormal = np.any((r.vcov != 0.0) & (np.abs(r.vcov) < np.finfo(float).tiny))
        if subnormal:  # (tiny effects: the SEs of predictions may cancel, NaN with a warning)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AccuracyWarning)
                pred = r.predict()
        else:
            pred = r.predict()
        np.testing.assert_array_equal(pred.pred, r.fitted)
        defined = ~np.isnan(pred.ci_lower) if subnormal else np.ones(pred.pred.shape, bool)
        if method != "EE":
            assert np.all(pred.pred_lower[defined] <= pred.ci_lower[defined])
            assert np.all(pred.ci_upper[defined] <= pred.pred_upper[defined])
    # Knapp-Hartung multiplies every SE by the same s = √(Q(τ̂²)/(k - p)); ad hoc by
    # max(s, 1): never narrower than Knapp-Hartung, nor than t's (and t's never
    # narrower than z's)
    ratio = fits["knha"].se / z.se
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    np.testing.assert_allclose(fits["adhoc"].se, z.se * max(ratio[0], 1.0), rtol=1e-12)
    np.testing.assert_array_equal(fits["t"].se, z.se)
    width = {test: r.ci_upper - r.ci_lower for test, r in fits.items()}
    tiny = 1e-12 * width["adhoc"]
    assert np.all(width["adhoc"] >= width["knha"] - tiny)
    assert np.all(width["adhoc"] >= width["t"] - tiny)
    assert np.all(width["t"] >= width["z"] - tiny)


# -- 5. the rows of a batch are the single fits -------------------------------------------------

BATCH_FIELDS = (*COEF_FIELDS, *MODEL_FIELDS[:-1])  # (no R² in a batch)


def draw_batch(
    data: st.DataObject, reg: Data, per_row: bool, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """`m` analyses on the design of `reg` (shared, or each row's studies in another
    order): each row's effects and variances are those of `reg` reassigned to other
    studies, and some studies are absent (NaN in y or v, and in the row's design);
    returns Y, V, X and the mask of the studies present in each row."""
    y, v, mods = reg
    x = np.column_stack([np.ones(len(y)), design(mods)])
    k, p = x.shape
    big_y, big_v, big_x = np.empty((m, k)), np.empty((m, k)), np.empty((m, k, p))
    masks = []
    for i in range(m):
        order = np.array(data.draw(st.permutations(range(k))))
        xi = x[np.array(data.draw(st.permutations(range(k))))] if per_row else x
        present = np.array(data.draw(st.lists(st.booleans(), min_size=k, max_size=k)))
        if present.sum() < p + 1 or not full_rank(xi[present]):
            present[:] = True
        nan_in_y = np.array(data.draw(st.lists(st.booleans(), min_size=k, max_size=k)))
        big_y[i] = np.where(~present & nan_in_y, np.nan, y[order])
        big_v[i] = np.where(~present & ~nan_in_y, np.nan, v[order])
        big_x[i] = np.where(present[:, None], xi, np.nan)  # (never read)
        masks.append(present)
    return big_y, big_v, (big_x if per_row else x), masks


def fit_batch(
    big_y: np.ndarray, big_v: np.ndarray, x: np.ndarray | None, method: str, test: str, **kw: Any
) -> dict[str, np.ndarray]:
    return fit_rows(
        big_y,
        big_v,
        x,
        intercept=True,
        method=method,
        test=test,
        level=0.95,
        control=dict(DEFAULT_CONTROL),
        vcov=True,
        **kw,
    )


@given(
    st.data(),
    metareg_data(max_k=15),
    st.sampled_from(METHODS),
    st.sampled_from(TESTS),
    st.booleans(),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([1, 2]),
)
def test_batch_rows_equal_single_fits(
    data: st.DataObject,
    reg: Data,
    method: str,
    test: str,
    per_row: bool,
    chunk_size: int | None,
    workers: int,
) -> None:
    # (m = k: a shared design's (k, p) arrays must not be taken for analyses' rows)
    m = data.draw(st.sampled_from([1, 2, 3, len(reg[0])]))
    big_y, big_v, x, masks = draw_batch(data, reg, per_row, m)
    out = fit_batch(big_y, big_v, x, method, test, chunk_size=chunk_size, workers=workers)
    assert np.all(out["converged"] == 1.0)
    assert not np.any(out["singular"])
    for i, present in enumerate(masks):
        xi = x[i] if per_row else x
        y, v, mods = big_y[i, present], big_v[i, present], xi[present, 1:]
        one = fit(y, v, mods, method, test)
        assert out["k"][i] == one.k
        assert out["q_df"][i] == one.q_df
        assert out["df"][i] == one.df
        row = {name: out[name][i] for name in BATCH_FIELDS}
        # the same formulas by array arithmetic instead of Python floats: rounding (1e-12
        # of the scales), and the root finders' tolerance for the iterative estimators
        # (a ragged row of a shared design, whose basis is not orthogonal over the row's
        # studies, included: test_ragged_row_of_a_shared_design)
        assert_fit(
            one,
            row,
            method,
            refit=refitter(y, v, mods, method, test),
            gap=tau2_gap(method, one, one),
            rel=1e-12 + floor(y, v, one.tau2),
            fields=BATCH_FIELDS,
        )


@given(
    st.data(),
    metareg_data(max_k=10),
    st.sampled_from(METHODS),
    st.sampled_from(TESTS),
    st.booleans(),
    st.integers(1, 3),
)
def test_batch_threads_do_not_change_results(
    data: st.DataObject, reg: Data, method: str, test: str, per_row: bool, chunk_size: int
) -> None:
    # the same chunks in 1, 2 or 3 threads: the same arithmetic, bit for bit
    m = data.draw(st.integers(3, 8))
    big_y, big_v, x, _ = draw_batch(data, reg, per_row, m)
    ref = fit_batch(big_y, big_v, x, method, test, chunk_size=chunk_size)
    for workers in (2, 3):
        out = fit_batch(big_y, big_v, x, method, test, chunk_size=chunk_size, workers=workers)
        for name, value in ref.items():
            np.testing.assert_array_equal(out[name], value, err_msg=f"{name} ({workers})")


@pytest.mark.parametrize("method", ["DL", "REML", "PM", "ML", "EE", "HE", "SJ"])
def test_batch_chunk_size_does_not_change_results_bit_for_bit(method: str) -> None:
    # Every sum over the studies is taken in one fixed order (design.rowsum): a row's
    # statistics are the same bits whether it is fitted alone (a one-row chunk, or the
    # last row of a chunk still iterating in the root finder) or with others, in any
    # thread. (OpenBLAS's gemm, which computed the weighted sums of a shared design
    # before, sums the rows left over by its blocking in another order, and NumPy sums
    # the studies of a single row pairwise.) k = 10 >= 8, where NumPy's pairwise sums
    # differ from sequential ones; shared designs, the intercept-only model and one
    # design per row; ragged rows beside complete ones.
    m, k = 64, 10
    j = np.arange(m * k, dtype=float).reshape(m, k)
    big_y = np.sin(j) + 0.3 * np.cos(3.0 * j)
    big_v = 0.05 + (j % 7) / 10.0
    big_y[::5, 3] = np.nan
    big_v[1, 0] = 1e-9  # (a dominant study: the stable traces of the intercept-only model)
    x = np.column_stack([np.ones(k), np.linspace(-1.0, 2.0, k), np.arange(k) % 3 == 1])
    per_row = np.repeat(x[None], m, axis=0)
    per_row[:, :, 1] += np.cos(j)
    for design in (x, None, per_row):
        ref = fit_batch(big_y, big_v, design, method, "knha")
        for chunk_size, workers in ((1, 1), (3, 1), (7, 2), (64, 1), (None, 3)):
            out = fit_batch(
                big_y, big_v, design, method, "knha", chunk_size=chunk_size, workers=workers
            )
            for name, value in ref.items():
                np.testing.assert_array_equal(out[name], value, err_msg=f"{name} {chunk_size}")


# -- 6. exact rational arithmetic as the oracle of the closed forms (EE, DL) ----------------


def _solve(a: list[list[Fraction]], b: list[list[Fraction]]) -> list[list[Fraction]]:
    """``a⁻¹ b`` by Gauss-Jordan elimination in exact rational arithmetic."""
    p = len(a)
    rows = [[*a[i], *b[i]] for i in range(p)]
    for c in range(p):
        pivot = next(r for r in range(c, p) if rows[r][c] != 0)
        rows[c], rows[pivot] = rows[pivot], rows[c]
        inv = 1 / rows[c][c]
        rows[c] = [t * inv for t in rows[c]]
        for r in range(p):
            if r != c and rows[r][c] != 0:
                f = rows[r][c]
                rows[r] = [t - f * s for t, s in zip(rows[r], rows[c], strict=True)]
    return [row[p:] for row in rows]


def exact_wls(
    y: list[Fraction], v: list[Fraction], x: list[list[Fraction]], tau2: Fraction
) -> tuple[list[Fraction], list[list[Fraction]], Fraction, Fraction]:
    """The weighted least-squares fit with weights ``1/(v + τ²)``, exactly: coefficients
    ``(XᵀWX)⁻¹XᵀWy``, their covariance ``(XᵀWX)⁻¹``, ``Σw(y - Xb)²`` and
    ``tr P = Σw - tr((XᵀWX)⁻¹XᵀW²X)``."""
    k, p = len(y), len(x[0])
    w = [1 / (vi + tau2) for vi in v]
    a = [[sum(w[i] * x[i][r] * x[i][c] for i in range(k)) for c in range(p)] for r in range(p)]
    rhs = [[sum(w[i] * x[i][r] * y[i] for i in range(k))] for r in range(p)]
    eye = [[Fraction(int(r == c)) for c in range(p)] for r in range(p)]
    inv = _solve(a, eye)
    b = [sum(inv[r][c] * rhs[c][0] for c in range(p)) for r in range(p)]
    resid = [y[i] - sum(x[i][c] * b[c] for c in range(p)) for i in range(k)]
    q = sum(w[i] * resid[i] ** 2 for i in range(k))
    b2 = [
        [sum(w[i] ** 2 * x[i][r] * x[i][c] for i in range(k)) for c in range(p)] for r in range(p)
    ]
    trace = sum(w) - sum(inv[r][c] * b2[c][r] for r in range(p) for c in range(p))
    return b, inv, q, trace


@given(
    metareg_data(max_mods=2, max_p=3, ratios=(1.0, 1e3, 1e6, 1e9, 1e12)),
    st.sampled_from(["EE", "DL"]),
)
def test_ee_and_dl_against_exact_arithmetic(reg: Data, method: str) -> None:
    # the doubles given are exact rationals: Q_E = yᵀP₀y, tr P₀, τ²_DL = max(0, (Q_E -
    # (k - p))/tr P₀), the coefficients (XᵀWX)⁻¹XᵀWy and their covariance (XᵀWX)⁻¹ at the
    # engine's τ̂² (itself compared with the exact τ²), I² and H² from ṽ = (k - p)/tr P₀
    y, v, mods = reg
    r = fit(y, v, mods, method, "z")
    k, p = r.X.shape
    fy, fv = [Fraction(t) for t in y.tolist()], [Fraction(t) for t in v.tolist()]
    fx = [[Fraction(t) for t in row] for row in r.X.tolist()]
    _, _, q_e, trace0 = exact_wls(fy, fv, fx, Fraction(0))
    tau2 = max(Fraction(0), (q_e - (k - p)) / trace0) if method == "DL" else Fraction(0)
    b, vcov, _, _ = exact_wls(fy, fv, fx, Fraction(r.tau2))
    v_typical = (k - p) / trace0
    t = Fraction(r.tau2)
    expected = {
        "coef": [float(c) for c in b],
        "vcov": [[float(c) for c in row] for row in vcov],
        "se": [math.sqrt(float(vcov[j][j])) for j in range(p)],
        "q": float(q_e),
        "i2": float(100 * t / (t + v_typical)) if method == "DL" else r.i2,
        "h2": float((t + v_typical) / v_typical) if method == "DL" else r.h2,
    }
    rel = 1e-11 + floor(y, v, r.tau2)
    tol = tolerances(r, rel)
    for name, value in expected.items():
        err = np.abs(np.asarray(getattr(r, name), dtype=float) - np.asarray(value))
        assert np.all(err <= tol[name]), f"{name}: {getattr(r, name)} != {value} ({err})"
    # τ² (DL): to 1e-11 of τ² + ṽ
    err_tau2 = abs(r.tau2 - float(tau2))
    assert err_tau2 <= rel * (float(tau2) + float(v_typical))
    if method == "EE":
        assert r.tau2 == 0.0


#: variances from 1e-6 to 1e6 with three coefficients (found by these properties: REML
#: did not converge here before the root finder's fix, tests/test_engine.py)
EXTREME = {
    "yi": np.array([0.2, 0.6, -0.1, 0.4, 0.6, 0.3, 0.6, 0.9]),
    "vi": np.array([1e-6, 1e6, 1e-1, 1e5, 1e4, 1e1, 1e6, 1e-2]),
    "mods": {"x": np.array([8.0, 9, 5, 1, 2, 5, 2, 0]), "g": np.array([0.0, 1, 0, 1, 0, 1, 0, 0])},
}


def _exact_inputs(r: MetaRegResult) -> tuple[list[Fraction], list[Fraction], list[list[Fraction]]]:
    fy = [Fraction(t) for t in r.yi.tolist()]
    fv = [Fraction(t) for t in r.vi.tolist()]
    return fy, fv, [[Fraction(t) for t in row] for row in r.X.tolist()]


def exact_traces(
    u: list[Fraction], d: list[Fraction], x: list[list[Fraction]]
) -> tuple[Fraction, Fraction]:
    """``tr(P_u D)`` and ``tr((P_u D)²)`` of ``P_u = U - UX(XᵀUX)⁻¹XᵀU``, exactly."""
    k, p = len(u), len(x[0])
    a = [[sum(u[i] * x[i][r] * x[i][c] for i in range(k)) for c in range(p)] for r in range(p)]
    # (XᵀUX)⁻¹XᵀU, column by column
    h = _solve(a, [[u[i] * x[i][r] for i in range(k)] for r in range(p)])
    pd = [
        [
            ((u[i] if i == j else 0) - u[i] * sum(x[i][r] * h[r][j] for r in range(p))) * d[j]
            for j in range(k)
        ]
        for i in range(k)
    ]
    return sum(pd[i][i] for i in range(k)), sum(
        pd[i][j] * pd[j][i] for i in range(k) for j in range(k)
    )


def test_projector_traces_against_exact_arithmetic() -> None:
    r = fit(EXTREME["yi"], EXTREME["vi"], EXTREME["mods"], "REML", "z")
    fy, fv, fx = _exact_inputs(r)
    k, p = r.X.shape
    _, _, _, trace0 = exact_wls(fy, fv, fx, Fraction(0))
    t = Fraction(r.tau2)
    i2 = float(100 * t / (t + (k - p) / trace0))
    assert r.i2 == pytest.approx(i2, rel=1e-10)
    design = Design(r.yi, r.vi, r.X, padded=False, intercept=True)
    mom = Moments(design, 0.0)
    w = [1 / t for t in fv]
    exact_p, exact_pp = exact_traces(w, [Fraction(1)] * k, fx)
    assert exact_p == trace0
    assert mom.trace_p() == pytest.approx(float(exact_p), rel=1e-13)  # (was 15.10109)
    assert mom.trace_pp() == pytest.approx(float(exact_pp), rel=1e-13)  # (was -62.4)


def test_coefficients_against_exact_arithmetic_at_extreme_ratios() -> None:
    r = fit(EXTREME["yi"], EXTREME["vi"], EXTREME["mods"], "EE", "z")
    b, vcov, _, _ = exact_wls(*_exact_inputs(r), Fraction(0))
    se = np.sqrt([float(vcov[j][j]) for j in range(len(b))])
    exact = np.array([[float(c) for c in row] for row in vcov])
    assert np.all(np.abs(r.vcov - exact) <= 1e-11 * np.outer(se, se))
    assert np.all(np.abs(r.coef - [float(c) for c in b]) <= 1e-11 * (np.abs(r.coef) + se))


@given(metareg_data(max_k=10, max_p=4, ratios=(1e6, 1e9, 1e12, 1e15)))
def test_extreme_variance_ratios_against_exact_arithmetic(reg: Data) -> None:
    # issue #14: variance ratios up to 1e15 (one study carrying almost all the weight, with
    # a hat value near 1 where it is alone in a factor level or at an extreme of a
    # moderator). The exact traces are perfectly conditioned, and so are the coefficients
    # on their natural scales: the engine must give them to rounding, not to u cond(XᵀWX)
    # (before: tr P₀ off by up to 1e3 relative, tr P₀² by 1e12, negative; Cov β̂ by 2e-2)
    y, v, mods = reg
    r = fit(y, v, mods, "DL", "z")
    k, p = r.X.shape
    fy, fv, fx = _exact_inputs(r)
    ones = [Fraction(1)] * k
    design = Design(r.yi, r.vi, r.X, padded=False, intercept=True)
    mom = Moments(design, 0.0)
    tr_p, tr_pp = exact_traces([1 / t for t in fv], ones, fx)
    assert mom.trace_p() == pytest.approx(float(tr_p), rel=1e-12)
    assert mom.trace_pp() == pytest.approx(float(tr_pp), rel=1e-12)
    # DL: τ², I², H² and the SE of τ² from tr P₀ and tr P₀² (exactly, at the engine's τ²
    # for the SE), all within their ranges
    _, _, q_e, _ = exact_wls(fy, fv, fx, Fraction(0))
    tau2 = max(Fraction(0), (q_e - (k - p)) / tr_p)
    v_typical = (k - p) / tr_p
    # (τ² to rel of τ² + ṽ moves I² by at most 100 rel and H² by rel H²)
    rel = 1e-12 + floor(y, v, r.tau2)
    assert abs(r.tau2 - float(tau2)) <= rel * float(tau2 + v_typical)
    assert r.i2 == pytest.approx(float(100 * tau2 / (tau2 + v_typical)), abs=200.0 * rel)
    assert r.h2 == pytest.approx(float((tau2 + v_typical) / v_typical), rel=2.0 * rel)
    t = Fraction(r.tau2)
    var = 2 * (k - p) + 4 * t * tr_p + 2 * t * t * tr_pp
    assert r.tau2_se == pytest.approx(math.sqrt(float(var)) / float(tr_p), rel=1e-12)
    assert 0.0 <= r.i2 < 100.0
    assert r.h2 >= 1.0
    assert r.tau2_se > 0.0
    # the coefficients and their covariance (EE: the weights 1/v as given) on their scales
    b, vcov, _, _ = exact_wls(fy, fv, fx, Fraction(0))
    ee = fit(y, v, mods, "EE", "z")
    tol = tolerances(ee, 1e-12 + floor(y, v, 0.0))
    assert np.all(np.abs(ee.coef - [float(c) for c in b]) <= tol["coef"])
    exact_v = np.array([[float(c) for c in row] for row in vcov])
    assert np.all(np.abs(ee.vcov - exact_v) <= tol["vcov"])
    # Hedges' tr((I - H)V) (HE's τ²) and tr(((I - H)D)²) (its SE), D = V + τ̂²
    he = fit(y, v, mods, "HE", "z")
    tr_hv, _ = exact_traces(ones, fv, fx)
    resid = [
        fy[i] - sum(fx[i][c] * bc for c, bc in enumerate(exact_wls(fy, ones, fx, Fraction(0))[0]))
        for i in range(k)
    ]
    rss = sum(e * e for e in resid)
    tau2_he = max(Fraction(0), (rss - tr_hv) / (k - p))
    assert abs(he.tau2 - float(tau2_he)) <= (1e-12 + floor(y, v, he.tau2)) * float(
        tau2_he + tr_hv / (k - p)
    )
    _, tr_dd = exact_traces(ones, [t + Fraction(he.tau2) for t in fv], fx)
    se_he = math.sqrt(float(2 * tr_dd)) / (k - p)
    assert he.tau2_se == pytest.approx(se_he, rel=1e-12)


@given(
    metareg_data(ratios=(1e6, 1e9, 1e12, 1e15)),
    st.sampled_from(METHODS),
    st.sampled_from(TESTS),
)
def test_extreme_variance_ratios_are_fitted(reg: Data, method: str, test: str) -> None:
    # every estimator converges to finite numbers whatever the spread of the variances
    y, v, mods = reg
    r = fit(y, v, mods, method, test)
    assert r.converged
    assert r.tau2 >= 0.0
    assert math.isfinite(r.tau2)
    assert np.all(np.isfinite(r.coef))
    assert np.all(np.isfinite(r.vcov))
    assert np.all(r.se >= 0.0)
    # I² = 100 τ²/(τ² + ṽ) with ṽ = (k - p)/tr P₀ lies in [0, 100) and H² ≥ 1, since the
    # engine's tr P₀ is a sum of non-negative terms wherever the cheap formula could cancel
    # (test_heterogeneity_at_extreme_variance_ratios)
    assert 0.0 <= r.i2 < 100.0
    assert r.h2 >= (0.0 if method == "EE" else 1.0)
    if method == "EE":
        assert math.isnan(r.tau2_se)
    else:
        assert r.tau2_se >= 0.0


@pytest.mark.parametrize("case", ["PM", "DL"])
def test_heterogeneity_at_extreme_variance_ratios(case: str) -> None:
    if case == "PM":
        y = np.array([0.0, 0, 0, 0, 0, 0, 2])
        v = np.array([1e-12, 1e-6, 1e-6, 1e-6, 1e-6, 0.09999999999999999, 1.0])
        mods = {
            "year": np.array([2000.0, 2000, 2000, 2000, 2000.057155, 2000, 2000]),
            "x": np.array([0.0, 0, 0, 0, 0, 1.0000000000000002e-06, 1.0000000000000002e-06]),
            "g": np.array([0.0, 0, 0, 1, 0, 0, 0]),
        }
    else:
        y = np.zeros(7)
        v = np.array([1e-12, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1.0])
        mods = {
            "x": np.array([0.0, 0, 0, 0, 0, 0, 1e-6]),
            "g": np.array([0.0, 0, 0, 0, 1, 0, 0]),
            "year": np.array([2000.0, 2000, 2000, 2000, 2000, 2000.06, 2000]),
        }
    r = fit(y, v, mods, case, "z")
    assert r.v_typical > 0.0
    assert 0.0 <= r.i2 < 100.0
    assert r.tau2_se >= 0.0
    if case == "DL":
        assert r.q == 0.0
        assert r.tau2 == 0.0  # (Q_E below k - p)


def test_ragged_row_of_a_shared_design() -> None:
    k = 10
    x = np.zeros((k, 4))
    x[:, 0] = 1.0
    x[6, 1], x[7, 1], x[5, 2], x[4, 3] = 1e-6, 2.49e-4, 1e-6, 1e-6
    present = np.array([0, 0, 1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    big_y = np.where(present, 0.0, np.nan)[None, :]
    big_v = np.full((1, k), 1e-6)
    out = fit_batch(big_y, big_v, x, "EE", "z")
    one = fit(big_y[0, present], big_v[0, present], x[present, 1:], "EE", "z")
    se = np.sqrt(np.diag(one.vcov))
    assert np.all(np.abs(out["vcov"][0] - one.vcov) <= 1e-12 * np.outer(se, se))


def test_tiny_effects_knapp_hartung_ses_keep_their_digits() -> None:
    # effects ~1e-161 (found by hypothesis): Q ~ 1e-322 and s²·Var are subnormal; the SEs
    # (~1e-162, normal numbers) are s·SE, not √(s²·Var), so the ratio to the z SEs is
    # one number to rounding; predictions whose variance cancels are NaN with a warning
    y = np.zeros(12)
    y[-1] = 2.54548601e-161
    x = np.full(12, 5.0)
    x[10] = 4.999819
    z = metareg(y, np.ones(12), mods={"x0": x}, method="EE", test="z")
    knha = metareg(y, np.ones(12), mods={"x0": x}, method="EE", test="knha")
    ratio = knha.se / z.se
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-14)
    with pytest.warns(AccuracyWarning, match="subnormal"):
        pred = knha.predict()
    np.testing.assert_array_equal(pred.pred, knha.fitted)
