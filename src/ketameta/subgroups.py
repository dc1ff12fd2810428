"""Subgroup analyses: one meta-analysis per subgroup and the test for subgroup differences
(metafor's ``rma(yi, vi, subset=)`` per subgroup and ``rma(yi, vi, mods = ~ factor(g))``;
meta's ``update(m, subgroup = g)``).

:func:`subgroups` pools the studies of every subgroup (all subgroups in one call of the
engine, one row each), pools all studies, and tests whether the subgroup means differ:

* ``tau2="separate"`` (meta's default): every subgroup has its own τ², and the test is
  Cochran's Q of the subgroup estimates with their standard errors (Borenstein et al.
  2009, ch. 19);
* ``tau2="common"`` (metafor's meta-regression on the group factor): one τ² for all
  subgroups, and the test is the omnibus Wald test of the factor (χ², or F under a t-based
  test); the subgroup estimates under that τ² are the cell means of the factor model;
* a number: τ² fixed at that value in every subgroup (as :func:`ketameta.pool`'s `tau2`).

References
----------
.. [1] Borenstein, M., Hedges, L. V., Higgins, J. P. T., & Rothstein, H. R. (2009).
   Introduction to Meta-Analysis, chapter 19: Subgroup analyses. Wiley.
   https://doi.org/10.1002/9780470743386
.. [2] Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
   J Stat Softw, 36(3), 1-48. https://doi.org/10.18637/jss.v036.i03
.. [3] Knapp, G., & Hartung, J. (2003). Improved tests for a random effects
   meta-regression with a single covariate. Stat Med, 22(17), 2693-2710.
   https://doi.org/10.1002/sim.1482
.. [4] Schwarzer, G. meta: General Package for Meta-Analysis (``?metagen``: ``subgroup``,
   ``tau.common``; ``?meta-object``: ``Q.b.random``). https://CRAN.R-project.org/package=meta
"""

from __future__ import annotations

import math
import warnings
from typing import Any, cast

import attrs
import numpy as np

from . import _engine, _transf
from ._engine.inference import test_critical_value, two_sided_p
from ._modelmatrix import _category_info, _is_missing, _level_label, _object_values
from ._results import (
    array_eq,
    array_field,
    format_p,
    format_p_with_sign,
    import_pandas,
    plain,
    readonly,
    table_lines,
)
from ._typing import ArrayLike, FloatArray
from ._validation import (
    as_float,
    check_choice,
    check_length,
    default_labels,
    strings,
)
from ._warnings import DegenerateDataWarning, LocalMaximumWarning, SmallSampleWarning
from .batch import _percent_weights
from .effect_sizes import EffectSizes
from .metareg import MetaRegResult, _column, metareg
from .pooling import (
    CORE_COUNT_FIELDS,
    CORE_FLOAT_FIELDS,
    PoolResult,
    _indices,
    _no_inputs,
    _resolve_inputs,
    omitted_lines,
    pool,
    prepare_studies,
    result_from_core,
    validate_options,
)

__all__ = ["TAU2_MODES", "CommonTau2Fit", "SubgroupResult", "subgroups"]

#: how τ² is treated across subgroups (a number instead fixes τ² in every subgroup)
TAU2_MODES = ("separate", "common")

IntArray = np.ndarray[Any, np.dtype[np.intp]]


def _levels(x: Any) -> tuple[Any, ...]:
    return tuple(x)


def _results(x: Any) -> tuple[PoolResult, ...]:
    return tuple(x)


def _ints(x: Any) -> Any:
    arr = np.array(x, dtype=np.intp, copy=True)
    arr.setflags(write=False)
    return arr


