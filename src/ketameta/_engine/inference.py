"""Reference distributions of the tests: normal, t, χ² and F tails and critical values.

Written for a number per analysis (:data:`~ketameta._engine._num.Num`): a single analysis
gets Python-float arithmetic (``math.erfc``; the χ² tail's closed-form series), a batch
SciPy's ufuncs.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from ._num import Num

#: largest degrees of freedom (and x/2) for which chi2_sf sums its closed-form series
_CHI2_SERIES_MAX_DF = 64
_CHI2_SERIES_MAX_HALF_X = 600.0
_NUMBER = (float, int)


def chi2_sf(df: Num, x: Num) -> Num:
    """Survival function of the χ² distribution, ``P(X > x)``, ``X ~ χ²(df)``.

    Integer `df` ≤ 64 (the Q test's k - 1) use the closed forms (Abramowitz & Stegun
    26.4.4-5): for a batch a few passes per distinct df instead of an incomplete-gamma
    evaluation per row, for a single value a few Python-float operations: with
    ``h = x/2``, even ``df = 2n``: ``e^{-h} Σ_{j<n} h^j/j!``; odd ``df = 2n+1``:
    ``erfc(√h) + e^{-h} √(2/π) Σ_{j=1..n} x^{j-1/2}/(1·3···(2j-1))``. Every term is
    positive, so the sums are accurate to rounding; other rows use ``chdtrc``.
    """
    if isinstance(x, float):  # one analysis: the series in Python floats
        in_range = 0.0 <= x <= 2.0 * _CHI2_SERIES_MAX_HALF_X
        if in_range and isinstance(df, _NUMBER) and _series_df(float(df)):
            return _chi2_sf_series(int(df), x)
        return float(special.chdtrc(df, x))
    xs = np.asarray(x, dtype=np.float64)
    series = (xs >= 0) & (xs <= 2.0 * _CHI2_SERIES_MAX_HALF_X)
    if isinstance(df, _NUMBER):  # one df for every row (a batch of complete analyses)
        groups = [float(df)]
        dfs = np.full(xs.shape, float(df))
    else:
        dfs = np.broadcast_to(np.asarray(df, dtype=np.float64), xs.shape)
        first = float(dfs.flat[0]) if dfs.size else 1.0
        groups = [first] if np.all(dfs == first) else np.unique(dfs).tolist()
    out = np.empty(xs.shape)
    done = np.zeros(xs.shape, dtype=bool)
    for d in groups:
        if not _series_df(d):
            continue
        rows = series & (dfs == d) if len(groups) > 1 else series
        if rows.all():
            out[...] = _chi2_sf_series(int(d), xs)
        else:
            out[rows] = _chi2_sf_series(int(d), xs[rows])
        done |= rows
    rest = ~done
    if rest.any():
        out[rest] = special.chdtrc(dfs[rest], xs[rest])
    return out


def _series_df(df: float) -> bool:
    """Whether :func:`chi2_sf` has the closed-form series for `df` (an integer 1-64)."""
    return bool(df == round(df) and 1 <= df <= _CHI2_SERIES_MAX_DF)


def _chi2_sf_series(df: int, x: Num) -> Num:
    """:func:`chi2_sf` for one integer `df` (≥ 1) and 0 ≤ x ≤ 1200, by its finite series
    (a Python float, or an array)."""
    h = 0.5 * x
    n = df // 2
    one = type(x) is float
    exp_minus_h = math.exp(-h) if one else np.exp(-h)
    if df % 2 == 0:  # e^{-h} (1 + h + h²/2! + ... + h^(n-1)/(n-1)!)
        term, total = (1.0, 1.0) if one else (np.ones_like(h), np.ones_like(h))
        for j in range(1, n):
            term *= h * (1.0 / j)
            total += term
        return _at_most_one(exp_minus_h * total)
    root_h = math.sqrt(h) if one else np.sqrt(h)
    tail = math.erfc(root_h) if one else special.erfc(root_h)
    if n == 0:
        return tail
    # √(2/π) e^{-h} (√x + x^{3/2}/3 + x^{5/2}/(3·5) + ...), n terms
    term = math.sqrt(2.0) * root_h  # √x
    total = term * 1.0  # (a new array for an array)
    for j in range(1, n):
        term *= x * (1.0 / (2 * j + 1))
        total += term
    total *= math.sqrt(2.0 / math.pi) * exp_minus_h
    total += tail
    return _at_most_one(total if one else np.asarray(total, dtype=np.float64))


def _at_most_one(p: Num) -> Num:
    """A probability whose rounding went past 1 (the series sum ``e^{-h} Σ h^j/j!`` to
    ``1 + 2^-52`` for small x, e.g. df = 24, x = 0.5), capped at 1 (NaN stays NaN)."""
    if type(p) is float:
        return 1.0 if p > 1.0 else p
    return np.minimum(p, 1.0)


def two_sided_normal_p(z: Num) -> Num:
    """``2 Φ(-|z|) = erfc(|z|/√2)``; a Python float through :func:`math.erfc` (accurate to
    a few ulp, without a ufunc call's overhead), arrays through SciPy."""
    if isinstance(z, float) and not math.isnan(z):
        return math.erfc(abs(z) / math.sqrt(2.0))
    p = 2.0 * special.ndtr(-np.abs(z))
    return float(p) if np.ndim(p) == 0 else np.asarray(p, dtype=np.float64)


@functools.lru_cache(maxsize=16)
def critical_z(level: float) -> float:
    """The two-sided normal critical value of `level` (a Python float: cheap arithmetic)."""
    return float(-special.ndtri((1.0 - level) / 2.0))


def critical_value(level: float, df: Num | None = None) -> Num:
    """Two-sided critical value of a confidence `level`: the upper ``(1 - level)/2``
    quantile of the standard normal (`df` None or inf) or of Student's t with `df`.

    Computed from the tail probability ``1 - level`` (exact in floating point for every
    level in [0.5, 1) by Sterbenz' lemma), never from ``0.5 + level/2``, which rounds to 1
    -- an infinite critical value -- for levels within an ulp or two of 1.
    """
    if df is None:
        return critical_z(level)
    c = np.negative(special.stdtrit(df, (1.0 - level) / 2.0))
    return float(c) if np.ndim(c) == 0 else np.asarray(c, dtype=np.float64)


def two_sided_p(stat: Num, df: Num, test: str) -> Num:
    """Two-sided p-value of `stat`: normal for ``test="z"``, else t with `df` degrees of
    freedom (``stdtr`` with ``df = inf`` is the normal distribution)."""
    if test == "z":
        return two_sided_normal_p(stat)
    p = 2.0 * special.stdtr(df, -np.abs(stat))
    return float(p) if np.ndim(p) == 0 else np.asarray(p, dtype=np.float64)


def test_critical_value(level: float, df: Num, test: str) -> Num:
    """The two-sided critical value of `level` for `test`: normal for ``"z"``, else t(`df`)."""
    return critical_z(level) if test == "z" else critical_value(level, df)


def f_sf(dfn: float, dfd: Num, x: Num) -> Num:
    """``P(F > x)`` for ``F ~ F(dfn, dfd)``."""
    p = special.fdtrc(dfn, dfd, x)
    return float(p) if np.ndim(p) == 0 else np.asarray(p, dtype=np.float64)
