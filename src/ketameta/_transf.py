"""The one registry of scales and back-transformations: what each measure's numbers are
called, and how a result's estimate, intervals and study effects go back to the scale a
reader knows (metafor's ``transf.*`` functions, named as there).

Every result built on effect sizes carries its ``measure`` (None for raw ``yi``/``vi``);
``summary(transf=...)``, ``to_frame(transf=...)``, ``studies(transf=...)``, the forest plot
and the command line resolve their `transf` argument here: ``"auto"`` picks the measure's
default back-transformation (exp for log ratios, the inverse logit for logits, Miller's
inverse for the Freeman-Tukey double arcsine, ...), ``None`` keeps the analysis scale, a
name from :data:`TRANSFORMS` or a function applies that.

References
----------
.. [1] Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
   Journal of Statistical Software, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
.. [2] Miller, J. J. (1978). The inverse of the Freeman-Tukey double arcsine
   transformation. The American Statistician, 32(4), 138.
   https://doi.org/10.1080/00031305.1978.10479283
.. [3] Fisher, R. A. (1921). On the "probable error" of a coefficient of correlation
   deduced from a small sample. Metron, 1, 3-32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
from scipy import special

from ._typing import FloatArray

Function = Callable[[Any], Any]


def _exp(x: FloatArray, n: FloatArray | None) -> FloatArray:
    with np.errstate(over="ignore"):
        return np.exp(x)


def _ilogit(x: FloatArray, n: FloatArray | None) -> FloatArray:
    return np.asarray(special.expit(x), dtype=np.float64)


def _iarcsin(x: FloatArray, n: FloatArray | None) -> FloatArray:
    return np.asarray(np.sin(np.clip(x, 0.0, math.pi / 2)) ** 2, dtype=np.float64)


def _ztor(x: FloatArray, n: FloatArray | None) -> FloatArray:
    return np.asarray(np.tanh(x), dtype=np.float64)


def _ipft(x: FloatArray, n: FloatArray | None) -> FloatArray:
    """Miller's (1978) inverse of metafor's Freeman-Tukey double arcsine (half the sum of
    the two arcsines) [2]_; 0 below the transform of 0 events, 1 above that of n events."""
    if n is None:
        msg = (
            "back-transforming Freeman-Tukey (PFT) values needs the sample sizes: pool the "
            "EffectSizes of escalc('PFT', xi=..., ni=...) (or pass a function as `transf`)"
        )
        raise ValueError(msg)
    xx, nn = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(n, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.sin(2 * xx)
        inner = 1 - (s + (s - 1 / s) / nn) ** 2
        p = 0.5 * (1 - np.sign(np.cos(2 * xx)) * np.sqrt(np.clip(inner, 0.0, None)))
        low = 0.5 * np.arcsin(np.sqrt(1 / (nn + 1)))  # the transform of 0 events
        high = 0.5 * (np.arcsin(np.sqrt(nn / (nn + 1))) + math.pi / 2)  # of n events
    p = np.where(xx <= low, 0.0, np.where(xx >= high, 1.0, p))
    return np.where(np.isnan(xx) | np.isnan(nn), np.nan, p)


@attrs.frozen
class Transformation:
    """A back-transformation: its name, metafor's function, what it does and its source."""

    name: str
    function: Callable[[FloatArray, FloatArray | None], FloatArray]
    metafor: str
    description: str
    reference: str
    needs_n: bool = False


#: the back-transformations by name (metafor's ``transf.*`` names without the prefix)
TRANSFORMS: Mapping[str, Transformation] = {
    t.name: t
    for t in (
        Transformation("exp", _exp, "transf.exp.int / exp", "exp(x): log ratios to ratios", ""),
        Transformation(
            "ilogit",
            _ilogit,
            "transf.ilogit",
            "1 / (1 + exp(-x)): logits to proportions",
            "",
        ),
        Transformation(
            "iarcsin",
            _iarcsin,
            "transf.iarcsin",
            "sin(x)^2: arcsine square-root values to proportions",
            "",
        ),
        Transformation(
            "ipft",
            _ipft,
            "transf.ipft (studies) / transf.ipft.hm (pooled: harmonic mean of the ni)",
            "Miller's inverse of the Freeman-Tukey double arcsine",
            "Miller (1978), Am Stat 32(4):138",
            needs_n=True,
        ),
        Transformation(
            "ztor", _ztor, "transf.ztor", "tanh(z): Fisher's z to correlations", "Fisher (1921)"
        ),
    )
}
#: other names accepted for the back-transformations (ketameta's earlier names)
ALIASES: Mapping[str, str] = {
    "expit": "ilogit",
    "inv_logit": "ilogit",
    "inv_arcsine": "iarcsin",
    "inv_freeman_tukey": "ipft",
    "tanh": "ztor",
}


@attrs.frozen
class Scale:
    """How a measure's numbers are named, on the analysis scale and back-transformed."""

    name: str  # the analysis scale ("log risk ratio")
    short: str  # as a table column ("RR")
    transf: str | None = None  # the default back-transformation
    natural: str | None = None  # its scale ("risk ratio")
    ratio: bool = False  # a ratio: a log axis, the null at 1
    null: float | None = 0.0  # the null on the analysis scale (None: no reference line)