@attrs.frozen(kw_only=True)
class CommonTau2Fit:
    """The subgroups under one common τ² (``tau2="common"``): the cell means of the
    meta-regression on the group factor (metafor's ``rma(yi, vi, mods = ~ factor(g) - 1)``).

    Attributes
    ----------
    estimate, se, statistic, pvalue, ci_lower, ci_upper : ndarray, shape (G,)
        Per subgroup (in the order of ``levels``): the estimate under the common τ², its
        standard error (Knapp-Hartung-adjusted for ``test="knha"``, with the residual
        variance of the whole model), z or t statistic, p-value and confidence limits.
    df : float
        Degrees of freedom of the t reference distribution, ``k - G`` (``inf`` for z).
    tau2 : float
        The common (residual) τ².
    model : MetaRegResult
        The meta-regression on the group factor with the first level as reference
        (metafor's ``rma(yi, vi, mods = ~ factor(g))``): its ``qm`` is the test for
        subgroup differences; residual heterogeneity, I², ``predict`` and the rest are
        there.
    """

    estimate: FloatArray = array_field()
    se: FloatArray = array_field()
    statistic: FloatArray = array_field()
    pvalue: FloatArray = array_field()
    ci_lower: FloatArray = array_field()
    ci_upper: FloatArray = array_field()
    df: float
    tau2: float
    model: MetaRegResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-serialisable); the model as its coefficient table and
        residual statistics."""
        d = {f.name: getattr(self, f.name) for f in attrs.fields(type(self)) if f.name != "model"}
        if self.model is not None:
            m = self.model
            d["model"] = {
                "names": m.names,
                "coef": m.coef,
                "se": m.se,
                "statistic": m.statistic,
                "pvalue": m.pvalue,
                "ci_lower": m.ci_lower,
                "ci_upper": m.ci_upper,
                "tau2": m.tau2,
                "tau2_se": m.tau2_se,
                "i2": m.i2,
                "h2": m.h2,
                "q": m.q,
                "q_df": m.q_df,
                "q_pvalue": m.q_pvalue,
                "qm": m.qm,
                "qm_df": m.qm_df,
                "qm_pvalue": m.qm_pvalue,
            }
        return plain(d)  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True, repr=False)
class SubgroupResult:
    """The result of :func:`subgroups`.

    Attributes
    ----------
    levels : tuple
        The subgroup labels, in order (a pandas Categorical's order, else sorted as R sorts
        factor levels); ``level_names`` gives them as printed.
    per_group : tuple of PoolResult
        One pooled result per subgroup (in the order of `levels`), each with its own τ²
        (or the fixed τ²); a single-study subgroup is reported too (τ² = 0, the z test).
        ``result[label]`` looks one up by its label.
    overall : PoolResult
        All studies pooled.
    q_between, q_between_df, q_between_pvalue : float, int, float
        The test for subgroup differences. Separate τ² (and fixed τ²): Cochran's Q of the
        subgroup estimates, χ² with G - 1 df. Common τ²: the omnibus test of the group
        factor (``QM``; for t-based tests ``QM/(G - 1)`` referred to F(G - 1, k - G), as
        metafor). NaN with a single subgroup.
    q_between_distribution : {"chi2", "F"}
    q_between_df_residual : float
        The F test's denominator df ``k - G`` (NaN for χ²).
    tau2_mode : {"separate", "common", "fixed"}
    common : CommonTau2Fit or None
        The subgroup estimates under one common τ² (``tau2="common"`` only).
    yi, vi : ndarray
        The studies used (omitted studies removed), in input order.
    group : ndarray of int
        The subgroup of each study used (an index into `levels`).
    omitted : tuple of int
        Studies left out (missing `yi`, `vi` or group label), as input indices.
    name : str
        What the groups are called (a column name, or ``"group"``).
    method, test, level, control
        The settings used.
    measure, labels, omitted_reasons, inputs, input_names
        As in :class:`~ketameta.pooling.ModelFit`: the measure, one label per input
        study, why the omitted ones were left out, the escalc input columns.
    """

    levels: tuple[Any, ...] = attrs.field(converter=_levels)
    per_group: tuple[PoolResult, ...] = attrs.field(converter=_results)
    overall: PoolResult
    q_between: float
    q_between_df: int
    q_between_pvalue: float
    q_between_distribution: str
    q_between_df_residual: float
    tau2_mode: str
    common: CommonTau2Fit | None = None
    yi: FloatArray = array_field()
    vi: FloatArray = array_field()
    group: Any = attrs.field(converter=_ints, eq=attrs.cmp_using(eq=np.array_equal))
    omitted: tuple[int, ...] = attrs.field(converter=_indices)
    name: str
    method: str
    test: str
    level: float
    control: dict[str, Any] = attrs.field(factory=dict, eq=False)
    measure: str | None = None
    labels: tuple[str, ...] = attrs.field(converter=strings, default=())
    omitted_reasons: tuple[str, ...] = attrs.field(converter=strings, default=())
    inputs: FloatArray = attrs.field(
        converter=readonly, eq=attrs.cmp_using(eq=array_eq), factory=_no_inputs
    )
    input_names: tuple[str, ...] = attrs.field(converter=strings, default=())

    @property
    def study_labels(self) -> tuple[str, ...]:
        """One label per input study (the defaults "Study 1", ... when none were kept)."""
        n = self.k + len(self.omitted)
        return self.labels if len(self.labels) == n else default_labels(n)

    @property
    def used(self) -> np.ndarray[Any, np.dtype[np.intp]]:
        """The input indices of the studies used, in input order."""
        keep = np.ones(self.k + len(self.omitted), dtype=bool)
        keep[list(self.omitted)] = False
        return np.flatnonzero(keep)

    def studies(self, transf: Any = None, level: float | None = None) -> Any:
        """One row per input study, omitted ones included (requires pandas): as
        :meth:`ketameta.PoolResult.studies` (the weights those of the overall model), with
        the ``group`` of each study (None where omitted)."""
        frame = attrs.evolve(
            self.overall,
            omitted=tuple(self.omitted),
            omitted_reasons=self.omitted_reasons,
            labels=self.study_labels,
            inputs=self.inputs,
            input_names=self.input_names,
        ).studies(transf, level)
        groups: list[str | None] = [None] * len(frame)
        for i, g in zip(self.used, self.group, strict=True):
            groups[int(i)] = self.level_names[int(g)]
        frame.insert(1, "group", groups)
        return frame

    @property
    def level_names(self) -> tuple[str, ...]:
        """The subgroup labels as printed (numbers as R prints factor levels of numbers)."""
        return _names(self.levels)

    @property
    def k(self) -> int:
        """Number of studies used."""
        return int(self.yi.shape[0])

    def __getitem__(self, label: Any) -> PoolResult:
        """The pooled result of the subgroup `label` (a level or its printed name)."""
        for i, (value, name) in enumerate(zip(self.levels, self.level_names, strict=True)):
            if _same_label(label, value) or (isinstance(label, str) and label == name):
                return self.per_group[i]
        msg = f"no subgroup {label!r}; the subgroups are {list(self.level_names)}"
        raise KeyError(msg)

    def _estimates(self) -> tuple[list[float], list[float], list[float], list[float]]:
        """Per subgroup: estimate, se, CI as the analysis reports them (the cell means under
        the common τ², or each subgroup's own fit)."""
        if self.common is not None:
            c = self.common
            return (
                c.estimate.tolist(),
                c.se.tolist(),
                c.ci_lower.tolist(),
                c.ci_upper.tolist(),
            )
        r = self.per_group
        return (
            [g.estimate for g in r],
            [g.se for g in r],
            [g.ci_lower for g in r],
            [g.ci_upper for g in r],
        )

    def test_text(self) -> str:
        """The test for subgroup differences in one line, as :meth:`summary` prints it."""
        if len(self.levels) == 1:
            return "Test for subgroup differences: none (only one subgroup)"
        if math.isnan(self.q_between):
            return "Test for subgroup differences: undefined (a standard error of 0)"
        if self.q_between_distribution == "F":
            stat = (
                f"F(df1 = {self.q_between_df}, df2 = {self.q_between_df_residual:g}) = "
                f"{self.q_between:.4f}"
            )
        else:
            label = "QM" if self.tau2_mode == "common" else "Q"
            stat = f"{label}(df = {self.q_between_df}) = {self.q_between:.4f}"
        tau = "" if self.method == "EE" else f" ({self.tau2_mode} tau^2)"
        p_text = format_p_with_sign(self.q_between_pvalue)
        return f"Test for subgroup differences{tau}: {stat}, p-val {p_text}"

    def summary(self, transf: Any = "auto") -> str:
        """One row per subgroup (k, estimate, SE, CI, τ², I², Q), the overall model and the
        test for subgroup differences, in the style of meta's printout; then the estimates
        back-transformed by `transf` (as :meth:`ketameta.PoolResult.summary`: ``"auto"``
        the measure's own back-transformation, None none) and the omitted studies by
        label."""
        names = list(self.level_names)
        width = max(8, *(len(n) for n in names))
        ee = self.method == "EE"
        if ee:
            model = "Equal-effects model per subgroup"
        elif self.tau2_mode == "common":
            model = f"Mixed-effects model with a common tau^2 (estimator: {self.method})"
        elif self.tau2_mode == "fixed":
            model = f"Random-effects model per subgroup (tau^2 fixed at {self.overall.tau2:g})"
        else:
            model = f"Random-effects model per subgroup (separate tau^2; estimator: {self.method})"
        if self.test != "z":
            model += f"; test = {self.test!r}"
        scale = "" if self.measure is None else f"; {_transf.scale(self.measure).name}"
        lines = [
            f"Subgroup analysis by {self.name} (k = {self.k}; {len(names)} subgroups{scale})",
            model,
            "",
        ]
        est, se, lo, hi = self._estimates()
        common = self.common is not None
        headers = ["k", "estimate", "se", "ci.lb", "ci.ub"]
        widths = [5, 10, 9, 9, 9]
        if not common:
            headers += [*([] if ee else ["tau^2"]), "I^2", "Q", "p(Q)"]
            widths += [*([] if ee else [9]), 8, 10, 8]

        def row(r: PoolResult, *values: float) -> list[str]:
            cells = [str(r.k), *(f"{x:.4f}" for x in values)]
            if not common:
                cells += [] if ee else [f"{r.tau2:.4f}"]
                cells += [f"{r.i2:.2f}%", f"{r.q:.4f}", format_p(r.q_pvalue)]
            return cells

        o = self.overall
        rows = [row(r, *x) for r, *x in zip(self.per_group, est, se, lo, hi, strict=True)]
        rows.append(row(o, o.estimate, o.se, o.ci_lower, o.ci_upper))
        stub = [f"{n:{width}s}" for n in (*names, "overall")]
        lines += table_lines(headers, rows, widths, stub=stub)
        single = [n for n, r in zip(names, self.per_group, strict=True) if r.k == 1]
        if single and not common:
            lines.append(
                f"(single-study subgroups: {', '.join(single)}: tau^2 = 0"
                + (", z test)" if self.test != "z" else ")")
            )
        lines.append("")
        if common:
            c = self.common
            assert c is not None
            m = c.model
            if m is not None and not ee:
                se_txt = "" if math.isnan(m.tau2_se) else f" (SE = {m.tau2_se:.4f})"
                lines.append(f"tau^2 (common to the subgroups): {m.tau2:.4f}{se_txt}")
                lines.append(f"I^2 (residual heterogeneity): {m.i2:.2f}%")
            if m is not None:
                lines.append(
                    f"Test for residual heterogeneity: QE(df = {m.q_df}) = {m.q:.4f}, "
                    f"p-val {format_p_with_sign(m.q_pvalue)}"
                )
        lines.append(self.test_text())
        lines += self._back_lines(transf, names, width)
        omitted = omitted_lines(self.omitted, self.omitted_reasons, self.study_labels)
        if omitted:
            lines += ["", *omitted]
        return "\n".join(lines)

    def _back_lines(self, transf: Any, names: list[str], width: int) -> list[str]:
        """The subgroup and overall estimates back-transformed (as :meth:`summary`)."""
        t = _transf.resolve(transf, self.measure)
        if t.name is None:
            return []
        est, _, lo, hi = self._estimates()
        o = self.overall
        n_pooled, _ = o._transf_n()
        nn = n_pooled if t.needs_n else None
        if t.needs_n:  # (Freeman-Tukey: each subgroup with its own harmonic mean)
            nn = [g._transf_n()[0] for g in self.per_group]  # type: ignore[assignment]
        rows = [
            (names[g], *(float(t(x, None if nn is None else nn[g])) for x in (e, a, b)))  # type: ignore[index]
            for g, (e, a, b) in enumerate(zip(est, lo, hi, strict=True))
        ]
        rows.append(
            ("overall", *(float(t(x, n_pooled)) for x in (o.estimate, o.ci_lower, o.ci_upper)))
        )
        scale = t.scale
        lines = [
            "",
            f"{scale[:1].upper()}{scale[1:]} (back-transformed: {t.name}):",
            "",
        ]
        cells = [[f"{x:.4f}" for x in row[1:]] for row in rows]
        stub = [f"{row[0]:{width}s}" for row in rows]
        return lines + table_lines(["estimate", "ci.lb", "ci.ub"], cells, [10, 9, 9], stub=stub)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-serialisable; NaN/inf become ``None``): ``per_group`` maps each
        subgroup's printed name to its pooled result."""
        names = self.level_names
        return {
            "name": self.name,
            "levels": list(names),
            "per_group": {n: r.to_dict() for n, r in zip(names, self.per_group, strict=True)},
            "overall": self.overall.to_dict(),
            "q_between": plain(self.q_between),
            "q_between_df": self.q_between_df,
            "q_between_pvalue": plain(self.q_between_pvalue),
            "q_between_distribution": self.q_between_distribution,
            "q_between_df_residual": plain(self.q_between_df_residual),
            "tau2_mode": self.tau2_mode,
            "common": None if self.common is None else self.common.to_dict(),
            "yi": plain(self.yi),
            "vi": plain(self.vi),
            "group": [names[i] for i in self.group.tolist()],
            "omitted": list(self.omitted),
            "omitted_reasons": list(self.omitted_reasons),
            "measure": self.measure,
            "labels": list(self.study_labels),
            "method": self.method,
            "test": self.test,
            "level": self.level,
            "control": plain(self.control),
        }

    def to_frame(self, transf: Any = None) -> Any:
        """One row per subgroup and a last row ``overall`` (requires pandas): the pooled
        results' statistics; with a common τ² also the subgroup estimates under it
        (``common_estimate``, ``common_se``, ``common_ci_lower``, ``common_ci_upper``,
        ``common_pvalue``; NaN on the overall row, which has its own fit).

        With `transf` (as :meth:`ketameta.PoolResult.to_frame`), the estimates and their
        confidence and prediction limits are back-transformed (each subgroup's with its
        own sample sizes where the transformation needs them), the standard errors are
        NaN and a ``scale`` column names the scale.
        """
        pd = import_pandas()
        columns = (
            "k",
            "estimate",
            "se",
            "statistic",
            "pvalue",
            "ci_lower",
            "ci_upper",
            "pred_lower",
            "pred_upper",
            "tau2",
            "i2",
            "h2",
            "q",
            "q_df",
            "q_pvalue",
        )
        fits = [*self.per_group, self.overall]
        frame = pd.DataFrame(
            {c: [getattr(r, c) for r in fits] for c in columns},
            index=pd.Index([*self.level_names, "overall"], name=self.name),
        )
        if self.common is not None:
            c = self.common
            for field in ("estimate", "se", "pvalue", "ci_lower", "ci_upper"):
                frame[f"common_{field}"] = [*getattr(c, field).tolist(), math.nan]
        backs = [fit.back_transform(transf) for fit in fits]
        if backs[-1]["transf"] is not None:
            for name in ("estimate", "ci_lower", "ci_upper", "pred_lower", "pred_upper"):
                frame[name] = [b[name] for b in backs]
            frame["se"] = math.nan
            if self.common is not None:
                t = _transf.resolve(transf, self.measure)
                ns = [fit._transf_n()[0] for fit in self.per_group]
                for name in ("estimate", "ci_lower", "ci_upper"):
                    values = getattr(self.common, name).tolist()
                    frame[f"common_{name}"] = [
                        float(t(v, n if t.needs_n else None))
                        for v, n in zip(values, ns, strict=True)
                    ] + [math.nan]
                frame["common_se"] = math.nan
        frame["scale"] = backs[-1]["scale"]
        return frame

    def __repr__(self) -> str:
        return (
            f"SubgroupResult(name={self.name!r}, levels={list(self.level_names)}, "
            f"method={self.method!r}, tau2_mode={self.tau2_mode!r}, "
            f"q_between={self.q_between:.4g}, q_between_pvalue={self.q_between_pvalue:.3g})"
        )


