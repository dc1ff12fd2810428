"""Pooling 2×2 tables and event counts directly: Mantel–Haenszel (:func:`pool_mh`), Peto
(:func:`pool_peto`) and generalized linear mixed models (:func:`pool_glmm`), one
meta-analysis at a time or many at once (:func:`pool_mh_many`, :func:`pool_peto_many`).

These methods use the cell counts themselves, so zero cells need no continuity
correction inside the pooled estimate (Bhaumik et al. 2012 show that adding ½ biases
rare-event meta-analyses towards the null). The study-level effects shown beside the
pooled estimate (and used for Q, I², H² and forest plots) are computed as
:func:`ketameta.escalc` computes them, with the ``add``/``to``/``drop00`` settings.

References
----------
.. [1] Mantel, N., & Haenszel, W. (1959). Statistical aspects of the analysis of data
   from retrospective studies of disease. Journal of the National Cancer Institute,
   22(4), 719-748. https://doi.org/10.1093/jnci/22.4.719
.. [2] Robins, J., Breslow, N., & Greenland, S. (1986). Estimators of the Mantel-Haenszel
   variance consistent in both sparse data and large-strata limiting models. Biometrics,
   42(2), 311-323. https://doi.org/10.2307/2531052
.. [3] Greenland, S., & Robins, J. M. (1985). Estimation of a common effect parameter
   from sparse follow-up data. Biometrics, 41(1), 55-68. https://doi.org/10.2307/2530643
.. [4] Sato, T., Greenland, S., & Robins, J. M. (1989). On the variance estimator for the
   Mantel-Haenszel risk difference. Biometrics, 45(4), 1323-1324.
   https://doi.org/10.2307/2531784
.. [5] Cochran, W. G. (1954). Some methods for strengthening the common χ² tests.
   Biometrics, 10(4), 417-451. https://doi.org/10.2307/3001616
.. [6] Tarone, R. E. (1985). On heterogeneity tests based on efficient scores.
   Biometrika, 72(1), 91-95. https://doi.org/10.1093/biomet/72.1.91
.. [7] Breslow, N. E., & Day, N. E. (1980). Statistical Methods in Cancer Research,
   Vol. 1: The Analysis of Case-Control Studies. IARC Scientific Publications 32.
.. [8] Rothman, K. J., Greenland, S., & Lash, T. L. (2008). Modern Epidemiology (3rd ed.),
   ch. 15. Lippincott Williams & Wilkins.
.. [9] Yusuf, S., Peto, R., Lewis, J., Collins, R., & Sleight, P. (1985). Beta blockade
   during and after myocardial infarction: an overview of the randomized trials.
   Progress in Cardiovascular Diseases, 27(5), 335-371.
   https://doi.org/10.1016/S0033-0620(85)80003-7
.. [10] Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a
   meta-analysis. Statistics in Medicine, 21(11), 1539-1558.
   https://doi.org/10.1002/sim.1186
.. [11] Bhaumik, D. K., Amatya, A., Normand, S.-L. T., Greenhouse, J., Kaizar, E.,
   Neelon, B., & Gibbons, R. D. (2012). Meta-analysis of rare binary adverse event data.
   JASA, 107(498), 555-567. https://doi.org/10.1080/01621459.2012.664484
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs
import numpy as np

from ._engine import fixed
from ._engine import glmm as _glmm
from ._engine.inference import critical_z
from ._engine.moments import typical_variance
from ._results import (
    array_field,
    format_p,
    import_pandas,
    plain,
    readonly_bool,
    table_lines,
)
from ._typing import BoolArray, FloatArray
from ._validation import (
    as_float,
    as_float_array,
    as_number,
    check_choice,
    check_level,
    check_nonnegative,
    check_positive,
    name_studies,
)
from ._warnings import ConvergenceError, OmittedStudiesWarning

__all__ = [
    "GLMM_MEASURES",
    "GLMM_MODELS",
    "MH_MEASURES",
    "BatchBinaryResult",
    "GLMMResult",
    "MHResult",
    "PetoResult",
    "pool_glmm",
    "pool_mh",
    "pool_mh_many",
    "pool_peto",
    "pool_peto_many",
]

#: measures of :func:`pool_mh` (metafor's ``rma.mh``)
MH_MEASURES = fixed.MH_MEASURES
_TABLE_CELLS = ("ai", "bi", "ci", "di")
_PERSON_TIME = ("x1i", "t1i", "x2i", "t2i")
_TO = ("only0", "all", "if0all", "none")
_SCALE_NAMES = {"OR": "OR", "RR": "RR", "IRR": "IRR", "PETO": "OR"}
_MEASURE_NAMES = {
    "OR": "log odds ratio",
    "RR": "log risk ratio",
    "RD": "risk difference",
    "IRR": "log incidence rate ratio",
    "IRD": "incidence rate difference",
    "PETO": "log odds ratio",
}


def _indices(x: Any) -> tuple[int, ...]:
    return tuple(int(i) for i in x)


def _strings(x: Any) -> tuple[str, ...]:
    if type(x) is tuple and all(type(s) is str for s in x):
        return x
    return tuple(str(s) for s in x)


# ---------------------------------------------------------------------------------------------
# options


@attrs.frozen
class _Options:
    """Validated settings of the binary models (written once for the single and batch
    functions)."""

    measure: str
    level: float
    add: tuple[float, float]
    to: tuple[str, str]
    drop00: tuple[bool, bool]
    correct: bool
    rd_variance: str


def _pair(value: Any, name: str, second_default: Any) -> tuple[Any, Any]:
    """metafor's convention: one value applies to the study-level effects (the second, to
    the pooled estimate, takes its default); a pair gives both."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            msg = f"`{name}` must be a single value or a pair of values, got {value!r}"
            raise ValueError(msg)
        return value[0], value[1]
    return value, second_default


def _options(*args: Any) -> _Options:
    """:func:`_check_options`, cached for hashable arguments (the usual case)."""
    try:
        return _cached_options(*args)
    except TypeError:  # unhashable (e.g. a list for `add`): check without the cache
        return _check_options(*args)


@functools.lru_cache(maxsize=64)
def _cached_options(*args: Any) -> _Options:
    return _check_options(*args)


def _check_options(
    measure: Any,
    level: Any,
    add: Any,
    to: Any,
    drop00: Any,
    correct: Any,
    rd_variance: Any,
    measures: Sequence[str],
) -> _Options:
    code = check_choice(measure, "measure", measures)
    lv = check_level(level)
    adds = tuple(as_number(a, "add") for a in _pair(add, "add", 0.0))
    for a in adds:
        if not (math.isfinite(a) and a >= 0):
            msg = f"`add` must be a non-negative number (or a pair of them), got {add!r}"
            raise ValueError(msg)
    tos = _pair(to, "to", "none")
    for t in tos:
        check_choice(t, "to", _TO)
    drops = _pair(drop00, "drop00", False)
    for dz in drops:
        if not isinstance(dz, bool | np.bool_):
            msg = f"`drop00` must be True or False (or a pair of them), got {drop00!r}"
            raise TypeError(msg)
    if not isinstance(correct, bool | np.bool_):
        msg = f"`correct` must be True or False, got {correct!r}"
        raise TypeError(msg)
    rdv = check_choice(rd_variance, "rd_variance", fixed.RD_VARIANCES)
    return _Options(
        measure=code,
        level=lv,
        add=(float(adds[0]), float(adds[1])),
        to=(str(tos[0]), str(tos[1])),
        drop00=(bool(drops[0]), bool(drops[1])),
        correct=bool(correct),
        rd_variance=rdv,
    )


# ---------------------------------------------------------------------------------------------
# the one fitting routine, for a single analysis (1-D cells) and a batch ((m, k) cells)


def _pool(
    cells: tuple[FloatArray, ...],
    present: BoolArray | None,
    *,
    model: str,
    opt: _Options,
    need_dz: bool,
) -> dict[str, Any]:
    """The pooled estimate of one analysis (1-D cells) or a batch ((m, k) cells, absent
    studies with `present` False and zero cells): the engine's output
    (:func:`~ketameta._engine.fixed.mantel_haenszel` without its tests, or
    :func:`~ketameta._engine.fixed.peto`) with the status of each analysis (``ok``,
    ``all_ok``), the presence ``pf``, the double-zero studies ``dz`` (with `need_dz`, or
    when the second `drop00` needs them) and the cells as pooled (``pooled``,
    ``pooled_pf``): everything :func:`_study_statistics` and :func:`_test_statistics`
    start from. (Run under ``np.errstate(all="ignore")``.)"""
    measure = "PETO" if model == "peto" else opt.measure
    person_time = measure in ("IRR", "IRD")
    pf = None if present is None else present.astype(np.float64)
    dz = fixed.double_zero(cells, person_time) if need_dz or opt.drop00[1] else None
    pooled_cells = fixed.added(cells, pf, opt.add[1], opt.to[1], person_time)
    pooled_pf = pf
    if dz is not None and opt.drop00[1]:
        keep = (~dz).astype(np.float64)
        pooled_pf = keep if pf is None else pf * keep
        pooled_cells = tuple(c * pooled_pf for c in pooled_cells)
    c1, c2, c3, c4 = pooled_cells
    if model == "peto":
        out = fixed.peto(c1, c2, c3, c4, pooled_pf)
    else:
        out = fixed.mantel_haenszel(
            c1,
            c2,
            c3,
            c4,
            pooled_pf,
            measure=measure,
            correct=opt.correct,
            rd_variance=opt.rd_variance,
            tests=False,
        )
    status = fixed._pick(out["k"] == 0, fixed.NO_TABLES, out["status"])
    ok = status == fixed.OK
    out.update(
        status=status,
        ok=ok,
        all_ok=bool(ok) if np.ndim(ok) == 0 else bool(ok.all()),
        measure=measure,
        pf=pf,
        dz=dz,
        pooled=pooled_cells,
        pooled_pf=pooled_pf,
    )
    return out


def _checked(core: Mapping[str, Any], x: Any) -> Any:
    """`x`, NaN for the analyses that could not be pooled."""
    return x if core["all_ok"] else np.where(core["ok"], x, np.nan)


def _study_statistics(
    cells: tuple[FloatArray, ...],
    core: Mapping[str, Any],
    *,
    opt: _Options,
    keep_studies: bool,
) -> dict[str, Any]:
    """The study-level effects (as :func:`ketameta.escalc`, with the first `add`, `to`,
    `drop00`) and Q with the fit statistics around the pooled estimate of `core`
    (:func:`_pool`); with `keep_studies` also the effects (NaN where there is none) and
    the double-zero studies."""
    measure, pf, dz = core["measure"], core["pf"], core["dz"]
    if dz is None and keep_studies:
        dz = fixed.double_zero(cells, measure in ("IRR", "IRD"))
    # (absent studies get the benign table 1, 1, 1, 1 here: finite effects, then masked by
    # pf, so that no data-dependent selection is needed)
    if pf is None:
        effect_cells = cells
    else:
        absent = 1.0 - pf
        effect_cells = tuple(c + absent for c in cells)
    yi, vi, okf = fixed.study_effects(
        effect_cells, pf, measure, add=opt.add[0], to=opt.to[0], drop00=opt.drop00[0], dz=dz
    )
    res = fixed.heterogeneity(_checked(core, core["estimate"]), yi, vi, okf)
    if measure == "PETO":  # Q from the pooled cells (the deviance stays the study-level one)
        res["q"] = _checked(core, core["q"])
    if keep_studies:
        has = okf > 0
        res["yi"], res["vi"] = np.where(has, yi, np.nan), np.where(has, vi, np.nan)
        res["double_zero"] = dz
    return res


def _test_statistics(core: Mapping[str, Any], test: str, *, opt: _Options) -> dict[str, Any]:
    """The Cochran–Mantel–Haenszel and Cochran tests (`test` ``"cmh"``) or the
    Breslow–Day and Tarone tests (``"tarone"``) of the odds ratio pooled in `core`."""
    a, b, c, d = core["pooled"]
    if test == "cmh":
        n1, n2, inv_n = core["n1"], core["n2"], core["inv_n"]
        out = fixed.cmh_tests(a, b, c, d, n1, n2, inv_n, correct=opt.correct)
    else:
        out = fixed.tarone_tests(
            a, b, c, d, core["n1"], core["n2"], core["pooled_pf"], core["psi"], core["defined"]
        )
    return {name: _checked(core, value) for name, value in out.items()}


