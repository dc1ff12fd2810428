"""Effect sizes and sampling variances from what studies report (``escalc``).

The measure codes, argument names and defaults follow R's metafor ``escalc()``
[1]_ so that analysts moving from R need no dictionary; every formula below was
written from the publication cited next to it.

References
----------
.. [1] Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor
   package. Journal of Statistical Software, 36(3), 1-48.
   https://doi.org/10.18637/jss.v036.i03
.. [2] Hedges, L. V. (1981). Distribution theory for Glass's estimator of effect
   size and related estimators. Journal of Educational Statistics, 6(2), 107-128.
   https://doi.org/10.3102/10769986006002107
.. [3] Hedges, L. V., & Olkin, I. (1985). Statistical Methods for Meta-Analysis.
   Academic Press.
.. [4] Borenstein, M. (2009). Effect sizes for continuous data. In H. Cooper,
   L. V. Hedges, & J. C. Valentine (Eds.), The Handbook of Research Synthesis and
   Meta-Analysis (2nd ed., pp. 221-235). Russell Sage Foundation.
.. [5] Bonett, D. G. (2009). Meta-analytic interval estimation for standardized and
   unstandardized mean differences. Psychological Methods, 14(3), 225-238.
   https://doi.org/10.1037/a0016619
.. [6] Hedges, L. V., Gurevitch, J., & Curtis, P. S. (1999). The meta-analysis of
   response ratios in experimental ecology. Ecology, 80(4), 1150-1156.
   https://doi.org/10.1890/0012-9658(1999)080[1150:TMAORR]2.0.CO;2
.. [7] Becker, B. J. (1988). Synthesizing standardized mean-change measures.
   British Journal of Mathematical and Statistical Psychology, 41(2), 257-278.
   https://doi.org/10.1111/j.2044-8317.1988.tb00901.x
.. [8] Morris, S. B. (2008). Estimating effect sizes from pretest-posttest-control
   group designs. Organizational Research Methods, 11(2), 364-386.
   https://doi.org/10.1177/1094428106291059
.. [9] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous data.
   In The Handbook of Research Synthesis and Meta-Analysis (2nd ed., pp. 237-253).
.. [10] Yusuf, S., Peto, R., Lewis, J., Collins, R., & Sleight, P. (1985). Beta
   blockade during and after myocardial infarction. Progress in Cardiovascular
   Diseases, 27(5), 335-371. https://doi.org/10.1016/S0033-0620(85)80003-7
.. [11] Rücker, G., Schwarzer, G., Carpenter, J., & Olkin, I. (2009). Why add
   anything to nothing? The arcsine difference as a measure of treatment effect in
   meta-analysis with zero cells. Statistics in Medicine, 28(5), 721-738.
   https://doi.org/10.1002/sim.3511
.. [12] Freeman, M. F., & Tukey, J. W. (1950). Transformations related to the angular
   and the square root. The Annals of Mathematical Statistics, 21(4), 607-611.
   https://doi.org/10.1214/aoms/1177729756
.. [13] Fisher, R. A. (1921). On the "probable error" of a coefficient of correlation
   deduced from a small sample. Metron, 1, 3-32.
.. [14] Rothman, K. J., Greenland, S., & Lash, T. L. (2008). Modern Epidemiology
   (3rd ed.). Lippincott Williams & Wilkins.
.. [15] Bishop, Y. M. M., Fienberg, S. E., & Holland, P. W. (1975). Discrete
   Multivariate Analysis: Theory and Practice. MIT Press.
.. [16] Yule, G. U. (1912). On the methods of measuring association between two
   attributes. Journal of the Royal Statistical Society, 75(6), 579-652.
   https://doi.org/10.2307/2340126
.. [17] Cox, D. R., & Snell, E. J. (1989). Analysis of Binary Data (2nd ed.). Chapman &
   Hall.
.. [18] Sánchez-Meca, J., Marín-Martínez, F., & Chacón-Moscoso, S. (2003). Effect-size
   indices for dichotomized outcomes in meta-analysis. Psychological Methods, 8(4),
   448-467. https://doi.org/10.1037/1082-989X.8.4.448
.. [19] Hasselblad, V., & Hedges, L. V. (1995). Meta-analysis of screening and diagnostic
   tests. Psychological Bulletin, 117(1), 167-178.
   https://doi.org/10.1037/0033-2909.117.1.167
.. [20] Olkin, I., & Pratt, J. W. (1958). Unbiased estimation of certain correlation
   coefficients. The Annals of Mathematical Statistics, 29(1), 201-211.
   https://doi.org/10.1214/aoms/1177706717
.. [21] van Zyl, J. M., Neudecker, H., & Nel, D. G. (2000). On the distribution of the
   maximum likelihood estimator of Cronbach's alpha. Psychometrika, 65(3), 271-280.
   https://doi.org/10.1007/BF02296146
.. [22] Bonett, D. G. (2010). Varying coefficient meta-analytic methods for alpha
   reliability. Psychological Methods, 15(4), 368-385. https://doi.org/10.1037/a0020142
.. [23] Hedges, L. V. (1989). An unbiased correction for sampling error in validity
   generalization studies. Journal of Applied Psychology, 74(3), 469-477.
   https://doi.org/10.1037/0021-9010.74.3.469
.. [24] Abramowitz, M., & Stegun, I. A. (1964). Handbook of Mathematical Functions
   (eqs. 15.3.6 and 15.3.11). National Bureau of Standards.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import attrs
import numpy as np
from scipy import special

from ._results import array_eq, array_field, import_pandas, plain, readonly
from ._typing import FloatArray
from ._validation import (
    as_float,
    as_float_array,
    as_number,
    check_choice,
    check_finite,
    check_level,
    check_nonnegative,
    check_not_empty,
    check_positive,
    check_same_length,
    check_within,
    critical_value,
    default_labels,
    name_studies,
    strings,
    study_labels,
)
from ._warnings import UndefinedEffectWarning, ZeroCellWarning

__all__ = ["MEASURES", "EffectSizes", "escalc", "hedges_correction"]


@attrs.frozen(kw_only=True, repr=False)
class EffectSizes:
    """Effect sizes ``yi`` with their sampling variances ``vi``, as returned by :func:`escalc`.

    Attributes
    ----------
    yi : ndarray
        Observed effect sizes (float64, read-only). NaN where a study's inputs were missing.
    vi : ndarray
        Sampling variances (float64, read-only).
    measure : str
        The measure code (e.g. ``"SMD"``).
    ni : ndarray
        Total sample size of each study where the measure defines one (NaN otherwise);
        used by the sample-size predictors of Egger-type tests.
    options : dict
        The options used (``vtype``, ``add``, ``to``, ``drop00``).
    labels : tuple of str
        One label per study (metafor's ``slab``): given to :func:`escalc` as `labels`, or
        "Study 1", "Study 2", .... Every result pooled from these effect sizes carries them.
    inputs : ndarray, shape (k, c)
        The input columns the effect sizes were computed from, one row per study
        (``input_names`` names them: ``ai, bi, ci, di``, ``m1i, sd1i, n1i, ...``), as
        given; :meth:`column` returns one. Forest plots show them (events/total,
        mean (SD)/N).
    input_names : tuple of str
    """

    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    measure: str
    ni: FloatArray = array_field()
    options: Mapping[str, Any] = attrs.field(factory=dict)
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    inputs: FloatArray = attrs.field(
        converter=readonly, eq=attrs.cmp_using(eq=array_eq), factory=lambda: np.empty((0, 0))
    )
    input_names: tuple[str, ...] = attrs.field(converter=strings, default=())

    def __attrs_post_init__(self) -> None:
        if not self.labels:  # (built without labels: the defaults)
            object.__setattr__(self, "labels", default_labels(len(self)))

    def column(self, name: str) -> FloatArray:
        """The input column `name` (e.g. ``"ai"``), one value per study."""
        if name not in self.input_names:
            msg = f"no input column {name!r}; the inputs are {list(self.input_names)}"
            raise KeyError(msg)
        return self.inputs[:, self.input_names.index(name)]

    @property
    def sei(self) -> FloatArray:
        """Standard errors, ``sqrt(vi)``."""
        return np.sqrt(self.vi)

    def ci(self, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
        """Wald confidence interval of each study, ``yi ± z_{(1+level)/2} sqrt(vi)``."""
        lv = check_level(level)
        crit = float(critical_value(lv))
        half = crit * self.sei
        return self.yi - half, self.yi + half

    def __len__(self) -> int:
        return int(self.yi.shape[0])

    def __repr__(self) -> str:
        k = len(self)
        n_missing = int(np.isnan(self.yi).sum() + (np.isnan(self.vi) & ~np.isnan(self.yi)).sum())
        head = ", ".join(f"{y:.4g}" for y in self.yi[:3]) + (", ..." if k > 3 else "")
        missing = f", {n_missing} missing" if n_missing else ""
        return f"EffectSizes(measure={self.measure!r}, k={k}{missing}, yi=[{head}])"

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON-serialisable; NaN becomes ``None``)."""
        return {
            "measure": self.measure,
            "labels": list(self.labels),
            "yi": [None if np.isnan(y) else float(y) for y in self.yi],
            "vi": [None if np.isnan(v) else float(v) for v in self.vi],
            "inputs": {name: plain(self.inputs[:, j]) for j, name in enumerate(self.input_names)},
            "options": dict(self.options),
        }

    def to_frame(self) -> Any:
        """A pandas DataFrame with one row per study: ``label``, the input columns, ``yi``,
        ``vi``, ``sei`` (requires pandas)."""
        pd = import_pandas()
        frame: dict[str, Any] = {"label": list(self.labels)}
        for j, name in enumerate(self.input_names):
            frame[name] = self.inputs[:, j]
        frame.update(yi=self.yi, vi=self.vi, sei=self.sei)
        return pd.DataFrame(frame)


def hedges_correction(m: Any) -> FloatArray:
    """Exact small-sample bias correction of the standardized mean difference.

    .. math:: c(m) = \\frac{\\Gamma(m/2)}{\\sqrt{m/2}\\,\\Gamma((m-1)/2)}

    where ``m`` are the degrees of freedom of the SD estimate (Hedges 1981, eq. 6e [2]_);
    ``c(m) → 1 - 3/(4m - 1)`` as ``m`` grows.

    Parameters
    ----------
    m : array_like
        Degrees of freedom (> 1; ``inf`` gives the limit 1, NaN gives NaN).

    Returns
    -------
    ndarray
        The correction factor.

    Raises
    ------
    ValueError
        For ``m <= 1``, where the correction is undefined (Γ((m-1)/2) has its pole at
        m = 1, and c(m) → 0 as m → 1 from above; metafor returns ``NA``): with two groups,
        ``m = n1i + n2i - 2``, so this is a study with fewer than 2 observations in total
        beyond the group means.

    References
    ----------
    .. [2] Hedges, L. V. (1981). Journal of Educational Statistics, 6(2), 107-128.

    Examples
    --------
    >>> import ketameta
    >>> float(ketameta.hedges_correction(10))
    0.922...
    """
    mm = as_float(m, "m")
    with np.errstate(invalid="ignore"):
        bad = (mm <= 1.0).reshape(-1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = (
            f"`m` (degrees of freedom) must be greater than 1: the correction is undefined "
            f"at m <= 1 (as metafor's NA); element {i} has m={float(mm.reshape(-1)[i])!r}"
        )
        raise ValueError(msg)
    # Γ(m/2)/Γ((m-1)/2) as the Pochhammer symbol ((m-1)/2)_{1/2}: accurate to ~1e-16 even
    # for huge m, where a difference of log-gamma values loses digits
    with np.errstate(invalid="ignore", divide="ignore"):
        out = special.poch((mm - 1.0) / 2.0, 0.5) / np.sqrt(mm / 2.0)
    out = np.where(np.isposinf(mm), 1.0, out)  # the limit as m -> inf
    return np.asarray(out, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# measure implementations: each takes a dict of validated float arrays and the options, and
# returns (yi, vi, ni)

Arrays = dict[str, FloatArray]
Options = dict[str, Any]
Impl = Callable[[Arrays, Options], tuple[FloatArray, FloatArray, FloatArray]]


def _nan_if_nonfinite(*arrays: FloatArray) -> None:
    for a in arrays:
        a[~np.isfinite(a)] = np.nan


def _two_group_continuous(a: Arrays) -> tuple[FloatArray, ...]:
    return a["m1i"], a["sd1i"], a["n1i"], a["m2i"], a["sd2i"], a["n2i"]


def _md(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    m1, sd1, n1, m2, sd2, n2 = _two_group_continuous(a)
    yi = m1 - m2
    if o["vtype"] == "HO":  # homoscedastic: pooled variance
        s2p = ((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (n1 + n2 - 2)
        vi = s2p * (1 / n1 + 1 / n2)
    else:  # "LS": unequal variances
        vi = sd1**2 / n1 + sd2**2 / n2
    return yi, vi, n1 + n2


def _smd(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    m1, sd1, n1, m2, sd2, n2 = _two_group_continuous(a)
    nt = n1 + n2
    m = nt - 2
    sdp = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / m)
    cm = hedges_correction(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        di = (m1 - m2) / sdp
    yi = cm * di
    vt = o["vtype"]
    if vt == "UB":  # unbiased estimate (Hedges 1983; Hedges & Olkin 1985)
        vi = 1 / n1 + 1 / n2 + (1 - (m - 2) / (m * cm**2)) * yi**2
    elif vt == "LS2":  # Borenstein (2009): variance of d scaled by c^2
        vi = cm**2 * (1 / n1 + 1 / n2 + di**2 / (2 * nt))
    else:  # "LS": large-sample approximation (Hedges & Olkin 1985, eq. 5.15)
        vi = 1 / n1 + 1 / n2 + yi**2 / (2 * nt)
    return yi, vi, nt


def _smdh(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    m1, sd1, n1, m2, sd2, n2 = _two_group_continuous(a)
    sdi = np.sqrt((sd1**2 + sd2**2) / 2)
    cm = hedges_correction(n1 + n2 - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = cm * (m1 - m2) / sdi
    # Bonett (2009), eq. 4, for the bias-corrected estimate (as metafor 3.8): the large-sample
    # variance of d with g in place of d, scaled by c(m)^2
    vd = (
        yi**2 * (sd1**4 / (n1 - 1) + sd2**4 / (n2 - 1)) / (8 * sdi**4)
        + (sd1**2 / (n1 - 1) + sd2**2 / (n2 - 1)) / sdi**2
    )
    return yi, cm**2 * vd, n1 + n2


def _rom(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    m1, sd1, n1, m2, sd2, n2 = _two_group_continuous(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(m1 / m2)
        vi = sd1**2 / (n1 * m1**2) + sd2**2 / (n2 * m2**2)  # Hedges et al. (1999), eq. 9
    return yi, vi, n1 + n2


def _mc(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    m1, m2, sd1, sd2, ni, ri = a["m1i"], a["m2i"], a["sd1i"], a["sd2i"], a["ni"], a["ri"]
    yi = m1 - m2
    vi = (sd1**2 + sd2**2 - 2 * ri * sd1 * sd2) / ni
    return yi, vi, ni


def _smcc(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    m1, m2, sd1, sd2, ni, ri = a["m1i"], a["m2i"], a["sd1i"], a["sd2i"], a["ni"], a["ri"]
    sdd = np.sqrt(sd1**2 + sd2**2 - 2 * ri * sd1 * sd2)
    cm = hedges_correction(ni - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = cm * (m1 - m2) / sdd
    vi = 1 / ni + yi**2 / (2 * ni)  # Gibbons et al. (1993); Becker (1988)
    return yi, vi, ni


def _smcr(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    m1, m2, sd1, ni, ri = a["m1i"], a["m2i"], a["sd1i"], a["ni"], a["ri"]
    cm = hedges_correction(ni - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = cm * (m1 - m2) / sd1
    vi = 2 * (1 - ri) / ni + yi**2 / (2 * ni)  # Becker (1988), eq. 13
    return yi, vi, ni


def _table_cells(a: Arrays) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    ai, ci = a["ai"], a["ci"]
    bi = a["bi"] if "bi" in a else a["n1i"] - ai
    di = a["di"] if "di" in a else a["n2i"] - ci
    return ai.copy(), bi.copy(), ci.copy(), di.copy()


def _add_to_zero_cells(cells: tuple[FloatArray, ...], o: Options) -> tuple[FloatArray, ...]:
    add, to = float(o["add"]), o["to"]
    if to == "none" or add == 0:
        return cells
    has_zero = np.zeros(cells[0].shape, dtype=bool)
    for c in cells:
        has_zero |= c == 0
    if to == "all":
        rows = np.ones_like(has_zero)
    elif to == "if0all":
        rows = np.full(has_zero.shape, bool(has_zero.any()))
    else:  # "only0"
        rows = has_zero
    return tuple(np.where(rows, c + add, c) for c in cells)


def _binary(a: Arrays, o: Options, measure: str) -> tuple[FloatArray, FloatArray, FloatArray]:
    ai, bi, ci, di = _table_cells(a)
    n_total = ai + bi + ci + di
    both_zero = ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))
    ai, bi, ci, di = _add_to_zero_cells((ai, bi, ci, di), o)
    n1, n2 = ai + bi, ci + di
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = ai / n1, ci / n2
        if measure == "OR":  # Fleiss & Berlin (2009), eqs. 12.24 and 12.25
            yi = np.log(ai * di / (bi * ci))
            vi = 1 / ai + 1 / bi + 1 / ci + 1 / di
        elif measure == "RR":  # Fleiss & Berlin (2009), eqs. 12.17 and 12.18
            yi = np.log(p1 / p2)
            vi = 1 / ai - 1 / n1 + 1 / ci - 1 / n2
        elif measure == "RD":  # Fleiss & Berlin (2009), eqs. 12.10 and 12.11
            yi = p1 - p2
            vi = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
        elif measure == "AS":  # Rücker et al. (2009)
            yi = np.arcsin(np.sqrt(p1)) - np.arcsin(np.sqrt(p2))
            vi = 1 / (4 * n1) + 1 / (4 * n2)
        elif measure == "PETO":  # Yusuf et al. (1985)
            nn = n1 + n2
            events, non_events = ai + ci, bi + di
            expected = events * n1 / nn
            hyper_var = events * non_events * (n1 / nn) * (n2 / nn) / (nn - 1)
            yi = (ai - expected) / hyper_var
            vi = 1 / hyper_var
        else:
            yi, vi = _association(ai, bi, ci, di, measure, o["vtype"])
    if o["drop00"]:
        yi[both_zero], vi[both_zero] = np.nan, np.nan
    return yi, vi, n_total


#: Cox's (1970) logistic-to-normal factor: log odds ratio / 1.65 ≈ standardized mean
#: difference (Cox & Snell 1989; Sánchez-Meca et al. 2003)
_COX_FACTOR = 1.65


def _association(
    ai: FloatArray, bi: FloatArray, ci: FloatArray, di: FloatArray, measure: str, vtype: str
) -> tuple[FloatArray, FloatArray]:
    """Measures of association of a 2×2 table (cells after the zero-cell adjustment)."""
    v_log_or = 1 / ai + 1 / bi + 1 / ci + 1 / di  # Woolf's variance of the log odds ratio
    if measure == "OR2DN":  # Cox (1970): logit ≈ 1.65 probit
        return np.log(ai * di / (bi * ci)) / _COX_FACTOR, v_log_or / _COX_FACTOR**2
    if measure == "OR2DL":  # Hasselblad & Hedges (1995): the logistic SD is π/√3
        return np.log(ai * di / (bi * ci)) * (np.sqrt(3) / np.pi), v_log_or * (3 / np.pi**2)
    if measure == "YUQ":  # Yule (1900, 1912): Q = (OR - 1)/(OR + 1)
        q = (ai * di - bi * ci) / (ai * di + bi * ci)
        return q, 0.25 * (1 - q**2) ** 2 * v_log_or
    if measure == "YUY":  # Yule (1912): Y = (√OR - 1)/(√OR + 1)
        s_ad, s_bc = np.sqrt(ai * di), np.sqrt(bi * ci)
        y = (s_ad - s_bc) / (s_ad + s_bc)
        return y, (1 - y**2) ** 2 * v_log_or / 16
    # "PHI": the correlation of the two binary variables
    n1, n2, m1, m2 = ai + bi, ci + di, ai + ci, bi + di  # row and column totals
    nn = n1 + n2
    phi = (ai * di - bi * ci) / np.sqrt(n1 * n2 * m1 * m2)
    p1, p2, q1, q2 = n1 / nn, n2 / nn, m1 / nn, m2 / nn  # margins as proportions
    if vtype == "ST":  # stratified sampling: row totals fixed, two independent binomials
        r1, r2 = ai / n1, ci / n2  # the proportions of the first column in each row
        pbar = q1
        spread = pbar * (1 - pbar)
        diff = r1 - r2
        # φ = √(p1 p2) (r1 - r2)/√(p̄(1 - p̄)), p̄ = p1 r1 + p2 r2; the delta method
        d1 = 1 - p1 * diff * (1 - 2 * pbar) / (2 * spread)
        d2 = 1 + p2 * diff * (1 - 2 * pbar) / (2 * spread)
        vi = p1 * p2 / spread * (d1**2 * r1 * (1 - r1) / n1 + d2**2 * r2 * (1 - r2) / n2)
        return phi, vi
    # "CS" (also "LS", metafor's default): cross-sectional (multinomial) sampling,
    # Bishop, Fienberg & Holland (1975)
    vi = (
        1
        - phi**2
        + phi * (1 + phi**2 / 2) * (p1 - p2) * (q1 - q2) / np.sqrt(p1 * p2 * q1 * q2)
        - 0.75 * phi**2 * ((p1 - p2) ** 2 / (p1 * p2) + (q1 - q2) ** 2 / (q1 * q2))
    ) / nn
    return phi, vi


def _undefined(
    yi: FloatArray, vi: FloatArray, a: Arrays, measure: str, labels: tuple[str, ...]
) -> None:
    """Studies with complete inputs but no finite effect size: counts with zero cells get
    NaN and a :class:`ZeroCellWarning` naming them by label and index; anything else (a
    zero SD, values so large that the arithmetic overflows) is an error naming the study."""
    present = np.ones(yi.shape, dtype=bool)
    for arr in a.values():
        present &= ~np.isnan(arr)
    undefined = present & ~(np.isfinite(yi) & np.isfinite(vi))
    if not undefined.any():
        return
    idx = np.flatnonzero(undefined).tolist()
    if measure in _COUNT_MEASURES or measure in _UNDEFINED_AS_NA:
        _nan_if_nonfinite(yi, vi)
        yi[undefined], vi[undefined] = np.nan, np.nan
        count = measure in _COUNT_MEASURES
        reason = "zero cells or counts, see `add`/`to`" if count else _UNDEFINED_AS_NA[measure]
        their = "its" if len(idx) == 1 else "their"
        warnings.warn(
            f"{measure} is undefined for {name_studies(idx, labels)}: {reason}; {their} yi "
            "and vi are NaN (as metafor's NA)",
            ZeroCellWarning if count else UndefinedEffectWarning,
            stacklevel=3,
        )
        return
    names = ", ".join(f"{k}={float(v[idx[0]])!r}" for k, v in a.items())
    msg = (
        f"{measure} is undefined for study {idx[0]} ({names}): a zero standard deviation, a "
        "zero mean for a ratio, or values so large that the computation overflows"
    )
    raise ValueError(msg)


def _proportion(a: Arrays, o: Options, measure: str) -> tuple[FloatArray, FloatArray, FloatArray]:
    xi, ni = a["xi"].copy(), a["ni"].copy()
    mi = ni - xi
    n_orig = ni.copy()
    xi, mi = _add_to_zero_cells((xi, mi), o)
    ni = xi + mi
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = xi / ni
        if measure == "PR":
            yi, vi = pi, pi * (1 - pi) / ni
        elif measure == "PLN":
            yi, vi = np.log(pi), 1 / xi - 1 / ni
        elif measure == "PLO":
            yi, vi = np.log(pi / (1 - pi)), 1 / xi + 1 / mi
        elif measure == "PAS":
            yi, vi = np.arcsin(np.sqrt(pi)), 1 / (4 * ni)
        else:  # "PFT": Freeman & Tukey (1950)
            yi = 0.5 * (
                np.arcsin(np.sqrt(xi / (ni + 1))) + np.arcsin(np.sqrt((xi + 1) / (ni + 1)))
            )
            vi = 1 / (4 * ni + 2)
    return yi, vi, n_orig


# ---------------------------------------------------------------------------------------------
# the Gauss hypergeometric function 2F1(a, b; c; z) for UCOR: 0 <= z <= 1, a, b <= 1 < c and
# c - a - b > 0. SciPy's hyp2f1 loses up to 8 digits near z = 1 and returns NaN there for
# c > ~500, and R's gsl (metafor) loses digits for |r| < 1e-6 at small n, so it is
# evaluated here: by its power series where that converges fast (z <= 0.9, or c >= 10),
# otherwise by the connection formulas to w = 1 - z (Abramowitz & Stegun 1964 [24]_, 15.3.6
# and, for integer c - a - b, 15.3.11) with w = r² passed exactly. Agreement with 50-digit
# mpmath: about 1e-14 (3e-13 for non-integer n within 1e-3 of an even integer).

_SERIES_TOL = 2.0**-60


def _series_minus_one(a: float, b: float, c: FloatArray, z: FloatArray) -> FloatArray:
    """``2F1(a, b; c; z) - 1`` by its power series (0 <= z <= 1, a, b <= 1 < c)."""
    m = c - a - b
    term = a * b * z / c
    total: FloatArray = term.copy()
    active = term > 0
    k = 1
    # the term ratio z(k+a)(k+b)/((k+c)(k+1)) increases to z, and the terms fall at least
    # like k^-(m+1): the tail after term k is below term·min(z/(1-z), (k+1)/m)
    with np.errstate(divide="ignore"):
        geometric = np.where(z < 1, z / (1 - z), np.inf)
    while active.any():
        term = np.where(active, term * (a + k) * (b + k) * z / ((c + k) * (k + 1)), 0.0)
        total += term
        k += 1
        active &= term * np.minimum(geometric, (k + 1) / m) > _SERIES_TOL * total
        if k > 1_000_000:  # pragma: no cover - c >= 10 or z <= 0.9 converge in < 2000 terms
            msg = "the hypergeometric series did not converge"
            raise RuntimeError(msg)
    return total


def _power_series(a: float, b: float, c: float, w: FloatArray) -> FloatArray:
    """``2F1(a, b; c; w)`` by its power series for 0 <= w < 0.1 (c not a non-positive
    integer; negative c allowed)."""
    term = np.ones_like(w)
    total: FloatArray = term.copy()
    k = 0
    while True:
        term = term * (a + k) * (b + k) * w / ((c + k) * (k + 1))
        total = total + term
        k += 1
        if k > abs(c) + 2 and bool(np.all(np.abs(term) <= _SERIES_TOL * np.abs(total))):
            return total
        if k > 10_000:  # pragma: no cover - w < 0.1 converges in < 40 terms
            msg = "the hypergeometric series did not converge"
            raise RuntimeError(msg)


def _reflected_general(a: float, b: float, c: float, w: FloatArray) -> FloatArray:
    """``2F1(a, b; c; 1 - w)`` for c - a - b not an integer (A&S 15.3.6)."""
    m = c - a - b
    g_c = float(special.gamma(c))
    first = g_c * special.gamma(m) / (special.gamma(c - a) * special.gamma(c - b))
    second = g_c * special.gamma(-m) / (special.gamma(a) * special.gamma(b))
    return np.asarray(
        first * _power_series(a, b, 1.0 - m, w)
        + second * w**m * _power_series(c - a, c - b, 1.0 + m, w),
        dtype=np.float64,
    )


def _reflected_integer(a: float, b: float, m: int, w: FloatArray) -> FloatArray:
    """``2F1(a, b; a + b + m; 1 - w)`` for an integer m >= 1 (A&S 15.3.11)."""
    c = a + b + m
    g_c = float(special.gamma(c))
    coef = special.gamma(m) * g_c / (special.gamma(a + m) * special.gamma(b + m))
    finite = np.zeros_like(w)
    term = np.ones_like(w)
    for n in range(m):
        finite = finite + term
        if n + 1 < m:
            term = term * (a + n) * (b + n) * w / ((1 - m + n) * (n + 1))
    log_w = np.log(np.where(w > 0, w, 1.0))  # w = 0: the log part vanishes (w^m ln w -> 0)
    total = np.zeros_like(w)
    term = np.full_like(w, 1.0 / math.factorial(m))
    n = 0
    while True:
        psi = (
            special.digamma(a + n + m)
            + special.digamma(b + n + m)
            - special.digamma(n + 1.0)
            - special.digamma(n + m + 1.0)
        )
        total = total + term * (log_w + psi)
        term = term * (a + m + n) * (b + m + n) * w / ((n + 1) * (n + m + 1))
        n += 1
        bound = np.abs(term) * (np.abs(log_w) + 2.0 * math.log(n + m + 1.0) + 10.0)
        if bool(np.all(bound <= _SERIES_TOL * np.abs(total))):
            break
        if n > 10_000:  # pragma: no cover - w < 0.1 converges in < 40 terms
            msg = "the hypergeometric series did not converge"
            raise RuntimeError(msg)
    log_part = (-w) ** m * g_c / (special.gamma(a) * special.gamma(b)) * total
    return np.asarray(coef * finite - log_part, dtype=np.float64)


def _reflected(a: float, b: float, c: float, w: FloatArray) -> FloatArray:
    m = c - a - b
    mi = round(m)
    d = m - mi
    if d == 0:
        return _reflected_integer(a, b, int(mi), w)
    if abs(d) >= 3e-4:
        return _reflected_general(a, b, c, w)
    # within 3e-4 of an integer the general formula cancels (Γ(-m) ~ 1/d): interpolate in
    # c between the exact integer case and well-conditioned neighbours
    nodes = (-4e-3, -2e-3, 0.0, 2e-3, 4e-3)
    values = [
        _reflected_integer(a, b, int(mi), w)
        if h == 0
        else _reflected_general(a, b, a + b + mi + h, w)
        for h in nodes
    ]
    out = np.zeros_like(w)
    for j, (hj, vj) in enumerate(zip(nodes, values, strict=True)):
        weight = 1.0
        for i, hi in enumerate(nodes):
            if i != j:
                weight *= (d - hi) / (hj - hi)
        out = out + weight * vj
    return out


def _hyp2f1_minus_one(
    a: float, b: float, c: FloatArray, z: FloatArray, w: FloatArray
) -> FloatArray:
    """``2F1(a, b; c; z) - 1`` with ``w = 1 - z`` given exactly (a, b <= 1 < c,
    c - a - b > 0, 0 <= z <= 1); NaN where `c` or `z` is NaN."""
    c, z, w = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (c, z, w)))
    out = np.full(c.shape, np.nan)
    ok = ~(np.isnan(c) | np.isnan(z))
    direct = ok & ((z <= 0.9) | (c >= 10.0))
    if direct.any():
        out[direct] = _series_minus_one(a, b, c[direct], z[direct])
    slow = ok & ~direct
    for cv in np.unique(c[slow]):
        chosen = slow & (c == cv)
        out[chosen] = _reflected(a, b, float(cv), w[chosen]) - 1.0
    return out


def _correlation_variance(
    yi: FloatArray, ni: FloatArray, vtype: str, one_minus_sq: FloatArray | None = None
) -> FloatArray:
    """Large-sample variance ``(1 - r²)²/(n - 1)`` of a correlation (Borenstein 2009,
    eq. 12.27), with the study's own r (``"LS"``; `one_minus_sq`: ``1 - r²`` if the caller
    has it more accurately than from the rounded r) or the sample-size weighted average of
    the studies' r (``"AV"``; studies with missing values left out of the average)."""
    if vtype == "AV":
        present = ~(np.isnan(yi) | np.isnan(ni))
        r = np.full(yi.shape, np.sum(ni[present] * yi[present]) / np.sum(ni[present]))
        one_minus_sq = None
    else:
        r = yi
    if one_minus_sq is None:
        one_minus_sq = (1 - r) * (1 + r)
    return one_minus_sq**2 / (ni - 1)


def _cor(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    ri, ni = a["ri"], a["ni"]
    return ri.copy(), _correlation_variance(ri, ni, o["vtype"]), ni  # Hedges & Olkin (1985)


def _ucor(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Olkin & Pratt's (1958, eq. 2.3) unbiased estimator of the correlation,
    ``r·2F1(1/2, 1/2; (n-2)/2; 1-r²)``, exact (the hypergeometric function, not the
    approximation ``r(1 + (1-r²)/(2(n-3)))``); vtype ``"UB"``: the unbiased estimate of
    its variance, ``r_u² - ρ²_u`` with Olkin & Pratt's unbiased estimator of ρ²,
    ``1 - (n-3)/(n-2)·(1-r²)·2F1(1, 1; n/2; 1-r²)`` (Hedges 1989, with the exact
    function)."""
    ri, ni = a["ri"], a["ni"]
    w = ri * ri
    z = (1 - ri) * (1 + ri)  # 1 - r², accurate near |r| = 1
    h = _hyp2f1_minus_one(0.5, 0.5, (ni - 2) / 2, z, w)
    yi = ri + ri * h
    if o["vtype"] != "UB":
        # 1 - r_u² = (1 - r²) - r²(2h + h²): accurate where r_u rounds to ±1
        one_minus_sq = z - w * (2 * h + h * h)
        return yi, _correlation_variance(yi, ni, o["vtype"], one_minus_sq), ni
    g = _hyp2f1_minus_one(1.0, 1.0, ni / 2, z, w)
    # r_u² - ρ²_u arranged so that no two O(1) terms cancel (both are ≈ r² for large n)
    vi = w * (2 * h + h * h) + z * g - z * (1 + g) / (ni - 2)
    return yi, vi, ni


def _zcor(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    ri, ni = a["ri"], a["ni"]
    with np.errstate(divide="ignore"):
        yi = np.arctanh(ri)  # Fisher (1921)
    _nan_if_nonfinite(yi)  # r = ±1: undefined, reported by _undefined with a warning
    return yi, 1 / (ni - 3), ni


def _araw(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Raw Cronbach's alpha with the large-sample variance of van Zyl, Neudecker & Nel
    (2000) as used by Bonett (2010): ``2m(1-α)²/((m-1)(n-2))``, m items."""
    alpha, items, ni = a["ai"], a["mi"], a["ni"]
    return alpha.copy(), 2 * items * (1 - alpha) ** 2 / ((items - 1) * (ni - 2)), ni


def _rate(a: Arrays, o: Options, measure: str) -> tuple[FloatArray, FloatArray, FloatArray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure in ("IR", "IRLN"):
            (xi,) = _add_to_zero_cells((a["xi"],), o)
            ti = a["ti"]
            if measure == "IRLN":
                yi, vi = np.log(xi / ti), 1 / xi
            else:
                yi, vi = xi / ti, xi / ti**2
        else:
            x1, x2 = _add_to_zero_cells((a["x1i"], a["x2i"]), o)
            t1, t2 = a["t1i"], a["t2i"]
            if measure == "IRR":
                yi, vi = np.log((x1 / t1) / (x2 / t2)), 1 / x1 + 1 / x2
            else:  # IRD
                yi, vi = x1 / t1 - x2 / t2, x1 / t1**2 + x2 / t2**2
            if o["drop00"]:  # no events in either group (as metafor)
                both_zero = (a["x1i"] == 0) & (a["x2i"] == 0)
                yi, vi = np.where(both_zero, np.nan, yi), np.where(both_zero, np.nan, vi)
    yi, vi = np.array(yi, dtype=np.float64), np.array(vi, dtype=np.float64)
    return yi, vi, np.full(yi.shape, np.nan)


#: measures of 2×2 tables added in 0.2 (association; odds ratio to SMD)
_ASSOCIATION = ("PHI", "YUQ", "YUY", "OR2DN", "OR2DL")
#: measures computed from counts: an undefined value (zero cells) is NaN with a warning
_COUNT_MEASURES = frozenset(
    {
        "OR",
        "RR",
        "RD",
        "AS",
        "PETO",
        *_ASSOCIATION,
        "PR",
        "PLN",
        "PLO",
        "PAS",
        "PFT",
        "IR",
        "IRLN",
        "IRR",
        "IRD",
    }
)
#: other measures whose undefined values are NaN with an UndefinedEffectWarning (as
#: metafor's NA), with the reason given in the warning
_UNDEFINED_AS_NA = {"ZCOR": "Fisher's z of a correlation of ±1 is infinite"}
#: measures defined at zero counts: their default `add` is 0 (as metafor)
_NO_DEFAULT_ADD = frozenset({"AS", "PAS", "PFT", "PHI"})


@attrs.frozen
class _Measure:
    impl: Impl
    required: tuple[str, ...]
    description: str
    alternatives: tuple[tuple[str, ...], ...] = ()
    vtypes: tuple[str, ...] = ("LS",)
    optional: tuple[str, ...] = ()


_TWO_GROUP = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")
_PREPOST = ("m1i", "m2i", "sd1i", "sd2i", "ni", "ri")
_TABLE = ("ai", "bi", "ci", "di")
_TABLE_N = ("ai", "n1i", "ci", "n2i")

_REGISTRY: dict[str, _Measure] = {
    "MD": _Measure(_md, _TWO_GROUP, "raw mean difference", vtypes=("LS", "HO")),
    "SMD": _Measure(
        _smd, _TWO_GROUP, "standardized mean difference (Hedges' g)", vtypes=("LS", "UB", "LS2")
    ),
    "SMDH": _Measure(_smdh, _TWO_GROUP, "SMD with heteroscedastic variances (Bonett 2009)"),
    "ROM": _Measure(_rom, _TWO_GROUP, "log ratio of means"),
    "MC": _Measure(_mc, _PREPOST, "raw mean change"),
    "SMCC": _Measure(_smcc, _PREPOST, "standardized mean change, change-score SD"),
    "SMCR": _Measure(
        _smcr,
        ("m1i", "m2i", "sd1i", "ni", "ri"),
        "standardized mean change, raw-score (pre) SD",
        optional=("sd2i",),
    ),
    "OR": _Measure(partial(_binary, measure="OR"), _TABLE, "log odds ratio", (_TABLE_N,)),
    "RR": _Measure(partial(_binary, measure="RR"), _TABLE, "log risk ratio", (_TABLE_N,)),
    "RD": _Measure(partial(_binary, measure="RD"), _TABLE, "risk difference", (_TABLE_N,)),
    "AS": _Measure(
        partial(_binary, measure="AS"), _TABLE, "arcsine square-root risk difference", (_TABLE_N,)
    ),
    "PETO": _Measure(
        partial(_binary, measure="PETO"), _TABLE, "Peto's log odds ratio", (_TABLE_N,)
    ),
    "PR": _Measure(partial(_proportion, measure="PR"), ("xi", "ni"), "raw proportion"),
    "PLN": _Measure(partial(_proportion, measure="PLN"), ("xi", "ni"), "log proportion"),
    "PLO": _Measure(partial(_proportion, measure="PLO"), ("xi", "ni"), "logit proportion"),
    "PAS": _Measure(
        partial(_proportion, measure="PAS"), ("xi", "ni"), "arcsine square-root proportion"
    ),
    "PFT": _Measure(
        partial(_proportion, measure="PFT"),
        ("xi", "ni"),
        "Freeman-Tukey double-arcsine proportion",
    ),
    "PHI": _Measure(
        partial(_binary, measure="PHI"),
        _TABLE,
        "phi coefficient; vtype 'CS' cross-sectional (Bishop, Fienberg & Holland 1975), "
        "'ST' stratified sampling (delta method)",
        (_TABLE_N,),
        vtypes=("LS", "CS", "ST"),
    ),
    "YUQ": _Measure(partial(_binary, measure="YUQ"), _TABLE, "Yule's Q (Yule 1912)", (_TABLE_N,)),
    "YUY": _Measure(partial(_binary, measure="YUY"), _TABLE, "Yule's Y (Yule 1912)", (_TABLE_N,)),
    "OR2DN": _Measure(
        partial(_binary, measure="OR2DN"),
        _TABLE,
        "log odds ratio as an SMD, normal distributions: / 1.65 (Cox & Snell 1989)",
        (_TABLE_N,),
    ),
    "OR2DL": _Measure(
        partial(_binary, measure="OR2DL"),
        _TABLE,
        "log odds ratio as an SMD, logistic distributions: × √3/π (Hasselblad & Hedges 1995)",
        (_TABLE_N,),
    ),
    "COR": _Measure(_cor, ("ri", "ni"), "raw correlation", vtypes=("LS", "AV")),
    "UCOR": _Measure(
        _ucor,
        ("ri", "ni"),
        "unbiased correlation, exact (Olkin & Pratt 1958); vtype 'UB' (Hedges 1989)",
        vtypes=("LS", "UB", "AV"),
    ),
    "ZCOR": _Measure(_zcor, ("ri", "ni"), "Fisher's r-to-z transformed correlation"),
    "ARAW": _Measure(
        _araw,
        ("ai", "mi", "ni"),
        "raw Cronbach's alpha, mi items (van Zyl et al. 2000; Bonett 2010)",
    ),
    "IR": _Measure(partial(_rate, measure="IR"), ("xi", "ti"), "incidence rate"),
    "IRLN": _Measure(partial(_rate, measure="IRLN"), ("xi", "ti"), "log incidence rate"),
    "IRR": _Measure(
        partial(_rate, measure="IRR"), ("x1i", "t1i", "x2i", "t2i"), "log incidence rate ratio"
    ),
    "IRD": _Measure(
        partial(_rate, measure="IRD"), ("x1i", "t1i", "x2i", "t2i"), "incidence rate difference"
    ),
}

#: measure codes accepted by :func:`escalc`, with a one-line description of each
MEASURES: Mapping[str, str] = {code: m.description for code, m in _REGISTRY.items()}

_COUNT_ARGS = frozenset({"ai", "bi", "ci", "di", "xi", "x1i", "x2i"})
_SIZE_ARGS = frozenset({"n1i", "n2i", "ni"})


def _size_bound(measure: str) -> tuple[float, bool]:
    """The smallest sample size (``ni``, ``n1i``, ``n2i``) a measure's variance needs, and
    whether the bound itself is allowed."""
    if measure in ("SMD", "SMDH", "MD", "ROM", "COR"):
        return 2.0, True
    if measure in ("SMCC", "SMCR", "ARAW"):
        return 3.0, True  # ARAW: n - 2 > 0
    if measure == "MC":
        return 1.0, True
    if measure == "ZCOR":
        return 4.0, True
    if measure == "UCOR":
        return 4.0, False  # the hypergeometric function needs n > 4 (metafor: NA for n <= 4)
    return 0.0, True


def _validate_columns(measure: str, cols: Arrays) -> None:
    check_same_length(cols)
    for name, arr in cols.items():
        check_not_empty(arr, name)
        if measure == "ARAW" and name in ("ai", "mi"):
            if name == "ai":  # Cronbach's alpha: at most 1 (negative values occur)
                check_finite(arr, name)
                _check_bound(arr, name, 1.0, above=False, inclusive=True, what="alpha")
            else:
                check_finite(arr, name)
                _check_bound(arr, name, 2.0, above=True, inclusive=True, what="items")
        elif name in _COUNT_ARGS:
            check_nonnegative(arr, name)
        elif name in _SIZE_ARGS:
            check_positive(arr, name)
            lo, inclusive = _size_bound(measure)
            _check_bound(arr, name, lo, above=True, inclusive=inclusive, measure=measure)
        elif name in ("sd1i", "sd2i"):
            check_nonnegative(arr, name)
        elif name == "ri":
            check_within(arr, name, -1.0, 1.0)
        elif name in ("ti", "t1i", "t2i"):
            check_positive(arr, name)
        else:
            check_finite(arr, name)
    pairs = [("ai", "n1i"), ("ci", "n2i"), ("xi", "ni")]
    for count, size in pairs:
        if count in cols and size in cols:
            with np.errstate(invalid="ignore"):
                bad = cols[count] > cols[size]
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                msg = f"`{count}` cannot exceed `{size}`; study {i} has {count}={cols[count][i]!r} > {size}={cols[size][i]!r}"  # noqa: E501
                raise ValueError(msg)


def _check_bound(
    arr: FloatArray,
    name: str,
    bound: float,
    *,
    above: bool,
    inclusive: bool,
    measure: str = "",
    what: str = "",
) -> None:
    """Reject values below (``above=True``) or above `bound` (NaN passes: missing)."""
    with np.errstate(invalid="ignore"):
        if above:
            bad = arr < bound if inclusive else arr <= bound
        else:
            bad = arr > bound if inclusive else arr >= bound
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    relation = ("at least" if inclusive else "greater than") if above else "at most"
    if what == "alpha":
        reason = " (Cronbach's alpha)"
    elif what == "items":
        reason = " (the number of items of the scale)"
    else:
        reason = f" for measure {measure!r} (its sampling variance needs it)"
    msg = f"`{name}` must be {relation} {bound:g}{reason}; study {i} has {name}={arr[i]!r}"
    raise ValueError(msg)


def escalc(
    measure: str,
    *,
    data: Mapping[str, Any] | None = None,
    vtype: str = "LS",
    add: float | None = None,
    to: str = "only0",
    drop00: bool = False,
    labels: Any = None,
    **columns: Any,
) -> EffectSizes:
    """Compute effect sizes and their sampling variances, as metafor's ``escalc()``.

    Parameters
    ----------
    measure : str
        Measure code, one of :data:`MEASURES`:

        * two groups, continuous (``m1i, sd1i, n1i, m2i, sd2i, n2i``): ``"MD"``,
          ``"SMD"`` (Hedges' g with the exact correction [2]_), ``"SMDH"`` [5]_,
          ``"ROM"`` [6]_;
        * one group, pre/post (``m1i, m2i, sd1i, sd2i, ni, ri``): ``"MC"``, ``"SMCC"``
          [7]_, ``"SMCR"`` [7]_ [8]_ (``sd2i`` not needed);
        * 2×2 tables (``ai, bi, ci, di`` or ``ai, n1i, ci, n2i``): ``"OR"``, ``"RR"``,
          ``"RD"`` [9]_, ``"AS"`` [11]_, ``"PETO"`` [10]_; measures of association:
          ``"PHI"`` (phi coefficient [15]_), ``"YUQ"`` (Yule's Q), ``"YUY"`` (Yule's Y)
          [16]_; the log odds ratio as a standardized mean difference: ``"OR2DN"``
          (normal distributions, ``log OR / 1.65`` [17]_ [18]_) and ``"OR2DL"``
          (logistic distributions, ``log OR · √3/π`` [19]_);
        * proportions (``xi, ni``): ``"PR"``, ``"PLN"``, ``"PLO"``, ``"PAS"``,
          ``"PFT"`` [12]_;
        * correlations (``ri, ni``): ``"COR"``, ``"UCOR"`` (unbiased [20]_), ``"ZCOR"``
          [13]_;
        * Cronbach's alpha (``ai`` the alpha, ``mi`` the number of items, ``ni``):
          ``"ARAW"`` [21]_ [22]_;
        * incidence rates (``xi, ti`` or ``x1i, t1i, x2i, t2i``): ``"IR"``, ``"IRLN"``,
          ``"IRR"``, ``"IRD"`` [14]_.
    data : mapping, optional
        A dict of columns or a pandas DataFrame. When given, string values of the
        column keywords name its columns.
    vtype : str
        Variance type: ``"LS"`` (large-sample, default), ``"UB"`` or ``"LS2"`` for SMD,
        ``"HO"`` (pooled variance) for MD; for PHI ``"CS"`` (cross-sectional, i.e.
        multinomial, sampling; ``"LS"`` is the same, as metafor) or ``"ST"`` (stratified:
        row totals fixed by design); for COR and UCOR ``"AV"`` (the sample-size weighted
        average correlation in the variance), and for UCOR ``"UB"`` (unbiased [23]_).
    add, to, drop00
        Zero-cell handling for 2×2 tables, proportions and counts: ``add`` (a finite
        number >= 0 of any numeric type; default 0.5, but 0 for the arcsine measures AS,
        PAS and PFT, which are defined at zero, and for PHI, as metafor) is added to every
        cell of the tables selected by ``to`` (``"only0"``:
        tables with a zero cell; ``"all"``; ``"if0all"``: all tables if any has a zero
        cell; ``"none"``).
        ``drop00=True`` sets tables with no events (or only events) in both groups,
        and IRR/IRD studies with no events in either group, to NaN.
    labels : sequence of str or str, optional
        A label per study (metafor's ``slab``), or the column of `data` holding them;
        default "Study 1", "Study 2", .... Results pooled from these effect sizes name
        their studies (and the omitted ones) by these labels.
    **columns : array_like or str
        The inputs, named as in metafor (see `measure`).

    Returns
    -------
    EffectSizes
        ``yi`` and ``vi`` (NaN for studies with missing inputs), the measure and options.

    Raises
    ------
    ValueError
        No studies; inputs out of their range (named, with the study); an undefined
        effect size for continuous data.

    Warns
    -----
    ZeroCellWarning
        Counts whose effect size stays undefined after `add` (NaN for those studies).
    UndefinedEffectWarning
        Other effect sizes that are undefined (as metafor's ``NA``): ZCOR of r = ±1.

    Notes
    -----
    With pooled SD :math:`s_p`, :math:`m = n_1 + n_2 - 2` and :math:`c(m)` of
    :func:`hedges_correction`, SMD is :math:`g = c(m)(\\bar x_1 - \\bar x_2)/s_p` with
    ``LS`` variance :math:`1/n_1 + 1/n_2 + g^2/(2(n_1+n_2))` [3]_; ``UB`` uses
    :math:`1/n_1 + 1/n_2 + (1 - (m-2)/(m\\,c(m)^2)) g^2` [2]_; ``LS2`` uses
    :math:`c(m)^2 (1/n_1 + 1/n_2 + d^2/(2(n_1+n_2)))` [4]_. Log odds ratios use
    :math:`\\log(ad/bc)` with variance :math:`1/a+1/b+1/c+1/d` [9]_.

    With row totals :math:`n_1, n_2`, column totals :math:`m_1, m_2` and :math:`n` the
    table total, :math:`\\phi = (ad - bc)/\\sqrt{n_1 n_2 m_1 m_2}`; its ``CS`` variance is
    the multinomial large-sample variance [15]_ :math:`n^{-1}[1 - \\phi^2 + \\phi(1 +
    \\phi^2/2)(p_{1\\cdot} - p_{2\\cdot})(p_{\\cdot 1} - p_{\\cdot 2}) / \\sqrt{p_{1\\cdot}
    p_{2\\cdot} p_{\\cdot 1} p_{\\cdot 2}} - \\tfrac34 \\phi^2 ((p_{1\\cdot} -
    p_{2\\cdot})^2/(p_{1\\cdot}p_{2\\cdot}) + (p_{\\cdot 1} - p_{\\cdot 2})^2/(p_{\\cdot 1}
    p_{\\cdot 2}))]` (margins as proportions); the ``ST`` variance is the delta method for
    two independent binomials with the row totals fixed. Yule's :math:`Q = (ad - bc)/(ad
    + bc)` and :math:`Y = (\\sqrt{ad} - \\sqrt{bc})/(\\sqrt{ad} + \\sqrt{bc})` have
    variances :math:`\\tfrac14 (1 - Q^2)^2 V` and :math:`\\tfrac1{16} (1 - Y^2)^2 V`, with
    :math:`V = 1/a + 1/b + 1/c + 1/d` [16]_. OR2DN divides the log odds ratio by 1.65
    (its variance by :math:`1.65^2`) [17]_, OR2DL multiplies it by :math:`\\sqrt3/\\pi`
    [19]_. UCOR is :math:`r_u = r\\,{}_2F_1(\\tfrac12, \\tfrac12; \\tfrac{n-2}2; 1 - r^2)`
    [20]_, exact (needs :math:`n > 4`), with the variance :math:`(1 - r_u^2)^2/(n - 1)`
    (``LS``) or :math:`r_u^2 - [1 - \\tfrac{n-3}{n-2}(1 - r^2)\\,{}_2F_1(1, 1;
    \\tfrac n2; 1 - r^2)]` (``UB``: :math:`r_u^2` minus the unbiased estimator of
    :math:`\\rho^2` [20]_ [23]_). ARAW is Cronbach's :math:`\\alpha` with variance
    :math:`2m(1 - \\alpha)^2/((m - 1)(n - 2))` for :math:`m` items [21]_ [22]_.

    References
    ----------
    .. [1] Viechtbauer (2010), JSS 36(3). https://doi.org/10.18637/jss.v036.i03
    .. [2] Hedges (1981), J Educ Stat 6(2):107-128.
    .. [3] Hedges & Olkin (1985), Statistical Methods for Meta-Analysis.
    .. [4] Borenstein (2009), Handbook of Research Synthesis, ch. 12.
    .. [5] Bonett (2009), Psychol Methods 14(3):225-238.
    .. [6] Hedges, Gurevitch & Curtis (1999), Ecology 80(4):1150-1156.
    .. [7] Becker (1988), Br J Math Stat Psychol 41(2):257-278.
    .. [8] Morris (2008), Organ Res Methods 11(2):364-386.
    .. [9] Fleiss & Berlin (2009), Handbook of Research Synthesis, ch. 13.
    .. [10] Yusuf et al. (1985), Prog Cardiovasc Dis 27(5):335-371.
    .. [11] Rücker et al. (2009), Stat Med 28(5):721-738.
    .. [12] Freeman & Tukey (1950), Ann Math Stat 21(4):607-611.
    .. [13] Fisher (1921), Metron 1:3-32.
    .. [14] Rothman, Greenland & Lash (2008), Modern Epidemiology, 3rd ed.
    .. [15] Bishop, Fienberg & Holland (1975), Discrete Multivariate Analysis, MIT Press.
    .. [16] Yule (1912), J R Stat Soc 75(6):579-652. https://doi.org/10.2307/2340126
    .. [17] Cox & Snell (1989), Analysis of Binary Data, 2nd ed., Chapman & Hall.
    .. [18] Sánchez-Meca, Marín-Martínez & Chacón-Moscoso (2003), Psychol Methods
       8(4):448-467. https://doi.org/10.1037/1082-989X.8.4.448
    .. [19] Hasselblad & Hedges (1995), Psychol Bull 117(1):167-178.
       https://doi.org/10.1037/0033-2909.117.1.167
    .. [20] Olkin & Pratt (1958), Ann Math Stat 29(1):201-211.
       https://doi.org/10.1214/aoms/1177706717
    .. [21] van Zyl, Neudecker & Nel (2000), Psychometrika 65(3):271-280.
       https://doi.org/10.1007/BF02296146
    .. [22] Bonett (2010), Psychol Methods 15(4):368-385. https://doi.org/10.1037/a0020142
    .. [23] Hedges (1989), J Appl Psychol 74(3):469-477.
       https://doi.org/10.1037/0021-9010.74.3.469

    Examples
    --------
    The first two BCG vaccine trials (Colditz et al. 1994) as log risk ratios:

    >>> import ketameta
    >>> es = ketameta.escalc("RR", ai=[4, 6], bi=[119, 300], ci=[11, 29], di=[128, 274])
    >>> es.yi.round(4)
    array([-0.8893, -1.5854])
    >>> es.vi.round(4)
    array([0.3256, 0.1946])
    """
    code = check_choice(measure, "measure", tuple(_REGISTRY))
    spec = _REGISTRY[code]
    check_choice(vtype, "vtype", spec.vtypes)
    check_choice(to, "to", ("only0", "all", "if0all", "none"))
    if add is None:
        add = 0.0 if code in _NO_DEFAULT_ADD else 0.5
    try:
        add_value = as_number(add, "add")
    except TypeError:
        add_value = math.nan
    if not (math.isfinite(add_value) and add_value >= 0):
        msg = f"`add` must be a finite non-negative number (e.g. 0.5), got {add!r}"
        raise ValueError(msg)
    drop00_value: object = drop00
    if not isinstance(drop00_value, bool | np.bool_):
        msg = f"`drop00` must be True or False, got {drop00!r}"
        raise TypeError(msg)
    given = {k: v for k, v in columns.items() if v is not None}
    names = _pick_signature(code, spec, given)
    unused = sorted(set(given) - set(names) - set(spec.optional))
    if unused:
        msg = f"measure {code!r} does not use {', '.join(f'`{u}`' for u in unused)}; it needs {', '.join(f'`{n}`' for n in names)}"  # noqa: E501
        raise TypeError(msg)
    cols = {name: _resolve(name, given[name], data) for name in names}
    _validate_columns(code, cols)
    options: Options = {"vtype": vtype, "add": add_value, "to": to, "drop00": bool(drop00)}
    with np.errstate(all="ignore"):
        yi, vi, ni = spec.impl(cols, options)
    yi, vi = np.array(yi, dtype=np.float64), np.array(vi, dtype=np.float64)
    labs = study_labels(labels, len(yi), data)
    _undefined(yi, vi, cols, code, labs)
    missing = np.isnan(yi) | np.isnan(vi)
    yi[missing], vi[missing] = np.nan, np.nan
    return EffectSizes(
        yi=yi,
        vi=vi,
        measure=code,
        ni=ni,
        options=options,
        labels=labs,
        inputs=np.column_stack([cols[n] for n in names]),
        input_names=names,
    )


def _pick_signature(code: str, spec: _Measure, given: Mapping[str, Any]) -> tuple[str, ...]:
    signatures = (spec.required, *spec.alternatives)
    for sig in signatures:
        if all(name in given for name in sig):
            return sig
    best = signatures[0]
    missing = [n for n in best if n not in given]
    alt = ""
    if spec.alternatives:
        alt = " (or " + " / ".join(", ".join(s) for s in spec.alternatives) + ")"
    msg = f"measure {code!r} needs {', '.join(best)}{alt}; missing: {', '.join(missing)}"
    raise TypeError(msg)


def _resolve(name: str, value: Any, data: Mapping[str, Any] | None) -> FloatArray:
    if data is not None and isinstance(value, str):
        if value not in data:
            msg = f"`{name}`={value!r} is not a column of `data`"
            raise ValueError(msg)
        value = data[value]
    return as_float_array(value, name)
