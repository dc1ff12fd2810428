"""Fitting the mixed-effects model of a :class:`~ketameta._engine.design.Design`: τ², the
coefficients and their tests, heterogeneity, and the omnibus test of moderators.

One function, :func:`fit_design`, serves one analysis and a batch, the intercept-only
model and meta-regression; its output is a dict of numbers per analysis (Python floats
for one analysis, ``(m,)`` arrays for a batch; vectors and matrices as lists of them).

References
----------
.. [1] Viechtbauer, W. (2005). J Educ Behav Stat 30(3), 261-293.
.. [2] Knapp, G., & Hartung, J. (2003). Improved tests for a random effects
   meta-regression with a single covariate. Stat Med 22(17), 2693-2710.
   https://doi.org/10.1002/sim.1482
.. [3] Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a
   meta-analysis. Stat Med 21(11), 1539-1558. https://doi.org/10.1002/sim.1186
.. [4] Raudenbush, S. W. (2009). Analyzing effect sizes: Random-effects models. In The
   Handbook of Research Synthesis and Meta-Analysis (2nd ed.). Russell Sage.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from . import _num as nm
from . import tau2 as tau2_mod
from ._num import Flag, Num
from .design import Design
from .inference import chi2_sf, f_sf, test_critical_value, two_sided_p
from .linalg import Factor, Mat, Vec, dot, quad
from .moments import Moments
from .scalarize import scalarize


def fit_design(
    design: Design,
    *,
    method: str,
    test: str,
    level: float,
    tau2_fixed: float | None,
    control: dict[str, Any],
    btt: Sequence[int] | None = None,
    derive: bool = True,
) -> dict[str, Any]:
    """Fit the model; return a dict of statistics (see the module docstring).

    `btt`: the coefficients of the omnibus test (default: all but the intercept, or the
    intercept of an intercept-only model). ``derive=False`` leaves out the statistics that
    :func:`derived_statistics` computes from the others (a batch's result derives them
    when they are read). Callers hold ``np.errstate(divide="ignore", invalid="ignore",
    over="ignore")``.
    """
    k, p = design.k, design.p
    zero = design.full(0.0)
    ee = Moments(design, zero, w=design.w0)
    entry = tau2_mod.TAU2_ESTIMATORS[method]
    if tau2_fixed is None:
        tau2, converged, iterations = tau2_mod.estimate(design, method, control, ee)
    else:  # τ² fixed: its SE is the estimator's formula evaluated there (as metafor)
        tau2, converged, iterations = zero + tau2_fixed, design.flag(True), zero
    tau2 = nm.where(k > p, tau2, zero)
    # the moments at the final τ², for the coefficients (and the SE of τ̂²)
    if method == "EE" and tau2_fixed is None:
        mom = ee
    elif design.single and design.last is not None and design.last[0] == tau2:
        # the solver stopped where it evaluated the score (e.g. τ² = 0): its sums
        mom = Moments.of_sums(design, *design.last)
    else:
        # (Q at τ̂², from yᵀWy, for Knapp-Hartung and the likelihood check below)
        needs_q = test in ("knha", "adhoc") or entry.likelihood
        mom = Moments(design, tau2, entry.se_powers, r2=needs_q)
    design.last = None  # (the moments refer to the design: no reference cycle is kept)
    zeroed: Flag = design.flag(False)
    if entry.likelihood and tau2_fixed is None and (not design.single or tau2 > 0):
        # as metafor: a root of the score whose likelihood is below the likelihood at
        # τ² = 0 (a lower local maximum) gives way to τ² = 0
        zeroed = zero_is_more_likely(design, tau2, method, ee, mom)
        if isinstance(zeroed, bool):
            if zeroed:
                tau2, mom = zero, Moments(design, zero, entry.se_powers)
        elif zeroed.any():  # (the moments at τ² = 0 of those rows are the ee moments)
            tau2 = nm.where(zeroed, zero, tau2)
            mom = mom.where(zeroed, ee)
    tau2_se = nm.where(k > p, entry.standard_error(design, tau2, ee, mom), math.nan)

    # heterogeneity: the residual Q with equal-effects weights
    q = ee.q()
    v_typical = nm.div(k - p, ee.trace_p())  # Higgins & Thompson (2002), eq. 9

    # the coefficients at the final τ² (in the basis, then mapped back through R)
    vcov_q = mom.inv
    beta_q = [b0 + d for b0, d in zip(design.beta0, mom.delta, strict=True)]
    coef, vcov = _from_basis(design, beta_q, vcov_q)
    # (without the normal equations' error where the weights span many orders of magnitude)
    coef, vcov = mom.in_design(coef, vcov)
    se = [nm.sqrt(vcov[j][j]) for j in range(p)]
    exact_fit: Flag = False
    if test in ("knha", "adhoc"):
        # Knapp & Hartung (2003); "adhoc" never narrower than the z interval. The SEs are
        # scaled by s, not taken from the variances scaled by s²: for tiny effects (~1e-160)
        # s²·Var is subnormal and keeps only a few bits
        s2: Num = nm.where(k > p, nm.div(mom.q(), k - p), 1.0)
        if test == "adhoc":
            s2 = nm.maximum(s2, 1.0)
        s = nm.sqrt(s2)
        se = [s * e for e in se]
        vcov = [[s2 * c for c in row] for row in vcov]
        exact_fit = is_exact_fit(design, mom)
    out: dict[str, Any] = {
        "coef": coef,
        "vcov": vcov,
        "se": se,
        "tau2": tau2,
        "tau2_se": tau2_se,
        "q": q,
        "k": k,
        "converged": converged,
        "iterations": iterations,
        "v_typical": v_typical,
        "zeroed": zeroed,
        "singular": design.singular,
        "exact_fit": exact_fit,
        # percent weights of one analysis (a batch derives them on demand from τ²)
        "weights": mom.percent_weights() if design.single else None,
    }
    if derive:
        derived = derived_statistics_scalar if design.single else derived_statistics
        out.update(
            derived(
                coef,
                se,
                tau2=tau2,
                q=q,
                k=k,
                v_typical=v_typical,
                zero=zero,
                p=p,
                intercept=design.intercept,
                equal_effects=method == "EE" and tau2_fixed is None,
                test=test,
                level=level,
            )
        )
    btt = default_btt(design.p, design.intercept) if btt is None else btt
    if btt:  # (an empty `btt`: no omnibus test)
        out.update(moderator_test(coef, vcov, btt, reference_df(k, p, test), test))
    return out


def reference_df(k: Num, p: int, test: str) -> Num:
    """Degrees of freedom of the reference distribution of the coefficients' tests:
    ``k - p`` for the t-based tests (a fit without residual df falls back to z), inf for
    z."""
    return math.inf if test == "z" else nm.where(k > p, k - p + 0.0, math.inf)


def derived_statistics(
    coef: Vec,
    se: Vec,
    *,
    tau2: Num,
    q: Num,
    k: Num,
    v_typical: Num,
    zero: Num,
    p: int,
    intercept: bool,
    equal_effects: bool,
    test: str,
    level: float,
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """The statistics that follow from a fit's coefficients, their standard errors, τ²,
    Q and the typical within-study variance: the tests and intervals of the
    coefficients (and the prediction interval of the intercept-only model), τ, I², H²
    and the test of Q (written once: :func:`fit_design` and the batch results, which
    compute them when they are read, call this).

    `zero` is 0 for every analysis; `equal_effects`: the equal-effects model (I² and H²
    from Q, Higgins & Thompson 2002, rather than from τ²); `only`: the statistics to
    compute (default: all).
    """
    o = nm  # (one analysis: derived_statistics_scalar, generated from this source)
    out: dict[str, Any] = {}
    every = only is None  # (every statistic: the usual case, without the name checks)
    names = _DERIVED_NAMES if only is None else frozenset(only)
    q_df = k - p
    if every or "q_df" in names:
        out["q_df"] = q_df
    if every or "q_pvalue" in names:
        out["q_pvalue"] = o.where(q_df > 0, chi2_sf(o.maximum(q_df, 1.0), q), 1.0)
    if every or "i2" in names or "h2" in names:
        if equal_effects:
            i2 = o.where(q > 0.0, 100.0 * o.maximum(0.0, o.div(q - q_df, q)), zero)
            h2 = o.where(q_df > 0, o.div(q, q_df), 1.0)
        else:
            i2 = o.where(k > p, o.div(100.0 * tau2, tau2 + v_typical), zero)
            h2 = o.where(k > p, o.div(tau2 + v_typical, v_typical), 1.0)
        out["i2"], out["h2"] = i2, h2
    if every or "tau" in names:
        out["tau"] = o.sqrt(tau2)
    df = reference_df(k, p, test)
    out["df"] = df
    tests = every or "statistic" in names or "pvalue" in names
    intervals = every or "ci_lower" in names or "ci_upper" in names
    crit: Num = math.nan
    if every or not names.isdisjoint(_INTERVAL_NAMES):
        crit = out["crit"] = test_critical_value(level, df, test)
    if tests or intervals:  # (one pass over the coefficients)
        stat: list[Num] = []
        pvalue: list[Num] = []
        lower: list[Num] = []
        upper: list[Num] = []
        for b, s in zip(coef, se, strict=True):
            if tests:
                z = o.div(b, s)
                stat.append(z)
                pvalue.append(two_sided_p(z, df, test))
            if intervals:
                half = crit * s
                lower.append(b - half)
                upper.append(b + half)
        if tests:
            out["statistic"], out["pvalue"] = stat, pvalue
        if intervals:
            out["ci_lower"], out["ci_upper"] = lower, upper
    if p == 1 and intercept and (every or "pred_lower" in names or "pred_upper" in names):
        pred_half = crit * o.sqrt(tau2 + se[0] * se[0])
        out["pred_lower"], out["pred_upper"] = coef[0] - pred_half, coef[0] + pred_half
    return out


#: the statistics :func:`derived_statistics` computes (``df`` always)
_INTERVAL_NAMES = frozenset(("ci_lower", "ci_upper", "crit", "pred_lower", "pred_upper"))
_DERIVED_NAMES = frozenset(
    ("q_df", "q_pvalue", "i2", "h2", "tau", "statistic", "pvalue", *_INTERVAL_NAMES)
)

#: :func:`derived_statistics` for one analysis's Python floats (generated from its source)
derived_statistics_scalar = scalarize(derived_statistics)


def is_exact_fit(design: Design, mom: Moments) -> Flag:
    """Whether the residuals are rounding noise: ``Σwr² ≤ (16 k ε)² Σwy²`` (ε the machine
    epsilon), where the effects lie in the column space of the design (e.g. identical
    effects of an intercept-only model). The residual variance of Knapp-Hartung's test is
    then 0 to within rounding, and the test undefined."""
    s, lay = mom.s[0], design.layout
    b0 = design.beta0
    # Σ w y² of the uncentred effects
    total = s[lay.yy] + 2.0 * dot(b0, lay.vector(s)) + quad(lay.matrix(s), b0)
    bound = 16.0 * design.k * np.finfo(np.float64).eps
    exact = mom.q() <= bound * bound * total
    return bool(exact) if design.single else np.asarray(exact)


def default_btt(p: int, intercept: bool) -> list[int]:
    """The coefficients of the default omnibus test: all but the intercept (all of an
    intercept-only model)."""
    if intercept and p > 1:
        return list(range(1, p))
    return list(range(p))


def moderator_test(coef: Vec, vcov: Mat, btt: Sequence[int], df: Num, test: str) -> dict[str, Any]:
    """The Wald test that the coefficients `btt` are all 0 (metafor's ``QM``).

    ``QM = b_Sᵀ V_S⁻¹ b_S`` ~ χ²(m) for ``test="z"``; for t-based tests ``QM/m`` ~
    F(m, k - p), reported as the F statistic (as metafor).
    """
    idx = list(btt)
    m = len(idx)
    sub_v = [[vcov[i][j] for j in idx] for i in idx]
    sub_b = [coef[i] for i in idx]
    qm = Factor(sub_v).inverse_quad(sub_b)
    if test == "z":
        return {"qm": qm, "qm_df": float(m), "qm_pvalue": chi2_sf(float(m), nm.maximum(qm, 0.0))}
    f = qm / m
    return {"qm": f, "qm_df": float(m), "qm_pvalue": f_sf(float(m), df, nm.maximum(f, 0.0))}


def _from_basis(design: Design, beta_q: Vec, vcov_q: Mat) -> tuple[Vec, Mat]:
    """Coefficients and covariance of ``X = Q R``'s parametrisation: ``β = R⁻¹β_Q``,
    ``V = R⁻¹ V_Q R⁻ᵀ`` (back-substitution; R upper triangular)."""
    r = design.r
    if r is None:
        return beta_q, vcov_q
    p = design.p
    # T = R⁻¹, upper triangular, column by column
    t: Mat = [[0.0] * p for _ in range(p)]
    for j in range(p):
        for i in reversed(range(j + 1)):
            s: Num = 1.0 if i == j else 0.0
            for m in range(i + 1, j + 1):
                s = s - r[i][m] * t[m][j]
            t[i][j] = nm.div(s, r[i][i])
    beta: Vec = []
    for i in range(p):
        s = t[i][i] * beta_q[i]
        for m in range(i + 1, p):
            s = s + t[i][m] * beta_q[m]
        beta.append(s)
    # V = T V_Q Tᵀ
    tv: Mat = [
        [_dot_upper(t, i, [vcov_q[m][j] for m in range(p)]) for j in range(p)] for i in range(p)
    ]
    vcov: Mat = [[_dot_upper(t, j, tv[i]) for j in range(p)] for i in range(p)]
    return beta, vcov


def _dot_upper(t: Mat, i: int, col: Vec) -> Num:
    """Row `i` of the upper-triangular `t` times `col`."""
    s = t[i][i] * col[i]
    for m in range(i + 1, len(col)):
        s = s + t[i][m] * col[m]
    return s


def zero_is_more_likely(design: Design, tau2: Num, method: str, ee: Moments, mom: Moments) -> Flag:
    """Whether the (restricted) likelihood at τ² = 0 exceeds that at `tau2` (> 0)
    (:func:`ketameta._engine.tau2.log_likelihood_gain` is negative). `ee` and `mom` are the
    moments at 0 and at `tau2`."""
    if design.single:
        # log is concave: Σ log(1 + τ²/v_i) ≤ k log(1 + τ² Σ(1/v_i)/k); a bound ≤ 0 settles
        # the usual case (one maximum) without another pass over the studies
        rest = mom.q() - ee.q()
        if method == "REML":
            rest = rest + (mom.logdet() - ee.logdet())
        n = float(design.k)
        if not n * math.log1p(float(tau2) * float(ee.sw) / n) + float(rest) > 0.0:
            return False
        return bool(tau2_mod.log_likelihood_gain(design, tau2, method, ee, mom) < 0.0)
    gain = tau2_mod.log_likelihood_gain(design, tau2, method, ee, mom)
    return np.asarray((np.asarray(tau2) > 0.0) & (gain < 0.0))


def q_profile(
    design: Design, level: float, control: dict[str, Any], tau2_max: Num
) -> tuple[Num, Num]:
    """Q-profile confidence limits for τ² (Viechtbauer 2007).

    The lower limit solves ``Q(τ²) = χ²_{k-p; (1+level)/2}`` and the upper
    ``Q(τ²) = χ²_{k-p; (1-level)/2}`` (upper-tail quantiles); a limit is 0 when ``Q(0)``
    is already below its target, and `tau2_max` when the root lies beyond the search range
    ``[0, tau2_max]``.
    """
    from scipy import special

    df = nm.maximum(design.k - design.p, 1.0)
    alpha = 1.0 - level
    zero = design.full(0.0)
    ctl = {**control, "threshold": 1e-13}
    limits = []
    for quantile in (alpha / 2.0, 1.0 - alpha / 2.0):
        target = special.chdtri(df, quantile)
        target = float(target) if np.ndim(target) == 0 else target
        root, _, _ = tau2_mod.solve(
            design, "Q", zero, control=ctl, method="Q-profile", target=target
        )
        limits.append(nm.minimum(root, tau2_max))
    return limits[0], limits[1]
