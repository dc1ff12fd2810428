"""The numeric core shared by :func:`ketameta.pool` and :func:`ketameta.pool_many`.

Everything here works on arrays of shape ``(m, k)``: ``m`` independent meta-analyses
of up to ``k`` studies, with a boolean mask of the studies that are present (ragged
batches are NaN-padded by the caller). A single meta-analysis is the case ``m = 1``,
so ``pool`` and the batch engine cannot drift apart.

No validation happens here: callers pass finite ``y`` and positive ``v`` where
``present`` is True (anything where it is False is ignored).

Notation follows Viechtbauer (2005): ``w_i = 1/(v_i + τ²)``, ``μ̂ = Σ w y / Σ w``, the
generalised Q statistic ``Q(τ²) = Σ w (y - μ̂)²`` and the REML projection
``P = W - w wᵀ/Σ w`` with ``tr P = Σw - Σw²/Σw`` and
``tr P² = Σw² - 2Σw³/Σw + (Σw²/Σw)²``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ._typing import BoolArray, FloatArray
from ._warnings import ConvergenceError

#: τ² estimators, in metafor's spelling; "FE" and "CE" are aliases of "EE"
TAU2_METHODS = ("EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB")
METHOD_ALIASES = {"FE": "EE", "CE": "EE"}
#: tests / interval methods for the pooled estimate
TESTS = ("z", "t", "knha", "adhoc")

DEFAULT_CONTROL: dict[str, Any] = {
    "maxiter": 1000,  # iterations of Fisher scoring / root finding
    "threshold": 1e-10,  # convergence: |Δτ²| ≤ threshold · max(1, τ²)
    "tau2_init": None,  # starting value for ML/REML (default: Hedges' estimate)
    "step_adj": 1.0,  # Fisher-scoring step length (halved whenever τ² would go negative)
}


class Sums:
    """Weighted sums over the study axis for weights ``w`` (zero for absent studies)."""

    __slots__ = ("mu", "r", "sw", "sw2", "w")

    def __init__(self, w: FloatArray, y: FloatArray) -> None:
        self.w = w
        self.sw = w.sum(axis=-1)
        self.mu = (w * y).sum(axis=-1) / self.sw
        self.r = y - self.mu[:, None]
        self.sw2 = (w * w).sum(axis=-1)

    def q(self) -> FloatArray:
        """Generalised Q, ``Σ w (y - μ̂)²``."""
        return np.asarray((self.w * self.r * self.r).sum(axis=-1), dtype=np.float64)

    def trace_p(self) -> FloatArray:
        return np.asarray(self.sw - self.sw2 / self.sw, dtype=np.float64)

    def trace_pp(self) -> FloatArray:
        sw3 = (self.w * self.w * self.w).sum(axis=-1)
        ratio = self.sw2 / self.sw
        return np.asarray(self.sw2 - 2.0 * sw3 / self.sw + ratio * ratio, dtype=np.float64)


def tolerance(threshold: float, tau2: FloatArray, v_scale: FloatArray) -> FloatArray:
    """Convergence tolerance ``threshold · min(max(1, τ²), max(τ², v̄))``.

    Never looser than ``threshold · max(1, τ²)``, and relative to the scale of the data
    when the variances are small, so results are equivariant under rescaling.
    """
    return threshold * np.minimum(np.maximum(1.0, tau2), np.maximum(tau2, v_scale))


def _v_scale(v: FloatArray, pw: FloatArray) -> FloatArray:
    return np.asarray((v * pw).sum(axis=-1) / pw.sum(axis=-1), dtype=np.float64)


def weights(v: FloatArray, pw: FloatArray, tau2: FloatArray) -> FloatArray:
    """Inverse-variance weights ``pw / (v + τ²)`` (``pw`` is 1 for present studies, else 0)."""
    return pw / (v + tau2[:, None])


def generalised_q(y: FloatArray, v: FloatArray, pw: FloatArray, tau2: FloatArray) -> FloatArray:
    """``Q(τ²)`` of Viechtbauer (2007), decreasing in τ²."""
    return Sums(weights(v, pw, tau2), y).q()


def _unweighted(y: FloatArray, pw: FloatArray, k: FloatArray) -> tuple[FloatArray, FloatArray]:
    ybar = (pw * y).sum(axis=-1) / k
    resid = (y - ybar[:, None]) * pw
    return ybar, (resid * resid).sum(axis=-1)


def solve_q_equation(
    y: FloatArray,
    v: FloatArray,
    pw: FloatArray,
    target: FloatArray,
    *,
    method: str,
    maxiter: int,
    threshold: float,
) -> tuple[FloatArray, BoolArray, FloatArray]:
    """Solve ``Q(τ²) = target`` for τ² ≥ 0 in every row (0 where ``Q(0) ≤ target``).

    Safeguarded Newton iteration on a bracket: ``Q`` is decreasing, ``Q(0)`` bounds it
    from above and ``Q(τ²) ≤ RSS/τ²`` (RSS of the unweighted mean) gives the upper end
    ``RSS/target``. ``dQ/dτ² = -Σ w² (y - μ̂)²``. Returns (τ², converged, iterations).
    """
    m = y.shape[0]
    k = pw.sum(axis=-1)
    _, rss = _unweighted(y, pw, k)
    zero = np.zeros(m)
    q0 = generalised_q(y, v, pw, zero)
    active = q0 > target
    lo = zero.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        hi = np.where(active, rss / target, 0.0)
    tau2 = zero.copy()
    iterations = np.zeros(m)
    converged = ~active
    v_scale = _v_scale(v, pw)
    for _ in range(maxiter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        t = tau2[idx]
        s = Sums(weights(v[idx], pw[idx], t), y[idx])
        f = s.q() - target[idx]
        slope = -(s.w * s.w * s.r * s.r).sum(axis=-1)
        # keep the bracket [lo, hi] around the root
        lo_i = np.where(f > 0, t, lo[idx])
        hi_i = np.where(f <= 0, t, hi[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = t - f / slope
        inside = np.isfinite(newton) & (newton > lo_i) & (newton < hi_i)
        new = np.where(inside, newton, 0.5 * (lo_i + hi_i))
        lo[idx], hi[idx] = lo_i, hi_i
        tol = tolerance(threshold, new, v_scale[idx])
        done = (np.abs(new - t) <= tol) | (hi_i - lo_i <= tol)
        tau2[idx] = new
        iterations[idx] += 1
        converged[idx[done]] = True
        active[idx[done]] = False
    if active.any():
        raise ConvergenceError(method, maxiter, "the Q-equation root was not found")
    return tau2, converged, iterations


def _fisher_scoring(
    y: FloatArray,
    v: FloatArray,
    pw: FloatArray,
    start: FloatArray,
    *,
    reml: bool,
    maxiter: int,
    threshold: float,
    step_adj: float,
) -> tuple[FloatArray, BoolArray, FloatArray]:
    """Maximise the (restricted) likelihood over τ² ≥ 0 by Fisher scoring.

    ML step: ``(Σw²r² - Σw) / Σw²``; REML step: ``(Σw²r² - tr P) / tr P²``
    (Viechtbauer 2005, eqs. 11 and 13). A step that would make τ² negative is halved
    until it does not (as metafor). The sign of each step brackets the root of the score
    equation; when a step leaves the bracket (Fisher scoring can oscillate when one study
    dominates), the bracket is bisected instead, so every run converges. At the boundary,
    where the score at τ² = 0 is negative, the estimate is exactly 0.
    """
    m = y.shape[0]
    tau2 = start.copy()
    lo, hi = np.zeros(m), np.full(m, np.inf)
    v_scale = _v_scale(v, pw)
    iterations = np.zeros(m)
    converged = np.zeros(m, dtype=bool)
    active = np.ones(m, dtype=bool)
    for _ in range(maxiter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        t = tau2[idx]
        s = Sums(weights(v[idx], pw[idx], t), y[idx])
        wr = s.w * s.r
        score = (wr * wr).sum(axis=-1)
        step = (score - s.trace_p()) / s.trace_pp() if reml else (score - s.sw) / s.sw2
        step = step * step_adj
        lo_i = np.where(step > 0, np.maximum(lo[idx], t), lo[idx])
        hi_i = np.where(step < 0, np.minimum(hi[idx], t), hi[idx])
        new = t + step
        neg = new < 0
        if neg.any():  # halve the step until τ² stays non-negative: step / 2^j ≤ τ²
            with np.errstate(divide="ignore", invalid="ignore"):
                halvings = np.ceil(np.log2(-step / t))
                halved = np.maximum(t + step / np.exp2(halvings), 0.0)
            new = np.where(neg, np.where(t > 0, halved, 0.0), new)
        outside = (new < lo_i) | (new > hi_i)
        new = np.where(outside & np.isfinite(hi_i), 0.5 * (lo_i + hi_i), new)
        lo[idx], hi[idx] = lo_i, hi_i
        tol = tolerance(threshold, new, v_scale[idx])
        done = (np.abs(new - t) <= tol) | (hi_i - lo_i <= tol)
        tau2[idx] = new
        iterations[idx] += 1
        converged[idx[done]] = True
        active[idx[done]] = False
    if active.any():
        raise ConvergenceError("REML" if reml else "ML", maxiter)
    # boundary: if the score at 0 is not positive and we converged towards 0, τ² = 0
    near_zero = tau2 <= 1e3 * tolerance(threshold, tau2, v_scale)
    if near_zero.any():
        idx = np.flatnonzero(near_zero)
        s = Sums(weights(v[idx], pw[idx], np.zeros(idx.size)), y[idx])
        wr = s.w * s.r
        score = (wr * wr).sum(axis=-1) - (s.trace_p() if reml else s.sw)
        tau2[idx[score <= 0]] = 0.0
    return tau2, converged, iterations


def estimate_tau2(
    y: FloatArray, v: FloatArray, pw: FloatArray, method: str, control: dict[str, Any]
) -> tuple[FloatArray, BoolArray, FloatArray]:
    """τ² by `method` for every row; returns (τ², converged, iterations).

    Rows with fewer than two studies get τ² = 0 (there is no heterogeneity to estimate).
    """
    m = y.shape[0]
    k = pw.sum(axis=-1)
    single = k < 2
    if single.any() and method != "EE":
        tau2, converged, iterations = np.zeros(m), np.ones(m, dtype=bool), np.zeros(m)
        rows = np.flatnonzero(~single)
        if rows.size:
            t, c, i = estimate_tau2(y[rows], v[rows], pw[rows], method, control)
            tau2[rows], converged[rows], iterations[rows] = t, c, i
        return tau2, converged, iterations
    ones = np.ones(m, dtype=bool)
    zeros = np.zeros(m)
    if method == "EE":
        return zeros, ones, zeros
    if method in ("DL", "HS"):
        s = Sums(pw / v, y)
        q = s.q()
        if method == "DL":  # DerSimonian & Laird (1986)
            with np.errstate(divide="ignore", invalid="ignore"):
                raw = (q - (k - 1)) / s.trace_p()
        else:  # Hunter & Schmidt (2004)
            raw = (q - k) / s.sw
        return np.where(k > 1, np.maximum(0.0, raw), 0.0), ones, zeros
    if method in ("HE", "SJ"):
        _, rss = _unweighted(y, pw, k)
        if method == "HE":  # Hedges (1983): method of moments on the unweighted mean
            with np.errstate(divide="ignore", invalid="ignore"):
                raw = rss / (k - 1) - (pw * v).sum(axis=-1) / k
            return np.where(k > 1, np.maximum(0.0, raw), 0.0), ones, zeros
        # Sidik & Jonkman (2005): one weighted step from τ0² = Σ(y - ȳ)²/k
        tau0 = rss / k
        s = Sums(weights(v, pw, tau0), y)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = tau0 * s.q() / (k - 1)
        return np.where((k > 1) & (tau0 > 0), raw, 0.0), ones, zeros
    maxiter, threshold = int(control["maxiter"]), float(control["threshold"])
    if method in ("PM", "EB"):  # Paule & Mandel (1982); Morris (1983): Q(τ²) = k - 1
        return solve_q_equation(
            y, v, pw, k - 1.0, method=method, maxiter=maxiter, threshold=threshold
        )
    init = control["tau2_init"]
    if init is None:
        start, _, _ = estimate_tau2(y, v, pw, "HE", control)
    else:
        start = np.full(m, float(init))
    return _fisher_scoring(
        y,
        v,
        pw,
        start,
        reml=method == "REML",
        maxiter=maxiter,
        threshold=threshold,
        step_adj=float(control["step_adj"]),
    )


def tau2_standard_error(
    y: FloatArray, v: FloatArray, pw: FloatArray, tau2: FloatArray, method: str
) -> FloatArray:
    """Standard error of the τ² estimate, by estimator.

    Method-of-moments estimators ``τ̂² = (yᵀAy - tr(AV))/c`` have
    ``Var = 2 tr((A(V + τ²I))²)/c²`` (quadratic forms of normal vectors); ML and
    REML use the inverse Fisher information, ``2/Σw²`` and ``2/tr P²`` (Viechtbauer
    2005; 2007). PM/EB use Morris' (1983) approximation ``2k²/((k-1)(Σw)²)``.
    """
    k = pw.sum(axis=-1)
    t = np.maximum(tau2, 0.0)
    if method == "EE":
        return np.full(tau2.shape, np.nan)
    if method in ("DL", "HS"):
        s0 = Sums(pw / v, y)
        tp, tpp = s0.trace_p(), s0.trace_pp()
        var_q = 2.0 * (k - 1) + 4.0 * t * tp + 2.0 * t * t * tpp
        denom = tp if method == "DL" else s0.sw
        return np.asarray(np.sqrt(var_q) / denom, dtype=np.float64)
    if method in ("HE", "SJ"):
        if method == "HE":
            # A = I - J/k (unweighted residual projector), c = k - 1
            vv = v * pw
            sv, sv2 = vv.sum(axis=-1), (vv * vv).sum(axis=-1)
            tr_pv = sv - sv / k
            tr_pvpv = sv2 * (1.0 - 2.0 / k) + sv * sv / (k * k)
            var = 2.0 * tr_pvpv + 4.0 * t * tr_pv + 2.0 * t * t * (k - 1)
            return np.asarray(np.sqrt(var) / (k - 1), dtype=np.float64)
        _, rss = _unweighted(y, pw, k)
        tau0 = rss / k
        return _sj_standard_error(v, pw, t, tau0, k)
    s = Sums(weights(v, pw, t), y)
    if method in ("PM", "EB"):
        # Morris (1983): Var(τ̂²) ≈ 2 (τ² + v̄)² / (k - 1), v̄ from the mean weight Σw/k
        return np.asarray(np.sqrt(2.0 / (k - 1)) * k / s.sw, dtype=np.float64)
    if method == "ML":
        return np.asarray(np.sqrt(2.0 / s.sw2), dtype=np.float64)
    return np.asarray(np.sqrt(2.0 / s.trace_pp()), dtype=np.float64)


def _sj_standard_error(
    v: FloatArray, pw: FloatArray, t: FloatArray, tau0: FloatArray, k: FloatArray
) -> FloatArray:
    # τ̂²_SJ = τ0² yᵀP0y/(k-1) with P0 the weighted projector for weights 1/(v + τ0²):
    # Var = τ0⁴ · 2 tr((P0 (V + τ²I))²) / (k-1)², expanding the trace.
    w = weights(v, pw, tau0)
    sw = w.sum(axis=-1)
    vv = v * pw
    # P0 = W - w wᵀ/sw; M = P0 (V + τ² I) ; tr(M M) via sums
    d = vv + t[:, None] * pw  # diagonal of V + τ² I on present studies
    a = w * d  # diag(W D)
    wd = (w * w * d).sum(axis=-1)  # wᵀ D w
    tr = (a * a).sum(axis=-1) - 2.0 * (w * w * w * d * d).sum(axis=-1) / sw + (wd / sw) ** 2
    return np.asarray(tau0 * np.sqrt(2.0 * tr) / (k - 1), dtype=np.float64)


def fit(
    y: FloatArray,
    v: FloatArray,
    pw: FloatArray,
    *,
    method: str,
    test: str,
    level: float,
    tau2_fixed: float | None,
    control: dict[str, Any],
) -> dict[str, Any]:
    """Fit the random-effects (or common-effect) model in every row; return a dict of arrays."""
    k = pw.sum(axis=-1)
    if tau2_fixed is None:
        tau2, converged, iterations = estimate_tau2(y, v, pw, method, control)
        tau2 = np.where(k > 1, tau2, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # k = 1 rows: NaN, masked below
            tau2_se = tau2_standard_error(y, v, pw, tau2, method)
        tau2_se = np.where(k > 1, tau2_se, np.nan)
    else:  # τ² fixed: its SE is the estimator's formula evaluated there (as metafor)
        tau2 = np.full(y.shape[0], float(tau2_fixed))
        converged = np.ones(y.shape[0], dtype=bool)
        iterations = np.zeros(y.shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            tau2_se = tau2_standard_error(y, v, pw, tau2, method)
        tau2_se = np.where(k > 1, tau2_se, np.nan)

    s0 = Sums(pw / v, y)
    q = s0.q()
    q_df = k - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        q_pvalue = np.where(q_df > 0, special.chdtrc(np.maximum(q_df, 1), q), 1.0)
        # typical within-study variance (Higgins & Thompson 2002, eq. 9)
        v_typical = q_df * s0.sw / (s0.sw * s0.sw - s0.sw2)
        if method == "EE" and tau2_fixed is None:
            i2 = np.where(q > 0, 100.0 * np.maximum(0.0, (q - q_df) / q), 0.0)
            h2 = np.where(q_df > 0, q / q_df, 1.0)
        else:
            i2 = np.where(k > 1, 100.0 * tau2 / (tau2 + v_typical), 0.0)
            h2 = np.where(k > 1, (tau2 + v_typical) / v_typical, 1.0)

    s = Sums(weights(v, pw, tau2), y)
    mu = s.mu
    se = 1.0 / np.sqrt(s.sw)
    df = np.where(test == "z", np.inf, k - 1.0)
    if test in ("knha", "adhoc"):
        # Knapp & Hartung (2003); "adhoc" never narrower than the z interval
        with np.errstate(divide="ignore", invalid="ignore"):
            s2 = np.where(k > 1, s.q() / (k - 1), 1.0)
        if test == "adhoc":
            s2 = np.maximum(s2, 1.0)
        se = se * np.sqrt(s2)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = mu / se
    if test == "z":
        pvalue = 2.0 * special.ndtr(-np.abs(stat))
        crit = np.full(mu.shape, special.ndtri(0.5 + level / 2.0))
    else:
        pvalue = 2.0 * special.stdtr(df, -np.abs(stat))
        crit = special.stdtrit(df, 0.5 + level / 2.0)
    half = crit * se
    pred_half = crit * np.sqrt(tau2 + se * se)
    weights_pct = 100.0 * s.w / s.sw[:, None]
    return {
        "estimate": mu,
        "se": se,
        "statistic": stat,
        "pvalue": pvalue,
        "ci_lower": mu - half,
        "ci_upper": mu + half,
        "df": df,
        "tau2": tau2,
        "tau2_se": tau2_se,
        "tau": np.sqrt(tau2),
        "i2": i2,
        "h2": h2,
        "q": q,
        "q_df": q_df,
        "q_pvalue": q_pvalue,
        "pred_lower": mu - pred_half,
        "pred_upper": mu + pred_half,
        "k": k,
        "weights": weights_pct,
        "converged": converged,
        "iterations": iterations,
        "v_typical": v_typical,
    }


def q_profile(
    y: FloatArray,
    v: FloatArray,
    pw: FloatArray,
    level: float,
    control: dict[str, Any],
    tau2_max: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Q-profile confidence limits for τ² (Viechtbauer 2007).

    The lower limit solves ``Q(τ²) = χ²_{k-1; (1+level)/2}`` and the upper
    ``Q(τ²) = χ²_{k-1; (1-level)/2}``; a limit is 0 when ``Q(0)`` is already below
    its target, and `tau2_max` when the root lies beyond the search range [0, tau2_max].
    """
    k = pw.sum(axis=-1)
    df = np.maximum(k - 1.0, 1.0)
    alpha = 1.0 - level
    q_for_lower = special.chdtri(df, alpha / 2.0)  # upper-tail quantile
    q_for_upper = special.chdtri(df, 1.0 - alpha / 2.0)
    kw = {"method": "Q-profile", "maxiter": int(control["maxiter"]), "threshold": 1e-13}
    lower, _, _ = solve_q_equation(y, v, pw, q_for_lower, **kw)  # type: ignore[arg-type]
    upper, _, _ = solve_q_equation(y, v, pw, q_for_upper, **kw)  # type: ignore[arg-type]
    return np.minimum(lower, tau2_max), np.minimum(upper, tau2_max)