def _same_label(label: Any, value: Any) -> bool:
    """Whether `label` names the level `value` (a bool only a bool, a number a number)."""
    if isinstance(value, bool) or isinstance(label, bool | np.bool_):
        return isinstance(label, bool | np.bool_) and bool(label) == value
    if isinstance(value, int | float):
        return isinstance(label, int | float | np.integer | np.floating) and label == value
    try:
        return bool(label == value)
    except (TypeError, ValueError):
        return False


def _names(levels: tuple[Any, ...]) -> tuple[str, ...]:
    """Printed names of the levels: R's printing of numbers, ``TRUE``/``FALSE``; full
    precision where two numbers would print alike."""
    names = tuple(_level_label(v) for v in levels)
    if len(set(names)) < len(names):
        names = tuple(
            repr(v) if isinstance(v, float) else n for v, n in zip(levels, names, strict=True)
        )
    return names


# -- group labels -------------------------------------------------------------------------


def group_codes(groups: Any, name: str = "groups") -> tuple[list[Any], IntArray]:
    """The levels of `groups` and each study's level index (-1: a missing label).

    Strings (and pandas ``string``/object columns of strings) are sorted by code point;
    booleans are FALSE, TRUE; numbers are converted by the shared numeric conversion
    (:func:`ketameta._validation.as_float`: every number type, missing values, named
    errors for dates and the like) and sorted numerically; a pandas Categorical keeps its
    categories and their order. Missing labels: None, NaN, ``pd.NA``, masked entries.
    """
    if isinstance(groups, str | bytes):
        msg = (
            f"`{name}` must hold one label per study, got the string {groups!r} "
            "(a column name needs `data=`)"
        )
        raise TypeError(msg)
    if type(groups) is list and groups:
        fast = _plain_list_codes(groups)
        if fast is not None:
            return fast
    cats = _category_info(groups)
    if cats is not None:
        return cats[0], cats[1]
    if not _numeric_dtype(groups) and hasattr(groups, "__len__"):
        values = _object_values(groups)
        if values.ndim == 1:
            present = [(i, v) for i, v in enumerate(values) if not _is_missing(v)]
            strings = [isinstance(v, str) for _, v in present]
            if present and all(strings):
                return _codes(values, sorted({v for _, v in present}))
            if present and all(isinstance(v, bool | np.bool_) for _, v in present):
                logical = [None if _is_missing(v) else bool(v) for v in values]
                return _codes(logical, sorted({bool(v) for _, v in present}))
            if any(strings):
                i, v = next((i, v) for i, v in present if not isinstance(v, str))
                j, s = next((j, s) for j, s in present if isinstance(s, str))
                msg = (
                    f"`{name}` mixes strings and other labels (study {j}: {s!r}; study {i}: {v!r})"
                )
                raise TypeError(msg)
    x = as_float(groups, name)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        msg = f"`{name}` must be 1-dimensional (one label per study), got shape {x.shape}"
        raise ValueError(msg)
    bad = np.isinf(x)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = f"`{name}` must be finite (NaN marks a missing label); study {i} has {x[i]!r}"
        raise ValueError(msg)
    present_x = ~np.isnan(x)
    uniq, inverse = np.unique(x[present_x], return_inverse=True)
    codes = np.full(x.shape, -1, dtype=np.intp)
    codes[present_x] = inverse.reshape(-1)
    levels = [int(u) if float(u).is_integer() and abs(u) < 2.0**53 else float(u) for u in uniq]
    return levels, codes


