"""Selection models: the random/mixed-effects likelihood weighted by the probability that a
study with its p-value is published (Hedges 1992; Vevea & Hedges 1995; Citkowicz & Vevea
2017), maximised over the coefficients, τ² and the selection parameters.

Study ``i`` has ``y_i ~ N(x_iᵀβ, s_i²)``, ``s_i² = v_i + τ²``, observed with relative
probability ``w(p_i; δ)``, ``p_i`` its one- or two-sided p-value of ``H0: θ_i = 0`` from
``z_i = y_i/√v_i``. Its density given publication is

    ``f(y_i) = φ((y_i - μ_i)/s_i)/s_i · w(p_i; δ) / A_i,  A_i = E[w(p(Y)); δ]``,

the expectation over ``Y ~ N(μ_i, s_i²)`` (Vevea & Hedges 1995, eq. 6). For the step
function and the truncated-distribution models ``A_i`` is a sum of normal probabilities; for
the other weight functions it is an integral, computed in the standard-normal variable
``x = (y - μ_i)/s_i`` by Gauss-Legendre quadrature on panels split at every point where the
weight function has a kink and at the points where ``p`` changes fastest (accurate to about
1e-14, checked against adaptive quadrature in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from .._typing import FloatArray

__all__ = ["SELECTION_TYPES", "SelectionFit", "SelectionType", "fit_selection", "pvalues"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def pvalues(y: FloatArray, v: FloatArray, alternative: str) -> FloatArray:
    """One- or two-sided p-values of ``H0: θ_i = 0`` from ``z_i = y_i/√v_i`` (metafor's
    definition in ``?selmodel``)."""
    z = y / np.sqrt(v)
    if alternative == "greater":
        return np.asarray(special.ndtr(-z))
    if alternative == "less":
        return np.asarray(special.ndtr(z))
    return np.asarray(2.0 * special.ndtr(-np.abs(z)))


def _p_of_z(z: FloatArray, alternative: str) -> FloatArray:
    if alternative == "greater":
        return np.asarray(special.ndtr(-z))
    if alternative == "less":
        return np.asarray(special.ndtr(z))
    return np.asarray(2.0 * special.ndtr(-np.abs(z)))


def _z_of_p(p: FloatArray, alternative: str) -> FloatArray:
    """The z-values where the p-value equals `p` (both signs for two-sided)."""
    p = np.asarray(p, dtype=np.float64)
    if alternative == "greater":
        return np.asarray(-special.ndtri(p))
    if alternative == "less":
        return np.asarray(special.ndtri(p))
    t = -special.ndtri(p / 2.0)
    return np.concatenate([t, -t, [0.0]])


# -- weight functions --------------------------------------------------------------------


@dataclass(frozen=True)
class SelectionType:
    """A selection (weight) function ``w(p; δ)`` as metafor parameterises it."""

    name: str
    title: str
    formula: str
    null: float
    lower: float
    upper: float
    pval_min: float
    n_delta: int  # 0: one per interval of `steps` (step function)
    weight: Callable[[FloatArray, FloatArray, FloatArray], FloatArray] | None
    citation: str


def _w_beta(p: FloatArray, d: FloatArray, _steps: FloatArray) -> FloatArray:
    return np.asarray(p ** (d[0] - 1.0) * (1.0 - p) ** (d[1] - 1.0))


def _w_halfnorm(p: FloatArray, d: FloatArray, _steps: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-d[0] * p * p))


def _w_negexp(p: FloatArray, d: FloatArray, _steps: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-d[0] * p))


def _w_logistic(p: FloatArray, d: FloatArray, _steps: FloatArray) -> FloatArray:
    e = np.exp(-d[0] * p)
    return np.asarray(2.0 * e / (1.0 + e))


def _w_power(p: FloatArray, d: FloatArray, _steps: FloatArray) -> FloatArray:
    return np.asarray((1.0 - p) ** d[0])


def _w_negexppow(p: FloatArray, d: FloatArray, _steps: FloatArray) -> FloatArray:
    if d[1] == 0.0:
        return np.asarray(np.where(p < 1.0, 1.0, math.exp(-d[0])))
    return np.asarray(np.exp(-d[0] * p ** (1.0 / d[1])))


_HV = "Hedges (1992); Vevea & Hedges (1995)"
_PRESTON = "Preston, Ashby & Smyth (2004)"

SELECTION_TYPES: dict[str, SelectionType] = {
    t.name: t
    for t in (
        SelectionType(
            "stepfun",
            "Step-function",
            "w(p) = delta_j for alpha_(j-1) < p <= alpha_j",
            1.0,
            0.0,
            100.0,
            0.0,
            0,
            None,
            _HV,
        ),
        SelectionType(
            "beta",
            "Beta",
            "w(p) = p^(delta_1 - 1) (1 - p)^(delta_2 - 1)",
            1.0,
            1e-5,
            100.0,
            1e-5,
            2,
            _w_beta,
            "Citkowicz & Vevea (2017)",
        ),
        SelectionType(
            "halfnorm",
            "Half-normal",
            "w(p) = exp(-delta p^2)",
            0.0,
            0.0,
            100.0,
            0.0,
            1,
            _w_halfnorm,
            _PRESTON,
        ),
        SelectionType(
            "negexp",
            "Negative-exponential",
            "w(p) = exp(-delta p)",
            0.0,
            0.0,
            100.0,
            0.0,
            1,
            _w_negexp,
            _PRESTON,
        ),
        SelectionType(
            "logistic",
            "Logistic",
            "w(p) = 2 exp(-delta p) / (1 + exp(-delta p))",
            0.0,
            0.0,
            100.0,
            0.0,
            1,
            _w_logistic,
            _PRESTON,
        ),
        SelectionType(
            "power",
            "Power",
            "w(p) = (1 - p)^delta",
            0.0,
            0.0,
            100.0,
            1e-5,
            1,
            _w_power,
            "metafor's addition to " + _PRESTON,
        ),
        SelectionType(
            "negexppow",
            "Negative-exponential-power",
            "w(p) = exp(-delta_1 p^(1/delta_2))",
            0.0,
            0.0,
            100.0,
            0.0,
            2,
            _w_negexppow,
            "Begg & Mazumdar (1994), reparameterised",
        ),
        SelectionType(
            "trunc",
            "Truncated-distribution",
            "w(y) = 1 if y > y_c, delta if y <= y_c (alternative 'greater')",
            1.0,
            0.0,
            100.0,
            0.0,
            1,
            None,
            "Rust, Lehmann & Farley (1990); Formann (2008)",
        ),
    )
}


# -- the likelihood ----------------------------------------------------------------------


def _phi_between(a: FloatArray, b: FloatArray) -> FloatArray:
    """``Φ(a) - Φ(b)`` for ``a ≥ b`` without cancellation in the upper tail."""
    upper = b > 0
    return np.asarray(
        np.where(upper, special.ndtr(-b) - special.ndtr(-a), special.ndtr(a) - special.ndtr(b))
    )


_GL_N = 20
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_N)
_X_LIMIT = 12.0  # φ(12) ≈ 2e-32: the integrand beyond is below every weight's range
_BASE_BREAKS = np.array([-_X_LIMIT, -8.0, -5.0, -3.0, -1.5, 0.0, 1.5, 3.0, 5.0, 8.0, _X_LIMIT])
_Z_BREAKS = np.array([-8.0, -5.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 8.0])


@dataclass(frozen=True)
class Problem:
    """Everything the likelihood needs apart from the parameters."""

    y: FloatArray
    v: FloatArray
    X: FloatArray
    kind: SelectionType
    alternative: str
    steps: FloatArray  # cut-points (step function: with 1 appended; trunc: y_c)
    pval_min: float
    p_obs: FloatArray  # observed p-values (censored at pval_min)
    interval: Any  # step function: interval of each study (0-based)
    z_cut: FloatArray  # step function: the z-thresholds of the cut-points
    kinks: FloatArray  # z-values where w has a kink

    @property
    def sd(self) -> FloatArray:
        return np.asarray(np.sqrt(self.v))


def make_problem(
    y: FloatArray,
    v: FloatArray,
    X: FloatArray,
    kind: SelectionType,
    alternative: str,
    steps: FloatArray,
    pval_min: float,
) -> Problem:
    p = pvalues(y, v, alternative)
    interval = None
    z_cut = np.empty(0)
    kinks: list[float] = []
    if kind.name == "stepfun":
        interval = np.searchsorted(steps, p, side="left")  # alpha_(j-1) < p <= alpha_j
        interval = np.minimum(interval, len(steps) - 1)
    elif kind.name != "trunc":
        p = np.clip(p, pval_min, 1.0 - pval_min)
        pts = [pval_min, 1.0 - pval_min] if pval_min > 0 else []
        pts += [float(s) for s in steps]
        if pts:
            kinks = [float(z) for z in _z_of_p(np.array(pts), alternative)]
        elif alternative == "two.sided":
            kinks = [0.0]
        if alternative == "two.sided":  # p -> 1 at z = 0, where (1 - p)^a is singular:
            grading = [10.0**e for e in range(-5, 0)] + [0.3]  # geometric panels
            kinks += [0.0, *grading, *(-g for g in grading)]
    return Problem(
        y=y,
        v=v,
        X=X,
        kind=kind,
        alternative=alternative,
        steps=steps,
        pval_min=pval_min,
        p_obs=p,
        interval=interval,
        z_cut=z_cut,
        kinks=np.unique(np.array(kinks, dtype=np.float64)),
    )


def _weights(prob: Problem, p: FloatArray, delta: FloatArray) -> FloatArray:
    """``w(p)`` of the p-value model (non-step types); with a threshold α in `steps`,
    ``w = 1`` for ``p ≤ α`` and ``w(p)/w(α)`` above (continuous at α; metafor's
    extension, which this reproduces to 1e-12 in the log-likelihood)."""
    assert prob.kind.weight is not None
    w = prob.kind.weight(p, delta, prob.steps)
    if prob.steps.size:
        a = prob.steps[:1]
        w = np.where(p <= a[0], 1.0, w / prob.kind.weight(a, delta, prob.steps)[0])
    return np.asarray(w)


def _step_probabilities(prob: Problem, m: FloatArray, r: FloatArray) -> FloatArray:
    """``P(p(Y) in interval j)`` for each study (rows) and interval (columns), ``Y`` in
    z-units ``N(m, r²)``."""
    a = np.concatenate([[0.0], prob.steps])  # alpha_0 = 0 < alpha_1 < ... < alpha_c = 1
    mm, rr = m[:, None], r[:, None]
    if prob.alternative == "less":  # p = Φ(z): interval j is Φ⁻¹(α_(j-1)) < z ≤ Φ⁻¹(α_j)
        q = special.ndtri(a)  # -inf ... inf
        return _phi_between((q[None, 1:] - mm) / rr, (q[None, :-1] - mm) / rr)
    if prob.alternative == "greater":  # p = Φ(-z): q(α_j) ≤ z < q(α_(j-1)), q = -Φ⁻¹(α)
        q = -special.ndtri(a)  # inf ... -inf
        return _phi_between((q[None, :-1] - mm) / rr, (q[None, 1:] - mm) / rr)
    t = -special.ndtri(a / 2.0)  # |z| thresholds: inf ... 0
    up = _phi_between((t[None, :-1] - mm) / rr, (t[None, 1:] - mm) / rr)
    down = _phi_between((-t[None, 1:] - mm) / rr, (-t[None, :-1] - mm) / rr)
    return np.asarray(up + down)


def _integral(prob: Problem, m: FloatArray, r: FloatArray, delta: FloatArray) -> FloatArray:
    """``A_i = ∫ w(p(m_i + r_i x)) φ(x) dx`` by panel Gauss-Legendre quadrature."""
    k = m.shape[0]
    zb = np.concatenate([_Z_BREAKS, prob.kinks])
    extra = (zb[None, :] - m[:, None]) / r[:, None]
    br = np.concatenate([np.broadcast_to(_BASE_BREAKS, (k, _BASE_BREAKS.size)), extra], axis=1)
    br = np.sort(np.clip(br, -_X_LIMIT, _X_LIMIT), axis=1)
    lo, hi = br[:, :-1], br[:, 1:]
    half = 0.5 * (hi - lo)
    x = (0.5 * (hi + lo))[:, :, None] + half[:, :, None] * _GL_X[None, None, :]
    z = m[:, None, None] + r[:, None, None] * x
    p = _p_of_z(z, prob.alternative)
    if prob.pval_min > 0:
        p = np.clip(p, prob.pval_min, 1.0 - prob.pval_min)
    w = _weights(prob, p, delta)
    dens = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return np.asarray(np.einsum("ijn,n,ij->i", w * dens, _GL_W, half))


def loglik(prob: Problem, beta: FloatArray, tau2: float, delta: FloatArray) -> float:
    """The log-likelihood of the selection model (−∞ outside its domain)."""
    mu = prob.X @ beta
    s2 = prob.v + tau2
    if np.any(s2 <= 0):
        return -math.inf
    s = np.sqrt(s2)
    resid = (prob.y - mu) / s
    base = -_LOG_SQRT_2PI - np.log(s) - 0.5 * resid * resid
    sd = prob.sd
    name = prob.kind.name
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if name == "stepfun":
            probs = _step_probabilities(prob, mu / sd, s / sd)
            a = probs @ delta
            wi = delta[prob.interval]
        elif name == "trunc":
            yc = float(prob.steps[0])
            below = special.ndtr((yc - mu) / s)
            above = special.ndtr((mu - yc) / s)
            if prob.alternative == "greater":
                a = above + delta[0] * below
                wi = np.where(prob.y > yc, 1.0, delta[0])
            else:
                a = below + delta[0] * above
                wi = np.where(prob.y < yc, 1.0, delta[0])
        else:
            a = _integral(prob, mu / sd, s / sd, delta)
            wi = _weights(prob, prob.p_obs, delta)
        total = float(np.sum(base + np.log(wi) - np.log(a)))
    return total if math.isfinite(total) else -math.inf


# -- derivatives -------------------------------------------------------------------------


def _steps(x: FloatArray) -> FloatArray:
    return np.asarray(1e-4 * np.maximum(np.abs(x), 1e-2))


def gradient(
    f: Callable[[FloatArray], float],
    x: FloatArray,
    lower: FloatArray | None = None,
    scale: FloatArray | None = None,
) -> FloatArray:
    """Central differences with one Richardson step (error O(h⁴)); one-sided (O(h²))
    where a central step would cross `lower`; steps at most 1e-3 `scale` (the size of a
    standard error of each parameter)."""
    h = _steps(x)
    if scale is not None:
        h = np.minimum(h, 1e-3 * scale)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _gradient(f, x, lower, h)


def _gradient(
    f: Callable[[FloatArray], float], x: FloatArray, lower: FloatArray | None, h: FloatArray
) -> FloatArray:
    g = np.empty_like(x)
    f0: float | None = None
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h[i]
        if lower is not None and x[i] - 2 * h[i] < lower[i]:
            f0 = f(x) if f0 is None else f0
            g[i] = (-3 * f0 + 4 * f(x + e) - f(x + 2 * e)) / (2 * h[i])
            continue
        d1 = (f(x + e) - f(x - e)) / (2 * h[i])
        d2 = (f(x + 2 * e) - f(x - 2 * e)) / (4 * h[i])
        g[i] = (4 * d1 - d2) / 3
    return g


def hessian(
    f: Callable[[FloatArray], float],
    x: FloatArray,
    levels: int = 4,
    max_step: FloatArray | None = None,
) -> FloatArray:
    """Hessian by central differences with Richardson extrapolation over `levels` halvings
    of the step (the step starts at 2% of |x|, at least 2e-3, at most `max_step`)."""
    h0 = np.maximum(0.02 * np.abs(x), 2e-3)
    if max_step is not None:
        h0 = np.minimum(h0, max_step)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _hessian(f, x, levels, h0)


def _hessian(
    f: Callable[[FloatArray], float], x: FloatArray, levels: int, h0: FloatArray
) -> FloatArray:
    n = x.size
    f0 = f(x)
    tables = np.empty((levels, n, n))
    for lev in range(levels):
        h = h0 / 2**lev
        fp = np.empty(n)
        fm = np.empty(n)
        for i in range(n):
            e = np.zeros(n)
            e[i] = h[i]
            fp[i], fm[i] = f(x + e), f(x - e)
            tables[lev, i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for i in range(n):
            for j in range(i):
                ei = np.zeros(n)
                ej = np.zeros(n)
                ei[i], ej[j] = h[i], h[j]
                val = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4 * h[i] * h[j]
                )
                tables[lev, i, j] = tables[lev, j, i] = val
    if not np.all(np.isfinite(tables)):
        return np.full((n, n), np.nan)
    for m in range(1, levels):  # Richardson: errors in h², h⁴, ...
        factor = 4.0**m
        tables[m:] = (factor * tables[m:] - tables[m - 1 : -1]) / (factor - 1)
    return np.asarray(tables[-1])


# -- fitting -----------------------------------------------------------------------------


def param_scale(prob: Problem, rand: bool, tau2: float, free: FloatArray) -> FloatArray:
    """The rough size of a standard error of each parameter (β from the normal model's
    information, τ² from the smallest total variance, δ: 1), which bounds the
    finite-difference steps: a very precise study makes the likelihood steep in β."""
    w = 1.0 / (prob.v + max(tau2, 0.0))
    beta = 1.0 / np.sqrt(np.sum(prob.X**2 * w[:, None], axis=0))
    parts = [beta]
    if rand:
        parts.append(np.array([float(np.min(prob.v)) + max(tau2, 0.0)]))
    parts.append(np.ones(int(np.sum(free))))
    return np.concatenate(parts)


def _projected_newton(
    f: Callable[[FloatArray], float],
    x0: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    p: int,
    rand: bool,
    vmin: float,
    maxiter: int,
    tol: float,
    scale: FloatArray,
) -> tuple[FloatArray, float, bool, int]:
    """Minimise `f` within the box [lo, hi]: Newton steps (Levenberg-damped until the
    Hessian is positive definite) on the parameters not held at a bound by their gradient,
    projected back into the box, with backtracking. Converged when the step is below
    `tol` relative to the parameters."""
    x = np.clip(x0, lo, hi)
    fx = f(x)
    for it in range(1, maxiter + 1):
        g = gradient(f, x, lo, scale)
        at_lo = (x <= lo) & (g > 0)
        at_hi = (x >= hi) & (g < 0)
        act = ~(at_lo | at_hi)
        if not act.any():
            return x, fx, True, it
        idx = np.flatnonzero(act)
        max_step = 0.1 * scale[idx]
        if rand:  # tau2 steps stay within v_min + tau2 > 0
            max_step[idx == p] = 0.25 * (vmin + max(x[p], 0.0))
        xs = x[idx]
        max_step = np.minimum(
            max_step,
            np.where(np.isfinite(lo[idx]), np.maximum(0.5 * (xs - lo[idx]), 1e-7), np.inf),
        )

        def sub(t: FloatArray, base: FloatArray = x, where: Any = idx) -> float:
            full = base.copy()
            full[where] = t
            return f(full)

        h = hessian(sub, xs, levels=1, max_step=max_step)
        if not np.all(np.isfinite(h)):  # a step left the domain: fall back to gradient steps
            h = np.diag(1.0 / np.maximum(max_step, 1e-300) ** 2)
        gi = g[idx]
        hscale = max(1.0, float(np.max(np.abs(np.diag(h)))))
        lam = 0.0
        step = np.zeros(idx.size)
        for _ in range(60):
            try:
                c = np.linalg.cholesky(h + lam * np.eye(idx.size))
                step = -np.linalg.solve(c.T, np.linalg.solve(c, gi))
                break
            except np.linalg.LinAlgError:
                lam = max(2.0 * lam, 1e-10 * hscale)
        t = 1.0
        moved = False
        while t > 1e-12:
            cand = x.copy()
            cand[idx] = np.clip(xs + t * step, lo[idx], hi[idx])
            fc = f(cand)
            if fc <= fx:
                moved = True
                break
            t *= 0.5
        if not moved:  # no descent along the Newton direction: at the optimum (or stuck)
            small = np.all(np.abs(gi) <= 1e-6 * max(1.0, abs(fx)))
            return x, fx, bool(small), it
        dx = cand - x
        x, fx = cand, fc
        if np.all(np.abs(dx) <= tol * np.maximum(1.0, np.abs(x))):
            return x, fx, True, it
    return x, fx, False, maxiter


@dataclass(frozen=True)
class SelectionFit:
    beta: FloatArray
    tau2: float
    delta: FloatArray
    loglik: float
    vcov: FloatArray  # over (beta, tau2, free delta); NaN rows for parameters left out
    se_tau2: float
    se_delta: FloatArray
    iterations: int
    free: tuple[bool, ...]
    converged: bool


def _unpack(
    theta: FloatArray,
    p: int,
    random: bool,
    delta_fixed: FloatArray,
    free: FloatArray,
    tau2_value: float = 0.0,
) -> tuple[FloatArray, float, FloatArray]:
    beta = theta[:p]
    tau2 = float(theta[p]) if random else tau2_value
    delta = delta_fixed.copy()
    delta[free] = theta[p + int(random) :]
    return beta, tau2, delta


def fit_selection(
    prob: Problem,
    *,
    random: bool,
    beta0: FloatArray,
    tau20: float,
    delta_fixed: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    starts: Sequence[FloatArray],
    tau2_zero: bool = False,
    tau2_value: float | None = None,
    maxiter: int = 200,
    tol: float = 1e-10,
) -> SelectionFit:
    """ML fit of the selection model. `delta_fixed` holds the fixed values (NaN: free);
    `tau2_value` fixes τ² (`tau2_zero`: at 0).

    The likelihood is maximised by projected Newton steps under the bounds (τ² ≥ 0, δ
    within [`lower`, `upper`]) from each start; the best maximum is kept."""
    p = prob.X.shape[1]
    free = np.isnan(delta_fixed)
    fixed = np.where(free, 0.0, delta_fixed)
    rand = random and not tau2_zero and tau2_value is None
    t2fix = 0.0 if tau2_value is None else float(tau2_value)

    def nll(theta: FloatArray) -> float:
        b, t2, d = _unpack(theta, p, rand, fixed, free, t2fix)
        val = loglik(prob, b, t2, d)
        return -val if math.isfinite(val) else 1e300

    lo = np.array([-np.inf] * p + ([0.0] if rand else []) + list(lower[free]))
    hi = np.array([np.inf] * p + ([np.inf] if rand else []) + list(upper[free]))
    vmin = float(np.min(prob.v))
    best: tuple[float, FloatArray, bool] | None = None
    total_iter = 0
    for start in starts:
        x0 = np.concatenate(
            [beta0, [tau20] if rand else [], np.clip(start[free], lower[free], upper[free])]
        )
        x, fx, ok, it = _projected_newton(
            nll, x0, lo, hi, p, rand, vmin, maxiter, tol, param_scale(prob, rand, tau20, free)
        )
        total_iter += it
        if best is None or fx < best[0]:
            best = (fx, x, ok)
    assert best is not None
    theta, converged = best[1], best[2]
    beta, tau2, delta = _unpack(theta, p, rand, fixed, free, t2fix)
    ll = -nll(theta)
    return SelectionFit(
        beta=beta,
        tau2=tau2,
        delta=delta,
        loglik=ll,
        vcov=np.empty((0, 0)),
        se_tau2=math.nan,
        se_delta=np.full(delta.shape, math.nan),
        iterations=total_iter,
        free=tuple(bool(f) for f in free),
        converged=converged,
    )