def _fit(
    cells: tuple[FloatArray, ...],
    present: BoolArray | None,
    *,
    model: str,
    opt: _Options,
) -> dict[str, Any]:
    """Fit a batch ((m, k) cells, absent studies with `present` False and zero cells):
    the primary statistics of each analysis. (Run under ``np.errstate(all="ignore")``.)
    A single analysis runs the same steps, the later ones when their statistics are first
    read (:class:`_Pending`)."""
    core = _pool(cells, present, model=model, opt=opt, need_dz=False)
    res: dict[str, Any] = {
        "estimate": _checked(core, core["estimate"]),
        "se": np.sqrt(_checked(core, core["variance"])),
    }
    res["k"] = core["k"]
    res["status"] = core["status"]
    if core["measure"] == "OR":
        res.update(_test_statistics(core, "cmh", opt=opt))
        res.update(_test_statistics(core, "tarone", opt=opt))
    elif core["measure"] == "IRR":
        res["cmh"] = _checked(core, core["cmh"])
    res.update(_study_statistics(cells, core, opt=opt, keep_studies=False))
    return res


# ---------------------------------------------------------------------------------------------
# input preparation


def _resolve(name: str, value: Any, data: Mapping[str, Any] | None) -> FloatArray:
    if data is not None and isinstance(value, str):
        if value not in data:
            msg = f"`{name}`={value!r} is not a column of `data`"
            raise ValueError(msg)
        value = data[value]
    return as_float_array(value, name)


def _signature(given: Mapping[str, Any], allow_person_time: bool, what: str) -> tuple[str, ...]:
    """Which inputs were given: ``ai, bi, ci, di``; ``ai, n1i, ci, n2i``; or (person-time)
    ``x1i, t1i, x2i, t2i``."""
    sigs = [_TABLE_CELLS, ("ai", "n1i", "ci", "n2i")]
    if allow_person_time:
        sigs.append(_PERSON_TIME)
    for sig in sigs:
        if all(given.get(n) is not None for n in sig):
            extra = sorted(n for n, v in given.items() if v is not None and n not in sig)
            if extra:
                msg = (
                    f"{what} takes one set of inputs, {', '.join(sig)}; "
                    f"also got {', '.join(f'`{e}`' for e in extra)}"
                )
                raise TypeError(msg)
            return sig
    options = " or ".join("(" + ", ".join(s) + ")" for s in sigs)
    missing = [n for n in sigs[0] if given.get(n) is None]
    msg = f"{what} needs {options}; missing: {', '.join(missing)}"
    raise TypeError(msg)


