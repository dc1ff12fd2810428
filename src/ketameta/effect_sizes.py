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
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import attrs
import numpy as np
from scipy import special

from ._results import array_field, import_pandas
from ._typing import FloatArray
from ._validation import (
    as_float_array,
    check_choice,
    check_finite,
    check_level,
    check_nonnegative,
    check_positive,
    check_same_length,
    check_within,
)
from ._warnings import ZeroCellWarning

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
    """

    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    measure: str
    ni: FloatArray = array_field()
    options: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def sei(self) -> FloatArray:
        """Standard errors, ``sqrt(vi)``."""
        return np.sqrt(self.vi)

    def ci(self, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
        """Wald confidence interval of each study, ``yi ± z_{(1+level)/2} sqrt(vi)``."""
        lv = check_level(level)
        crit = float(special.ndtri(0.5 + lv / 2.0))
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
            "yi": [None if np.isnan(y) else float(y) for y in self.yi],
            "vi": [None if np.isnan(v) else float(v) for v in self.vi],
            "options": dict(self.options),
        }

    def to_frame(self) -> Any:
        """A pandas DataFrame with columns ``yi``, ``vi``, ``sei`` (requires pandas)."""
        pd = import_pandas()
        return pd.DataFrame({"yi": self.yi, "vi": self.vi, "sei": self.sei})


def hedges_correction(m: Any) -> FloatArray:
    """Exact small-sample bias correction of the standardized mean difference.

    .. math:: c(m) = \\frac{\\Gamma(m/2)}{\\sqrt{m/2}\\,\\Gamma((m-1)/2)}

    where ``m`` are the degrees of freedom of the SD estimate (Hedges 1981, eq. 6e [2]_);
    ``c(m) → 1 - 3/(4m - 1)`` as ``m`` grows.

    Parameters
    ----------
    m : array_like
        Degrees of freedom (> 1).

    Returns
    -------
    ndarray
        The correction factor.

    References
    ----------
    .. [2] Hedges, L. V. (1981). Journal of Educational Statistics, 6(2), 107-128.

    Examples
    --------
    >>> import ketameta
    >>> float(ketameta.hedges_correction(10))
    0.922...
    """
    mm = np.asarray(m, dtype=np.float64)
    # Γ(m/2)/Γ((m-1)/2) as the Pochhammer symbol ((m-1)/2)_{1/2}: accurate to ~1e-16 even
    # for huge m, where a difference of log-gamma values loses digits
    with np.errstate(invalid="ignore", divide="ignore"):
        out = special.poch((mm - 1.0) / 2.0, 0.5) / np.sqrt(mm / 2.0)
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
        else:  # "PETO": Yusuf et al. (1985)
            nn = n1 + n2
            events, non_events = ai + ci, bi + di
            expected = events * n1 / nn
            hyper_var = events * non_events * (n1 / nn) * (n2 / nn) / (nn - 1)
            yi = (ai - expected) / hyper_var
            vi = 1 / hyper_var
    if o["drop00"]:
        yi[both_zero], vi[both_zero] = np.nan, np.nan
    return yi, vi, n_total


def _undefined(yi: FloatArray, vi: FloatArray, a: Arrays, measure: str) -> None:
    """Studies with complete inputs but no finite effect size: counts with zero cells get
    NaN and a :class:`ZeroCellWarning`; anything else (a zero SD, values so large that the
    arithmetic overflows) is an error naming the study."""
    present = np.ones(yi.shape, dtype=bool)
    for arr in a.values():
        present &= ~np.isnan(arr)
    undefined = present & ~(np.isfinite(yi) & np.isfinite(vi))
    if not undefined.any():
        return
    idx = np.flatnonzero(undefined).tolist()
    if measure in _COUNT_MEASURES:
        _nan_if_nonfinite(yi, vi)
        yi[undefined], vi[undefined] = np.nan, np.nan
        warnings.warn(
            f"{measure} is undefined for studies {idx} (zero cells or counts; see `add`/`to`); "
            "their yi and vi are NaN",
            ZeroCellWarning,
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


def _cor(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    ri, ni = a["ri"], a["ni"]
    return ri.copy(), (1 - ri**2) ** 2 / (ni - 1), ni  # Hedges & Olkin (1985)


def _zcor(a: Arrays, o: Options) -> tuple[FloatArray, FloatArray, FloatArray]:
    ri, ni = a["ri"], a["ni"]
    with np.errstate(divide="ignore"):
        yi = np.arctanh(ri)  # Fisher (1921)
    _nan_if_nonfinite(yi)
    return yi, 1 / (ni - 3), ni


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


#: measures computed from counts: an undefined value (zero cells) is NaN with a warning
_COUNT_MEASURES = frozenset(
    {"OR", "RR", "RD", "AS", "PETO", "PR", "PLN", "PLO", "PAS", "PFT", "IR", "IRLN", "IRR", "IRD"}
)
#: measures defined at zero counts: their default `add` is 0 (as metafor)
_NO_DEFAULT_ADD = frozenset({"AS", "PAS", "PFT"})


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
    "COR": _Measure(_cor, ("ri", "ni"), "raw correlation"),
    "ZCOR": _Measure(_zcor, ("ri", "ni"), "Fisher's r-to-z transformed correlation"),
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


def _min_group_size(measure: str) -> float:
    if measure in ("SMD", "SMDH", "MD", "ROM"):
        return 2.0
    if measure in ("MC", "SMCC", "SMCR"):
        return 3.0 if measure != "MC" else 1.0
    if measure == "ZCOR":
        return 4.0
    if measure == "COR":
        return 2.0
    return 0.0


def _validate_columns(measure: str, cols: Arrays) -> None:
    check_same_length(cols)
    for name, arr in cols.items():
        if name in _COUNT_ARGS:
            check_nonnegative(arr, name)
        elif name in _SIZE_ARGS:
            check_positive(arr, name)
            lo = _min_group_size(measure)
            with np.errstate(invalid="ignore"):
                small = arr < lo
            if small.any():
                i = int(np.flatnonzero(small)[0])
                msg = (
                    f"`{name}` must be at least {lo:g} for measure {measure!r} (its sampling "
                    f"variance needs it); study {i} has {name}={arr[i]!r}"
                )
                raise ValueError(msg)
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


def escalc(
    measure: str,
    *,
    data: Mapping[str, Any] | None = None,
    vtype: str = "LS",
    add: float | None = None,
    to: str = "only0",
    drop00: bool = False,
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
          ``"RD"`` [9]_, ``"AS"`` [11]_, ``"PETO"`` [10]_;
        * proportions (``xi, ni``): ``"PR"``, ``"PLN"``, ``"PLO"``, ``"PAS"``,
          ``"PFT"`` [12]_;
        * correlations (``ri, ni``): ``"COR"``, ``"ZCOR"`` [13]_;
        * incidence rates (``xi, ti`` or ``x1i, t1i, x2i, t2i``): ``"IR"``, ``"IRLN"``,
          ``"IRR"``, ``"IRD"`` [14]_.
    data : mapping, optional
        A dict of columns or a pandas DataFrame. When given, string values of the
        column keywords name its columns.
    vtype : str
        Variance type: ``"LS"`` (large-sample, default), ``"UB"`` or ``"LS2"`` for SMD,
        ``"HO"`` (pooled variance) for MD.
    add, to, drop00
        Zero-cell handling for 2×2 tables, proportions and counts: ``add`` (default 0.5,
        but 0 for the arcsine measures AS, PAS and PFT, which are defined at zero, as
        metafor) is added to every cell of the tables selected by ``to`` (``"only0"``:
        tables with a zero cell; ``"all"``; ``"if0all"``: all tables if any has a zero
        cell; ``"none"``).
        ``drop00=True`` sets tables with no events (or only events) in both groups,
        and IRR/IRD studies with no events in either group, to NaN.
    **columns : array_like or str
        The inputs, named as in metafor (see `measure`).

    Returns
    -------
    EffectSizes
        ``yi`` and ``vi`` (NaN for studies with missing inputs), the measure and options.

    Notes
    -----
    With pooled SD :math:`s_p`, :math:`m = n_1 + n_2 - 2` and :math:`c(m)` of
    :func:`hedges_correction`, SMD is :math:`g = c(m)(\\bar x_1 - \\bar x_2)/s_p` with
    ``LS`` variance :math:`1/n_1 + 1/n_2 + g^2/(2(n_1+n_2))` [3]_; ``UB`` uses
    :math:`1/n_1 + 1/n_2 + (1 - (m-2)/(m\\,c(m)^2)) g^2` [2]_; ``LS2`` uses
    :math:`c(m)^2 (1/n_1 + 1/n_2 + d^2/(2(n_1+n_2)))` [4]_. Log odds ratios use
    :math:`\\log(ad/bc)` with variance :math:`1/a+1/b+1/c+1/d` [9]_.

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
    if isinstance(add, bool) or not isinstance(add, int | float) or not add >= 0:
        msg = f"`add` must be a non-negative number, got {add!r}"
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
    options: Options = {"vtype": vtype, "add": float(add), "to": to, "drop00": bool(drop00)}
    with np.errstate(all="ignore"):
        yi, vi, ni = spec.impl(cols, options)
    yi, vi = np.array(yi, dtype=np.float64), np.array(vi, dtype=np.float64)
    _undefined(yi, vi, cols, code)
    missing = np.isnan(yi) | np.isnan(vi)
    yi[missing], vi[missing] = np.nan, np.nan
    return EffectSizes(yi=yi, vi=vi, measure=code, ni=ni, options=options)


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
