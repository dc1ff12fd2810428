"""Mixed-effects meta-regression of one analysis on a small design matrix (metafor's
``rma(yi, vi, mods=...)``), used by the Egger-type tests and trim-and-fill.

With ``W = diag(1/(v + τ²))``, ``β̂ = (XᵀWX)⁻¹XᵀWy`` and the residual projector
``P = W - WX(XᵀWX)⁻¹XᵀW``; the τ² estimators generalise those of the intercept-only
model (Viechtbauer 2005; Raudenbush 2009): DL and HS use ``Q_E = yᵀP₀y`` with ``τ² = 0``
weights and ``k - p`` degrees of freedom, HE the OLS residuals, PM/EB solve
``yᵀPy = k - p``, ML and REML the likelihood score equations.

References
----------
.. [1] Raudenbush, S. W. (2009). Analyzing effect sizes: Random-effects models. In The
   Handbook of Research Synthesis and Meta-Analysis (2nd ed., pp. 295-315).
.. [2] Viechtbauer, W. (2005). J Educ Behav Stat 30(3), 261-293.
.. [3] Knapp, G., & Hartung, J. (2003). Stat Med 22(17), 2693-2710.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from scipy import special

from . import _core
from ._typing import FloatArray
from ._validation import critical_value


@attrs.frozen
class _Design:
    y: FloatArray
    v: FloatArray
    x: FloatArray
    v_scale: float
    v_harmonic: float  # k / Σ(1/v_i), the scale of the τ² score (_core.scale_score)

    @property
    def k(self) -> int:
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        return int(self.x.shape[1])

    def projector(self, tau2: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(P, (XᵀWX)⁻¹, w) at τ²."""
        w = 1.0 / (self.v + tau2)
        xw = self.x * w[:, None]
        try:
            a_inv = np.linalg.inv(self.x.T @ xw)
        except np.linalg.LinAlgError as exc:
            msg = "the moderators are collinear: the meta-regression is not identifiable"
            raise ValueError(msg) from exc
        p = np.diag(w) - xw @ a_inv @ xw.T
        return p, a_inv, w


def _score(d: _Design, tau2: Any, kind: str, target: Any) -> tuple[Any, Any, Any]:
    """(score, derivative, information), scaled as the intercept-only model's
    (:func:`ketameta._core.scale_score`: same roots, fewer steps, the start's basin)."""
    t = float(tau2)
    p, _, w = d.projector(t)
    py = p @ d.y
    a = d.v_harmonic + t
    if kind == "Q":
        s2 = py @ py
        scaled = _core.scale_score(kind, d.y @ py - target, -s2, s2, a)
    else:
        pppy = py @ p @ py  # yᵀPPPy
        if kind == "REML":
            info = np.sum(p * p)
            value = py @ py - np.trace(p)
        else:
            info = np.sum(w * w)
            value = py @ py - w.sum()
        scaled = _core.scale_score(kind, value, info - 2 * pppy, info, a)
    value_s, deriv_s, info_s = scaled
    return np.float64(value_s), np.float64(deriv_s), np.float64(info_s)


def _zero_is_more_likely(d: _Design, tau2: float, method: str) -> bool:
    """Whether the (restricted) likelihood at τ² = 0 exceeds that at `tau2` (as metafor).

    ``ll(τ²) = -½ [Σ log(v_i + τ²) + yᵀPy (+ log det XᵀWX for REML)]`` up to a constant.
    """

    def minus_twice_ll(t: float) -> float:
        p, a_inv, _ = d.projector(t)
        value = float(np.sum(np.log(d.v + t)) + d.y @ p @ d.y)
        if method == "REML":
            value -= float(np.linalg.slogdet(a_inv)[1])  # log det XᵀWX
        return value

    return tau2 > 0 and minus_twice_ll(0.0) < minus_twice_ll(tau2)