def _cells_from(
    names: tuple[str, ...], arrays: Mapping[str, FloatArray]
) -> tuple[FloatArray, ...]:
    """The four cells (a, b, c, d) or (x1, t1, x2, t2), validated: non-negative counts,
    positive group sizes and person-times, events within the group sizes."""
    first = names[0]
    n = arrays[first].shape[-1]
    for name in names[1:]:
        if arrays[name].shape != arrays[first].shape:
            msg = (
                f"`{name}` has shape {arrays[name].shape} but `{first}` has shape "
                f"{arrays[first].shape}; all inputs must have the same shape"
            )
            raise ValueError(msg)
    del n
    for name in names:
        if name in ("t1i", "t2i", "n1i", "n2i"):
            check_positive(arrays[name], name)
        else:
            check_nonnegative(arrays[name], name)
    if names == _PERSON_TIME:
        return tuple(arrays[nm] for nm in names)
    a, c = arrays["ai"], arrays["ci"]
    if "n1i" in names:
        for count, size in (("ai", "n1i"), ("ci", "n2i")):
            with np.errstate(invalid="ignore"):
                bad = (arrays[count] > arrays[size]).reshape(-1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                msg = (
                    f"`{count}` cannot exceed `{size}`; study {i} has "
                    f"{count}={arrays[count].reshape(-1)[i]!r} > "
                    f"{size}={arrays[size].reshape(-1)[i]!r}"
                )
                raise ValueError(msg)
        b, d = arrays["n1i"] - a, arrays["n2i"] - c
    else:
        b, d = arrays["bi"], arrays["di"]
        for group, (x, y) in (("first", (a, b)), ("second", (c, d))):
            with np.errstate(invalid="ignore"):
                empty = ((x + y) == 0).reshape(-1)
            if empty.any():
                i = int(np.flatnonzero(empty)[0])
                msg = (
                    f"study {i} has no participants in the {group} group "
                    f"(`{'ai' if group == 'first' else 'ci'}` + "
                    f"`{'bi' if group == 'first' else 'di'}` = 0)"
                )
                raise ValueError(msg)
    return a, b, c, d


@functools.lru_cache(maxsize=64)
def _default_labels(k: int) -> tuple[str, ...]:
    return tuple(f"Study {i + 1}" for i in range(k))


def _labels(labels: Any, data: Mapping[str, Any] | None, k: int) -> tuple[str, ...]:
    if labels is None:
        return _default_labels(k)
    if isinstance(labels, str):
        if data is None or labels not in data:
            msg = f"`labels`={labels!r} is not a column of `data`"
            raise ValueError(msg)
        labels = data[labels]
    out = tuple(str(s) for s in labels)
    if len(out) != k:
        msg = f"`labels` has {len(out)} entries but there are {k} studies"
        raise ValueError(msg)
    return out


# ---------------------------------------------------------------------------------------------
# results


def _fmt(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "NA"


_FIT_HEADERS = ["logLik", "deviance", "AIC", "BIC", "AICc"]


def _model_table(res: Any) -> list[str]:
    """The model results table (widening to its values, as the others)."""
    row = [_fmt(x) for x in (res.estimate, res.se, res.statistic)]
    row += [format_p(res.pvalue), _fmt(res.ci_lower), _fmt(res.ci_upper)]
    return table_lines(["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"], [row], [9] * 6)


class _LazyFields:
    """Fields computed when first read: the study-level table with Q and the fit
    statistics, and the odds ratio's tests, of a single MH/Peto analysis (for k = 15 the
    NumPy calls, not the arithmetic, are the cost of a fit, and most callers read the
    estimate only). :func:`_single` leaves those slots empty and stores a
    :class:`_Pending` fit; the first read of an empty slot lands here (Python calls
    ``__getattr__`` only when the normal lookup fails), computes the field's group with the
    same engine steps a batch runs (:func:`_fit`) and fills its slots, so later reads are
    plain attribute reads. Equality, pickling, ``to_dict()`` and ``attrs.evolve`` read
    every field and so see the same values as an eager result."""

    __slots__ = ("_pending",)

    #: field name -> the group of fields computed with it (per result class)
    _LAZY: ClassVar[Mapping[str, str]] = {}

    if not TYPE_CHECKING:  # (mypy keeps checking attribute names)

        def __getattr__(self, name: str) -> Any:
            group = type(self)._LAZY.get(name)
            if group is not None:
                try:
                    pending = object.__getattribute__(self, "_pending")
                except AttributeError:
                    pending = None
                if pending is not None:
                    for field, value in pending.compute(group).items():
                        object.__setattr__(self, field, value)
                    return object.__getattribute__(self, name)
            msg = f"{type(self).__name__!r} object has no attribute {name!r}"
            raise AttributeError(msg)


@attrs.frozen(kw_only=True, repr=False)
class _BinaryResult(_LazyFields):
    """Fields and methods shared by :class:`MHResult` and :class:`PetoResult`."""

    measure: str
    estimate: float
    se: float
    statistic: float
    pvalue: float
    ci_lower: float
    ci_upper: float
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    k: int
    k_yi: int
    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    loglik_reml: float
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    weights: FloatArray = array_field()
    cells: FloatArray = array_field()
    cell_names: tuple[str, ...]
    in_estimate: BoolArray = attrs.field(
        converter=readonly_bool, eq=attrs.cmp_using(eq=np.array_equal)
    )
    labels: tuple[str, ...] = attrs.field(converter=_strings)
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    double_zero: tuple[str, ...] = attrs.field(converter=_strings, default=())
    level: float = 0.95
    add: tuple[float, float] = (0.5, 0.0)
    to: tuple[str, str] = ("only0", "none")
    drop00: tuple[bool, bool] = (True, False)

    _METHOD = ""
    _LAZY: ClassVar[Mapping[str, str]] = dict.fromkeys(
        (
            "q",
            "q_df",
            "q_pvalue",
            "i2",
            "h2",
            "k_yi",
            "loglik",
            "deviance",
            "aic",
            "bic",
            "aicc",
            "loglik_reml",
            "yi",
            "vi",
            "weights",
            "in_estimate",
            "double_zero",
        ),
        "studies",
    ) | {"cells": "cells"}

    @property
    def is_ratio(self) -> bool:
        """Whether the estimate is a log ratio (OR, RR, IRR, Peto's OR)."""
        return self.measure in fixed.RATIO_MEASURES

    @property
    def exp_estimate(self) -> float:
        """The pooled ratio (``exp(estimate)``) of a log-ratio measure; NaN otherwise."""
        return math.exp(self.estimate) if self.is_ratio else math.nan

    @property
    def exp_ci(self) -> tuple[float, float]:
        """The confidence limits of the ratio (exponentiated) of a log-ratio measure."""
        if not self.is_ratio:
            return (math.nan, math.nan)
        return (math.exp(self.ci_lower), math.exp(self.ci_upper))

    def study_ci(self, level: float | None = None) -> tuple[FloatArray, FloatArray]:
        """Wald confidence limits of the study-level effects, ``yi ± z·sqrt(vi)``."""
        lv = self.level if level is None else check_level(level)
        half = critical_z(lv) * np.sqrt(self.vi)
        return self.yi - half, self.yi + half

    def notes(self) -> tuple[str, ...]:
        """Why a study has no study-level effect or is not in the pooled estimate (empty
        when it is used as usual), one entry per input row."""
        out = []
        dz = set(self.double_zero)
        omitted = set(self.omitted)
        for i, label in enumerate(self.labels):
            if i in omitted:
                out.append("omitted: missing value")
            elif not self.in_estimate[i]:
                out.append("not pooled: double zero (no events, or only events, in both groups)")
            elif math.isnan(self.yi[i]):
                out.append(
                    "no study-level effect: double zero (drop00)"
                    if label in dz
                    else "no study-level effect: zero cells (see `add`/`to`)"
                )
            else:
                out.append("")
        return tuple(out)

    def studies(self) -> Any:
        """A pandas DataFrame with one row per input row (omitted rows included): label,
        cells, events/totals, study-level effect, its CI, the weight in the pooled
        estimate (percent) and a note saying why a row is not used (requires pandas)."""
        pd = import_pandas()
        lo, hi = self.study_ci()
        frame: dict[str, Any] = {"label": list(self.labels)}
        for j, name in enumerate(self.cell_names):
            frame[name] = self.cells[:, j]
        frame.update(
            yi=self.yi,
            vi=self.vi,
            ci_lower=lo,
            ci_upper=hi,
            weight=self.weights,
            note=list(self.notes()),
        )
        return pd.DataFrame(frame)

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``)."""
        return plain(self)  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """A one-row pandas DataFrame of the scalar fields (requires pandas); the studies
        are in :meth:`studies`."""
        pd = import_pandas()
        d = self.to_dict()
        return pd.DataFrame([{k: v for k, v in d.items() if not isinstance(v, list | dict)}])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(measure={self.measure!r}, k={self.k}, "
            f"estimate={self.estimate:.4g}, ci=[{self.ci_lower:.4g}, {self.ci_upper:.4g}], "
            f"q={self.q:.4g}, i2={self.i2:.1f}%)"
        )

    def _summary_lines(self, title: str) -> list[str]:
        lines = [f"Equal-Effects Model (k = {self.k}; {title})", ""]
        stats = (self.loglik, self.deviance, self.aic, self.bic, self.aicc)
        lines += table_lines(_FIT_HEADERS, [[_fmt(x) for x in stats]], [9, 10, 10, 10, 10])
        lines.append("")
        lines.append(f"I^2 (total heterogeneity / total variability):  {self.i2:.2f}%")
        lines.append(f"H^2 (total variability / sampling variability): {self.h2:.2f}")
        lines.append("")
        lines.append("Test for Heterogeneity:")
        p = format_p(self.q_pvalue)
        p_text = "< .0001" if p.startswith("<") else f"= {p}"
        lines.append(f"Q(df = {self.q_df}) = {self.q:.4f}, p-val {p_text}")
        lines.append("")
        scale = " (log scale)" if self.is_ratio else ""
        lines.append(f"Model Results{scale}:")
        lines.append("")
        lines += _model_table(self)
        if self.is_ratio:
            lo, hi = self.exp_ci
            lines += [
                "",
                f"Model Results ({_SCALE_NAMES[self.measure]} scale):",
                "",
                *table_lines(
                    ["estimate", "ci.lb", "ci.ub"],
                    [[_fmt(x) for x in (self.exp_estimate, lo, hi)]],
                    [9, 9, 9],
                ),
            ]
        return lines

    def _summary_tail(self) -> list[str]:
        lines = []
        if self.omitted:
            names = name_studies(self.omitted, self.labels)
            lines.append(f"Omitted studies (missing values): {names}")
        if self.double_zero:
            lines.append(
                "Double zero (no events, or only events, in both groups): "
                + ", ".join(self.double_zero)
            )
        return ["", *lines] if lines else []


def _chi2_line(
    name: str,
    stat: float,
    df: float,
    p: float,
    width: int = 0,
    stat_width: int = 0,
    df_width: int = 0,
) -> str:
    # metafor 3.8-1 prints these test lines of rma.mh with "p-val < 0.0001" (unlike its
    # "p-val < .0001" of the Q test), values and df aligned between the lines:
    #   Cochran-Mantel-Haenszel Test:    CMH = 128.8608, df = 1, p-val < 0.0001
    #   Tarone's Test for Heterogeneity: X^2 =  24.3962, df = 4, p-val < 0.0001
    p_text = format_p(p)
    if p_text.startswith("<"):
        p_text = "< 0.0001"
    elif p_text != "NA":
        p_text = f"= {p_text}"
    df_text = f"{df:g},"
    return f"{name:{width}s}{stat:{stat_width}.4f}, df = {df_text:{df_width + 1}s} p-val {p_text}"


@attrs.frozen(kw_only=True, repr=False)
class MHResult(_BinaryResult):
    """The result of :func:`pool_mh`: a Mantel–Haenszel equal-effects meta-analysis.

    Attributes
    ----------
    measure : str
        ``"OR"``, ``"RR"``, ``"RD"``, ``"IRR"`` or ``"IRD"``.
    estimate, se, statistic, pvalue, ci_lower, ci_upper : float
        The MH estimate (log scale for OR, RR, IRR), its standard error, z statistic,
        two-sided p-value and confidence limits (:attr:`exp_estimate` and
        :attr:`exp_ci` give the ratio).
    q, q_df, q_pvalue, i2, h2 : float
        Cochran's Q of the study-level effects around the MH estimate (as metafor), on
        ``k_yi - 1`` df, with I² (percent) and H².
    k : int
        Tables in the MH estimate (double-zero tables included unless dropped by the
        second ``drop00``: they add nothing to the OR and RR, but weight to the RD).
    k_yi : int
        Studies with a study-level effect (Q, I², H²).
    cmh, cmh_pvalue : float
        OR: the Cochran–Mantel–Haenszel test; IRR: the Mantel–Haenszel test for
        person-time data (NaN for RR, RD, IRD).
    cochran, cochran_pvalue : float
        OR: Cochran's (1954) test (binomial rather than hypergeometric variance).
    tarone, tarone_df, tarone_pvalue, breslow_day, breslow_day_pvalue : float
        OR: Tarone's test of homogeneity and the uncorrected Breslow–Day test.
    loglik, deviance, aic, bic, aicc, loglik_reml : float
        Fit statistics of the equal-effects model of the study-level effects, as
        metafor's ``fitstats``.
    yi, vi, weights : ndarray
        Per input row: study-level effect and variance (NaN where undefined or omitted)
        and weight in the MH estimate (percent; NaN for omitted rows).
    cells : ndarray
        The input cells, one row per study (``cell_names``).
    in_estimate : ndarray of bool
        Which rows enter the MH estimate.
    labels : tuple of str
    omitted : tuple of int
        Rows left out for missing values.
    double_zero : tuple of str
        Labels of studies with no events in either group (or only events).
    level, add, to, drop00, correct, rd_variance
        The settings (``add``, ``to``, ``drop00`` as pairs: study-level effects,
        pooled estimate).

    Notes
    -----
    :func:`pool_mh` computes the estimate, its SE, test and CI at once; the study-level
    table (``yi``, ``vi``, ``weights``, ``in_estimate``, ``double_zero``, ``cells``),
    Q with I², H² and the fit statistics, and the tests (CMH with Cochran's;
    Breslow–Day with Tarone's) when one of their fields is first read, from the result's
    own copy of the cells, by the same engine steps as :func:`pool_mh_many`; they are
    then stored. Equality, pickling, ``to_dict()`` and ``attrs.evolve`` read every field.
    """

    cmh: float = math.nan
    cmh_pvalue: float = math.nan
    cochran: float = math.nan
    cochran_pvalue: float = math.nan
    tarone: float = math.nan
    tarone_df: float = math.nan
    tarone_pvalue: float = math.nan
    breslow_day: float = math.nan
    breslow_day_pvalue: float = math.nan
    correct: bool = True
    rd_variance: str = "sato"

    _LAZY: ClassVar[Mapping[str, str]] = {
        **_BinaryResult._LAZY,
        **dict.fromkeys(("cmh", "cmh_pvalue", "cochran", "cochran_pvalue"), "cmh"),
        **dict.fromkeys(
            ("tarone", "tarone_df", "tarone_pvalue", "breslow_day", "breslow_day_pvalue"),
            "tarone",
        ),
    }

    def summary(self) -> str:
        """The printed summary, as metafor's ``summary(rma.mh(...))``: fit statistics,
        heterogeneity, the estimate on the log and the ratio scale and the tests."""
        lines = self._summary_lines(f"Mantel-Haenszel, {_MEASURE_NAMES[self.measure]}")
        if self.measure == "OR":
            sw = max(len(f"{x:.4f}") for x in (self.cmh, self.tarone))
            dw = max(len(f"{x:g}") for x in (1, self.tarone_df))
            lines += [
                "",
                _chi2_line(
                    "Cochran-Mantel-Haenszel Test:    CMH = ",
                    self.cmh,
                    1,
                    self.cmh_pvalue,
                    stat_width=sw,
                    df_width=dw,
                ),
                _chi2_line(
                    "Tarone's Test for Heterogeneity: X^2 = ",
                    self.tarone,
                    self.tarone_df,
                    self.tarone_pvalue,
                    stat_width=sw,
                    df_width=dw,
                ),
            ]
        elif self.measure == "IRR":
            lines += ["", _chi2_line("Mantel-Haenszel Test: MH = ", self.cmh, 1, self.cmh_pvalue)]
        return "\n".join(lines + self._summary_tail())


@attrs.frozen(kw_only=True, repr=False)
class PetoResult(_BinaryResult):
    """The result of :func:`pool_peto`: Peto's one-step log odds ratio.

    Fields as :class:`MHResult` (without its tests); ``measure`` is ``"PETO"``, the study
    weights are the hypergeometric variances. As there, the study-level table, Q and the
    fit statistics are computed when first read.
    """

    def summary(self) -> str:
        """The printed summary, as metafor's ``summary(rma.peto(...))``."""
        lines = self._summary_lines("Peto's method, log odds ratio")
        return "\n".join(lines + self._summary_tail())


# ---------------------------------------------------------------------------------------------
# the single-analysis functions

_R = TypeVar("_R", bound=_BinaryResult)


def _prepare(
    given: dict[str, Any],
    data: Mapping[str, Any] | None,
    *,
    allow_person_time: bool,
    what: str,
    nan_policy: str,
    stacklevel: int,
    labels: Any = None,
) -> tuple[tuple[str, ...], tuple[FloatArray, ...], BoolArray, tuple[int, ...]]:
    """Validated cells of every input row, the names, the rows used and the omitted rows."""
    sig = _signature(given, allow_person_time, what)
    names = _PERSON_TIME if sig == _PERSON_TIME else _TABLE_CELLS
    raw = [given[name] for name in sig]
    if all(type(x) is np.ndarray and x.dtype.kind in "fiu" and x.itemsize <= 8 for x in raw):
        # plain int/float arrays: the quick checks on one float64 copy of the four
        # (anything that fails them goes through the conversions and checks below)
        quick = _quick_cells(sig, dict(zip(sig, raw, strict=True)))
        if quick is not None:
            return names, quick, np.ones(quick[0].shape, dtype=bool), ()
    arrays = {name: _resolve(name, given[name], data) for name in sig}
    quick = _quick_cells(sig, arrays)
    if quick is not None:  # valid and complete: the common case, in a few NumPy calls
        return names, quick, np.ones(quick[0].shape, dtype=bool), ()
    cells = _cells_from(sig, arrays)
    if cells[0].shape[0] == 0:
        msg = f"no studies: `{sig[0]}` is empty"
        raise ValueError(msg)
    missing = np.zeros(cells[0].shape, dtype=bool)
    for c in cells:
        missing |= np.isnan(c)
    omitted: tuple[int, ...] = ()
    if missing.any():
        idx = np.flatnonzero(missing)
        named = name_studies(idx, None if labels is None else _labels(labels, data, missing.size))
        have = "has" if idx.size == 1 else "have"
        if nan_policy == "raise":
            msg = f"{named} {have} missing cells (nan_policy='raise')"
            raise ValueError(msg)
        omitted = tuple(int(i) for i in idx)
        if len(omitted) == missing.size:
            msg = "no studies: every study has a missing cell"
            raise ValueError(msg)
        count = len(omitted)
        warnings.warn(
            f"{count} {'study' if count == 1 else 'studies'} omitted: {named} {have} "
            "missing cells",
            OmittedStudiesWarning,
            stacklevel=stacklevel,
        )
    return names, cells, ~missing, omitted


def _quick_cells(
    sig: tuple[str, ...], arrays: Mapping[str, FloatArray]
) -> tuple[FloatArray, ...] | None:
    """The four cells when every value is valid and present (one test on the extremes;
    NaN fails it), else None (the detailed checks then name the problem)."""
    first = arrays[sig[0]]
    if first.ndim != 1 or first.shape[0] == 0:
        return None
    try:
        t = np.array([arrays[name] for name in sig], dtype=np.float64)  # (a new array)
    except ValueError:  # ragged
        return None
    if t.ndim != 2:
        return None
    if sig == ("ai", "n1i", "ci", "n2i"):
        t[1] -= t[0]
        t[3] -= t[2]
    if sig == _PERSON_TIME:
        lo, hi = np.minimum.reduce(t, axis=1), np.maximum.reduce(t, axis=1)
        valid = lo[0] >= 0 and lo[2] >= 0 and lo[1] > 0 and lo[3] > 0 and hi.max() < np.inf
    else:
        groups = t[0::2] + t[1::2]  # the two group sizes
        valid = t.min() >= 0 and t.max() < np.inf and groups.min() > 0
    if not valid:
        return None
    return t[0], t[1], t[2], t[3]


class _Pending:
    """The fit of a single analysis behind its result's lazily computed fields
    (:class:`_LazyFields`): the validated cells, the options and the pooled estimate's
    engine output (:func:`_pool`); :meth:`compute` gives one group of fields."""

    __slots__ = ("cells", "core", "k_all", "labels", "omitted", "opt", "table", "used")

    def __init__(
        self,
        cells: tuple[FloatArray, ...],
        core: dict[str, Any],
        opt: _Options,
        *,
        table: tuple[FloatArray, ...],
        used: BoolArray,
        omitted: tuple[int, ...],
        labels: tuple[str, ...],
    ) -> None:
        self.cells, self.core, self.opt = cells, core, opt
        self.table, self.used, self.omitted, self.labels = table, used, omitted, labels
        self.k_all = table[0].shape[0]

    def compute(self, group: str) -> dict[str, Any]:
        with np.errstate(all="ignore"):
            if group == "studies":
                return self._studies()
            if group == "cells":
                cells = np.array(self.table).T  # (a new array: the result owns it)
                cells.setflags(write=False)
                return {"cells": cells}
            out = _test_statistics(self.core, group, opt=self.opt)
            stats = {name: float(value) for name, value in out.items()}
            stats.update(fixed._test_pvalues(stats))
            return stats

    def _studies(self) -> dict[str, Any]:
        core, opt = self.core, self.opt
        out = _study_statistics(self.cells, core, opt=opt, keep_studies=True)
        k_yi = int(out["k_yi"])
        stats = {name: float(out[name]) for name in ("q", "deviance", "loglik", "loglik_reml")}
        stats.update(
            (name, float(value))
            for name, value in (
                fixed._heterogeneity_tests(out["q"], out["k_yi"])
                | fixed._information(out["loglik"], out["k_yi"])
            ).items()
        )
        w = np.asarray(core["weights"], dtype=np.float64)
        w = 100.0 * w / w.sum()  # (0 for tables left out of the pooled estimate)
        yi, vi, dz_mask = out["yi"], out["vi"], out["double_zero"]
        pooled_pf = core["pooled_pf"]
        in_pool = np.ones(len(yi), dtype=bool) if pooled_pf is None else pooled_pf > 0
        used_idx = np.flatnonzero(self.used)
        if self.omitted:  # rows for every input study: NaN (weight NaN, not pooled)

            def full(values: FloatArray) -> FloatArray:
                arr = np.full(self.k_all, np.nan)
                arr[used_idx] = values
                return arr

            yi, vi, w = full(yi), full(vi), full(w)
            pooled = np.zeros(self.k_all, dtype=bool)
            pooled[used_idx] = in_pool
            in_pool = pooled
        for arr in (yi, vi, w, in_pool):
            arr.setflags(write=False)
        labels = self.labels
        return {
            **stats,
            "q_df": k_yi - 1,
            "k_yi": k_yi,
            "yi": yi,
            "vi": vi,
            "weights": w,
            "in_estimate": in_pool,
            "double_zero": (tuple(labels[i] for i in used_idx[dz_mask]) if dz_mask.any() else ()),
        }


_SETATTR = object.__setattr__


def _single(
    model: str,
    cls: type[_R],
    given: dict[str, Any],
    data: Mapping[str, Any] | None,
    opt: _Options,
    labels: Any,
    nan_policy: str,
) -> _R:
    """A single MH/Peto analysis: validation and the pooled estimate now, the rest of
    the result's fields when first read (:class:`_LazyFields`). The result is built
    without its class's converters: every value is already of its field's type, and
    every array a new read-only one."""
    what = "pool_mh" if model == "mh" else "pool_peto"
    if nan_policy != "omit":
        nan_policy = check_choice(nan_policy, "nan_policy", ("omit", "raise"))
    names, cells, used, omitted = _prepare(
        given,
        data,
        allow_person_time=model == "mh",
        what=what,
        nan_policy=nan_policy,
        stacklevel=4,
        labels=labels,
    )
    if model == "mh":
        person_time = names == _PERSON_TIME
        if person_time != (opt.measure in ("IRR", "IRD")):
            need = "x1i, t1i, x2i, t2i" if opt.measure in ("IRR", "IRD") else "2x2 tables"
            msg = f"measure {opt.measure!r} needs {need}"
            raise TypeError(msg)
    k_all = cells[0].shape[0]
    labs = _labels(labels, data, k_all)
    sub = tuple(c[used] for c in cells) if omitted else cells
    with np.errstate(all="ignore"):
        core = _pool(sub, None, model=model, opt=opt, need_dz=False)
    status = int(core["status"])
    if status != fixed.OK:
        reason = fixed.STATUS_REASONS[status].format(why=core["why"])
        msg = f"{what}: {reason}"
        raise ValueError(msg)
    estimate = float(core["estimate"])
    se = math.sqrt(float(core["variance"]))
    fields: dict[str, Any] = fixed._wald(estimate, se, opt.level)
    fields.update(
        measure=core["measure"],
        estimate=estimate,
        se=se,
        k=int(core["k"]),
        cell_names=names,
        labels=labs,
        omitted=omitted,
        level=opt.level,
        add=opt.add,
        to=opt.to,
        drop00=opt.drop00,
    )
    if model == "mh":
        fields.update(correct=opt.correct, rd_variance=opt.rd_variance)
        if core["measure"] != "OR":  # (the OR's tests are computed when first read)
            cmh = float(core["cmh"]) if core["measure"] == "IRR" else math.nan
            fields.update(
                cmh=cmh,
                cmh_pvalue=float(fixed.chi2_sf(1.0, cmh)) if cmh == cmh else math.nan,
                cochran=math.nan,
                cochran_pvalue=math.nan,
                tarone=math.nan,
                tarone_df=math.nan,
                tarone_pvalue=math.nan,
                breslow_day=math.nan,
                breslow_day_pvalue=math.nan,
            )
    result = object.__new__(cls)
    for name, value in fields.items():
        _SETATTR(result, name, value)
    _SETATTR(
        result,
        "_pending",
        _Pending(sub, core, opt, table=cells, used=used, omitted=omitted, labels=labs),
    )
    return result


def pool_mh(
    ai: Any = None,
    bi: Any = None,
    ci: Any = None,
    di: Any = None,
    n1i: Any = None,
    n2i: Any = None,
    *,
    x1i: Any = None,
    t1i: Any = None,
    x2i: Any = None,
    t2i: Any = None,
    data: Mapping[str, Any] | None = None,
    measure: str = "OR",
    level: float = 0.95,
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
    correct: bool = True,
    rd_variance: str = "sato",
    labels: Sequence[str] | str | None = None,
    nan_policy: str = "omit",
) -> MHResult:
    """Mantel–Haenszel pooling of 2×2 tables or person-time data (metafor's ``rma.mh``).

    Parameters
    ----------
    ai, bi, ci, di : array_like or str
        2×2 tables: events and non-events in the first group (``ai``, ``bi``) and the
        second group (``ci``, ``di``). Or give ``ai, n1i, ci, n2i`` (group sizes).
    n1i, n2i : array_like or str
        Group sizes, instead of ``bi`` and ``di``.
    x1i, t1i, x2i, t2i : array_like or str
        Person-time data (``measure="IRR"`` or ``"IRD"``): events and person-times.
    data : mapping, optional
        A dict of columns or a pandas DataFrame; string arguments name its columns.
    measure : {"OR", "RR", "RD", "IRR", "IRD"}
        Odds ratio [1]_ [2]_, risk ratio [3]_, risk difference [3]_ [4]_, incidence rate
        ratio or difference [3]_ [8]_.
    level : float
        Confidence level.
    add, to, drop00
        Zero cells. The first (or only) value applies to the study-level effects shown
        beside the pooled estimate and used for Q, I², H² (as :func:`ketameta.escalc`:
        `add` is added to the cells of the tables selected by `to`; `drop00` leaves out
        studies with no events, or only events, in both groups). The MH estimate itself
        needs no correction and gets none, unless a second value is given, as in
        metafor: ``add=(0.5, 0.5), to=("only0", "only0")`` adds ½ to the tables with a
        zero cell also inside the MH estimate (as RevMan does) and
        ``drop00=(True, True)`` drops double-zero tables from it.
    correct : bool
        Continuity correction of the Cochran–Mantel–Haenszel (OR) and Mantel–Haenszel
        (IRR) tests.
    rd_variance : {"sato", "gr"}
        Variance of the MH risk difference: Sato, Greenland & Robins (1989) [4]_
        (metafor's, consistent for sparse and large strata) or Greenland & Robins (1985)
        [3]_ (RevMan's and Stata ``metan``'s).
    labels : sequence of str or str, optional
        Study labels (or the column of `data` holding them); default "Study 1", ...
    nan_policy : {"omit", "raise"}
        Studies with a missing cell are left out with an
        :class:`~ketameta.OmittedStudiesWarning` (listed in ``result.omitted``), or raise.

    Returns
    -------
    MHResult

    Raises
    ------
    ValueError
        When the pooled estimate is undefined: e.g. for the OR, when every table has a
        zero in ``a·d`` or in ``b·c`` (one outcome never occurs in a group), or for the
        RD when no table has an event (or every table only events).

    Notes
    -----
    With ``n = n1 + n2`` per table, the MH odds ratio is ``Σ(ad/n)/Σ(bc/n)`` [1]_ with
    the variance of its log of Robins, Breslow & Greenland (1986) [2]_; the risk ratio
    ``Σ(a n2/n)/Σ(c n1/n)`` and risk difference ``Σ((a n2 - c n1)/n)/Σ(n1 n2/n)`` with the
    variances of Greenland & Robins (1985) [3]_ (log RR) and Sato, Greenland & Robins
    (1989) [4]_ (RD); for person-time (``T = t1 + t2``) the rate ratio
    ``Σ(x1 t2/T)/Σ(x2 t1/T)`` and rate difference ``Σ((x1 t2 - x2 t1)/T)/Σ(t1 t2/T)``
    [3]_ [8]_. CI and test are Wald-type (normal). For the OR, the Cochran–Mantel–Haenszel
    test [1]_ ``(|Σa - ΣE(a)| - ½)²/ΣVar(a)`` with the hypergeometric moments, Cochran's
    test [5]_ with binomial variances, and the Breslow–Day test [7]_ with Tarone's
    correction [6]_ (on K - 1 df, K the tables with both outcomes in both groups); for the
    IRR the Mantel–Haenszel test for person-time [8]_. Q is computed from the study-level
    effects around the MH estimate, with ``I² = max(0, (Q - df)/Q)`` and ``H² = Q/df``
    [10]_ (as metafor); a study-level effect with variance 0 (a risk difference of 0 - 0
    when `add` is 0) is left out of Q, where metafor reports Q = ∞.

    References
    ----------
    .. [1] Mantel & Haenszel (1959), J Natl Cancer Inst 22(4):719-748.
    .. [2] Robins, Breslow & Greenland (1986), Biometrics 42(2):311-323.
    .. [3] Greenland & Robins (1985), Biometrics 41(1):55-68.
    .. [4] Sato, Greenland & Robins (1989), Biometrics 45(4):1323-1324.
    .. [5] Cochran (1954), Biometrics 10(4):417-451.
    .. [6] Tarone (1985), Biometrika 72(1):91-95.
    .. [7] Breslow & Day (1980), Statistical Methods in Cancer Research, vol. 1.
    .. [8] Rothman, Greenland & Lash (2008), Modern Epidemiology, 3rd ed., ch. 15.
    .. [10] Higgins & Thompson (2002), Stat Med 21(11):1539-1558.

    Examples
    --------
    The BCG vaccine trials (Colditz et al. 1994), MH odds ratio (metafor: -0.4734,
    OR 0.6229):

    >>> import ketameta
    >>> res = ketameta.pool_mh(ai="tpos", bi="tneg", ci="cpos", di="cneg",
    ...                        data=ketameta.datasets.bcg(), labels="author")
    >>> round(res.estimate, 4), round(res.exp_estimate, 4), round(res.tarone, 4)
    (-0.4734, 0.6229, 171.7567)
    """
    opt = _options(measure, level, add, to, drop00, correct, rd_variance, MH_MEASURES)
    given = {
        "ai": ai,
        "bi": bi,
        "ci": ci,
        "di": di,
        "n1i": n1i,
        "n2i": n2i,
        "x1i": x1i,
        "t1i": t1i,
        "x2i": x2i,
        "t2i": t2i,
    }
    return _single("mh", MHResult, given, data, opt, labels, nan_policy)


def pool_peto(
    ai: Any = None,
    bi: Any = None,
    ci: Any = None,
    di: Any = None,
    n1i: Any = None,
    n2i: Any = None,
    *,
    data: Mapping[str, Any] | None = None,
    level: float = 0.95,
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
    labels: Sequence[str] | str | None = None,
    nan_policy: str = "omit",
) -> PetoResult:
    """Peto's one-step log odds ratio of 2×2 tables (metafor's ``rma.peto``) [9]_.

    Parameters
    ----------
    ai, bi, ci, di, n1i, n2i, data, level, labels, nan_policy
        As in :func:`pool_mh`.
    add, to, drop00
        As in :func:`pool_mh`: the first value applies to the study-level (Peto) log odds
        ratios, a second one to the pooled estimate.

    Returns
    -------
    PetoResult

    Raises
    ------
    ValueError
        When one of the two outcomes never occurs in any table (no information).

    Notes
    -----
    With the observed events ``O = a`` of the first group, their expectation
    ``E = n1 m1/n`` and hypergeometric variance ``V = n1 n2 m1 m0/(n²(n-1))`` (``m1``
    events, ``m0`` non-events, ``n`` participants of the table), the pooled log odds
    ratio is ``Σ(O - E)/ΣV`` with variance ``1/ΣV`` [9]_; the study weights are ``V``. Q
    is the sum of ``(y_i - θ̂)²/v_i`` over the study-level Peto log odds ratios
    ``y_i = (O - E)/V``, ``v_i = 1/V`` (computed with `add`/`to`, as metafor). Peto's
    method is accurate when events are rare, the groups balanced and the effect not
    large (Bradburn et al. 2007).

    References
    ----------
    .. [9] Yusuf et al. (1985), Prog Cardiovasc Dis 27(5):335-371.

    Examples
    --------
    >>> import ketameta
    >>> res = ketameta.pool_peto(ai="tpos", bi="tneg", ci="cpos", di="cneg",
    ...                          data=ketameta.datasets.bcg())
    >>> round(res.estimate, 4), round(res.se, 4), round(res.q, 4)
    (-0.4744, 0.0407, 167.7302)
    """
    opt = _options("PETO", level, add, to, drop00, True, "sato", ("PETO",))
    given = {"ai": ai, "bi": bi, "ci": ci, "di": di, "n1i": n1i, "n2i": n2i}
    return _single("peto", PetoResult, given, data, opt, labels, nan_policy)


# ---------------------------------------------------------------------------------------------
# many meta-analyses at once

#: the primary statistics of an analysis (computed by the engine; the batch results derive
#: the others, ``fixed.DERIVED``, on access)
_PRIMARY = ("estimate", "se", "q", "deviance", "k", "k_yi", "loglik", "loglik_reml")
_OR_TESTS = ("cmh", "cochran", "tarone", "tarone_df", "breslow_day")
#: doubles per (chunk × k) working array: 256 KiB (the engine keeps ~40 of them alive; at
#: this size they stay in the caches and the allocator reuses them from chunk to chunk —
#: 1 MiB arrays, as pool_many's, measured 30-50 % slower here)
_CHUNK_DOUBLES = 2**15


def _primary_fields(model: str, measure: str) -> tuple[str, ...]:
    if model == "mh" and measure == "OR":
        return _PRIMARY + _OR_TESTS
    if model == "mh" and measure == "IRR":
        return (*_PRIMARY, "cmh")
    return _PRIMARY


def _derived_property(name: str) -> property:
    needs = fixed.DERIVED[name]

    def get(self: BatchBinaryResult) -> Any:
        arrays = [getattr(self, n) for n in needs]
        if any(a is None for a in arrays):
            return None
        from .batch import _dask, _is_dask

        def compute(*blocks: Any) -> FloatArray:
            with np.errstate(all="ignore"):
                stats = dict(zip(needs, blocks, strict=True))
                return np.asarray(fixed.derive(name, stats, self.level), dtype=np.float64)

        if _is_dask(arrays[0]):
            return _dask().map_blocks(compute, *arrays, dtype=np.float64)
        return compute(*arrays)

    get.__doc__ = f"``{name}`` of each analysis, derived on access (see :class:`MHResult`)."
    return property(get)


@attrs.frozen(kw_only=True)
class BatchBinaryResult:
    """Results of :func:`pool_mh_many` and :func:`pool_peto_many`: one array per statistic,
    one entry per meta-analysis.

    The arrays have the shape of the analyses (the cell arrays' shape without the study
    axis); NumPy arrays, or lazy Dask arrays for Dask input (see :meth:`compute`). The
    statistics are those of :class:`MHResult` / :class:`PetoResult`: the engine's
    primary ones are stored (``estimate``, ``se``, ``q``, ``k``, ``k_yi``, the
    log-likelihoods and, for ``measure="OR"``, the test statistics; the MH test for
    ``"IRR"``; otherwise ``None``), the others (``statistic``, ``pvalue``, CI, ``q_df``,
    ``q_pvalue``, ``i2``, ``h2``, AIC/BIC/AICc, test p-values) are derived from them on
    access, as the weights of :class:`~ketameta.BatchPoolResult` are. ``failed`` maps
    the flat index of each analysis that could not be pooled to the reason (its
    statistics are NaN). ``result[i]`` is the :class:`MHResult` (:class:`PetoResult`) of
    analysis ``i`` (flat index), as the single-analysis function gives it for the studies
    present in that row.
    """

    estimate: Any
    se: Any
    q: Any
    deviance: Any
    k: Any
    k_yi: Any
    loglik: Any
    loglik_reml: Any
    cmh: Any = None
    cochran: Any = None
    tarone: Any = None
    tarone_df: Any = None
    breslow_day: Any = None
    cells: tuple[Any, ...] = attrs.field(repr=False, eq=False)
    cell_names: tuple[str, ...]
    status: Any = attrs.field(repr=False, eq=False)
    failed: dict[int, str] = attrs.field(factory=dict)
    model: str
    measure: str
    level: float
    add: tuple[float, float]
    to: tuple[str, str]
    drop00: tuple[bool, bool]
    correct: bool = True
    rd_variance: str = "sato"

    statistic = _derived_property("statistic")
    pvalue = _derived_property("pvalue")
    ci_lower = _derived_property("ci_lower")
    ci_upper = _derived_property("ci_upper")
    q_df = _derived_property("q_df")
    q_pvalue = _derived_property("q_pvalue")
    i2 = _derived_property("i2")
    h2 = _derived_property("h2")
    aic = _derived_property("aic")
    bic = _derived_property("bic")
    aicc = _derived_property("aicc")
    cmh_pvalue = _derived_property("cmh_pvalue")
    cochran_pvalue = _derived_property("cochran_pvalue")
    tarone_pvalue = _derived_property("tarone_pvalue")
    breslow_day_pvalue = _derived_property("breslow_day_pvalue")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the batch of analyses."""
        return tuple(self.estimate.shape)

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the statistics this result has (primary and derived)."""
        primary = _primary_fields(self.model, self.measure)
        derived = tuple(n for n, needs in fixed.DERIVED.items() if set(needs) <= set(primary))
        return primary + derived

    def compute(self, **kwargs: Any) -> BatchBinaryResult:
        """For Dask-backed results: compute every field (``dask.compute``) and return a
        NumPy-backed result with ``failed`` filled in. NumPy results return themselves."""
        from .batch import _dask_compute, _is_dask

        if not _is_dask(self.estimate):
            return self
        compute = _dask_compute()
        primary = _primary_fields(self.model, self.measure)
        values = compute(*(getattr(self, n) for n in primary), self.status, *self.cells, **kwargs)
        arrays = dict(zip(primary, values[: len(primary)], strict=True))
        status = values[len(primary)]
        cells = tuple(values[len(primary) + 1 :])
        failed = _batch_failures(
            arrays["estimate"].reshape(-1),
            arrays["k"].reshape(-1),
            status.reshape(-1),
            _why(self.model, self.measure),
        )
        return attrs.evolve(self, **arrays, status=status, cells=cells, failed=failed)

    def __getitem__(self, index: int) -> MHResult | PetoResult:
        res = self.compute()
        n = len(res)
        if not isinstance(index, int | np.integer) or not -n <= index < n:
            msg = f"index must be an integer in [-{n}, {n}), got {index!r}"
            raise IndexError(msg)
        i = int(index) % n
        if i in res.failed:
            msg = f"meta-analysis {i} was not pooled: {res.failed[i]}"
            raise ValueError(msg)
        k_axis = res.cells[0].shape[-1]
        row = [np.asarray(c).reshape(-1, k_axis)[i] for c in res.cells]
        present = ~np.any([np.isnan(c) for c in row], axis=0)
        kwargs: dict[str, Any] = dict(zip(res.cell_names, (c[present] for c in row), strict=True))
        kwargs.update(
            level=res.level,
            add=res.add,
            to=res.to,
            drop00=res.drop00,
            labels=[f"Study {j + 1}" for j in np.flatnonzero(present)],
        )
        if res.model == "peto":
            return pool_peto(**kwargs)
        return pool_mh(
            **kwargs, measure=res.measure, correct=res.correct, rd_variance=res.rd_variance
        )

    def to_dict(self) -> dict[str, Any]:
        """The statistics as plain Python lists (JSON-serialisable; NaN becomes ``None``)."""
        res = self.compute()
        d: dict[str, Any] = {n: plain(np.asarray(getattr(res, n))) for n in res.fields}
        d |= {
            "failed": {str(i): r for i, r in res.failed.items()},
            "model": res.model,
            "measure": res.measure,
            "level": res.level,
            "add": list(res.add),
            "to": list(res.to),
            "drop00": list(res.drop00),
        }
        if res.model == "mh":
            d |= {"correct": res.correct, "rd_variance": res.rd_variance}
        return d

    def to_frame(self) -> Any:
        """A pandas DataFrame with one row per analysis (requires pandas)."""
        pd = import_pandas()
        res = self.compute()
        return pd.DataFrame({n: np.asarray(getattr(res, n)).reshape(-1) for n in res.fields})


def _batch_failures(estimate: Any, k: Any, status: Any, why: str = "") -> dict[int, str]:
    """Why each analysis with a NaN estimate was not pooled, by flat index."""
    failed: dict[int, str] = {}
    for i in np.flatnonzero(np.isnan(estimate)):
        if k[i] == 0:
            failed[int(i)] = fixed.STATUS_REASONS[fixed.NO_TABLES]
        elif status is not None and int(status[i]) in fixed.STATUS_REASONS:
            failed[int(i)] = fixed.STATUS_REASONS[int(status[i])].format(why=why)
        else:
            failed[int(i)] = "the pooled estimate is undefined or has no variance"
    return failed


def _as_batch_array(x: Any, name: str) -> FloatArray:
    """Cells of many tables as a new float64 array (every input class of
    :func:`~ketameta._validation.as_float`: masked entries and NA are absent studies)."""
    return as_float(x, name)


def _validate_batch_cells(
    names: tuple[str, ...], arrays: Mapping[str, FloatArray], offset: int = 0
) -> None:
    """Reject ±inf, negative counts, non-positive sizes / person-times and events beyond
    the group sizes, naming the analysis (`offset` + row) and study (NaN marks an absent
    study)."""
    shape = arrays[names[0]].shape
    if arrays[names[0]].size == 0:
        return
    for name in names:
        arr = arrays[name]
        # one quick test per array (NaN-ignoring extremes); the detailed one if it fails
        low, high = np.fmin.reduce(arr, axis=None), np.fmax.reduce(arr, axis=None)
        positive = name in ("t1i", "t2i", "n1i", "n2i")
        if (low > 0 if positive else low >= 0) and high < np.inf:
            continue
        if np.isnan(low):  # every value NaN: every study absent
            continue
        with np.errstate(invalid="ignore"):
            if name in ("t1i", "t2i", "n1i", "n2i"):
                bad, what = ~(arr > 0) & ~np.isnan(arr), "positive and finite"
                bad |= np.isinf(arr)
            else:
                bad, what = ~(arr >= 0) & ~np.isnan(arr), "non-negative and finite"
                bad |= np.isinf(arr)
        if bad.any():
            row, col = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), shape)
            msg = (
                f"`{name}` must be {what} (NaN marks an absent study); analysis {row + offset}, "
                f"study {col} has {float(arr[row, col])!r}"
            )
            raise ValueError(msg)
    pairs = [("ai", "n1i"), ("ci", "n2i")] if "n1i" in names else []
    for count, size in pairs:
        with np.errstate(invalid="ignore"):
            bad = arrays[count] > arrays[size]
        if bad.any():
            row, col = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), shape)
            msg = f"`{count}` cannot exceed `{size}`; analysis {row + offset}, study {col}"
            raise ValueError(msg)
    if names == _TABLE_CELLS:
        for first, second in (("ai", "bi"), ("ci", "di")):
            total = arrays[first] + arrays[second]
            if np.fmin.reduce(total, axis=None) != 0:
                continue
            empty = total == 0
            if empty.any():
                row, col = np.unravel_index(int(np.flatnonzero(empty.reshape(-1))[0]), shape)
                msg = (
                    f"analysis {row + offset}, study {col} has no participants in a group "
                    f"(`{first}` + `{second}` = 0)"
                )
                raise ValueError(msg)


