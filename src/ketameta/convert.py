"""Conversions people do by hand before (and after) a meta-analysis.

Each function cites the source of its formula. All accept scalars or array-likes,
broadcast them, and return float64 arrays (0-d inputs give 0-d arrays); inputs are
never modified.

References
----------
.. [1] Altman, D. G., & Bland, J. M. (2011). How to obtain the confidence interval
   from a P value. BMJ, 343, d2090. https://doi.org/10.1136/bmj.d2090
.. [2] Altman, D. G., & Bland, J. M. (2011). How to obtain the P value from a
   confidence interval. BMJ, 343, d2304. https://doi.org/10.1136/bmj.d2304
.. [3] Wan, X., Wang, W., Liu, J., & Tong, T. (2014). Estimating the sample mean and
   standard deviation from the sample size, median, range and/or interquartile range.
   BMC Medical Research Methodology, 14, 135. https://doi.org/10.1186/1471-2288-14-135
.. [4] Luo, D., Wan, X., Liu, J., & Tong, T. (2018). Optimally estimating the sample
   mean from the sample size, median, mid-range, and/or mid-quartile range.
   Statistical Methods in Medical Research, 27(6), 1785-1805.
   https://doi.org/10.1177/0962280216669183
.. [5] Shi, J., Luo, D., Weng, H., Zeng, X.-T., Lin, L., Chu, H., & Tong, T. (2020).
   Optimally estimating the sample standard deviation from the five-number summary.
   Research Synthesis Methods, 11(5), 641-654. https://doi.org/10.1002/jrsm.1429
.. [6] Hasselblad, V., & Hedges, L. V. (1995). Meta-analysis of screening and
   diagnostic tests. Psychological Bulletin, 117(1), 167-178.
   https://doi.org/10.1037/0033-2909.117.1.167
.. [7] Chinn, S. (2000). A simple method for converting an odds ratio to effect size
   for use in meta-analysis. Statistics in Medicine, 19(22), 3127-3131.
.. [8] Borenstein, M., Hedges, L. V., Higgins, J. P. T., & Rothstein, H. R. (2009).
   Introduction to Meta-Analysis, ch. 7. Wiley. https://doi.org/10.1002/9780470743386
.. [9] Fisher, R. A. (1921). Metron, 1, 3-32.
.. [11] Jacobs, P., & Viechtbauer, W. (2017). Estimation of the biserial correlation and
   its sampling variance for use in meta-analysis. Research Synthesis Methods, 8(2),
   161-180. https://doi.org/10.1002/jrsm.1218
.. [10] Miller, J. J. (1978). The inverse of the Freeman-Tukey double arcsine
   transformation. The American Statistician, 32(4), 138.
   https://doi.org/10.1080/00031305.1978.10479283
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import numpy as np
from scipy import special

from ._results import RecordResult, plain
from ._typing import FloatArray
from ._validation import as_float, check_choice, check_level

__all__ = [
    "GrimResult",
    "MeanSD",
    "ReportedCheck",
    "check_reported",
    "counts_from_percent",
    "exp",
    "grim_test",
    "inv_arcsine",
    "inv_freeman_tukey",
    "inv_logit",
    "log_or_to_smd",
    "mean_sd_from_median",
    "r_to_smd",
    "r_to_z",
    "se_from_ci",
    "se_from_pvalue",
    "smd_to_log_or",
    "smd_to_r",
    "var_from_ci",
    "var_from_pvalue",
    "z_to_r",
]

_LOGISTIC = np.pi / np.sqrt(3.0)


_MAX = float(np.finfo(np.float64).max)
_TINY = float(np.finfo(np.float64).tiny)  # smallest normal double
_LN2 = math.log(2.0)


def _arr(x: Any, name: str) -> FloatArray:
    """`x` as a new float64 array: the shared conversion (masked entries, ``pd.NA`` and
    nullable-dtype NA are NaN, so NaN out; ``Decimal``, ``Fraction``, NumPy scalars and long
    doubles accepted; named errors for values beyond the double range, strings, complex and
    date-time values); infinities are refused."""
    out = as_float(x, name)
    if np.isinf(out).any():
        i = int(np.flatnonzero(np.isinf(out).reshape(-1))[0])
        msg = f"`{name}` must be finite; element {i} is infinite"
        raise ValueError(msg)
    return out


def _same_shape(**arrays: FloatArray | None) -> None:
    """Inputs combined element by element must have one shape (or be scalars); the message
    names both arguments (NumPy's broadcasting error names neither)."""
    given = [(name, a) for name, a in arrays.items() if a is not None and a.ndim > 0]
    for (first, a), (second, b) in itertools.pairwise(given):
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            n_a = a.shape[0] if a.ndim == 1 else a.shape
            n_b = b.shape[0] if b.ndim == 1 else b.shape
            msg = (
                f"`{second}` has {n_b} elements but `{first}` has {n_a}; give them the same "
                "length (or a single number for either)"
            )
            raise ValueError(msg) from None


def _no_underflow(se: FloatArray, scale: FloatArray, name: str) -> None:
    """A standard error that underflows to 0 from a non-zero scale is a named error."""
    bad = (np.asarray(se) == 0) & (np.asarray(scale) != 0)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        msg = (
            f"the standard error underflows the floating-point range (below 5e-324) for "
            f"this `{name}`; element {i}"
        )
        raise ValueError(msg)


def _checked(result: Any, name: str) -> FloatArray:
    """Results overflowing from finite inputs are a named error, not inf with a warning."""
    out = np.asarray(result, dtype=np.float64)
    if np.isinf(out).any():
        msg = f"`{name}` is too large: the result overflows the floating-point range"
        raise ValueError(msg)
    return out


def _require(cond: Any, name: str, requirement: str, values: FloatArray) -> None:
    bad = ~np.asarray(cond) & ~np.isnan(values)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        msg = f"`{name}` must be {requirement}; element {i} is {values.reshape(-1)[i]!r}"
        raise ValueError(msg)


def _normal_quantile(p: FloatArray, c: FloatArray) -> FloatArray:
    """q with P(|Z| > q) = p for a standard normal Z, given p and c = 1 - p (each to full
    relative precision where it is the smaller one): from the tail that keeps every digit,
    down to p = 5e-324."""
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(
            p >= _TINY,
            -special.ndtri(p / 2.0),
            -special.ndtri_exp(np.log(np.where(p > 0, p, np.nan)) - _LN2),
        )
        central = np.sqrt(2.0) * special.erfinv(c)
    return np.asarray(np.where(p <= 0.5, upper, central), dtype=np.float64)


def _t_quantile_reciprocal(p: FloatArray, c: FloatArray, df: FloatArray) -> FloatArray:
    """1/q with P(|T| > q) = p for Student's t with `df` degrees of freedom, given p and
    c = 1 - p (the reciprocal: q itself overflows for df ≤ 1 and p below ~1e-308).

    P(|T| > q) = I_x(df/2, 1/2) with x = df/(df + q²) (Abramowitz & Stegun 26.7.1), so
    1/q = sqrt(x / (df y)), y = 1 - x. Both x and y come from inverses of the incomplete
    beta function (regularised or complementary) of the smaller of p and c, so neither
    is formed as 1 minus the other. Where x is tiny, I_x(a, 1/2) = x^a / (a B(a, 1/2))
    (1 + O(x)) gives x in closed form; for subnormal p with larger df the root is found on
    the logarithmic scale (:func:`_t_log_quantile`).
    """
    p, c, df = np.broadcast_arrays(p, c, df)
    a = df / 2.0
    upper = p <= 0.5
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        x = np.where(upper, special.betaincinv(a, 0.5, p), _betainccinv(a, 0.5, c))
        y = np.where(upper, _betainccinv(0.5, a, p), special.betaincinv(0.5, a, c))
        out = np.sqrt(x / (df * y))
        # sqrt(x / df) with x^a = p a B(a, 1/2); in logarithms where p a B is subnormal
        log_base = np.log(np.where(p > 0, p, np.nan)) + np.log(a) + special.betaln(a, 0.5)
        base = np.exp(log_base)
        sqrt_x = np.where(base >= _TINY, base ** (0.5 / a), np.exp(log_base * (0.5 / a)))
        small = np.exp(log_base / a) < 1e-16  # relative error of the closed form ~ x
        out = np.where(small, sqrt_x / np.sqrt(df), out)
    hard = np.flatnonzero(((p < _TINY) & ~small).reshape(-1))
    if hard.size:
        out = np.array(out, dtype=np.float64)
        flat, p_flat, df_flat = out.reshape(-1), p.reshape(-1), df.reshape(-1)
        for i in hard:
            flat[i] = math.exp(-_t_log_quantile(float(p_flat[i]), float(df_flat[i])))
    return np.asarray(out, dtype=np.float64)


def _betainccinv(a: Any, b: Any, q: Any) -> Any:
    """x with 1 - I_x(a, b) = q (SciPy ≥ 1.11 has it; earlier: through 1 - q)."""
    inverse = getattr(special, "betainccinv", None)
    if inverse is not None:
        return inverse(a, b, q)
    return special.betaincinv(a, b, 1.0 - q)  # pragma: no cover - old SciPy


def _t_log_tail(log_q: float, df: float) -> float:
    """log P(|T| > q) = log I_x(a, 1/2), x = df/(df + q²), a = df/2, from
    I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) 2F1(a + b, 1; a + 1; x) (DLMF 8.17.8 with
    15.8.1), in logarithms, for probabilities below the smallest double."""
    a = df / 2.0
    ratio = math.exp(2.0 * log_q) / df  # q² / df
    log_x = -math.log1p(ratio)
    log_y = 2.0 * log_q - math.log(df) - math.log1p(ratio)
    hyp = float(special.hyp2f1(a + 0.5, 1.0, a + 1.0, math.exp(log_x)))
    return a * log_x + 0.5 * log_y - math.log(a) - float(special.betaln(a, 0.5)) + math.log(hyp)


def _t_log_quantile(p: float, df: float) -> float:
    """log q with P(|T| > q) = p, for subnormal p: the t quantile exceeds the normal
    one (38.5 at p = 5e-324), so the root of the monotone log tail is bracketed above it."""
    from scipy.optimize import brentq  # heavy: only for p below the smallest normal double

    target = math.log(p)
    low = math.log(float(-special.ndtri_exp(target - _LN2)))
    high = low + 8.0
    while _t_log_tail(high, df) > target:
        high += 8.0
    return float(brentq(lambda u: _t_log_tail(u, df) - target, low, high, xtol=1e-15))


def _quantile_reciprocal(p: FloatArray, c: FloatArray, df: FloatArray | None) -> FloatArray:
    """1/q for the two-sided quantile q (P(|Z| > q) = p, or Student's t with `df`)."""
    if df is None:
        with np.errstate(divide="ignore"):
            return np.asarray(1.0 / _normal_quantile(p, c), dtype=np.float64)
    return _t_quantile_reciprocal(p, c, df)


def _crit_reciprocal(level: float, df: Any = None) -> FloatArray:
    """1/q for the quantile q of a two-sided interval at `level` (normal, or t with `df`)."""
    lv = check_level(level)
    d = None
    if df is not None:
        d = _arr(df, "df")
        _require(d > 0, "df", "positive", d)
    # P(|Z| > q) = 1 - level: 1 - level is exact for level ≥ 1/2, and level itself is the
    # complement, so levels within one ulp of 1 (or near 0) keep every digit
    one = np.float64(1.0)
    return _quantile_reciprocal(np.asarray(one - lv), np.asarray(np.float64(lv)), d)


def se_from_ci(
    lower: Any, upper: Any, *, level: float = 0.95, log: bool = False, df: Any = None
) -> FloatArray:
    """Standard error from a symmetric confidence interval.

    ``SE = (upper - lower) / (2 q)``, with ``q`` the normal quantile (or the t quantile
    with `df` degrees of freedom) at ``(1 + level)/2`` [2]_. For ratios (odds, risk,
    hazard ratios) pass ``log=True``: the interval is symmetric on the log scale, so
    the SE is that of the log ratio.

    Parameters
    ----------
    lower, upper : array_like
        Confidence limits (positive when ``log=True``).
    level : float
        Confidence level of the interval, in (0, 1).
    log : bool
        Take logarithms of the limits first.
    df : array_like, optional
        Degrees of freedom when the interval was t-based.

    Returns
    -------
    ndarray
        Standard errors.

    References
    ----------
    .. [2] Altman & Bland (2011), BMJ 343:d2304.

    Examples
    --------
    An odds ratio of 1.37 (95% CI 1.03 to 1.82), from metafor's ``conv.wald`` example:

    >>> from ketameta import convert
    >>> float(convert.se_from_ci(1.03, 1.82, log=True) ** 2)
    0.0211...
    """
    lo, hi = _arr(lower, "lower"), _arr(upper, "upper")
    _same_shape(lower=lo, upper=hi, df=None if df is None else _arr(df, "df"))
    if log:
        _require(lo > 0, "lower", "positive when log=True", lo)
        _require(hi > 0, "upper", "positive when log=True", hi)
        lo, hi = np.log(lo), np.log(hi)
    _require(hi >= lo, "upper", "at least `lower`", hi)
    with np.errstate(over="ignore", invalid="ignore"):
        se = (hi - lo) / 2.0 * _crit_reciprocal(level, df)
    _no_underflow(se, hi - lo, "level")
    return _checked(se, "upper")


def var_from_ci(
    lower: Any, upper: Any, *, level: float = 0.95, log: bool = False, df: Any = None
) -> FloatArray:
    """Sampling variance from a confidence interval: the square of :func:`se_from_ci`.

    References
    ----------
    .. [2] Altman & Bland (2011), BMJ 343:d2304.

    Examples
    --------
    >>> from ketameta import convert
    >>> float(convert.var_from_ci(1.6, 2.23, log=True))
    0.0072...
    """
    with np.errstate(over="ignore"):
        return _checked(se_from_ci(lower, upper, level=level, log=log, df=df) ** 2, "upper")


def se_from_pvalue(estimate: Any, pvalue: Any, *, log: bool = False, df: Any = None) -> FloatArray:
    """Standard error from an estimate and its two-sided p-value.

    ``SE = |estimate| / q``, with ``q`` the normal quantile (or t quantile with `df`)
    at ``1 - p/2`` [1]_. With ``log=True`` the estimate is a ratio and the SE is that
    of its logarithm.

    Parameters
    ----------
    estimate : array_like
        The point estimate (a ratio when ``log=True``).
    pvalue : array_like
        Two-sided p-values in (0, 1).
    log : bool
        Take the logarithm of the estimate.
    df : array_like, optional
        Degrees of freedom when the test was a t-test.

    Returns
    -------
    ndarray
        Standard errors (NaN-free for valid input; 0 < p < 1 required).

    Notes
    -----
    The quantile comes from the smaller tail (``-Φ⁻¹(p/2)``, or through the incomplete
    beta function for t: ``P(|T| > q) = I_x(df/2, 1/2)``, ``x = df/(df + q²)``), so
    p-values far below 1e-16, down to the smallest positive double (5e-324), keep full
    precision: ``1 - p/2`` would round to 1 and give a standard error of 0.

    References
    ----------
    .. [1] Altman & Bland (2011), BMJ 343:d2090.

    Examples
    --------
    An odds ratio of 0.39 with p = 0.12 (metafor's ``conv.wald`` example):

    >>> from ketameta import convert
    >>> float(convert.se_from_pvalue(0.39, 0.12, log=True) ** 2)
    0.3668...
    """
    est, p = _arr(estimate, "estimate"), _arr(pvalue, "pvalue")
    d = None if df is None else _arr(df, "df")
    _same_shape(estimate=est, pvalue=p, df=d)
    _require((p > 0) & (p < 1), "pvalue", "in (0, 1)", p)
    if log:
        _require(est > 0, "estimate", "positive when log=True", est)
        est = np.log(est)
    if d is not None:
        _require(d > 0, "df", "positive", d)
    # the quantile from the smaller tail: exact for p down to 5e-324 (1 - p/2 is 1 in
    # double precision below p ~ 2e-16)
    with np.errstate(over="ignore", under="ignore"):
        se = np.abs(est) * _quantile_reciprocal(p, 1.0 - p, d)
    _no_underflow(se, est, "pvalue")
    return _checked(se, "estimate")


def var_from_pvalue(
    estimate: Any, pvalue: Any, *, log: bool = False, df: Any = None
) -> FloatArray:
    """Sampling variance from an estimate and its p-value: the square of :func:`se_from_pvalue`.

    References
    ----------
    .. [1] Altman & Bland (2011), BMJ 343:d2090.

    Examples
    --------
    >>> from ketameta import convert
    >>> float(convert.var_from_pvalue(1.56, 0.54, log=True))
    0.5266...
    """
    with np.errstate(over="ignore"):
        return _checked(se_from_pvalue(estimate, pvalue, log=log, df=df) ** 2, "estimate")


@attrs.frozen(kw_only=True)
class MeanSD:
    """Estimated mean and SD with the methods used (see :func:`mean_sd_from_median`)."""

    mean: FloatArray
    sd: FloatArray
    mean_method: str
    sd_method: str
    assumption: str

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``)."""
        return plain(self)  # type: ignore[no-any-return]


def mean_sd_from_median(
    median: Any,
    n: Any,
    *,
    q1: Any = None,
    q3: Any = None,
    min: Any = None,
    max: Any = None,
    iqr_width: Any = None,
) -> MeanSD:
    """Mean and SD from the median with the quartiles and/or the range.

    The defaults of metafor's ``conv.fivenum``: the mean of Luo et al. (2018) [4]_ and
    the SD of Wan et al. (2014) [3]_ (one spread measure) or Shi et al. (2020) [5]_
    (both). With the range :math:`(a, b)`, quartiles :math:`(q_1, q_3)`, median
    :math:`m` and :math:`\\xi(p) = 2\\Phi^{-1}(p)`:

    * range only: mean :math:`w(a+b)/2 + (1-w)m`, :math:`w = 4/(4+n^{0.75})`; SD
      :math:`(b-a)/\\xi((n-0.375)/(n+0.25))`;
    * quartiles only: mean :math:`w(q_1+q_3)/2 + (1-w)m`, :math:`w = 0.7 + 0.39/n`; SD
      :math:`(q_3-q_1)/\\xi((0.75n-0.125)/(n+0.25))`;
    * both: mean :math:`w_1(a+b)/2 + w_2(q_1+q_3)/2 + (1-w_1-w_2)m` with
      :math:`w_1 = 2.2/(2.2+n^{0.75})`, :math:`w_2 = 0.7 - 0.72/n^{0.55}`; SD
      :math:`w (b-a)/\\xi_1 + (1-w)(q_3-q_1)/\\xi_2`, :math:`w = 1/(1+0.07 n^{0.6})`.

    When only the IQR *width* is reported (``iqr_width``, not the quartiles), the
    quartiles are assumed symmetric about the median, so the mean is the median and the
    SD is Wan's quartile formula applied to the width; the result states that assumption.

    Parameters
    ----------
    median, n : array_like
        Median and sample size (n ≥ 2).
    q1, q3 : array_like, optional
        First and third quartiles.
    min, max : array_like, optional
        Minimum and maximum.
    iqr_width : array_like, optional
        ``q3 - q1`` when only the width is known (exclusive with `q1`/`q3`).

    Returns
    -------
    MeanSD
        ``mean``, ``sd``, the formulas used and any assumption made.

    References
    ----------
    .. [3] Wan et al. (2014), BMC Med Res Methodol 14:135, eqs. 9 and 16.
    .. [4] Luo et al. (2018), Stat Methods Med Res 27(6):1785-1805, eqs. 7, 11, 15.
    .. [5] Shi et al. (2020), Res Synth Methods 11(5):641-654, eq. 10.

    Examples
    --------
    metafor's ``conv.fivenum`` help example (median 6, quartiles 4 and 10, range 2-14, n 20):

    >>> from ketameta import convert
    >>> r = convert.mean_sd_from_median(6, 20, q1=4, q3=10, min=2, max=14)
    >>> round(float(r.mean), 6), round(float(r.sd), 6)
    (6.938841, 3.679435)
    """
    m, nn = _arr(median, "median"), _arr(n, "n")
    _same_shape(
        median=m,
        n=nn,
        **{
            name: _arr(value, name)
            for name, value in (
                ("q1", q1),
                ("q3", q3),
                ("min", min),
                ("max", max),
                ("iqr_width", iqr_width),
            )
            if value is not None
        },
    )
    _require(nn >= 2, "n", "at least 2", nn)
    has_q = q1 is not None or q3 is not None
    has_r = min is not None or max is not None
    if (q1 is None) != (q3 is None):
        msg = "give both `q1` and `q3` (or `iqr_width` when only the IQR width is known)"
        raise TypeError(msg)
    if (min is None) != (max is None):
        msg = "give both `min` and `max`"
        raise TypeError(msg)
    if iqr_width is not None:
        if has_q or has_r:
            msg = "`iqr_width` cannot be combined with `q1`/`q3` or `min`/`max`"
            raise TypeError(msg)
        width = _arr(iqr_width, "iqr_width")
        _require(width >= 0, "iqr_width", "non-negative", width)
        xi2 = 2.0 * special.ndtri((0.75 * nn - 0.125) / (nn + 0.25))
        mean = np.asarray(m + 0.0 * width, dtype=np.float64)
        return MeanSD(
            mean=mean,
            sd=np.asarray(width / xi2, dtype=np.float64),
            mean_method="median (symmetric quartiles assumed)",
            sd_method="Wan et al. (2014) eq. 16 on the IQR width",
            assumption="quartiles symmetric about the median (only the IQR width was given)",
        )
    if not (has_q or has_r):
        msg = "give `q1`/`q3`, `min`/`max`, both, or `iqr_width`"
        raise TypeError(msg)
    # ξ((n - 0.375)/(n + 0.25)) from the upper tail, 1 - 0.625/(n + 0.25): the
    # argument itself rounds to 1 for n beyond ~1e16
    xi1 = -2.0 * special.ndtri(0.625 / (nn + 0.25))
    xi2 = 2.0 * special.ndtri((0.75 * nn - 0.125) / (nn + 0.25))
    if has_q and has_r:
        a, b, lo, hi = _arr(min, "min"), _arr(max, "max"), _arr(q1, "q1"), _arr(q3, "q3")
        _check_order(a, lo, m, hi, b)
        w1 = 2.2 / (2.2 + nn**0.75)
        w2 = 0.7 - 0.72 / nn**0.55
        with np.errstate(over="ignore", invalid="ignore"):
            mean = _checked(w1 * (a + b) / 2 + w2 * (lo + hi) / 2 + (1 - w1 - w2) * m, "max")
            w = 1.0 / (1.0 + 0.07 * nn**0.6)
            sd = _checked(w * (b - a) / xi1 + (1 - w) * (hi - lo) / xi2, "max")
        return MeanSD(
            mean=np.asarray(mean, dtype=np.float64),
            sd=np.asarray(sd, dtype=np.float64),
            mean_method="Luo et al. (2018) eq. 15",
            sd_method="Shi et al. (2020) eq. 10",
            assumption="approximately normal data",
        )
    if has_r:
        a, b = _arr(min, "min"), _arr(max, "max")
        _check_order(a, m, b)
        w = 4.0 / (4.0 + nn**0.75)
        with np.errstate(over="ignore", invalid="ignore"):
            mean = _checked(w * (a + b) / 2 + (1 - w) * m, "max")
            sd = _checked((b - a) / xi1, "max")
        mean_method, sd_method = "Luo et al. (2018) eq. 7", "Wan et al. (2014) eq. 9"
    else:
        lo, hi = _arr(q1, "q1"), _arr(q3, "q3")
        _check_order(lo, m, hi)
        w = 0.7 + 0.39 / nn
        with np.errstate(over="ignore", invalid="ignore"):
            mean = _checked(w * (lo + hi) / 2 + (1 - w) * m, "q3")
            sd = _checked((hi - lo) / xi2, "q3")
        mean_method, sd_method = "Luo et al. (2018) eq. 11", "Wan et al. (2014) eq. 16"
    return MeanSD(
        mean=np.asarray(mean, dtype=np.float64),
        sd=np.asarray(sd, dtype=np.float64),
        mean_method=mean_method,
        sd_method=sd_method,
        assumption="approximately normal data",
    )


def _check_order(*values: FloatArray) -> None:
    for lo, hi in itertools.pairwise(values):
        with np.errstate(invalid="ignore"):
            bad = np.asarray(lo > hi)
        if bad.any():
            msg = "the summary statistics must be ordered min ≤ q1 ≤ median ≤ q3 ≤ max"
            raise ValueError(msg)


def smd_to_log_or(d: Any, vd: Any = None) -> Any:
    """Standardized mean difference to log odds ratio (logistic distribution).

    ``log OR = d π/√3`` and ``var = vd π²/3`` (Hasselblad & Hedges 1995 [6]_; Chinn
    2000 [7]_). Returns the log OR, or ``(log OR, variance)`` when `vd` is given.

    References
    ----------
    .. [6] Hasselblad & Hedges (1995), Psychol Bull 117(1):167-178.
    .. [7] Chinn (2000), Stat Med 19(22):3127-3131.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.smd_to_log_or(0.5)), 6)
    0.906900
    """
    dd = _arr(d, "d")
    v = None if vd is None else _arr(vd, "vd")
    _same_shape(d=dd, vd=v)
    with np.errstate(over="ignore"):
        y = _checked(dd * _LOGISTIC, "d")
        if v is None:
            return y
        return y, _checked(v * _LOGISTIC**2, "vd")


def log_or_to_smd(log_or: Any, v_log_or: Any = None) -> Any:
    """Log odds ratio to standardized mean difference: ``d = log OR · √3/π`` [6]_ [7]_.

    Returns ``d``, or ``(d, variance)`` when the variance of the log OR is given.

    References
    ----------
    .. [6] Hasselblad & Hedges (1995), Psychol Bull 117(1):167-178.
    .. [7] Chinn (2000), Stat Med 19(22):3127-3131.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.log_or_to_smd(convert.smd_to_log_or(0.5))), 12)
    0.5
    """
    lor = _arr(log_or, "log_or")
    v = None if v_log_or is None else _arr(v_log_or, "v_log_or")
    _same_shape(log_or=lor, v_log_or=v)
    d = lor / _LOGISTIC
    if v is None:
        return d
    return d, v / _LOGISTIC**2


def smd_to_r(d: Any, n1: Any = None, n2: Any = None) -> FloatArray:
    """Standardized mean difference (Cohen's d, pooled SD) to point-biserial correlation.

    ``r = d / sqrt(d² + h)`` with ``h = m/n1 + m/n2``, ``m = n1 + n2 - 2``: the exact
    identity between the two-sample t statistic and r (``r = t/sqrt(t² + m)``; Jacobs &
    Viechtbauer 2017 [11]_, as metafor's ``conv.delta``). Without group sizes, large
    equal groups are assumed (``h = 4``; Borenstein et al. 2009, eq. 7.5 [8]_).

    References
    ----------
    .. [8] Borenstein et al. (2009), Introduction to Meta-Analysis, ch. 7.
    .. [11] Jacobs & Viechtbauer (2017), Res Synth Methods 8(2):161-180.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.smd_to_r(0.5)), 6)
    0.242536
    """
    dd = _arr(d, "d")
    h = _group_factor(n1, n2, d=dd)
    # d / sqrt(d² + h) without forming d² (which overflows beyond |d| ~ 1e154): the limits
    # ±1 as |d| grows
    return np.asarray(dd / np.hypot(dd, np.sqrt(h)), dtype=np.float64)


def r_to_smd(r: Any, n1: Any = None, n2: Any = None) -> FloatArray:
    """Point-biserial correlation to SMD: ``d = r sqrt(h) / sqrt(1 - r²)``, the inverse of
    :func:`smd_to_r` [8]_ [11]_.

    References
    ----------
    .. [8] Borenstein et al. (2009), Introduction to Meta-Analysis, eq. 7.7.
    .. [11] Jacobs & Viechtbauer (2017), Res Synth Methods 8(2):161-180.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.r_to_smd(convert.smd_to_r(0.5, 10, 30), 10, 30)), 12)
    0.5
    """
    rr = _arr(r, "r")
    _require((rr > -1) & (rr < 1), "r", "in (-1, 1)", rr)
    h = _group_factor(n1, n2, r=rr)
    # 1 - r² as (1 - r)(1 + r): no cancellation for r near ±1
    return np.asarray(rr * np.sqrt(h) / np.sqrt((1 - rr) * (1 + rr)), dtype=np.float64)


def _group_factor(n1: Any, n2: Any, **effect: FloatArray) -> FloatArray | float:
    if n1 is None and n2 is None:
        return 4.0
    if n1 is None or n2 is None:
        msg = "give both `n1` and `n2` (or neither, for large equal groups)"
        raise TypeError(msg)
    a1, a2 = _arr(n1, "n1"), _arr(n2, "n2")
    _same_shape(**effect, n1=a1, n2=a2)
    _require(a1 >= 1, "n1", "at least 1", a1)
    _require(a2 >= 1, "n2", "at least 1", a2)
    _require(a1 + a2 > 2, "n2", "such that n1 + n2 > 2", a2)
    m = a1 + a2 - 2
    return np.asarray(m / a1 + m / a2, dtype=np.float64)


def r_to_z(r: Any) -> FloatArray:
    """Fisher's r-to-z transformation, ``z = atanh(r)`` [9]_.

    References
    ----------
    .. [9] Fisher (1921), Metron 1:3-32.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.r_to_z(0.5)), 6)
    0.549306
    """
    rr = _arr(r, "r")
    _require((rr > -1) & (rr < 1), "r", "in (-1, 1)", rr)
    return np.asarray(np.arctanh(rr), dtype=np.float64)


def z_to_r(z: Any) -> FloatArray:
    """Inverse of Fisher's transformation, ``r = tanh(z)`` [9]_.

    References
    ----------
    .. [9] Fisher (1921), Metron 1:3-32.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.z_to_r(convert.r_to_z(0.3))), 12)
    0.3
    """
    return np.asarray(np.tanh(_arr(z, "z")), dtype=np.float64)


def exp(x: Any) -> FloatArray:
    """Back-transform log ratios (log OR, log RR, ROM, IRLN, ...) to ratios.

    Values above 709.78 (whose exponential overflows the double range) are a named
    ``ValueError``; very negative values give 0, the correctly rounded ratio.

    References
    ----------
    .. [6] Hasselblad & Hedges (1995), Psychol Bull 117(1):167-178.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.exp(-0.7145)), 4)
    0.4894
    """
    xx = _arr(x, "x")
    with np.errstate(over="ignore"):
        out = np.exp(xx)
    if np.isinf(out).any():
        i = int(np.flatnonzero(np.isinf(out).reshape(-1))[0])
        msg = (
            f"`x` is too large to back-transform: exp(x) overflows the floating-point range "
            f"for x > 709.78; element {i} is {xx.reshape(-1)[i]!r}"
        )
        raise ValueError(msg)
    return np.asarray(out, dtype=np.float64)


def inv_logit(x: Any) -> FloatArray:
    """Back-transform logits (PLO) to proportions: ``1 / (1 + exp(-x))``.

    References
    ----------
    .. [10] Miller (1978) discusses back-transformation of pooled proportions.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.inv_logit(0.0)), 6)
    0.5
    """
    return np.asarray(special.expit(_arr(x, "x")), dtype=np.float64)


def inv_arcsine(x: Any) -> FloatArray:
    """Back-transform arcsine square-root proportions (PAS): ``sin(x)²`` on [0, π/2].

    References
    ----------
    .. [10] Miller (1978), The American Statistician 32(4):138.

    Examples
    --------
    >>> from ketameta import convert
    >>> round(float(convert.inv_arcsine(0.7853981633974483)), 12)
    0.5
    """
    xx = np.clip(_arr(x, "x"), 0.0, np.pi / 2)
    return np.asarray(np.sin(xx) ** 2, dtype=np.float64)


def inv_freeman_tukey(x: Any, n: Any) -> FloatArray:
    """Back-transform Freeman-Tukey double-arcsine values (PFT) to proportions.

    Miller's (1978) inverse [10]_ for metafor's scaling of the transformation
    (``t = x/1``, half the sum of the two arcsines):

    .. math:: p = \\tfrac12\\left[1 - \\operatorname{sgn}(\\cos 2x)
              \\sqrt{1 - \\left(\\sin 2x + (\\sin 2x - 1/\\sin 2x)/n\\right)^2}\\right]

    Pooled values are back-transformed with the harmonic mean of the studies' sample
    sizes as `n` (Miller 1978). Values below the transform of 0 events give 0, above
    that of n events give 1.

    Parameters
    ----------
    x : array_like
        Values on the PFT scale.
    n : array_like
        Sample size(s); pass ``scipy.stats.hmean(ni)`` for a pooled estimate.

    References
    ----------
    .. [10] Miller (1978), The American Statistician 32(4):138.

    Examples
    --------
    >>> from ketameta import convert, escalc
    >>> es = escalc("PFT", xi=[3], ni=[11])
    >>> round(float(convert.inv_freeman_tukey(es.yi, 11)[0]), 4)
    0.2727
    """
    x_in, n_in = _arr(x, "x"), _arr(n, "n")
    _same_shape(x=x_in, n=n_in)
    xx, nn = np.broadcast_arrays(x_in, n_in)
    _require(nn > 0, "n", "positive", nn)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.sin(2 * xx)
        inner = 1 - (s + (s - 1 / s) / nn) ** 2
        p = 0.5 * (1 - np.sign(np.cos(2 * xx)) * np.sqrt(np.clip(inner, 0.0, None)))
    low = 0.5 * np.arcsin(np.sqrt(1 / (nn + 1)))  # PFT of 0 events
    high = 0.5 * (np.arcsin(np.sqrt(nn / (nn + 1))) + np.pi / 2)  # PFT of n events
    p = np.where(xx <= low, 0.0, np.where(xx >= high, 1.0, p))
    return np.asarray(p, dtype=np.float64)


def _exact(x: Any, name: str) -> Fraction:
    """A reported number as an exact fraction of its decimal representation (integers
    and Decimals exactly; floats as their shortest decimal; strings as printed)."""
    if isinstance(x, bool | np.bool_) or not isinstance(
        x, int | float | str | np.integer | np.floating | Decimal | Fraction
    ):
        msg = f"`{name}` must be a number, got {x!r}"
        raise TypeError(msg)
    if isinstance(x, int | np.integer):
        value = Fraction(int(x))
    elif isinstance(x, Decimal | Fraction) and not (isinstance(x, Decimal) and not x.is_finite()):
        value = Fraction(x)
    else:
        try:
            value = Fraction(str(x).strip())
        except ValueError as exc:
            msg = f"`{name}` must be a finite number, got {x!r}"
            raise (TypeError if isinstance(x, str) else ValueError)(msg) from exc
    if abs(value) > _MAX:
        msg = f"`{name}` is beyond the double-precision range (about 1.8e308)"
        raise ValueError(msg)
    return value


def _as_count(n: Any, name: str) -> int:
    """A positive integer (a count), at most the largest exactly representable double."""
    if isinstance(n, bool | np.bool_) or not isinstance(n, int | np.integer) or n < 1:
        msg = f"`{name}` must be a positive integer, got {n!r}"
        raise ValueError(msg)
    if n > 2**53:
        msg = (
            f"`{name}` must be at most 2**53 (a count of patients or items), got a larger integer"
        )
        raise ValueError(msg)
    return int(n)


def counts_from_percent(
    percent: Any, n: int, *, decimals: int = 0, rounding: str = "nearest"
) -> tuple[int, ...]:
    """Every integer count ``c`` (0 ≤ c ≤ n) whose ``100 c / n`` gives the reported percentage.

    A GRIM-style consistency check (Brown & Heathers 2016 [12]_) applied to percentages:

    * ``"nearest"``: ``|100c/n - percent| ≤ ½·10^-decimals`` (inclusive, so both
      round-half-up and round-half-even reporting are covered);
    * ``"truncate"``: ``percent ≤ 100c/n < percent + 10^-decimals`` (digits cut off);
    * ``"any"``: the union of both.

    The arithmetic is exact (fractions), so boundary cases are decided correctly.

    Parameters
    ----------
    percent : number or str
        The reported percentage, e.g. ``54`` or ``"54.5"``.
    n : int
        The denominator (number of patients).
    decimals : int
        Decimals the percentage was reported with.
    rounding : {"nearest", "truncate", "any"}

    Returns
    -------
    tuple of int
        The consistent counts, ascending; empty when none is.

    References
    ----------
    .. [12] Brown, N. J. L., & Heathers, J. A. J. (2017). The GRIM test: A simple technique
       detects numerous anomalies in the reporting of results in psychology. Social
       Psychological and Personality Science, 8(4), 363-369.
       https://doi.org/10.1177/1948550616673876

    Examples
    --------
    54% of 33 fits 18 patients only if the percentage was truncated (18/33 = 54.5%):

    >>> from ketameta import convert
    >>> convert.counts_from_percent(54, 33)
    ()
    >>> convert.counts_from_percent(54, 33, rounding="truncate")
    (18,)
    >>> convert.counts_from_percent(62, 48)      # 30/48 = 62.5%: a tie, accepted
    (30,)
    """
    rounding = check_choice(rounding, "rounding", ("nearest", "truncate", "any"))
    p = _exact(percent, "percent")
    count = _as_count(n, "n")
    _check_decimals(decimals)
    if not 0 <= p <= 100:
        msg = f"`percent` must be within [0, 100], got {percent!r}"
        raise ValueError(msg)
    unit = Fraction(1, 10**decimals)
    # 100 c / n within [low, high] (inclusive) or [p, p + unit) (truncation): the counts
    # are the integers of an interval, found exactly without visiting every c ≤ n
    runs = []
    if rounding in ("nearest", "any"):
        low, high = (p - unit / 2) * count / 100, (p + unit / 2) * count / 100
        runs.append(range(max(0, math.ceil(low)), min(count, math.floor(high)) + 1))
    if rounding in ("truncate", "any"):
        low, high = p * count / 100, (p + unit) * count / 100
        runs.append(range(max(0, math.ceil(low)), min(count, math.ceil(high) - 1) + 1))
    if sum(len(r) for r in runs) > 1_000_000:
        msg = (
            f"more than 1,000,000 counts out of `n` = {count} give {percent!r}% at "
            f"{decimals} decimals: the percentage says almost nothing about the count"
        )
        raise ValueError(msg)
    return tuple(sorted({c for r in runs for c in r}))


def _check_decimals(decimals: Any) -> None:
    if (
        isinstance(decimals, bool)
        or not isinstance(decimals, int | np.integer)
        or not 0 <= decimals <= 50
    ):
        msg = f"`decimals` must be an integer from 0 to 50, got {decimals!r}"
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class GrimResult(RecordResult):
    """Result of :func:`grim_test`: whether the mean is possible, and the nearest possible ones."""

    consistent: bool
    mean: float
    n: int
    items: int
    decimals: int
    nearest_possible: tuple[float, float]


def grim_test(mean: Any, n: int, *, decimals: int = 2, items: int = 1) -> GrimResult:
    """The GRIM test: could a mean of integer-valued scores be the reported one? [12]_

    A mean of ``n`` scores that are integers (or sums of ``items`` integer items) is a
    multiple of ``1/(n·items)``; the reported mean is possible when such a multiple rounds to
    it at `decimals` (half a unit either way, inclusive).

    Parameters
    ----------
    mean : number or str
        The reported mean.
    n : int
        Sample size.
    decimals : int
        Decimals of the reported mean.
    items : int
        Number of integer items averaged into each score.

    Returns
    -------
    GrimResult

    References
    ----------
    .. [12] Brown & Heathers (2017), Soc Psychol Personal Sci 8(4):363-369.

    Examples
    --------
    >>> from ketameta import convert
    >>> convert.grim_test(5.19, 28).consistent          # 145/28 = 5.1786, 146/28 = 5.2143
    False
    >>> convert.grim_test(5.18, 28).consistent
    True
    """
    m = _exact(mean, "mean")
    n, items = _as_count(n, "n"), _as_count(items, "items")
    _check_decimals(decimals)
    total = n * items
    below = Fraction(math.floor(m * total), total)
    above = below + Fraction(1, total)
    half = Fraction(1, 2 * 10**decimals)
    consistent = abs(below - m) <= half or abs(above - m) <= half
    return GrimResult(
        consistent=bool(consistent),
        mean=float(m),
        n=int(n),
        items=int(items),
        decimals=int(decimals),
        nearest_possible=(float(below), float(above)),
    )


@attrs.frozen(kw_only=True)
class ReportedCheck(RecordResult):
    """Result of :func:`check_reported`."""

    estimate: float
    ci_lower: float
    ci_upper: float
    se: float
    z: float
    pvalue_implied: float
    pvalue_implied_range: tuple[float, float]
    pvalue_reported: str | None
    consistent: bool | None
    ci_asymmetry: float
    note: str


def _parse_p(pvalue: Any) -> tuple[str, Fraction, str]:
    text = str(pvalue).strip().replace(" ", "")
    relation = "="
    for sign in ("<=", "<", "="):
        if text.startswith(sign):
            relation, text = sign.replace("<=", "<"), text[len(sign) :]
            break
    value = _exact(text, "pvalue")
    if not 0 <= value <= 1:
        msg = f"`pvalue` must be within [0, 1], got {pvalue!r}"
        raise ValueError(msg)
    return relation, value, text


def check_reported(
    estimate: Any,
    ci_lower: Any,
    ci_upper: Any,
    *,
    pvalue: Any = None,
    level: float = 0.95,
    log: bool = False,
) -> ReportedCheck:
    """Check a published result: SE from its CI, the implied z and p, and the reported p.

    The SE is back-calculated from the confidence interval (on the log scale for ratios,
    ``log=True``) [2]_, the z statistic is ``estimate / SE`` and the implied two-sided p
    is ``2Φ(-|z|)`` [1]_. Because the published numbers are rounded, the implied p is
    also computed over every estimate and limit within half a unit of their last printed
    decimal; a reported p (a number or a string such as ``"<0.001"``) is consistent when
    it is compatible with that range (for an exact p, after rounding to its decimals).

    Parameters
    ----------
    estimate, ci_lower, ci_upper : number or str
        As published (strings keep their printed decimals).
    pvalue : number or str, optional
        The reported p-value, e.g. ``0.11`` or ``"<0.05"``.
    level : float
        Confidence level of the interval.
    log : bool
        Ratios (OR, RR, HR): work on the log scale.

    Returns
    -------
    ReportedCheck
        ``consistent`` is None when no p-value was reported. ``ci_asymmetry`` is
        ``(upper - est) / (est - lower) - 1`` on the analysis scale (0 for a Wald interval).

    References
    ----------
    .. [1] Altman & Bland (2011), BMJ 343:d2090.
    .. [2] Altman & Bland (2011), BMJ 343:d2304.

    Examples
    --------
    Collins et al. (2010), intravenous ketamine in CRPS: g = -0.65 (-1.47 to 0.16), p = 0.11:

    >>> from ketameta import convert
    >>> chk = convert.check_reported("-0.65", "-1.47", "0.16", pvalue="0.11")
    >>> round(chk.pvalue_implied, 3), chk.consistent
    (0.118, True)
    """
    lv = check_level(level)
    values = [
        _exact(x, name)
        for x, name in ((estimate, "estimate"), (ci_lower, "ci_lower"), (ci_upper, "ci_upper"))
    ]
    halves = [Fraction(1, 2 * 10 ** _decimals_of(x)) for x in (estimate, ci_lower, ci_upper)]
    crit = 1.0 / float(_crit_reciprocal(lv))

    def implied(est: float, lo: float, hi: float) -> tuple[float, float, float]:
        if log:
            if min(est, lo, hi) <= 0:
                msg = "with log=True the estimate and limits must be positive"
                raise ValueError(msg)
            est, lo, hi = math.log(est), math.log(lo), math.log(hi)
        se = (hi - lo) / (2 * crit)
        if se <= 0:
            msg = "`ci_upper` must exceed `ci_lower`"
            raise ValueError(msg)
        z = est / se
        return se, z, float(2 * special.ndtr(-abs(z)))

    est, lo, hi = (float(v) for v in values)
    se, z, p = implied(est, lo, hi)
    corners = []
    for de in (-1, 1):
        for dl in (-1, 1):
            for dh in (-1, 1):
                try:
                    corners.append(
                        implied(
                            float(values[0] + de * halves[0]),
                            float(values[1] + dl * halves[1]),
                            float(values[2] + dh * halves[2]),
                        )[2]
                    )
                except ValueError:
                    continue
    p_range = (min([*corners, p]), max([*corners, p]))
    e, lo_s, hi_s = (math.log(x) for x in (est, lo, hi)) if log else (est, lo, hi)
    asymmetry = (hi_s - e) / (e - lo_s) - 1 if e != lo_s else math.inf
    consistent: bool | None = None
    reported: str | None = None
    note = "no p-value reported"
    if pvalue is not None:
        relation, value, text = _parse_p(pvalue)
        reported = str(pvalue)
        if relation == "<":
            consistent = p_range[0] < float(value)
            note = (
                f"implied p {p:.3g} (range {p_range[0]:.3g}-{p_range[1]:.3g}) vs reported <{text}"
            )
        else:
            half_p = Fraction(1, 2 * 10 ** _decimals_of(text))
            consistent = (p_range[0] <= float(value + half_p)) and (
                p_range[1] >= float(value - half_p)
            )
            note = (
                f"implied p {p:.3g} (range {p_range[0]:.3g}-{p_range[1]:.3g}) vs reported {text}"
            )
    return ReportedCheck(
        estimate=est,
        ci_lower=lo,
        ci_upper=hi,
        se=se,
        z=z,
        pvalue_implied=p,
        pvalue_implied_range=p_range,
        pvalue_reported=reported,
        consistent=consistent,
        ci_asymmetry=asymmetry,
        note=note,
    )


def _decimals_of(x: Any) -> int:
    text = str(x).strip().lower()
    if "e" in text:
        mantissa, exp = text.split("e")
        return max(0, _decimals_of(mantissa) - int(exp))
    return len(text.split(".")[1]) if "." in text else 0
