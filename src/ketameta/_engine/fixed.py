"""Closed-form equal-effects models on 2×2 tables and person-time data: Mantel–Haenszel
and Peto (the engine of :mod:`ketameta.binary`).

Shape-agnostic like the rest of the engine: the studies are on the last axis and any
leading axes are independent meta-analyses, so a single meta-analysis (1-D cells) and a
batch (``(m, k)`` cells) run the same code. An absent study of a ragged batch is given
as zero cells with ``present`` False: it adds exactly 0 to every sum (its ``1/n`` is 0).

No validation happens here: callers pass finite, non-negative cells (zeros for absent
studies) with positive group sizes / person-times for present studies.

Notation (Robins, Breslow & Greenland 1986; Greenland & Robins 1985): for table i with
cells ``a, b`` (group 1: events, non-events), ``c, d`` (group 2), ``n1 = a + b``,
``n2 = c + d``, ``n = n1 + n2``, ``m1 = a + c`` (events), ``m0 = b + d``; for person-time
data the events ``x1, x2`` and person-times ``t1, t2``, ``T = t1 + t2``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from .._typing import FloatArray

#: measures of the Mantel–Haenszel method (metafor's ``rma.mh``)
MH_MEASURES = ("OR", "RR", "RD", "IRR", "IRD")
#: measures on the log scale (reported also exponentiated)
RATIO_MEASURES = frozenset({"OR", "RR", "IRR", "PETO"})
#: the variance of the MH risk difference: Sato, Greenland & Robins (1989, metafor's) or
#: Greenland & Robins (1985, RevMan's and Stata's ``metan``)
RD_VARIANCES = ("sato", "gr")

#: status codes of an analysis (per row)
OK = 0
NO_TABLES = 1  # no study present
UNDEFINED = 2  # the pooled estimate is not defined (a sum in a ratio is 0)
NO_VARIANCE = 3  # the estimate is defined but its variance is 0 (no information)

STATUS_REASONS = {
    NO_TABLES: "no studies (every table has a missing cell)",
    UNDEFINED: "the pooled estimate is undefined: {why}",
    NO_VARIANCE: "the pooled estimate has no variance: {why}",
}

Num = Any  # a NumPy float (one analysis) or an (m,) array (a batch)

_LOG_2PI = math.log(2.0 * math.pi)


def _div(a: Num, b: Num) -> Num:
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b


def _two_sided_p(z: Num) -> Num:
    return 2.0 * special.ndtr(-np.abs(z))


def critical_z(level: float) -> float:
    """The two-sided normal critical value of `level`."""
    return float(special.ndtri(0.5 + level / 2.0))


def chi2_sf(df: Num, x: Num) -> Num:
    """``P(X > x)`` for ``X ~ χ²(df)``; 1 where ``df = 0`` and ``x = 0`` (metafor's
    p-value of Q from a single study); NaN propagates."""
    with np.errstate(invalid="ignore"):
        p = special.chdtrc(np.maximum(df, 0.0), x)
    return np.where(df > 0, p, np.where(x == 0, 1.0, np.nan)) if np.ndim(p) else _scalar_p(df, x, p)


def _scalar_p(df: Num, x: Num, p: Num) -> float:
    if df > 0:
        return float(p)
    return 1.0 if x == 0 else math.nan


def wald(estimate: Num, variance: Num, level: float) -> dict[str, Num]:
    """SE, z statistic, two-sided p-value and confidence limits of an estimate."""
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(variance)
        z = estimate / se
    half = critical_z(level) * se
    return {
        "estimate": estimate,
        "se": se,
        "statistic": z,
        "pvalue": _two_sided_p(z),
        "ci_lower": estimate - half,
        "ci_upper": estimate + half,
    }


def heterogeneity(estimate: Num, yi: FloatArray, vi: FloatArray) -> dict[str, Num]:
    """Cochran's Q of the study-level effects around the pooled `estimate`, I², H² and the
    equal-effects fit statistics (as metafor reports them for ``rma.mh``/``rma.peto``).

    Studies with NaN ``yi`` (absent, or undefined effects) are left out. With
    ``k`` such studies and ``w = 1/v``: ``Q = Σ w (y - θ̂)²`` on ``k - 1`` df,
    ``I² = max(0, (Q - (k-1))/Q)`` (percent), ``H² = Q/(k-1)`` (Higgins & Thompson
    2002); ML log-likelihood ``-½ (k log 2π + Σ log v + Q)``, deviance ``Q``, and the REML
    log-likelihood ``-½ ((k-1) log 2π + Σ log v + log(Σ w / k) + Q)`` (with metafor's
    ``log|XᵀX| = log k`` term).
    """
    ok = ~np.isnan(yi)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(ok, 1.0 / np.where(ok, vi, 1.0), 0.0)
        dev = np.where(ok, yi - (estimate[..., None] if np.ndim(estimate) else estimate), 0.0)
        q = (w * dev * dev).sum(axis=-1)
        k = ok.sum(axis=-1).astype(np.float64)
        df = k - 1.0
        sum_log_v = np.where(ok, np.log(np.where(ok, vi, 1.0)), 0.0).sum(axis=-1)
        sum_w = w.sum(axis=-1)
        ll = -0.5 * (k * _LOG_2PI + sum_log_v + q)
        ll_reml = -0.5 * (df * _LOG_2PI + sum_log_v + np.log(sum_w / k) + q)
    return {
        **q_statistics(q, df),
        "k_yi": k,
        "loglik": ll,
        "deviance": q,
        "aic": -2.0 * ll + 2.0,
        "bic": -2.0 * ll + np.log(k),
        "aicc": _aicc(ll, k),
        "loglik_reml": ll_reml,
    }


def q_statistics(q: Num, df: Num) -> dict[str, Num]:
    """Q's p-value (1 for df = 0, as metafor), ``I² = max(0, 100 (Q - df)/Q)`` (0 when
    Q = 0) and ``H² = Q/df`` (1 for df = 0, as metafor) (Higgins & Thompson 2002)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        i2 = np.where(q > 0, np.maximum(0.0, 100.0 * (q - df) / q), 0.0)
        h2 = np.where(df > 0, q / df, 1.0)
    if np.ndim(q) == 0:
        i2, h2 = float(i2), float(h2)
    return {"q": q, "q_df": df, "q_pvalue": chi2_sf(df, q), "i2": i2, "h2": h2}


