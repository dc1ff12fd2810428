"""Closed-form equal-effects models on 2×2 tables and person-time data: Mantel–Haenszel
and Peto (the engine of :mod:`ketameta.binary`).

Shape-agnostic like the rest of the engine: the studies are on the last axis and any
leading axes are independent meta-analyses, so a single meta-analysis (1-D cells) and a
batch (``(m, k)`` cells) run the same code.

Masks are arithmetic, not ``np.where``: a study's membership is a float 0/1 array (``pf``
for presence, ``okf`` for having a study-level effect) that multiplies finite values, and
an absent study has zero cells and a zero ``1/n``, so it adds exactly 0 to every sum.
(Selecting with a data-dependent boolean mask costs several times an arithmetic pass,
and the batch functions pool 10⁶ analyses in about a second.)

No validation happens here: callers pass finite, non-negative cells (zeros for absent
studies) with non-empty groups and positive person-times for present studies, and run
these functions under ``np.errstate(all="ignore")`` (once for a whole fit: for a single
meta-analysis the NumPy calls, not the arithmetic, are the cost, so the sums over the
studies are also taken together, :func:`_sums`).

Notation (Robins, Breslow & Greenland 1986; Greenland & Robins 1985): for table i with
cells ``a, b`` (group 1: events, non-events), ``c, d`` (group 2), ``n1 = a + b``,
``n2 = c + d``, ``n = n1 + n2``, ``m1 = a + c`` (events), ``m0 = b + d``; for person-time
data the events ``x1, x2`` and person-times ``t1, t2``, ``T = t1 + t2``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy import special

from .._typing import FloatArray
from .inference import chi2_sf as _chi2_sf
from .inference import critical_z
from .workspace import like

#: measures of the Mantel–Haenszel method (metafor's ``rma.mh``)
MH_MEASURES = ("OR", "RR", "RD", "IRR", "IRD")
#: measures on the log scale (reported also exponentiated)
RATIO_MEASURES = frozenset({"OR", "RR", "IRR", "PETO"})
#: the variance of the MH risk difference: Sato, Greenland & Robins (1989, metafor's) or
#: Greenland & Robins (1985, RevMan's and Stata's ``metan``)
RD_VARIANCES = ("sato", "gr")
#: which cells get `add` (2×2 tables: all four; person-time: the events)
_ADD_TARGETS = {True: (0, 2), False: (0, 1, 2, 3)}

#: status codes of an analysis
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
Mask = FloatArray | None  # a float 0/1 array, or None: every study

_LOG_2PI = math.log(2.0 * math.pi)


def _sum(x: FloatArray) -> Num:
    return x.sum(axis=-1)


def _sums(*terms: FloatArray) -> tuple[Num, ...]:
    """The sums over the studies of each term: for one analysis in a single matrix product
    (NumPy scalars), for a batch term by term (``(m,)`` arrays)."""
    if terms[0].ndim == 1:
        return tuple(np.array(terms) @ _ones(terms[0].shape[0]))
    return tuple(t.sum(axis=-1) for t in terms)


@functools.lru_cache(maxsize=64)
def _ones(k: int) -> FloatArray:
    out = np.ones(k)
    out.setflags(write=False)
    return out


def _pick(cond: Num, a: Num, b: Num) -> Num:
    """``np.where`` that stays cheap for a single analysis (Python scalars)."""
    if np.ndim(cond) == 0:
        return a if cond else b
    return np.where(cond, a, b)


def chi2_sf(df: Num, x: Num) -> Num:
    """``P(X > x)`` for ``X ~ χ²(df)`` (:func:`ketameta._engine.inference.chi2_sf`), with
    metafor's convention for ``df = 0``: 1 where ``x = 0`` (the p-value of Q from a single
    study), NaN otherwise; NaN propagates."""
    if np.ndim(x) == 0:
        x = float(x)
        if math.isnan(x):
            return math.nan
        if not df > 0:
            return 1.0 if x == 0 else math.nan
        return float(_chi2_sf(float(df), x))
    df_arr = np.broadcast_to(np.asarray(df, dtype=np.float64), np.shape(x))
    positive = df_arr > 0
    with np.errstate(invalid="ignore"):
        if positive.all():
            return np.asarray(_chi2_sf(df if np.ndim(df) == 0 else df_arr, x))
        out = np.where(x == 0, 1.0, np.nan)
        if positive.any():
            out[positive] = _chi2_sf(df_arr[positive], x[positive])
    return out


def _p_if_df(df: Num, x: Num) -> Num:
    """The χ² p-value, NaN where df = 0 (as metafor for Tarone's test of one table)."""
    return _pick(df > 0, chi2_sf(df, x), math.nan)


#: statistics derived from the primary ones (computed on access by the batch results):
#: name -> the primary statistics it needs
DERIVED: dict[str, tuple[str, ...]] = {
    "statistic": ("estimate", "se"),
    "pvalue": ("estimate", "se"),
    "ci_lower": ("estimate", "se"),
    "ci_upper": ("estimate", "se"),
    "q_df": ("q", "k_yi"),
    "q_pvalue": ("q", "k_yi"),
    "i2": ("q", "k_yi"),
    "h2": ("q", "k_yi"),
    "aic": ("loglik", "k_yi"),
    "bic": ("loglik", "k_yi"),
    "aicc": ("loglik", "k_yi"),
    "cmh_pvalue": ("cmh",),
    "cochran_pvalue": ("cochran",),
    "tarone_pvalue": ("tarone", "tarone_df"),
    "breslow_day_pvalue": ("breslow_day", "tarone_df"),
}


def _wald(est: Num, se: Num, level: float) -> dict[str, Num]:
    z = est / se
    if np.ndim(z) == 0:
        p = math.erfc(abs(z) / math.sqrt(2.0)) if math.isfinite(se) else math.nan
    else:
        p = 2.0 * special.ndtr(-np.abs(z))
    half = critical_z(level) * se
    return {"statistic": z, "pvalue": p, "ci_lower": est - half, "ci_upper": est + half}


def _heterogeneity_tests(q: Num, k: Num) -> dict[str, Num]:
    df = k - 1.0
    return {
        "q_df": df,
        "q_pvalue": chi2_sf(df, q),
        "i2": _pick(q > 0, np.maximum(0.0, 100.0 * (q - df) / q), 0.0),
        "h2": _pick(df > 0, q / df, 1.0),
    }


def _information(ll: Num, k: Num) -> dict[str, Num]:
    kk = np.maximum(k, 3.0)
    return {
        "aic": -2.0 * ll + 2.0,
        "bic": -2.0 * ll + np.log(k),
        "aicc": -2.0 * ll + 2.0 * kk / (kk - 2.0),
    }


def _test_pvalues(stats: dict[str, Num]) -> dict[str, Num]:
    out = {}
    for name in ("cmh", "cochran"):
        if name in stats:
            out[f"{name}_pvalue"] = chi2_sf(1.0, stats[name])
    for name in ("tarone", "breslow_day"):
        if name in stats:
            out[f"{name}_pvalue"] = _p_if_df(stats["tarone_df"], stats[name])
    return out


def derive_all(stats: dict[str, Num], level: float) -> dict[str, Num]:
    """The derived statistics (see :data:`DERIVED`) of the primary ones in `stats`:

    * Wald inference: ``z = θ̂/SE``, ``p = 2Φ(-|z|)``, ``θ̂ ± z_{(1+level)/2} SE``;
    * Q's df ``k - 1``, p-value (1 for df = 0, as metafor), ``I² = max(0, 100 (Q - df)/Q)``
      (0 when Q = 0) and ``H² = Q/df`` (1 for df = 0, as metafor) (Higgins & Thompson
      2002);
    * AIC ``-2 ll + 2``, BIC ``-2 ll + log k``, AICc ``-2 ll + 2k/(k-2)`` with ``k ≥ 3``
      (metafor's) of the one-parameter model;
    * χ² p-values of the tests (1 df; Tarone and Breslow–Day on their df, NaN for 0 df).

    Run under ``np.errstate(all="ignore")`` (NaN for analyses that were not pooled).
    """
    return {
        **_wald(stats["estimate"], stats["se"], level),
        **_heterogeneity_tests(stats["q"], stats["k_yi"]),
        **_information(stats["loglik"], stats["k_yi"]),
        **_test_pvalues(stats),
    }


def derive(name: str, stats: dict[str, Num], level: float) -> Num:
    """One derived statistic (see :func:`derive_all`) from the primary ones it needs."""
    if name in ("statistic", "pvalue", "ci_lower", "ci_upper"):
        return _wald(stats["estimate"], stats["se"], level)[name]
    if name in ("q_df", "q_pvalue", "i2", "h2"):
        return _heterogeneity_tests(stats.get("q", np.nan), stats["k_yi"])[name]
    if name in ("aic", "bic", "aicc"):
        return _information(stats["loglik"], stats["k_yi"])[name]
    return _test_pvalues(stats)[name]


# ---------------------------------------------------------------------------------------------
# study-level effects (metafor's escalc, as ketameta.escalc computes them)


def added(
    cells: tuple[FloatArray, ...], pf: Mask, add: float, to: str, person_time: bool
) -> tuple[FloatArray, ...]:
    """`add` added to the cells (events, for person-time) of the studies selected by `to`
    (``"only0"``: studies with a zero among those cells; ``"all"``; ``"if0all"``: every
    study of an analysis where one has a zero; ``"none"``), as :func:`ketameta.escalc`."""
    if to == "none" or add == 0.0:
        return cells
    targets = _ADD_TARGETS[person_time]
    if to == "all":
        step: Any = add if pf is None else add * pf
    else:
        prod = np.multiply(cells[targets[0]], cells[targets[1]], out=like(cells[0]))
        for i in targets[2:]:
            prod *= cells[i]
        zero = prod == 0.0
        del prod
        if pf is not None:
            zero &= pf > 0.0
        if not zero.any():  # (no study gets `add`)
            return cells
        if to == "if0all":
            zero = np.broadcast_to(zero.any(axis=-1, keepdims=True), zero.shape)
            if pf is not None:
                zero = zero & (pf > 0.0)
        step = add * zero.astype(np.float64)
    return tuple(np.add(c, step, out=like(c)) if i in targets else c for i, c in enumerate(cells))


def double_zero(cells: tuple[FloatArray, ...], person_time: bool) -> Any:
    """Studies with no events in either group (tables: or only events in both groups)."""
    if person_time:
        return (cells[0] + cells[2]) == 0.0
    return ((cells[0] + cells[2]) == 0.0) | ((cells[1] + cells[3]) == 0.0)


def study_effects(
    cells: tuple[FloatArray, ...],
    pf: Mask,
    measure: str,
    *,
    add: float,
    to: str,
    drop00: bool,
    dz: Any = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The study-level effects ``yi``, variances ``vi`` and a float 0/1 array ``okf``
    saying which studies have one (present, defined, not dropped as double zero).

    The formulas of :func:`ketameta.escalc` (Fleiss & Berlin 2009; Yusuf et al. 1985;
    Rothman, Greenland & Lash 2008): OR ``log(ad/(bc))``, ``1/a + 1/b + 1/c + 1/d``; RR
    ``log((a/n1)/(c/n2))``, ``1/a - 1/n1 + 1/c - 1/n2``; RD ``a/n1 - c/n2``,
    ``p1(1-p1)/n1 + p2(1-p2)/n2``; PETO ``(a - E)/V``, ``1/V``; IRR
    ``log((x1/t1)/(x2/t2))``, ``1/x1 + 1/x2``; IRD ``x1/t1 - x2/t2``,
    ``x1/t1² + x2/t2²``, after `add` (see :func:`added`). Studies without an effect
    keep finite placeholder values (``yi = 0``, ``vi = 1``) and ``okf = 0``. `dz`: the
    double-zero studies, if the caller has them. Absent studies (`pf` 0) must come with
    a table without zeros (the caller's benign ``1, 1, 1, 1``): `add` may reach them
    (they are masked by ``okf``), so `to` needs no mask.
    """
    person_time = measure in ("IRR", "IRD")
    c1, c2, c3, c4 = added(cells, None, add, to, person_time)
    if True:  # (one block for the formulas)
        if measure in ("IRR", "IRD"):
            if measure == "IRR":
                yi = np.log((c1 / c2) / (c3 / c4))
                vi = 1.0 / c1 + 1.0 / c3
            else:
                yi = c1 / c2 - c3 / c4
                vi = c1 / (c2 * c2) + c3 / (c4 * c4)
        else:
            n1, n2 = c1 + c2, c3 + c4
            if measure == "OR":  # (in recycled buffers, see _tarone)
                yi = np.multiply(c1, c4, out=like(c1))
                term = np.multiply(c2, c3, out=like(c1))
                np.divide(yi, term, out=yi)
                np.log(yi, out=yi)  # log(c1 c4 / (c2 c3))
                vi = np.divide(1.0, c1, out=like(c1))
                for cell in (c2, c3, c4):  # 1/c1 + 1/c2 + 1/c3 + 1/c4
                    np.divide(1.0, cell, out=term)
                    vi += term
                del term
            elif measure == "RR":
                yi = np.log((c1 / n1) / (c3 / n2))
                vi = 1.0 / c1 - 1.0 / n1 + 1.0 / c3 - 1.0 / n2
            elif measure == "RD":
                p1, p2 = c1 / n1, c3 / n2
                yi = p1 - p2
                vi = p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2
            else:  # PETO
                nn = n1 + n2
                events, non_events = c1 + c3, c2 + c4
                expected = events * n1 / nn
                hyper_var = events * non_events * (n1 / nn) * (n2 / nn) / (nn - 1.0)
                yi = (c1 - expected) / hyper_var
                vi = 1.0 / hyper_var
    if drop00:
        keep = (~(double_zero(cells, person_time) if dz is None else dz)).astype(np.float64)
        okf = keep if pf is None else pf * keep
    else:
        okf = np.ones(np.shape(yi)) if pf is None else pf.copy()
    # undefined effects (absent studies; zero cells left without `add`; a variance of 0,
    # e.g. a risk difference of 0 - 0, for which metafor reports Q = inf) get no effect
    total = np.add(yi, vi, out=like(yi))  # (one test: NaN or inf anywhere: not finite)
    if not (np.isfinite(total.sum()) and vi.min() > 0.0):
        defined = np.isfinite(total) & (vi > 0.0)
        okf = okf * defined.astype(np.float64)
        yi = np.where(defined, yi, 0.0)
        vi = np.where(defined, vi, 1.0)
    return yi, vi, okf


# ---------------------------------------------------------------------------------------------
# heterogeneity and fit statistics


def heterogeneity(
    estimate: Num, yi: FloatArray, vi: FloatArray, okf: FloatArray
) -> dict[str, Num]:
    """Cochran's Q of the study-level effects around the pooled `estimate` and the
    log-likelihoods of the equal-effects model (as metafor reports them for
    ``rma.mh``/``rma.peto``; the rest follows in :func:`derive`).

    Over the ``k`` studies with ``okf = 1`` and ``w = 1/v``: ``Q = Σ w (y - θ̂)²`` (also
    the deviance), the ML log-likelihood ``-½ (k log 2π + Σ log v + Q)`` and the REML
    log-likelihood ``-½ ((k-1) log 2π + Σ log v + log(Σ w / k) + Q)`` (with metafor's
    ``log|XᵀX| = log k`` term).
    """
    # (in recycled buffers, see _tarone; the expressions as in the comments)
    w = np.divide(okf, vi, out=like(vi))
    dev = np.subtract(yi, estimate[..., None] if np.ndim(estimate) else estimate, out=like(vi))
    wdd = np.multiply(w, dev, out=like(vi))
    wdd *= dev  # w dev²
    log_v = np.log(vi, out=dev)
    log_v *= okf  # okf log v (okf · log v: the same product)
    q, k, sum_log_v, sum_w = _sums(wdd, okf, log_v, w)
    del wdd, log_v
    ll = -0.5 * (k * _LOG_2PI + sum_log_v + q)
    ll_reml = -0.5 * ((k - 1.0) * _LOG_2PI + sum_log_v + np.log(sum_w / k) + q)
    return {"q": q, "deviance": q, "k_yi": k, "loglik": ll, "loglik_reml": ll_reml}


# ---------------------------------------------------------------------------------------------
# Mantel-Haenszel


def _inverse_total(total: FloatArray, pf: Mask) -> FloatArray:
    """``1/total``, 0 for absent studies (whose total is 0)."""
    if pf is None:
        return np.divide(1.0, total, out=like(total))
    out = np.subtract(1.0, pf, out=like(total))
    np.add(total, out, out=out)
    return np.divide(pf, out, out=out)  # pf / (total + (1 - pf))


def _count(pf: Mask, shape: tuple[int, ...]) -> Num:
    if pf is None:
        k = float(shape[-1])
        return np.full(shape[:-1], k) if len(shape) > 1 else k
    return _sum(pf)


def mantel_haenszel(
    t1: FloatArray,
    t2: FloatArray,
    t3: FloatArray,
    t4: FloatArray,
    pf: Mask,
    *,
    measure: str,
    correct: bool,
    rd_variance: str = "sato",
    tests: bool = True,
) -> dict[str, Num]:
    """The Mantel–Haenszel estimate, its variance and (OR, IRR) the tests of the cells.

    `t1..t4` are ``a, b, c, d`` (OR, RR, RD) or ``x1, t1, x2, t2`` (IRR, IRD), zero for
    absent studies, whose `pf` is 0 (``None``: all present).

    Returns the estimate (log scale for OR, RR, IRR), its variance, the per-study MH
    weights (unnormalised), the number of tables ``k`` and a status code per analysis;
    for 2×2 tables also the margins ``n1``, ``n2`` and ``inv_n`` (``1/n``, 0 for absent
    tables), for the OR the ratio ``psi`` (``ΣR/ΣS``) and whether it is ``defined``, and
    with `tests` the OR's tests (:func:`cmh_tests`, :func:`tarone_tests`; a single
    analysis computes them when they are first read).

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
    if measure in ("IRR", "IRD"):
        return _person_time(t1, t2, t3, t4, pf, measure=measure, correct=correct)
    return _tables(t1, t2, t3, t4, pf, measure, correct, rd_variance, tests)


def _status(defined: Num, var: Num) -> Num:
    return _pick(defined, _pick(var > 0, OK, NO_VARIANCE), UNDEFINED)


def _tables(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    pf: Mask,
    measure: str,
    correct: bool,
    rd_variance: str,
    tests: bool,
) -> dict[str, Num]:
    # (in recycled buffers, see _tarone)
    n1 = np.add(a, b, out=like(a))
    n2 = np.add(c, d, out=like(a))
    total = np.add(n1, n2, out=like(a))
    inv_n = _inverse_total(total, pf)
    del total
    out: dict[str, Num] = {"k": _count(pf, a.shape), "n1": n1, "n2": n2, "inv_n": inv_n}
    if measure == "RD":
        w = n1 * n2 * inv_n
        diff = (a * n2 - c * n1) * inv_n
        if rd_variance == "sato":
            p = (n1 * n1 * c - n2 * n2 * a + 0.5 * n1 * n2 * (n2 - n1)) * (inv_n * inv_n)
            qq = (a * (n2 - c) + c * (n1 - a)) * (0.5 * inv_n)
            sw, sdiff, sp, sq = _sums(w, diff, p, qq)
            est = sdiff / sw
            var = (est * sp + sq) / (sw * sw)
        else:
            # (n1 n2 > 0 in every present table; absent ones give 0/1)
            num = a * b * (n2 * n2 * n2) + c * d * (n1 * n1 * n1)
            n1n2 = n1 * n2 if pf is None else n1 * n2 + (1.0 - pf)
            sw, sdiff, snum = _sums(w, diff, num / n1n2 * (inv_n * inv_n))
            est = sdiff / sw
            var = snum / (sw * sw)
        out.update(estimate=est, variance=var, weights=w, status=_status(sw > 0, var))
        out["why"] = "no table has an event (or every table has only events)"
        return out
    r = np.multiply(a, d if measure == "OR" else n2, out=like(a))  # a d / n; RR a n2 / n
    r *= inv_n
    s = np.multiply(b, c, out=like(a)) if measure == "OR" else np.multiply(c, n1, out=like(a))
    s *= inv_n  # b c / n; RR c n1 / n
    if measure == "OR":
        p = np.add(a, d, out=like(a))
        p *= inv_n  # (a + d)/n
        q = np.add(b, c, out=like(a))
        q *= inv_n  # (b + c)/n
        pr = np.multiply(p, r, out=like(a))
        ps_qr = np.multiply(p, s, out=p)
        qr = np.multiply(q, r, out=like(a))
        ps_qr += qr  # p s + q r
        qs = np.multiply(q, s, out=qr)
        sr, ss, spr, spsqr, sqs = _sums(r, s, pr, ps_qr, qs)
        del p, q, pr, ps_qr, qr, qs
        var = spr / (2.0 * sr * sr) + spsqr / (2.0 * sr * ss) + sqs / (2.0 * ss * ss)
        why = (
            "the Mantel-Haenszel odds ratio is 0 or infinite (every table has a zero in "
            "a*d or in b*c)"
        )
    else:
        sr, ss, sv = _sums(r, s, (n1 * n2 * (a + c) - a * c * (n1 + n2)) * (inv_n * inv_n))
        var = sv / (sr * ss)
        why = "the Mantel-Haenszel risk ratio is 0 or infinite (no events in one group)"
    est = np.log(sr / ss)
    defined = (sr > 0) & (ss > 0)
    out.update(estimate=est, variance=var, weights=s, status=_status(defined, var), why=why)
    if measure == "OR":
        psi = sr / ss
        out.update(psi=psi, defined=defined)
        if tests:
            out.update(cmh_tests(a, b, c, d, n1, n2, inv_n, correct=correct))
            out.update(tarone_tests(a, b, c, d, n1, n2, pf, psi, defined))
    return out


def cmh_tests(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    n1: FloatArray,
    n2: FloatArray,
    inv_n: FloatArray,
    *,
    correct: bool,
) -> dict[str, Num]:
    """The Cochran–Mantel–Haenszel and Cochran tests of 2×2 tables (:func:`_cmh_tests`)
    from the cells and the margins of :func:`mantel_haenszel`."""
    return _cmh_tests(*_sums(*_cmh_terms(a, b, c, d, n1, n2, inv_n)), correct=correct)


def tarone_tests(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    n1: FloatArray,
    n2: FloatArray,
    pf: Mask,
    psi: Num,
    defined: Num,
) -> dict[str, Num]:
    """The Breslow–Day and Tarone tests (:func:`_tarone`) at the MH odds ratio `psi`, from
    the cells and the margins of :func:`mantel_haenszel`."""
    if pf is None:
        return _tarone(a, b, c, d, n1, n2, psi, defined)
    # (absent tables get n1 = n2 = 1: a harmless table without events, masked in _tarone,
    # whose fitted cells 0, 1, 0, 1 give V = 0 without a 0/0)
    absent = np.subtract(1.0, pf, out=like(pf))
    return _tarone(
        a,
        b,
        c,
        d,
        np.add(n1, absent, out=like(n1)),
        np.add(n2, absent, out=like(n2)),
        psi,
        defined,
    )


def _cmh_terms(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    n1: FloatArray,
    n2: FloatArray,
    inv_n: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The terms summed by :func:`_cmh_tests`: ``a``, ``E(a) = n1 m1/n`` and the
    hypergeometric and binomial variances of ``a``."""
    # (in recycled buffers, see _tarone; the expressions as in the comments)
    m1 = np.add(a, c, out=like(a))  # a + c
    expected = np.multiply(n1, m1, out=like(a))
    expected *= inv_n  # n1 m1 / n
    base = np.multiply(n1, n2, out=like(a))
    base *= m1
    np.add(b, d, out=m1)
    base *= m1
    np.multiply(inv_n, inv_n, out=m1)
    base *= m1  # n1 n2 m1 (b + d) (1/n)²
    # n ≥ 2 in every present table (both groups non-empty); absent ones have base 0
    v_hyper = np.add(n1, n2, out=like(a))
    v_hyper -= 1.0
    np.divide(base, v_hyper, out=v_hyper)  # base / (n1 + n2 - 1)
    v_binom = np.multiply(base, inv_n, out=m1)
    return a, expected, v_hyper, v_binom


def _cmh_tests(sa: Num, se: Num, svh: Num, svb: Num, *, correct: bool) -> dict[str, Num]:
    """The Cochran–Mantel–Haenszel test (Mantel & Haenszel 1959: hypergeometric variance
    ``n1 n2 m1 m0/(n²(n-1))``) and Cochran's (1954) test (binomial variance
    ``n1 n2 m1 m0/n³``) of a common odds ratio of 1, with the continuity correction
    ``(|Σa - ΣE(a)| - ½)²`` when `correct` (applied as written, also when
    ``|Σa - ΣE(a)| < ½``, as metafor), from the sums over the tables of the terms of
    :func:`_cmh_terms`."""
    diff = abs(sa - se)
    if correct:
        diff = diff - 0.5
    num = diff * diff
    return {"cmh": num / svh, "cochran": num / svb}


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

    For each table with both outcomes present (``m1, m0 > 0``), ``ã`` is the count in the
    first cell that gives the table the odds ratio ``ψ`` (the MH estimate) with its
    margins: the root of ``x (n2 - m1 + x) = ψ (n1 - x)(m1 - x)`` in
    ``[max(0, m1 - n2), min(n1, m1)]``, with variance
    ``V = 1/(1/ã + 1/(n1 - ã) + 1/(m1 - ã) + 1/(n2 - m1 + ã))``. Breslow–Day
    ``X² = Σ (a - ã)²/V``; Tarone's ``X² - (Σa - Σã)²/ΣV``, both on ``K - 1`` df with
    ``K`` such tables (Breslow & Day 1980; Tarone 1985).
    """
    # (a batch's arrays in recycled buffers, :mod:`ketameta._engine.workspace`: each
    # chunk's fresh temporaries would be faulted in again; the same operations as
    # written in the comments, element by element)
    m1 = np.add(a, c, out=like(a))  # a + c
    m0 = np.add(n1, n2, out=like(n1))
    m0 -= m1  # n1 + n2 - m1 (absent tables: 1 + 1 - 0, the harmless table's)
    low = np.minimum(m1, m0, out=like(m1))
    usable = np.greater(low, 0.0, out=like(m1))  # (min(m1, m0) > 0) as 0.0/1.0
    del low
    psi_safe = _pick(defined, psi, 1.0)  # (rows whose ψ is undefined get NaN below)
    cells = _fitted_table(n1, n2, m1, m0, np.asarray(psi_safe, dtype=np.float64))
    # 1/V = Σ 1/x̃ = n1/(x̃11 x̃12) + n2/(x̃21 x̃22) (the rows' cells add up to n1, n2)
    var = np.multiply(cells[0], cells[1], out=like(n1))
    np.divide(n1, var, out=var)
    term = np.multiply(cells[2], cells[3], out=like(n1))
    np.divide(n2, term, out=term)
    var += term
    del term
    np.divide(1.0, var, out=var)
    # the residual a - ã = x̃12 - b = x̃21 - c = d - x̃22, taken from the smallest fitted cell
    resid = np.subtract(a, cells[0], out=like(a))
    smallest = like(a)
    np.copyto(smallest, cells[0])
    other = like(a)
    for j, cell in enumerate(cells[1:]):
        if j == 0:
            np.subtract(cell, b, out=other)
        elif j == 1:
            np.subtract(cell, c, out=other)
        else:
            np.subtract(d, cell, out=other)
        np.copyto(resid, other, where=cell < smallest)  # np.where(cell < smallest, ...)
        np.minimum(cell, smallest, out=smallest)
    del other, smallest, cells
    # (tables without both outcomes have ã at a bound and V = 0: their terms are masked)
    var *= usable
    resid *= usable
    ratio = np.subtract(1.0, usable, out=like(var))
    np.add(var, ratio, out=ratio)
    np.divide(resid, ratio, out=ratio)  # r/V (0 for the masked tables)
    product = np.multiply(resid, ratio, out=like(var))
    bd, sresid, svar, k_pos = _sums(product, resid, var, usable)
    del product
    if not np.isfinite(bd + sresid + svar).all():  # (never expected: a NaN-safe path)
        var, resid = np.where(usable > 0, var, 0.0), np.where(usable > 0, resid, 0.0)
        ratio = resid / (var + (1.0 - usable))
        bd, sresid, svar = _sums(resid * ratio, resid, var)
    # Tarone's X² - (Σr)²/ΣV is the weighted spread Σ V (r/V - c)², c = Σr/ΣV, a sum of
    # non-negative terms: the difference itself cancels when the correction is near X²
    centre = sresid / svar  # (no usable table: NaN, masked below; under the caller's errstate)
    centre_c = centre[..., None] if np.ndim(centre) else centre
    spread = np.subtract(ratio, centre_c, out=like(ratio))
    np.multiply(var, spread, out=ratio)
    ratio *= spread
    (tarone,) = _sums(ratio)
    df = k_pos - 1.0
    nan = ~(defined & (k_pos > 0))
    bd = _pick(nan, math.nan, _pick(k_pos > 1, bd, 0.0))
    tarone = _pick(nan, math.nan, _pick(k_pos > 1, tarone, 0.0))
    return {"breslow_day": bd, "tarone": tarone, "tarone_df": df}


#: up to this many tables, the four cells of the fitted tables are solved in one set of
#: NumPy calls on (2, 2, ...) stacks (the calls, not the arithmetic, are the cost); beyond,
#: cell by cell (stacks 4× a batch chunk would leave the allocator's cache)
_STACK_TABLES = 4096


def _fitted_table(
    n1: FloatArray, n2: FloatArray, m1: FloatArray, m0: FloatArray, psi: Num
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The four cells ``x̃11, x̃12, x̃21, x̃22`` of each table refitted to the odds ratio
    `psi` (one per analysis) with its margins, each solved for directly (a cell near 0
    would lose its digits as a margin minus another cell).

    ``x̃11`` is the root of ``x (n2 - m1 + x) = ψ (n1 - x)(m1 - x)`` in
    ``[max(0, m1 - n2), min(n1, m1)]``; each other cell solves the same equation with
    the margins and ψ permuted (row 2 / column 2 exchange ``n1`` with ``n2`` / ``m1``
    with ``m0`` and ψ with 1/ψ). The four quadratics share their discriminant up to the
    factor ψ² (their roots are the same two tables), which with ``e1 = n1 - m1`` and
    ``e2 = n2 - m1`` is a sum of non-negative terms, free of cancellation for every ψ:
    ``D = ψ² e1² + 2ψ (n1 n2 + m1 m0) + e2²``. Each cell is then the stable root
    ``x = 2κ n m / (ℓ + √D)`` (no cancellation while ``ℓ ≥ 0``), with ``n, m`` its row
    and column totals and

    * ``x̃11``: ``κ = ψ``, ``ℓ = ψ (n1 + m1) + e2``; ``x̃22``: ``κ = ψ``,
      ``ℓ = ψ (n2 + m0) - e2``;
    * ``x̃12``: ``κ = 1``, ``ℓ = (n1 + m0) - ψ e1``; ``x̃21``: ``κ = 1``,
      ``ℓ = (n2 + m1) + ψ e1``;

    and where ``ℓ < 0`` (possible only for ψ < 1 on the diagonal, ψ > 1 off it) the
    other form of the same root, ``(√D - ℓ)/(2 |1 - ψ|)``.

    The same arithmetic element by element, and the same memory order of the results,
    whether the cells are solved as one stack or one by one: the stacks hold the
    transposed margins (studies first, so ψ broadcasts along the last axis) and their
    results transpose back (a batch's column-major chunks stay column-major, and its sums
    over the studies add in the same order)."""
    if n1.size <= _STACK_TABLES:
        n = np.array((n1.T, n2.T))[:, None]  # (2, 1, k, ...): row totals
        m = np.array((m1.T, m0.T))[None, :]  # (1, 2, k, ...): column totals
        e1, e2 = n[0, 0] - m[0, 0], n[1, 0] - m[0, 0]
        g = np.array(((e2, -e1), (e1, -e2)))
        one = np.ones_like(psi)
        coefs = np.array((((psi, one), (one, psi)), ((one, psi), (psi, one))))
        coefs = coefs.reshape((2, 2, 2, *(1,) * (n1.ndim - psi.ndim), *psi.shape))
        x = _fitted_cells(n, m, e1, e2, g, coefs[0], coefs[1], psi)
        return x[0, 0].T, x[0, 1].T, x[1, 0].T, x[1, 1].T
    psi_c = psi[..., None]
    # (in recycled buffers, see _tarone; the expressions as in the comments)
    e1 = np.subtract(n1, m1, out=like(n1))  # n1 - m1
    e2 = np.subtract(n2, m1, out=like(n1))  # n2 - m1
    pe1 = np.multiply(psi_c, e1, out=e1)  # ψ e1 (e1 itself is not needed again)
    rd = _root_discriminant(n1, n2, m1, m0, pe1, e2, psi_c)
    two_psi = 2.0 * psi_c
    cells = []
    for row, col, diagonal, sign in (
        (n1, m1, True, 1),
        (n1, m0, False, -1),
        (n2, m1, False, 1),
        (n2, m0, True, -1),
    ):
        lin = np.add(row, col, out=like(n1))
        if diagonal:  # ψ (n + m) ± e2
            np.multiply(psi_c, lin, out=lin)
            (np.add if sign > 0 else np.subtract)(lin, e2, out=lin)
        else:  # (n + m) ∓ ψ e1
            (np.add if sign > 0 else np.subtract)(lin, pe1, out=lin)
        num = np.multiply(row, col, out=like(n1))  # 2ψ (n m) on the diagonal, 2 (n m) off it
        np.multiply(two_psi if diagonal else 2.0, num, out=num)
        cells.append(_stable_root(lin, num, rd, (1.0 - psi_c) if diagonal else (psi_c - 1.0)))
        del lin, num
    return cells[0], cells[1], cells[2], cells[3]


def _root_discriminant(
    n1: FloatArray,
    n2: FloatArray,
    m1: FloatArray,
    m0: FloatArray,
    pe1: FloatArray,
    e2: FloatArray,
    psi: Any,
) -> FloatArray:
    """``√D``, ``D = (ψ e1)² + 2ψ (n1 n2 + m1 m0) + e2²`` (see :func:`_fitted_table`),
    from ``pe1 = ψ e1``."""
    d = np.multiply(pe1, pe1, out=like(pe1))
    term = np.multiply(n1, n2, out=like(pe1))
    other = np.multiply(m1, m0, out=like(pe1))
    term += other  # n1 n2 + m1 m0
    np.multiply(2.0 * psi, term, out=term)
    d += term  # += (2ψ)(n1 n2 + m1 m0)
    np.multiply(e2, e2, out=other)
    d += other  # += e2²
    return np.sqrt(d, out=d)


def _stable_root(lin: FloatArray, num: FloatArray, rd: FloatArray, q: Any) -> FloatArray:
    """``num/(lin + √D)``, or ``(√D - lin)/(2q)`` where ``lin < 0`` (see
    :func:`_fitted_table`)."""
    x: FloatArray = np.add(lin, rd, out=like(lin))
    np.divide(num, x, out=x)  # num / (lin + √D)
    if not lin.min() >= 0.0:
        x = np.where(lin >= 0.0, x, (rd - lin) / (2.0 * q))
    return x


def _fitted_cells(
    n: FloatArray,
    m: FloatArray,
    e1: FloatArray,
    e2: FloatArray,
    g: FloatArray,
    kappa: FloatArray,
    iota: FloatArray,
    psi: Any,
) -> FloatArray:
    """The four cells of :func:`_fitted_table` as one (2, 2, k, ...) stack: with the row
    and column totals `n`, `m` broadcast against each other, ``ℓ = ι (n + m) + ι' g``
    (``ι`` = ψ on the diagonal, 1 off it; ``ι'`` the other; ``g`` = ``e2, -e1; e1,
    -e2``) and ``x = 2κ n m/(ℓ + √D)``: the cell-by-cell arithmetic, element by
    element."""
    rd = _root_discriminant(n[0, 0], n[1, 0], m[0, 0], m[0, 1], psi * e1, e2, psi)
    lin = kappa * (n + m)
    lin += iota * g
    num = (2.0 * kappa) * (n * m)
    return _stable_root(lin, num, rd, iota - kappa)


def _person_time(
    x1: FloatArray,
    t1: FloatArray,
    x2: FloatArray,
    t2: FloatArray,
    pf: Mask,
    *,
    measure: str,
    correct: bool,
) -> dict[str, Num]:
    inv_t = _inverse_total(t1 + t2, pf)
    w = t1 * t2 * inv_t
    out: dict[str, Num] = {"k": _count(pf, x1.shape)}
    if measure == "IRD":
        # W² (x1/t1² + x2/t2²) = (x1 t2² + x2 t1²)/T²
        sw, sdiff, sv = _sums(
            w, (x1 * t2 - x2 * t1) * inv_t, (x1 * t2 * t2 + x2 * t1 * t1) * (inv_t * inv_t)
        )
        est = sdiff / sw
        var = sv / (sw * sw)
        out.update(
            estimate=est,
            variance=var,
            weights=w,
            status=_status(sw > 0, var),
            why="no events in any study",
        )
        return out
    r = x1 * t2 * inv_t
    s = x2 * t1 * inv_t
    events = x1 + x2
    # the Mantel-Haenszel test for person-time data (Rothman, Greenland & Lash 2008):
    # E(x1) = (x1 + x2) t1/T, Var = (x1 + x2) t1 t2/T²
    sr, ss, v, sx1, sexp = _sums(r, s, events * w * inv_t, x1, events * t1 * inv_t)
    est = np.log(sr / ss)
    var = v / (sr * ss)
    defined = (sr > 0) & (ss > 0)
    diff = abs(sx1 - sexp)
    if correct:
        diff = diff - 0.5
    mh = diff * diff / v
    out.update(
        estimate=est,
        variance=var,
        weights=s,
        status=_status(defined, var),
        why="the Mantel-Haenszel rate ratio is 0 or infinite (no events in one group)",
        cmh=mh,
    )
    return out


# ---------------------------------------------------------------------------------------------
# Peto


def peto(a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray, pf: Mask) -> dict[str, Num]:
    """Peto's one-step log odds ratio (Yusuf et al. 1985): with the observed ``O = a``,
    its hypergeometric expectation ``E = n1 m1/n`` and variance
    ``V = n1 n2 m1 m0/(n² (n - 1))``, ``log ψ = Σ(O - E)/ΣV`` with variance ``1/ΣV``;
    study weights ``V``. Q is ``Σ(O - E)²/V - (Σ(O - E))²/ΣV`` over the tables with
    ``V > 0`` (metafor's Q of ``rma.peto``: the cells as pooled)."""
    n1 = a + b
    n2 = c + d
    m1 = a + c
    inv_n = _inverse_total(n1 + n2, pf)
    base = n1 * n2 * m1 * (b + d) * (inv_n * inv_n)
    v = base / (n1 + n2 - 1.0)  # (n ≥ 2 in present tables; absent ones: 0/(-1))
    resid = a - n1 * m1 * inv_n
    informative = (v > 0.0).astype(np.float64)
    sv, o_minus_e, sq = _sums(v, resid, resid * resid / (v + (1.0 - informative)) * informative)
    est = o_minus_e / sv
    var = 1.0 / sv
    q = sq - o_minus_e * est
    return {
        "k": _count(pf, a.shape),
        "estimate": est,
        "variance": var,
        "weights": v,
        "q": q,
        "status": _pick(sv > 0, OK, UNDEFINED),
        "why": "one of the two outcomes never occurs in any table (no hypergeometric variance)",
    }