def _fit_rows(
    names: tuple[str, ...],
    arrays: Mapping[str, FloatArray],
    *,
    model: str,
    opt: _Options,
    chunk_size: int | None,
    workers: int = 1,
) -> dict[str, FloatArray]:
    """Pool every row of the 2-D cell arrays (NaN = absent study) chunk by chunk, `workers`
    chunks at a time in threads (NumPy releases the GIL in its loops; each chunk writes
    its own rows, so the result does not depend on `workers`); the statistics as arrays,
    and the status of each row under ``"_status"``. An invalid cell raises for the first
    chunk (in row order) that has one."""
    first = arrays[names[0]]
    m, k = first.shape
    fields = _primary_fields(model, opt.measure)
    out = {name: np.empty(m) for name in (*fields, "_status")}
    if chunk_size is None:
        chunk_size = max(256, _CHUNK_DOUBLES // max(k, 1))

    def fit_chunk(start: int) -> None:
        rows = slice(start, min(start + chunk_size, m))
        # column-major chunks: the sums over the studies then run over contiguous memory
        raw = tuple(np.asfortranarray(arrays[n][rows]) for n in names)
        _validate_batch_cells(names, dict(zip(names, raw, strict=True)), rows.start)
        if names == ("ai", "n1i", "ci", "n2i"):
            raw = (raw[0], raw[1] - raw[0], raw[2], raw[3] - raw[2])
        # (a NaN cell makes its table's total NaN: the cells are validated, without ±inf)
        total = (raw[0] + raw[1]) + (raw[2] + raw[3])
        if not np.isnan(total.sum()):
            cells, present = raw, None
        else:
            present = np.isfinite(total)
            # (fmax ignores NaN: the absent cells become 0 without a data-dependent branch)
            cells = tuple(np.fmax(c, 0.0) for c in raw)
        with np.errstate(all="ignore"):
            res = _fit(cells, present, model=model, opt=opt)
        for name in fields:
            out[name][rows] = res[name]
        status = np.where(np.asarray(res["k"]) == 0, fixed.NO_TABLES, res["status"])
        out["_status"][rows] = status
        bad = status != fixed.OK
        if bad.any():
            for name in fields:
                if name not in ("k", "k_yi"):
                    out[name][rows][bad] = np.nan

    starts = range(0, m, chunk_size)
    if workers > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(workers, len(starts))) as executor:
            futures = [executor.submit(fit_chunk, start) for start in starts]
            for future in futures:  # (in row order: the first invalid chunk raises)
                future.result()
    else:
        for start in starts:
            fit_chunk(start)
    return out