_RATIO = {"transf": "exp", "ratio": True}
#: the scale of every measure of :func:`ketameta.escalc` and the 2x2 / count models
SCALES: Mapping[str, Scale] = {
    "OR": Scale("log odds ratio", "OR", natural="odds ratio", **_RATIO),  # type: ignore[arg-type]
    "PETO": Scale("log odds ratio (Peto)", "OR", natural="odds ratio", **_RATIO),  # type: ignore[arg-type]
    "RR": Scale("log risk ratio", "RR", natural="risk ratio", **_RATIO),  # type: ignore[arg-type]
    "IRR": Scale(
        "log incidence rate ratio",
        "IRR",
        natural="incidence rate ratio",
        **_RATIO,  # type: ignore[arg-type]
    ),
    "ROM": Scale("log ratio of means", "ROM", natural="ratio of means", **_RATIO),  # type: ignore[arg-type]
    "RD": Scale("risk difference", "RD"),
    "AS": Scale("arcsine square-root risk difference", "AS"),
    "MD": Scale("mean difference", "MD"),
    "SMD": Scale("standardized mean difference", "SMD"),
    "SMDH": Scale("standardized mean difference (heteroscedastic)", "SMD"),
    "MC": Scale("mean change", "MC"),
    "SMCC": Scale("standardized mean change", "SMC"),
    "SMCR": Scale("standardized mean change", "SMC"),
    "PHI": Scale("phi coefficient", "phi"),
    "YUQ": Scale("Yule's Q", "Q"),
    "YUY": Scale("Yule's Y", "Y"),
    "OR2DN": Scale("standardized mean difference (from log OR)", "SMD"),
    "OR2DL": Scale("standardized mean difference (from log OR)", "SMD"),
    "PR": Scale("proportion", "Proportion", null=None),
    "PLN": Scale("log proportion", "Proportion", "exp", "proportion", null=None),
    "PLO": Scale("logit proportion", "Proportion", "ilogit", "proportion", null=None),
    "PAS": Scale(
        "arcsine square-root proportion", "Proportion", "iarcsin", "proportion", null=None
    ),
    "PFT": Scale(
        "Freeman-Tukey double-arcsine proportion", "Proportion", "ipft", "proportion", null=None
    ),
    "COR": Scale("correlation", "r"),
    "UCOR": Scale("correlation (unbiased)", "r"),
    "ZCOR": Scale("Fisher's z", "r", "ztor", "correlation"),
    "ARAW": Scale("Cronbach's alpha", "alpha", null=None),
    "IR": Scale("incidence rate", "Rate", null=None),
    "IRLN": Scale("log incidence rate", "Rate", "exp", "incidence rate", null=None),
    "IRD": Scale("incidence rate difference", "IRD"),
}
_RAW = Scale("effect size", "Estimate")


def scale(measure: str | None) -> Scale:
    """The scale of a measure (a generic one for raw effect sizes)."""
    if measure is None:
        return _RAW
    return SCALES.get(measure, Scale(measure, measure))


@attrs.frozen
class Resolved:
    """A `transf` argument resolved against a measure: the function (None: the analysis
    scale), its name and the name of the scale the numbers are then on."""

    function: Callable[[FloatArray, FloatArray | None], FloatArray] | None
    name: str | None
    scale: str
    needs_n: bool = False
    ratio: bool = False

    def __call__(self, x: Any, n: Any = None) -> FloatArray:
        values = np.asarray(x, dtype=np.float64)
        if self.function is None:
            return values
        return np.asarray(self.function(values, n), dtype=np.float64)


def resolve(transf: Any, measure: str | None) -> Resolved:
    """The back-transformation a `transf` argument asks for (see the module docstring)."""
    sc = scale(measure)
    if transf is None:
        return Resolved(None, None, sc.name)
    if isinstance(transf, str):
        if transf == "auto":
            if sc.transf is None:
                return Resolved(None, None, sc.name)
            t = TRANSFORMS[sc.transf]
            return Resolved(t.function, t.name, sc.natural or sc.name, t.needs_n, sc.ratio)
        name = ALIASES.get(transf, transf)
        if name not in TRANSFORMS:
            msg = (
                f"unknown `transf` {transf!r}; use 'auto' (the measure's default), None, one "
                f"of {sorted(TRANSFORMS)} or a function"
            )
            raise ValueError(msg)
        t = TRANSFORMS[name]
        natural = sc.natural if sc.transf == name and sc.natural else f"{name}({sc.name})"
        return Resolved(t.function, t.name, natural, t.needs_n, name == "exp")
    if callable(transf):
        fn = transf
        label = getattr(transf, "__name__", "transf")
        return Resolved(lambda x, n: fn(x), label, f"{label}({sc.name})")
    msg = f"`transf` must be 'auto', None, a name or a function, got {transf!r}"
    raise TypeError(msg)


def harmonic_mean(n: Any) -> float:
    """The harmonic mean of the finite sample sizes (metafor's ``transf.ipft.hm``)."""
    arr = np.asarray(n, dtype=float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    return float(arr.size / np.sum(1.0 / arr)) if arr.size else math.nan


def format_number(value: float, digits: int = 2, *, ratio: bool = False, minus: str = "−") -> str:
    """A number as a table prints it: fixed decimals, a true minus sign (`minus`), never
    "-0.00"; scientific notation from 1e5 on, and for ratios too small for the decimals
    (a ratio of 0.001 is not "0.00")."""
    if math.isnan(value):
        return "NA"
    if math.isinf(value):
        return "∞" if value > 0 else minus + "∞"
    small = ratio and 0 < abs(value) < 0.5 * 10.0**-digits
    if abs(value) >= 1e5 or small:
        text = f"{value:.{digits}e}"
    else:
        text = f"{value:.{digits}f}"
        if float(text) == 0.0:
            text = text.lstrip("-")
    return text.replace("-", minus)


def check_measure(measure: Any, name: str = "measure") -> str | None:
    """A measure code (of :func:`ketameta.escalc`) naming raw effect sizes, or None."""
    if measure is None:
        return None
    if not isinstance(measure, str) or measure not in SCALES:
        msg = f"unknown `{name}` {measure!r}; use one of {sorted(SCALES)} or None"
        raise ValueError(msg)
    return measure