def estimate_tau2(d: _Design, method: str, control: dict[str, Any]) -> float:
    """τ² of the meta-regression by `method` (metafor's definitions)."""
    k, p = d.k, d.p
    if method == "EE":
        return 0.0
    if method in ("DL", "HS"):
        p0, _, w0 = d.projector(0.0)
        qe = d.y @ p0 @ d.y
        raw = (qe - (k - p)) / np.trace(p0) if method == "DL" else (qe - k) / w0.sum()
        return max(0.0, float(raw))
    hat = d.x @ np.linalg.inv(d.x.T @ d.x) @ d.x.T
    resid = d.y - hat @ d.y
    rss = float(resid @ resid)
    if method == "HE":
        tr_pv = float(np.sum(d.v * (1.0 - np.diag(hat))))
        return max(0.0, (rss - tr_pv) / (k - p))
    if method == "SJ":
        tau0 = float(np.var(d.y))  # Sidik & Jonkman's start: Σ(y - ȳ)²/k
        if tau0 <= 0:
            return 0.0
        p0, _, _ = d.projector(tau0)
        return tau0 * float(d.y @ p0 @ d.y) / (k - p)
    maxiter, threshold = int(control["maxiter"]), float(control["threshold"])
    if method in ("PM", "EB"):
        start = estimate_tau2(d, "DL", control)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            t, _, _ = _core.solve_tau2(
                d,
                "Q",
                np.float64(start),
                method=method,
                maxiter=maxiter,
                threshold=threshold,
                target=float(k - p),
                score=_score,
            )
        return float(t)
    start = (
        estimate_tau2(d, "HE", control) if control["tau2_init"] is None else control["tau2_init"]
    )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t, _, _ = _core.solve_tau2(
            d,
            method,
            np.float64(start),
            method=method,
            maxiter=maxiter,
            threshold=threshold,
            score=_score,
        )
    # as metafor: a lower local maximum than the likelihood at τ² = 0 gives way to 0
    return 0.0 if _zero_is_more_likely(d, float(t), method) else float(t)


def fit(
    y: FloatArray,
    v: FloatArray,
    x: FloatArray,
    *,
    method: str,
    test: str,
    level: float,
    control: dict[str, Any],
) -> dict[str, Any]:
    """Fit ``y ~ X`` with sampling variances `v`; coefficients, SEs, tests and τ²."""
    d = _Design(
        y=y, v=v, x=x, v_scale=float(np.mean(v)), v_harmonic=len(v) / float(np.sum(1.0 / v))
    )
    k, p = d.k, d.p
    tau2 = estimate_tau2(d, method, control)
    proj, a_inv, _ = d.projector(tau2)
    w = 1.0 / (v + tau2)
    b = a_inv @ ((x * w[:, None]).T @ y)
    vb = a_inv
    df = np.inf if test == "z" else float(k - p)
    if test in ("knha", "adhoc"):
        # Knapp & Hartung (2003); an exact fit can round to a tiny negative residual sum
        s2 = max(float(y @ proj @ y), 0.0) / (k - p)
        if test == "adhoc":
            s2 = max(s2, 1.0)
        vb = s2 * a_inv
    se = np.sqrt(np.maximum(np.diag(vb), 0.0))
    if not np.all(se > 0):
        msg = (
            "the regression fits the studies exactly (zero residual variance, e.g. identical "
            "effects): standard errors are 0 and the test is undefined"
        )
        raise ValueError(msg)
    stat = b / se
    if test == "z":
        pvalue = 2.0 * special.ndtr(-np.abs(stat))
        crit = float(critical_value(level))
    else:
        pvalue = 2.0 * special.stdtr(df, -np.abs(stat))
        crit = float(critical_value(level, df))
    return {
        "b": b,
        "se": se,
        "statistic": stat,
        "pvalue": pvalue,
        "ci_lower": b - crit * se,
        "ci_upper": b + crit * se,
        "df": df,
        "tau2": tau2,
        "k": k,
        "p": p,
    }