def _prepare_batch(
    given: dict[str, Any], allow_person_time: bool, what: str, axis: int
) -> tuple[tuple[str, ...], dict[str, FloatArray], tuple[int, ...]]:
    sig = _signature(given, allow_person_time, what)
    arrays = {n: _as_batch_array(given[n], n) for n in sig}
    shape = arrays[sig[0]].shape
    for n in sig[1:]:
        if arrays[n].shape != shape:
            msg = f"`{n}` has shape {arrays[n].shape} but `{sig[0]}` has shape {shape}"
            raise ValueError(msg)
    if len(shape) == 0:
        msg = f"`{sig[0]}` must have a study axis"
        raise ValueError(msg)
    moved = {n: np.moveaxis(a, axis, -1) for n, a in arrays.items()}
    batch_shape = moved[sig[0]].shape[:-1]
    k = moved[sig[0]].shape[-1]
    flat = {n: a.reshape(-1, k) for n, a in moved.items()}  # (validated chunk by chunk)
    return sig, flat, batch_shape


def _many(
    model: str,
    given: dict[str, Any],
    opt: _Options,
    axis: int,
    chunk_size: int | None,
    workers: Any = None,
) -> BatchBinaryResult:
    what = "pool_mh_many" if model == "mh" else "pool_peto_many"
    from .batch import _resolve_workers

    n_workers = _resolve_workers(workers)
    if chunk_size is not None and not (
        isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0
    ):
        msg = f"`chunk_size` must be a positive integer, got {chunk_size!r}"
        raise ValueError(msg)
    from .batch import _is_dask

    if any(_is_dask(v) for v in given.values() if v is not None):
        return _many_dask(model, given, opt, axis, chunk_size, what)
    sig, flat, batch_shape = _prepare_batch(given, model == "mh", what, axis)
    _check_measure_inputs(model, sig, opt)
    out = _fit_rows(sig, flat, model=model, opt=opt, chunk_size=chunk_size, workers=n_workers)
    status = out.pop("_status")
    failed = _batch_failures(out["estimate"], out["k"], status, _why(model, opt.measure))
    k = next(iter(flat.values())).shape[-1]
    names = _PERSON_TIME if sig == _PERSON_TIME else _TABLE_CELLS
    cells = tuple(flat[n] for n in sig)
    if sig == ("ai", "n1i", "ci", "n2i"):
        cells = (cells[0], cells[1] - cells[0], cells[2], cells[3] - cells[2])
    return BatchBinaryResult(
        **{n: a.reshape(batch_shape) for n, a in out.items()},
        status=status.reshape(batch_shape),
        cells=tuple(c.reshape((*batch_shape, k)) for c in cells),
        cell_names=names,
        failed=failed,
        model=model,
        measure="PETO" if model == "peto" else opt.measure,
        level=opt.level,
        add=opt.add,
        to=opt.to,
        drop00=opt.drop00,
        correct=opt.correct,
        rd_variance=opt.rd_variance,
    )