def _plain_list_codes(groups: list[Any]) -> tuple[list[Any], IntArray] | None:
    """The levels and codes of a plain list of exact ``str`` or exact ``int`` labels (no
    missing value possible), as the general path gives them; None for anything else
    (booleans, NumPy scalars, None, floats, ints beyond ±2^53 go the general way, with its
    checks and messages). Strings: sorted by code point; ints: sorted numerically (as the
    general path's exact float conversion, which ints below 2^53 in magnitude pass)."""
    first = type(groups[0])
    if first is str:
        if not all(type(v) is str for v in groups):
            return None
        levels: list[Any] = sorted(set(groups))
        lookup = {lv: i for i, lv in enumerate(levels)}
        return levels, np.fromiter(map(lookup.__getitem__, groups), np.intp, len(groups))
    if first is int:
        if not all(type(v) is int for v in groups):
            return None
        if not (min(groups) > -(2**53) and max(groups) < 2**53):
            return None
        uniq, inverse = np.unique(np.array(groups, dtype=np.int64), return_inverse=True)
        return [int(u) for u in uniq.tolist()], inverse.reshape(-1).astype(np.intp, copy=False)
    return None


def _numeric_dtype(x: Any) -> bool:
    """Whether `x` has a NumPy or pandas dtype of numbers, booleans, dates or durations
    (converted by the numeric conversion, which names what it refuses); booleans are a
    factor."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return False
    return getattr(dtype, "kind", None) in ("i", "u", "f", "c", "m", "M")


def _codes(values: Any, levels: list[Any]) -> tuple[list[Any], IntArray]:
    lookup = {lv: i for i, lv in enumerate(levels)}
    codes = np.array([-1 if _is_missing(v) else lookup[v] for v in values], dtype=np.intp).reshape(
        -1
    )
    return levels, codes


# -- the analysis ---------------------------------------------------------------------------


def subgroups(
    yi: ArrayLike | EffectSizes | str,
    vi: ArrayLike | str | None = None,
    *,
    groups: Any,
    sei: ArrayLike | str | None = None,
    data: Any = None,
    method: str = "REML",
    test: str = "z",
    tau2: str | float = "separate",
    level: float = 0.95,
    nan_policy: str = "omit",
    control: dict[str, Any] | None = None,
    labels: Any = None,
    measure: str | None = None,
) -> SubgroupResult:
    """Subgroup analysis: a meta-analysis per subgroup, all studies pooled, and the test
    for subgroup differences [1]_ [2]_.

    Parameters
    ----------
    yi : array_like, EffectSizes or str
        Effect sizes, the result of :func:`ketameta.escalc` (then leave `vi` out), or a
        column name of `data`.
    vi : array_like or str, optional
        Sampling variances (or a column name of `data`).
    groups : array_like or str
        The subgroup of each study: labels (strings, numbers, booleans, a pandas
        Categorical, whose category order is kept), or a column name of `data`. Levels
        are sorted as R sorts factor levels (strings by code point, numbers
        numerically); levels without studies are left out. A study with a missing label
        (None, NaN, ``pd.NA``) is omitted with an :class:`~ketameta.OmittedStudiesWarning`
        naming it.
    sei : array_like or str, optional
        Standard errors instead of variances (keyword only).
    data : DataFrame or mapping, optional
        Where column names are looked up.
    method : str
        τ² estimator, as in :func:`ketameta.pool` (``"EE"``: the fixed-effect analysis).
    test : str
        ``"z"``, ``"t"``, ``"knha"`` (Knapp-Hartung [3]_) or ``"adhoc"``, for each
        subgroup, the overall model and the common-τ² model.
    tau2 : {"separate", "common"} or float
        ``"separate"`` (meta's default): every subgroup its own τ²; ``"common"``: one τ²
        for all subgroups, from the meta-regression on the group factor (metafor's
        ``rma(yi, vi, mods = ~ factor(g))``); a number: τ² fixed at that value in every
        subgroup and in the overall model (as :func:`ketameta.pool`'s `tau2`).
    level : float
        Confidence level.
    nan_policy : {"omit", "raise"}
        Studies with a missing `yi`, `vi` or group label are omitted with a warning, or
        raise.
    control : dict, optional
        Iteration settings, as in :func:`ketameta.pool`.
    labels : sequence of str or str, optional
        A label per input study (or a column of `data`), as in :func:`ketameta.pool`.
    measure : str, optional
        What raw `yi` are (an :func:`~ketameta.escalc` measure code), as in
        :func:`ketameta.pool`.

    Returns
    -------
    SubgroupResult

    Warns
    -----
    SmallSampleWarning
        A subgroup has one study: its τ² is 0 and a t-based test becomes z for it (as
        metafor: ``Setting argument test="z" since k=1.``); or there is only one subgroup
        (no test for subgroup differences).
    OmittedStudiesWarning
        Studies with a missing `yi`, `vi` or group label were left out.

    Notes
    -----
    Separate τ²: each subgroup g is pooled on its own, giving :math:`\\hat\\theta_g` with
    standard error :math:`s_g` (the Knapp-Hartung SE under ``test="knha"``; a single-study
    subgroup enters with its own :math:`y` and :math:`\\sqrt{v}`), and

    .. math:: Q_B = \\sum_g (\\hat\\theta_g - \\bar\\theta)^2 / s_g^2, \\qquad
              \\bar\\theta = \\sum_g \\hat\\theta_g s_g^{-2} / \\sum_g s_g^{-2},

    referred to χ²(G - 1) [1]_ [4]_ (meta's ``Q.b.random``; Cochran's Q of the subgroup
    estimates, computed by the engine's equal-effects fit of them). Common τ²: the
    mixed-effects model :math:`y_i = \\mu_{g(i)} + u_i + \\varepsilon_i` with one τ²; the
    test is the Wald test of :math:`\\mu_1 = \\dots = \\mu_G`, i.e. metafor's ``QM`` of
    ``mods = ~ factor(g)`` (χ²(G - 1), or F(G - 1, k - G) for t-based tests), and the
    subgroup estimates under that τ² are :math:`\\hat\\mu_g` with the covariance of the
    model (metafor's ``mods = ~ factor(g) - 1``). With ``method="EE"`` both tests are
    the same statistic.

    References
    ----------
    .. [1] Borenstein et al. (2009), Introduction to Meta-Analysis, ch. 19.
    .. [2] Viechtbauer (2010), J Stat Softw 36(3):1-48.
    .. [3] Knapp & Hartung (2003), Stat Med 22(17):2693-2710.
    .. [4] Schwarzer, meta: ``?metagen`` (``subgroup``, ``tau.common``).

    Examples
    --------
    The BCG vaccine trials by the method of treatment allocation:

    >>> import ketameta
    >>> dat = ketameta.datasets.bcg()
    >>> es = ketameta.escalc("RR", data=dat, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> res = ketameta.subgroups(es, groups="alloc", data=dat)
    >>> res.level_names
    ('alternate', 'random', 'systematic')
    >>> [round(r.estimate, 4) for r in res.per_group]
    [-0.5408, -0.971, -0.4242]
    >>> round(res.q_between, 4), res.q_between_df, round(res.q_between_pvalue, 4)
    (1.8614, 2, 0.3943)

    With one τ² for all subgroups (metafor: ``rma(yi, vi, mods = ~ factor(alloc))``):

    >>> common = ketameta.subgroups(es, groups="alloc", data=dat, tau2="common")
    >>> round(common.q_between, 4), round(common.common.tau2, 4)
    (1.7675, 0.3615)
    """
    if isinstance(tau2, str):
        mode = check_choice(tau2, "tau2", TAU2_MODES)
        fixed_value: Any = None
    else:
        mode, fixed_value = "fixed", tau2
    method, test, lv, tau2_fixed, nan_policy, ctl = validate_options(
        method, test, level, fixed_value, nan_policy, control
    )
    name = groups if isinstance(groups, str) else _series_name(groups)
    yi = _column(yi, data, "yi")
    vi = _column(vi, data, "vi")
    sei = _column(sei, data, "sei")
    groups = _column(groups, data, "groups")
    n_input = _resolve_inputs(yi, vi, sei).shape[1]  # (validates the shapes and types)
    all_levels, codes = group_codes(groups)
    check_length(cast("FloatArray", codes), "groups", n_input)  # (only its length is read)
    prep = prepare_studies(
        yi,
        vi,
        sei,
        nan_policy=nan_policy,
        stacklevel=3,
        also_missing=codes < 0,
        what="group label",
        labels=labels,
        measure=measure,
        data=data,
    )
    y, v, kept = prep.yi, prep.vi, prep.kept

    def subset(rows: Any) -> dict[str, Any]:  # the study fields of the studies `rows`
        info = prep.info
        inputs = info.get("inputs")
        return {
            "measure": info["measure"],
            "labels": [info["labels"][i] for i in rows],
            "inputs": inputs[rows] if inputs is not None and inputs.size else _no_inputs(),
            "input_names": info.get("input_names", ()),
        }

    used = codes[kept]
    present = np.flatnonzero(np.bincount(used, minlength=len(all_levels)))
    remap = np.full(len(all_levels), -1, dtype=np.intp)
    remap[present] = np.arange(present.size)
    group = remap[used]
    levels = [all_levels[i] for i in present]
    n_groups = len(levels)
    names = _names(tuple(levels))
    settings: dict[str, Any] = {"method": method, "level": lv, "control": dict(control or {})}

    overall = attrs.evolve(
        pool(y, v, method=method, test=test, level=lv, tau2=tau2_fixed, control=control),
        **subset(kept),
    )
    per_group = _fit_groups(
        y,
        v,
        group,
        n_groups,
        names,
        test=test,
        tau2_fixed=tau2_fixed,
        ctl=ctl,
        study=lambda members: subset(kept[members]),
        **settings,
    )
    df_residual = math.nan
    distribution = "chi2"
    common = None
    if n_groups == 1:
        warnings.warn(
            f"only one subgroup ({names[0]!r}): there is no test for subgroup differences",
            SmallSampleWarning,
            stacklevel=2,
        )
        q_b, p_b = math.nan, math.nan
        if mode == "common":
            common = CommonTau2Fit(
                estimate=np.array([overall.estimate]),
                se=np.array([overall.se]),
                statistic=np.array([overall.statistic]),
                pvalue=np.array([overall.pvalue]),
                ci_lower=np.array([overall.ci_lower]),
                ci_upper=np.array([overall.ci_upper]),
                df=overall.df,
                tau2=overall.tau2,
            )
    elif mode == "common":
        common = _common_fit(y, v, group, names, name, test=test, ctl=ctl, **settings)
        model = common.model
        assert model is not None
        q_b, p_b = model.qm, model.qm_pvalue
        if test != "z" and model.test != "z":
            distribution, df_residual = "F", float(model.df)
    else:
        q_b, p_b = _q_between(per_group, names, ctl)
    return SubgroupResult(
        levels=levels,
        per_group=per_group,
        overall=overall,
        q_between=float(q_b),
        q_between_df=n_groups - 1,
        q_between_pvalue=float(p_b),
        q_between_distribution=distribution,
        q_between_df_residual=df_residual,
        tau2_mode=mode,
        common=common,
        yi=y,
        vi=v,
        group=group,
        name=name,
        test=test,
        **settings,
        **prep.fields(),
    )


def _series_name(groups: Any) -> str:
    label = getattr(groups, "name", None)
    return label if isinstance(label, str) and label else "group"


def _fit_groups(
    y: FloatArray,
    v: FloatArray,
    group: IntArray,
    n_groups: int,
    names: tuple[str, ...],
    *,
    method: str,
    test: str,
    level: float,
    tau2_fixed: float | None,
    ctl: dict[str, Any],
    control: dict[str, Any],
    study: Any = None,
) -> list[PoolResult]:
    """Every subgroup pooled in one call of the engine: row g holds the studies of
    subgroup g (in input order), padded with absent studies (y = 0, v = inf) to the size
    of the largest subgroup."""
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.arange(group.size) - starts[group[order]]
    width = int(sizes.max())
    yy = np.zeros((n_groups, width))
    vv = np.full((n_groups, width), np.inf)
    yy[group[order], rank] = y[order]
    vv[group[order], rank] = v[order]
    single = [names[g] for g in np.flatnonzero(sizes == 1)]
    if single and (method != "EE" or test != "z"):
        notes = [] if method == "EE" else ["their tau^2 is 0"]
        if test != "z":
            notes.append(f"test={test!r} is replaced by 'z' for them")
        warnings.warn(
            f"subgroups {single} have one study each: {' and '.join(notes)} "
            '(as metafor: Setting argument test="z" since k=1)',
            SmallSampleWarning,
            stacklevel=3,
        )
    view = _engine.intercept_view(
        _engine.fit(
            yy,
            vv,
            padded=True,
            method=method,
            test=test,
            level=level,
            tau2_fixed=tau2_fixed,
            control=ctl,
            btt=(),
        )
    )
    rows = {
        key: np.broadcast_to(np.asarray(val), (n_groups,))
        for key, val in view.items()
        if key in _ROW_KEYS
    }
    padded_y = np.where(np.isfinite(vv), yy, np.nan)
    padded_v = np.where(np.isfinite(vv), vv, np.nan)
    rows["weights"] = _percent_weights(padded_y, padded_v, rows["tau2"])
    if not (np.isfinite(rows["estimate"]).all() and np.isfinite(rows["se"]).all()):
        g = int(np.flatnonzero(~(np.isfinite(rows["estimate"]) & np.isfinite(rows["se"])))[0])
        msg = (
            f"`yi` or `vi` is too large: the computation overflows the floating-point range "
            f"in subgroup {names[g]!r}"
        )
        raise ValueError(msg)
    zeroed = np.asarray(view.get("zeroed", False), dtype=bool)
    if zeroed.any():
        which = [names[g] for g in np.flatnonzero(np.broadcast_to(zeroed, (n_groups,)))]
        warnings.warn(
            f"subgroups {which}: the {method} score's root reached from the start is a local "
            "maximum of the likelihood below its value at tau^2 = 0: tau^2 is set to 0 (as "
            "metafor; check the likelihood profile)",
            LocalMaximumWarning,
            stacklevel=3,
        )
    out = []
    for g in range(n_groups):
        members = order[starts[g] : starts[g] + sizes[g]]  # input order within the subgroup
        rows_g = {key: val[g : g + 1] for key, val in rows.items()}
        rows_g["weights"] = rows["weights"][g : g + 1, : sizes[g]]
        out.append(
            result_from_core(
                rows_g,
                0,
                yi=y[members],
                vi=v[members],
                omitted=(),
                method=method,
                test=test if sizes[g] > 1 else "z",
                level=level,
                tau2_fixed=tau2_fixed is not None,
                control=control,
                **(study(members) if study is not None else {}),
            )
        )
    return out


#: the statistics of the engine's fit kept per subgroup (those of a PoolResult)
_ROW_KEYS = frozenset((*CORE_FLOAT_FIELDS, *CORE_COUNT_FIELDS))


def _q_between(
    per_group: list[PoolResult], names: tuple[str, ...], ctl: dict[str, Any]
) -> tuple[float, float]:
    """Cochran's Q of the subgroup estimates with their standard errors and its χ²(G - 1)
    p-value: the heterogeneity statistic of the equal-effects fit of the G estimates."""
    theta = np.array([r.estimate for r in per_group])
    se = np.array([r.se for r in per_group])
    if not (se > 0).all():
        zero = [names[g] for g in np.flatnonzero(~(se > 0))]
        warnings.warn(
            f"subgroups {zero} have a standard error of 0 (the Knapp-Hartung residual "
            "variance of an exact fit): the test for subgroup differences is undefined (NaN)",
            DegenerateDataWarning,
            stacklevel=3,
        )
        return math.nan, math.nan
    out = _engine.fit(
        theta, se * se, padded=False, method="EE", test="z", level=0.95, control=ctl, btt=()
    )
    return float(out["q"]), float(out["q_pvalue"])


def _common_fit(
    y: FloatArray,
    v: FloatArray,
    group: IntArray,
    names: tuple[str, ...],
    name: str,
    *,
    method: str,
    test: str,
    level: float,
    ctl: dict[str, Any],
    control: dict[str, Any],
) -> CommonTau2Fit:
    """The meta-regression on the group factor (treatment coding, the first level the
    reference) and the cell means under its τ²: ``μ_g = b₀ + b_g`` with covariance
    ``L V Lᵀ`` (the same fit as the cell-means model ``~ factor(g) - 1``)."""
    n_groups = len(names)
    k = y.shape[0]
    if method != "EE" and k <= n_groups:
        msg = (
            f"tau2='common' needs more studies than subgroups (k = {k}, {n_groups} "
            "subgroups): the common tau^2 has no residual degrees of freedom"
        )
        raise ValueError(msg)
    mods = {f"{name}{names[g]}": (group == g).astype(np.float64) for g in range(1, n_groups)}
    with warnings.catch_warnings():
        # (k = G with EE: no residual df, z instead of a t-based test; said once above)
        warnings.simplefilter("ignore", SmallSampleWarning)
        model = metareg(y, v, mods=mods, method=method, test=test, level=level, control=control)
    lmat = np.zeros((n_groups, n_groups))
    lmat[:, 0] = 1.0
    lmat[np.arange(1, n_groups), np.arange(1, n_groups)] = 1.0
    est = lmat @ model.coef
    cov = lmat @ model.vcov @ lmat.T
    se = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    pvalue = np.array([float(two_sided_p(float(s), model.df, model.test)) for s in stat])
    crit = float(test_critical_value(level, model.df, model.test))
    return CommonTau2Fit(
        estimate=est,
        se=se,
        statistic=stat,
        pvalue=pvalue,
        ci_lower=est - crit * se,
        ci_upper=est + crit * se,
        df=model.df,
        tau2=model.tau2,
        model=model,
    )