def _aicc(ll: Num, k: Num) -> Num:
    """AICc of a one-parameter model, ``-2 ll + 2k/(k-2)`` (metafor caps ``k`` below at 3)."""
    kk = np.maximum(k, 3.0)
    return -2.0 * ll + 2.0 * kk / (kk - 2.0)


def mantel_haenszel(
    t1: FloatArray,
    t2: FloatArray,
    t3: FloatArray,
    t4: FloatArray,
    present: FloatArray | None,
    *,
    measure: str,
    correct: bool,
    rd_variance: str = "sato",
) -> dict[str, Num]:
    """The Mantel–Haenszel estimate, its variance and (OR, IRR) the tests of the cells.

    `t1..t4` are ``a, b, c, d`` (OR, RR, RD) or ``x1, t1, x2, t2`` (IRR, IRD), zero for
    absent studies, whose `present` mask is False (``None``: all present).

    Returns the estimate (log scale for OR, RR, IRR), its variance, the per-study MH
    weights (unnormalised), the number of tables ``k`` and a status code per analysis.

    Formulas (each sum over the tables of one analysis):

    * OR (Mantel & Haenszel 1959): ``R = ad/n``, ``S = bc/n``, ``ψ = ΣR/ΣS``; the
      variance of ``log ψ`` of Robins, Breslow & Greenland (1986) with ``P = (a+d)/n``,
      ``Q = (b+c)/n``: ``ΣPR/(2(ΣR)²) + Σ(PS+QR)/(2ΣRΣS) + ΣQS/(2(ΣS)²)``; weights ``S``.
    * RR (Greenland & Robins 1985; Nurminen 1981): ``R = a n2/n``, ``S = c n1/n``,
      variance of ``log(ΣR/ΣS)``: ``Σ(n1 n2 m1 - a c n)/n² / (ΣR ΣS)``; weights ``S``.
    * RD (Greenland & Robins 1985): ``W = n1 n2/n``, ``RD = Σ(a n2 - c n1)/n / ΣW``;
      variance of Sato, Greenland & Robins (1989), ``(RD ΣP + ΣQ)/(ΣW)²`` with
      ``P = (n1² c - n2² a + n1 n2 (n2 - n1)/2)/n²`` and
      ``Q = (a(n2 - c) + c(n1 - a))/(2n)`` (metafor's), or (``rd_variance="gr"``) that of
      Greenland & Robins (1985), ``Σ(a b n2³ + c d n1³)/(n1 n2 n²) / (ΣW)²``;
      weights ``W``.
    * IRR (Rothman, Greenland & Lash 2008, ch. 15; Greenland & Robins 1985):
      ``R = x1 t2/T``, ``S = x2 t1/T``, variance of the log ``Σ(t1 t2 (x1+x2)/T²)/(ΣRΣS)``;
      weights ``S``.
    * IRD (same sources): ``W = t1 t2/T``, ``Σ(x1 t2 - x2 t1)/T / ΣW`` with variance
      ``Σ W² (x1/t1² + x2/t2²) / (ΣW)²``; weights ``W``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out: dict[str, Num]
        if measure in ("IRR", "IRD"):
            out = _person_time(t1, t2, t3, t4, present, measure=measure, correct=correct)
        else:
            out = _tables(t1, t2, t3, t4, present, measure, correct, rd_variance)
    return out


def _inverse_total(total: FloatArray, present: FloatArray | None) -> FloatArray:
    if present is None:
        return 1.0 / total
    return np.where(present, 1.0 / np.where(present, total, 1.0), 0.0)


def _count(present: FloatArray | None, shape: tuple[int, ...]) -> Num:
    if present is None:
        k = float(shape[-1])
        return np.full(shape[:-1], k) if len(shape) > 1 else k
    return present.sum(axis=-1).astype(np.float64)


def _tables(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    present: FloatArray | None,
    measure: str,
    correct: bool,
    rd_variance: str,
) -> dict[str, Num]:
    n1 = a + b
    n2 = c + d
    inv_n = _inverse_total(n1 + n2, present)
    k = _count(present, a.shape)
    out: dict[str, Num] = {"k": k}
    if measure == "RD":
        w = n1 * n2 * inv_n
        sw = w.sum(axis=-1)
        est = ((a * n2 - c * n1) * inv_n).sum(axis=-1) / sw
        if rd_variance == "sato":
            p = (n1 * n1 * c - n2 * n2 * a + 0.5 * n1 * n2 * (n2 - n1)) * inv_n * inv_n
            qq = (a * (n2 - c) + c * (n1 - a)) * (0.5 * inv_n)
            var = (est * p.sum(axis=-1) + qq.sum(axis=-1)) / (sw * sw)
        else:
            # (n1 n2 > 0 for present tables; absent ones have zero cells)
            num = a * b * n2**3 + c * d * n1**3
            terms = np.where(num > 0, num / np.where(num > 0, n1 * n2, 1.0), 0.0)
            var = (terms * inv_n * inv_n).sum(axis=-1) / (sw * sw)
        status = np.where(var > 0, OK, NO_VARIANCE)
        out.update(estimate=est, variance=var, weights=w, status=status)
        out["why"] = "no table has an event (or every table has only events)"
        return out
    if measure == "OR":
        r = a * d * inv_n
        s = b * c * inv_n
    else:  # RR
        r = a * n2 * inv_n
        s = c * n1 * inv_n
    sr, ss = r.sum(axis=-1), s.sum(axis=-1)
    est = np.log(sr / ss)
    if measure == "OR":
        p = (a + d) * inv_n
        q = (b + c) * inv_n
        var = (
            (p * r).sum(axis=-1) / (2.0 * sr * sr)
            + (p * s + q * r).sum(axis=-1) / (2.0 * sr * ss)
            + (q * s).sum(axis=-1) / (2.0 * ss * ss)
        )
        why = (
            "the Mantel-Haenszel odds ratio is 0 or infinite (every table has a zero in "
            "a*d or in b*c)"
        )
    else:
        var = ((n1 * n2 * (a + c) - a * c * (n1 + n2)) * inv_n * inv_n).sum(axis=-1) / (sr * ss)
        why = "the Mantel-Haenszel risk ratio is 0 or infinite (no events in one group)"
    defined = (sr > 0) & (ss > 0)
    status = np.where(defined, np.where(var > 0, OK, NO_VARIANCE), UNDEFINED)
    out.update(estimate=est, variance=var, weights=s, status=status, why=why)
    if measure == "OR":
        out.update(_cmh_tests(a, b, c, d, n1, n2, inv_n, correct))
        out.update(_tarone(a, b, c, d, n1, n2, sr / ss, defined))
    return out


def _cmh_tests(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    n1: FloatArray,
    n2: FloatArray,
    inv_n: FloatArray,
    correct: bool,
) -> dict[str, Num]:
    """The Cochran–Mantel–Haenszel test (Mantel & Haenszel 1959: hypergeometric variance
    ``n1 n2 m1 m0/(n²(n-1))``) and Cochran's (1954) test (binomial variance
    ``n1 n2 m1 m0/n³``) of a common odds ratio of 1, with the continuity correction
    ``(|Σa - ΣE(a)| - ½)²`` when `correct` (applied as written, also when
    ``|Σa - ΣE(a)| < ½``, as metafor)."""
    m1 = a + c
    m0 = b + d
    n = n1 + n2
    expected = n1 * m1 * inv_n
    base = n1 * n2 * m1 * m0 * inv_n * inv_n
    # n ≥ 2 for every present table (both groups non-empty); absent tables have base 0
    v_hyper = np.where(base > 0, base / np.where(base > 0, n - 1.0, 1.0), 0.0)
    v_binom = base * inv_n
    diff = np.abs(a.sum(axis=-1) - expected.sum(axis=-1))
    if correct:
        diff = diff - 0.5
    num = diff * diff
    cmh = num / v_hyper.sum(axis=-1)
    cochran = num / v_binom.sum(axis=-1)
    return {
        "cmh": cmh,
        "cmh_pvalue": chi2_sf(1.0, cmh),
        "cochran": cochran,
        "cochran_pvalue": chi2_sf(1.0, cochran),
    }


def _tarone(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    n1: FloatArray,
    n2: FloatArray,
    psi: Num,
    defined: Num,
) -> dict[str, Num]:
    """The Breslow–Day test of a common odds ratio and Tarone's (1985) corrected version.

    For each table with both groups and both outcomes present, ``ã`` is the count in the
    first cell that gives the table the odds ratio ``ψ`` (the MH estimate) with its
    margins: the root of ``x (n2 - m1 + x) = ψ (n1 - x)(m1 - x)`` in
    ``[max(0, m1 - n2), min(n1, m1)]``, with variance
    ``V = 1/(1/ã + 1/(n1 - ã) + 1/(m1 - ã) + 1/(n2 - m1 + ã))``. Breslow–Day
    ``X² = Σ (a - ã)²/V``; Tarone's ``X² - (Σa - Σã)²/ΣV``, both on ``K - 1`` df with
    ``K`` such tables (Breslow & Day 1980; Tarone 1985).
    """
    m1 = a + c
    m0 = b + d
    usable = (n1 > 0) & (n2 > 0) & (m1 > 0) & (m0 > 0)
    psi_safe = np.where(defined, psi, 1.0)  # (rows whose ψ is undefined get NaN below)
    psi_c = psi_safe[..., None] if np.ndim(psi_safe) else psi_safe
    qa = 1.0 - psi_c
    qb = n2 - m1 + psi_c * (n1 + m1)
    qc = -psi_c * n1 * m1
    disc = np.maximum(qb * qb - 4.0 * qa * qc, 0.0)
    qq = -0.5 * (qb + np.copysign(np.sqrt(disc), qb))
    root_small = np.where(qq != 0, qc / np.where(qq != 0, qq, 1.0), 0.0)
    root_large = np.where(qa != 0, qq / np.where(qa != 0, qa, 1.0), np.inf)
    low = np.maximum(0.0, m1 - n2)
    high = np.minimum(n1, m1)
    tol = 1e-9 * np.maximum(high, 1.0)
    in_range = (root_small >= low - tol) & (root_small <= high + tol)
    fitted = np.where(in_range, root_small, root_large)
    fitted = np.where(usable, fitted, 0.0)
    inv_var = np.where(
        usable,
        1.0 / np.where(usable, fitted, 1.0)
        + 1.0 / np.where(usable, n1 - fitted, 1.0)
        + 1.0 / np.where(usable, m1 - fitted, 1.0)
        + 1.0 / np.where(usable, n2 - m1 + fitted, 1.0),
        0.0,
    )
    var = np.where(usable, 1.0 / np.where(usable, inv_var, 1.0), 0.0)
    resid = np.where(usable, a - fitted, 0.0)
    bd = np.where(usable, resid * resid / np.where(usable, var, 1.0), 0.0).sum(axis=-1)
    tarone = bd - resid.sum(axis=-1) ** 2 / var.sum(axis=-1)
    k_pos = usable.sum(axis=-1).astype(np.float64)
    df = k_pos - 1.0
    nan = ~(defined & (k_pos > 0))
    bd = np.where(nan, np.nan, bd)
    tarone = np.where(nan, np.nan, np.where(k_pos > 1, tarone, 0.0))
    bd = np.where(k_pos > 1, bd, np.where(nan, np.nan, 0.0))
    if np.ndim(bd) == 0:
        bd, tarone = float(bd), float(tarone)
    return {
        "breslow_day": bd,
        "breslow_day_pvalue": chi2_sf(df, bd),
        "tarone": tarone,
        "tarone_pvalue": chi2_sf(df, tarone),
        "tarone_df": df,
    }


def _person_time(
    x1: FloatArray,
    t1: FloatArray,
    x2: FloatArray,
    t2: FloatArray,
    present: FloatArray | None,
    *,
    measure: str,
    correct: bool,
) -> dict[str, Num]:
    inv_t = _inverse_total(t1 + t2, present)
    k = _count(present, x1.shape)
    w = t1 * t2 * inv_t
    out: dict[str, Num] = {"k": k}
    if measure == "IRD":
        sw = w.sum(axis=-1)
        est = ((x1 * t2 - x2 * t1) * inv_t).sum(axis=-1) / sw
        # W² (x1/t1² + x2/t2²) = (x1 t2² + x2 t1²)/T²
        var = ((x1 * t2 * t2 + x2 * t1 * t1) * inv_t * inv_t).sum(axis=-1) / (sw * sw)
        status = np.where(var > 0, OK, NO_VARIANCE)
        out.update(
            estimate=est,
            variance=var,
            weights=w,
            status=status,
            why="no events in any study",
        )
        return out
    r = x1 * t2 * inv_t
    s = x2 * t1 * inv_t
    sr, ss = r.sum(axis=-1), s.sum(axis=-1)
    est = np.log(sr / ss)
    events = x1 + x2
    var = (w * events * inv_t).sum(axis=-1) / (sr * ss)
    defined = (sr > 0) & (ss > 0)
    status = np.where(defined, np.where(var > 0, OK, NO_VARIANCE), UNDEFINED)
    # the Mantel-Haenszel test for person-time data (Rothman, Greenland & Lash 2008):
    # E(x1) = (x1 + x2) t1/T, Var = (x1 + x2) t1 t2/T²
    expected = (events * t1 * inv_t).sum(axis=-1)
    v = (events * w * inv_t).sum(axis=-1)
    diff = np.abs(x1.sum(axis=-1) - expected)
    if correct:
        diff = diff - 0.5
    mh = diff * diff / v
    out.update(
        estimate=est,
        variance=var,
        weights=s,
        status=status,
        why="the Mantel-Haenszel rate ratio is 0 or infinite (no events in one group)",
        cmh=mh,
        cmh_pvalue=chi2_sf(1.0, mh),
    )
    return out


def peto(
    a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray, present: FloatArray | None
) -> dict[str, Num]:
    """Peto's one-step log odds ratio (Yusuf et al. 1985): with the observed ``O = a``,
    its hypergeometric expectation ``E = n1 m1/n`` and variance
    ``V = n1 n2 m1 m0/(n² (n - 1))``, ``log ψ = Σ(O - E)/ΣV`` with variance ``1/ΣV``;
    study weights ``V``."""
    n1 = a + b
    n2 = c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_n = _inverse_total(n1 + n2, present)
        m1 = a + c
        base = n1 * n2 * m1 * (b + d) * inv_n * inv_n
        v = np.where(base > 0, base / np.where(base > 0, n1 + n2 - 1.0, 1.0), 0.0)
        sv = v.sum(axis=-1)
        resid = a - n1 * m1 * inv_n
        o_minus_e = resid.sum(axis=-1)
        est = o_minus_e / sv
        var = 1.0 / sv
        # Q = Σ(O - E)²/V - (Σ(O - E))²/ΣV over the tables with V > 0 (metafor's Q of
        # rma.peto: the cells as pooled, not the study-level effects with `add`)
        q = np.where(v > 0, resid * resid / np.where(v > 0, v, 1.0), 0.0).sum(axis=-1)
        q = q - o_minus_e * est
    status = np.where(sv > 0, OK, UNDEFINED)
    return {
        "k": _count(present, a.shape),
        "estimate": est,
        "variance": var,
        "weights": v,
        "q": q,
        "status": status,
        "why": "one of the two outcomes never occurs in any table (no hypergeometric variance)",
    }