def _why(model: str, measure: str) -> str:
    """The engine's reason for an undefined estimate, for the `failed` messages."""
    one = np.zeros((1, 1))
    cells = (one, one + 1.0, one, one + 1.0)
    with np.errstate(all="ignore"):
        if model == "peto":
            return str(fixed.peto(*cells, None)["why"])
        return str(fixed.mantel_haenszel(*cells, None, measure=measure, correct=True)["why"])


def _check_measure_inputs(model: str, sig: tuple[str, ...], opt: _Options) -> None:
    if model == "mh" and (sig == _PERSON_TIME) != (opt.measure in ("IRR", "IRD")):
        need = "x1i, t1i, x2i, t2i" if opt.measure in ("IRR", "IRD") else "2x2 tables"
        msg = f"measure {opt.measure!r} needs {need}"
        raise TypeError(msg)


def _many_dask(
    model: str,
    given: dict[str, Any],
    opt: _Options,
    axis: int,
    chunk_size: int | None,
    what: str,
) -> BatchBinaryResult:
    from .batch import _dask

    da = _dask()
    sig = _signature(given, model == "mh", what)
    _check_measure_inputs(model, sig, opt)
    arrays = [da.asarray(given[n]) for n in sig]
    shape = arrays[0].shape
    for n, a in zip(sig[1:], arrays[1:], strict=True):
        if a.shape != shape:
            msg = f"`{n}` has shape {a.shape} but `{sig[0]}` has shape {shape}"
            raise ValueError(msg)
    if len(shape) != 2:
        msg = "Dask input must be 2-D: (analyses, studies)"
        raise ValueError(msg)
    arrays = [da.moveaxis(a, axis, -1) for a in arrays]
    if len(arrays[0].chunks[1]) != 1:
        msg = "the study axis of Dask input must be a single chunk (chunk along the analyses)"
        raise ValueError(msg)
    arrays = [arrays[0]] + [a.rechunk(arrays[0].chunks) for a in arrays[1:]]
    fields = _primary_fields(model, opt.measure)

    def block(*blocks: FloatArray) -> FloatArray:
        flat = {n: np.asarray(b, dtype=np.float64) for n, b in zip(sig, blocks, strict=True)}
        res = _fit_rows(sig, flat, model=model, opt=opt, chunk_size=chunk_size)
        return np.column_stack([res[n] for n in (*fields, "_status")])

    packed = da.map_blocks(
        block, *arrays, dtype=np.float64, chunks=(arrays[0].chunks[0], (len(fields) + 1,))
    )
    cols = {n: packed[:, i] for i, n in enumerate(fields)}
    status = packed[:, len(fields)]
    cells = tuple(arrays)
    if sig == ("ai", "n1i", "ci", "n2i"):
        cells = (cells[0], cells[1] - cells[0], cells[2], cells[3] - cells[2])
    return BatchBinaryResult(
        **cols,
        status=status,
        cells=cells,
        cell_names=_PERSON_TIME if sig == _PERSON_TIME else _TABLE_CELLS,
        failed={},
        model=model,
        measure="PETO" if model == "peto" else opt.measure,
        level=opt.level,
        add=opt.add,
        to=opt.to,
        drop00=opt.drop00,
        correct=opt.correct,
        rd_variance=opt.rd_variance,
    )


def pool_mh_many(
    ai: Any = None,
    bi: Any = None,
    ci: Any = None,
    di: Any = None,
    n1i: Any = None,
    n2i: Any = None,
    *,
    x1i: Any = None,
    t1i: Any = None,
    x2i: Any = None,
    t2i: Any = None,
    measure: str = "OR",
    level: float = 0.95,
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
    correct: bool = True,
    rd_variance: str = "sato",
    axis: int = -1,
    chunk_size: int | None = None,
    workers: int | None = None,
) -> BatchBinaryResult:
    """Many Mantel–Haenszel meta-analyses at once: :func:`pool_mh` vectorised over rows.

    Parameters
    ----------
    ai, bi, ci, di, n1i, n2i, x1i, t1i, x2i, t2i : array_like or dask.array.Array
        Cell arrays of the same shape with the studies on `axis`; every other axis indexes
        independent meta-analyses. NaN in any cell marks an absent study (so analyses may
        have different numbers of studies). 2-D Dask arrays chunked along the analyses
        give lazy, Dask-backed results (the study axis must be a single chunk).
    measure, level, add, to, drop00, correct, rd_variance
        As in :func:`pool_mh`.
    axis : int
        The study axis.
    chunk_size : int, optional
        Analyses pooled together (bounds the working memory); default ``2**15 // k``
        (at least 256).
    workers : int, optional
        Threads pooling chunks in parallel (NumPy releases the GIL in its loops; the
        results do not depend on it). ``None`` or ``-1``: every CPU available to the
        process (as :func:`ketameta.pool_many`); ``1``: no threads. Dask input is
        parallelised by Dask's scheduler instead.

    Returns
    -------
    BatchBinaryResult

    Notes
    -----
    The closed forms of :func:`pool_mh`, computed by the same code on ``(chunk, k)``
    arrays (absent studies contribute exactly 0 to every sum), so ``result[i]`` equals
    :func:`pool_mh` of row ``i``'s present studies. Analyses whose estimate is undefined
    (see :func:`pool_mh`) or that have no study get NaN statistics and are listed in
    ``failed``; they never spoil the others. Warnings of the single function (omitted
    studies) are not repeated per row.

    References
    ----------
    .. [1] Mantel & Haenszel (1959), J Natl Cancer Inst 22(4):719-748.
    .. [2] Robins, Breslow & Greenland (1986), Biometrics 42(2):311-323.
    .. [3] Greenland & Robins (1985), Biometrics 41(1):55-68.

    Examples
    --------
    >>> import numpy as np, ketameta
    >>> rng = np.random.default_rng(3)
    >>> n = rng.integers(20, 200, size=(1000, 10)).astype(float)
    >>> ai, ci = rng.binomial(n.astype(int), 0.1), rng.binomial(n.astype(int), 0.15)
    >>> res = ketameta.pool_mh_many(ai=ai, n1i=n, ci=ci, n2i=n)
    >>> res.estimate.shape
    (1000,)
    >>> one = ketameta.pool_mh(ai=ai[7], n1i=n[7], ci=ci[7], n2i=n[7])
    >>> bool(np.isclose(res.estimate[7], one.estimate, rtol=1e-12))
    True
    """
    opt = _options(measure, level, add, to, drop00, correct, rd_variance, MH_MEASURES)
    given = {
        "ai": ai,
        "bi": bi,
        "ci": ci,
        "di": di,
        "n1i": n1i,
        "n2i": n2i,
        "x1i": x1i,
        "t1i": t1i,
        "x2i": x2i,
        "t2i": t2i,
    }
    return _many("mh", given, opt, axis, chunk_size, workers)


def pool_peto_many(
    ai: Any = None,
    bi: Any = None,
    ci: Any = None,
    di: Any = None,
    n1i: Any = None,
    n2i: Any = None,
    *,
    level: float = 0.95,
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
    axis: int = -1,
    chunk_size: int | None = None,
    workers: int | None = None,
) -> BatchBinaryResult:
    """Many Peto meta-analyses at once: :func:`pool_peto` vectorised over rows.

    Parameters and conventions as :func:`pool_mh_many` (NaN marks an absent study).

    Returns
    -------
    BatchBinaryResult

    References
    ----------
    .. [1] Yusuf et al. (1985), Prog Cardiovasc Dis 27(5):335-371.

    Examples
    --------
    >>> import numpy as np, ketameta
    >>> ai = np.array([[4, 6, 3], [1, 0, 2]]); ci = np.array([[11, 29, 11], [3, 2, np.nan]])
    >>> n = np.full((2, 3), 150.0)
    >>> res = ketameta.pool_peto_many(ai=ai, n1i=n, ci=ci, n2i=n)
    >>> res.k.tolist()
    [3.0, 2.0]
    """
    opt = _options("PETO", level, add, to, drop00, True, "sato", ("PETO",))
    given = {"ai": ai, "bi": bi, "ci": ci, "di": di, "n1i": n1i, "n2i": n2i}
    return _many("peto", given, opt, axis, chunk_size, workers)


# ---------------------------------------------------------------------------------------------
# generalized linear mixed models

#: measures, models and methods of :func:`pool_glmm` (metafor's ``rma.glmm``)
GLMM_MEASURES = _glmm.GLMM_MEASURES
GLMM_MODELS = _glmm.GLMM_MODELS
_GLMM_INPUTS = {
    "OR": (_TABLE_CELLS, ("ai", "n1i", "ci", "n2i")),
    "IRR": (_PERSON_TIME,),
    "PLO": (("xi", "ni"),),
    "IRLN": (("xi", "ti"),),
}
_GLMM_MODEL_NAMES = {
    "UM.FS": "Unconditional Model with Fixed Study Effects",
    "UM.RS": "Unconditional Model with Random Study Effects",
    "CM.EL": "Conditional Model with Exact Likelihood",
    "CM.AL": "Conditional Model with Approximate Likelihood",
}


@attrs.frozen(kw_only=True, repr=False)
class GLMMResult:
    """The result of :func:`pool_glmm`: a binomial-normal or Poisson-normal meta-analysis.

    Attributes
    ----------
    measure, model, method : str
        ``"OR"``, ``"IRR"``, ``"PLO"`` or ``"IRLN"``; ``"UM.FS"``, ``"UM.RS"``,
        ``"CM.EL"`` or ``"CM.AL"`` (the model used: ``"UM.FS"`` for PLO and IRLN);
        ``"ML"`` (random effects) or ``"EE"`` (equal effects).
    estimate, se, statistic, pvalue, ci_lower, ci_upper : float
        The pooled log odds ratio (log rate ratio, logit proportion, log rate), its
        standard error (inverse observed information of every parameter), z test and
        Wald confidence interval; :attr:`exp_estimate` / :attr:`exp_ci` back-transform.
    tau2, sigma2 : float
        The variance of the random effects of the effect (0 for ``"EE"``) and, for
        ``"UM.RS"``, of the random study effects (NaN otherwise).
    i2, h2 : float
        I² (percent) and H² from τ² and the typical within-study variance of the
        study-level effects (as metafor).
    qe_wald, qe_lrt, qe_df, qe_wald_pvalue, qe_lrt_pvalue : float
        Tests of heterogeneity: Wald test of equal study effects in the saturated model,
        and the likelihood-ratio test of the equal-effects against the saturated model.
        For ``"UM.RS"`` the saturated model keeps the random study effects and gives each
        study a fixed effect of the first group (dummy coded, as metafor); where a first
        group has no events (or only events) that effect diverges: the LRT uses the
        supremum of the saturated likelihood and the Wald statistic is NaN.
    loglik, loglik_equal, loglik_saturated : float
        The maximised marginal log-likelihood (including the binomial/Poisson/
        hypergeometric constants), and those of the equal-effects and saturated models.
    deviance, aic, bic, aicc, n_parameters : float
        ``2(ll_sat - ll)`` and the information criteria with all parameters counted (the
        fixed study effects of ``"UM.FS"`` included, as metafor).
    k : int
        Studies in the model.
    nagq : int
        Gauss-Hermite nodes per random-effect dimension (1: the Laplace approximation; 0
        for equal-effects models without random effects).
    converged : bool
    iterations : int
    yi, vi : ndarray
        Study-level effects and variances (as :func:`ketameta.escalc`, with `add`/`to`),
        one per input row (NaN where omitted, dropped or undefined).
    cells, cell_names, labels, omitted, dropped
        The input, its labels, rows omitted for missing values, labels of studies dropped
        as double zeros.
    """

    measure: str
    model: str
    method: str
    estimate: float
    se: float
    statistic: float
    pvalue: float
    ci_lower: float
    ci_upper: float
    tau2: float
    sigma2: float
    i2: float
    h2: float
    qe_wald: float
    qe_lrt: float
    qe_df: int
    qe_wald_pvalue: float
    qe_lrt_pvalue: float
    loglik: float
    loglik_equal: float
    loglik_saturated: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    n_parameters: int
    k: int
    nagq: int
    converged: bool
    iterations: int
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    cells: FloatArray = array_field()
    cell_names: tuple[str, ...]
    labels: tuple[str, ...] = attrs.field(converter=_strings)
    omitted: tuple[int, ...] = attrs.field(converter=_indices, default=())
    dropped: tuple[str, ...] = attrs.field(converter=_strings, default=())
    level: float = 0.95
    add: float = 0.5
    to: str = "only0"
    drop00: bool = True

    @property
    def is_ratio(self) -> bool:
        """Whether the estimate is on a log (or logit) scale."""
        return True

    @property
    def exp_estimate(self) -> float:
        """The back-transformed estimate: the odds ratio, rate ratio, proportion
        (inverse logit) or rate."""
        return _back(self.measure, self.estimate)

    @property
    def exp_ci(self) -> tuple[float, float]:
        """The back-transformed confidence limits."""
        return (_back(self.measure, self.ci_lower), _back(self.measure, self.ci_upper))

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (JSON-serialisable; NaN/inf become ``None``)."""
        return plain(self)  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """A one-row pandas DataFrame of the scalar fields (requires pandas)."""
        pd = import_pandas()
        d = self.to_dict()
        return pd.DataFrame([{k: v for k, v in d.items() if not isinstance(v, list | dict)}])

    def __repr__(self) -> str:
        return (
            f"GLMMResult(measure={self.measure!r}, model={self.model!r}, "
            f"method={self.method!r}, k={self.k}, estimate={self.estimate:.4g}, "
            f"tau2={self.tau2:.4g}, loglik={self.loglik:.6g})"
        )

    def summary(self) -> str:
        """The printed summary, as metafor's ``summary(rma.glmm(...))``."""
        if self.method == "EE":
            head = f"Equal-Effects Model (k = {self.k})"
        else:
            head = f"Random-Effects Model (k = {self.k}; tau^2 estimator: ML)"
        lines = [head]
        if self.measure in ("OR", "IRR"):
            lines.append(f"Model Type: {_GLMM_MODEL_NAMES[self.model]}")
        quad = (
            "none"
            if self.nagq == 0
            else (
                "Laplace approximation"
                if self.nagq == 1
                else f"{self.nagq}-point adaptive Gauss-Hermite quadrature per random effect"
            )
        )
        lines += ["", f"Integration: {quad}", ""]
        stats = (self.loglik, self.deviance, self.aic, self.bic, self.aicc)
        lines += table_lines(_FIT_HEADERS, [[_fmt(x) for x in stats]], [10, 11, 11, 11, 11])
        lines.append("")
        if self.method == "ML":
            lines.append(f"tau^2 (estimated amount of total heterogeneity): {self.tau2:.4f}")
            lines.append(
                f"tau (square root of estimated tau^2 value):      {math.sqrt(self.tau2):.4f}"
            )
        lines.append(f"I^2 (total heterogeneity / total variability):   {self.i2:.4f}%")
        lines.append(f"H^2 (total variability / sampling variability):  {self.h2:.4f}")
        if self.model == "UM.RS" and self.measure in ("OR", "IRR"):
            lines += [
                "",
                f"sigma^2 (estimated amount of study level variability): {self.sigma2:.4f}",
                f"sigma (square root of estimated sigma^2 value):        "
                f"{math.sqrt(self.sigma2):.4f}",
            ]
        lines += ["", "Tests for Heterogeneity:"]
        for name, stat, p in (
            ("Wld", self.qe_wald, self.qe_wald_pvalue),
            ("LRT", self.qe_lrt, self.qe_lrt_pvalue),
        ):
            p_text = format_p(p)
            p_text = "< .0001" if p_text.startswith("<") else f"= {p_text}"
            lines.append(f"{name}(df = {self.qe_df}) = {_fmt(stat)}, p-val {p_text}")
        lines += ["", "Model Results:", ""]
        lines += _model_table(self)
        names = {"OR": "OR", "IRR": "IRR", "PLO": "proportion", "IRLN": "rate"}
        lo, hi = self.exp_ci
        lines += [
            "",
            f"Back-transformed ({names[self.measure]}): {self.exp_estimate:.4f} "
            f"[{lo:.4f}, {hi:.4f}]",
        ]
        if self.omitted:
            lines.append(
                f"Omitted studies (missing values): {name_studies(self.omitted, self.labels)}"
            )
        if self.dropped:
            lines.append(f"Dropped (double zero): {', '.join(self.dropped)}")
        if not self.converged:
            lines.append("Warning: the optimisation did not meet its convergence criterion")
        return "\n".join(lines)


def _chi2_p(df: int, x: float) -> float:
    return float(fixed.chi2_sf(float(df), x)) if df > 0 and math.isfinite(x) else math.nan


def _back(measure: str, x: float) -> float:
    if measure == "PLO":
        return float(1.0 / (1.0 + math.exp(-x)))
    return math.exp(x)


def pool_glmm(
    ai: Any = None,
    bi: Any = None,
    ci: Any = None,
    di: Any = None,
    n1i: Any = None,
    n2i: Any = None,
    *,
    x1i: Any = None,
    t1i: Any = None,
    x2i: Any = None,
    t2i: Any = None,
    xi: Any = None,
    ni: Any = None,
    ti: Any = None,
    data: Mapping[str, Any] | None = None,
    measure: str = "OR",
    model: str = "UM.FS",
    method: str = "ML",
    level: float = 0.95,
    add: float = 0.5,
    to: str = "only0",
    drop00: bool = True,
    nagq: int | None = None,
    labels: Sequence[str] | str | None = None,
    nan_policy: str = "omit",
) -> GLMMResult:
    """Meta-analysis of 2×2 tables, proportions or counts by a generalized linear (mixed)
    model, fitted by maximum likelihood (metafor's ``rma.glmm``).

    Parameters
    ----------
    ai, bi, ci, di, n1i, n2i : array_like or str
        2×2 tables (``measure="OR"``), as in :func:`pool_mh`.
    x1i, t1i, x2i, t2i : array_like or str
        Events and person-times of two groups (``measure="IRR"``).
    xi, ni, ti : array_like or str
        Events and sizes (``"PLO"``) or person-times (``"IRLN"``) of single groups.
    data : mapping, optional
        A dict of columns or a pandas DataFrame; string arguments name its columns.
    measure : {"OR", "IRR", "PLO", "IRLN"}
        Log odds ratio, log incidence rate ratio, logit proportion, log incidence rate.
    model : {"UM.FS", "UM.RS", "CM.EL", "CM.AL"}
        For OR and IRR: unconditional model with fixed study effects (logistic / Poisson
        regression with a study intercept), with random study effects (a random
        intercept ``u_i ~ N(0, σ²)``), the conditional model with the exact
        (non-central hypergeometric) likelihood, or its binomial approximation [1]_ [2]_
        [3]_. For IRR both conditional models are the same binomial model [4]_. Ignored
        for PLO and IRLN.
    method : {"ML", "EE"}
        Random effects of the group effect (``b_i ~ N(0, τ²)``, coded ±1/2 as metafor's
        ``coding=1/2``; τ² by maximum likelihood) or an equal-effects model.
    level : float
        Confidence level.
    add, to : float, str
        For the study-level effects shown beside the fit (and the typical within-study
        variance of I²), as :func:`ketameta.escalc`; the model itself uses the counts.
    drop00 : bool
        Leave out studies with no events (or only events) in both groups (IRR: no events),
        which carry no information on the effect in the UM.FS and conditional models.
    nagq : int, optional
        Gauss-Hermite nodes per random-effect dimension (adaptive quadrature; 1 is the
        Laplace approximation). Default: 41 for one random effect (the log-likelihood
        then agrees with R's ``integrate`` to about 1e-12), 15 per dimension (225 nodes)
        for the two of ``"UM.RS"``. metafor uses lme4's ``nAGQ=7`` by default,
        ``1`` (Laplace) for ``"UM.RS"`` with ``method="ML"``, and R's ``integrate`` for
        ``"CM.EL"`` with OR.
    labels : sequence of str or str, optional
        Study labels (or the column of `data` holding them).
    nan_policy : {"omit", "raise"}
        Studies with a missing value are left out with an
        :class:`~ketameta.OmittedStudiesWarning`, or raise.

    Returns
    -------
    GLMMResult

    Raises
    ------
    ValueError
        When an estimate does not exist: no events at all, events in every participant,
        or separation (e.g. no events in one group of every table).
    ConvergenceError
        When the Newton-Raphson iterations do not converge.

    Notes
    -----
    The marginal likelihood of each study integrates the random effects out by adaptive
    Gauss-Hermite quadrature [5]_ (nodes at the mode of the integrand, scaled by its
    curvature), exactly for the quadrature's polynomial degree; its maximum over all
    parameters (the fixed study effects of UM.FS included) is found by Newton-Raphson
    with derivatives from the posterior moments of the random effects [6]_. Standard errors
    are the inverse observed information of all parameters. The likelihood-ratio test of
    heterogeneity compares the equal-effects model with the saturated one; the Wald test
    is that of equal study effects in the saturated model (studies whose saturated
    estimate is infinite, a zero cell, carry no weight in it).

    References
    ----------
    .. [1] van Houwelingen, Zwinderman & Stijnen (1993), Stat Med 12(24):2273-2284.
       https://doi.org/10.1002/sim.4780122405
    .. [2] Stijnen, Hamza & Ozdemir (2010), Stat Med 29(29):3046-3067.
       https://doi.org/10.1002/sim.4040
    .. [3] Jackson, Law, Stijnen, Viechtbauer & White (2018), Stat Med 37(7):1059-1085.
       https://doi.org/10.1002/sim.7588
    .. [4] Bagos & Nikolopoulos (2009), Int J Biostat 5(1).
       https://doi.org/10.2202/1557-4679.1168
    .. [5] Liu & Pierce (1994), Biometrika 81(3):624-629.
       https://doi.org/10.1093/biomet/81.3.624
    .. [6] Louis (1982), J R Stat Soc B 44(2):226-233.

    Examples
    --------
    The BCG trials, the unconditional model with fixed study effects (metafor with
    ``nAGQ=25``: -0.7450, τ² = 0.2949):

    >>> import ketameta
    >>> res = ketameta.pool_glmm(ai="tpos", bi="tneg", ci="cpos", di="cneg",
    ...                          data=ketameta.datasets.bcg())
    >>> round(res.estimate, 4), round(res.tau2, 4)
    (-0.745, 0.2949)
    """
    code = check_choice(measure, "measure", GLMM_MEASURES)
    model = check_choice(model, "model", GLMM_MODELS)
    method = check_choice(method, "method", _glmm.GLMM_METHODS)
    lv = check_level(level)
    if code in ("PLO", "IRLN"):
        model = "UM.FS"
    drop_value: object = drop00
    if not isinstance(drop_value, bool | np.bool_):
        msg = f"`drop00` must be True or False, got {drop00!r}"
        raise TypeError(msg)
    q = 2 if model == "UM.RS" and method == "ML" and code in ("OR", "IRR") else 1
    if nagq is None:
        nodes = _glmm.DEFAULT_NAGQ[q - 1]
    elif isinstance(nagq, bool) or not isinstance(nagq, int | np.integer) or not 1 <= nagq <= 100:
        msg = f"`nagq` must be an integer from 1 to 100, got {nagq!r}"
        raise ValueError(msg)
    else:
        nodes = int(nagq)
    opt = _options(
        code if code in ("OR", "IRR") else "OR", lv, add, to, drop00, True, "sato", MH_MEASURES
    )
    given = {
        "ai": ai,
        "bi": bi,
        "ci": ci,
        "di": di,
        "n1i": n1i,
        "n2i": n2i,
        "x1i": x1i,
        "t1i": t1i,
        "x2i": x2i,
        "t2i": t2i,
        "xi": xi,
        "ni": ni,
        "ti": ti,
    }
    nan_policy = check_choice(nan_policy, "nan_policy", ("omit", "raise"))
    names, arrays = _glmm_inputs(code, given, data)
    k_all = arrays[0].shape[0]
    if k_all == 0:
        msg = f"no studies: `{names[0]}` is empty"
        raise ValueError(msg)
    labs = _labels(labels, data, k_all)
    missing = np.zeros(k_all, dtype=bool)
    for arr in arrays:
        missing |= np.isnan(arr)
    omitted = tuple(int(i) for i in np.flatnonzero(missing))
    if omitted:
        named = name_studies(omitted, None if labels is None else labs)
        have = "has" if len(omitted) == 1 else "have"
        if nan_policy == "raise":
            msg = f"{named} {have} missing values (nan_policy='raise')"
            raise ValueError(msg)
        count = len(omitted)
        warnings.warn(
            f"{count} {'study' if count == 1 else 'studies'} omitted: {named} {have} "
            "missing values",
            OmittedStudiesWarning,
            stacklevel=2,
        )
    used = ~missing
    cells = {n: a[used] for n, a in zip(names, arrays, strict=True)}
    # study-level effects (for I² and display), as escalc with add/to/drop00
    yi_all = np.full(k_all, np.nan)
    vi_all = np.full(k_all, np.nan)
    es_cells = tuple(cells[n] for n in names)
    es_measure = code
    with np.errstate(all="ignore"):
        if code in ("OR", "IRR"):
            yi, vi, okf = fixed.study_effects(
                es_cells, None, code, add=opt.add[0], to=opt.to[0], drop00=drop00
            )
        else:
            yi, vi, okf = _single_group_effects(code, es_cells, opt.add[0], opt.to[0])
    yi_all[used] = np.where(okf > 0, yi, np.nan)
    vi_all[used] = np.where(okf > 0, vi, np.nan)
    del es_measure
    keep = np.ones(int(used.sum()), dtype=bool)
    dropped: tuple[str, ...] = ()
    if drop00 and code in ("OR", "IRR"):
        dz = fixed.double_zero(es_cells, code == "IRR")
        keep = ~dz
        used_idx = np.flatnonzero(used)
        dropped = tuple(labs[i] for i in used_idx[dz])
    fit_cells = {n: c[keep] for n, c in cells.items()}
    if not fit_cells[names[0]].size:
        msg = "no studies left to fit (every study omitted or dropped as a double zero)"
        raise ValueError(msg)
    _check_estimable(code, model, fit_cells)
    design = _glmm.build(code, model, fit_cells)
    with np.errstate(all="ignore"):
        try:
            out = _glmm.fit(design, method, nodes)
        except _glmm.SeparationError as exc:
            msg = f"pool_glmm: {exc}"
            raise ValueError(msg) from exc
    res = out["fit"]
    if not res.converged and res.iterations >= _glmm._MAX_NEWTON:
        what = f"GLMM ({model}, {method})"
        raise ConvergenceError(what, res.iterations, "Newton-Raphson on the marginal likelihood")
    k = int(fit_cells[names[0]].size)
    p = design.random.p
    theta = float(res.beta[-1]) if code in ("OR", "IRR") else float(res.beta[0])
    index = p - 1 if code in ("OR", "IRR") else 0
    var = float(res.vcov[index, index])
    se = math.sqrt(var) if var >= 0 else math.nan
    lam = res.lam
    tau2 = float(lam[-1] ** 2) if method == "ML" else 0.0
    sigma2 = float(lam[0] ** 2) if model == "UM.RS" and code in ("OR", "IRR") else math.nan
    # I² and H² from τ² and the typical within-study variance (Higgins & Thompson 2002)
    ok = okf > 0
    w = 1.0 / vi[ok]
    kk = int(ok.sum())
    v_typical = typical_variance(w) if kk > 1 else math.nan
    i2 = 100.0 * tau2 / (tau2 + v_typical) if tau2 > 0 else 0.0
    h2 = (tau2 + v_typical) / v_typical if tau2 > 0 else 1.0
    # tests of heterogeneity
    ll_eq = out["equal"].loglik
    if model == "UM.RS" and code in ("OR", "IRR"):
        with np.errstate(all="ignore"):
            try:
                qe_wald, qe_lrt = _glmm.saturated_random_study(design, out["equal"], nodes)
            except _glmm.SeparationError:
                qe_wald = qe_lrt = math.nan
    else:
        qe_lrt = 2.0 * (design.saturated_loglik - ll_eq)
        est, sv = design.study_estimates, design.study_variances
        finite = np.isfinite(est) & np.isfinite(sv) & (sv > 0)
        ws = 1.0 / sv[finite]
        mean = np.sum(ws * est[finite]) / ws.sum() if finite.any() else math.nan
        qe_wald = float(np.sum(ws * (est[finite] - mean) ** 2)) if finite.any() else math.nan
    qe_df = k - 1
    crit = critical_z(lv)
    n_par = (
        p
        + design.random.s * 0
        + design.n_nuisance
        + (lam.size if method == "ML" else (1 if design.equal.q else 0))
    )
    ll = res.loglik
    n_obs = design.n_obs
    aicc_n = max(n_obs, n_par + 2)
    with np.errstate(all="ignore"):
        z = theta / se
    return GLMMResult(
        measure=code,
        model=model,
        method=method,
        estimate=theta,
        se=se,
        statistic=z,
        pvalue=math.erfc(abs(z) / math.sqrt(2.0)) if math.isfinite(z) else math.nan,
        ci_lower=theta - crit * se,
        ci_upper=theta + crit * se,
        tau2=tau2,
        sigma2=sigma2,
        i2=float(i2),
        h2=float(h2),
        qe_wald=qe_wald,
        qe_lrt=qe_lrt,
        qe_df=qe_df,
        qe_wald_pvalue=float(fixed.chi2_sf(float(qe_df), qe_wald)) if qe_df > 0 else math.nan,
        qe_lrt_pvalue=float(fixed.chi2_sf(float(qe_df), max(qe_lrt, 0.0)))
        if qe_df > 0
        else math.nan,
        loglik=ll,
        loglik_equal=ll_eq,
        loglik_saturated=design.saturated_loglik,
        deviance=2.0 * (design.saturated_loglik - ll),
        aic=-2.0 * ll + 2.0 * n_par,
        bic=-2.0 * ll + n_par * math.log(n_obs),
        aicc=-2.0 * ll + 2.0 * n_par * aicc_n / (aicc_n - n_par - 1.0),
        n_parameters=n_par,
        k=k,
        nagq=res.nagq,
        converged=res.converged,
        iterations=res.iterations,
        yi=yi_all,
        vi=vi_all,
        cells=np.column_stack(arrays),
        cell_names=names,
        labels=labs,
        omitted=omitted,
        dropped=dropped,
        level=lv,
        add=opt.add[0],
        to=opt.to[0],
        drop00=bool(drop00),
    )


def _glmm_inputs(
    code: str, given: dict[str, Any], data: Mapping[str, Any] | None
) -> tuple[tuple[str, ...], list[FloatArray]]:
    """The validated input columns of a GLMM measure (NaN allowed: missing)."""
    sigs = _GLMM_INPUTS[code]
    for sig in sigs:
        if all(given.get(n) is not None for n in sig):
            extra = sorted(n for n, v in given.items() if v is not None and n not in sig)
            if extra:
                msg = (
                    f"measure {code!r} takes {', '.join(sig)}; also got "
                    f"{', '.join(f'`{e}`' for e in extra)}"
                )
                raise TypeError(msg)
            arrays = {n: _resolve(n, given[n], data) for n in sig}
            if sig in (_TABLE_CELLS, ("ai", "n1i", "ci", "n2i"), _PERSON_TIME):
                cells = _cells_from(sig, arrays)
                names = _PERSON_TIME if sig == _PERSON_TIME else _TABLE_CELLS
                return names, list(cells)
            first = arrays[sig[0]]
            for n in sig[1:]:
                if arrays[n].shape != first.shape:
                    msg = (
                        f"`{n}` has shape {arrays[n].shape} but `{sig[0]}` has shape {first.shape}"
                    )
                    raise ValueError(msg)
            check_nonnegative(arrays["xi"], "xi")
            size = sig[1]
            check_positive(arrays[size], size)
            if size == "ni":
                with np.errstate(invalid="ignore"):
                    bad = arrays["xi"] > arrays["ni"]
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    msg = f"`xi` cannot exceed `ni`; study {i} has xi={arrays['xi'][i]!r}"
                    raise ValueError(msg)
            if first.shape[0] == 0:
                msg = f"no studies: `{sig[0]}` is empty"
                raise ValueError(msg)
            return sig, [arrays[n] for n in sig]
    need = " or ".join("(" + ", ".join(s) + ")" for s in sigs)
    msg = f"measure {code!r} needs {need}"
    raise TypeError(msg)


def _single_group_effects(
    code: str, cells: tuple[FloatArray, ...], add: float, to: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Logit proportions (PLO) or log rates (IRLN) with `add` for zero counts, as
    :func:`ketameta.escalc`; the third array flags defined effects."""
    x, size = cells
    zero = (x == 0) | ((x == size) if code == "PLO" else np.zeros(x.shape, dtype=bool))
    if to == "all":
        x_add = x + add
        m_add = size - x + add
    elif to == "none" or add == 0.0:
        x_add, m_add = x, size - x
    else:
        rows = zero if to == "only0" else np.full(x.shape, bool(zero.any()))
        x_add = x + add * rows
        m_add = size - x + add * rows
    if code == "PLO":
        yi = np.log(x_add / m_add)
        vi = 1.0 / x_add + 1.0 / m_add
    else:
        if to in ("only0", "all", "if0all") and add:
            rows = (
                np.ones(x.shape, bool)
                if to == "all"
                else (zero if to == "only0" else np.full(x.shape, bool(zero.any())))
            )
            x_add = x + add * rows
        else:
            x_add = x
        yi = np.log(x_add / size)
        vi = 1.0 / x_add
    ok = np.isfinite(yi) & np.isfinite(vi) & (vi > 0)
    return np.where(ok, yi, 0.0), np.where(ok, vi, 1.0), ok.astype(np.float64)


def _check_estimable(code: str, model: str, cells: dict[str, FloatArray]) -> None:
    """Named errors for data whose maximum likelihood estimate does not exist."""
    if code == "OR":
        a, b, c, d = (cells[n] for n in _TABLE_CELLS)
        if a.sum() + c.sum() == 0:
            msg = "no events in any study: the odds ratio is not estimable"
            raise ValueError(msg)
        if b.sum() + d.sum() == 0:
            msg = "events in every participant of every study: the odds ratio is not estimable"
            raise ValueError(msg)
        for name, values in (("first", (a, b)), ("second", (c, d))):
            if values[0].sum() == 0 or values[1].sum() == 0:
                msg = (
                    f"separation: {'no events' if values[0].sum() == 0 else 'only events'} "
                    f"in the {name} group of every study, so the odds ratio is infinite"
                )
                raise ValueError(msg)
    elif code == "IRR":
        x1, x2 = cells["x1i"], cells["x2i"]
        if x1.sum() == 0 or x2.sum() == 0:
            msg = (
                "separation: no events in one group of every study, the rate ratio is 0 or "
                "infinite"
            )
            raise ValueError(msg)
    elif code == "PLO":
        x, n = cells["xi"], cells["ni"]
        if x.sum() == 0 or (n - x).sum() == 0:
            msg = "no events (or only events) in every study: the logit proportion is infinite"
            raise ValueError(msg)
    elif cells["xi"].sum() == 0:
        msg = "no events in any study: the log rate is not estimable"
        raise ValueError(msg)
